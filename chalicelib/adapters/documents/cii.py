"""UN/CEFACT Cross Industry Invoice (CII D16B) for Factur-X profile EN 16931.

:func:`build_cii` writes the XML embedded in the Factur-X PDF from an issued
invoice and its :class:`DocumentContext`. Elements follow the order of the
Factur-X 1.0 EN16931 XSD; which EN 16931 business term goes where is listed in
``terms.py`` (and docs/en16931-terms.md).

Amounts come from the domain's integer ``Money`` (so at most the currency's
decimals, BR-DEC-*); quantities keep up to 6 decimals and unit prices up to 4.
Credit notes (381) are written with positive amounts and reference the
invoice they correct. lxml is imported lazily (cold start).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ...domain.invoice import NEEDS_EXEMPTION_REASON, OUT_OF_SCOPE, Invoice
from ...domain.money import Money
from ...domain.parties import Address
from .context import DocumentContext
from .model import DocumentModel, Party, build_model

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
QDT = "urn:un:unece:uncefact:data:standard:QualifiedDataType:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
NSMAP = {"rsm": RSM, "ram": RAM, "qdt": QDT, "udt": UDT}
# BT-24: the EN 16931 specification identifier, as Factur-X requires for its EN 16931 profile.
GUIDELINE_EN16931 = "urn:cen.eu:en16931:2017"
SIREN_SCHEME, SIRET_SCHEME, EMAIL_SCHEME, VAT_SCHEME = "0002", "0009", "EM", "VA"
SUPPORTING_DOCUMENT = "916"   # BG-24 type code (UNTDID 1001 "related document")


def build_cii(invoice: Invoice, context: DocumentContext) -> bytes:
    """The CII XML of an issued invoice; raises ``ValidationError`` (invalid_einvoice) when impossible."""
    return cii_from_model(build_model(invoice, context))


def num(value: Decimal) -> str:
    """A decimal without exponent nor trailing zeros: 1.500000 -> 1.5, 2E+1 -> 20."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def amount(money: Money) -> str:
    return str(money)


def ymd(value: date) -> str:
    return value.strftime("%Y%m%d")


