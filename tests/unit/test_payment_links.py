"""An invoice's Stripe payment link is for one amount: whatever path pays the invoice or changes its
amount due (manual payment, bank cash application, write-off, refund, chargeback, credit note),
the link is deactivated through the outbox and forgotten, so the old URL cannot be paid twice."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from chalicelib.domain.auth import Actor
from chalicelib.services.outbox import OutboxDrain
from chalicelib.services.pay import PayService, deactivate_link_handler
from chalicelib.services.ports import DEACTIVATE_LINK_TOPIC, ProviderLink, UnitOfWork
from chalicelib.services.provider_events import ProviderEventService
from tests.unit.test_provider_events import World

SYSTEM = Actor.system("test")


class LinkGateway:
    """The two calls the Pay button and the outbox make."""

    def __init__(self) -> None:
        self.created: list[int] = []
        self.deactivated: list[str] = []

    def create_payment_link(self, *, invoice: Any, amount: Any, description: str, metadata: dict,
                            idempotency_key: str, return_url: str | None = None) -> ProviderLink:
        self.created.append(amount.amount)
        n = len(self.created)
        return ProviderLink(id=f"plink_{n}", url=f"https://pay.example/plink_{n}")

    def deactivate_payment_link(self, link_id: str) -> None:
        self.deactivated.append(link_id)


def with_link(ledger, invoice_id: str, link_id: str = "plink_old") -> None:
    """The invoice as the Pay button leaves it: a link for its full amount due."""
    current = ledger.get_invoice(invoice_id)
    uow = UnitOfWork(actor=SYSTEM, now=current.updated_at)
    uow.save_invoice(current, replace(current, payment_link={
        "id": link_id, "url": f"https://pay.example/{link_id}", "amount": current.amount_due.amount,
        "currency": current.currency}))
    ledger.commit(uow)


def deactivations(ledger) -> list[str]:
    out: list[str] = []
    for entry in ledger.outbox.values():
        message = entry["message"]
        if message.topic == DEACTIVATE_LINK_TOPIC:
            out.extend(message.payload.get("link_ids") or [message.payload["link_id"]])
    return out


@pytest.fixture
def world() -> World:
    return World()


def test_a_manual_payment_in_full_deactivates_the_link(world):
    c = world.customer()
    inv = world.issued(c.id)
    with_link(world.ledger, inv.id)
    world.payments.record_for_invoice(inv.id, {"method": "bank_transfer", "received_on": "2026-03-10"}, SYSTEM)
    paid = world.invoice(inv.id)
    assert paid.status == "paid" and paid.payment_link is None
    assert deactivations(world.ledger) == ["plink_old"]
    # and the outbox really asks Stripe
    gateway = LinkGateway()
    OutboxDrain(world.ledger, world.clock, {DEACTIVATE_LINK_TOPIC: deactivate_link_handler(lambda: gateway)}).run()
    assert gateway.deactivated == ["plink_old"] and deactivations(world.ledger) == []


def test_a_partial_payment_replaces_the_link_on_the_next_click(world):
    # Given a link for 120.00, then 50.00 paid by transfer
    c = world.customer()
    inv = world.issued(c.id)
    with_link(world.ledger, inv.id)
    world.payments.record_for_invoice(inv.id, {"method": "cheque", "amount": "50.00",
                                               "received_on": "2026-03-10"}, SYSTEM)
    # Then the 120.00 link is retired, and the Pay button creates one for what is left
    assert deactivations(world.ledger) == ["plink_old"] and world.invoice(inv.id).payment_link is None
    gateway = LinkGateway()
    pay = PayService(world.ledger, world.clock, world.settings, lambda: gateway, "https://ar.example")
    assert pay.checkout_url(world.invoice(inv.id).pay_token) == "https://pay.example/plink_1"
    assert gateway.created == [world.invoice(inv.id).amount_due.amount] == [7000]


def test_an_unrelated_change_keeps_the_link(world):
    c = world.customer()
    inv = world.issued(c.id)
    with_link(world.ledger, inv.id)
    current = world.invoice(inv.id)
    uow = UnitOfWork(actor=SYSTEM, now=world.clock.now())
    uow.save_invoice(current, replace(current, dispute_status="open"))
    world.ledger.commit(uow)
    assert world.invoice(inv.id).payment_link["id"] == "plink_old" and deactivations(world.ledger) == []


def test_a_sepa_debit_in_flight_deactivates_the_link(world):
    # the debit collects the amount due: the customer must not pay the old link on top of it
    c = world.customer()
    inv = world.issued(c.id)
    with_link(world.ledger, inv.id)
    current = world.invoice(inv.id)
    uow = UnitOfWork(actor=SYSTEM, now=world.clock.now())
    uow.save_invoice(current, replace(current, collection_status="processing"))
    world.ledger.commit(uow)
    assert world.invoice(inv.id).payment_link is None and deactivations(world.ledger) == ["plink_old"]


def test_bank_cash_application_deactivates_the_link():
    from tests.cashapp.test_bank_service import credit, statement
    from tests.cashapp.world import World as CashWorld
    from chalicelib.domain import creditor_reference

    w = CashWorld()
    c = w.customer()
    inv = w.issued(c.id, "1200.00", on=date(2026, 3, 2))
    with_link(w.ledger, inv.id)
    rf = creditor_reference.for_invoice(inv.number, inv.id)
    w.import_statement(statement(credit("1440.00", debtor="BOULANGERIE MARTIN", strd_ref=rf)))
    paid = w.invoice(inv.id)
    assert paid.status == "paid" and paid.payment_link is None
    assert deactivations(w.ledger) == ["plink_old"]


def test_a_write_off_deactivates_the_link():
    from chalicelib.services.penalty import PenaltyService
    from chalicelib.services.timeline import TimelineService
    from tests.dunning.builders import ALICE, world as dunning_world

    w = dunning_world()
    cid = w.customer("Faillite SARL", "ap@faillite.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    with_link(w.ledger, inv.id)
    w.on(date(2026, 6, 1))
    PenaltyService(w.ledger, w.clock, w.settings, w.dunning.config, lambda: w.invoices, lambda: w.store,
                   lambda: TimelineService(w.ledger, w.clock)).write_off(inv.id, "Liquidation judiciaire", ALICE)
    after = w.ledger.get_invoice(inv.id)
    assert after.status == "uncollectible" and after.payment_link is None
    assert deactivations(w.ledger) == ["plink_old"]


def test_a_refund_or_a_chargeback_that_reopens_an_invoice_deactivates_its_link(world):
    # Given two invoices paid by card, each later given a link (say, re-sent before the payment landed)
    c = world.customer()
    events: ProviderEventService = world.events
    for n, kind in ((1, "refund"), (2, "chargeback")):
        inv = world.issued(c.id)
        meta = {"invoice_id": inv.id, "customer_id": c.id}
        events.handle(world.event("payment_intent.succeeded", world.succeeded(f"pi_l{n}", inv.amount_due.amount,
                                                                              meta)))
        # a link left from before this fix, on a paid invoice: a reopening must not revive it
        current = world.invoice(inv.id)
        uow = UnitOfWork(actor=SYSTEM, now=world.clock.now())
        uow.save_invoice(current, replace(current, payment_link={"id": f"plink_{kind}", "url": "u",
                                                                 "amount": 12000, "currency": "EUR"}))
        world.ledger.commit(uow)
        if kind == "refund":
            events.handle(world.event("charge.refunded", world.refunded("pi_l1", 2000, [("re_l1", 2000, {})])))
        else:
            events.handle(world.event("charge.dispute.created", world.dispute("dp_l2", "pi_l2", 12000)))
        reopened = world.invoice(inv.id)
        assert reopened.status == "open" and reopened.payment_link is None
    assert sorted(deactivations(world.ledger)) == ["plink_chargeback", "plink_refund"]


def test_a_webhook_payment_settling_several_linked_invoices_sends_one_message(world):
    c = world.customer()
    a, b = world.issued(c.id), world.issued(c.id)
    with_link(world.ledger, a.id, "plink_a")
    with_link(world.ledger, b.id, "plink_b")
    uow = UnitOfWork(actor=SYSTEM, now=world.clock.now())
    uow.put_ref("batch", "bat_1", c.id, {"invoice_ids": [a.id, b.id]})
    world.ledger.commit(uow)
    world.events.handle(world.event("payment_intent.succeeded", world.succeeded(
        "pi_batch", a.amount_due.amount + b.amount_due.amount, {"batch_id": "bat_1", "customer_id": c.id})))
    messages = [e["message"] for e in world.ledger.outbox.values() if e["message"].topic == DEACTIVATE_LINK_TOPIC]
    assert len(messages) == 1 and sorted(messages[0].payload["link_ids"]) == ["plink_a", "plink_b"]


def test_a_discounted_link_is_retired_when_the_escompte_window_closes(world):
    # Given an invoice of 120.00 issued on 2026-03-10, 2 % off within 10 days: the Pay button makes a
    # link for 117.60
    from datetime import datetime, timezone

    c = world.customer()
    inv = world.issued(c.id)
    gateway = LinkGateway()
    pay = PayService(world.ledger, world.clock, world.settings, lambda: gateway, "https://ar.example")
    assert pay.checkout_url(world.invoice(inv.id).pay_token) == "https://pay.example/plink_1"
    assert gateway.created == [11760]
    # Then its deactivation waits in the outbox for the seller's midnight after the last discount day
    (delayed,) = [e["message"] for e in world.ledger.outbox.values()
                  if e["message"].topic == DEACTIVATE_LINK_TOPIC]
    assert delayed.payload == {"link_ids": ["plink_1"]}
    assert delayed.not_before == datetime(2026, 3, 20, 23, 0, tzinfo=timezone.utc)  # 21 March 00:00 Paris
    drain = OutboxDrain(world.ledger, world.clock, {DEACTIVATE_LINK_TOPIC: deactivate_link_handler(lambda: gateway)})
    drain.run()
    assert gateway.deactivated == []                      # still inside the window: the link stays payable
    world.clock.set(datetime(2026, 3, 20, 23, 1, tzinfo=timezone.utc))
    drain.run()
    assert gateway.deactivated == ["plink_1"]
    # and the next click pays the full amount through a new link
    assert pay.checkout_url(world.invoice(inv.id).pay_token) == "https://pay.example/plink_2"
    assert gateway.created == [11760, 12000]
