"""Daily reconciliation: rebuild the report aggregates from the invoices' stored histories and
report every cell that differs (there must be none).

Page by page, never a Scan: customers come from the name index, each customer's
invoices from the customer index, each customer's stored aggregates from one
Query on their partition. Memory holds one customer and the portfolio rebuild
(a few hundred small items), whatever the ledger size. Cost: every customer,
invoice and aggregate item read once (100,000 invoices: ~100,000 items, about a
minute on DynamoDB; run daily off-peak).

Also, for the ``as_of`` date: the portfolio aging from the stored aggregates
next to the brute-force aging over every invoice's history, per currency.

What it cannot see: aggregate partitions of a customer that no longer exists
(there is no delete of customers). Nothing is repaired automatically: a drift
is a bug to investigate (the report lists the first cells), and repairing while
writes go on would race the transactions' ADDs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..domain.aggregates import (PORTFOLIO, AggregateKey, ReceivableHistory, aging_from_aggregates, apply_updates,
                                 deltas_for_history, drift, is_receivable, merge_deltas)
from ..domain.kpis import aging_of
from ..observability import count, logger
from .credit import LEDGER_FIRST_YEAR, all_pages, history_of
from .ports import Clock, InvoiceQuery, Ledger
from .settings import SettingsService

MAX_DRIFT_LISTED = 100


@dataclass
class ReconcileReport:
    as_of: date
    customers: int = 0
    invoices: int = 0
    histories: int = 0
    items_checked: int = 0
    cells_checked: int = 0
    drift_count: int = 0
    drift: list[dict[str, Any]] = field(default_factory=list)
    missing_history: list[str] = field(default_factory=list)
    aging: list[dict[str, Any]] = field(default_factory=list)
    items_read: int = 0
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.drift_count == 0 and not self.missing_history and all(a["equal"] for a in self.aging)

    def to_dict(self) -> dict[str, Any]:
        return {"object": "reconciliation", "as_of": self.as_of.isoformat(), "ok": self.ok,
                "customers": self.customers, "invoices": self.invoices, "histories": self.histories,
                "items_checked": self.items_checked, "cells_checked": self.cells_checked,
                "drift_count": self.drift_count, "drift": self.drift, "missing_history": self.missing_history,
                "aging": self.aging, "items_read": self.items_read, "duration_ms": self.duration_ms}


class ReconcileService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings

    def today(self) -> date:
        return self._clock.today(self._settings.timezone())

    def _compare(self, report: ReconcileReport, expected: dict[AggregateKey, dict[str, int]],
                 currency: str, scope: str) -> None:
        actual = self._ledger.query_aggregates(currency, scope)
        report.items_read += len(actual)
        mine = {k: v for k, v in expected.items() if k.currency == currency and k.scope == scope}
        report.items_checked += len(set(mine) | set(actual))
        report.cells_checked += sum(len(v) for v in mine.values())
        for d in drift(mine, actual):
            report.drift_count += 1
            if len(report.drift) < MAX_DRIFT_LISTED:
                report.drift.append({"currency": d.key.currency, "scope": d.key.scope, "item": d.key.sk,
                                     "cell": d.cell, "expected": d.expected, "stored": d.actual})

    def run(self, as_of: date | None = None) -> ReconcileReport:
        started = time.monotonic()
        as_of = as_of or self.today()
        report = ReconcileReport(as_of=as_of)
        portfolio: dict[AggregateKey, dict[str, int]] = {}
        open_items: dict[str, list[tuple[date, int]]] = {}
        cursor = None
        while True:
            page = self._ledger.list_customers(limit=100, cursor=cursor)
            report.items_read += page.scanned or len(page.items)
            for customer in page.items:
                report.customers += 1
                invoices, read = all_pages(lambda c, cid=customer.id: self._ledger.query_invoices(
                    InvoiceQuery(customer_id=cid, limit=200, cursor=c), as_of))
                report.items_read += read
                report.invoices += len(invoices)
                mine: dict[AggregateKey, dict[str, int]] = {}
                currencies = {customer.currency}
                for inv in invoices:
                    h: ReceivableHistory | None = history_of(inv)
                    if h is None:
                        if is_receivable(inv) and len(report.missing_history) < MAX_DRIFT_LISTED:
                            report.missing_history.append(inv.id)
                        continue
                    report.histories += 1
                    currencies.add(h.currency)
                    updates = merge_deltas(deltas_for_history(h))
                    apply_updates(mine, [u for u in updates if u.key.scope != PORTFOLIO])
                    apply_updates(portfolio, [u for u in updates if u.key.scope == PORTFOLIO])
                    balance = h.balance_as_of(as_of)
                    if balance:
                        open_items.setdefault(h.currency, []).append((h.due_date, balance))
                for currency in sorted(currencies):
                    self._compare(report, mine, currency, customer.id)
            cursor = page.next_cursor
            if not cursor:
                break
        early = sorted({k.period for k in portfolio if k.grain == "y" and int(k.period) < LEDGER_FIRST_YEAR})
        if early:  # the reports read aggregates from LEDGER_FIRST_YEAR on: older history would be missed
            report.drift_count += 1
            report.drift.append({"problem": f"history before {LEDGER_FIRST_YEAR} (years {', '.join(early)}): "
                                            "the reports would leave it out"})
        for currency in sorted({k.currency for k in portfolio} | set(open_items)):
            self._compare(report, portfolio, currency, PORTFOLIO)
            first = min((int(k.period) for k in portfolio if k.currency == currency and k.grain == "y"),
                        default=as_of.year)
            stored = aging_from_aggregates(self._ledger.get_aggregates(_aging_keys(currency, as_of, first)),
                                           currency=currency, as_of=as_of, first_year=first)
            brute = aging_of(open_items.get(currency, []), currency=currency, as_of=as_of)
            report.aging.append({"currency": currency, "from_aggregates": stored.to_dict(),
                                 "brute_force": brute.to_dict(), "equal": stored == brute})
        report.duration_ms = int((time.monotonic() - started) * 1000)
        count("AggregateDrift", report.drift_count)
        log = logger.error if not report.ok else logger.info
        log("aggregates reconciled", extra={k: v for k, v in report.to_dict().items()
                                            if k not in ("drift", "aging", "missing_history")})
        return report


def _aging_keys(currency: str, as_of: date, first: int) -> list[AggregateKey]:
    from ..domain.aggregates import aging_read_keys

    return aging_read_keys(currency, PORTFOLIO, as_of, first)
