"""Invoices: lines, VAT, totals and the status machine.

Rounding follows EN 16931:
- a line net amount (BT-131) is quantity x unit price, rounded half-up to the
  currency's minor unit;
- VAT is computed per (category, rate) on the sum of the line nets of that group
  plus document-level charges minus allowances (BR-CO-17), rounded once;
- totals are plain sums of rounded amounts, so they always add up exactly.

Status follows from the amounts: ``amount_due = payable - paid - credited -
discounted - written_off + reversed`` where ``payable`` (BT-115) is the total
with VAT minus prepaid deposits. An issued invoice's content never changes:
only its settlement amounts and the side fields (collection, dispute, dunning)
move.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, localcontext
from typing import Any, Mapping, Sequence

from .errors import InvalidTransition, ValidationError
from .fields import check_chars, reject_unknown
from .money import MAX_MINOR, Money, check_currency, minor_units, money_sum, parse_decimal_text
from .terms import PaymentTerms, check_due_date_legal

# -- statuses & kinds ---------------------------------------------------------------------------
DRAFT, OPEN, PAID, VOID, UNCOLLECTIBLE = "draft", "open", "paid", "void", "uncollectible"
STATUSES = (DRAFT, OPEN, PAID, VOID, UNCOLLECTIBLE)

INVOICE, CREDIT_NOTE, DEPOSIT = "invoice", "credit_note", "deposit"
KINDS = (INVOICE, CREDIT_NOTE, DEPOSIT)
# UNTDID 1001 document type codes (BT-3).
TYPE_CODES = {INVOICE: "380", CREDIT_NOTE: "381", DEPOSIT: "386"}

# -- VAT categories (UNTDID 5305, as restricted by EN 16931) ------------------------------------
STANDARD, ZERO, EXEMPT, REVERSE_CHARGE, INTRA_COMMUNITY, EXPORT, OUT_OF_SCOPE = "S", "Z", "E", "AE", "K", "G", "O"
VAT_CATEGORIES = (STANDARD, ZERO, EXEMPT, REVERSE_CHARGE, INTRA_COMMUNITY, EXPORT, OUT_OF_SCOPE)
# Categories whose rate is always 0 and which need an exemption reason (BR-E-10, BR-AE-10, ...).
NEEDS_EXEMPTION_REASON = (EXEMPT, REVERSE_CHARGE, INTRA_COMMUNITY, EXPORT, OUT_OF_SCOPE)
DEFAULT_EXEMPTION = {
    REVERSE_CHARGE: ("VATEX-EU-AE", "Autoliquidation - Reverse charge (art. 283-2 CGI, art. 196 directive 2006/112/CE)"),
    INTRA_COMMUNITY: ("VATEX-EU-IC", "Exonération de TVA - livraison intracommunautaire (art. 262 ter I CGI)"),
    EXPORT: ("VATEX-EU-G", "Exonération de TVA - exportation (art. 262 I CGI)"),
    OUT_OF_SCOPE: ("VATEX-EU-O", "Non soumis à la TVA - hors champ"),
}

MAX_LINES = 500
LINE_FIELDS = ("description", "quantity", "unit_price", "vat_rate", "vat_category", "exemption_reason",
               "exemption_code", "unit_code", "item_id", "period_start", "period_end", "net_amount")
QUANTITY_PLACES = 6
PRICE_PLACES = 4
RATE_PLACES = 2


def canonical_rate(rate: Decimal) -> Decimal:
    """20.00 -> 20, 5.50 -> 5.5: one spelling per rate (and never 2E+1)."""
    return rate.quantize(Decimal(1)) if rate == rate.to_integral_value() else rate.normalize()


def _parse_decimal(value: Any, name: str, places: int) -> Decimal:
    """A quantity, price or rate: exact, at most ``places`` decimals and 12 integer digits, checked on
    the digits before any arithmetic ("1E-9999999" is refused, not normalised to zero)."""
    return parse_decimal_text(value, name, places=places, int_digits=12, example="1.5")


def _parse_date(value: Any, name: str) -> date:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be an ISO 8601 date such as \"2026-01-31\"", field=name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{name} {value!r} is not an ISO 8601 date such as \"2026-01-31\"",
                              field=name) from None


def _text(value: Any, name: str, *, required: bool, max_len: int, multiline: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    if len(value) > max_len:
        raise ValidationError(f"{name} must be at most {max_len} characters", field=name)
    return check_chars(value.strip(), name, multiline=multiline)


def _vat(data: Mapping[str, Any], prefix: str) -> tuple[Decimal, str, str | None, str | None]:
    """Parse and cross-check VAT rate, category and exemption reason of a line or allowance."""
    rate = _parse_decimal(data.get("vat_rate", "0") if data.get("vat_rate") is not None else "0",
                          f"{prefix}vat_rate", RATE_PLACES)
    if not Decimal(0) <= rate < Decimal(100):
        raise ValidationError(f"{prefix}vat_rate must be between 0 and 100 (a percentage such as \"20\")",
                              field=f"{prefix}vat_rate")
    category = data.get("vat_category")
    if category is None:
        if rate == 0:
            raise ValidationError(
                f"{prefix}vat_category is required when vat_rate is 0: use Z (zero rated), E (exempt, with an "
                "exemption_reason), AE (reverse charge), K (intra-community supply), G (export) or O (out of scope)",
                field=f"{prefix}vat_category")
        category = STANDARD
    if category not in VAT_CATEGORIES:
        raise ValidationError(f"{prefix}vat_category must be one of {', '.join(VAT_CATEGORIES)}",
                              field=f"{prefix}vat_category")
    if category == STANDARD and rate == 0:
        raise ValidationError(f"{prefix}vat_rate must be above 0 for category S (use Z for zero-rated)",
                              field=f"{prefix}vat_rate")
    if category != STANDARD and rate != 0:
        raise ValidationError(f"{prefix}vat_rate must be 0 for category {category}", field=f"{prefix}vat_rate")
    reason = _text(data.get("exemption_reason"), f"{prefix}exemption_reason", required=False, max_len=300,
                   multiline=True)
    code = _text(data.get("exemption_code"), f"{prefix}exemption_code", required=False, max_len=30)
    if code is not None and not code.upper().startswith("VATEX-"):
        raise ValidationError(f"{prefix}exemption_code must be a VATEX code such as VATEX-EU-132-1I",
                              field=f"{prefix}exemption_code")
    if category in NEEDS_EXEMPTION_REASON and reason is None and code is None:
        if category in DEFAULT_EXEMPTION:
            code, reason = DEFAULT_EXEMPTION[category]
        else:
            raise ValidationError(
                f"{prefix}exemption_reason is required for exempt lines (category E): state the legal basis, "
                "e.g. \"Exonération de TVA, article 261 4 4° du CGI\"", field=f"{prefix}exemption_reason")
    if category not in NEEDS_EXEMPTION_REASON and (reason or code):
        raise ValidationError(f"{prefix}exemption_reason only applies to categories "
                              f"{', '.join(NEEDS_EXEMPTION_REASON)}", field=f"{prefix}exemption_reason")
    return canonical_rate(rate), category, reason, code.upper() if code else None


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    description: str
    quantity: Decimal
    unit_price: Decimal
    vat_rate: Decimal
    vat_category: str = STANDARD
    exemption_reason: str | None = None
    exemption_code: str | None = None
    unit_code: str = "C62"
    item_id: str | None = None
    period_start: date | None = None
    period_end: date | None = None

    def net_amount(self, currency: str) -> Money:
        return Money.of_decimal(self.quantity * self.unit_price, currency)

    @classmethod
    def from_input(cls, data: Mapping[str, Any], index: int) -> InvoiceLine:
        p = f"lines[{index}]."
        if not isinstance(data, Mapping):
            raise ValidationError(f"lines[{index}] must be an object", field=f"lines[{index}]")
        reject_unknown(data, LINE_FIELDS, p)
        quantity = _parse_decimal(data.get("quantity"), p + "quantity", QUANTITY_PLACES)
        if quantity <= 0:
            raise ValidationError(f"{p}quantity must be greater than 0 (issue a credit note to take something back)",
                                  field=p + "quantity")
        unit_price = _parse_decimal(data.get("unit_price"), p + "unit_price", PRICE_PLACES)
        if unit_price < 0:
            raise ValidationError(f"{p}unit_price must not be negative (use a document allowance for a discount)",
                                  field=p + "unit_price")
        rate, category, reason, code = _vat(data, p)
        unit_code = data.get("unit_code") or "C62"
        if not isinstance(unit_code, str) or not unit_code.isalnum() or len(unit_code) > 3:
            raise ValidationError(f"{p}unit_code must be a UN/ECE Rec. 20 code such as C62, HUR or DAY",
                                  field=p + "unit_code")
        period_start = _parse_date(data["period_start"], p + "period_start") if data.get("period_start") else None
        period_end = _parse_date(data["period_end"], p + "period_end") if data.get("period_end") else None
        if period_start and period_end and period_end < period_start:
            raise ValidationError(f"{p}period_end must not be before period_start", field=p + "period_end")
        return cls(
            description=_text(data.get("description"), p + "description", required=True, max_len=1000,
                              multiline=True) or "",
            quantity=quantity, unit_price=unit_price, vat_rate=rate, vat_category=category,
            exemption_reason=reason, exemption_code=code, unit_code=unit_code.upper(),
            item_id=_text(data.get("item_id"), p + "item_id", required=False, max_len=64),
            period_start=period_start, period_end=period_end,
        )

    def to_dict(self, currency: str | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "description": self.description, "quantity": str(self.quantity), "unit_price": str(self.unit_price),
            "vat_rate": str(self.vat_rate), "vat_category": self.vat_category,
            "exemption_reason": self.exemption_reason, "exemption_code": self.exemption_code,
            "unit_code": self.unit_code, "item_id": self.item_id,
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "period_end": self.period_end.isoformat() if self.period_end else None,
        }
        if currency:
            d["net_amount"] = str(self.net_amount(currency))
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InvoiceLine:
        return cls(description=d["description"], quantity=Decimal(d["quantity"]),
                   unit_price=Decimal(d["unit_price"]), vat_rate=Decimal(d["vat_rate"]),
                   vat_category=d.get("vat_category", STANDARD), exemption_reason=d.get("exemption_reason"),
                   exemption_code=d.get("exemption_code"), unit_code=d.get("unit_code", "C62"),
                   item_id=d.get("item_id"),
                   period_start=date.fromisoformat(d["period_start"]) if d.get("period_start") else None,
                   period_end=date.fromisoformat(d["period_end"]) if d.get("period_end") else None)


@dataclass(frozen=True, slots=True)
class AllowanceCharge:
    """A document-level allowance (remise, ``charge=False``) or charge (frais, ``charge=True``)."""

    charge: bool
    amount: Money
    reason: str
    vat_rate: Decimal
    vat_category: str = STANDARD
    exemption_reason: str | None = None
    exemption_code: str | None = None
    reason_code: str | None = None

    @classmethod
    def from_input(cls, data: Mapping[str, Any], index: int, currency: str) -> AllowanceCharge:
        p = f"allowances_charges[{index}]."
        if not isinstance(data, Mapping):
            raise ValidationError(f"allowances_charges[{index}] must be an object", field=p.rstrip("."))
        reject_unknown(data, ("type", "amount", "reason", "reason_code", "vat_rate", "vat_category",
                              "exemption_reason", "exemption_code"), p)
        kind = data.get("type")
        if kind not in ("allowance", "charge"):
            raise ValidationError(f"{p}type must be \"allowance\" or \"charge\"", field=p + "type")
        amount = Money.parse(data.get("amount"), currency, field=p + "amount")
        if not amount.is_positive:
            raise ValidationError(f"{p}amount must be greater than 0", field=p + "amount")
        rate, category, reason, code = _vat(data, p)
        return cls(charge=kind == "charge", amount=amount,
                   reason=_text(data.get("reason"), p + "reason", required=True, max_len=300) or "",
                   reason_code=_text(data.get("reason_code"), p + "reason_code", required=False, max_len=10),
                   vat_rate=rate, vat_category=category, exemption_reason=reason, exemption_code=code)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "charge" if self.charge else "allowance", "amount": str(self.amount),
                "reason": self.reason, "reason_code": self.reason_code, "vat_rate": str(self.vat_rate),
                "vat_category": self.vat_category, "exemption_reason": self.exemption_reason,
                "exemption_code": self.exemption_code}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], currency: str) -> AllowanceCharge:
        return cls(charge=d["type"] == "charge", amount=Money.parse(d["amount"], currency), reason=d["reason"],
                   reason_code=d.get("reason_code"), vat_rate=Decimal(d["vat_rate"]),
                   vat_category=d.get("vat_category", STANDARD), exemption_reason=d.get("exemption_reason"),
                   exemption_code=d.get("exemption_code"))


@dataclass(frozen=True, slots=True)
class VatBreakdown:
    """One row of the VAT breakdown (BG-23)."""

    category: str
    rate: Decimal
    taxable_amount: Money
    tax_amount: Money
    exemption_reason: str | None = None
    exemption_code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"vat_category": self.category, "vat_rate": str(self.rate),
                "taxable_amount": str(self.taxable_amount), "tax_amount": str(self.tax_amount),
                "exemption_reason": self.exemption_reason, "exemption_code": self.exemption_code}


@dataclass(frozen=True, slots=True)
class Totals:
    """Document totals (BG-22); each is a sum of already-rounded amounts."""

    line_total: Money          # BT-106
    allowance_total: Money     # BT-107
    charge_total: Money        # BT-108
    tax_exclusive: Money       # BT-109 (subtotal)
    vat_total: Money           # BT-110
    total: Money               # BT-112
    prepaid: Money             # BT-113
    payable: Money             # BT-115
    vat_breakdown: tuple[VatBreakdown, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"line_total": str(self.line_total), "allowance_total": str(self.allowance_total),
                "charge_total": str(self.charge_total), "subtotal": str(self.tax_exclusive),
                "vat_total": str(self.vat_total), "total": str(self.total), "prepaid": str(self.prepaid),
                "payable": str(self.payable), "vat_breakdown": [v.to_dict() for v in self.vat_breakdown]}


def compute_totals(lines: Sequence[InvoiceLine], allowances_charges: Sequence[AllowanceCharge], currency: str,
                   prepaid: Money | None = None) -> Totals:
    groups: dict[tuple[str, Decimal], dict[str, Any]] = {}

    def group(category: str, rate: Decimal, reason: str | None, code: str | None) -> dict[str, Any]:
        key = (category, canonical_rate(rate))
        g = groups.setdefault(key, {"basis": Money.zero(currency), "reason": reason, "code": code})
        if g["reason"] is None and reason:
            g["reason"], g["code"] = reason, code
        return g

    line_nets = []
    for line in lines:
        net = line.net_amount(currency)
        line_nets.append(net)
        g = group(line.vat_category, line.vat_rate, line.exemption_reason, line.exemption_code)
        g["basis"] = g["basis"] + net
    allowances = Money.zero(currency)
    charges = Money.zero(currency)
    for ac in allowances_charges:
        g = group(ac.vat_category, ac.vat_rate, ac.exemption_reason, ac.exemption_code)
        if ac.charge:
            charges = charges + ac.amount
            g["basis"] = g["basis"] + ac.amount
        else:
            allowances = allowances + ac.amount
            g["basis"] = g["basis"] - ac.amount
    breakdown = []
    for (category, rate), g in sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        basis: Money = g["basis"]
        tax = basis.multiply(rate / Decimal(100))
        breakdown.append(VatBreakdown(category=category, rate=rate, taxable_amount=basis, tax_amount=tax,
                                      exemption_reason=g["reason"], exemption_code=g["code"]))
    line_total = money_sum(line_nets, currency)
    tax_exclusive = line_total - allowances + charges
    vat_total = money_sum((b.tax_amount for b in breakdown), currency)
    total = tax_exclusive + vat_total
    prepaid = prepaid or Money.zero(currency)
    return Totals(line_total=line_total, allowance_total=allowances, charge_total=charges,
                  tax_exclusive=tax_exclusive, vat_total=vat_total, total=total, prepaid=prepaid,
                  payable=total - prepaid, vat_breakdown=tuple(breakdown))


# -- the invoice --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    customer_id: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    totals: Totals
    created_at: datetime
    updated_at: datetime
    kind: str = INVOICE
    status: str = DRAFT
    allowances_charges: tuple[AllowanceCharge, ...] = ()
    number: str | None = None
    series: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    requested_due_date: date | None = None
    payment_terms: PaymentTerms | None = None
    purchase_order: str | None = None
    buyer_reference: str | None = None
    note: str | None = None
    delivery_date: date | None = None
    related_invoice_id: str | None = None
    seller: dict[str, Any] | None = None
    buyer: dict[str, Any] | None = None
    amount_paid: int = 0
    amount_credited: int = 0
    amount_discounted: int = 0
    amount_written_off: int = 0
    amount_reversed: int = 0
    collection_status: str = "none"      # none, scheduled, processing, failed
    collection_failure: str | None = None
    dispute_status: str = "none"         # none, open (a customer contests it), accepted, rejected
    chargeback_status: str = "none"      # none, open, won, lost
    dunning_step: str | None = None
    pay_token: str | None = None         # the stable /pay/{token} link (rotated, never reused)
    payment_link: dict[str, Any] | None = None  # provider link for the current amount: {id, url, amount}
    # Electronic invoicing (docs/einvoicing.md): reform mentions set on the draft...
    operation_category: str | None = None     # goods, services or mixed (None: the e-invoicing default)
    deliver_to: dict[str, Any] | None = None   # {"country", "name", "address"} when not delivered to the buyer
    eur_exchange_rate: Decimal | None = None   # EUR per unit of a non-EUR currency (VAT total in EUR, BT-111)
    deposit_invoice_ids: tuple[str, ...] = ()  # paid deposit invoices (386) this final invoice deducts (BT-113)
    # ...and what issuing and delivery recorded.
    documents: dict[str, Any] | None = None    # Factur-X files: keys, SHA-256 and the render spec
    delivery: dict[str, Any] | None = None     # the email to the buyer: status, message id, history
    einvoice: dict[str, Any] | None = None     # the certified platform: status, submission id, history
    credit_notes: tuple[dict[str, Any], ...] = ()  # credit notes issued against this invoice
    # Dated movements of the open balance (aggregates.ReceivableHistory as a dict): what the
    # report aggregates were built from; internal, never shown in the API.
    ledger_history: dict[str, Any] | None = None
    issued_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    version: int = 0

    # -- derived --------------------------------------------------------------------------------
    def money(self, minor: int) -> Money:
        return Money(minor, self.currency)

    @property
    def amount_due(self) -> Money:
        if self.status in (DRAFT, VOID):
            return Money.zero(self.currency) if self.status == VOID else self.totals.payable
        return self.money(self.totals.payable.amount - self.amount_paid - self.amount_credited
                          - self.amount_discounted - self.amount_written_off + self.amount_reversed)

    def is_overdue(self, today: date) -> bool:
        return self.status == OPEN and self.due_date is not None and self.due_date < today

    def days_overdue(self, today: date) -> int:
        return (today - self.due_date).days if self.is_overdue(today) and self.due_date else 0

    # -- transitions ------------------------------------------------------------------------------
    def _settled(self, now: datetime) -> Invoice:
        """Recompute open/paid from the amounts (statuses outside that pair never move here)."""
        if self.status not in (OPEN, PAID):
            return self
        due = self.amount_due.amount
        if due < 0:
            raise ValidationError(f"invoice {self.number} would be overpaid by {self.money(-due)} {self.currency}")
        if due == 0:
            return replace(self, status=PAID, paid_at=self.paid_at or now, updated_at=now)
        return replace(self, status=OPEN, paid_at=None, updated_at=now)

    def issue(self, *, number: str, series: str, issue_date: date, terms: PaymentTerms, eom_mode: str,
              jurisdiction: str, seller: dict[str, Any], buyer: dict[str, Any], now: datetime) -> Invoice:
        if self.status != DRAFT:
            raise InvalidTransition(f"invoice {self.id} is {self.status}, only drafts can be issued"
                                    + (f" (it was issued as {self.number})" if self.number else ""))
        if not self.lines:
            raise ValidationError("an invoice needs at least one line before it can be issued", field="lines")
        if self.requested_due_date is not None:
            check_due_date_legal(issue_date, self.requested_due_date, jurisdiction)
            due = self.requested_due_date
        else:
            terms.check_legal(jurisdiction)
            due = terms.due_date(issue_date, eom_mode)
        issued = replace(self, status=OPEN, number=number, series=series, issue_date=issue_date, due_date=due,
                         payment_terms=terms, seller=seller, buyer=buyer, issued_at=now, updated_at=now)
        return issued._settled(now)

    def _require_settleable(self, what: str) -> None:
        if self.status not in (OPEN, PAID):
            raise InvalidTransition(f"cannot {what} invoice {self.number or self.id}: it is {self.status}")

    def apply_payment(self, amount: Money, now: datetime) -> Invoice:
        """Allocate cash to this invoice; refuses more than the amount due."""
        self._require_settleable("allocate a payment to")
        self._check_amount(amount)
        if amount > self.amount_due:
            raise ValidationError(
                f"allocation of {amount} {amount.currency} exceeds the {self.amount_due} {self.currency} due on "
                f"invoice {self.number}: allocate at most the amount due", field="amount",
                code="overallocation")
        return replace(self, amount_paid=self.amount_paid + amount.amount)._settled(now)

    def apply_credit(self, amount: Money, now: datetime) -> Invoice:
        """A credit note reduces what is due; a full one on an unpaid invoice voids it."""
        self._require_settleable("credit")
        self._check_amount(amount)
        if amount > self.amount_due:
            raise ValidationError(f"credit of {amount} exceeds the {self.amount_due} {self.currency} due",
                                  field="amount")
        credited = replace(self, amount_credited=self.amount_credited + amount.amount)
        if credited.amount_due.is_zero and self.amount_paid == self.amount_reversed:
            return replace(credited, status=VOID, voided_at=now, updated_at=now)
        return credited._settled(now)

    def as_applied_credit_note(self, now: datetime) -> Invoice:
        """An issued credit note whose whole value went to the invoice it corrects (``apply_credit``):
        nothing is due on the credit note itself, so it has no due date, its amount shows as credited
        and it never waits in a queue of open invoices (nor can a payment be allocated to it)."""
        if self.kind != CREDIT_NOTE or self.status not in (OPEN, PAID):
            raise InvalidTransition(f"{self.number or self.id} is not an issued credit note")
        return replace(self, due_date=None, amount_credited=self.totals.payable.amount, status=PAID,
                       paid_at=self.paid_at or now, updated_at=now)

    def with_prepaid(self, prepaid: Money, now: datetime) -> Invoice:
        """A final invoice deducting deposits already paid (BT-113): what is payable drops by ``prepaid``
        and the status follows (a final invoice fully paid by its deposits is issued paid)."""
        self._require_settleable("deduct deposits from")
        if prepaid.currency != self.currency:
            raise ValidationError(f"deposits in {prepaid.currency} cannot be deducted from an invoice in "
                                  f"{self.currency}", field="deposit_invoice_ids")
        if prepaid > self.totals.total:
            raise ValidationError(f"the deposits paid ({prepaid} {self.currency}) exceed this invoice's total "
                                  f"({self.totals.total} {self.currency})", field="deposit_invoice_ids")
        totals = compute_totals(self.lines, self.allowances_charges, self.currency, prepaid=prepaid)
        return replace(self, totals=totals)._settled(now)

    def reverse_payment(self, amount: Money, now: datetime) -> Invoice:
        """A refund or chargeback puts money back to collect: the invoice reopens."""
        self._require_settleable("reverse a payment on")
        self._check_amount(amount)
        if amount.amount > self.amount_paid - self.amount_reversed:
            raise ValidationError(f"cannot reverse {amount}: only {self.money(self.amount_paid - self.amount_reversed)} "
                                  f"{self.currency} was paid", field="amount")
        return replace(self, amount_reversed=self.amount_reversed + amount.amount)._settled(now)

    def restore_reversal(self, amount: Money, now: datetime) -> Invoice:
        """A chargeback won back: the reversed amount counts as paid again."""
        self._require_settleable("restore a payment on")
        self._check_amount(amount)
        restored = min(amount.amount, self.amount_reversed)
        return replace(self, amount_reversed=self.amount_reversed - restored)._settled(now)

    def early_payment_discount(self, rate: Decimal, days: int, today: date) -> Money | None:
        """The escompte offered today, or None outside the window.

        The seller's terms give ``rate`` percent off the amount payable when the
        whole invoice is paid within ``days`` of its issue date (so nothing may
        have been paid on it yet).
        """
        if self.status != OPEN or self.issue_date is None or self.amount_paid or self.amount_credited:
            return None
        if (today - self.issue_date).days > days or rate <= 0:
            return None
        discount = self.totals.payable.multiply(rate / Decimal(100))
        return discount if discount.is_positive and discount < self.amount_due else None

    def settle_with_discount(self, paid: Money, discount: Money, now: datetime) -> Invoice:
        """Payment of the discounted amount inside the window settles the invoice in full;
        the discount is recorded as such (books, VAT adjustment), not left to chase."""
        self._require_settleable("settle")
        self._check_amount(paid)
        if paid.amount + discount.amount != self.amount_due.amount:
            raise ValidationError(f"{paid} + discount {discount} does not settle the {self.amount_due} due",
                                  field="amount")
        return replace(self, amount_paid=self.amount_paid + paid.amount,
                       amount_discounted=self.amount_discounted + discount.amount)._settled(now)

    def _check_amount(self, amount: Money) -> None:
        if amount.currency != self.currency:
            raise ValidationError(f"amount is in {amount.currency} but invoice {self.number or self.id} is in "
                                  f"{self.currency}", field="currency", code="currency_mismatch")
        if not amount.is_positive:
            raise ValidationError("amount must be greater than 0", field="amount")

    # -- serialisation ----------------------------------------------------------------------------
    def to_dict(self, today: date | None = None) -> dict[str, Any]:
        t = self.totals
        return {
            "id": self.id, "object": "invoice", "kind": self.kind, "type_code": TYPE_CODES[self.kind],
            "number": self.number, "status": self.status, "customer_id": self.customer_id,
            "currency": self.currency,
            "issue_date": self.issue_date.isoformat() if self.issue_date else None,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "requested_due_date": self.requested_due_date.isoformat() if self.requested_due_date else None,
            "payment_terms": self.payment_terms.to_dict() if self.payment_terms else None,
            "lines": [line.to_dict(self.currency) for line in self.lines],
            "allowances_charges": [ac.to_dict() for ac in self.allowances_charges],
            "subtotal": str(t.tax_exclusive), "vat_total": str(t.vat_total), "total": str(t.total),
            "totals": t.to_dict(),
            "amount_paid": str(self.money(self.amount_paid - self.amount_reversed)),
            "amount_credited": str(self.money(self.amount_credited)),
            "amount_discounted": str(self.money(self.amount_discounted)),
            "amount_written_off": str(self.money(self.amount_written_off)),
            "amount_due": str(self.amount_due),
            "overdue": self.is_overdue(today) if today else False,
            "days_overdue": self.days_overdue(today) if today else 0,
            "purchase_order": self.purchase_order, "buyer_reference": self.buyer_reference, "note": self.note,
            "delivery_date": self.delivery_date.isoformat() if self.delivery_date else None,
            "related_invoice_id": self.related_invoice_id,
            "seller": self.seller, "buyer": self.buyer,
            "collection_status": self.collection_status, "collection_failure": self.collection_failure,
            "dispute_status": self.dispute_status, "chargeback_status": self.chargeback_status,
            "dunning_step": self.dunning_step,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            "paid_at": self.paid_at.isoformat() if self.paid_at else None,
            "voided_at": self.voided_at.isoformat() if self.voided_at else None,
            "operation_category": self.operation_category, "deliver_to": self.deliver_to,
            "eur_exchange_rate": str(self.eur_exchange_rate) if self.eur_exchange_rate is not None else None,
            "deposit_invoice_ids": list(self.deposit_invoice_ids),
            "documents": ({k: self.documents.get(k) for k in ("sha256_pdf", "sha256_xml")}
                          if self.documents else None),
            "delivery": self.delivery, "einvoice": self.einvoice, "credit_notes": list(self.credit_notes),
            "version": self.version,
        }


# Fields of a draft a client may set (POST /invoices and PATCH /invoices/{id}).
DRAFT_FIELDS = ("customer_id", "currency", "kind", "lines", "allowances_charges", "payment_terms", "due_date",
                "purchase_order", "buyer_reference", "note", "delivery_date",
                "operation_category", "deliver_to", "eur_exchange_rate", "deposit_invoice_ids")
OPERATION_CATEGORIES = ("goods", "services", "mixed")
MAX_DEPOSITS = 20


def _einvoicing_values(data: Mapping[str, Any], currency: str) -> dict[str, Any]:
    """The French e-invoicing reform's draft fields (docs/einvoicing.md)."""
    out: dict[str, Any] = {}
    category = data.get("operation_category")
    if category is not None and category not in OPERATION_CATEGORIES:
        raise ValidationError("operation_category must be goods, services or mixed (the \"catégorie de "
                              "l'opération\" the reform makes mandatory)", field="operation_category")
    out["operation_category"] = category
    deliver_to = data.get("deliver_to")
    if deliver_to is None:
        out["deliver_to"] = None
    elif isinstance(deliver_to, Mapping):
        from .identifiers import country
        from .parties import Address

        reject_unknown(deliver_to, ("country", "name", "address"), "deliver_to.")
        address = (Address.from_input(deliver_to["address"], "deliver_to.address.").to_dict()
                   if deliver_to.get("address") is not None else None)
        code = deliver_to.get("country") or (address or {}).get("country")
        if not code:
            raise ValidationError("deliver_to.country is required: the ISO 3166 code of the delivery country",
                                  field="deliver_to.country")
        out["deliver_to"] = {"country": country(str(code), "deliver_to.country"),
                             "name": _text(deliver_to.get("name"), "deliver_to.name", required=False, max_len=200),
                             "address": address}
    else:
        raise ValidationError("deliver_to must be an object like {\"country\": \"DE\", \"name\": ..., "
                              "\"address\": {...}}", field="deliver_to")
    rate = data.get("eur_exchange_rate")
    if rate is None or rate == "":
        out["eur_exchange_rate"] = None
    else:
        value = rate if isinstance(rate, Decimal) else _parse_decimal(rate, "eur_exchange_rate", 6)
        if value <= 0:
            raise ValidationError("eur_exchange_rate must be greater than 0 (EUR for one unit of the invoice "
                                  "currency)", field="eur_exchange_rate")
        if currency == "EUR":
            raise ValidationError("eur_exchange_rate only applies to invoices in another currency than EUR",
                                  field="eur_exchange_rate")
        out["eur_exchange_rate"] = value
    deposits = data.get("deposit_invoice_ids") or []
    if (not isinstance(deposits, (list, tuple)) or len(deposits) > MAX_DEPOSITS
            or not all(isinstance(d, str) and 0 < len(d) <= 64 for d in deposits)):
        raise ValidationError(f"deposit_invoice_ids must be a list of at most {MAX_DEPOSITS} invoice ids",
                              field="deposit_invoice_ids")
    if len(set(deposits)) != len(deposits):
        raise ValidationError("deposit_invoice_ids lists the same deposit twice", field="deposit_invoice_ids")
    out["deposit_invoice_ids"] = tuple(deposits)
    return out


