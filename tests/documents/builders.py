"""Small builders of issued invoices for the document tests (domain builders only)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any

from chalicelib.adapters.documents.context import DocumentContext
from chalicelib.domain.invoice import CREDIT_NOTE, Invoice, compute_totals, new_draft
from chalicelib.domain.money import Money
from chalicelib.domain.parties import Customer, SellerProfile, new_customer, seller_from_input

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
