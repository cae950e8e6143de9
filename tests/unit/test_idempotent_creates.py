"""Idempotency-Key on the POST routes that used to ignore it: disputes, refunds, API keys.
A repeat of the same request answers what the first one did and changes nothing more; the same key
with another request is refused."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.domain.auth import ADMIN, CLERK, Actor
from chalicelib.domain.errors import Conflict, IdempotencyKeyReused
from chalicelib.services.access import AccessService
from chalicelib.services.common import IdempotencyRequest
from chalicelib.services.customers import CustomerService
from chalicelib.services.invoices import InvoiceHooks, InvoiceService
from chalicelib.services.pay import PayService, issue_hook
from chalicelib.services.ports import FixedClock
from chalicelib.services.provider_events import ProviderEventService
from chalicelib.services.settings import SettingsService
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line
from tests.fakes import FakeLedger

ALICE = Actor("alice", CLERK)
NOW = datetime(2026, 3, 10, 8, 0, tzinfo=timezone.utc)


class RefundGateway:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def refund(self, **kw) -> str:
        self.calls.append(kw)
        return f"re_{len(self.calls)}"


class World:
    def __init__(self) -> None:
        self.ledger = FakeLedger()
        self.clock = FixedClock(NOW)
        self.settings = SettingsService(self.ledger, self.clock)
        self.settings.put_seller(SELLER_INPUT, Actor.system("test"))
        self.customers = CustomerService(self.ledger, self.clock, self.settings)
        self.invoices = InvoiceService(self.ledger, self.clock, self.settings, InvoiceHooks(on_issue=[issue_hook]))
        self.events = ProviderEventService(self.ledger, self.clock, self.settings, lambda: None)  # type: ignore
        self.gateway = RefundGateway()
        self.pay = PayService(self.ledger, self.clock, self.settings, lambda: self.gateway, "https://ar.example")

    def card_paid_invoice(self):
        c = self.customers.create(dict(CUSTOMER_INPUT), ALICE)[0]
        draft, _ = self.invoices.create_draft({"customer_id": c.id, "lines": [line()]}, ALICE)
        inv = self.invoices.issue(draft.id, ALICE)
        pi = {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "amount": 12000,
              "amount_received": 12000, "currency": "eur", "metadata": {"invoice_id": inv.id, "customer_id": c.id},
              "latest_charge": "ch_1", "payment_method_types": ["card"]}
        self.events.handle({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                            "created": int(NOW.timestamp()), "data": {"object": pi}})
        return inv


@pytest.fixture
def world() -> World:
    return World()


def key(k: str, body: str) -> IdempotencyRequest:
    return IdempotencyRequest(scope="alice", key=k, request_hash=body)


def test_a_replayed_refund_asks_the_provider_once_and_answers_the_same(world):
    inv = world.card_paid_invoice()
    first = world.pay.refund(inv.id, "10.00", ALICE, key("k1", "h1"))
    again = world.pay.refund(inv.id, "10.00", ALICE, key("k1", "h1"))
    assert again == first and len(world.gateway.calls) == 1
    with pytest.raises(IdempotencyKeyReused):
        world.pay.refund(inv.id, "20.00", ALICE, key("k1", "h2"))
    # without a key, each request is a new refund request (the provider key still guards exact repeats)
    world.pay.refund(inv.id, "5.00", ALICE)
    assert len(world.gateway.calls) == 2


def test_a_replayed_dispute_returns_the_dispute_it_opened(world):
    inv = world.card_paid_invoice()
    inv2 = world.invoices.issue(world.invoices.create_draft({"customer_id": inv.customer_id, "lines": [line()]},
                                                            ALICE)[0].id, ALICE)
    first = world.pay.open_dispute(inv2.id, "other", "wrong price", ALICE, idempotency=key("d1", "h"))
    again = world.pay.open_dispute(inv2.id, "other", "wrong price", ALICE, idempotency=key("d1", "h"))
    assert again.id == first.id
    assert len(world.ledger.list_disputes(customer_id=inv.customer_id, status="open").items) == 1
    with pytest.raises(Conflict):  # a new request (no key) on a contested invoice is still refused
        world.pay.open_dispute(inv2.id, "other", "wrong price", ALICE)


def test_a_replayed_api_key_creation_never_reveals_or_mints_a_second_secret(world):
    access = AccessService(world.ledger, world.clock)
    admin = Actor("root", ADMIN)
    created, secret = access.create_key("erp", "reader", admin, key("a1", "h"))
    replayed, none = access.create_key("erp", "reader", admin, key("a1", "h"))
    assert secret and none is None and replayed.key_hash == created.key_hash
    assert [k.name for k in access.list_keys()] == ["erp"]
    assert access.authenticate(secret) is not None
    with pytest.raises(IdempotencyKeyReused):
        access.create_key("erp", "admin", admin, key("a1", "other"))
