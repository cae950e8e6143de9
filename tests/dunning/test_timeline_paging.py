"""Timeline paging: ``before`` bounds each source's query, so paging back shows every payment, dispute
and note exactly once, in order (on the fake ledger and on DynamoDB)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.domain.collections import Dispute
from chalicelib.services.ports import UnitOfWork
from chalicelib.services.timeline import TimelineService
from tests.dunning.builders import ALICE, world
from tests.fakes import FakeLedger


@pytest.fixture(params=["fake", "dynamodb"])
def ledger(request):
    if request.param == "fake":
        return FakeLedger()
    request.getfixturevalue("stack")
    from chalicelib import wiring

    return wiring.ledger()


def _dispute(w: Any, invoice: Any, n: int, when: datetime) -> str:
    w.clock.set(when)
    uow = UnitOfWork(actor=ALICE, now=when)
    d = uow.create(Dispute.open(f"dsp_{n:02d}", invoice_id=invoice.id, customer_id=invoice.customer_id,
                                reason="price", message=f"dispute {n}", source="portal", now=when))
    w.ledger.commit(uow)
    return d.id


def _id(result: Any) -> str:
    payment = result[0] if isinstance(result, tuple) else result
    return payment.id


def _pay(w: Any, invoice_id: str, body: dict[str, Any]) -> str:
    return _id(w.payments.record_for_invoice(invoice_id, body, ALICE))


def _all_pages(fetch: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    before = None
    for _ in range(50):
        body = fetch(before)
        out += body["data"]
        if not body["has_more"]:
            return out
        before = datetime.fromisoformat(body["next_before"])
    raise AssertionError("paging did not end")


def test_paging_back_shows_every_payment_dispute_and_note_once_in_order(ledger) -> None:
    w = world(ledger)
    cid = w.customer("C", "c@c.example")
    inv = w.invoice(cid, date(2026, 1, 5))
    payments = [_id(w.pay(inv, date(2026, 1, d), "100.00")) for d in (10, 11, 12, 13, 14)]
    disputes = [_dispute(w, inv, n, datetime(2026, 1, 15 + n, 9, tzinfo=timezone.utc)) for n in range(4)]
    # a cheque received on 8 January, recorded on the 20th: it sits on its received day
    w.on(date(2026, 1, 20), 11)
    late = _pay(w, inv.id, {"method": "cheque", "received_on": "2026-01-08", "amount": "50.00"})
    timeline = TimelineService(w.ledger, w.clock)
    for day in (21, 22):
        w.on(date(2026, 1, day), 9)
        timeline.add_note(cid, {"text": f"note of the {day}th"}, ALICE)

    everything = timeline.customer(cid, limit=500)
    assert everything["has_more"] is False
    paged = _all_pages(lambda before: timeline.customer(cid, limit=2, before=before))
    ids = [e["id"] for e in paged]
    assert len(ids) == len(set(ids))                                    # nothing twice
    assert ids == [e["id"] for e in everything["data"]]                 # nothing missing, same order
    assert {e["id"] for e in paged if e["kind"] == "payment"} == {*payments, late}
    assert {e["id"] for e in paged if e["kind"] == "dispute"} == set(disputes)
    ats = [e["at"] for e in paged]
    assert ats == sorted(ats, reverse=True)
    cheque = next(e for e in paged if e["id"] == late)
    assert cheque["at"] == "2026-01-08T23:59:59.999999+00:00"
    assert cheque["data"]["recorded_at"].startswith("2026-01-20T")

    # the invoice timeline pages the same way
    inv_paged = _all_pages(lambda before: timeline.invoice(inv.id, limit=3, before=before))
    full = timeline.invoice(inv.id, limit=500)["data"]
    assert [e["id"] for e in inv_paged] == [e["id"] for e in full]
    assert {e["id"] for e in inv_paged if e["kind"] == "payment"} == {*payments, late}
    assert {e["id"] for e in inv_paged if e["kind"] == "dispute"} == set(disputes)


def test_the_invoice_timeline_finds_its_payment_behind_hundreds_of_newer_ones() -> None:
    w = world()
    cid = w.customer("C", "c@c.example")
    old = w.invoice(cid, date(2026, 1, 5))
    paid = _id(w.pay(old, date(2026, 1, 6), "10.00"))
    big = w.invoice(cid, date(2026, 1, 6), amount="1000.00")
    for n in range(205):
        day = date(2026, 1, 7) + timedelta(days=n % 60)
        w.on(day, 11)
        _pay(w, big.id, {"method": "bank_transfer", "amount": "1.00", "received_on": day.isoformat()})
    w.on(date(2026, 3, 20))
    entries = TimelineService(w.ledger, w.clock).invoice(old.id)["data"]
    assert [e["id"] for e in entries if e["kind"] == "payment"] == [paid]
