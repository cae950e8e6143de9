"""The Factur-X PDF: XML attached, PDF/A-3 ingredients, legal mentions in fr and en, determinism."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from pypdf import PdfReader

from chalicelib.adapters.documents.model import build_model
from chalicelib.adapters.documents.pdf import epc_payload, qr_matrix
from chalicelib.adapters.documents.render import RenderedDocuments, render_invoice

from .builders import CUSTOMER, SCENARIOS, context, customer, issued, line, seller


def reader(pdf: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(pdf))


def text_of(pdf: bytes) -> str:
    text = "\n".join(page.extract_text() for page in reader(pdf).pages)
    return " ".join(text.split())  # one space for any run of spaces, no-break spaces and line breaks


@pytest.fixture(scope="module")
def invoice_fr() -> RenderedDocuments:
    invoice, ctx = SCENARIOS["S 20/10/5.5/2.1 + allowance/charge + decimals"]()
    return render_invoice(invoice, ctx)


def test_pdf_embeds_the_facturx_xml(invoice_fr: RenderedDocuments) -> None:
    pdf = reader(invoice_fr.pdf)
    assert list(pdf.attachments) == ["factur-x.xml"]
    assert pdf.attachments["factur-x.xml"][0] == invoice_fr.xml
    root = pdf.trailer["/Root"]
    filespec = root["/AF"][0].get_object()
    assert filespec["/AFRelationship"] == "/Data"
    assert filespec["/EF"]["/F"].get_object()["/Subtype"] == "/text/xml"


def test_pdf_is_marked_pdfa3_with_the_facturx_xmp(invoice_fr: RenderedDocuments) -> None:
    xmp = reader(invoice_fr.pdf).xmp_metadata
    assert xmp is not None
    raw = xmp.stream.get_data().decode("utf-8")
    assert "<pdfaid:part>3</pdfaid:part>" in raw and "<pdfaid:conformance>B</pdfaid:conformance>" in raw
    assert "<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in raw
    assert "<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>" in raw


def test_pdf_has_an_srgb_output_intent(invoice_fr: RenderedDocuments) -> None:
    intents = reader(invoice_fr.pdf).trailer["/Root"]["/OutputIntents"]
    assert len(intents) == 1
    intent = intents[0].get_object()
    assert intent["/S"] == "/GTS_PDFA1"
    profile = intent["/DestOutputProfile"].get_object()
    assert profile["/N"] == 3
    data = profile.get_data()
    assert data[36:40] == b"acsp" and data[16:20] == b"RGB "


def test_all_fonts_are_embedded(invoice_fr: RenderedDocuments) -> None:
    fonts = {}
    for page in reader(invoice_fr.pdf).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            fonts[font["/BaseFont"]] = font
    assert len(fonts) == 2
    for name, font in fonts.items():
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor, f"{name} is not embedded"
        assert "DejaVu" in name


def test_french_pdf_has_the_mandatory_mentions(invoice_fr: RenderedDocuments) -> None:
    text = text_of(invoice_fr.pdf)
    for mention in (
        "FACTURE", "F2026-000042", "Date d'émission", "2 mars 2026", "Date d'échéance", "1 avril 2026",
        "Période de prestation", "Atelier Lumière SAS", "SAS au capital de 50 000 €", "RCS Lyon 812 345 676",
        "SIREN 812345676", "SIRET 81234567600017", "N° TVA FR19812345676", "12 rue de la République",
        "Boulangerie Martin SARL", "SIREN 901876540", "N° TVA FR96901876540", "Bon de commande", "PO-778",
        "Qté", "PU HT", "42,1234 €", "TVA 20 % sur", "TVA 10 % sur", "TVA 5,5 % sur", "TVA 2,1 % sur",
        "Total HT", "Total TVA", "Total TTC", "Net à payer", "Remise : Remise fidélité", "Frais : Frais de port",
        "Escompte de 2 % pour paiement sous 10 jours",
        "taux BCE + 10 points", "Indemnité forfaitaire pour frais de recouvrement : 40 €",
        "Catégorie de l'opération : prestation de services", "Virement SEPA",
        "IBAN FR76 3000 6000 0112 3456 7890 189",
        "Référence de paiement : F2026-000042", "https://pay.demo-seller.example/pay/tok_8f3a2c91d7e44b0b9a61",
        "QR code virement SEPA",
    ):
        assert mention in text, mention


def test_no_discount_and_vat_on_debits_and_penalty_rate_mentions() -> None:
    profile = seller(early_payment_discount=None, late_penalty_rate="12.5", vat_on_debits=True)
    invoice = issued([line()], seller_profile=profile)
    text = text_of(render_invoice(invoice, context(profile)).pdf)
    assert "Pas d'escompte pour paiement anticipé" in text
    assert "Pénalités de retard : 12,5 % l'an" in text
    assert "Option pour le paiement de la taxe d'après les débits" in text


def test_an_invoice_without_delivery_date_or_period_states_the_issue_date_as_delivery() -> None:
    profile = seller()
    plain = text_of(render_invoice(issued([line()], seller_profile=profile), context(profile)).pdf)
    assert "Livraison / prestation" in plain
    dated = issued([line()], seller_profile=profile, delivery_date="2026-02-26")
    text = text_of(render_invoice(dated, context(profile)).pdf)
    assert "Date de livraison 26 février 2026" in text and "Livraison / prestation" not in text


def test_english_pdf_has_the_mandatory_mentions() -> None:
    invoice, ctx = SCENARIOS["USD with EUR VAT"]()
    text = text_of(render_invoice(invoice, ctx).pdf)
    for mention in ("INVOICE", "Issue date", "2 March 2026", "Due date", "BILL TO", "Unit price",
                    "Total excl. VAT", "Total incl. VAT", "Amount due", "VAT in euros:", "1 USD = 0.9234 EUR",
                    "Fixed compensation for recovery costs: €40", "ECB rate + 10 points",
                    "2% early payment discount for payment within 10 days",
                    "Category of the operation: supply of services"):
        assert mention in text, mention
    # no EPC QR code for a non-EUR invoice
    assert "SEPA transfer QR code" not in text


def test_exemption_mentions_are_printed() -> None:
    for scenario, mention in (("AE reverse charge", "Autoliquidation"), ("K intra-community", "VATEX-EU-IC"),
                              ("G export", "exportation"), ("E exempt", "article 261 4 4°"),
                              ("O out of scope", "Non soumis à la TVA")):
        invoice, ctx = SCENARIOS[scenario]()
        assert mention in text_of(render_invoice(invoice, ctx).pdf), scenario


def test_credit_note_is_titled_and_references_the_invoice() -> None:
    invoice, ctx = SCENARIOS["credit note"]()
    text = text_of(render_invoice(invoice, ctx).pdf)
    assert "AVOIR" in text and "AV2026-000003" in text
    assert "Avoir sur la facture n° F2026-000042 du 2 février 2026" in text
    assert "Montant de l'avoir" in text
    english = replace(invoice, buyer={**(invoice.buyer or {}), "language": "en"})
    text = text_of(render_invoice(english, ctx).pdf)
    assert "CREDIT NOTE" in text and "Credit note for invoice no. F2026-000042" in text


def test_final_invoice_shows_the_deposit_and_the_amount_due() -> None:
    invoice, ctx = SCENARIOS["final invoice with deposit"]()
    text = text_of(render_invoice(invoice, ctx).pdf)
    assert "Acompte n° F2026-000030 du 15/01/2026" in text
    assert "-1 200,00 €" in text and "3 600,00 €" in text


def test_output_is_byte_identical_across_renders() -> None:
    invoice, ctx = SCENARIOS["S 20/10/5.5/2.1 + allowance/charge + decimals"]()
    first = render_invoice(invoice, ctx)
    time.sleep(1.1)  # factur-x reads the clock: the pinned timestamps must not move
    second = render_invoice(invoice, ctx)
    assert first.pdf == second.pdf and first.xml == second.xml
    assert first.sha256_pdf == second.sha256_pdf and len(first.sha256_xml) == 64
    assert b"D\\07220260302093015" in first.pdf  # creation date = issued_at (UTC)


def test_characters_outside_latin_use_the_full_fonts() -> None:
    buyer = customer(CUSTOMER, name="Αθηναϊκή Εταιρεία ΑΕ")
    invoice = issued([line("Консультация", "1", "100", "20")], buyer=buyer)
    documents = render_invoice(invoice, context())
    text = text_of(documents.pdf)
    assert "Αθηναϊκή Εταιρεία ΑΕ" in text and "Консультация" in text


def test_long_invoices_paginate_with_page_numbers() -> None:
    invoice = issued([line(f"Prestation {i}", "1", "10", "20") for i in range(100)])
    documents = render_invoice(invoice, context())
    pages = reader(documents.pdf).pages
    assert len(pages) >= 3
    assert f"Page 1/{len(pages)}" in pages[0].extract_text()
    assert "Prestation 99" in text_of(documents.pdf)


def test_epc_payload_is_what_segno_would_encode() -> None:
    import segno.helpers

    invoice, ctx = SCENARIOS["final invoice with deposit"]()
    model = build_model(invoice, ctx)
    payload = epc_payload(model)
    assert payload is not None
    reference_qr = segno.helpers.make_epc_qr(name="Atelier Lumière SAS", iban="FR7630006000011234567890189",
                                             amount=Decimal("3600.00"), text="F2026-000044", bic="AGRIFRPP882")
    ours = segno.make_qr(payload, error="m", boost_error=False, mask=reference_qr.mask)
    assert ours.matrix == reference_qr.matrix
    assert payload.split(b"\n")[7] == b"EUR3600"
    # structured creditor reference when the payment reference is an RF reference
    invoice, ctx = SCENARIOS["direct debit 59"]()
    model = build_model(invoice, replace(ctx, payment_means="58"))
    fields = (epc_payload(model) or b"").split(b"\n")
    assert fields[9].startswith(b"RF") and len(fields) == 10


def test_no_epc_code_for_credit_notes_or_direct_debit() -> None:
    for scenario in ("credit note", "direct debit 59", "USD with EUR VAT"):
        invoice, ctx = SCENARIOS[scenario]()
        assert epc_payload(build_model(invoice, ctx)) is None, scenario


def test_qr_matrix_is_a_valid_qr_code() -> None:
    matrix: Any = qr_matrix(b"https://pay.example/pay/tok", error="m")
    assert len(matrix) == len(matrix[0]) >= 21


def test_minimal_seller_identity_renders_valid_documents(official_rules: Any) -> None:
    # Given an identity frozen with only the required seller fields (older profiles, or fields cleared)
    minimal = {"legal_name": "Studio Minimal", "siren": "812345676", "vat_number": "FR19812345676",
               "address": {"line1": "1 rue A", "postal_code": "75001", "city": "Paris", "country": "FR"},
               "email": "billing@minimal.example", "iban": "FR7630006000011234567890189"}
    invoice = issued([line()], seller_identity=minimal)
    documents = render_invoice(invoice, context())
    assert official_rules.fatal(documents.xml) == []
    text = text_of(documents.pdf)
    assert "Studio Minimal" in text and "SIREN 812345676" in text and "BIC" not in text


def test_seller_terms_frozen_on_the_invoice_win_over_the_context() -> None:
    profile = seller()
    invoice = issued([line()], seller_identity={**profile.identity(), "late_penalty_rate": "15",
                                                "early_payment_discount": None})
    text = text_of(render_invoice(invoice, context(profile, late_penalty_rate=Decimal("11"))).pdf)
    assert "Pénalités de retard : 15 % l'an" in text
    assert "Escompte de 2 % pour paiement sous 10 jours" in text  # None in the identity: the context's value
