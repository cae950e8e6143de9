"""Provider (Stripe) events on the in-memory ledger: out-of-order delivery, unsupported currencies,
payment-link retirement, multi-invoice refunds. Given / When / Then, no sockets."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain.auth import CLERK, Actor
from chalicelib.services.customers import CustomerService
from chalicelib.services.invoices import InvoiceHooks, InvoiceService
from chalicelib.services.pay import issue_hook
from chalicelib.services.payments import PaymentService
from chalicelib.services.ports import FixedClock
from chalicelib.services.provider_events import EventNotReady, ProviderEventService
from chalicelib.services.settings import SettingsService
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line
from tests.fakes import FakeLedger

ALICE = Actor("alice", CLERK)
NOW = datetime(2026, 3, 10, 8, 0, tzinfo=timezone.utc)


class World:
    def __init__(self) -> None:
        self.ledger = FakeLedger()
        self.clock = FixedClock(NOW)
        self.settings = SettingsService(self.ledger, self.clock)
        self.settings.put_seller(SELLER_INPUT, Actor.system("test"))
        self.customers = CustomerService(self.ledger, self.clock, self.settings)
        self.invoices = InvoiceService(self.ledger, self.clock, self.settings, InvoiceHooks(on_issue=[issue_hook]))
        self.payments = PaymentService(self.ledger, self.clock, self.settings)
        self.events = ProviderEventService(self.ledger, self.clock, self.settings, lambda: None)  # type: ignore
        self._n = 0

    def customer(self):
        return self.customers.create(dict(CUSTOMER_INPUT), ALICE)[0]

    def issued(self, customer_id: str, *lines):
        draft, _ = self.invoices.create_draft({"customer_id": customer_id, "lines": list(lines) or [line()]}, ALICE)
        return self.invoices.issue(draft.id, ALICE)

    def invoice(self, invoice_id: str):
        return self.ledger.get_invoice(invoice_id)

    def event(self, type_: str, obj: dict, *, created: datetime | None = None, event_id: str | None = None) -> dict:
        self._n += 1
        return {"id": event_id or f"evt_{self._n}", "object": "event", "type": type_,
                "created": int((created or self.clock.now()).timestamp()), "data": {"object": obj}}

    @staticmethod
    def succeeded(pi: str, amount: int, metadata: dict, currency: str = "eur") -> dict:
        return {"id": pi, "object": "payment_intent", "status": "succeeded", "amount": amount,
                "amount_received": amount, "currency": currency, "metadata": metadata,
                "latest_charge": "ch_" + pi[3:], "payment_method_types": ["card"]}

    @staticmethod
    def refunded(pi: str, total: int, refunds: list[tuple[str, int, dict]], currency: str = "eur") -> dict:
        return {"id": "ch_" + pi[3:], "object": "charge", "payment_intent": pi, "amount_refunded": total,
                "currency": currency, "refunds": {"data": [{"id": r, "amount": a, "metadata": m}
                                                           for r, a, m in refunds]}}

    @staticmethod
    def dispute(dp: str, pi: str, amount: int, status: str = "needs_response") -> dict:
        return {"id": dp, "object": "dispute", "payment_intent": pi, "amount": amount, "currency": "eur",
                "reason": "fraudulent", "status": status}

    def tasks(self, kind: str):
        return [t for t in self.ledger._all("task") if t.kind == kind]


@pytest.fixture
def world() -> World:
    return World()


def _paid(world: World, amount: int | None = None):
    c = world.customer()
    inv = world.issued(c.id)
    meta = {"invoice_id": inv.id, "customer_id": c.id}
    return c, inv, meta, amount or inv.amount_due.amount


# -- 1. out-of-order events are retried, never lost ------------------------------------------------

def test_refund_before_its_payment_is_deferred_then_applied_exactly_once(world):
    # Given a refund event delivered before the payment it refunds
    c, inv, meta, amount = _paid(world)
    refund = world.event("charge.refunded", world.refunded("pi_1", 2000, [("re_1", 2000, {"invoice_id": inv.id})]))
    commits = world.ledger.commits
    # When it is delivered, it is refused (the provider retries it) and nothing is written
    with pytest.raises(EventNotReady) as err:
        world.events.handle(refund)
    assert err.value.code == "event_out_of_order"
    assert world.ledger.commits == commits and world.ledger.get_ref("event", refund["id"]) is None
    # When the payment arrives, then the refund is delivered again (and again)
    assert world.events.handle(world.event("payment_intent.succeeded", world.succeeded("pi_1", amount, meta))) \
        == "payment_recorded"
    assert world.invoice(inv.id).status == "paid"
    assert world.events.handle(refund) == "refund_recorded"
    assert world.events.handle(refund) == "duplicate"
    # Then the refund is applied once
    reopened = world.invoice(inv.id)
    assert reopened.status == "open" and reopened.amount_due.amount == 2000
    assert world.ledger.get_payment("pay_pi_1").refunded == 2000


def test_dispute_closed_before_created_is_deferred_then_applied_exactly_once(world):
    c, inv, meta, amount = _paid(world)
    world.events.handle(world.event("payment_intent.succeeded", world.succeeded("pi_2", amount, meta)))
    closed = world.event("charge.dispute.closed", world.dispute("dp_1", "pi_2", amount, status="won"))
    # Given the closing event first: refused, nothing written
    with pytest.raises(EventNotReady):
        world.events.handle(closed)
    assert world.ledger.get_ref("event", closed["id"]) is None
    # When the opening arrives, then the closing is retried
    assert world.events.handle(world.event("charge.dispute.created", world.dispute("dp_1", "pi_2", amount))) \
        == "chargeback_opened"
    assert world.invoice(inv.id).status == "open"
    assert world.events.handle(closed) == "chargeback_won"
    assert world.events.handle(closed) == "duplicate"
    won = world.invoice(inv.id)
    assert won.status == "paid" and won.chargeback_status == "won" and won.amount_due.amount == 0


def test_chargeback_before_its_payment_is_deferred(world):
    c, inv, meta, amount = _paid(world)
    created = world.event("charge.dispute.created", world.dispute("dp_2", "pi_3", amount))
    with pytest.raises(EventNotReady):
        world.events.handle(created)
    world.events.handle(world.event("payment_intent.succeeded", world.succeeded("pi_3", amount, meta)))
    assert world.events.handle(created) == "chargeback_opened"
    assert world.events.handle(created) == "duplicate"
    assert world.invoice(inv.id).amount_due.amount == amount


def test_an_event_that_never_finds_its_payment_becomes_a_finance_task_once(world):
    # Given a refund of a payment we never saw, still delivered after DEFER_FOR (a late retry or a resend)
    refund = world.event("charge.refunded", world.refunded("pi_ghost", 4500, [("re_9", 4500, {})]),
                         created=NOW - timedelta(days=3))
    # When delivered: recorded as a task for finance, with the provider's amount in minor units
    assert world.events.handle(refund) == "review_task_created"
    assert world.events.handle(refund) == "duplicate"
    [task] = world.tasks("provider_event_review")
    assert task.details["amount_minor"] == 4500 and task.details["currency"] == "EUR"
    assert task.details["payment_intent"] == "pi_ghost" and task.details["event_id"] == refund["id"]


SYSTEM_ACTOR = Actor.system("test")


# -- 4. money in a currency the ledger cannot book is recorded for a human, never refused ----------------

def test_a_payment_in_a_three_decimal_currency_becomes_a_finance_task_once(world):
    c, inv, meta, _ = _paid(world)
    # Given a SEPA-like flow reported in KWD (3 decimals): processing first, then succeeded twice
    processing = {**world.succeeded("pi_kwd", 12345, meta, currency="kwd"), "status": "processing"}
    assert world.events.handle(world.event("payment_intent.processing", processing)) == "unsupported_currency"
    succeeded = world.event("payment_intent.succeeded", world.succeeded("pi_kwd", 12345, meta, currency="kwd"))
    # When it succeeds: 200 (no exception), and a task keeps the provider's integer amount and currency
    assert world.events.handle(succeeded) == "unsupported_currency_recorded"
    assert world.events.handle(succeeded) == "duplicate"
    session = {"id": "cs_kwd", "object": "checkout.session", "mode": "payment", "payment_intent": "pi_kwd",
               "payment_status": "paid", "amount_total": 12345, "currency": "kwd", "metadata": meta}
    assert world.events.handle(world.event("checkout.session.completed", session)) == "noop"
    [task] = world.tasks("unsupported_payment")
    assert task.customer_id == c.id and task.invoice_ids == (inv.id,)
    assert (task.details["amount_minor"], task.details["currency"]) == (12345, "KWD")
    assert world.invoice(inv.id).status == "open"  # nothing applied to a EUR invoice
    assert world.ledger.get_ref("cash", "pi_kwd").target == task.id


def test_a_payment_in_an_unknown_currency_without_customer_is_kept_too(world):
    assert world.events.handle(world.event("payment_intent.succeeded", world.succeeded("pi_xts", 500, {},
                                                                                       currency="xts"))) \
        == "unsupported_currency_recorded"
    [task] = world.tasks("unsupported_payment")
    assert task.customer_id == "unidentified" and task.details["amount_minor"] == 500


def test_a_refund_in_an_unsupported_currency_is_a_task_at_once_not_retried_for_days(world):
    refund = world.event("charge.refunded", world.refunded("pi_kwd2", 1000, [("re_k", 1000, {})], currency="kwd"))
    assert world.events.handle(refund) == "review_task_created"
    [task] = world.tasks("provider_event_review")
    assert (task.details["amount_minor"], task.details["currency"]) == (1000, "KWD")


# -- 5. a refund reopens the invoice it was asked for ------------------------------------------------

def _batch(world: World):
    from chalicelib.services.ports import UnitOfWork

    c = world.customer()
    a, b = world.issued(c.id), world.issued(c.id)
    uow = UnitOfWork(actor=SYSTEM_ACTOR, now=world.clock.now())
    uow.put_ref("batch", "bat_r", c.id, {"invoice_ids": [a.id, b.id]})
    world.ledger.commit(uow)
    total = a.amount_due.amount + b.amount_due.amount
    world.events.handle(world.event("payment_intent.succeeded", world.succeeded(
        "pi_batch", total, {"batch_id": "bat_r", "customer_id": c.id})))
    assert world.invoice(a.id).status == world.invoice(b.id).status == "paid"
    return c, a, b


def test_a_refund_of_a_portal_batch_reopens_the_invoice_named_in_its_metadata(world):
    # Given one payment for A and B (A allocated first), and a refund asked from invoice A
    c, a, b = _batch(world)
    refund = world.refunded("pi_batch", 3000, [("re_a", 3000, {"invoice_id": a.id})])
    assert world.events.handle(world.event("charge.refunded", refund)) == "refund_recorded"
    # Then A reopens for the refunded amount; B stays paid
    assert world.invoice(a.id).status == "open" and world.invoice(a.id).amount_due.amount == 3000
    assert world.invoice(b.id).status == "paid"


def test_a_refund_without_an_invoice_still_comes_off_the_latest_allocation(world):
    c, a, b = _batch(world)
    world.events.handle(world.event("charge.refunded", world.refunded("pi_batch", 3000, [("re_x", 3000, {})])))
    assert world.invoice(b.id).status == "open" and world.invoice(a.id).status == "paid"


class RefundGateway:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def refund(self, **kw) -> str:
        self.calls.append(kw)
        return f"re_{len(self.calls)}"


def test_refund_asks_the_provider_on_a_payment_that_brought_that_much_to_the_invoice(world):
    from chalicelib.services.pay import PayService

    # Given invoice A paid by a portal batch with B, and invoice C paid with 30.00 then 90.00 by card
    c, a, b = _batch(world)
    inv = world.issued(c.id)
    meta = {"invoice_id": inv.id, "customer_id": c.id}
    world.events.handle(world.event("payment_intent.succeeded", world.succeeded("pi_small", 3000, meta)))
    world.events.handle(world.event("payment_intent.succeeded", world.succeeded("pi_big", 9000, meta)))
    gateway = RefundGateway()
    pay = PayService(world.ledger, world.clock, world.settings, lambda: gateway, "https://ar.example")
    # When 60.00 is refunded on C: only the 90.00 payment brought that much to C
    assert pay.refund(inv.id, "60.00", ALICE)["payment_id"] == "pay_pi_big"
    assert gateway.calls[-1]["payment_intent"] == "pi_big"
    assert gateway.calls[-1]["metadata"] == {"invoice_id": inv.id}
    # And on A, the batch payment is used and names A
    assert pay.refund(a.id, "10.00", ALICE)["payment_id"] == "pay_pi_batch"
