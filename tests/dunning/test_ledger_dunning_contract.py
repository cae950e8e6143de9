"""The dunning records and timeline entries behave the same in the fake and in DynamoDB (moto)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain.auth import Actor
from chalicelib.domain.dunning_record import SentEntry
from chalicelib.services.ports import CommitConflict, UnitOfWork
from tests.fakes import FakeLedger

NOW = datetime(2026, 3, 10, 8, 0, tzinfo=timezone.utc)
SYS = Actor.system("test")


@pytest.fixture(params=["fake", "dynamodb"])
def ledger(request):
    if request.param == "fake":
        return FakeLedger()
    request.getfixturevalue("stack")
    from chalicelib import wiring

    return wiring.ledger()


def proj(invoice_id: str, status: str = "open", amount: int = 1000) -> dict:
    return {"id": invoice_id, "customer_id": "c1", "number": f"F-{invoice_id}", "kind": "invoice", "status": status,
            "currency": "EUR", "amount_due": amount, "total": 1200, "issue_date": "2026-03-01",
            "due_date": "2026-03-31", "dispute_status": "none", "chargeback_status": "none",
            "collection_status": "none", "pay_token": "tok", "paid_at": None, "buyer_name": "B", "buyer_address": None}


def touch(ledger, invoice_id: str, **kw) -> None:
    uow = UnitOfWork(actor=SYS, now=NOW)
    uow.touch_dunning(invoice_id, kw.pop("customer_id", "c1"), **kw)
    ledger.commit(uow)


def test_touch_creates_then_updates_attributes_and_wakes(ledger) -> None:
    touch(ledger, "i1", invoice=proj("i1"), wake=True)
    r = ledger.get_dunning(["i1"], consistent=True)["i1"]
    assert r.invoice == proj("i1") and r.woken and r.version == 1 and r.active
    assert [x.invoice_id for x in ledger.dunning_due(NOW).items] == ["i1"]
    # the sweep writes its part on the version it read
    uow = UnitOfWork(actor=SYS, now=NOW)
    saved = uow.save(replace(r, woken=False, next_action_at=NOW + timedelta(days=2), customer={"settings": {}},
                             sent=(SentEntry("s1", "email", NOW, "m1", "tpl", "p1"),)))
    ledger.commit(uow)
    assert ledger.dunning_due(NOW).items == []
    assert [x.invoice_id for x in ledger.dunning_due(NOW + timedelta(days=3)).items] == ["i1"]
    # an invoice change touches the projection only: what the sweep wrote stays, the version moves on
    touch(ledger, "i1", invoice=proj("i1", amount=500), wake=True)
    r2 = ledger.get_dunning(["i1"], consistent=True)["i1"]
    assert r2.invoice["amount_due"] == 500 and r2.sent == saved.sent and r2.customer == {"settings": {}}
    assert r2.version == saved.version + 1 and r2.woken
    # so a sweep holding the older copy cannot write
    uow = UnitOfWork(actor=SYS, now=NOW)
    uow.save(replace(saved, woken=False))
    with pytest.raises(CommitConflict):
        ledger.commit(uow)


def test_due_index_orders_woken_first_then_by_time_and_drops_closed(ledger) -> None:
    for n, hours in enumerate((5, 1, 3)):
        touch(ledger, f"i{n}", invoice=proj(f"i{n}"))
        r = ledger.get_dunning([f"i{n}"], consistent=True)[f"i{n}"]
        uow = UnitOfWork(actor=SYS, now=NOW)
        uow.save(replace(r, next_action_at=NOW + timedelta(hours=hours)))
        ledger.commit(uow)
    touch(ledger, "i9", invoice=proj("i9"), wake=True)
    due = ledger.dunning_due(NOW + timedelta(hours=4)).items
    assert sorted(r.invoice_id for r in due) == ["i1", "i2", "i9"]
    page = ledger.dunning_due(NOW + timedelta(hours=6), limit=2)
    assert len(page.items) == 2 and page.next_cursor
    seen = list(page.items)
    while page.next_cursor:
        page = ledger.dunning_due(NOW + timedelta(hours=6), limit=2, cursor=page.next_cursor)
        seen += page.items
    assert sorted(r.invoice_id for r in seen) == ["i0", "i1", "i2", "i9"] and len(seen) == 4
    # a paid invoice leaves the active index, and the customer's active list
    touch(ledger, "i1", invoice=proj("i1", status="paid", amount=0), wake=True)
    assert sorted(r.invoice_id for r in ledger.dunning_active().items) == ["i0", "i2", "i9"]
    assert sorted(r.invoice_id for r in ledger.dunning_for_customer("c1").items) == ["i0", "i2", "i9"]
    assert len(ledger.dunning_for_customer("c1", active_only=False).items) == 4


def test_promises_touch_and_clear(ledger) -> None:
    touch(ledger, "i1", invoice=proj("i1"))
    entry = {"id": "p1", "amount": 1000, "currency": "EUR", "promised_date": "2026-03-20", "made_on": "2026-03-10",
             "source": "collector"}
    touch(ledger, "i1", promises=(entry,), wake=True)
    r = ledger.get_dunning(["i1"], consistent=True)["i1"]
    assert r.promises == (entry,) and r.promise_list()[0].amount.amount == 1000
    touch(ledger, "i1", promises=())
    assert ledger.get_dunning(["i1"], consistent=True)["i1"].promises == ()


def test_activity_is_listed_newest_first_per_customer(ledger) -> None:
    for n in range(3):
        uow = UnitOfWork(actor=SYS, now=NOW + timedelta(minutes=n))
        uow.activity("c1", "note", f"note {n}", invoice_ids=("i1",) if n else ())
        ledger.commit(uow)
    uow = UnitOfWork(actor=SYS, now=NOW)
    uow.activity("c2", "note", "other")
    ledger.commit(uow)
    items = ledger.list_activity("c1").items
    assert [a.summary for a in items] == ["note 2", "note 1", "note 0"]
    assert items[0].invoice_ids == ("i1",) and items[0].actor == "system:test"
    assert [a.summary for a in ledger.list_activity("c1", before=NOW + timedelta(minutes=1)).items] == ["note 0"]


def test_invoice_changes_keep_the_projection_in_the_same_transaction(ledger) -> None:
    from chalicelib.services.customers import CustomerService
    from chalicelib.services.invoices import InvoiceService
    from chalicelib.services.payments import PaymentService
    from chalicelib.services.ports import FixedClock
    from chalicelib.services.settings import SettingsService
    from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line

    clock = FixedClock(NOW)
    settings = SettingsService(ledger, clock)
    settings.put_seller(SELLER_INPUT, SYS)
    c, _ = CustomerService(ledger, clock, settings).create(CUSTOMER_INPUT, SYS)
    invoices = InvoiceService(ledger, clock, settings)
    draft, _ = invoices.create_draft({"customer_id": c.id, "lines": [line()]}, SYS)
    assert ledger.get_dunning([draft.id]) == {}   # drafts are never dunned
    issued = invoices.issue(draft.id, SYS)
    r = ledger.get_dunning([issued.id], consistent=True)[issued.id]
    assert r.invoice["number"] == issued.number and r.invoice["amount_due"] == 12000 and r.woken
    PaymentService(ledger, clock, settings).record_for_invoice(
        issued.id, {"method": "cheque", "received_on": "2026-03-10"}, SYS)
    r = ledger.get_dunning([issued.id], consistent=True)[issued.id]
    assert r.invoice["status"] == "paid" and r.invoice["amount_due"] == 0 and not r.active
