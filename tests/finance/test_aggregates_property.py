"""Property: on a random ledger of a few thousand invoices written through the real services and the
DynamoDB ledger (moto), the reports' aggregates equal a brute-force recomputation from every invoice,
for random as-of dates; the nightly reconciliation finds no drift.

How the ledger is built (seeded, ~2,000 invoices over 27 months, 20 customers, EUR and a few USD):
day by day, the clock moves; invoices are issued through ``InvoiceService`` (create + issue, ~3 %)
or imported through ``UnitOfWork.save_invoice(None, issued)`` ten per transaction (the path imports
and recurring billing use: same deltas, same commit); payments through ``PaymentService.record``
with up to 12 allocations, some received days before they are recorded (back-dated), some partial;
credit notes (a full one on an unpaid invoice voids it) and refunds that reopen a paid invoice through
``save_invoice`` like the credit-note and webhook services. Checks read the aggregates with the
reports' own read plans (years + 8 items) and compare with ``aging_from_invoices`` /
``period_figures_from_invoices`` over the invoices read back from DynamoDB.

Runs on its own moto server with per-partition Query (``indexed_stack``): ~2 minutes here, nearly
all of it moto applying the ~2,000 transactions.
"""

from __future__ import annotations

import functools
import random
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.aggregates import (PORTFOLIO, ReceivableHistory, aging_from_invoices,
                                          period_figures_from_invoices, period_read_keys)
from chalicelib.domain.auth import CLERK, Actor
from chalicelib.domain.invoice import OPEN, PAID, new_draft
from chalicelib.domain.money import Money
from chalicelib.services.ports import FixedClock, InvoiceQuery, UnitOfWork
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line

pytestmark = pytest.mark.slow
ACTOR = Actor("property", CLERK)
START, END = date(2024, 1, 1), date(2026, 3, 31)
SEED = 20260331


def _at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 10, 0, tzinfo=timezone.utc)


