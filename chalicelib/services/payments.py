"""Use cases on payments: manual receipts, allocations, unapplied cash."""

from __future__ import annotations

from datetime import date
from typing import Any, Mapping

from ..domain.auth import Actor
from ..domain.errors import ValidationError
from ..domain.ids import new_id
from ..domain.invoice import PAID, Invoice
from ..domain.money import Money, check_currency
from ..domain.payment import METHODS, Payment, parse_allocations
from .common import IdempotencyRequest, diff, idempotent, with_retries
from .events import invoice_event, payment_event
from .ports import Clock, Ledger, Page, PaymentQuery, UnitOfWork
from .settings import SettingsService


def _optional_text(data: Mapping[str, Any], key: str, max_len: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise ValidationError(f"{key} must be a string of at most {max_len} characters", field=key)
    return value.strip() or None


class PaymentService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings

    def _received_on(self, value: Any) -> date:
        if not isinstance(value, str):
            raise ValidationError("received_on is required: the ISO date the money arrived, e.g. \"2026-03-31\"",
                                  field="received_on")
        try:
            received = date.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"received_on {value!r} is not an ISO date such as \"2026-03-31\"",
                                  field="received_on") from None
        today = self._clock.today(self._settings.timezone())
        if received > today:
            raise ValidationError(f"received_on {value} is in the future (today is {today.isoformat()})",
                                  field="received_on")
        return received

    def _allocate(self, payment: Payment, allocations: list[tuple[str, Money]], uow: UnitOfWork,
                  invoices: dict[str, Invoice]) -> Payment:
        """Apply allocations to the loaded invoices, adding their writes to ``uow``."""
        for invoice_id, amount in allocations:
            invoice = invoices.get(invoice_id)
            if invoice is None:
                raise ValidationError(f"invoice {invoice_id} does not exist", field="allocations",
                                      code="invoice_not_found")
            if invoice.customer_id != payment.customer_id:
                raise ValidationError(f"invoice {invoice.number or invoice_id} belongs to another customer: a "
                                      "payment is allocated to its payer's invoices only", field="allocations")
            updated = invoice.apply_payment(amount, uow.now)
            payment = payment.allocate(invoice_id, amount, now=uow.now, invoice_number=invoice.number)
            saved = uow.save_invoice(invoice, updated, on=payment.received_on, action="invoice.payment_allocated",
                                     note={"payment_id": payment.id})
            invoices[invoice_id] = saved
            if saved.status == PAID and invoice.status != PAID:
                uow.emit("event", invoice_event("invoice.paid", saved, uow.now))
        return payment

    def record(self, data: Mapping[str, Any], actor: Actor,
               idempotency: IdempotencyRequest | None = None) -> tuple[Payment, bool]:
        """Record a manual payment (transfer, cheque...) with its allocations.

        An amount left unallocated is refused unless ``keep_excess_as_credit``
        is true, in which case it stays as unapplied cash on the customer.
        """
        payment_id = new_id("pay")

        def run() -> Payment:
            customer_id = data.get("customer_id")
            if not isinstance(customer_id, str) or not customer_id:
                raise ValidationError("customer_id is required", field="customer_id")
            customer = self._ledger.get_customer(customer_id)
            currency = check_currency(data.get("currency") or customer.currency)
            amount = Money.parse(data.get("amount"), currency, field="amount")
            if not amount.is_positive:
                raise ValidationError("amount must be greater than 0", field="amount")
            method = data.get("method")
            if method not in METHODS:
                raise ValidationError(f"method must be one of {', '.join(METHODS)}", field="method")
            keep_excess = data.get("keep_excess_as_credit", False)
            if not isinstance(keep_excess, bool):
                raise ValidationError("keep_excess_as_credit must be true or false", field="keep_excess_as_credit")
            allocations = parse_allocations(data.get("allocations"), currency)
            now = self._clock.now()
            payment = Payment(id=payment_id, customer_id=customer.id, amount=amount, method=method,
                              received_on=self._received_on(data.get("received_on")), created_at=now,
                              updated_at=now, reference=_optional_text(data, "reference", 140),
                              provider_ref=_optional_text(data, "provider_ref", 255), source="manual",
                              note=_optional_text(data, "note", 1000))
            invoices = self._ledger.get_invoices(i for i, _ in allocations)
            uow = UnitOfWork(actor=actor, now=now)
            payment = self._allocate(payment, allocations, uow, invoices)
            if payment.unapplied.is_positive and not keep_excess:
                raise ValidationError(
                    f"the payment of {amount} {currency} exceeds its allocations by {payment.unapplied} {currency}: "
                    "allocate it to open invoices, or pass keep_excess_as_credit=true to keep it as customer credit",
                    field="amount", code="overpayment")
            payment = uow.create(payment)
            uow.audit("payment.create", "payment", payment.id, None, payment.to_dict())
            uow.emit("event", payment_event("payment.recorded", payment, now))
            if idempotency:
                uow.claim_idempotency(idempotency.record("payment", payment.id, now))
            self._ledger.commit(uow)
            return payment

        return idempotent(self._ledger, idempotency, "payment", run, self._ledger.get_payment)

    def record_for_invoice(self, invoice_id: str, data: Mapping[str, Any], actor: Actor,
                           idempotency: IdempotencyRequest | None = None) -> tuple[Payment, bool]:
        """Shortcut: a payment of one invoice; the amount defaults to what is due."""
        invoice = self._ledger.get_invoice(invoice_id)
        amount_raw = data.get("amount", str(invoice.amount_due))
        amount = Money.parse(amount_raw, invoice.currency, field="amount")
        if "amount" in data and not amount.is_positive:
            raise ValidationError("amount must be greater than 0", field="amount")
        allocation = min(amount, invoice.amount_due) if invoice.amount_due.is_positive else Money.zero(
            invoice.currency)
        if not allocation.is_positive:
            raise ValidationError(f"invoice {invoice.number or invoice_id} has nothing due ({invoice.status})",
                                  code="nothing_due")
        body = {**{k: v for k, v in data.items() if k not in ("invoice_id",)},
                "customer_id": invoice.customer_id, "currency": invoice.currency, "amount": str(amount),
                "allocations": [{"invoice_id": invoice_id, "amount": str(allocation)}]}
        return self.record(body, actor, idempotency)

    def allocate(self, payment_id: str, data: Mapping[str, Any], actor: Actor) -> Payment:
        """Allocate a payment's unapplied cash to open invoices of its customer."""

        def run() -> Payment:
            payment = self._ledger.get_payment(payment_id)
            allocations = parse_allocations(data.get("allocations"), payment.currency)
            if not allocations:
                raise ValidationError("allocations must list at least one {\"invoice_id\", \"amount\"}",
                                      field="allocations")
            now = self._clock.now()
            uow = UnitOfWork(actor=actor, now=now)
            invoices = self._ledger.get_invoices(i for i, _ in allocations)
            updated = self._allocate(payment, allocations, uow, invoices)
            saved = uow.save(updated)
            before, after = diff(payment.to_dict(), saved.to_dict())
            uow.audit("payment.allocate", "payment", payment_id, before, after)
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    def get(self, payment_id: str) -> Payment:
        return self._ledger.get_payment(payment_id)

    def list(self, query: PaymentQuery) -> Page[Payment]:
        return self._ledger.query_payments(query)