def cii_from_model(m: DocumentModel) -> bytes:
    from lxml import etree

    rsm = f"{{{RSM}}}"
    ram = f"{{{RAM}}}"
    udt = f"{{{UDT}}}"
    qdt = f"{{{QDT}}}"
    sub = etree.SubElement

    def el(parent: Any, tag: str, text: str | None = None, **attrib: str) -> Any:
        node = sub(parent, ram + tag, attrib) if attrib else sub(parent, ram + tag)
        if text is not None:
            node.text = text
        return node

    def date_el(parent: Any, tag: str, value: date, ns: str = udt) -> None:
        sub(el(parent, tag), ns + "DateTimeString", format="102").text = ymd(value)

    inv = m.invoice
    currency = m.currency
    root = etree.Element(rsm + "CrossIndustryInvoice", nsmap=NSMAP)

    # -- context & document header ----------------------------------------------------------------
    ctx = sub(root, rsm + "ExchangedDocumentContext")
    el(el(ctx, "BusinessProcessSpecifiedDocumentContextParameter"), "ID", m.business_process)
    el(el(ctx, "GuidelineSpecifiedDocumentContextParameter"), "ID", GUIDELINE_EN16931)
    doc = sub(root, rsm + "ExchangedDocument")
    el(doc, "ID", m.number)
    el(doc, "TypeCode", m.type_code)
    date_el(doc, "IssueDateTime", m.issue_date)
    for note in m.notes:
        n = el(doc, "IncludedNote")
        el(n, "Content", note.text)
        if note.subject_code:
            el(n, "SubjectCode", note.subject_code)

    tx = sub(root, rsm + "SupplyChainTradeTransaction")

    # -- lines (BG-25) ----------------------------------------------------------------------------
    for index, line in enumerate(inv.lines, start=1):
        item = el(tx, "IncludedSupplyChainTradeLineItem")
        el(el(item, "AssociatedDocumentLineDocument"), "LineID", str(index))
        product = el(item, "SpecifiedTradeProduct")
        if line.item_id:
            el(product, "SellerAssignedID", line.item_id)
        el(product, "Name", line.description)
        el(el(el(item, "SpecifiedLineTradeAgreement"), "NetPriceProductTradePrice"), "ChargeAmount",
           num(line.unit_price))
        el(el(item, "SpecifiedLineTradeDelivery"), "BilledQuantity", num(line.quantity), unitCode=line.unit_code)
        settlement = el(item, "SpecifiedLineTradeSettlement")
        tax = el(settlement, "ApplicableTradeTax")
        el(tax, "TypeCode", "VAT")
        el(tax, "CategoryCode", line.vat_category)
        if line.vat_category != OUT_OF_SCOPE:     # BR-O-05: no rate on "not subject to VAT" lines
            el(tax, "RateApplicablePercent", num(line.vat_rate))
        if line.period_start or line.period_end:
            period = el(settlement, "BillingSpecifiedPeriod")
            if line.period_start:
                date_el(period, "StartDateTime", line.period_start)
            if line.period_end:
                date_el(period, "EndDateTime", line.period_end)
        el(el(settlement, "SpecifiedTradeSettlementLineMonetarySummation"), "LineTotalAmount",
           amount(line.net_amount(currency)))

    # -- agreement: parties and references --------------------------------------------------------
    agreement = el(tx, "ApplicableHeaderTradeAgreement")
    if inv.buyer_reference:
        el(agreement, "BuyerReference", inv.buyer_reference)
    _party(el(agreement, "SellerTradeParty"), m.seller, el, seller=True)
    _party(el(agreement, "BuyerTradeParty"), m.buyer, el, seller=False)
    if inv.purchase_order:
        el(el(agreement, "BuyerOrderReferencedDocument"), "IssuerAssignedID", inv.purchase_order)
    if m.context.contract_reference:
        el(el(agreement, "ContractReferencedDocument"), "IssuerAssignedID", m.context.contract_reference)
    if m.pay_url:
        doc_ref = el(agreement, "AdditionalReferencedDocument")
        el(doc_ref, "IssuerAssignedID", f"PAY-{m.number}")
        el(doc_ref, "URIID", m.pay_url)
        el(doc_ref, "TypeCode", SUPPORTING_DOCUMENT)
        el(doc_ref, "Name", m.fmt.t("pay_online"))

    # -- delivery ---------------------------------------------------------------------------------
    delivery = el(tx, "ApplicableHeaderTradeDelivery")
    if m.deliver_to is not None:
        ship_to = el(delivery, "ShipToTradeParty")
        if m.deliver_to.name:
            el(ship_to, "Name", m.deliver_to.name)
        _address(el(ship_to, "PostalTradeAddress"), m.deliver_to.address, m.deliver_to.country, el)
    if m.delivery_date:
        date_el(el(delivery, "ActualDeliverySupplyChainEvent"), "OccurrenceDateTime", m.delivery_date)

    # -- settlement -------------------------------------------------------------------------------
    settle = el(tx, "ApplicableHeaderTradeSettlement")
    if m.creditor_id:
        el(settle, "CreditorReferenceID", m.creditor_id)
    el(settle, "PaymentReference", m.payment_reference)
    if m.tax_currency:
        el(settle, "TaxCurrencyCode", m.tax_currency)
    el(settle, "InvoiceCurrencyCode", currency)
    if m.payment_means:
        means = el(settle, "SpecifiedTradeSettlementPaymentMeans")
        el(means, "TypeCode", m.payment_means)
        el(means, "Information", m.fmt.t(f"means.{m.payment_means}"))
        if m.payment_means == "59":
            if m.debtor_iban:
                el(el(means, "PayerPartyDebtorFinancialAccount"), "IBANID", m.debtor_iban)
        else:
            account = el(means, "PayeePartyCreditorFinancialAccount")
            el(account, "IBANID", m.iban or "")
            el(account, "AccountName", m.seller.name)
            if m.bic:
                el(el(means, "PayeeSpecifiedCreditorFinancialInstitution"), "BICID", m.bic)
    for b in inv.totals.vat_breakdown:
        tax = el(settle, "ApplicableTradeTax")
        el(tax, "CalculatedAmount", amount(b.tax_amount))
        el(tax, "TypeCode", "VAT")
        if b.category in NEEDS_EXEMPTION_REASON and b.exemption_reason:
            el(tax, "ExemptionReason", b.exemption_reason)
        el(tax, "BasisAmount", amount(b.taxable_amount))
        el(tax, "CategoryCode", b.category)
        if b.category in NEEDS_EXEMPTION_REASON and b.exemption_code:
            el(tax, "ExemptionReasonCode", b.exemption_code)
        if m.vat_point_code:
            el(tax, "DueDateTypeCode", m.vat_point_code)
        if b.category != OUT_OF_SCOPE:        # BR-48: a rate except when not subject to VAT
            el(tax, "RateApplicablePercent", num(b.rate))
    if m.period is not None:
        period = el(settle, "BillingSpecifiedPeriod")
        if m.period[0]:
            date_el(period, "StartDateTime", m.period[0])
        if m.period[1]:
            date_el(period, "EndDateTime", m.period[1])
    for ac in inv.allowances_charges:
        node = el(settle, "SpecifiedTradeAllowanceCharge")
        sub(el(node, "ChargeIndicator"), udt + "Indicator").text = "true" if ac.charge else "false"
        el(node, "ActualAmount", amount(ac.amount))
        if ac.reason_code:
            el(node, "ReasonCode", ac.reason_code)
        el(node, "Reason", ac.reason)
        tax = el(node, "CategoryTradeTax")
        el(tax, "TypeCode", "VAT")
        el(tax, "CategoryCode", ac.vat_category)
        if ac.vat_category != OUT_OF_SCOPE:   # BR-O-06/07
            el(tax, "RateApplicablePercent", num(ac.vat_rate))
    terms = el(settle, "SpecifiedTradePaymentTerms")
    el(terms, "Description", m.terms_text)
    if m.due_date:
        date_el(terms, "DueDateDateTime", m.due_date)
    if m.mandate_reference:
        el(terms, "DirectDebitMandateID", m.mandate_reference)
    t = inv.totals
    sums = el(settle, "SpecifiedTradeSettlementHeaderMonetarySummation")
    el(sums, "LineTotalAmount", amount(t.line_total))
    el(sums, "ChargeTotalAmount", amount(t.charge_total))
    el(sums, "AllowanceTotalAmount", amount(t.allowance_total))
    el(sums, "TaxBasisTotalAmount", amount(t.tax_exclusive))
    el(sums, "TaxTotalAmount", amount(t.vat_total), currencyID=currency)
    if m.vat_total_eur is not None:
        el(sums, "TaxTotalAmount", amount(m.vat_total_eur), currencyID="EUR")
    el(sums, "GrandTotalAmount", amount(t.total))
    if not m.prepaid.is_zero:
        el(sums, "TotalPrepaidAmount", amount(m.prepaid))
    el(sums, "DuePayableAmount", amount(m.payable))
    for ref in m.preceding:
        node = el(settle, "InvoiceReferencedDocument")
        el(node, "IssuerAssignedID", ref.number)
        if ref.issue_date:
            date_el(node, "FormattedIssueDateTime", ref.issue_date, qdt)

    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _address(node: Any, address: Address | None, country: str, el: Any) -> None:
    if address is not None:
        if address.postal_code:
            el(node, "PostcodeCode", address.postal_code)
        if address.line1:
            el(node, "LineOne", address.line1)
        if address.line2:
            el(node, "LineTwo", address.line2)
        if address.city:
            el(node, "CityName", address.city)
    el(node, "CountryID", address.country if address is not None else country)