def _largest(currency: str) -> str:
    return str(Money(MAX_MINOR - 1, currency))


def _check_line_nets(lines: Sequence[InvoiceLine], currency: str) -> None:
    """Each line net (quantity x unit price) fits the ledger's amounts, like any parsed amount."""
    scale = Decimal(10) ** minor_units(currency)
    for i, line in enumerate(lines):
        with localcontext() as ctx:
            ctx.prec = 60  # exact: 18 digits x 16 digits
            net = line.quantity * line.unit_price * scale
        if net >= MAX_MINOR:
            raise ValidationError(
                f"lines[{i}] amounts to {line.quantity} x {line.unit_price}, more than the largest amount of "
                f"{_largest(currency)} {currency}: lower the quantity or the unit price, or split the line "
                "over several invoices", field=f"lines[{i}]")


def _check_totals(totals: Totals) -> None:
    """The document totals fit the ledger's amounts too (500 lines of large nets could exceed them)."""
    currency = totals.total.currency
    for name, amount, field in (("line total", totals.line_total, "lines"),
                                ("charge total", totals.charge_total, "allowances_charges"),
                                ("total without VAT", totals.tax_exclusive, "lines"),
                                ("VAT total", totals.vat_total, "lines"), ("total", totals.total, "lines")):
        if abs(amount.amount) >= MAX_MINOR:
            raise ValidationError(
                f"the invoice {name} would be {amount} {currency}, more than the largest amount of "
                f"{_largest(currency)} {currency}: split it over several invoices", field=field)


