"""The EN 16931 business terms the CII XML fills, where each goes and where it comes from.

``TERMS`` is the reference; ``docs/en16931-terms.md`` is generated from it
(``python -m chalicelib.adapters.documents.terms > docs/en16931-terms.md``) and a
test checks that every term listed appears in the XML of representative
invoices (``scenario`` names the kind of invoice that carries the term).
"""

from __future__ import annotations

from dataclasses import dataclass

H = "/rsm:CrossIndustryInvoice"
DOC = f"{H}/rsm:ExchangedDocument"
CTX = f"{H}/rsm:ExchangedDocumentContext"
TX = f"{H}/rsm:SupplyChainTradeTransaction"
LINE = f"{TX}/ram:IncludedSupplyChainTradeLineItem"
AGR = f"{TX}/ram:ApplicableHeaderTradeAgreement"
SELLER = f"{AGR}/ram:SellerTradeParty"
BUYER = f"{AGR}/ram:BuyerTradeParty"
DLV = f"{TX}/ram:ApplicableHeaderTradeDelivery"
SET = f"{TX}/ram:ApplicableHeaderTradeSettlement"
PM = f"{SET}/ram:SpecifiedTradeSettlementPaymentMeans"
SUM = f"{SET}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
VAT = f"{SET}/ram:ApplicableTradeTax"
ALLOWANCE = f"{SET}/ram:SpecifiedTradeAllowanceCharge[ram:ChargeIndicator/udt:Indicator='false']"
CHARGE = f"{SET}/ram:SpecifiedTradeAllowanceCharge[ram:ChargeIndicator/udt:Indicator='true']"

# Scenarios (kinds of invoice) a term needs; "main" is a domestic EUR invoice paid by transfer.
MAIN, DIRECT_DEBIT, FOREIGN_CURRENCY = "main", "direct debit", "foreign currency"


@dataclass(frozen=True, slots=True)
class Term:
    bt: str
    name: str
    xpath: str
    source: str
    scenario: str = MAIN


