"""Invoices from which no compliant e-invoice can be made are refused with ValidationError (invalid_einvoice)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from chalicelib.adapters.documents import render as render_module
from chalicelib.adapters.documents.cii import build_cii
from chalicelib.adapters.documents.context import DepositDeduction
from chalicelib.adapters.documents.facturx import check_xsd
from chalicelib.adapters.documents.render import render_invoice
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.invoice import new_draft
from chalicelib.domain.money import Money

from .builders import EU_CUSTOMER, NOW, SCENARIOS, US_CUSTOMER, context, customer, issued, line, seller


def refused(invoice: Any, ctx: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        render_invoice(invoice, ctx)
    assert info.value.code == "invalid_einvoice"
    return info.value


def test_draft_has_no_document() -> None:
    draft = new_draft("inv_d", {"customer_id": "cus_test", "lines": [line()]}, customer_currency="EUR", now=NOW)
    assert "draft" in refused(draft, context()).message


def test_out_of_scope_lines_cannot_be_mixed_with_taxed_lines() -> None:
    invoice = issued([line("Conseil", "1", "100", "20"), line("Pénalité", "1", "40", "0", vat_category="O")])
    assert "BR-O-11" in refused(invoice, context()).message


def test_taxed_lines_need_the_seller_vat_number() -> None:
    profile = seller(vat_number=None)
    invoice = issued([line()], seller_profile=profile)
    error = refused(invoice, context(profile))
    assert "BR-S-02" in error.message and error.field == "seller.vat_number"


def test_intra_community_supply_needs_deliver_to_country_and_date() -> None:
    buyer = customer(EU_CUSTOMER)
    invoice = issued([line("Lampe", "1", "100", "0", vat_category="K")], buyer=buyer, delivery_date="2026-02-26")
    assert "BR-IC-12" in refused(invoice, context(operation_category="goods")).message
    undated = issued([line("Lampe", "1", "100", "0", vat_category="K")], buyer=buyer)
    _, ctx = SCENARIOS["K intra-community"]()
    assert "BR-IC-11" in refused(undated, ctx).message


def test_intra_community_supply_needs_the_buyer_vat_number() -> None:
    buyer = customer(EU_CUSTOMER, vat_number=None)
    invoice = issued([line("Lampe", "1", "100", "0", vat_category="K")], buyer=buyer, delivery_date="2026-02-26")
    _, ctx = SCENARIOS["K intra-community"]()
    assert "BR-IC-02" in refused(invoice, ctx).message


def test_reverse_charge_needs_a_buyer_identifier() -> None:
    invoice = issued([line("Dev", "1", "100", "0", vat_category="AE")], buyer=customer(US_CUSTOMER, currency="EUR"))
    assert "BR-AE-02" in refused(invoice, context()).message


def test_credit_note_must_reference_an_invoice() -> None:
    invoice, ctx = SCENARIOS["credit note"]()
    assert "preceding_invoice" in refused(invoice, replace(ctx, preceding_invoice=None)).message


def test_foreign_currency_needs_the_eur_rate() -> None:
    invoice, ctx = SCENARIOS["USD with EUR VAT"]()
    assert "art. 230" in refused(invoice, replace(ctx, eur_exchange_rate=None)).message


def test_direct_debit_needs_a_mandate() -> None:
    invoice, ctx = SCENARIOS["direct debit 59"]()
    assert "BT-89" in refused(invoice, replace(ctx, mandate_reference=None)).message


def test_deposits_cannot_exceed_the_total() -> None:
    invoice = issued([line("Solde", "1", "100", "20")])
    big = DepositDeduction("F2026-000001", date(2026, 1, 5), Money(50000, "EUR"))
    assert "exceed" in refused(invoice, context(deposits=(big,))).message


def test_deposits_must_match_the_prepaid_amount_on_the_invoice() -> None:
    invoice = issued([line("Solde", "1", "1000", "20")], prepaid=Money(30000, "EUR"))
    other = DepositDeduction("F2026-000001", date(2026, 1, 5), Money(20000, "EUR"))
    assert "differ" in refused(invoice, context(deposits=(other,))).message


def test_unknown_code_lists_values_are_refused_before_the_official_rules_do() -> None:
    invoice = issued([line()], allowances_charges=[{"type": "allowance", "amount": "5.00", "reason": "Geste",
                                                    "reason_code": "ZZ", "vat_rate": "20"}])
    assert "BR-CL-19" in refused(invoice, context()).message


def test_wrong_rf_reference_is_refused() -> None:
    invoice = issued([line()])
    assert "ISO 11649" in refused(invoice, context(payment_reference="RF00F2026000042")).message


def test_unknown_operation_category_is_refused() -> None:
    assert "operation_category" in refused(issued([line()]), context(operation_category="rental")).message


def test_xml_breaking_the_xsd_is_refused_and_names_the_error() -> None:
    invoice, ctx = SCENARIOS["Z zero rated"]()
    xml = build_cii(invoice, ctx)
    tampered = xml.replace(b"<ram:TypeCode>380</ram:TypeCode>", b"")
    with pytest.raises(ValidationError) as info:
        check_xsd(tampered)
    assert info.value.code == "invalid_einvoice"
    assert "IssueDateTime" in info.value.message and "XSD" in info.value.message


def test_render_invoice_refuses_a_document_breaking_the_xsd(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a CII writer that produces an element the Factur-X XSD does not allow
    original = render_module.cii_from_model
    monkeypatch.setattr(render_module, "cii_from_model", lambda model: original(model).replace(
        b"<ram:InvoiceCurrencyCode>", b"<ram:Unexpected>x</ram:Unexpected><ram:InvoiceCurrencyCode>"))
    # When rendering, then the invoice is refused instead of issued with an invalid e-invoice
    with pytest.raises(ValidationError) as info:
        render_invoice(*SCENARIOS["Z zero rated"]())
    assert info.value.code == "invalid_einvoice" and "Unexpected" in info.value.message
