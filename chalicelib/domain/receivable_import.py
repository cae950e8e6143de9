"""Receivables issued elsewhere, as read from an import file, and their checks.

An :class:`ImportedInvoice` is what a CSV row or a CII document (bare, or inside a
Factur-X PDF) says about one invoice: its own number (an external series, kept as
is), its buyer, dates, amounts and VAT. :func:`check_imported` applies the rules an
open receivable must meet before anything is written; :func:`to_invoice` turns it
into an issued :class:`~chalicelib.domain.invoice.Invoice` whose totals are the
document's own (never recomputed: the document is never re-rendered, its numbers are
the ones the buyer received).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .errors import ValidationError
from .invoice import DEPOSIT, INVOICE, OPEN, STANDARD, VAT_CATEGORIES, Invoice, InvoiceLine, Totals, VatBreakdown
from .money import Money, money_sum

IMPORTED_SERIES = "external"  # Invoice.series of an imported invoice: not one of our numbering series
INVOICE_TYPE_CODES = ("380", "384", "389", "751", "326")  # commercial, corrected, self-billed, info, partial
DEPOSIT_TYPE_CODES = ("386",)
MAX_NUMBER_LENGTH = 100


@dataclass(frozen=True, slots=True)
class ImportedParty:
    name: str | None = None
    reference: str | None = None  # the customer's reference in the seller's books (external_ref)
    email: str | None = None
    country: str | None = None
    vat_number: str | None = None
    siren: str | None = None
    line1: str | None = None
    postal_code: str | None = None
    city: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k)}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ImportedLine:
    description: str
    quantity: Decimal
    unit_price: Decimal
    net: Money
    vat_category: str = STANDARD
    vat_rate: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class ImportedInvoice:
    source: str                 # "file.csv row 3", "invoice.pdf"
    number: str
    type_code: str
    issue_date: date | None
    due_date: date | None
    currency: str
    buyer: ImportedParty
    lines: tuple[ImportedLine, ...]
    line_total: Money
    allowance_total: Money
    charge_total: Money
    tax_exclusive: Money
    vat_total: Money
    total: Money
    prepaid: Money
    rounding: Money
    payable: Money
    vat_breakdown: tuple[VatBreakdown, ...]
    amount_due: Money           # what is still owed (the payable, less what was paid before the import)
    seller: ImportedParty = field(default_factory=ImportedParty)
    purchase_order: str | None = None
    buyer_reference: str | None = None
    note: str | None = None

    @property
    def kind(self) -> str:
        return DEPOSIT if self.type_code in DEPOSIT_TYPE_CODES else INVOICE

    def content_hash(self) -> str:
        """A digest of what identifies this receivable (to recognise the same row imported again)."""
        key = {"number": self.number, "type": self.type_code, "issue": str(self.issue_date), "due": str(self.due_date),
               "currency": self.currency, "total": self.total.amount, "payable": self.payable.amount,
               "due_amount": self.amount_due.amount, "buyer": self.buyer.reference or self.buyer.name}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Problem:
    source: str
    number: str | None
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "number": self.number, "field": self.field, "reason": self.message}


def own_series_pattern(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    """Numbers of this system's own series (``F2026-000123``): an import must not take them."""
    alternatives = "|".join(re.escape(p) for p in prefixes if p)
    return re.compile(rf"^(?:{alternatives})\d{{4}}-\d{{6}}$")


def normalized(inv: ImportedInvoice) -> tuple[ImportedInvoice, list[Problem]]:
    """The invoice as it will be imported, and warnings about what was adjusted.

    A due date before the issue date (it happens, even in the official EN 16931
    examples) becomes the issue date: the receivable was due from the start.
    """
    warnings: list[Problem] = []
    if inv.issue_date and inv.due_date and inv.due_date < inv.issue_date:
        warnings.append(Problem(inv.source, inv.number, "due_date",
                                f"the due date {inv.due_date} is before the issue date {inv.issue_date}: the invoice "
                                "is imported as due on its issue date"))
        inv = replace(inv, due_date=inv.issue_date)
    return inv, warnings


