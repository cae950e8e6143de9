"""One resolved view of an issued invoice, shared by the XML and the PDF.

:func:`build_model` checks that an EN 16931 document can be made from the
invoice and its :class:`DocumentContext` (the rules whose inputs the domain does
not guarantee: VAT identifiers per category, the "not subject to VAT" rules,
intra-community delivery data, deposits, exchange rate, payment means...), then
computes every value both renderings need, in the buyer's language. Building
both documents from the same model keeps what the PDF shows and what the XML
says identical.

Raises :class:`~chalicelib.domain.errors.ValidationError` with code
``invalid_einvoice`` and the EN 16931 rule in the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Mapping

from ...domain import creditor_reference
from ...domain.errors import ValidationError
from ...domain.identifiers import COUNTRIES
from ...domain.invoice import (CREDIT_NOTE, EXEMPT, EXPORT, INTRA_COMMUNITY, OUT_OF_SCOPE,
                               REVERSE_CHARGE, STANDARD, TYPE_CODES, ZERO, Invoice, VatBreakdown)
from ...domain.money import Money, money_sum
from ...domain.parties import Address, EarlyPaymentDiscount
from .codelists import ALLOWANCE_REASON_CODES, CHARGE_REASON_CODES, VATEX_CODES
from .context import (GOODS, MIXED, OPERATION_CATEGORIES, PAYMENT_MEANS, SEPA_CREDIT_TRANSFER, SEPA_DIRECT_DEBIT,
                      SERVICES, DeliverTo, DepositDeduction, DocumentContext, PrecedingInvoice)
from .texts import Formatter, language_of, nfc

INVALID = "invalid_einvoice"
LEGAL_INDEMNITY = Money(4000, "EUR")

# BT-23 business process: the "cadre de facturation" of the French e-invoicing
# specifications (B = goods, S = services, M = mixed; 1 = plain invoice,
# 4 = final invoice after deposits).
BUSINESS_PROCESS = {(GOODS, False): "B1", (SERVICES, False): "S1", (MIXED, False): "M1",
                    (GOODS, True): "B4", (SERVICES, True): "S4", (MIXED, True): "M4"}
# BT-8, UNTDID 2475: VAT becomes due on the invoice date when the seller opted for VAT on debits.
VAT_POINT_INVOICE_DATE = "5"
# Categories whose invoices must carry the seller's VAT identifier (BR-S/Z/E/AE/IC/G-02..04).
NEEDS_SELLER_VAT = (STANDARD, ZERO, EXEMPT, REVERSE_CHARGE, INTRA_COMMUNITY, EXPORT)


def invalid(message: str, field: str | None = None) -> ValidationError:
    return ValidationError(f"cannot build a compliant EN 16931 e-invoice: {message}", field=field, code=INVALID)


@dataclass(frozen=True, slots=True)
class Party:
    """Seller or buyer as printed and as written to the XML."""

    name: str
    country: str
    address: Address | None
    siren: str | None
    siret: str | None
    vat_number: str | None        # printed on the PDF
    xml_vat_number: str | None    # BT-31 / BT-48 (absent on "not subject to VAT" invoices, BR-O-02)
    email: str | None
    phone: str | None = None
    trade_name: str | None = None
    legal_info: str | None = None  # BT-33: legal form, share capital, RCS


@dataclass(frozen=True, slots=True)
class Note:
    text: str
    subject_code: str | None = None


@dataclass(frozen=True, slots=True)
class DocumentModel:
    invoice: Invoice
    context: DocumentContext
    fmt: Formatter
    type_code: str
    number: str
    issue_date: date
    due_date: date | None
    currency: str
    seller: Party
    buyer: Party
    business_process: str
    prepaid: Money                       # BT-113
    payable: Money                       # BT-115
    deposits: tuple[DepositDeduction, ...]
    preceding: tuple[PrecedingInvoice, ...]   # BG-3
    delivery_date: date | None           # BT-72
    period: tuple[date | None, date | None] | None   # BG-14
    deliver_to: DeliverTo | None
    tax_currency: str | None             # BT-6
    vat_total_eur: Money | None          # BT-111
    payment_means: str | None            # BT-81 (None on credit notes)
    payment_reference: str               # BT-83
    iban: str | None
    bic: str | None
    creditor_id: str | None
    mandate_reference: str | None
    debtor_iban: str | None
    terms_text: str                      # BT-20
    notes: tuple[Note, ...]              # BT-21/BT-22
    legal_mentions: tuple[str, ...]      # printed at the bottom of the PDF
    exemption_mentions: tuple[str, ...]
    vat_point_code: str | None           # BT-8
    pay_url: str | None

    @property
    def is_credit_note(self) -> bool:
        return self.invoice.kind == CREDIT_NOTE

    @property
    def out_of_scope(self) -> bool:
        return any(b.category == OUT_OF_SCOPE for b in self.invoice.totals.vat_breakdown)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = nfc(str(value)).strip()
    return text or None


def _address(data: Any) -> Address | None:
    if isinstance(data, Address):
        return data
    if isinstance(data, Mapping) and data.get("country"):
        return Address(line1=nfc(str(data.get("line1") or "")), line2=_text(data.get("line2")),
                       postal_code=str(data.get("postal_code") or ""), city=nfc(str(data.get("city") or "")),
                       country=str(data["country"]).upper())
    return None


def _categories(invoice: Invoice) -> set[str]:
    cats = {line.vat_category for line in invoice.lines}
    cats.update(ac.vat_category for ac in invoice.allowances_charges)
    cats.update(b.category for b in invoice.totals.vat_breakdown)
    return cats


def _seller_term(seller: Mapping[str, Any], key: str, fallback: Any) -> Any:
    value = seller.get(key)
    return value if value is not None else fallback


def _check_codes(invoice: Invoice) -> None:
    for i, line in enumerate(invoice.lines):
        if line.exemption_code and line.exemption_code not in VATEX_CODES:
            raise invalid(f"lines[{i}].exemption_code {line.exemption_code} is not a CEF VATEX code (BR-CL-22)",
                          f"lines[{i}].exemption_code")
    for i, ac in enumerate(invoice.allowances_charges):
        name = f"allowances_charges[{i}]"
        if ac.exemption_code and ac.exemption_code not in VATEX_CODES:
            raise invalid(f"{name}.exemption_code {ac.exemption_code} is not a CEF VATEX code (BR-CL-22)",
                          f"{name}.exemption_code")
        if ac.reason_code:
            codes, rule, lst = ((CHARGE_REASON_CODES, "BR-CL-20", "UNTDID 7161") if ac.charge
                                else (ALLOWANCE_REASON_CODES, "BR-CL-19", "UNTDID 5189"))
            if ac.reason_code not in codes:
                raise invalid(f"{name}.reason_code {ac.reason_code} is not in {lst} ({rule})", f"{name}.reason_code")


def _check_vat_rules(invoice: Invoice, seller: Mapping[str, Any], buyer: Mapping[str, Any],
                     delivery_date: date | None, period: Any, deliver_to: DeliverTo | None) -> None:
    cats = _categories(invoice)
    if OUT_OF_SCOPE in cats and len(cats) > 1:
        others = ", ".join(sorted(cats - {OUT_OF_SCOPE}))
        raise invalid(f"an invoice with lines not subject to VAT (category O) cannot also have categories {others} "
                      "(BR-O-11..14): issue separate invoices", "lines")
    if not seller.get("vat_number"):
        needing = sorted(cats & set(NEEDS_SELLER_VAT))
        if needing:
            rule = {"S": "BR-S-02", "Z": "BR-Z-02", "E": "BR-E-02", "AE": "BR-AE-02", "K": "BR-IC-02",
                    "G": "BR-G-02"}[needing[0]]
            raise invalid(f"VAT category {needing[0]} requires the seller's VAT identifier (BT-31, {rule}): "
                          "set vat_number in the seller settings", "seller.vat_number")
    if REVERSE_CHARGE in cats and not (buyer.get("vat_number") or buyer.get("siren")):
        raise invalid("reverse charge (category AE) requires the buyer's VAT identifier or legal registration "
                      "identifier (BT-48/BT-47, BR-AE-02): set the customer's vat_number", "buyer.vat_number")
    if INTRA_COMMUNITY in cats:
        if not buyer.get("vat_number"):
            raise invalid("an intra-community supply (category K) requires the buyer's VAT identifier (BT-48, "
                          "BR-IC-02): set the customer's vat_number", "buyer.vat_number")
        if delivery_date is None and period is None:
            raise invalid("an intra-community supply (category K) requires the actual delivery date (BT-72) or an "
                          "invoicing period (BR-IC-11): set delivery_date", "delivery_date")
        if deliver_to is None:
            raise invalid("an intra-community supply (category K) requires the deliver-to country (BT-80, "
                          "BR-IC-12): pass deliver_to in the document context", "deliver_to")


def build_model(invoice: Invoice, context: DocumentContext) -> DocumentModel:
    """Check and resolve everything the documents show; raises ``ValidationError`` (invalid_einvoice)."""
    if invoice.number is None or invoice.issue_date is None or not invoice.seller or not invoice.buyer:
        raise invalid(f"invoice {invoice.id} is a draft: only issued invoices (with a number, an issue date, "
                      "seller and buyer identities) have documents", "status")
    seller, buyer, currency = invoice.seller, invoice.buyer, invoice.currency
    fmt = Formatter(language_of(buyer))
    if context.operation_category not in OPERATION_CATEGORIES:
        raise invalid(f"operation_category must be one of {', '.join(OPERATION_CATEGORIES)} (French mention "
                      "\"catégorie de l'opération\")", "operation_category")
    if context.payment_means not in PAYMENT_MEANS:
        raise invalid("payment_means must be \"58\" (SEPA credit transfer) or \"59\" (SEPA direct debit)",
                      "payment_means")
    _check_codes(invoice)

    # -- delivery -------------------------------------------------------------------------------
    delivery_date = context.delivery_date or invoice.delivery_date
    starts = [line.period_start for line in invoice.lines if line.period_start]
    ends = [line.period_end for line in invoice.lines if line.period_end]
    period = (min(starts) if starts else None, max(ends) if ends else None) if starts or ends else None
    if period and period[0] and period[1] and period[1] < period[0]:
        raise invalid("the invoicing period ends before it starts (BR-29)", "lines")
    deliver_to = context.deliver_to
    if deliver_to is not None and deliver_to.country not in COUNTRIES:
        raise invalid(f"deliver_to.country {deliver_to.country!r} is not an ISO 3166 country code (BR-CL-14)",
                      "deliver_to.country")
    _check_vat_rules(invoice, seller, buyer, delivery_date, period, deliver_to)
    out_of_scope = OUT_OF_SCOPE in _categories(invoice)

    # -- parties --------------------------------------------------------------------------------
    seller_party = _seller_party(seller, fmt, out_of_scope)
    buyer_address = _address(buyer.get("address"))
    buyer_party = Party(
        name=nfc(str(buyer.get("name") or "")), country=str(buyer.get("country") or
                                                           (buyer_address.country if buyer_address else "")),
        address=buyer_address, siren=_text(buyer.get("siren")), siret=_text(buyer.get("siret")),
        vat_number=_text(buyer.get("vat_number")),
        xml_vat_number=None if out_of_scope else _text(buyer.get("vat_number")),
        email=_text(buyer.get("email")))
    if not buyer_party.name or buyer_party.country not in COUNTRIES:
        raise invalid("the buyer needs a name and a country code (BR-07, BR-11)", "buyer")

    # -- amounts --------------------------------------------------------------------------------
    totals = invoice.totals
    deposits = tuple(context.deposits)
    for d in deposits:
        if d.amount.currency != currency:
            raise invalid(f"deposit {d.number} is in {d.amount.currency}, the invoice in {currency}", "deposits")
        if not d.amount.is_positive:
            raise invalid(f"deposit {d.number} must have a positive amount", "deposits")
    deducted = money_sum((d.amount for d in deposits), currency)
    if totals.prepaid.is_zero:
        prepaid = deducted
    else:
        prepaid = totals.prepaid
        if deposits and deducted != prepaid:
            raise invalid(f"the deposits deducted ({deducted} {currency}) differ from the invoice's prepaid amount "
                          f"({prepaid} {currency})", "deposits")
    if prepaid > totals.total:
        raise invalid(f"the deposits deducted ({prepaid} {currency}) exceed the invoice total "
                      f"({totals.total} {currency})", "deposits")
    payable = totals.total - prepaid

    tax_currency, vat_total_eur = None, None
    if currency != "EUR":
        rate = context.eur_exchange_rate
        if rate is None:
            if seller_party.country == "FR":
                raise invalid(f"a French seller invoicing in {currency} must state the VAT total in EUR (VAT "
                              "directive art. 230, BT-6/BT-111): pass eur_exchange_rate", "eur_exchange_rate")
        else:
            if rate <= 0:
                raise invalid("eur_exchange_rate must be greater than 0", "eur_exchange_rate")
            tax_currency = "EUR"
            vat_total_eur = Money.of_decimal(totals.vat_total.to_decimal() * rate, "EUR")

    # -- references -----------------------------------------------------------------------------
    preceding: list[PrecedingInvoice] = []
    if invoice.kind == CREDIT_NOTE:
        if context.preceding_invoice is None:
            raise invalid("a credit note must reference the invoice it corrects (BG-3): pass preceding_invoice",
                          "preceding_invoice")
        preceding.append(context.preceding_invoice)
    elif context.preceding_invoice is not None:
        preceding.append(context.preceding_invoice)
    preceding.extend(PrecedingInvoice(d.number, d.issue_date) for d in deposits)

    # -- payment --------------------------------------------------------------------------------
    means: str | None = None if invoice.kind == CREDIT_NOTE else context.payment_means
    creditor_id = context.creditor_id or _text(seller.get("sepa_creditor_id"))
    iban, bic = _text(seller.get("iban")), _text(seller.get("bic"))
    if means == SEPA_DIRECT_DEBIT:
        if not context.mandate_reference:
            raise invalid("SEPA direct debit needs the mandate reference (BT-89): pass mandate_reference",
                          "mandate_reference")
        if not creditor_id:
            raise invalid("SEPA direct debit needs the creditor identifier (BT-90): set sepa_creditor_id in the "
                          "seller settings", "creditor_id")
    if means == SEPA_CREDIT_TRANSFER and not iban:
        raise invalid("SEPA credit transfer needs the seller's IBAN (BT-84, BR-61)", "seller.iban")
    reference = _text(context.payment_reference) or invoice.number
    if reference.upper().startswith("RF") and reference[2:4].isdigit():
        try:
            reference = creditor_reference.validate(reference, "payment_reference")
        except ValidationError as exc:
            raise invalid(f"payment_reference is not a valid ISO 11649 reference: {exc.message}",
                          "payment_reference") from None

    # -- texts ----------------------------------------------------------------------------------
    penalty_rate = _seller_term(seller, "late_penalty_rate", context.late_penalty_rate)
    discount = _seller_term(seller, "early_payment_discount", context.early_payment_discount)
    indemnity = _seller_term(seller, "recovery_indemnity", context.recovery_indemnity)
    vat_on_debits = bool(_seller_term(seller, "vat_on_debits", context.vat_on_debits))
    penalty_text = (fmt.t("penalty.rate", rate=fmt.decimal(Decimal(str(penalty_rate)), 4))
                    if penalty_rate is not None else fmt.t("penalty.legal"))
    indemnity_money = _money(indemnity) or LEGAL_INDEMNITY
    indemnity_text = fmt.t("indemnity", amount=fmt.money_compact(indemnity_money))
    discount_value = _discount(discount)
    discount_text = (fmt.t("discount", rate=fmt.decimal(discount_value.rate, 2), days=discount_value.days)
                     if discount_value else fmt.t("no_discount"))
    category_text = fmt.t(f"category.{context.operation_category}")
    debits_text = fmt.t("vat_on_debits") if vat_on_debits else None

    if invoice.kind == CREDIT_NOTE:
        original = preceding[0]
        terms_text = fmt.t("credit_note_terms", number=original.number)
    else:
        terms = invoice.payment_terms.describe(fmt.language) if invoice.payment_terms else None
        terms_text = ". ".join(t for t in (terms, penalty_text, indemnity_text, discount_text) if t)
    notes: list[Note] = []
    if invoice.note:
        notes.append(Note(nfc(invoice.note)))
    notes.extend(Note(nfc(n)) for n in context.extra_notes)
    notes.append(Note(category_text))
    if debits_text:
        notes.append(Note(debits_text, "TXD"))
    if deposits:
        colon = " : " if fmt.language == "fr" else ": "
        notes.append(Note("; ".join(fmt.t("deposit_row", number=d.number, date=fmt.short_date(d.issue_date))
                                    + colon + fmt.money(d.amount) for d in deposits)))
    notes.extend([Note(penalty_text, "PMD"), Note(indemnity_text, "PMT"), Note(discount_text, "AAB")])
    legal = tuple(t for t in (category_text, debits_text, penalty_text, indemnity_text, discount_text) if t)
    exemptions = tuple(_exemption_mention(b) for b in invoice.totals.vat_breakdown
                       if b.exemption_reason or b.exemption_code)

    return DocumentModel(
        invoice=invoice, context=context, fmt=fmt, type_code=TYPE_CODES[invoice.kind], number=invoice.number,
        issue_date=invoice.issue_date, due_date=invoice.due_date, currency=currency,
        seller=seller_party, buyer=buyer_party,
        business_process=BUSINESS_PROCESS[(context.operation_category, bool(deposits))],
        prepaid=prepaid, payable=payable, deposits=deposits, preceding=tuple(preceding),
        delivery_date=delivery_date, period=period, deliver_to=deliver_to,
        tax_currency=tax_currency, vat_total_eur=vat_total_eur,
        payment_means=means, payment_reference=reference, iban=iban, bic=bic,
        creditor_id=creditor_id if means == SEPA_DIRECT_DEBIT else None,
        mandate_reference=context.mandate_reference if means == SEPA_DIRECT_DEBIT else None,
        debtor_iban=context.debtor_iban if means == SEPA_DIRECT_DEBIT else None,
        terms_text=terms_text, notes=tuple(notes), legal_mentions=legal, exemption_mentions=exemptions,
        vat_point_code=VAT_POINT_INVOICE_DATE if vat_on_debits and not out_of_scope else None,
        pay_url=None if invoice.kind == CREDIT_NOTE else _text(context.pay_url),
    )


def _seller_party(seller: Mapping[str, Any], fmt: Formatter, out_of_scope: bool) -> Party:
    address = _address(seller.get("address"))
    if not seller.get("legal_name") or address is None:
        raise invalid("the seller needs a legal name and a postal address with a country (BR-06, BR-08, BR-09)",
                      "seller")
    info: list[str] = []
    legal_form = _text(seller.get("legal_form"))
    capital = seller.get("share_capital")
    if legal_form and capital:
        cap = Money.parse(str(capital), seller.get("share_capital_currency") or "EUR")
        info.append(f"{legal_form} {fmt.t('capital', amount=fmt.money_compact(cap))}")
    elif legal_form:
        info.append(legal_form)
    if seller.get("rcs"):
        info.append(nfc(str(seller["rcs"])))
    vat = _text(seller.get("vat_number"))
    return Party(name=nfc(str(seller["legal_name"])), country=address.country, address=address,
                 siren=_text(seller.get("siren")), siret=_text(seller.get("siret")), vat_number=vat,
                 xml_vat_number=None if out_of_scope else vat, email=_text(seller.get("email")),
                 phone=_text(seller.get("phone")), trade_name=_text(seller.get("trade_name")),
                 legal_info=", ".join(info) or None)


def _money(value: Any) -> Money | None:
    if value is None or isinstance(value, Money):
        return value
    return Money.parse(str(value), "EUR")


def _discount(value: Any) -> EarlyPaymentDiscount | None:
    if value is None or isinstance(value, EarlyPaymentDiscount):
        return value
    if isinstance(value, Mapping):
        return EarlyPaymentDiscount(rate=Decimal(str(value["rate"])), days=int(value["days"]))
    return None


def _exemption_mention(b: VatBreakdown) -> str:
    text = b.exemption_reason or ""
    if b.exemption_code and b.exemption_code not in text:
        text = f"{text} ({b.exemption_code})" if text else b.exemption_code
    return nfc(text)
