"""The e-invoicing routes over the app (chalice test client) against moto: documents served byte-identical
from S3, the email as moto recorded it, credit notes, recurring runs, settings, platform statuses, SES bounces."""

from __future__ import annotations

import email
import hashlib
import io
import json
from email import policy


from tests.conftest import CUSTOMER_INPUT, line, moto_data

PDF = {"Accept": "application/pdf"}


def issued(api, *lines, **extra):
    customer = api.post("/customers", CUSTOMER_INPUT).data
    draft = api.post("/invoices", {"customer_id": customer["id"], "lines": list(lines) or [line()], **extra}).data
    response = api.post(f"/invoices/{draft['id']}/issue")
    assert response.status_code == 200, response.data
    return response.data


def drain():
    from chalicelib import wiring

    return wiring.outbox().run(limit=1000).to_dict()


def sent_mail(endpoint):
    """moto's raw messages, parsed."""
    return [email.message_from_string(m["raw_data"], policy=policy.default)
            for m in moto_data(endpoint)["ses"]["RawMessage"]]


def embedded_xml(pdf: bytes) -> bytes:
    from pypdf import PdfReader

    return PdfReader(io.BytesIO(pdf)).attachments["factur-x.xml"][0]


def test_pdf_and_xml_are_served_from_storage_byte_identical(api, stack):
    invoice = issued(api, line("Conseil", "3", "250.00"))
    assert invoice["documents"]["sha256_pdf"] and invoice["einvoice"] is None
    drain()
    first = api.get(f"/invoices/{invoice['id']}/pdf", headers=PDF)
    assert first.status_code == 200 and first.headers["Content-Type"] == "application/pdf"
    assert first.body.startswith(b"%PDF-") and hashlib.sha256(first.body).hexdigest() == \
        invoice["documents"]["sha256_pdf"]
    assert api.get(f"/invoices/{invoice['id']}/pdf", headers=PDF).body == first.body
    xml = api.get(f"/invoices/{invoice['id']}/xml")
    assert xml.headers["Content-Type"].startswith("application/xml")
    assert hashlib.sha256(xml.body).hexdigest() == invoice["documents"]["sha256_xml"]
    assert embedded_xml(first.body) == xml.body
    # the same bytes sit in S3 under the invoice id
    from chalicelib import wiring

    assert wiring.documents_store().get(f"invoices/{invoice['id']}/factur-x.pdf") == first.body
    # a draft has no document; readers may read, nobody else
    customer = api.get("/customers").data["data"][0]
    draft = api.post("/invoices", {"customer_id": customer["id"], "lines": [line()]}).data
    missing = api.get(f"/invoices/{draft['id']}/pdf", headers=PDF)
    assert missing.status_code == 404 and missing.data["code"] == "document_not_found"
    assert api.get(f"/invoices/{invoice['id']}/pdf", headers=PDF, key="").status_code == 401


def test_the_pay_page_pdf_is_the_same_document(api, stack):
    invoice = issued(api)
    token = invoice["pay_url"].rsplit("/", 1)[1]
    response = api.get(f"/pay/{token}/pdf", headers=PDF, key="")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "private, no-store"
    assert hashlib.sha256(response.body).hexdigest() == invoice["documents"]["sha256_pdf"]
    assert api.get("/pay/not-a-token/pdf", headers={"Accept": "*/*"}, key="").status_code == 404


def test_a_refused_einvoice_is_a_422_and_the_next_invoice_takes_the_number(api, stack):
    customer = api.post("/customers", CUSTOMER_INPUT).data
    bad = api.post("/invoices", {"customer_id": customer["id"], "lines": [
        line("Luminaire", "1", "100", "0", vat_category="K")]}).data
    refused = api.post(f"/invoices/{bad['id']}/issue")
    assert refused.status_code == 422 and refused.data["code"] == "invalid_einvoice"
    assert "delivery date" in refused.data["message"] and refused.data["field"] == "delivery_date"
    assert api.get(f"/invoices/{bad['id']}").data["status"] == "draft"
    assert issued(api)["number"].endswith("-000001")


