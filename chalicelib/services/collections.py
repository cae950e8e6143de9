"""SEPA Direct Debit collections: each open invoice of a customer with an active
mandate is debited on its due date, off-session, with the mandate.

The sweep only marks invoices and writes outbox messages (in one transaction per
invoice); the outbox handler calls the provider with an idempotency key, so a
retried message never debits twice. No debit above the per-debit limit or on a
contested invoice: those fall back to the pay link (and to dunning).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Callable

from ..domain.auth import Actor
from ..domain.invoice import OPEN
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
        """Outbox handler for ``stripe.collect``: start the off-session debit."""

        def collect(payload: dict[str, Any]) -> None:
            invoice = self._ledger.get_invoice(payload["invoice_id"])
            if invoice.status != OPEN or invoice.collection_status != "processing":
                return  # paid or changed since the request
            customer = self._ledger.get_customer(invoice.customer_id)
            mandate = customer.mandate
            if mandate is None or not mandate.active or not mandate.payment_method:
                raise RuntimeError("the customer's mandate is no longer active")
            gateway = self._gateway()
            provider_customer = customer.stripe_customer_id or gateway.ensure_customer(customer)
            gateway.collect_sepa_debit(
                provider_customer=provider_customer, mandate_id=mandate.id, payment_method=mandate.payment_method,
                amount=invoice.money(int(payload["amount"])),
                metadata={"invoice_id": invoice.id, "customer_id": customer.id, "collection": "true",
                          "invoice_number": invoice.number or ""},
                idempotency_key=str(payload["attempt_key"]))

        return collect
