"""Reading invoices issued elsewhere: UN/CEFACT CII XML (EN 16931), bare or inside a Factur-X PDF.

The XML is parsed with lxml with every dangerous feature off (no DTD, no entities, no
network) and read by the EN 16931 business terms an open receivable needs:

========  ==============================================================================
BT-1      ``rsm:ExchangedDocument/ram:ID`` (the number, kept as is)
BT-3      ``ram:TypeCode`` (380 invoice, 386 prepayment, 381 credit note refused...)
BT-2/9    issue date, payment due date (``udt:DateTimeString format="102"``)
BT-5      ``ram:InvoiceCurrencyCode``
BG-7      buyer: name (BT-44), identifier (BT-46 ``ram:ID`` or ``ram:GlobalID``), legal
          registration (BT-47, a SIREN with scheme 0002), VAT number (BT-48), electronic
          address (BT-49, scheme EM) or contact email (BT-58), postal address (BG-8)
BG-25     lines: name (BT-153), billed quantity (BT-129), net price (BT-146), line net
          (BT-131), VAT category and rate (BT-151, BT-152)
BG-22     totals: BT-106 to BT-115 (the VAT total in the invoice currency)
BG-23     VAT breakdown: basis, tax, category, rate, exemption reason
========  ==============================================================================

Whatever is missing or malformed becomes a :class:`ValidationError` naming the
element; the checks of an open receivable are :func:`domain.receivable_import.check_imported`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from ...domain.errors import ValidationError
from ...domain.invoice import STANDARD, VatBreakdown, canonical_rate
from ...domain.money import Money, check_currency
from ...domain.receivable_import import ImportedInvoice, ImportedLine, ImportedParty

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
NS = {"rsm": RSM, "ram": RAM, "udt": UDT}
MAX_BYTES = 5 * 1024 * 1024


def _fail(source: str, message: str, where: str | None = None) -> ValidationError:
    text = f"{source}: {where + ': ' if where else ''}{message}"
    return ValidationError(text, field="file", code="invalid_invoice_file",
                           details={"source": source, **({"path": where} if where else {})})


def parse_xml(data: bytes, source: str) -> Any:
    if not data or not data.strip():
        raise _fail(source, "the file is empty")
    if len(data) > MAX_BYTES:
        raise _fail(source, f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB")
    if b"<!DOCTYPE" in data[:4096] or b"<!ENTITY" in data:
        raise _fail(source, "DTDs and entity declarations are not allowed")
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(bytes(data), parser)
    except etree.XMLSyntaxError as exc:
        raise _fail(source, f"not well-formed XML (line {exc.lineno}): {exc.msg}") from None
    if root is None:
        raise _fail(source, "not an XML document")
    return root


def extract_from_pdf(data: bytes, source: str) -> bytes:
    """The CII XML attached to a Factur-X / ZUGFeRD PDF (``factur-x.xml`` or any ``*.xml`` attachment)."""
    import logging

    from facturx import get_xml_from_pdf

    logging.getLogger("factur-x").setLevel(logging.ERROR)
    try:
        _, xml = get_xml_from_pdf(data, check_xsd=False)
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds of errors for a bad file
        raise _fail(source, f"the PDF cannot be read ({type(exc).__name__})") from None
    if not xml:
        raise _fail(source, "this PDF has no Factur-X / ZUGFeRD XML attached: import the CII XML, or a Factur-X "
                            "PDF")
    return bytes(xml)


class _Reader:
    def __init__(self, root: Any, source: str) -> None:
        self.root = root
        self.source = source

    def text(self, el: Any, path: str) -> str | None:
        found = el.find(path, NS) if el is not None else None
        if found is None or found.text is None:
            return None
        value = " ".join(found.text.split())
        return value or None

    def required(self, el: Any, path: str, what: str) -> str:
        value = self.text(el, path)
        if value is None:
            raise _fail(self.source, f"{what} is missing", path)
        return value

    def date(self, el: Any, path: str) -> date | None:
        node = el.find(path, NS) if el is not None else None
        if node is None or not (node.text or "").strip():
            return None
        raw = node.text.strip()
        fmt = node.get("format", "102")
        try:
            if fmt == "102" and len(raw) == 8:
                return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
            return date.fromisoformat(raw[:10])
        except ValueError:
            raise _fail(self.source, f"{raw!r} is not a date (format {fmt})", path) from None

    def decimal(self, el: Any, path: str, what: str) -> Decimal | None:
        raw = self.text(el, path)
        if raw is None:
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise _fail(self.source, f"{what} {raw!r} is not a number", path) from None
        if not value.is_finite():
            raise _fail(self.source, f"{what} is not a finite number", path)
        return value

    def money(self, el: Any, path: str, currency: str, what: str, *, default_zero: bool = True) -> Money:
        candidates = el.findall(path, NS) if el is not None else []
        chosen = None
        for node in candidates:  # BT-110 may appear twice: in the invoice and in the VAT accounting currency
            if node.get("currencyID") in (None, currency):
                chosen = node
                break
        if chosen is None or not (chosen.text or "").strip():
            if default_zero:
                return Money.zero(currency)
            raise _fail(self.source, f"{what} is missing", path)
        raw = chosen.text.strip()
        try:
            return Money.parse(raw, currency, field=what)
        except ValidationError as exc:
            raise _fail(self.source, exc.message, path) from None


def read_cii(data: bytes, source: str) -> ImportedInvoice:
    """One invoice from a CII XML document; raises ``ValidationError`` naming what is wrong."""
    root = parse_xml(data, source)
    if root.tag != f"{{{RSM}}}CrossIndustryInvoice":
        raise _fail(source, f"the root element is {root.tag.split('}')[-1]!r}, not a CII CrossIndustryInvoice "
                            "(import a Factur-X PDF, a CII XML or the CSV layout)")
    r = _Reader(root, source)
    doc = root.find("rsm:ExchangedDocument", NS)
    trade = root.find("rsm:SupplyChainTradeTransaction", NS)
    if doc is None or trade is None:
        raise _fail(source, "ExchangedDocument and SupplyChainTradeTransaction are required")
    agreement = trade.find("ram:ApplicableHeaderTradeAgreement", NS)
    settlement = trade.find("ram:ApplicableHeaderTradeSettlement", NS)
    if agreement is None or settlement is None:
        raise _fail(source, "ApplicableHeaderTradeAgreement and ApplicableHeaderTradeSettlement are required")
    number = r.required(doc, "ram:ID", "the invoice number (BT-1)")
    type_code = r.text(doc, "ram:TypeCode") or "380"
    issue = r.date(doc, "ram:IssueDateTime/udt:DateTimeString")
    raw_ccy = r.required(settlement, "ram:InvoiceCurrencyCode", "the invoice currency (BT-5)")
    try:
        currency = check_currency(raw_ccy, "InvoiceCurrencyCode")
    except ValidationError as exc:
        raise _fail(source, exc.message, "ram:InvoiceCurrencyCode") from None
    due = r.date(settlement, "ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString")
    buyer = _party(r, agreement.find("ram:BuyerTradeParty", NS))
    seller = _party(r, agreement.find("ram:SellerTradeParty", NS))
    sums = settlement.find("ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    if sums is None:
        raise _fail(source, "the document totals (BG-22) are missing",
                    "ram:SpecifiedTradeSettlementHeaderMonetarySummation")

    def m(tag: str, what: str, *, required: bool = False) -> Money:
        return r.money(sums, f"ram:{tag}", currency, what, default_zero=not required)

    total = m("GrandTotalAmount", "the total with VAT (BT-112)", required=True)
    breakdown = []
    for i, tax in enumerate(settlement.findall("ram:ApplicableTradeTax", NS), start=1):
        where = f"ApplicableTradeTax[{i}]"
        category = r.text(tax, "ram:CategoryCode") or STANDARD
        rate = r.decimal(tax, "ram:RateApplicablePercent", "the VAT rate") or Decimal(0)
        breakdown.append(VatBreakdown(
            category=category, rate=canonical_rate(rate),
            taxable_amount=r.money(tax, "ram:BasisAmount", currency, f"{where} basis"),
            tax_amount=r.money(tax, "ram:CalculatedAmount", currency, f"{where} tax"),
            exemption_reason=r.text(tax, "ram:ExemptionReason"), exemption_code=r.text(tax, "ram:ExemptionReasonCode")))
    lines = tuple(_line(r, item, currency, i)
                  for i, item in enumerate(trade.findall("ram:IncludedSupplyChainTradeLineItem", NS), start=1))
    payable = m("DuePayableAmount", "the amount due for payment (BT-115)", required=True)
    return ImportedInvoice(
        source=source, number=number, type_code=type_code, issue_date=issue, due_date=due, currency=currency,
        buyer=buyer, seller=seller, lines=lines, line_total=m("LineTotalAmount", "the sum of line nets (BT-106)"),
        allowance_total=m("AllowanceTotalAmount", "allowances (BT-107)"),
        charge_total=m("ChargeTotalAmount", "charges (BT-108)"),
        tax_exclusive=m("TaxBasisTotalAmount", "the total without VAT (BT-109)", required=True),
        vat_total=m("TaxTotalAmount", "the VAT total (BT-110)"), total=total,
        prepaid=m("TotalPrepaidAmount", "the prepaid amount (BT-113)"),
        rounding=m("RoundingAmount", "the rounding amount (BT-114)"), payable=payable,
        vat_breakdown=tuple(breakdown), amount_due=payable,
        purchase_order=r.text(agreement, "ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID"),
        buyer_reference=r.text(agreement, "ram:BuyerReference"),
        note=r.text(doc, "ram:IncludedNote/ram:Content"))


def _party(r: _Reader, el: Any) -> ImportedParty:
    if el is None:
        return ImportedParty()
    legal = el.find("ram:SpecifiedLegalOrganization/ram:ID", NS)
    legal_id = " ".join((legal.text or "").split()) if legal is not None else None
    siren = legal_id if legal is not None and legal.get("schemeID") == "0002" else None
    vat = None
    for reg in el.findall("ram:SpecifiedTaxRegistration/ram:ID", NS):
        if reg.get("schemeID") in (None, "VA"):
            vat = " ".join((reg.text or "").split()) or None
            break
    email = None
    uri = el.find("ram:URIUniversalCommunication/ram:URIID", NS)
    if uri is not None and uri.get("schemeID") == "EM" and (uri.text or "").strip():
        email = uri.text.strip()
    email = email or r.text(el, "ram:DefinedTradeContact/ram:EmailURIUniversalCommunication/ram:URIID")
    reference = (r.text(el, "ram:ID") or r.text(el, "ram:GlobalID") or legal_id or vat)
    return ImportedParty(
        name=r.text(el, "ram:Name"), reference=reference, email=email,
        country=r.text(el, "ram:PostalTradeAddress/ram:CountryID"), vat_number=vat, siren=siren,
        line1=r.text(el, "ram:PostalTradeAddress/ram:LineOne"),
        postal_code=r.text(el, "ram:PostalTradeAddress/ram:PostcodeCode"),
        city=r.text(el, "ram:PostalTradeAddress/ram:CityName"))


def _line(r: _Reader, item: Any, currency: str, index: int) -> ImportedLine:
    where = f"IncludedSupplyChainTradeLineItem[{index}]"
    name = r.text(item, "ram:SpecifiedTradeProduct/ram:Name") or f"line {index}"
    net = r.money(item, "ram:SpecifiedLineTradeSettlement/ram:SpecifiedTradeSettlementLineMonetarySummation/"
                        "ram:LineTotalAmount", currency, f"{where} net amount (BT-131)", default_zero=False)
    quantity = r.decimal(item, "ram:SpecifiedLineTradeDelivery/ram:BilledQuantity", "the quantity") or Decimal(1)
    price = r.decimal(item, "ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice/ram:ChargeAmount",
                      "the net price")
    category = r.text(item, "ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode") or STANDARD
    rate = r.decimal(item, "ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent",
                     "the VAT rate") or Decimal(0)
    # Keep quantity x price when it gives the line net (the document's own figure); otherwise
    # (price base quantities, line allowances) one unit at the line net, the quantity in the text.
    if price is None or quantity == 0 or Money.of_decimal(quantity * price, currency) != net:
        if quantity not in (0, 1):
            name = f"{name} (x {quantity.normalize()})"
        quantity, price = Decimal(1), net.to_decimal()
    return ImportedLine(description=name, quantity=quantity, unit_price=price, net=net, vat_category=category,
                        vat_rate=canonical_rate(rate))