def build_ledger(rng: random.Random, target: int = 2000) -> dict[str, object]:
    from chalicelib import wiring
    from chalicelib.services.customers import CustomerService
    from chalicelib.services.invoices import InvoiceService
    from chalicelib.services.payments import PaymentService
    from chalicelib.services.settings import SettingsService

    ledger = wiring.ledger()
    clock = FixedClock(_at(START))
    seller = SettingsService(ledger, clock)
    seller.put_seller(SELLER_INPUT, Actor.system("property"))
    customers = CustomerService(ledger, clock, seller)
    invoices = InvoiceService(ledger, clock, seller)
    payments = PaymentService(ledger, clock, seller)
    people = []
    for n in range(20):
        currency = "USD" if n % 10 == 9 else "EUR"
        c, _ = customers.create({**CUSTOMER_INPUT, "name": f"Client {n:02d}", "currency": currency,
                                 "payment_terms": {"kind": "net", "days": rng.choice((0, 15, 30, 45, 60))}}, ACTOR)
        people.append((c, rng.choice((0, 0, 3, 10, 25, 60, 120))))   # (customer, typical days late)
    # A mirror of what was written (status, amounts, due dates) decides what happens next without
    # reading the invoices back every day: moto answers each request in milliseconds, not microseconds.
    mirror: dict[str, object] = {}
    open_by_customer: dict[str, list[str]] = {c.id: [] for c, _ in people}
    per_day = target / (END - START).days
    day, n, stats = START, 0, {"service": 0, "imported": 0, "payments": 0, "credits": 0, "refunds": 0}
    paid: list[str] = []
    while day <= END:
        clock.set(_at(day))
        # -- invoices of the day
        batch: list[object] = []
        for _ in range(int(per_day) + (1 if rng.random() < per_day % 1 else 0)):
            c, _late = rng.choice(people)
            net = f"{rng.randint(1, 400) * 25}.{rng.choice(('00', '50', '99'))}"
            if rng.random() < 0.03:
                draft, _ = invoices.create_draft({"customer_id": c.id, "lines": [line(unit_price=net)]}, ACTOR)
                inv = invoices.issue(draft.id, ACTOR)
                stats["service"] += 1
            else:
                n += 1
                draft = new_draft(f"inv_p{n:05d}", {"customer_id": c.id, "lines": [line(unit_price=net)]},
                                  customer_currency=c.currency, now=_at(day))
                inv = draft.issue(number=f"P{day.year}-{n:05d}", series="P", issue_date=day, terms=c.payment_terms,
                                  eom_mode="days_then_end_of_month", jurisdiction="FR", seller={},
                                  buyer=c.identity(), now=_at(day))
                batch.append(inv)
                if len(batch) == 10:
                    _import(ledger, batch, day)
                    batch = []
                stats["imported"] += 1
            mirror[inv.id] = inv
            open_by_customer[c.id].append(inv.id)
        if batch:
            _import(ledger, batch, day)
        # -- payments (today's or back-dated, some partial, some with credit left over), credit notes
        for c, late in people:
            ids = open_by_customer[c.id]
            if not ids or rng.random() > 0.02:
                continue
            due_now = [mirror[i] for i in ids[:12]
                       if (day - mirror[i].due_date).days >= late - rng.randint(0, 30)]
            if not due_now:
                continue
            received = max(max(i.issue_date for i in due_now), day - timedelta(days=rng.choice((0, 0, 0, 3, 12))))
            allocations = []
            for inv in due_now:
                part = inv.amount_due.amount if rng.random() < 0.85 else max(1, inv.amount_due.amount // 3)
                allocations.append((inv.id, part))
            extra = rng.choice((0, 0, 0, 1500))
            payments.record({"customer_id": c.id, "currency": c.currency,
                             "amount": str(Money(sum(a for _, a in allocations) + extra, c.currency)),
                             "method": rng.choice(("bank_transfer", "cheque", "card")),
                             "received_on": received.isoformat(), "keep_excess_as_credit": True,
                             "allocations": [{"invoice_id": i, "amount": str(Money(a, c.currency))}
                                             for i, a in allocations]}, ACTOR)
            stats["payments"] += 1
            for i, a in allocations:
                mirror[i] = mirror[i].apply_payment(Money(a, c.currency), _at(day))
                if mirror[i].status != OPEN:
                    ids.remove(i)
                    paid.append(i)
            if rng.random() < 0.25 and ids:
                inv = ledger.get_invoice(ids[-1])
                full = rng.random() < 0.4 and inv.amount_paid == 0
                amount = inv.amount_due if full else Money(max(1, inv.amount_due.amount // 4), inv.currency)
                mirror[inv.id] = _save(ledger, inv, inv.apply_credit(amount, _at(day)), day, "invoice.credited")
                stats["credits"] += 1
                if mirror[inv.id].status != OPEN:
                    ids.remove(inv.id)
        if paid and rng.random() < 0.02:
            inv = ledger.get_invoice(paid.pop(rng.randrange(len(paid))))
            if inv.status == PAID:
                refunded = inv.reverse_payment(Money(max(1, inv.amount_paid // 2), inv.currency), _at(day))
                mirror[inv.id] = _save(ledger, inv, refunded, day, "invoice.refunded")
                open_by_customer[inv.customer_id].append(inv.id)
                stats["refunds"] += 1
        day += timedelta(days=1)
    return {"customers": [c for c, _ in people], "stats": stats}


def _import(ledger, batch, day: date) -> None:
    uow = UnitOfWork(actor=ACTOR, now=_at(day))
    for issued in batch:
        uow.save_invoice(None, issued, on=day, action="invoice.import")
    ledger.commit(uow)


def _save(ledger, before, after, day: date, action: str):
    uow = UnitOfWork(actor=ACTOR, now=_at(day))
    saved = uow.save_invoice(before, replace(after, updated_at=_at(day)), on=day, action=action)
    ledger.commit(uow)
    return saved


def test_aggregates_equal_brute_force_on_a_random_moto_ledger(indexed_stack, monkeypatch):
    from chalicelib import wiring

    fixed = FixedClock(_at(END))
    monkeypatch.setattr(wiring, "clock", functools.lru_cache(maxsize=1)(lambda: fixed))
    wiring.reset()
    built = build_ledger(random.Random(SEED))
    ledger = wiring.ledger()
    everything = []
    cursor = None
    while True:  # read back every invoice (the by-kind index), histories as stored
        page = ledger.query_invoices(InvoiceQuery(limit=200, cursor=cursor), END)
        everything += page.items
        cursor = page.next_cursor
        if not cursor:
            break
    histories = [ReceivableHistory.from_dict(i.ledger_history) for i in everything if i.ledger_history]
    stats = built["stats"]
    assert len(histories) >= 1900 and stats["payments"] > 250 and stats["service"] > 40
    assert stats["credits"] > 10 and stats["refunds"] > 3
    reports = wiring.reports()
    customers = built["customers"]

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(as_of=st.dates(min_value=START - timedelta(days=10), max_value=END),
           who=st.sampled_from([None, *customers[:6], customers[9]]),
           span=st.integers(min_value=1, max_value=120))
    def check(as_of: date, who, span: int) -> None:
        currency = who.currency if who is not None else ("USD" if span % 7 == 0 else "EUR")
        scope_id = who.id if who is not None else None
        aging, _, read = reports.aging(as_of=as_of, currency=currency, customer_id=scope_id)
        expected = aging_from_invoices(histories, currency=currency, as_of=as_of, customer_id=scope_id)
        assert aging == expected, (as_of, scope_id)
        assert read <= (as_of.year - START.year + 1) + 8 + 1
        start = as_of - timedelta(days=span - 1)
        scope = scope_id or PORTFOLIO
        loaded = reports._load(currency, scope, as_of,
                               lambda first: period_read_keys(currency, scope, start, as_of, first))
        assert loaded.view.period_figures(start, as_of) == period_figures_from_invoices(
            histories, currency=currency, start=start, end=as_of, customer_id=scope_id)

    check()
    report = wiring.reconcile().run(END)
    assert report.ok and report.drift_count == 0 and report.histories == len(histories), report.to_dict()