def _draft_values(data: Mapping[str, Any], currency: str) -> dict[str, Any]:
    """Validate the content fields of a draft (everything except customer and currency)."""
    out: dict[str, Any] = {}
    lines = data.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ValidationError("lines must be a non-empty list: an invoice needs at least one line", field="lines")
    if len(lines) > MAX_LINES:
        raise ValidationError(f"an invoice has at most {MAX_LINES} lines", field="lines")
    out["lines"] = tuple(InvoiceLine.from_input(line, i) for i, line in enumerate(lines))
    acs = data.get("allowances_charges") or []
    if not isinstance(acs, list) or len(acs) > 50:
        raise ValidationError("allowances_charges must be a list of at most 50 items", field="allowances_charges")
    out["allowances_charges"] = tuple(AllowanceCharge.from_input(ac, i, currency) for i, ac in enumerate(acs))
    terms = data.get("payment_terms")
    if terms is None:
        out["payment_terms"] = None
    elif isinstance(terms, PaymentTerms):
        out["payment_terms"] = terms
    elif isinstance(terms, Mapping):
        reject_unknown(terms, ("kind", "days"), "payment_terms.")
        out["payment_terms"] = PaymentTerms(kind=terms.get("kind", "net"), days=terms.get("days", 30))
    else:
        raise ValidationError("payment_terms must be an object like {\"kind\": \"net\", \"days\": 30}",
                              field="payment_terms")
    due = data.get("due_date")
    out["requested_due_date"] = due if isinstance(due, date) else _parse_date(due, "due_date") if due else None
    out["purchase_order"] = _text(data.get("purchase_order"), "purchase_order", required=False, max_len=100)
    out["buyer_reference"] = _text(data.get("buyer_reference"), "buyer_reference", required=False, max_len=100)
    out["note"] = _text(data.get("note"), "note", required=False, max_len=2000, multiline=True)
    delivery = data.get("delivery_date")
    out["delivery_date"] = (delivery if isinstance(delivery, date)
                            else _parse_date(delivery, "delivery_date") if delivery else None)
    _check_line_nets(out["lines"], currency)
    totals = compute_totals(out["lines"], out["allowances_charges"], currency)
    _check_totals(totals)
    if totals.total.is_negative:
        raise ValidationError("allowances exceed the invoice lines: the total would be negative",
                              field="allowances_charges")
    out["totals"] = totals
    out.update(_einvoicing_values(data, currency))
    return out


