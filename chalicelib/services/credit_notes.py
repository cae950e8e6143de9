"""Credit notes (avoirs, type 381): the only way to correct an issued invoice.

``POST /invoices/{id}/credit-notes`` credits all of an invoice (no ``lines``) or
some of its lines (``[{"index": 0, "quantity": "1"}]``, at most what is left of
each line after earlier credit notes), at the original prices and VAT. The credit
note gets its own gapless series (the seller's ``credit_note_prefix``) and
references the invoice (BT-25/BT-26). It is created, numbered, rendered and
applied to the invoice in one transaction: the invoice's amount due drops by
the credit note's total, and a full credit note on an unpaid invoice voids it.
A credit note is never payable: no pay link, no debit, nothing due on it.

Limits (said in the 422 messages): the credit may not exceed what is still due
on the invoice (refund a payment first); a partial credit note of an invoice
with document-level allowances or charges must state its own
``allowances_charges`` (an empty list for none), since how a discount splits
across lines is a business decision.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any, Mapping

from ..domain.auth import Actor
from ..domain.errors import Conflict, ValidationError
from ..domain.fields import reject_unknown
from ..domain.ids import new_id
from ..domain.invoice import (CREDIT_NOTE, DEPOSIT, INVOICE, OPEN, PAID, QUANTITY_PLACES, Invoice,
                              _parse_decimal, new_draft)
from ..domain.parties import Customer, SellerProfile
from .common import IdempotencyRequest
from .events import envelope
from .invoices import InvoiceService
from .ports import Clock, Ledger, UnitOfWork

FIELDS = ("lines", "reason", "allowances_charges")


def _credited(invoice: Invoice) -> dict[int, Decimal]:
    """Quantities of each line already credited by earlier credit notes."""
    out: dict[int, Decimal] = {}
    for note in invoice.credit_notes:
        for index, quantity in (note.get("lines") or {}).items():
            out[int(index)] = out.get(int(index), Decimal(0)) + Decimal(quantity)
    return out


def _selection(invoice: Invoice, lines: Any) -> tuple[dict[int, Decimal], bool]:
    """``{line index: quantity}`` to credit, and whether that is everything left on the invoice."""
    credited = _credited(invoice)
    left = {i: line.quantity - credited.get(i, Decimal(0)) for i, line in enumerate(invoice.lines)}
    if lines is None:
        chosen = {i: q for i, q in left.items() if q > 0}
        if not chosen:
            raise Conflict(f"invoice {invoice.number} is already fully credited", code="already_credited")
        return chosen, True
    if not isinstance(lines, list) or not lines:
        raise ValidationError("lines must be a non-empty list like [{\"index\": 0, \"quantity\": \"1\"}], or be "
                              "left out to credit the whole invoice", field="lines")
    chosen: dict[int, Decimal] = {}
    for n, item in enumerate(lines):
        name = f"lines[{n}]"
        if not isinstance(item, Mapping):
            raise ValidationError(f"{name} must be an object like {{\"index\": 0, \"quantity\": \"1\"}}", field=name)
        reject_unknown(item, ("index", "quantity"), name + ".")
        index = item.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(invoice.lines):
            raise ValidationError(f"{name}.index must be the position of a line of {invoice.number} "
                                  f"(0 to {len(invoice.lines) - 1})", field=name + ".index")
        if index in chosen:
            raise ValidationError(f"{name}.index {index} is listed twice", field=name + ".index")
        quantity = (left[index] if item.get("quantity") is None
                    else _parse_decimal(item["quantity"], name + ".quantity", QUANTITY_PLACES))
        if quantity <= 0 or quantity > left[index]:
            raise ValidationError(f"{name}.quantity must be more than 0 and at most {left[index].normalize():f}, "
                                  f"what is left to credit of line {index} ({invoice.lines[index].description})",
                                  field=name + ".quantity")
        chosen[index] = quantity
    everything = all(chosen.get(i, Decimal(0)) == q for i, q in left.items() if q > 0)
    return chosen, everything


class CreditNoteService:
    def __init__(self, ledger: Ledger, clock: Clock, invoices: InvoiceService) -> None:
        self._ledger = ledger
        self._clock = clock
        self._invoices = invoices

    def create(self, invoice_id: str, data: Mapping[str, Any], actor: Actor,
               idempotency: IdempotencyRequest | None = None) -> Invoice:
        """Issue a credit note against ``invoice_id`` and apply it; returns the credit note.

        Raises ``NotFound``, ``Conflict`` (the invoice is a draft, void or already fully credited) and
        ``ValidationError`` (bad lines, more than is due); nothing is written then.
        """
        reject_unknown(data, FIELDS)
        original = self._ledger.get_invoice(invoice_id)
        if original.kind not in (INVOICE, DEPOSIT):
            raise Conflict(f"{original.number or original.id} is a credit note: it cannot be credited",
                           code="not_creditable")
        if original.status not in (OPEN, PAID):
            raise Conflict(f"invoice {original.number or original.id} is {original.status}: only issued, open or paid "
                           "invoices are credited", code="not_creditable")
        reason = data.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
            raise ValidationError("reason must be a string of at most 1000 characters", field="reason")
        chosen, everything = _selection(original, data.get("lines"))
        if "allowances_charges" in data:
            allowances = data["allowances_charges"]
        elif original.allowances_charges and not (everything and not original.credit_notes):
            raise ValidationError(
                f"invoice {original.number} has document-level allowances or charges: a partial credit note states "
                "its own allowances_charges (an empty list for none)", field="allowances_charges")
        else:
            allowances = [ac.to_dict() for ac in original.allowances_charges]
        lines = []
        for index, quantity in sorted(chosen.items()):
            line = original.lines[index].to_dict()
            line.pop("net_amount", None)
            line["quantity"] = format(quantity.normalize(), "f")
            lines.append({k: v for k, v in line.items() if v is not None})
        note = reason or f"Avoir sur la facture {original.number}"
        draft = new_draft(new_id("inv"), {
            "customer_id": original.customer_id, "currency": original.currency, "lines": lines,
            "allowances_charges": allowances, "note": note, "purchase_order": original.purchase_order,
            "buyer_reference": original.buyer_reference, "operation_category": original.operation_category,
            "deliver_to": original.deliver_to, "eur_exchange_rate": original.eur_exchange_rate,
            "delivery_date": original.delivery_date,
        }, customer_currency=original.currency, now=self._clock.now())
        draft = replace(draft, kind=CREDIT_NOTE, related_invoice_id=original.id, payment_terms=original.payment_terms)

        def apply(credit: Invoice, customer: Customer, seller: SellerProfile, uow: UnitOfWork) -> Invoice:
            current = self._ledger.get_invoice(original.id)
            if current.version != original.version:
                _selection(current, [{"index": i, "quantity": str(q)} for i, q in chosen.items()])  # still left?
            amount = credit.totals.payable
            if amount > current.amount_due:
                raise ValidationError(
                    f"this credit note ({amount} {credit.currency}) exceeds the {current.amount_due} {current.currency} "
                    f"still due on {current.number}: credit at most what is due, or refund the payment first",
                    field="lines", code="credit_exceeds_due")
            entry = {"id": credit.id, "number": credit.number, "issue_date": credit.issue_date.isoformat()
                     if credit.issue_date else None, "amount": str(amount),
                     "lines": {str(i): format(q.normalize(), "f") for i, q in chosen.items()}}
            updated = replace(current.apply_credit(amount, uow.now), credit_notes=(*current.credit_notes, entry))
            saved = uow.save_invoice(current, updated, on=credit.issue_date, action="invoice.credited",
                                     note={"credit_note_id": credit.id, "credit_note_number": credit.number})
            uow.emit("event", envelope("invoice.credited", {
                "invoice_id": saved.id, "number": saved.number, "customer_id": saved.customer_id,
                "credit_note_id": credit.id, "credit_note_number": credit.number, "amount": str(amount),
                "currency": saved.currency, "amount_due": str(saved.amount_due), "status": saved.status}, uow.now))
            return credit.as_applied_credit_note(uow.now)

        return self._invoices.issue_new(draft, actor, prepare=apply, idempotency=idempotency)
