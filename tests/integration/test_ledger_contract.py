"""One contract, two ledgers: the in-memory fake and DynamoDB (moto server).

If the fake drifts from the real store, unit tests would lie: this suite keeps
them honest.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import pytest

from chalicelib.domain.auth import CLERK, Actor
from chalicelib.domain.errors import BadRequest, NotFound
from chalicelib.services.customers import CustomerService
from chalicelib.services.invoices import InvoiceService
from chalicelib.services.payments import PaymentService
from chalicelib.services.ports import CommitConflict, FixedClock, InvoiceQuery, PaymentQuery, UnitOfWork
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


def test_round_trip_of_every_field(ledger, services):
    clock, customers, invoices, _ = services
    c, _ = customers.create({**CUSTOMER_INPUT, "credit_limit": "1234.56"}, ALICE)
    assert ledger.get_customer(c.id) == c
    draft, _ = invoices.create_draft({"customer_id": c.id, "note": "Merci", "purchase_order": "PO-9",
                                      "lines": [line(quantity="1.123456", unit_price="9.9999",
                                                     period_start="2026-02-01", period_end="2026-02-28"),
                                                line(vat_rate="0", vat_category="E",
                                                     exemption_reason="Art. 261 CGI")],
                                      "allowances_charges": [{"type": "allowance", "amount": "1.00",
                                                              "reason": "Remise", "vat_rate": "20"}]}, ALICE)
    issued = invoices.issue(draft.id, ALICE)
    assert ledger.get_invoice(issued.id) == issued
    assert ledger.get_invoices([issued.id, "inv_missing"]) == {issued.id: issued}


def test_missing_things_raise_not_found(ledger):
    with pytest.raises(NotFound):
        ledger.get_invoice("inv_nope")
    with pytest.raises(NotFound):
        ledger.get_customer("cus_nope")
    assert ledger.get_counter("F#1999") == 0
    assert ledger.get_api_key("0" * 64) is None


def test_commit_is_all_or_nothing(ledger, services):
    _, customers, _, _ = services
    c, _ = customers.create(CUSTOMER_INPUT, ALICE)
    uow = UnitOfWork(actor=ALICE, now=NOW)
    uow.save(c)                               # fine
    uow.advance_counter("X#2026", expected=5, value=6)  # wrong: counter is 0
    with pytest.raises(CommitConflict):
        ledger.commit(uow)
    assert ledger.get_customer(c.id).version == c.version  # nothing written
    stale = UnitOfWork(actor=ALICE, now=NOW)
    stale.save(c)
    ledger.commit(stale)
    again = UnitOfWork(actor=ALICE, now=NOW)
    again.save(c)  # c is now one version behind
    with pytest.raises(CommitConflict) as err:
        ledger.commit(again)
    assert not err.value.idempotency


def test_query_orders_filters_and_pages(ledger, services):
    clock, customers, invoices, payments = services
    c, _ = customers.create(CUSTOMER_INPUT, ALICE)
    ids = []
    for days in range(5):
        clock.set(NOW + timedelta(days=days))
        draft, _ = invoices.create_draft({"customer_id": c.id, "lines": [line()]}, ALICE)
        ids.append(invoices.issue(draft.id, ALICE).id)
    today = date(2026, 4, 30)
    page1 = ledger.query_invoices(InvoiceQuery(status="open", limit=2), today)
    page2 = ledger.query_invoices(InvoiceQuery(status="open", limit=2, cursor=page1.next_cursor), today)
    page3 = ledger.query_invoices(InvoiceQuery(status="open", limit=2, cursor=page2.next_cursor), today)
    assert [i.id for i in page1.items + page2.items + page3.items] == ids  # by due date
    assert page3.next_cursor is None
    due = ledger.query_invoices(InvoiceQuery(due_after=date(2026, 4, 10), due_before=date(2026, 4, 13)), today)
    assert [i.id for i in due.items] == ids[2:4]
    newest = ledger.query_invoices(InvoiceQuery(customer_id=c.id, limit=2), today)
    assert [i.id for i in newest.items] == [ids[4], ids[3]]
    clock.set(NOW + timedelta(days=5))
    payments.record({"customer_id": c.id, "amount": "120.00", "method": "cheque", "received_on": "2026-03-12",
                     "allocations": [{"invoice_id": ids[0], "amount": "120.00"}]}, ALICE)
    paid = ledger.query_invoices(InvoiceQuery(status="paid"), today)
    assert [i.id for i in paid.items] == [ids[0]]
    assert [i.id for i in ledger.query_invoices(InvoiceQuery(status="open"), today).items] == ids[1:]
    assert len(ledger.query_payments(PaymentQuery(customer_id=c.id)).items) == 1
    assert ledger.query_payments(PaymentQuery(unapplied=True)).items == []
    with pytest.raises(BadRequest):
        ledger.query_invoices(InvoiceQuery(status="open", cursor="garbage!"), today)


def test_fifty_concurrent_issues_get_fifty_consecutive_numbers(ledger, services):
    # Given 50 drafts
    _, customers, invoices, _ = services
    c, _ = customers.create(CUSTOMER_INPUT, ALICE)
    drafts = [invoices.create_draft({"customer_id": c.id, "lines": [line()]}, ALICE)[0].id for _ in range(50)]
    # When they are all issued at the same time
    barrier = threading.Barrier(50)
    numbers: list[str] = []
    errors: list[BaseException] = []

    def issue(invoice_id: str) -> None:
        barrier.wait()
        try:
            numbers.append(invoices.issue(invoice_id, ALICE).number)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=issue, args=(d,)) for d in drafts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then the numbers are distinct and consecutive, with no gap
    assert errors == []
    assert sorted(numbers) == [f"F2026-{n:06d}" for n in range(1, 51)]
    assert ledger.get_counter("F#2026") == 50


def test_collections_records_by_customer_and_by_queue(ledger, services):
    from chalicelib.domain.collections import Installment, PaymentPlan, Promise, Task
    from chalicelib.domain.money import Money

    clock, customers, _, _ = services
    c, _ = customers.create(CUSTOMER_INPUT, ALICE)
    uow = UnitOfWork(actor=ALICE, now=NOW)
    for n, day in enumerate((20, 5, 12)):
        uow.create(Promise(id=f"prm_{n}", customer_id=c.id, invoice_ids=("inv_x",), amount=Money(1000, "EUR"),
                           promised_on=date(2026, 4, day), source="api", created_by="alice", created_at=NOW,
                           updated_at=NOW, status="active" if n else "broken"))
        uow.create(Task(id=f"tsk_{n}", kind="call", customer_id=c.id, title="Call", due_on=date(2026, 4, day),
                        created_at=NOW, updated_at=NOW, status="open" if n else "done"))
    uow.create(PaymentPlan(id="pln_1", customer_id=c.id, invoice_ids=("inv_x",), created_by="alice", created_at=NOW,
                           updated_at=NOW, installments=(Installment(date(2026, 5, 1), Money(500, "EUR")),
                                                         Installment(date(2026, 4, 1), Money(500, "EUR")))))
    ledger.commit(uow)
    active = ledger.list_promises(status="active").items
    assert [p.id for p in active] == ["prm_1", "prm_2"]  # by promised date, broken one left out
    assert [p.id for p in ledger.list_promises(due_before=date(2026, 4, 10)).items] == ["prm_1"]
    assert {p.id for p in ledger.list_promises(customer_id=c.id).items} == {"prm_0", "prm_1", "prm_2"}
    assert [t.id for t in ledger.list_tasks().items] == ["tsk_1", "tsk_2"]
    assert [t.id for t in ledger.list_tasks(customer_id=c.id, status="done").items] == ["tsk_0"]
    assert [p.id for p in ledger.list_plans(due_before=date(2026, 4, 2)).items] == ["pln_1"]  # next due 1 April
    with pytest.raises(Exception):
        ledger.list_tasks(status="done")