def test_the_email_moto_recorded_has_the_facturx_pdf_and_the_links(api, stack):
    invoice = issued(api, line("Conseil", "2", "450.00"))
    drain()
    (mail,) = sent_mail(stack)
    assert mail["To"] == CUSTOMER_INPUT["email"]
    assert mail["Subject"] == f"Facture {invoice['number']} – Atelier Lumière SAS"
    (attachment,) = [p for p in mail.iter_attachments()]
    assert attachment.get_filename() == f"{invoice['number']}.pdf"
    pdf = attachment.get_content()
    stored_xml = api.get(f"/invoices/{invoice['id']}/xml").body
    assert embedded_xml(pdf) == stored_xml
    import facturx
    from lxml import etree

    filename, xml = facturx.get_facturx_xml_from_pdf(pdf)
    assert filename == "factur-x.xml" and facturx.get_level(etree.fromstring(xml)) == "en16931"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert invoice["pay_url"] in text and "/portal/" in text
    delivery = api.get(f"/invoices/{invoice['id']}").data["delivery"]
    assert delivery["status"] == "sent" and delivery["message_id"]
    # resend: 202, then a second message
    resent = api.post(f"/invoices/{invoice['id']}/send")
    assert resent.status_code == 202 and resent.data["delivery"]["status"] == "queued"
    drain()
    assert len(sent_mail(stack)) == 2


def test_an_ses_bounce_event_marks_the_delivery_bounced(api, stack):
    invoice = issued(api)
    drain()
    message_id = api.get(f"/invoices/{invoice['id']}").data["delivery"]["message_id"]
    ses_event = {"notificationType": "Bounce", "bounce": {
        "bounceType": "Permanent", "bounceSubType": "NoEmail", "timestamp": "2026-03-02T09:31:05.000Z",
        "bouncedRecipients": [{"emailAddress": CUSTOMER_INPUT["email"], "status": "5.1.1", "action": "failed"}],
        "feedbackId": "feedback-1"}, "mail": {"messageId": message_id, "timestamp": "2026-03-02T09:31:00.000Z",
                                              "source": "factures@demo-seller.example",
                                              "destination": [CUSTOMER_INPUT["email"]]}}
    sns = {"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(ses_event),
                                                          "TopicArn": "arn:aws:sns:eu-west-3:123:ar-ses-events"}}]}
    from chalicelib.api.documents import ses_events

    assert ses_events(sns)["results"] == [{"invoice_id": invoice["id"], "status": "bounced"}]
    assert api.get(f"/invoices/{invoice['id']}").data["delivery"]["status"] == "bounced"


def test_credit_notes_over_the_api(api, stack):
    invoice = issued(api, line("Lustre", "2", "500.00"), line("Pose", "4", "50.00"))
    partial = api.post(f"/invoices/{invoice['id']}/credit-notes",
                       {"lines": [{"index": 1, "quantity": "2"}], "reason": "Pose réduite"},
                       headers={"Idempotency-Key": "cn-1"})
    assert partial.status_code == 201 and partial.data["kind"] == "credit_note", partial.data
    assert partial.data["type_code"] == "381" and partial.data["pay_url"] is None
    assert partial.data["total"] == "120.00" and partial.data["related_invoice_id"] == invoice["id"]
    replay = api.post(f"/invoices/{invoice['id']}/credit-notes",
                      {"lines": [{"index": 1, "quantity": "2"}], "reason": "Pose réduite"},
                      headers={"Idempotency-Key": "cn-1"})
    assert replay.data["id"] == partial.data["id"] and replay.headers.get("Idempotent-Replayed") == "true"
    after = api.get(f"/invoices/{invoice['id']}").data
    assert after["amount_due"] == "1320.00" and after["credit_notes"][0]["number"] == partial.data["number"]
    too_much = api.post(f"/invoices/{invoice['id']}/credit-notes", {"lines": [{"index": 1, "quantity": "3"}]})
    assert too_much.status_code == 422 and too_much.data["field"] == "lines[0].quantity"
    unknown = api.post(f"/invoices/{invoice['id']}/credit-notes", {"everything": True})
    assert unknown.status_code == 422
    full = api.post(f"/invoices/{invoice['id']}/credit-notes", {})
    assert full.status_code == 201 and full.data["total"] == "1320.00"
    assert api.get(f"/invoices/{invoice['id']}").data["status"] == "void"
    drain()
    pdf = api.get(f"/invoices/{full.data['id']}/pdf", headers=PDF)
    assert b"381" in embedded_xml(pdf.body)


