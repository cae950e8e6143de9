"""Small builders of issued invoices for the document tests (domain builders only)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from chalicelib.adapters.documents.context import DocumentContext
from chalicelib.domain import creditor_reference
from chalicelib.domain.invoice import CREDIT_NOTE, Invoice, compute_totals, new_draft
from chalicelib.domain.money import Money
from chalicelib.domain.parties import Customer, SellerProfile, new_customer, seller_from_input

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 9, 30, 15, tzinfo=timezone.utc)
ISSUE_DATE = date(2026, 3, 2)

SELLER: dict[str, Any] = {
    "legal_name": "Atelier Lumière SAS", "legal_form": "SAS", "share_capital": "50000.00",
    "siren": "812345676", "siret": "81234567600017", "rcs": "RCS Lyon 812 345 676", "vat_number": "FR19812345676",
    "address": {"line1": "12 rue de la République", "postal_code": "69002", "city": "Lyon", "country": "FR"},
    "email": "factures@demo-seller.example", "phone": "+33 4 72 00 00 00",
    "iban": "FR7630006000011234567890189", "bic": "AGRIFRPP882",
    "sepa_creditor_id": "FR12ZZZ123456", "early_payment_discount": {"rate": "2", "days": 10},
}

CUSTOMER: dict[str, Any] = {
    "name": "Boulangerie Martin SARL", "email": "compta@boulangerie-martin.example", "country": "FR",
    "language": "fr", "siren": "901876540", "vat_number": "FR96901876540",
    "address": {"line1": "3 place Bellecour", "postal_code": "69002", "city": "Lyon", "country": "FR"},
    "payment_terms": {"kind": "net", "days": 30},
}

# An EU business (Germany) for reverse charge and intra-community supplies.
EU_CUSTOMER: dict[str, Any] = {
    "name": "Müller Maschinenbau GmbH", "email": "buchhaltung@mueller.example", "country": "DE",
    "language": "en", "vat_number": "DE136695976",
    "address": {"line1": "Hauptstraße 5", "postal_code": "10115", "city": "Berlin", "country": "DE"},
}

# A business outside the EU (export, foreign currency).
US_CUSTOMER: dict[str, Any] = {
    "name": "Acme Corporation", "email": "ap@acme.example", "country": "US", "language": "en", "currency": "USD",
    "address": {"line1": "1 Market Street", "postal_code": "94105", "city": "San Francisco", "country": "US"},
}


def line(description: str = "Conseil", quantity: str = "1", unit_price: str = "100.00", vat_rate: str = "20",
         **extra: Any) -> dict[str, Any]:
    return {"description": description, "quantity": quantity, "unit_price": unit_price, "vat_rate": vat_rate,
            **extra}


def seller(**overrides: Any) -> SellerProfile:
    return seller_from_input({**SELLER, **overrides})


def customer(data: dict[str, Any] | None = None, **overrides: Any) -> Customer:
    return new_customer("cus_test", {**(data or CUSTOMER), **overrides}, now=NOW)


def issued(lines: list[dict[str, Any]], *, buyer: Customer | None = None, seller_profile: SellerProfile | None = None,
           number: str = "F2026-000042", kind: str = "invoice", prepaid: Money | None = None,
           seller_identity: dict[str, Any] | None = None, **draft: Any) -> Invoice:
    """An invoice issued on ISSUE_DATE; ``kind="credit_note"`` is set after drafting, as the domain does not
    draft credit notes itself."""
    buyer = buyer or customer()
    profile = seller_profile or seller()
    data = {"customer_id": buyer.id, "lines": lines, **draft}
    invoice = new_draft("inv_test", data, customer_currency=buyer.currency, now=NOW)
    if kind == CREDIT_NOTE:
        invoice = replace(invoice, kind=CREDIT_NOTE)
    elif kind != "invoice":
        invoice = replace(invoice, kind=kind)
    if prepaid is not None:
        invoice = replace(invoice, totals=compute_totals(invoice.lines, invoice.allowances_charges,
                                                         invoice.currency, prepaid=prepaid))
    return invoice.issue(number=number, series=f"{number[:2]}#2026", issue_date=ISSUE_DATE,
                         terms=invoice.payment_terms or buyer.payment_terms, eom_mode=profile.eom_mode,
                         jurisdiction="FR", seller=seller_identity or profile.identity(), buyer=buyer.identity(),
                         now=NOW)


def context(profile: SellerProfile | None = None, **values: Any) -> DocumentContext:
    values.setdefault("operation_category", "services")
    values.setdefault("pay_url", "https://pay.demo-seller.example/pay/tok_8f3a2c91d7e44b0b9a61")
    return DocumentContext.for_seller(profile or seller(), **values)


# -- scenarios: one issued invoice and its context per kind of document ----------------------------------------

def _s_multi_rate() -> tuple[Invoice, DocumentContext]:
    inv = issued([line("Conseil stratégique", "2.5", "850.00", "20", unit_code="HUR", item_id="CONS-01",
                       period_start="2026-02-01", period_end="2026-02-28"),
                  line("Repas d'équipe", "1", "30", "10"),
                  line("Livres techniques", "3.125", "42.1234", "5.5"),
                  line("Abonnement presse", "4.000001", "2.1599", "2.1")],
                 allowances_charges=[{"type": "allowance", "amount": "50.00", "reason": "Remise fidélité",
                                      "reason_code": "95", "vat_rate": "20"},
                                     {"type": "charge", "amount": "15.00", "reason": "Frais de port",
                                      "reason_code": "FC", "vat_rate": "20"}],
                 purchase_order="PO-778", buyer_reference="SERV-COMPTA", note="Merci de votre confiance")
    return inv, context()


def _s_zero_rated() -> tuple[Invoice, DocumentContext]:
    return issued([line("Maintenance", "1", "200", "20"),
                   line("Fourniture à taux zéro", "2", "50", "0", vat_category="Z")]), context()


def _s_exempt() -> tuple[Invoice, DocumentContext]:
    return issued([line("Formation professionnelle continue", "1", "1200", "0", vat_category="E",
                        exemption_reason="Exonération de TVA, article 261 4 4° a du CGI",
                        exemption_code="VATEX-FR-CGI261-4")]), context()


def _s_reverse_charge() -> tuple[Invoice, DocumentContext]:
    return issued([line("Développement logiciel", "10", "650", "0", vat_category="AE")],
                  buyer=customer(EU_CUSTOMER)), context()


def _s_intra_community() -> tuple[Invoice, DocumentContext]:
    from chalicelib.adapters.documents.context import DeliverTo
    from chalicelib.domain.parties import Address

    inv = issued([line("Luminaire suspendu LX-2", "12", "189.90", "0", vat_category="K", item_id="LX2")],
                 buyer=customer(EU_CUSTOMER), delivery_date="2026-02-26")
    deliver_to = DeliverTo(country="DE", name="Müller Maschinenbau GmbH - Lager",
                           address=Address(line1="Industriestraße 12", city="Hamburg", postal_code="20095",
                                           country="DE"))
    return inv, context(operation_category="goods", deliver_to=deliver_to)


def _s_export() -> tuple[Invoice, DocumentContext]:
    return issued([line("Lampe de bureau", "50", "45", "0", vat_category="G")],
                  buyer=customer(US_CUSTOMER, currency="EUR"), delivery_date="2026-02-20"), \
        context(operation_category="goods")


def _s_out_of_scope() -> tuple[Invoice, DocumentContext]:
    return issued([line("Indemnité forfaitaire pour frais de recouvrement (facture F2026-000007)", "1", "40", "0",
                        vat_category="O")]), context()


def _s_foreign_currency() -> tuple[Invoice, DocumentContext]:
    from decimal import Decimal

    return issued([line("Consulting", "3", "1000", "20"), line("Travel", "1", "215.40", "10")],
                  buyer=customer(CUSTOMER, currency="USD", language="en")), \
        context(eur_exchange_rate=Decimal("0.9234"), exchange_rate_date=date(2026, 2, 27))


def _s_credit_note() -> tuple[Invoice, DocumentContext]:
    from chalicelib.adapters.documents.context import PrecedingInvoice

    return issued([line("Annulation partielle : conseil", "1", "425", "20")], kind=CREDIT_NOTE,
                  number="AV2026-000003"), \
        context(preceding_invoice=PrecedingInvoice("F2026-000042", date(2026, 2, 2)))


def _s_final_with_deposit() -> tuple[Invoice, DocumentContext]:
    from chalicelib.adapters.documents.context import DepositDeduction

    deposit = DepositDeduction("F2026-000030", date(2026, 1, 15), Money(120000, "EUR"))
    return issued([line("Installation éclairage atelier", "1", "4000", "20")], number="F2026-000044"), \
        context(deposits=(deposit,))


def _s_deposit_invoice() -> tuple[Invoice, DocumentContext]:
    return issued([line("Acompte 30 % sur devis D-2026-011", "1", "1000", "20")], kind="deposit"), context()


def _s_direct_debit() -> tuple[Invoice, DocumentContext]:
    return issued([line("Abonnement mensuel", "1", "99", "20", period_start="2026-03-01",
                        period_end="2026-03-31")]), \
        context(payment_means="59", mandate_reference="MNDT-2026-0042", debtor_iban="FR7610107001011234567890129",
                payment_reference=creditor_reference.generate("F2026-000042"))


def _s_buyer_without_address() -> tuple[Invoice, DocumentContext]:
    from decimal import Decimal

    from chalicelib.adapters.documents.context import GOODS, DeliverTo

    buyer = customer(EU_CUSTOMER, address=None, siren=None)
    return issued([line("Sample kit", "2", "19.99", "20"), line("Shipping", "1", "12", "20")], buyer=buyer,
                  delivery_date="2026-02-27"), \
        context(operation_category=GOODS, deliver_to=DeliverTo(country="DE"), late_penalty_rate=Decimal("12.15"))


SCENARIOS = {
    "S 20/10/5.5/2.1 + allowance/charge + decimals": _s_multi_rate,
    "Z zero rated": _s_zero_rated,
    "E exempt": _s_exempt,
    "AE reverse charge": _s_reverse_charge,
    "K intra-community": _s_intra_community,
    "G export": _s_export,
    "O out of scope": _s_out_of_scope,
    "USD with EUR VAT": _s_foreign_currency,
    "credit note": _s_credit_note,
    "final invoice with deposit": _s_final_with_deposit,
    "deposit invoice": _s_deposit_invoice,
    "direct debit 59": _s_direct_debit,
    "buyer without address (en)": _s_buyer_without_address,
}
