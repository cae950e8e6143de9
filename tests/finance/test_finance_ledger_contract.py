"""The ledger additions of issue 6, one contract for both ledgers (fake and DynamoDB on moto).

- customers on hold through a sparse index (GET /customers?on_hold=true);
- aggregate items of one (currency, scope) in one Query (the read plans' year items, reconciliation);
- invoice and payment queries: finance filters, sorts, offset cursors of in-memory sorts, read caps.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone

import pytest

from chalicelib.domain.aggregates import PORTFOLIO, AggregateKey
from chalicelib.domain.auth import CLERK, Actor
from chalicelib.domain.errors import BadRequest, ValidationError
from chalicelib.services.customers import CustomerService
from chalicelib.services.invoices import InvoiceService
from chalicelib.services.payments import PaymentService
from chalicelib.services.ports import FixedClock, InvoiceQuery, PaymentQuery, UnitOfWork
from chalicelib.services.settings import SettingsService
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line
from tests.fakes import FakeLedger

ALICE = Actor("alice", CLERK)
NOW = datetime(2026, 3, 10, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["fake", "dynamodb"])
def ledger(request):
    if request.param == "fake":
        return FakeLedger()
    request.getfixturevalue("stack")
    from chalicelib import wiring

    return wiring.ledger()


@pytest.fixture
def services(ledger):
    clock = FixedClock(NOW)
    settings = SettingsService(ledger, clock)
    settings.put_seller(SELLER_INPUT, Actor.system("test"))
    return (clock, CustomerService(ledger, clock, settings), InvoiceService(ledger, clock, settings),
            PaymentService(ledger, clock, settings))


def _hold(ledger, customer, on: bool):
    uow = UnitOfWork(actor=ALICE, now=NOW)
    saved = uow.save(dataclasses.replace(customer, on_hold=on, hold_reason="unpaid" if on else None))
    ledger.commit(uow)
    return saved


def test_customers_on_hold_are_listed_from_their_own_index(ledger, services):
    _, customers, _, _ = services
    a, _ = customers.create({**CUSTOMER_INPUT, "name": "Alpha"}, ALICE)
    b, _ = customers.create({**CUSTOMER_INPUT, "name": "Beta"}, ALICE)
    customers.create({**CUSTOMER_INPUT, "name": "Gamma"}, ALICE)
    assert ledger.list_customers(on_hold=True).items == []
    held_b = _hold(ledger, b, True)
    held_a = _hold(ledger, a, True)
    page = ledger.list_customers(on_hold=True, limit=1)
    assert [c.id for c in page.items] == [a.id] and page.next_cursor
    assert [c.id for c in ledger.list_customers(on_hold=True, limit=1, cursor=page.next_cursor).items] == [b.id]
    _hold(ledger, held_a, False)
    assert [c.id for c in ledger.list_customers(on_hold=True).items] == [b.id]
    assert ledger.get_customer(b.id) == held_b
    assert len(ledger.list_customers().items) == 3


def test_query_aggregates_returns_one_partition_by_grain_and_period(ledger):
    items = {AggregateKey("EUR", PORTFOLIO, "y", "2024"): {"inv:1": 5},
             AggregateKey("EUR", PORTFOLIO, "y", "2026"): {"inv:2": 7},
             AggregateKey("EUR", PORTFOLIO, "m", "2026-02"): {"inv:3": 1},
             AggregateKey("EUR", "cus_1", "y", "2025"): {"inv:1": 9},
             AggregateKey("USD", PORTFOLIO, "y", "2025"): {"inv:1": 4}}
    ledger.put_aggregates(items)
    everything = ledger.query_aggregates("EUR", PORTFOLIO)
    assert everything == {k: v for k, v in items.items() if k.currency == "EUR" and k.scope == PORTFOLIO}
    assert ledger.query_aggregates("EUR", PORTFOLIO, grain="y", end="2025") == {
        AggregateKey("EUR", PORTFOLIO, "y", "2024"): {"inv:1": 5}}
    assert list(ledger.query_aggregates("EUR", PORTFOLIO, grain="y", start="2025")) == [
        AggregateKey("EUR", PORTFOLIO, "y", "2026")]
    assert ledger.query_aggregates("EUR", "cus_missing") == {}


def _issue(invoices, clock, customer_id, price, on):
    clock.set(datetime(on.year, on.month, on.day, 9, tzinfo=timezone.utc))
    draft, _ = invoices.create_draft({"customer_id": customer_id, "lines": [line(unit_price=price)]}, ALICE)
    return invoices.issue(draft.id, ALICE)


def test_invoice_filters_and_sorts(ledger, services):
    clock, customers, invoices, payments = services
    c, _ = customers.create(CUSTOMER_INPUT, ALICE)
    other, _ = customers.create({**CUSTOMER_INPUT, "name": "Other"}, ALICE)
    small = _issue(invoices, clock, c.id, "100.00", date(2026, 1, 5))      # total 120, due 2026-02-04
    big = _issue(invoices, clock, c.id, "1000.00", date(2026, 2, 1))       # total 1200, due 2026-03-03
    mid = _issue(invoices, clock, other.id, "500.00", date(2026, 1, 20))   # total 600, due 2026-02-19
    clock.set(NOW)
    payments.record({"customer_id": c.id, "amount": "120.00", "method": "cheque", "received_on": "2026-03-01",
                     "allocations": [{"invoice_id": small.id, "amount": "120.00"}]}, ALICE)
    today = date(2026, 3, 10)

    def ids(**kw):
        page = ledger.query_invoices(InvoiceQuery(**kw), today)
        return [i.id for i in page.items]

    assert ids(customer_id=c.id, issued_from=date(2026, 1, 1), issued_to=date(2026, 1, 31)) == [small.id]
    assert ids(issued_from=date(2026, 1, 15)) == [big.id, mid.id]  # every invoice, newest first
    assert ids(amount_min=50000, amount_max=100000) == [mid.id]
    assert ids(status="open", sort="-due_date") == [big.id, mid.id]
    assert ids(status="open", sort="due_date") == [mid.id, big.id]
    assert ids(sort="amount") == [small.id, mid.id, big.id]
    assert ids(sort="-amount", currency="EUR") == [big.id, mid.id, small.id]
    assert ids(customer_id=c.id, sort="due_date") == [small.id, big.id]
    assert ids(status="paid") == [small.id]
    assert ids(dunning_step="first_reminder") == []
    assert ids(currency="USD") == []
    first = ledger.query_invoices(InvoiceQuery(sort="amount", limit=2), today)
    assert [i.id for i in first.items] == [small.id, mid.id] and first.next_cursor
    second = ledger.query_invoices(InvoiceQuery(sort="amount", limit=2, cursor=first.next_cursor), today)
    assert [i.id for i in second.items] == [big.id] and second.next_cursor is None
    with pytest.raises(BadRequest):
        ledger.query_invoices(InvoiceQuery(sort="amount", cursor="not-a-cursor"), today)


def test_payment_filters_and_sorts(ledger, services):
    clock, customers, invoices, payments = services
    c, _ = customers.create(CUSTOMER_INPUT, ALICE)
    p1, _ = payments.record({"customer_id": c.id, "amount": "50.00", "method": "cheque",
                             "received_on": "2026-03-01", "keep_excess_as_credit": True}, ALICE)
    p2, _ = payments.record({"customer_id": c.id, "amount": "500.00", "method": "bank_transfer",
                             "received_on": "2026-03-05", "keep_excess_as_credit": True}, ALICE)
    p3, _ = payments.record({"customer_id": c.id, "amount": "5.00", "method": "bank_transfer",
                             "received_on": "2026-02-01", "keep_excess_as_credit": True}, ALICE)

    def ids(**kw):
        return [p.id for p in ledger.query_payments(PaymentQuery(**kw)).items]

    assert ids() == [p2.id, p1.id, p3.id]
    assert ids(sort="received_on") == [p3.id, p1.id, p2.id]
    assert ids(method="bank_transfer") == [p2.id, p3.id]
    assert ids(amount_min=1000, amount_max=10000) == [p1.id]
    assert ids(sort="-amount") == [p2.id, p1.id, p3.id]
    assert ids(customer_id=c.id, sort="amount", received_from=date(2026, 3, 1)) == [p1.id, p2.id]
    assert ids(unapplied=True, method="cheque") == [p1.id]


def test_a_sort_over_too_many_items_is_refused_not_truncated(ledger, monkeypatch):
    from chalicelib.adapters.dynamodb import ledger as dynamo_ledger
    from chalicelib.services import ports

    monkeypatch.setattr(ports, "SORT_READ_CAP", 2)
    monkeypatch.setattr(dynamo_ledger, "SORT_READ_CAP", 2)
    from chalicelib.domain.payment import Payment
    from chalicelib.domain.money import Money

    uow = UnitOfWork(actor=ALICE, now=NOW)
    for n in range(150):
        uow.create(Payment(id=f"pay_{n:04d}", customer_id="cus_x", amount=Money(100 + n, "EUR"), method="cheque",
                           received_on=date(2026, 3, 1), created_at=NOW, updated_at=NOW))
        if len(uow) == 50:
            ledger.commit(uow)
            uow = UnitOfWork(actor=ALICE, now=NOW)
    ledger.commit(uow)
    with pytest.raises(ValidationError) as err:
        ledger.query_payments(PaymentQuery(sort="amount"))
    assert err.value.code == "sort_too_broad" and err.value.field == "sort"
