"""A document context as plain JSON (the *render spec*), stored on the issued invoice.

The issue hook (``services/documents.py``) records everything a document needs
beyond the invoice itself as a small JSON object: payment means, pay link,
RF reference, the credited invoice, deducted deposits, EUR rate, deliver-to,
the seller's terms *as they were at issue*. Re-rendering the stored invoice with
its stored spec gives the same bytes years later, whatever changed since (the
seller's penalty rate, the customer's mandate, a rotated pay link).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from ...domain.invoice import Invoice
from ...domain.money import Money
from ...domain.parties import EarlyPaymentDiscount
from .context import DeliverTo, DepositDeduction, DocumentContext, PrecedingInvoice
from .render import RenderedDocuments, render_invoice


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def _decimal(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


def context_from_spec(spec: Mapping[str, Any]) -> DocumentContext:
    """Build the renderer's :class:`DocumentContext` from a render spec (unknown keys are ignored)."""
    preceding = spec.get("preceding_invoice")
    discount = spec.get("early_payment_discount")
    indemnity = spec.get("recovery_indemnity")
    deliver_to = spec.get("deliver_to")
    return DocumentContext(
        operation_category=str(spec.get("operation_category") or ""),
        pay_url=spec.get("pay_url"),
        payment_means=str(spec.get("payment_means") or "58"),
        payment_reference=spec.get("payment_reference"),
        mandate_reference=spec.get("mandate_reference"),
        creditor_id=spec.get("creditor_id"),
        debtor_iban=spec.get("debtor_iban"),
        preceding_invoice=(PrecedingInvoice(number=preceding["number"], issue_date=_date(preceding.get("issue_date")))
                           if preceding else None),
        deposits=tuple(DepositDeduction(number=d["number"], issue_date=date.fromisoformat(d["issue_date"]),
                                        amount=Money(int(d["amount"]), d["currency"]))
                       for d in spec.get("deposits") or ()),
        eur_exchange_rate=_decimal(spec.get("eur_exchange_rate")),
        exchange_rate_date=_date(spec.get("exchange_rate_date")),
        delivery_date=_date(spec.get("delivery_date")),
        deliver_to=DeliverTo.from_mapping(deliver_to) if deliver_to else None,
        contract_reference=spec.get("contract_reference"),
        late_penalty_rate=_decimal(spec.get("late_penalty_rate")),
        early_payment_discount=(EarlyPaymentDiscount(rate=Decimal(str(discount["rate"])), days=int(discount["days"]))
                                if discount else None),
        recovery_indemnity=Money.parse(str(indemnity["amount"]), indemnity["currency"]) if indemnity else None,
        vat_on_debits=spec.get("vat_on_debits"),
        extra_notes=tuple(spec.get("extra_notes") or ()),
    )


def render_from_spec(invoice: Invoice, spec: Mapping[str, Any]) -> RenderedDocuments:
    """Render an issued invoice with its render spec; raises ``ValidationError`` (invalid_einvoice)."""
    return render_invoice(invoice, context_from_spec(spec))