def test_recurring_schedules_and_the_admin_run(api, stack):
    from chalicelib import wiring

    customer = api.post("/customers", CUSTOMER_INPUT).data
    today = wiring.invoices().today()
    created = api.post("/recurring-schedules", {"customer_id": customer["id"], "lines": [line("Abonnement")],
                                                "day_of_month": today.day, "operation_category": "services"})
    assert created.status_code == 201, created.data
    schedule = created.data
    assert schedule["next_run"] == today.isoformat()
    assert api.post("/recurring/run").status_code == 400                            # as_of is required
    first = api.post(f"/recurring/run?as_of={today.isoformat()}")
    second = api.post(f"/recurring/run?as_of={today.isoformat()}")
    assert (first.data["issued"], second.data["issued"]) == (1, 0)
    (issued_one,) = first.data["invoices"]
    invoice = api.get(f"/invoices/{issued_one['invoice_id']}").data
    assert invoice["status"] == "open" and invoice["documents"]["sha256_pdf"]
    listed = api.get(f"/recurring-schedules?customer_id={customer['id']}").data["data"]
    assert listed[0]["invoices_issued"] == 1 and listed[0]["last_invoice_id"] == invoice["id"]
    paused = api.patch(f"/recurring-schedules/{schedule['id']}", {"status": "paused"})
    assert paused.status_code == 200 and paused.data["status"] == "paused"
    bad = api.post("/recurring-schedules", {"customer_id": customer["id"], "lines": [line()], "day_of_month": 32})
    assert bad.status_code == 422 and bad.data["field"] == "day_of_month"
    # the scheduled function itself (what EventBridge invokes daily)
    event = api.client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                resources=["arn:aws:events:eu-west-3:123:rule/recurring_invoices"])
    assert api.client.lambda_.invoke("recurring_invoices", event).payload["issued"] == 0


def test_einvoicing_settings_and_platform_statuses(api, stack):
    assert api.get("/settings/einvoicing").data["platform_enabled"] is False
    bad = api.put("/settings/einvoicing", {"exchange_rates": {"USD": {"rate": 0.92}}})
    assert bad.status_code == 422 and bad.data["field"] == "exchange_rates.USD"
    saved = api.put("/settings/einvoicing", {"platform_enabled": True, "default_operation_category": "mixed"})
    assert saved.status_code == 200 and saved.data["version"] == 1
    invoice = issued(api)
    assert invoice["einvoice"]["status"] == "pending"
    drain()
    submitted = api.get(f"/invoices/{invoice['id']}").data["einvoice"]
    assert submitted["status"] == "deposited" and submitted["submission_id"].startswith("LOC-")
    status = api.post("/einvoicing/statuses", {"submission_id": submitted["submission_id"], "status": "approved",
                                               "at": "2026-12-01T10:00:00Z", "event_id": "pa-evt-1"})
    assert status.status_code == 200 and status.data["einvoice"]["status"] == "approved"
    unknown = api.post("/einvoicing/statuses", {"submission_id": "LOC-NONE", "status": "approved"})
    assert unknown.status_code == 404
    wrong = api.post("/einvoicing/statuses", {"submission_id": submitted["submission_id"], "status": "eaten"})
    assert wrong.status_code == 422 and wrong.data["field"] == "status"
