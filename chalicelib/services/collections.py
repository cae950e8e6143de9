"""SEPA Direct Debit collections: each open invoice of a customer with an active
mandate is debited on its due date, off-session, with the mandate.

The sweep only marks invoices and writes outbox messages (in one transaction per
invoice); the outbox handler calls the provider with an idempotency key, so a
retried message never debits twice. No debit above the per-debit limit or on a
contested invoice: those fall back to the pay link (and to dunning).

When the debit cannot be started for good (the mandate is no longer active, or
the provider refuses the request), the invoice's collection is marked failed
with the reason, as a failed debit is: it leaves "processing", the Pay button
comes back and dunning resumes. A transient error (network, 5xx, rate limit) is
raised so the outbox retries it with the same idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Callable

from ..domain.auth import Actor
from ..domain.errors import PaymentGatewayError
from ..domain.invoice import OPEN
from ..observability import count, logger
from .common import with_retries
from .events import invoice_event
from .pay import SEPA_DEBIT_LIMIT
from .ports import Clock, CommitConflict, InvoiceQuery, Ledger, PaymentGateway, UnitOfWork

ACTOR = Actor.system("sepa-collections")
CATCH_UP_DAYS = 7  # after downtime, still collect invoices that fell due in the last week


@dataclass
class CollectionReport:
    requested: int = 0
    fallback: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"requested": self.requested, "fallback_to_pay_link": self.fallback, "skipped": self.skipped}


class CollectionService:
    def __init__(self, ledger: Ledger, clock: Clock, gateway: Callable[[], PaymentGateway]) -> None:
        self._ledger = ledger
        self._clock = clock
        self._gateway = gateway

    def run(self, as_of: date) -> CollectionReport:
        """Request the debits of invoices due on or before ``as_of`` (within the catch-up window)."""
        report = CollectionReport()
        cursor = None
        while True:
            page = self._ledger.query_invoices(InvoiceQuery(
                status=OPEN, due_after=as_of - timedelta(days=CATCH_UP_DAYS + 1), due_before=as_of + timedelta(days=1),
                collection_status="scheduled", limit=100, cursor=cursor), as_of)
            for invoice in page.items:
                self._request(invoice.id, report)
            cursor = page.next_cursor
            if not cursor:
                return report

    def _request(self, invoice_id: str, report: CollectionReport) -> None:
        invoice = self._ledger.get_invoice(invoice_id)
        if invoice.status != OPEN or invoice.collection_status != "scheduled":
            report.skipped += 1
            return
        customer = self._ledger.get_customer(invoice.customer_id)
        uow = UnitOfWork(actor=ACTOR, now=self._clock.now())
        usable = (customer.mandate is not None and customer.mandate.active and invoice.currency == "EUR"
                  and invoice.amount_due.is_positive and invoice.amount_due <= SEPA_DEBIT_LIMIT
                  and invoice.dispute_status != "open")
        if usable:
            updated = replace(invoice, collection_status="processing", updated_at=uow.now)
            uow.emit("stripe.collect", {"invoice_id": invoice.id, "amount": invoice.amount_due.amount,
                                        "attempt_key": f"collect-{invoice.id}-{invoice.version}"})
            report.requested += 1
        else:
            updated = replace(invoice, collection_status="none", updated_at=uow.now,
                              collection_failure="not collectable by direct debit: pay link instead")
            report.fallback += 1
        uow.save_invoice(invoice, updated,
                         action="invoice.collection_requested" if usable else "invoice.collection_fallback")
        try:
            self._ledger.commit(uow)
        except CommitConflict:
            report.skipped += 1  # changed meanwhile (paid?): the next run sees its new state

    def handler(self) -> Callable[[dict[str, Any]], None]:
        """Outbox handler for ``stripe.collect``: start the off-session debit.

        A permanent failure marks the collection failed (see the module docstring) and returns;
        a transient ``PaymentGatewayError`` (details ``retryable``) is raised for the outbox to retry.
        """

        def collect(payload: dict[str, Any]) -> None:
            invoice = self._ledger.get_invoice(payload["invoice_id"])
            if invoice.status != OPEN or invoice.collection_status != "processing":
                return  # paid or changed since the request
            customer = self._ledger.get_customer(invoice.customer_id)
            mandate = customer.mandate
            if mandate is None or not mandate.active or not mandate.payment_method:
                self._fail(invoice.id, "the customer's SEPA mandate is no longer active: the invoice is paid by "
                                       "its pay link (or after a new mandate is signed)")
                return
            gateway = self._gateway()
            try:
                provider_customer = customer.stripe_customer_id or gateway.ensure_customer(customer)
                gateway.collect_sepa_debit(
                    provider_customer=provider_customer, mandate_id=mandate.id,
                    payment_method=mandate.payment_method, amount=invoice.money(int(payload["amount"])),
                    metadata={"invoice_id": invoice.id, "customer_id": customer.id, "collection": "true",
                              "invoice_number": invoice.number or ""},
                    idempotency_key=str(payload["attempt_key"]))
            except PaymentGatewayError as exc:
                if exc.details.get("retryable", True):
                    raise  # network, 5xx, rate limit (or unknown): the outbox retries, same idempotency key
                self._fail(invoice.id, f"the SEPA debit could not be started: {exc.message}"[:500])

        return collect

    def _fail(self, invoice_id: str, reason: str) -> None:
        """Collection failed for good: back to an open invoice chased by dunning, with the reason."""

        def run() -> None:
            invoice = self._ledger.get_invoice(invoice_id)
            if invoice.status != OPEN or invoice.collection_status != "processing":
                return
            uow = UnitOfWork(actor=ACTOR, now=self._clock.now())
            saved = uow.save_invoice(invoice, replace(invoice, collection_status="failed", collection_failure=reason,
                                                      updated_at=uow.now), action="invoice.collection_failed")
            uow.emit("event", invoice_event("invoice.collection_failed", saved, uow.now))
            self._ledger.commit(uow)

        with_retries(run)
        logger.warning("SEPA collection failed", extra={"invoice_id": invoice_id, "reason": reason})
        count("SepaCollectionFailed")
