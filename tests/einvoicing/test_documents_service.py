"""Issuing renders the Factur-X document, records its hashes, and the outbox stores it byte for byte."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from lxml import etree

from chalicelib.adapters.documents.cii import NSMAP
from chalicelib.domain import creditor_reference
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.provider import Mandate
from chalicelib.services.documents import DocumentMismatch
from tests.conftest import line

from .harness import CLERK_ACTOR, build


def xpath(xml: bytes, path: str) -> list[str]:
    return [n if isinstance(n, str) else (n.text or "") for n in etree.fromstring(xml).xpath(path, namespaces=NSMAP)]


def test_issue_records_hashes_and_the_outbox_stores_the_same_bytes():
    h = build()
    c = h.customer()
    invoice = h.issue(c.id, [line("Conseil", "2", "450.00")])
    docs = invoice.documents
    assert set(docs) == {"pdf_key", "xml_key", "sha256_pdf", "sha256_xml", "spec"}
    assert docs["pdf_key"] == f"invoices/{invoice.id}/factur-x.pdf"
    assert docs["spec"]["payment_reference"] == creditor_reference.for_invoice(invoice.number, invoice.id)
    assert docs["spec"]["pay_url"] == f"https://ar.example/pay/{invoice.pay_token}"
    assert h.store.objects == {}                      # written after the commit, by the outbox
    h.run_outbox()
    pdf, xml = h.store.objects[docs["pdf_key"]], h.store.objects[docs["xml_key"]]
    assert hashlib.sha256(pdf).hexdigest() == docs["sha256_pdf"]
    assert hashlib.sha256(xml).hexdigest() == docs["sha256_xml"]
    # served from storage, the same bytes every time, without rendering again
    renders = len(h.renders)
    assert h.documents.file(invoice.id, "pdf") == pdf == h.documents.file(invoice.id, "pdf")
    assert h.documents.file(invoice.id, "xml") == xml
    assert len(h.renders) == renders
    # the XML carries the RF reference (BT-83) and the SEPA credit transfer details (58)
    assert xpath(xml, "//ram:PaymentReference") == [docs["spec"]["payment_reference"]]
    assert xpath(xml, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == ["58"]


def test_a_read_before_the_outbox_ran_stores_the_recorded_bytes():
    h = build()
    invoice = h.issue(h.customer().id, [line()])
    pdf = h.documents.file(invoice, "pdf")
    assert hashlib.sha256(pdf).hexdigest() == invoice.documents["sha256_pdf"]
    assert h.store.exists(invoice.documents["xml_key"])
    h.run_outbox()                                   # nothing left to do: already stored
    assert h.store.puts == 2


def test_a_document_that_renders_differently_is_never_stored():
    h = build()
    invoice = h.issue(h.customer().id, [line()])
    tampered = replace(invoice, documents={**invoice.documents, "sha256_pdf": "0" * 64})
    with pytest.raises(DocumentMismatch):
        h.documents._store_files(tampered)
    assert h.store.objects == {}


def test_a_refused_einvoice_leaves_no_gap_in_the_numbering():
    h = build()
    c = h.customer()
    # an intra-community supply without its delivery date cannot be a compliant e-invoice (BR-IC-11)
    bad = h.draft(c.id, [line("Luminaire", "2", "100", "0", vat_category="K")])
    with pytest.raises(ValidationError) as err:
        h.invoices.issue(bad.id, CLERK_ACTOR)
    assert err.value.code == "invalid_einvoice" and "BR-IC-11" in err.value.message
    assert h.ledger.get_counter("F#2026") == 0 and h.ledger.get_invoice(bad.id).status == "draft"
    assert h.ledger.outbox == {}
    assert h.issue(c.id, [line()]).number == "F2026-000001"


def test_an_xml_breaking_the_xsd_refuses_the_issue(monkeypatch):
    from chalicelib.adapters.documents import render

    original = render.cii_from_model
    monkeypatch.setattr(render, "cii_from_model", lambda m: original(m).replace(b"<ram:TypeCode>380", b"<ram:Oops>380")
                        .replace(b"380</ram:TypeCode>", b"380</ram:Oops>", 1))
    h = build()
    c = h.customer()
    draft = h.draft(c.id, [line()])
    with pytest.raises(ValidationError) as err:
        h.invoices.issue(draft.id, CLERK_ACTOR)
    assert err.value.code == "invalid_einvoice" and "XSD" in err.value.message
    assert h.ledger.get_counter("F#2026") == 0
    monkeypatch.undo()
    assert h.invoices.issue(draft.id, CLERK_ACTOR).number == "F2026-000001"


def test_an_active_mandate_makes_it_a_direct_debit_with_mandate_and_creditor_ids():
    h = build()
    c = h.customer()
    mandate = Mandate(id="mandate_1", status="active", reference="MD-4242-XYZ", payment_method="pm_1",
                      created_at=datetime(2026, 1, 5, tzinfo=timezone.utc))
    from chalicelib.services.ports import UnitOfWork

    uow = UnitOfWork(actor=CLERK_ACTOR, now=h.clock.now())
    uow.save(replace(c, mandate=mandate))
    h.ledger.commit(uow)
    invoice = h.issue(c.id, [line()])
    assert invoice.collection_status == "scheduled"
    xml = h.documents.file(invoice, "xml")
    assert xpath(xml, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == ["59"]
    assert xpath(xml, "//ram:DirectDebitMandateID") == ["MD-4242-XYZ"]
    assert xpath(xml, "//ram:CreditorReferenceID") == ["FR12ZZZ123456"]


def test_a_french_seller_invoicing_in_dollars_needs_a_eur_rate():
    h = build()
    c = h.customer(currency="USD")
    with pytest.raises(ValidationError) as err:
        h.issue(c.id, [line()])
    assert err.value.field == "eur_exchange_rate" and "PUT /settings/einvoicing" in err.value.message
    h.einvoicing_settings.put({"exchange_rates": {"USD": {"rate": "0.9234", "date": "2026-03-01"}}}, CLERK_ACTOR)
    invoice = h.issue(c.id, [line()])
    xml = h.documents.file(invoice, "xml")
    assert xpath(xml, "//ram:TaxCurrencyCode") == ["EUR"]
    # 20.00 USD of VAT x 0.9234 = 18.47 EUR (BT-111)
    assert "18.47" in xpath(xml, "//ram:TaxTotalAmount[@currencyID='EUR']")
    # a rate on the draft wins over the configured one
    own = h.issue(c.id, [line()], eur_exchange_rate="0.5")
    assert own.documents["spec"]["eur_exchange_rate"] == "0.5"


def test_the_operation_category_defaults_from_the_settings():
    h = build()
    c = h.customer()
    assert h.issue(c.id, [line()]).documents["spec"]["operation_category"] == "services"
    h.einvoicing_settings.put({"default_operation_category": "goods"}, CLERK_ACTOR)
    assert h.issue(c.id, [line()]).documents["spec"]["operation_category"] == "goods"
    assert h.issue(c.id, [line()], operation_category="mixed").documents["spec"]["operation_category"] == "mixed"


def test_an_intra_community_supply_is_delivered_to_the_buyers_country_unless_said():
    h = build()
    c = h.customer(name="Müller GmbH", country="DE", language="en", vat_number="DE136695976", siren=None,
                   address={"line1": "Hauptstraße 5", "postal_code": "10115", "city": "Berlin", "country": "DE"})
    invoice = h.issue(c.id, [line("Luminaire", "2", "100", "0", vat_category="K")], delivery_date="2026-02-27")
    assert invoice.documents["spec"]["deliver_to"] == {"country": "DE"}
    other = h.issue(c.id, [line("Luminaire", "2", "100", "0", vat_category="K")], delivery_date="2026-02-27",
                    deliver_to={"country": "AT", "name": "Lager Wien"})
    xml = h.documents.file(other, "xml")
    assert xpath(xml, "//ram:ShipToTradeParty/ram:PostalTradeAddress/ram:CountryID") == ["AT"]
