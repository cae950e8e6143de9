"""SEPA collections on the in-memory ledger: a debit that cannot start for good fails the collection
(the invoice goes back to the pay link and dunning); a transient provider error is retried."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.domain.errors import PaymentGatewayError
from chalicelib.domain.provider import Mandate
from chalicelib.services.collections import CollectionService
from chalicelib.services.outbox import OutboxDrain
from chalicelib.services.ports import UnitOfWork
from tests.unit.test_provider_events import SYSTEM_ACTOR, World


class DebitGateway:
    def __init__(self, errors: list[PaymentGatewayError] | None = None) -> None:
        self.errors = list(errors or [])
        self.keys: list[str] = []

    def ensure_customer(self, customer: Any) -> str:
        return "cus_stripe"

    def collect_sepa_debit(self, **kw: Any) -> tuple[str, str]:
        self.keys.append(kw["idempotency_key"])
        if self.errors:
            raise self.errors.pop(0)
        return "pi_debit", "processing"


def refused(retryable: bool, status: int) -> PaymentGatewayError:
    return PaymentGatewayError("the payment provider refused to start a SEPA debit: no", details={
        "provider_code": "payment_method_unexpected_state" if not retryable else None, "http_status": status,
        "retryable": retryable})


class Collections:
    def __init__(self, gateway: DebitGateway) -> None:
        self.w = World()
        self.gateway = gateway
        self.service = CollectionService(self.w.ledger, self.w.clock, lambda: gateway)  # type: ignore[arg-type]
        self.events: list[str] = []
        self.drain = OutboxDrain(self.w.ledger, self.w.clock, {
            "stripe.collect": self.service.handler(), "event": lambda payload: self.events.append(payload["type"])})
        customer = self.w.customer()
        self.set_mandate(customer.id, "active")
        self.invoice = self.w.issued(customer.id)
        assert self.invoice.collection_status == "scheduled"
        report = self.service.run(self.invoice.due_date)
        assert report.requested == 1 and self.w.invoice(self.invoice.id).collection_status == "processing"
        outbox = self.w.ledger.outbox
        for key in [k for k, v in outbox.items() if v["message"].topic != "stripe.collect"]:
            del outbox[key]  # the emails and events: not what these tests are about

    def set_mandate(self, customer_id: str, status: str) -> None:
        current = self.w.ledger.get_customer(customer_id)
        uow = UnitOfWork(actor=SYSTEM_ACTOR, now=self.w.clock.now())
        uow.save(replace(current, stripe_customer_id="cus_stripe", mandate=Mandate(
            id="mandate_1", status=status, reference="REF1", payment_method="pm_sepa",
            created_at=datetime(2026, 3, 1, tzinfo=timezone.utc))))
        self.w.ledger.commit(uow)

    def run_outbox(self):
        self.w.clock.advance(hours=2)  # past any retry back-off
        return self.drain.run()


def test_an_inactive_mandate_fails_the_collection_and_the_invoice_is_chased_again():
    c = Collections(DebitGateway())
    # Given the mandate was revoked after the debit was requested
    c.set_mandate(c.invoice.customer_id, "inactive")
    # When the outbox runs the debit
    report = c.run_outbox()
    # Then nothing is sent to the provider, the message is done (not retried, not dead-lettered)
    assert report.processed == 1 and report.failed == 0 and report.dead == 0 and c.gateway.keys == []
    invoice = c.w.invoice(c.invoice.id)
    assert invoice.status == "open" and invoice.collection_status == "failed"
    assert "mandate" in invoice.collection_failure
    assert c.w.ledger.entities[("dunning", invoice.id)].invoice["collection_status"] == "failed"
    c.run_outbox()
    assert c.events == ["invoice.collection_failed"] and not c.w.ledger.dead


def test_a_provider_refusal_fails_the_collection_with_its_reason():
    c = Collections(DebitGateway([refused(False, 400)]))
    report = c.run_outbox()
    assert report.processed == 1 and report.dead == 0
    invoice = c.w.invoice(c.invoice.id)
    assert invoice.collection_status == "failed" and "could not be started" in invoice.collection_failure
    c.run_outbox()
    assert c.events == ["invoice.collection_failed"] and not c.w.ledger.dead and len(c.gateway.keys) == 1


@pytest.mark.parametrize("status", [None, 429, 503])
def test_a_transient_provider_error_is_retried_with_the_same_key(status):
    c = Collections(DebitGateway([refused(True, status)]))
    first = c.run_outbox()
    assert first.failed == 1 and c.w.invoice(c.invoice.id).collection_status == "processing"
    second = c.run_outbox()
    assert second.processed == 1
    assert len(c.gateway.keys) == 2 and c.gateway.keys[0] == c.gateway.keys[1]
    assert c.w.invoice(c.invoice.id).collection_status == "processing"  # until the provider's webhook


@pytest.mark.parametrize("make, retryable", [
    (lambda s: s.APIConnectionError("network down"), True),
    (lambda s: s.RateLimitError("slow down", http_status=429), True),
    (lambda s: s.APIError("oops", http_status=503), True),
    (lambda s: s.InvalidRequestError("mandate inactive", param="mandate", http_status=400), False),
    (lambda s: s.CardError("refused", param=None, code="card_declined", http_status=402), False),
])
def test_the_gateway_says_which_provider_errors_are_worth_retrying(make, retryable):
    import stripe

    from chalicelib.adapters.stripe_gateway import StripeGateway

    gateway = StripeGateway(lambda name: "sk_test_unit")

    def fail(v1: Any) -> Any:
        raise make(stripe)

    with pytest.raises(PaymentGatewayError) as err:
        gateway._call("start a SEPA debit", fail)
    assert err.value.details["retryable"] is retryable
