"""Every generated XML passes the official EN 16931 rules (CEN schematron) and the Factur-X XSD."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from chalicelib.adapters.documents.cii import NSMAP, build_cii
from chalicelib.adapters.documents.render import render_invoice

from .builders import SCENARIOS, context, issued, line
from .en16931 import Validator


def xpath(xml: bytes, path: str) -> list[str]:
    root = etree.fromstring(xml)
    return [n if isinstance(n, str) else (n.text or "") for n in root.xpath(path, namespaces=NSMAP)]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenario_passes_the_official_rules(scenario: str, official_rules: Validator) -> None:
    # Given an issued invoice of this kind and its document context
    invoice, ctx = SCENARIOS[scenario]()
    # When it is rendered
    documents = render_invoice(invoice, ctx)
    # Then the official EN 16931 validation reports no fatal assertion
    fatal = official_rules.fatal(documents.xml)
    assert fatal == [], "\n".join(str(f) for f in fatal)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenario_passes_the_facturx_profile_schematron(scenario: str, facturx_rules: Validator) -> None:
    invoice, ctx = SCENARIOS[scenario]()
    failures = facturx_rules.failures(build_cii(invoice, ctx))
    assert [str(f) for f in failures if f.fatal] == []
    # The only warning: the XSD requires ApplicableHeaderTradeDelivery even when there is no delivery data.
    assert {f.rule for f in failures} <= {"PEPPOL-EN16931-R008"}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenario_is_valid_against_the_facturx_xsd(scenario: str) -> None:
    import facturx

    invoice, ctx = SCENARIOS[scenario]()
    assert facturx.xml_check_xsd(build_cii(invoice, ctx), flavor="factur-x", level="en16931") is True


def test_several_standard_rates_each_get_their_breakdown() -> None:
    invoice, ctx = SCENARIOS["S 20/10/5.5/2.1 + allowance/charge + decimals"]()
    xml = build_cii(invoice, ctx)
    s = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"
    assert xpath(xml, f"{s}/ram:RateApplicablePercent") == ["20", "10", "5.5", "2.1"]
    # 3.125 x 42.1234 = 131.635625 -> 131.64; 4.000001 x 2.1599 = 8.6396... -> 8.64
    assert xpath(xml, "//ram:BilledQuantity") == ["2.5", "1", "3.125", "4.000001"]
    assert xpath(xml, "//ram:NetPriceProductTradePrice/ram:ChargeAmount") == ["850", "30", "42.1234", "2.1599"]
    assert xpath(xml, "//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount") == [
        "2125.00", "30.00", "131.64", "8.64"]


def test_out_of_scope_invoice_carries_no_vat_identifier_nor_rate() -> None:
    # Given a penalty invoice (not subject to VAT) from a seller and to a buyer who both have VAT numbers
    invoice, ctx = SCENARIOS["O out of scope"]()
    assert invoice.seller and invoice.seller["vat_number"] and invoice.buyer and invoice.buyer["vat_number"]
    xml = build_cii(invoice, ctx)
    # Then no VAT identifier (BR-O-02) and no rate (BR-O-05, BR-48) appear
    assert xpath(xml, "//ram:SpecifiedTaxRegistration") == []
    assert xpath(xml, "//ram:RateApplicablePercent") == []
    assert xpath(xml, "//ram:ApplicableTradeTax/ram:ExemptionReasonCode") == ["VATEX-EU-O"]


def test_foreign_currency_invoice_states_vat_in_euros() -> None:
    invoice, ctx = SCENARIOS["USD with EUR VAT"]()
    xml = build_cii(invoice, ctx)
    assert xpath(xml, "//ram:InvoiceCurrencyCode") == ["USD"]
    assert xpath(xml, "//ram:TaxCurrencyCode") == ["EUR"]
    vat_usd = invoice.totals.vat_total.to_decimal()
    assert xpath(xml, "//ram:TaxTotalAmount[@currencyID='USD']") == [str(vat_usd)]
    expected_eur = (vat_usd * Decimal("0.9234")).quantize(Decimal("0.01"))
    assert xpath(xml, "//ram:TaxTotalAmount[@currencyID='EUR']") == [str(expected_eur)]


def test_credit_note_has_positive_amounts_and_references_the_invoice() -> None:
    invoice, ctx = SCENARIOS["credit note"]()
    xml = build_cii(invoice, ctx)
    assert xpath(xml, "/rsm:CrossIndustryInvoice/rsm:ExchangedDocument/ram:TypeCode") == ["381"]
    assert xpath(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == ["F2026-000042"]
    assert xpath(xml, "//ram:InvoiceReferencedDocument/ram:FormattedIssueDateTime/qdt:DateTimeString") == [
        "20260202"]
    assert xpath(xml, "//ram:GrandTotalAmount") == ["510.00"]
    # A credit note is not paid by the buyer: no payment means
    assert xpath(xml, "//ram:SpecifiedTradeSettlementPaymentMeans") == []


def test_final_invoice_deducts_the_deposit() -> None:
    invoice, ctx = SCENARIOS["final invoice with deposit"]()
    xml = build_cii(invoice, ctx)
    assert xpath(xml, "//ram:GrandTotalAmount") == ["4800.00"]
    assert xpath(xml, "//ram:TotalPrepaidAmount") == ["1200.00"]
    assert xpath(xml, "//ram:DuePayableAmount") == ["3600.00"]
    assert xpath(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == ["F2026-000030"]
    assert xpath(xml, "//ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID") == ["S4"]


def test_prepaid_amount_already_on_the_invoice_is_used() -> None:
    from chalicelib.domain.money import Money

    invoice = issued([line("Installation", "1", "1000", "20")], prepaid=Money(30000, "EUR"))
    xml = build_cii(invoice, context())
    assert xpath(xml, "//ram:TotalPrepaidAmount") == ["300.00"]
    assert xpath(xml, "//ram:DuePayableAmount") == ["900.00"]


def test_credit_transfer_and_direct_debit_payment_means() -> None:
    invoice, ctx = SCENARIOS["S 20/10/5.5/2.1 + allowance/charge + decimals"]()
    xml = build_cii(invoice, ctx)
    assert xpath(xml, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == ["58"]
    assert xpath(xml, "//ram:PayeePartyCreditorFinancialAccount/ram:IBANID") == ["FR7630006000011234567890189"]
    assert xpath(xml, "//ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID") == ["AGRIFRPP882"]
    assert xpath(xml, "//ram:PaymentReference") == ["F2026-000042"]

    invoice, ctx = SCENARIOS["direct debit 59"]()
    xml = build_cii(invoice, ctx)
    assert xpath(xml, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == ["59"]
    assert xpath(xml, "//ram:DirectDebitMandateID") == ["MNDT-2026-0042"]
    assert xpath(xml, "//ram:CreditorReferenceID") == ["FR12ZZZ123456"]
    assert xpath(xml, "//ram:PayerPartyDebtorFinancialAccount/ram:IBANID") == ["FR7610107001011234567890129"]
    assert xpath(xml, "//ram:PaymentReference")[0].startswith("RF")
    assert xpath(xml, "//ram:PayeePartyCreditorFinancialAccount") == []


def test_intra_community_supply_has_delivery_date_and_country() -> None:
    invoice, ctx = SCENARIOS["K intra-community"]()
    xml = build_cii(invoice, ctx)
    assert xpath(xml, "//ram:ActualDeliverySupplyChainEvent/ram:OccurrenceDateTime/udt:DateTimeString") == [
        "20260226"]
    assert xpath(xml, "//ram:ShipToTradeParty/ram:PostalTradeAddress/ram:CountryID") == ["DE"]
    assert xpath(xml, "//ram:ApplicableTradeTax/ram:ExemptionReasonCode") == ["VATEX-EU-IC"]


def test_legal_mentions_are_notes_with_french_subject_codes() -> None:
    invoice, ctx = SCENARIOS["S 20/10/5.5/2.1 + allowance/charge + decimals"]()
    xml = build_cii(invoice, context(vat_on_debits=True))
    codes = xpath(xml, "//ram:IncludedNote/ram:SubjectCode")
    assert {"PMD", "PMT", "AAB", "TXD"} <= set(codes)
    notes = " ".join(xpath(xml, "//ram:IncludedNote/ram:Content"))
    assert "Indemnité forfaitaire pour frais de recouvrement : 40\u00a0€" in notes
    assert "Catégorie de l'opération : prestation de services" in notes
    assert xpath(xml, "//ram:DueDateTypeCode") == ["5"] * 4
    terms = xpath(xml, "//ram:SpecifiedTradePaymentTerms/ram:Description")[0]
    assert terms.startswith("30 jours net. Pénalités de retard")