def check_imported(inv: ImportedInvoice, *, today: date, own_series: re.Pattern[str]) -> list[Problem]:
    """Every reason not to import this invoice (empty when it may be imported)."""
    out: list[Problem] = []

    def bad(field_name: str, message: str) -> None:
        out.append(Problem(inv.source, inv.number or None, field_name, message))

    if not inv.number:
        bad("number", "the invoice number is missing (BT-1)")
    elif len(inv.number) > MAX_NUMBER_LENGTH:
        bad("number", f"the invoice number has more than {MAX_NUMBER_LENGTH} characters")
    elif own_series.match(inv.number):
        bad("number", f"{inv.number} is a number of this system's own series: imported invoices keep an external "
                      "series (change the import's numbers or the seller's invoice_prefix)")
    if inv.type_code == "381":
        bad("type_code", "credit notes are not imported: import what remains due on the invoice it credits")
    elif inv.type_code not in INVOICE_TYPE_CODES + DEPOSIT_TYPE_CODES:
        bad("type_code", f"document type {inv.type_code} is not an invoice (380, 384, 386, 389, 751 or 326)")
    if inv.issue_date is None:
        bad("issue_date", "the issue date is missing (BT-2)")
    elif inv.issue_date > today:
        bad("issue_date", f"the issue date {inv.issue_date} is in the future")
    if inv.due_date is None:
        bad("due_date", "the due date is missing (BT-9): an open receivable needs one to be collected")
    if not (inv.buyer.reference or inv.buyer.name):
        bad("buyer", "the buyer has neither a reference nor a name")
    ccy = inv.currency
    try:
        if inv.tax_exclusive != inv.line_total - inv.allowance_total + inv.charge_total:
            bad("tax_exclusive", f"the total without VAT {inv.tax_exclusive} is not lines {inv.line_total} - "
                                 f"allowances {inv.allowance_total} + charges {inv.charge_total}")
        if inv.lines and money_sum((ln.net for ln in inv.lines), ccy) != inv.line_total:
            bad("lines", f"the lines add up to {money_sum((ln.net for ln in inv.lines), ccy)}, not the line total "
                         f"{inv.line_total}")
        if inv.total != inv.tax_exclusive + inv.vat_total:
            bad("total", f"the total {inv.total} is not {inv.tax_exclusive} + VAT {inv.vat_total}")
        if inv.vat_breakdown and money_sum((b.tax_amount for b in inv.vat_breakdown), ccy) != inv.vat_total:
            bad("vat", f"the VAT breakdown adds up to {money_sum((b.tax_amount for b in inv.vat_breakdown), ccy)}, "
                       f"not the VAT total {inv.vat_total}")
        if inv.payable != inv.total - inv.prepaid + inv.rounding:
            bad("payable", f"the amount due for payment {inv.payable} is not the total {inv.total} - prepaid "
                           f"{inv.prepaid} + rounding {inv.rounding}")
        if not inv.amount_due.is_positive:
            bad("amount_due", "nothing is left to collect on this invoice: import only open receivables")
        elif inv.amount_due > inv.payable:
            bad("amount_due", f"the open amount {inv.amount_due} exceeds the amount payable {inv.payable}")
    except ValidationError as exc:  # currency mix-ups inside the document
        bad("currency", exc.message)
    for b in inv.vat_breakdown:
        if b.category not in VAT_CATEGORIES:
            bad("vat", f"VAT category {b.category} is not an EN 16931 category ({', '.join(VAT_CATEGORIES)})")
    return out


def to_invoice(inv: ImportedInvoice, *, invoice_id: str, customer_id: str, now: datetime,
               seller: dict[str, Any] | None, buyer: dict[str, Any]) -> Invoice:
    """The issued, open invoice of a checked import (its number and totals as in the document)."""
    if inv.issue_date is None or inv.due_date is None:
        raise ValidationError("an imported invoice needs its issue and due dates", field="issue_date")
    lines = tuple(InvoiceLine(description=ln.description[:1000] or "-", quantity=ln.quantity, unit_price=ln.unit_price,
                              vat_rate=ln.vat_rate, vat_category=ln.vat_category) for ln in inv.lines)
    totals = Totals(line_total=inv.line_total, allowance_total=inv.allowance_total, charge_total=inv.charge_total,
                    tax_exclusive=inv.tax_exclusive, vat_total=inv.vat_total, total=inv.total, prepaid=inv.prepaid,
                    payable=inv.payable, vat_breakdown=inv.vat_breakdown)
    paid_before = inv.payable.amount - inv.amount_due.amount
    invoice = Invoice(id=invoice_id, customer_id=customer_id, currency=inv.currency, lines=lines, totals=totals,
                      created_at=now, updated_at=now, kind=inv.kind, status=OPEN, number=inv.number,
                      series=IMPORTED_SERIES, issue_date=inv.issue_date, due_date=inv.due_date,
                      purchase_order=inv.purchase_order, buyer_reference=inv.buyer_reference, note=inv.note,
                      seller=seller, buyer=buyer, amount_paid=paid_before, issued_at=now)
    return invoice


def is_imported(invoice: Invoice) -> bool:
    return invoice.series == IMPORTED_SERIES