TERMS: tuple[Term, ...] = (
    Term("BT-1", "Invoice number", f"{DOC}/ram:ID", "invoice.number"),
    Term("BT-2", "Invoice issue date", f"{DOC}/ram:IssueDateTime/udt:DateTimeString", "invoice.issue_date"),
    Term("BT-3", "Invoice type code", f"{DOC}/ram:TypeCode",
         "invoice.kind: invoice 380, credit_note 381, deposit 386"),
    Term("BT-5", "Invoice currency code", f"{SET}/ram:InvoiceCurrencyCode", "invoice.currency"),
    Term("BT-6", "VAT accounting currency code", f"{SET}/ram:TaxCurrencyCode",
         "EUR when context.eur_exchange_rate is given for a non-EUR invoice", FOREIGN_CURRENCY),
    Term("BT-8", "Value added tax point date code", f"{VAT}/ram:DueDateTypeCode",
         "5 (invoice date) when the seller opted for VAT on debits (seller.vat_on_debits / context)"),
    Term("BT-9", "Payment due date", f"{SET}/ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString",
         "invoice.due_date"),
    Term("BT-10", "Buyer reference", f"{AGR}/ram:BuyerReference", "invoice.buyer_reference"),
    Term("BT-12", "Contract reference", f"{AGR}/ram:ContractReferencedDocument/ram:IssuerAssignedID",
         "context.contract_reference"),
    Term("BT-13", "Purchase order reference", f"{AGR}/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID",
         "invoice.purchase_order"),
    Term("BT-20", "Payment terms", f"{SET}/ram:SpecifiedTradePaymentTerms/ram:Description",
         "invoice.payment_terms (e.g. \"30 jours net\") + late-payment penalties + 40 EUR indemnity + early-payment "
         "discount or \"pas d'escompte\"; on credit notes, the invoice it offsets"),
    Term("BT-21", "Invoice note subject code", f"{DOC}/ram:IncludedNote/ram:SubjectCode",
         "PMD penalties, PMT recovery indemnity, AAB discount, TXD VAT on debits"),
    Term("BT-22", "Invoice note", f"{DOC}/ram:IncludedNote/ram:Content",
         "invoice.note, context.extra_notes, category of the operation, deposits deducted, legal mentions"),
    Term("BT-23", "Business process type", f"{CTX}/ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID",
         "context.operation_category: B1/S1/M1 (goods/services/mixed), B4/S4/M4 with deposits deducted"),
    Term("BT-24", "Specification identifier", f"{CTX}/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID",
         "urn:cen.eu:en16931:2017 (Factur-X EN 16931 profile)"),
    Term("BT-25", "Preceding invoice reference", f"{SET}/ram:InvoiceReferencedDocument/ram:IssuerAssignedID",
         "context.preceding_invoice.number (credit notes), context.deposits[].number"),
    Term("BT-26", "Preceding invoice issue date",
         f"{SET}/ram:InvoiceReferencedDocument/ram:FormattedIssueDateTime/qdt:DateTimeString",
         "context.preceding_invoice.issue_date, context.deposits[].issue_date"),
    Term("BT-27", "Seller name", f"{SELLER}/ram:Name", "invoice.seller.legal_name"),
    Term("BT-28", "Seller trading name", f"{SELLER}/ram:SpecifiedLegalOrganization/ram:TradingBusinessName",
         "invoice.seller.trade_name"),
    Term("BT-29", "Seller identifier (SIRET, scheme 0009)", f"{SELLER}/ram:GlobalID[@schemeID='0009']",
         "invoice.seller.siret"),
    Term("BT-30", "Seller legal registration identifier (SIREN, scheme 0002)",
         f"{SELLER}/ram:SpecifiedLegalOrganization/ram:ID[@schemeID='0002']", "invoice.seller.siren"),
    Term("BT-31", "Seller VAT identifier", f"{SELLER}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']",
         "invoice.seller.vat_number (left out on invoices not subject to VAT, BR-O-02)"),
    Term("BT-33", "Seller additional legal information", f"{SELLER}/ram:Description",
         "invoice.seller.legal_form, share_capital, rcs"),
    Term("BT-34", "Seller electronic address (scheme EM)",
         f"{SELLER}/ram:URIUniversalCommunication/ram:URIID[@schemeID='EM']", "invoice.seller.email"),
    Term("BT-35", "Seller address line 1", f"{SELLER}/ram:PostalTradeAddress/ram:LineOne",
         "invoice.seller.address.line1"),
    Term("BT-37", "Seller city", f"{SELLER}/ram:PostalTradeAddress/ram:CityName", "invoice.seller.address.city"),
    Term("BT-38", "Seller post code", f"{SELLER}/ram:PostalTradeAddress/ram:PostcodeCode",
         "invoice.seller.address.postal_code"),
    Term("BT-40", "Seller country code", f"{SELLER}/ram:PostalTradeAddress/ram:CountryID",
         "invoice.seller.address.country"),
    Term("BT-42", "Seller contact telephone",
         f"{SELLER}/ram:DefinedTradeContact/ram:TelephoneUniversalCommunication/ram:CompleteNumber",
         "invoice.seller.phone"),
    Term("BT-43", "Seller contact email",
         f"{SELLER}/ram:DefinedTradeContact/ram:EmailURIUniversalCommunication/ram:URIID", "invoice.seller.email"),
    Term("BT-44", "Buyer name", f"{BUYER}/ram:Name", "invoice.buyer.name"),
    Term("BT-46", "Buyer identifier (SIRET, scheme 0009)", f"{BUYER}/ram:GlobalID[@schemeID='0009']",
         "invoice.buyer.siret"),
    Term("BT-47", "Buyer legal registration identifier (SIREN, scheme 0002)",
         f"{BUYER}/ram:SpecifiedLegalOrganization/ram:ID[@schemeID='0002']", "invoice.buyer.siren"),
    Term("BT-48", "Buyer VAT identifier", f"{BUYER}/ram:SpecifiedTaxRegistration/ram:ID[@schemeID='VA']",
         "invoice.buyer.vat_number (left out on invoices not subject to VAT, BR-O-02)"),
    Term("BT-49", "Buyer electronic address (scheme EM)",
         f"{BUYER}/ram:URIUniversalCommunication/ram:URIID[@schemeID='EM']", "invoice.buyer.email"),
    Term("BT-50", "Buyer address line 1", f"{BUYER}/ram:PostalTradeAddress/ram:LineOne",
         "invoice.buyer.address.line1"),
    Term("BT-51", "Buyer address line 2", f"{BUYER}/ram:PostalTradeAddress/ram:LineTwo",
         "invoice.buyer.address.line2"),
    Term("BT-52", "Buyer city", f"{BUYER}/ram:PostalTradeAddress/ram:CityName", "invoice.buyer.address.city"),
    Term("BT-53", "Buyer post code", f"{BUYER}/ram:PostalTradeAddress/ram:PostcodeCode",
         "invoice.buyer.address.postal_code"),
    Term("BT-55", "Buyer country code", f"{BUYER}/ram:PostalTradeAddress/ram:CountryID",
         "invoice.buyer.address.country, else invoice.buyer.country"),
    Term("BT-70", "Deliver to party name", f"{DLV}/ram:ShipToTradeParty/ram:Name", "context.deliver_to.name"),
    Term("BT-72", "Actual delivery date",
         f"{DLV}/ram:ActualDeliverySupplyChainEvent/ram:OccurrenceDateTime/udt:DateTimeString",
         "context.delivery_date, else invoice.delivery_date"),
    Term("BT-73", "Invoicing period start date",
         f"{SET}/ram:BillingSpecifiedPeriod/ram:StartDateTime/udt:DateTimeString", "earliest lines[].period_start"),
    Term("BT-74", "Invoicing period end date",
         f"{SET}/ram:BillingSpecifiedPeriod/ram:EndDateTime/udt:DateTimeString", "latest lines[].period_end"),
    Term("BT-75", "Deliver to address line 1", f"{DLV}/ram:ShipToTradeParty/ram:PostalTradeAddress/ram:LineOne",
         "context.deliver_to.address.line1"),
    Term("BT-77", "Deliver to city", f"{DLV}/ram:ShipToTradeParty/ram:PostalTradeAddress/ram:CityName",
         "context.deliver_to.address.city"),
    Term("BT-78", "Deliver to post code", f"{DLV}/ram:ShipToTradeParty/ram:PostalTradeAddress/ram:PostcodeCode",
         "context.deliver_to.address.postal_code"),
    Term("BT-80", "Deliver to country code", f"{DLV}/ram:ShipToTradeParty/ram:PostalTradeAddress/ram:CountryID",
         "context.deliver_to.country (required for intra-community supplies, BR-IC-12)"),
    Term("BT-81", "Payment means type code", f"{PM}/ram:TypeCode",
         "context.payment_means: 58 SEPA credit transfer, 59 SEPA direct debit (none on credit notes)"),
    Term("BT-82", "Payment means text", f"{PM}/ram:Information", "\"Virement SEPA\" / \"Prélèvement SEPA\""),
    Term("BT-83", "Remittance information", f"{SET}/ram:PaymentReference",
         "context.payment_reference (e.g. an ISO 11649 RF reference), else invoice.number"),
    Term("BT-84", "Payment account identifier (IBAN)", f"{PM}/ram:PayeePartyCreditorFinancialAccount/ram:IBANID",
         "invoice.seller.iban"),
    Term("BT-85", "Payment account name", f"{PM}/ram:PayeePartyCreditorFinancialAccount/ram:AccountName",
         "invoice.seller.legal_name"),
    Term("BT-86", "Payment service provider identifier (BIC)",
         f"{PM}/ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID", "invoice.seller.bic"),
    Term("BT-89", "Mandate reference identifier", f"{SET}/ram:SpecifiedTradePaymentTerms/ram:DirectDebitMandateID",
         "context.mandate_reference", DIRECT_DEBIT),
    Term("BT-90", "Bank assigned creditor identifier", f"{SET}/ram:CreditorReferenceID",
         "context.creditor_id, else invoice.seller.sepa_creditor_id", DIRECT_DEBIT),
    Term("BT-91", "Debited account identifier", f"{PM}/ram:PayerPartyDebtorFinancialAccount/ram:IBANID",
         "context.debtor_iban", DIRECT_DEBIT),
    Term("BT-92", "Document level allowance amount", f"{ALLOWANCE}/ram:ActualAmount",
         "allowances_charges[type=allowance].amount"),
    Term("BT-95", "Document level allowance VAT category code", f"{ALLOWANCE}/ram:CategoryTradeTax/ram:CategoryCode",
         "allowances_charges[].vat_category"),
    Term("BT-96", "Document level allowance VAT rate",
         f"{ALLOWANCE}/ram:CategoryTradeTax/ram:RateApplicablePercent", "allowances_charges[].vat_rate"),
    Term("BT-97", "Document level allowance reason", f"{ALLOWANCE}/ram:Reason", "allowances_charges[].reason"),
    Term("BT-98", "Document level allowance reason code", f"{ALLOWANCE}/ram:ReasonCode",
         "allowances_charges[].reason_code (UNTDID 5189)"),
    Term("BT-99", "Document level charge amount", f"{CHARGE}/ram:ActualAmount",
         "allowances_charges[type=charge].amount"),
    Term("BT-102", "Document level charge VAT category code", f"{CHARGE}/ram:CategoryTradeTax/ram:CategoryCode",
         "allowances_charges[].vat_category"),
    Term("BT-103", "Document level charge VAT rate", f"{CHARGE}/ram:CategoryTradeTax/ram:RateApplicablePercent",
         "allowances_charges[].vat_rate"),
    Term("BT-104", "Document level charge reason", f"{CHARGE}/ram:Reason", "allowances_charges[].reason"),
    Term("BT-105", "Document level charge reason code", f"{CHARGE}/ram:ReasonCode",
         "allowances_charges[].reason_code (UNTDID 7161)"),
    Term("BT-106", "Sum of invoice line net amount", f"{SUM}/ram:LineTotalAmount", "invoice.totals.line_total"),
    Term("BT-107", "Sum of allowances on document level", f"{SUM}/ram:AllowanceTotalAmount",
         "invoice.totals.allowance_total"),
    Term("BT-108", "Sum of charges on document level", f"{SUM}/ram:ChargeTotalAmount", "invoice.totals.charge_total"),
    Term("BT-109", "Invoice total amount without VAT", f"{SUM}/ram:TaxBasisTotalAmount",
         "invoice.totals.tax_exclusive"),
    Term("BT-110", "Invoice total VAT amount", f"{SUM}/ram:TaxTotalAmount[@currencyID={SET}/ram:InvoiceCurrencyCode]",
         "invoice.totals.vat_total"),
    Term("BT-111", "Invoice total VAT amount in accounting currency", f"{SUM}/ram:TaxTotalAmount[@currencyID='EUR']",
         "invoice.totals.vat_total x context.eur_exchange_rate, rounded half-up", FOREIGN_CURRENCY),
    Term("BT-112", "Invoice total amount with VAT", f"{SUM}/ram:GrandTotalAmount", "invoice.totals.total"),
    Term("BT-113", "Paid amount", f"{SUM}/ram:TotalPrepaidAmount",
         "invoice.totals.prepaid, else the sum of context.deposits[].amount"),
    Term("BT-115", "Amount due for payment", f"{SUM}/ram:DuePayableAmount", "BT-112 - BT-113"),
    Term("BT-116", "VAT category taxable amount", f"{VAT}/ram:BasisAmount",
         "invoice.totals.vat_breakdown[].taxable_amount"),
    Term("BT-117", "VAT category tax amount", f"{VAT}/ram:CalculatedAmount",
         "invoice.totals.vat_breakdown[].tax_amount"),
    Term("BT-118", "VAT category code", f"{VAT}/ram:CategoryCode", "invoice.totals.vat_breakdown[].category"),
    Term("BT-119", "VAT category rate", f"{VAT}/ram:RateApplicablePercent",
         "invoice.totals.vat_breakdown[].rate (none for category O)"),
    Term("BT-120", "VAT exemption reason text", f"{VAT}/ram:ExemptionReason",
         "invoice.totals.vat_breakdown[].exemption_reason (E, AE, K, G, O)"),
    Term("BT-121", "VAT exemption reason code", f"{VAT}/ram:ExemptionReasonCode",
         "invoice.totals.vat_breakdown[].exemption_code (VATEX)"),
    Term("BT-122", "Supporting document reference", f"{AGR}/ram:AdditionalReferencedDocument/ram:IssuerAssignedID",
         "\"PAY-\" + invoice.number (the pay link)"),
    Term("BT-123", "Supporting document description", f"{AGR}/ram:AdditionalReferencedDocument/ram:Name",
         "\"Payer en ligne\" / \"Pay online\""),
    Term("BT-124", "External document location", f"{AGR}/ram:AdditionalReferencedDocument/ram:URIID",
         "context.pay_url"),
    Term("BT-126", "Invoice line identifier", f"{LINE}/ram:AssociatedDocumentLineDocument/ram:LineID",
         "position of the line (1, 2, ...)"),
    Term("BT-129", "Invoiced quantity", f"{LINE}/ram:SpecifiedLineTradeDelivery/ram:BilledQuantity",
         "lines[].quantity (up to 6 decimals)"),
    Term("BT-130", "Invoiced quantity unit of measure code",
         f"{LINE}/ram:SpecifiedLineTradeDelivery/ram:BilledQuantity/@unitCode", "lines[].unit_code (UN/ECE Rec 20)"),
    Term("BT-131", "Invoice line net amount",
         f"{LINE}/ram:SpecifiedLineTradeSettlement/ram:SpecifiedTradeSettlementLineMonetarySummation"
         "/ram:LineTotalAmount",
         "lines[].net_amount (quantity x unit price, rounded half-up)"),
    Term("BT-134", "Invoice line period start date",
         f"{LINE}/ram:SpecifiedLineTradeSettlement/ram:BillingSpecifiedPeriod/ram:StartDateTime/udt:DateTimeString",
         "lines[].period_start"),
    Term("BT-135", "Invoice line period end date",
         f"{LINE}/ram:SpecifiedLineTradeSettlement/ram:BillingSpecifiedPeriod/ram:EndDateTime/udt:DateTimeString",
         "lines[].period_end"),
    Term("BT-146", "Item net price",
         f"{LINE}/ram:SpecifiedLineTradeAgreement/ram:NetPriceProductTradePrice/ram:ChargeAmount",
         "lines[].unit_price (up to 4 decimals)"),
    Term("BT-151", "Invoiced item VAT category code",
         f"{LINE}/ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode", "lines[].vat_category"),
    Term("BT-152", "Invoiced item VAT rate",
         f"{LINE}/ram:SpecifiedLineTradeSettlement/ram:ApplicableTradeTax/ram:RateApplicablePercent",
         "lines[].vat_rate (none for category O)"),
    Term("BT-153", "Item name", f"{LINE}/ram:SpecifiedTradeProduct/ram:Name", "lines[].description"),
    Term("BT-155", "Item seller's identifier", f"{LINE}/ram:SpecifiedTradeProduct/ram:SellerAssignedID",
         "lines[].item_id"),
)


def markdown() -> str:
    """docs/en16931-terms.md."""
    out = [
        "# EN 16931 business terms in our Factur-X XML",
        "",
        "Generated from `chalicelib/adapters/documents/terms.py` "
        "(`python -m chalicelib.adapters.documents.terms > docs/en16931-terms.md`); "
        "`tests/documents/test_terms.py` checks that each term appears in the XML of a representative invoice "
        "of its scenario and that this file is up to date.",
        "",
        "XPaths use the prefixes `rsm` (CrossIndustryInvoice:100), `ram` "
        "(ReusableAggregateBusinessInformationEntity:100), `udt` (UnqualifiedDataType:100) and `qdt` "
        "(QualifiedDataType:100). `invoice.seller` / `invoice.buyer` are the identities frozen on the invoice "
        "at issue; `context` is the `DocumentContext` the caller passes to `render_invoice`.",
        "",
        "| Term | Name | XPath in the CII XML | Source | Scenario |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in TERMS:
        source = t.source.replace("|", "\\|")
        xpath = t.xpath.replace("|", "\\|")
        out.append(f"| {t.bt} | {t.name} | `{xpath}` | {source} | {t.scenario} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
