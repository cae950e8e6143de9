"""Delivery by email (language, attachment, pay and portal links, SEPA pre-notification, bounces) and the
certified e-invoicing platform (submission, lifecycle statuses, "paid" reported once)."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from chalicelib.domain import creditor_reference
from chalicelib.domain.errors import Conflict, NotFound, ValidationError
from chalicelib.domain.provider import Mandate
from chalicelib.services.ports import UnitOfWork
from tests.conftest import line

from .harness import CLERK_ACTOR, build


def attached_xml(pdf: bytes) -> bytes:
    from pypdf import PdfReader

    return PdfReader(io.BytesIO(pdf)).attachments["factur-x.xml"][0]


def test_the_invoice_email_in_french_with_the_facturx_pdf_and_links():
    h = build()
    c = h.customer()
    invoice = h.issue(c.id, [line("Conseil", "2", "450.00")])
    assert invoice.delivery["status"] == "queued"
    h.run_outbox()
    (mail,) = h.mailer.sent
    assert mail.to == (c.email,) and mail.subject == "Facture F2026-000001 – Atelier Lumière SAS"
    (attachment,) = mail.attachments
    assert attachment.filename == "F2026-000001.pdf" and attachment.content_type == "application/pdf"
    assert attached_xml(attachment.content) == h.store.objects[invoice.documents["xml_key"]]
    customer = h.ledger.get_customer(c.id)
    assert f"https://ar.example/pay/{invoice.pay_token}" in mail.text
    assert f"https://ar.example/portal/{customer.portal_token}" in mail.text       # created on first use
    rf = creditor_reference.format_reference(creditor_reference.for_invoice(invoice.number, invoice.id))
    assert rf in mail.text and "FR76 3000 6000 0112 3456 7890 189" in mail.text
    assert "1\u202f080,00\u00a0€" in mail.text and "à régler au plus tard le 1 avril 2026" in mail.text
    assert "copie de courtoisie" not in mail.text
    assert mail.html and f'href="https://ar.example/pay/{invoice.pay_token}"' in mail.html
    stored = h.ledger.get_invoice(invoice.id)
    assert stored.delivery["status"] == "sent" and stored.delivery["message_id"] == "ses-0001"


def test_english_customers_get_english_and_a_scheduled_debit_is_announced():
    h = build()
    c = h.customer(language="en")
    uow = UnitOfWork(actor=CLERK_ACTOR, now=h.clock.now())
    uow.save(replace(c, mandate=Mandate(id="mandate_1", status="active", reference="MD-77", payment_method="pm",
                                        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))))
    h.ledger.commit(uow)
    invoice = h.issue(c.id, [line()])
    h.run_outbox()
    (mail,) = h.mailer.sent
    assert mail.subject == "Invoice F2026-000001 – Atelier Lumière SAS"
    assert "SEPA Direct Debit (pre-notification): €120.00 will be debited from your account on 1 April 2026 " \
           "under mandate MD-77 (creditor identifier FR12ZZZ123456)" in mail.text
    assert invoice.pay_token not in mail.text                                       # nothing to do


def test_a_message_that_runs_twice_sends_once_and_resend_sends_again():
    h = build()
    invoice = h.issue(h.customer().id, [line()])
    payload = next(v["message"].payload for v in h.ledger.outbox.values() if v["message"].topic == "mail.invoice")
    h.run_outbox()
    h.delivery.mail_handler(payload)                                                # the outbox retried it
    assert len(h.mailer.sent) == 1
    h.delivery.resend(invoice.id, CLERK_ACTOR)
    h.run_outbox()
    assert len(h.mailer.sent) == 2
    h.delivery.copy_handler({"invoice_id": invoice.id})                             # the portal's copy
    assert h.mailer.sent[-1].subject.endswith("(copie)")
    draft = h.draft(h.customer().id, [line()])
    with pytest.raises(Conflict):
        h.delivery.resend(draft.id, CLERK_ACTOR)


def test_credit_notes_are_emailed_without_anything_to_pay():
    h = build()
    invoice = h.issue(h.customer().id, [line()])
    credit = h.credit_notes.create(invoice.id, {}, CLERK_ACTOR)
    h.run_outbox()
    mail = h.mailer.sent[-1]
    assert mail.subject == f"Avoir {credit.number} – Atelier Lumière SAS"
    assert f"sur la facture {invoice.number}" in mail.text and "/pay/" not in mail.text


def bounce(message_id: str, kind: str = "Permanent", tags: dict | None = None) -> dict:
    """An SES bounce notification as SES event publishing sends it through SNS."""
    return {"eventType": "Bounce",
            "bounce": {"feedbackId": "0102017f-feedback", "bounceType": kind, "bounceSubType": "General",
                       "bouncedRecipients": [{"emailAddress": "compta@boulangerie-martin.example",
                                              "action": "failed", "status": "5.1.1",
                                              "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                       "timestamp": "2026-03-02T09:31:05.000Z", "reportingMTA": "dsn; a27-30.smtp-out.amazonses.com"},
            "mail": {"timestamp": "2026-03-02T09:31:00.000Z", "source": "factures@demo-seller.example",
                     "messageId": message_id, "destination": ["compta@boulangerie-martin.example"],
                     "tags": tags or {}}}


def test_bounces_are_recorded_once_on_the_invoice():
    h = build()
    invoice = h.issue(h.customer().id, [line()])
    h.run_outbox()
    assert h.delivery.handle_ses_event(bounce("ses-0001")) == {"invoice_id": invoice.id, "status": "bounced"}
    assert h.delivery.handle_ses_event(bounce("ses-0001"))["duplicate"] is True
    delivery = h.ledger.get_invoice(invoice.id).delivery
    assert delivery["status"] == "bounced"
    assert [e["status"] for e in delivery["history"]] == ["queued", "sent", "bounced"]
    # a later "Delivery" of the same message does not hide the bounce; unrelated mail is ignored
    h.delivery.handle_ses_event({"eventType": "Delivery", "mail": {"messageId": "ses-0001"},
                                 "delivery": {"timestamp": "2026-03-02T09:32:00Z"}})
    assert h.ledger.get_invoice(invoice.id).delivery["status"] == "bounced"
    assert "ignored" in h.delivery.handle_ses_event(bounce("ses-unknown"))
    # identity notifications ("notificationType") and message tags work too
    other = h.issue(h.customer().id, [line()])
    h.run_outbox()
    event = bounce("ses-9999", kind="Transient", tags={"invoice_id": [other.id]})
    event["notificationType"] = event.pop("eventType")
    assert h.delivery.handle_ses_event(event)["status"] == "soft_bounced"


def test_the_platform_receives_issued_documents_and_reports_their_lifecycle():
    h = build()
    h.einvoicing_settings.put({"platform_enabled": True}, CLERK_ACTOR)
    c = h.customer()
    invoice = h.issue(c.id, [line()])
    assert invoice.einvoice["status"] == "pending"
    h.run_outbox()
    stored = h.ledger.get_invoice(invoice.id)
    submission_id = stored.einvoice["submission_id"]
    assert stored.einvoice["status"] == "deposited" and stored.einvoice["status_code"] == "200"
    sent = h.registry.documents[submission_id]
    assert sent.xml == h.store.objects[invoice.documents["xml_key"]] and sent.type_code == "380"
    assert "copie de courtoisie" in h.mailer.sent[-1].text
    # statuses come back (out of order, repeated); the latest by date is the current one
    h.einvoicing.receive_status({"submission_id": submission_id, "status": "approved",
                                 "at": "2026-03-04T10:00:00Z", "event_id": "evt-2"}, CLERK_ACTOR)
    h.einvoicing.receive_status({"submission_id": submission_id, "status": "203",
                                 "at": "2026-03-03T10:00:00Z", "event_id": "evt-1"}, CLERK_ACTOR)
    again = h.einvoicing.receive_status({"submission_id": submission_id, "status": "approved",
                                         "at": "2026-03-04T10:00:00Z", "event_id": "evt-2"}, CLERK_ACTOR)
    assert again.einvoice["status"] == "approved"
    assert [e["status"] for e in again.einvoice["history"]] == ["deposited", "approved", "made_available"]
    with pytest.raises(NotFound):
        h.einvoicing.receive_status({"submission_id": "LOC-NOPE", "status": "approved"}, CLERK_ACTOR)
    with pytest.raises(ValidationError):
        h.einvoicing.receive_status({"submission_id": submission_id, "status": "lost"}, CLERK_ACTOR)
    # the payment that settles it is reported as "paid" (encaissée), once
    h.payments.record_for_invoice(invoice.id, {"method": "bank_transfer", "received_on": "2026-03-02"}, CLERK_ACTOR)
    h.run_outbox()
    (report,) = h.registry.reports.values()
    assert report == {"submission_id": submission_id, "status": "paid", "amount": "120.00", "currency": "EUR",
                      "on": "2026-03-02"}
    paid_event = next(e for e in h.publisher.events if e["type"] == "invoice.paid")
    h.einvoicing.on_event(paid_event)                                            # the event handler ran twice
    h.run_outbox()
    assert len(h.registry.reports) == 1
    final = h.ledger.get_invoice(invoice.id).einvoice
    assert [e["status"] for e in final["history"] if e["source"] == "seller"] == ["paid"]


def test_rejected_and_refused_invoices_get_a_review_task():
    h = build()
    h.einvoicing_settings.put({"platform_enabled": True}, CLERK_ACTOR)
    invoice = h.issue(h.customer().id, [line()])
    h.run_outbox()
    h.einvoicing.receive_status({"invoice_id": invoice.id, "status": "refused", "reason": "Commande inconnue"},
                                CLERK_ACTOR)
    (task,) = h.ledger.list_tasks().items
    assert task.kind == "einvoice_review" and "Commande inconnue" in task.title and task.invoice_ids == (invoice.id,)
    plain = build()
    other = plain.issue(plain.customer().id, [line()])
    with pytest.raises(Conflict):
        plain.einvoicing.receive_status({"invoice_id": other.id, "status": "approved"}, CLERK_ACTOR)


def test_a_deposit_the_platform_rejects_gets_a_review_task(monkeypatch):
    from chalicelib.adapters.einvoice_platform import LocalEInvoicePlatform

    monkeypatch.setattr(LocalEInvoicePlatform, "_check", staticmethod(lambda submission: "SIREN inconnu"))
    h = build()
    h.einvoicing_settings.put({"platform_enabled": True}, CLERK_ACTOR)
    invoice = h.issue(h.customer().id, [line()])
    h.run_outbox()
    einvoice = h.ledger.get_invoice(invoice.id).einvoice
    assert einvoice["status"] == "rejected" and einvoice["history"][0]["reason"] == "SIREN inconnu"
    (task,) = h.ledger.list_tasks().items
    assert task.kind == "einvoice_review" and "rejected" in task.title
