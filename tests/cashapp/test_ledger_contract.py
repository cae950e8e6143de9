"""The cash-application ledger methods, one contract for the in-memory fake and DynamoDB (moto)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest

from chalicelib.domain.bank_transaction import (ALLOCATED, KIND_CREDIT, KIND_PAYOUT, RECONCILED, UNMATCHED,
                                                BankTransaction, ImportRecord, transaction_id)
from chalicelib.domain.errors import NotFound
from chalicelib.domain.money import Money
from chalicelib.services.ports import CommitConflict, UnitOfWork
from tests.cashapp.world import CLERK_ACTOR, World
from tests.fakes import FakeLedger

NOW = datetime(2026, 3, 20, 9, tzinfo=timezone.utc)


@pytest.fixture(params=["fake", "dynamodb"])
def ledger(request):
    if request.param == "fake":
        return FakeLedger()
    request.getfixturevalue("stack")
    from chalicelib import wiring

    return wiring.ledger()


def txn(n: int, *, status: str = UNMATCHED, kind: str = KIND_CREDIT, day: int = 1, customer: str | None = None):
    key = f"FR76:{n}:0:{n * 100}EUR"
    return BankTransaction(id=transaction_id(key), key=key, kind=kind, status=status, amount=Money(n * 100, "EUR"),
                           booking_date=date(2026, 3, day), account_iban="FR76", imported_at=NOW, updated_at=NOW,
                           customer_id=customer, reason="r")


def commit(ledger, *entities):
    uow = UnitOfWork(actor=CLERK_ACTOR, now=NOW)
    out = [uow.create(e) for e in entities]
    ledger.commit(uow)
    return out


def test_bank_transactions_round_trip_and_are_created_once(ledger):
    [t] = commit(ledger, replace(txn(1), payout={"payout_id": "po_1", "fees": 12, "balance_transactions": []},
                                 allocations=({"invoice_id": "inv_1", "invoice_number": "F1", "amount": "1.00"},)))
    assert ledger.get_bank_transaction(t.id) == t
    assert ledger.get_bank_transactions([t.id, "btx_missing"]) == {t.id: t}
    with pytest.raises(CommitConflict):
        commit(ledger, txn(1))
    with pytest.raises(NotFound):
        ledger.get_bank_transaction("btx_missing")


def test_queues_customers_dates_and_payouts(ledger):
    a, b, c = commit(ledger, txn(1, day=3), txn(2, day=1), txn(3, day=2, status=ALLOCATED, customer="cus_1"))
    d, p = commit(ledger, txn(4, day=4, customer="cus_1"), txn(5, day=2, kind=KIND_PAYOUT, status=RECONCILED))
    queue = ledger.list_bank_transactions(status=UNMATCHED)
    assert [t.id for t in queue.items] == [b.id, a.id, d.id]  # oldest first
    by_customer = ledger.list_bank_transactions(customer_id="cus_1")
    assert [t.id for t in by_customer.items] == [d.id, c.id]  # newest first
    by_date = ledger.list_bank_transactions(booked_from=date(2026, 3, 2), booked_to=date(2026, 3, 3))
    assert [t.id for t in by_date.items] == [a.id, c.id]  # payouts have their own partition
    assert [t.id for t in ledger.list_bank_transactions(status=ALLOCATED).items] == [c.id]
    assert [t.id for t in ledger.list_bank_transactions(status=RECONCILED).items] == [p.id]
    assert [t.id for t in ledger.list_payouts(date(2026, 3, 1), date(2026, 3, 31)).items] == [p.id]
    assert ledger.list_payouts(date(2026, 3, 3), date(2026, 3, 31)).items == []
    # leaving the queue: the sparse index drops it
    uow = UnitOfWork(actor=CLERK_ACTOR, now=NOW)
    uow.save(replace(b, status=ALLOCATED, customer_id="cus_2"))
    ledger.commit(uow)
    assert [t.id for t in ledger.list_bank_transactions(status=UNMATCHED).items] == [a.id, d.id]
    first = ledger.list_bank_transactions(status=UNMATCHED, limit=1)
    rest = ledger.list_bank_transactions(status=UNMATCHED, limit=1, cursor=first.next_cursor)
    assert [t.id for t in first.items + rest.items] == [a.id, d.id] and rest.next_cursor is None


def test_refs_customers_names_and_invoices_by_creation(ledger):
    world = World(ledger=ledger)
    martin = world.customer("Boulangerie Martin SARL")
    world.customer("Boulangerie Durand")
    dupont = world.customer("Transports Dupont SAS")
    assert [c.name for c in ledger.find_customers_by_name("boulangerie")] == ["Boulangerie Durand",
                                                                              "Boulangerie Martin SARL"]
    assert [c.id for c in ledger.find_customers_by_name("TRANSPORTS dup")] == [dupont.id]
    assert ledger.find_customers_by_name("  ") == []
    assert len(ledger.find_customers_by_name("b", limit=1)) == 1
    assert ledger.get_customers([martin.id, "cus_missing"]) == {martin.id: martin}
    inv = world.issued(martin.id, "10.00")
    refs = ledger.get_refs("number", ["F2026000001", "F2026000999"])
    assert list(refs) == ["F2026000001"] and refs["F2026000001"].target == inv.id
    assert refs["F2026000001"].data["customer_id"] == martin.id
    created = ledger.list_invoices_created(inv.created_at - timedelta(seconds=1), inv.created_at + timedelta(seconds=1))
    assert [i.id for i in created.items] == [inv.id]
    assert ledger.list_invoices_created(inv.created_at + timedelta(seconds=1), inv.created_at + timedelta(days=1)
                                        ).items == []


def test_import_records(ledger):
    record = ImportRecord(id="imp_1", status="in_progress", created_at=NOW, updated_at=NOW, created_by="clara",
                          sources=("a.csv",), invoices_planned=2, totals={"EUR": "12.00"})
    [saved] = commit(ledger, record)
    assert ledger.get_import("imp_1") == saved and ledger.get_import("imp_2") is None