def _party(node: Any, party: Party, el: Any, *, seller: bool) -> None:
    if party.siret:
        el(node, "GlobalID", party.siret, schemeID=SIRET_SCHEME)   # BT-29 / BT-46
    el(node, "Name", party.name)
    if seller and party.legal_info:
        el(node, "Description", party.legal_info)                  # BT-33
    if party.siren or (seller and party.trade_name):
        legal = el(node, "SpecifiedLegalOrganization")
        if party.siren:
            el(legal, "ID", party.siren, schemeID=SIREN_SCHEME)     # BT-30 / BT-47
        if seller and party.trade_name:
            el(legal, "TradingBusinessName", party.trade_name)     # BT-28
    if seller and (party.phone or party.email):
        contact = el(node, "DefinedTradeContact")                  # BG-6
        if party.phone:
            el(el(contact, "TelephoneUniversalCommunication"), "CompleteNumber", party.phone)
        if party.email:
            el(el(contact, "EmailURIUniversalCommunication"), "URIID", party.email)
    _address(el(node, "PostalTradeAddress"), party.address, party.country, el)
    if party.email:
        el(el(node, "URIUniversalCommunication"), "URIID", party.email, schemeID=EMAIL_SCHEME)  # BT-34 / BT-49
    if party.xml_vat_number:
        el(el(node, "SpecifiedTaxRegistration"), "ID", party.xml_vat_number, schemeID=VAT_SCHEME)