def new_draft(invoice_id: str, data: Mapping[str, Any], *, customer_currency: str, now: datetime) -> Invoice:
    currency = check_currency(data.get("currency") or customer_currency)
    kind = data.get("kind") or INVOICE
    if kind not in (INVOICE, DEPOSIT):
        raise ValidationError("kind must be \"invoice\" or \"deposit\" (credit notes are issued from an invoice)",
                              field="kind")
    values = _draft_values(data, currency)
    return Invoice(id=invoice_id, customer_id=str(data["customer_id"]), currency=currency, kind=kind,
                   created_at=now, updated_at=now, **values)


def patched_draft(invoice: Invoice, patch: Mapping[str, Any], *, now: datetime) -> Invoice:
    if invoice.status != DRAFT:
        raise InvalidTransition(f"invoice {invoice.number or invoice.id} is {invoice.status}: an issued invoice is "
                                "never edited (issue a credit note to correct it)")
    if "customer_id" in patch and patch["customer_id"] != invoice.customer_id:
        raise ValidationError("customer_id of a draft cannot change: create a new draft for the other customer",
                              field="customer_id")
    current: dict[str, Any] = {
        "lines": [line.to_dict() for line in invoice.lines],
        "allowances_charges": [ac.to_dict() for ac in invoice.allowances_charges],
        "payment_terms": invoice.payment_terms, "due_date": invoice.requested_due_date,
        "purchase_order": invoice.purchase_order, "buyer_reference": invoice.buyer_reference,
        "note": invoice.note, "delivery_date": invoice.delivery_date,
        "operation_category": invoice.operation_category, "deliver_to": invoice.deliver_to,
        "eur_exchange_rate": invoice.eur_exchange_rate, "deposit_invoice_ids": list(invoice.deposit_invoice_ids),
    }
    currency = check_currency(patch.get("currency") or invoice.currency)
    kind = patch.get("kind") or invoice.kind
    if kind not in (INVOICE, DEPOSIT):
        raise ValidationError("kind must be \"invoice\" or \"deposit\"", field="kind")
    merged = {**current, **{k: v for k, v in patch.items() if k not in ("currency", "kind", "customer_id")}}
    values = _draft_values(merged, currency)
    return replace(invoice, currency=currency, kind=kind, updated_at=now, **values)


def format_number(prefix: str, year: int, sequence: int) -> str:
    """Gapless per-series, per-year number, e.g. F2026-000001."""
    return f"{prefix}{year}-{sequence:06d}"
