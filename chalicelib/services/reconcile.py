"""Reconciliation of the report aggregates: rebuild them from the invoices' stored histories and
report every cell that differs (there must be none), incrementally, within a time budget.

A run goes customer by customer (name index, never a Scan): the customer's invoices (customer
index), their histories rebuilt into aggregates with the write path's own code, compared cell by
cell with the customer's stored items (one Query on its partition). Drift is logged per customer
as it is found. Memory and time per step: one customer, whatever the ledger size.

**Resumable.** The run's progress is a versioned record in the ledger (settings document
``reconcile_run``): the as-of date, the page cursor of the name index and the customers already
done in that page, the counters, the drift found so far, and two small accumulators (below). Each
call works until its time budget is spent, then commits the progress (optimistic version: a
slice that raced another one is dropped, never counted twice) and stops; the next call (the
scheduled job every 15 minutes at night, or ``POST /admin/reconcile`` again) continues.

**The portfolio without a pass over all invoices in one request.** Every change writes the same
deltas to the portfolio scope and the customer's scope, so the portfolio must equal the sum of
the per-customer rebuilds. Summing per cell across slices would need the whole portfolio (up to
~100,000 cells) in the progress record; instead each portfolio item is summarised by a linear
fingerprint (sum of value x hash(cell) mod 2^61 - 1, plus the plain sum), which adds up across
customers exactly as the cells do. At the end the stored portfolio items (one Query per
currency) are fingerprinted and compared item by item: a mismatch names the item (every cell
of an item that should not exist), a false match needs a difference that cancels modulo a
61-bit prime (probability ~4e-19). The brute-force aging of ``as_of`` is likewise accumulated
per bucket (amount and count) and compared with the aging from the stored aggregates.

What it cannot see: aggregate partitions of a customer that no longer exists (there is no
delete of customers). A change committed while a run spans several calls can show as a
portfolio difference that the next run does not find again: runs are scheduled at night.
Nothing is repaired automatically: a drift is a bug to investigate, and repairing while writes
go on would race the transactions' ADDs.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from ..domain.aggregates import (
    PORTFOLIO,
    AggregateKey,
    ReceivableHistory,
    aging_from_aggregates,
    apply_updates,
    deltas_for_history,
    drift,
    is_receivable,
    merge_deltas,
)
from ..domain.kpis import AGING_BUCKETS, Aging, AgingBucket, aging_of
from ..observability import count, logger
from .credit import LEDGER_FIRST_YEAR, all_pages, history_of
from .ports import Clock, CommitConflict, InvoiceQuery, Ledger, SettingsDoc, UnitOfWork
from .settings import SettingsService

MAX_DRIFT_LISTED = 100
RUN_DOC = "reconcile_run"        # the progress record (a versioned settings document)
CUSTOMER_PAGE = 25
RUNNING, COMPLETED = "running", "completed"
_P = (1 << 61) - 1               # a Mersenne prime: the fingerprints' modulus


@lru_cache(maxsize=65536)
def _weight(cell: str) -> int:
    return int.from_bytes(hashlib.blake2b(cell.encode(), digest_size=8).digest(), "big") % _P


def fingerprint(cells: Mapping[str, int]) -> tuple[int, int]:
    """``(sum of value x weight(cell) mod P, sum of values)``: linear, so the fingerprint of a sum of
    items is the sum of their fingerprints."""
    return sum(v * _weight(c) for c, v in cells.items()) % _P, sum(cells.values())


@dataclass
class ReconcileReport:
    as_of: date
    status: str = RUNNING
    started_at: str | None = None
    completed_at: str | None = None
    slices: int = 0
    customers: int = 0
    invoices: int = 0
    histories: int = 0
    items_checked: int = 0
    cells_checked: int = 0
    drift_count: int = 0
    drift: list[dict[str, Any]] = field(default_factory=list)
    missing_history: list[str] = field(default_factory=list)
    aging: list[dict[str, Any]] = field(default_factory=list)
    items_read: int = 0          # over the whole run
    duration_ms: int = 0         # over the whole run (the sum of its slices)
    slice_items_read: int = 0    # this call
    slice_duration_ms: int = 0
    slice_customers: int = 0

    @property
    def complete(self) -> bool:
        return self.status == COMPLETED

    @property
    def ok(self) -> bool | None:
        """No drift, no missing history, equal agings; ``None`` while the run is not complete (no verdict yet,
        unless drift was already found)."""
        if self.drift_count or self.missing_history:
            return False
        if not self.complete:
            return None
        return all(a["equal"] for a in self.aging)

    def to_dict(self) -> dict[str, Any]:
        return {"object": "reconciliation", "as_of": self.as_of.isoformat(), "status": self.status, "ok": self.ok,
                "started_at": self.started_at, "completed_at": self.completed_at, "slices": self.slices,
                "customers": self.customers, "invoices": self.invoices, "histories": self.histories,
                "items_checked": self.items_checked, "cells_checked": self.cells_checked,
                "drift_count": self.drift_count, "drift": self.drift, "missing_history": self.missing_history,
                "aging": self.aging, "items_read": self.items_read, "duration_ms": self.duration_ms,
                "slice": {"customers": self.slice_customers, "items_read": self.slice_items_read,
                          "duration_ms": self.slice_duration_ms}}


@dataclass
class _Progress:
    """What the ledger keeps between two calls (the ``reconcile_run`` document's data)."""

    report: ReconcileReport
    cursor: str | None = None                   # name-index cursor of the page being done
    done: list[str] = field(default_factory=list)  # customers of that page already done
    portfolio: dict[str, list[int]] = field(default_factory=dict)   # "CCY|sk" -> [fingerprint, sum]
    brute: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # CCY -> bucket -> [amount, count]

    def to_data(self) -> dict[str, Any]:
        r = self.report
        return {"as_of": r.as_of.isoformat(), "status": r.status, "started_at": r.started_at,
                "completed_at": r.completed_at, "slices": r.slices, "cursor": self.cursor, "done": self.done,
                "counters": {k: getattr(r, k) for k in ("customers", "invoices", "histories", "items_checked",
                                                        "cells_checked", "drift_count", "items_read",
                                                        "duration_ms")},
                "drift": r.drift, "missing_history": r.missing_history, "aging": r.aging,
                "portfolio": self.portfolio, "brute": self.brute}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> _Progress:
        report = ReconcileReport(as_of=date.fromisoformat(data["as_of"]), status=data["status"],
                                 started_at=data.get("started_at"), completed_at=data.get("completed_at"),
                                 slices=int(data.get("slices", 0)), drift=list(data.get("drift", [])),
                                 missing_history=list(data.get("missing_history", [])),
                                 aging=list(data.get("aging", [])))
        for k, v in (data.get("counters") or {}).items():
            setattr(report, k, int(v))
        return cls(report=report, cursor=data.get("cursor"), done=list(data.get("done", [])),
                   portfolio={k: [int(x) for x in v] for k, v in (data.get("portfolio") or {}).items()},
                   brute={c: {b: [int(x) for x in v] for b, v in buckets.items()}
                          for c, buckets in (data.get("brute") or {}).items()})


class ReconcileService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings

    def today(self) -> date:
        return self._clock.today(self._settings.timezone())

    def latest(self) -> ReconcileReport | None:
        """The current or last run's report, as recorded (no work done)."""
        doc = self._ledger.get_settings(RUN_DOC)
        return _Progress.from_data(doc.data).report if doc is not None else None

    def run(self, as_of: date | None = None, *, budget_s: float | None = None,
            fresh: bool = True) -> ReconcileReport:
        """Continue the run in progress, or start one, and work on it for ``budget_s`` seconds (``None``: to
        the end). A run in progress is continued when ``as_of`` is not given or is its date; another
        ``as_of`` starts over. With no run in progress, a new one starts, unless ``fresh`` is false and the
        last completed run is of ``as_of`` (or today): then its report is returned as it is.

        Checks the budget between customers (one customer's invoices are read whole). Never raises on drift:
        the report says it (``ok``), the log says it as an error, the ``AggregateDrift`` metric counts it.
        """
        started = time.monotonic()
        doc = self._ledger.get_settings(RUN_DOC)
        progress = _Progress.from_data(doc.data) if doc is not None else None
        target = as_of or (progress.report.as_of if progress is not None and progress.report.status == RUNNING
                           else self.today())
        if progress is None or progress.report.as_of != target or (progress.report.status == COMPLETED and fresh):
            if progress is not None and progress.report.status == RUNNING:
                logger.warning("reconciliation restarted before the end of the previous run",
                               extra={"previous_as_of": progress.report.as_of.isoformat(), "as_of": target.isoformat()})
            progress = _Progress(report=ReconcileReport(as_of=target, started_at=self._clock.now().isoformat()))
        elif progress.report.status == COMPLETED:
            return progress.report
        report = progress.report
        report.slices += 1
        read_before, customers_before = report.items_read, report.customers
        deadline = started + budget_s if budget_s is not None else None
        worked = False  # every call does at least one customer: a tiny budget still progresses
        while True:
            page = self._ledger.list_customers(limit=CUSTOMER_PAGE, cursor=progress.cursor)
            report.items_read += page.scanned or len(page.items)
            stopped = False
            for customer in page.items:
                if customer.id in progress.done:
                    continue
                if worked and deadline is not None and time.monotonic() >= deadline:
                    stopped = True
                    break
                self._customer(progress, customer)
                progress.done.append(customer.id)
                worked = True
            if stopped:
                break
            progress.cursor, progress.done = page.next_cursor, []
            if not page.next_cursor:
                self._finish(progress)
                break
            if worked and deadline is not None and time.monotonic() >= deadline:
                break
        elapsed = int((time.monotonic() - started) * 1000)
        report.duration_ms += elapsed
        report.slice_duration_ms = elapsed
        report.slice_items_read = report.items_read - read_before
        report.slice_customers = report.customers - customers_before
        self._save(doc, progress)
        if report.complete:
            count("AggregateDrift", report.drift_count)
            log = logger.error if not report.ok else logger.info
            log("aggregates reconciled", extra={k: v for k, v in report.to_dict().items()
                                                if k not in ("drift", "aging", "missing_history")})
        else:
            logger.info("aggregates reconciliation continues", extra={
                "as_of": report.as_of.isoformat(), "customers": report.customers, "slices": report.slices,
                "drift_count": report.drift_count})
        return report

    # -- one customer ---------------------------------------------------------------------------------
    def _customer(self, progress: _Progress, customer: Any) -> None:
        report = progress.report
        as_of = report.as_of
        report.customers += 1
        invoices, read = all_pages(lambda c: self._ledger.query_invoices(
            InvoiceQuery(customer_id=customer.id, limit=200, cursor=c), as_of))
        report.items_read += read
        report.invoices += len(invoices)
        mine: dict[AggregateKey, dict[str, int]] = {}
        portfolio: dict[AggregateKey, dict[str, int]] = {}
        open_items: dict[str, list[tuple[date, int]]] = {}
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
        found = report.drift_count
        for currency in sorted(currencies):
            expected = {k: v for k, v in mine.items() if k.currency == currency}
            stored = self._ledger.query_aggregates(currency, customer.id)
            report.items_read += len(stored)
            self._compare(report, expected, stored)
        if report.drift_count > found:
            logger.error("aggregate drift", extra={"customer_id": customer.id, "cells": report.drift_count - found})
        for key, cells in portfolio.items():  # this customer's share of the portfolio, summed as fingerprints
            fp, total = fingerprint(cells)
            acc = progress.portfolio.setdefault(f"{key.currency}|{key.sk}", [0, 0])
            acc[0], acc[1] = (acc[0] + fp) % _P, acc[1] + total
        for currency, items in open_items.items():
            aging = aging_of(items, currency=currency, as_of=as_of)
            buckets = progress.brute.setdefault(currency, {})
            for b in aging.buckets:
                acc = buckets.setdefault(b.name, [0, 0])
                acc[0], acc[1] = acc[0] + b.amount, acc[1] + b.count

    @staticmethod
    def _compare(report: ReconcileReport, expected: dict[AggregateKey, dict[str, int]],
                 stored: dict[AggregateKey, dict[str, int]]) -> None:
        report.items_checked += len(set(expected) | set(stored))
        report.cells_checked += sum(len(v) for v in expected.values())
        for d in drift(expected, stored):
            _add_drift(report, {"currency": d.key.currency, "scope": d.key.scope, "item": d.key.sk, "cell": d.cell,
                                "expected": d.expected, "stored": d.actual})

    # -- the end: the portfolio against the sum of the customers ------------------------------------------
    def _finish(self, progress: _Progress) -> None:
        report = progress.report
        as_of = report.as_of
        expected: dict[str, dict[str, list[int]]] = {}
        for key, value in progress.portfolio.items():
            currency, sk = key.split("|", 1)
            expected.setdefault(currency, {})[sk] = value
        early = sorted({sk[2:] for items in expected.values() for sk, (fp, _) in items.items()
                        if sk.startswith("y#") and fp and int(sk[2:]) < LEDGER_FIRST_YEAR})
        if early:  # the reports read aggregates from LEDGER_FIRST_YEAR on: older history would be missed
            _add_drift(report, {"problem": f"history before {LEDGER_FIRST_YEAR} (years {', '.join(early)}): "
                                           "the reports would leave it out"})
        report.aging = []
        for currency in sorted(set(expected) | set(progress.brute)):
            mine = expected.get(currency, {})
            stored = self._ledger.query_aggregates(currency, PORTFOLIO)
            report.items_read += len(stored)
            by_sk = {k.sk: (k, cells) for k, cells in stored.items()}
            report.items_checked += len(set(mine) | set(by_sk))
            for sk in sorted(set(mine) | set(by_sk)):
                want = tuple(mine.get(sk, (0, 0)))
                key, cells = by_sk.get(sk, (None, {}))
                got = fingerprint(cells)
                report.cells_checked += len(cells)
                if want == got:
                    continue
                if want == (0, 0):  # an item no customer's invoices make: every cell of it is drift
                    for cell, v in sorted(cells.items()):
                        if v:
                            _add_drift(report, {"currency": currency, "scope": PORTFOLIO, "item": sk, "cell": cell,
                                                "expected": 0, "stored": v})
                else:
                    _add_drift(report, {"currency": currency, "scope": PORTFOLIO, "item": sk, "cell": None,
                                        "expected_sum": want[1], "stored_sum": got[1],
                                        "problem": "the portfolio item differs from the sum of the customers' "
                                                   "invoices (fingerprint of its cells)"})
            years = [int(sk[2:]) for sk, (fp, _) in mine.items() if sk.startswith("y#") and fp]
            first = min(years, default=as_of.year)
            stored_aging = aging_from_aggregates(self._ledger.get_aggregates(_aging_keys(currency, as_of, first)),
                                                 currency=currency, as_of=as_of, first_year=first)
            buckets = progress.brute.get(currency, {})
            brute = Aging(currency=currency, as_of=as_of, scope=PORTFOLIO,
                          buckets=tuple(AgingBucket(b.name, *buckets.get(b.name, (0, 0))) for b in AGING_BUCKETS))
            report.aging.append({"currency": currency, "from_aggregates": stored_aging.to_dict(),
                                 "brute_force": brute.to_dict(), "equal": stored_aging == brute})
        report.status = COMPLETED
        report.completed_at = self._clock.now().isoformat()

    def _save(self, doc: SettingsDoc | None, progress: _Progress) -> None:
        now = self._clock.now()
        uow = UnitOfWork(actor=_system(), now=now)
        new = SettingsDoc(name=RUN_DOC, data=progress.to_data(), updated_at=now, version=doc.version if doc else 0)
        if doc is None:
            uow.create(new)
        else:
            uow.save(new)
        try:
            self._ledger.commit(uow)
        except CommitConflict:
            # Another call saved the run meanwhile: this slice is dropped (never counted twice); the
            # drift it found was logged and the next slice finds it again.
            logger.warning("reconciliation slice dropped: another call advanced the run",
                           extra={"as_of": progress.report.as_of.isoformat()})


def _add_drift(report: ReconcileReport, entry: dict[str, Any]) -> None:
    report.drift_count += 1
    if len(report.drift) < MAX_DRIFT_LISTED:
        report.drift.append(entry)


def _system() -> Any:
    from ..domain.auth import Actor

    return Actor.system("reconcile")


def _aging_keys(currency: str, as_of: date, first: int) -> list[AggregateKey]:
    from ..domain.aggregates import aging_read_keys

    return aging_read_keys(currency, PORTFOLIO, as_of, first)
