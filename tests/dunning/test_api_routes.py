"""The dunning routes over HTTP (chalice test client, moto): errors name the field, nothing half-written."""

from __future__ import annotations

import io
import zipfile
from datetime import date

from tests.dunning.test_replay_api import customer, days, issue, pay


def test_policy_and_rates_admin_with_validation_errors(replay) -> None:
    api = replay
    api.on(date(2026, 11, 25))
    policies = api.ok(api.get("/dunning/policies"))["data"]
    assert [p["id"] for p in policies] == ["default"]
    body = dict(policies[0])
    body["steps"] = [dict(s) for s in body["steps"]]
    body["steps"][3]["offset_days"] = "20"
    resp = api.put("/dunning/policies/firm", body)
    assert resp.status_code == 422 and resp.data["field"] == "id"
    body.pop("id")
    resp = api.put("/dunning/policies/firm", body)
    assert resp.status_code == 422 and resp.data["field"] == "steps[3].offset_days"
    body["steps"][3]["offset_days"] = 20
    body["name"] = "Firm"
    saved = api.ok(api.put("/dunning/policies/firm", body))
    assert saved["id"] == "firm" and saved["version"] == 1
    assert api.put("/dunning/policies/default", body, key="").status_code == 401
    rates = api.ok(api.get("/dunning/rates"))
    assert rates["provisional"] is True and rates["missing_for_current_half_year"] == ["ecb_mro", "legal_rate"]
    assert "2026-H2" in rates["note"]
    update = {k: rates[k] for k in ("ecb_mro", "legal_rate", "margin_points", "floor_multiplier", "carry_forward")}
    update["ecb_mro"] = {**update["ecb_mro"], "2026-H2": "two"}
    resp = api.put("/dunning/rates", update)
    assert resp.status_code == 422 and resp.data["field"] == "reference_rates.ecb_mro.2026-H2"
    update["ecb_mro"]["2026-H2"] = "2.15"
    update["legal_rate"] = {**update["legal_rate"], "2026-H2": "2.62"}
    after = api.ok(api.put("/dunning/rates", update))
    assert after["provisional"] is False and after["configured"] is True
    # the policy change asked for every open invoice to be re-decided
    from chalicelib import wiring

    assert "dunning.rewake" in {m.topic for m in wiring.ledger().pending_outbox(api.clock.now(), 100)}


def test_customer_settings_profile_notes_tasks_and_timeline(replay) -> None:
    api = replay
    cid = customer(api, "Atelier SA", "ap@atelier.example")
    inv = issue(api, cid, date(2026, 3, 1))
    api.run(date(2026, 3, 2))
    resp = api.patch(f"/customers/{cid}/dunning", {"quiet_start": "7pm"})
    assert resp.status_code == 422 and resp.data["field"] == "quiet_start"
    resp = api.patch(f"/customers/{cid}/dunning", {"colour": "red"})
    assert resp.status_code == 422 and resp.data["field"] == "colour"
    view = api.ok(api.patch(f"/customers/{cid}/dunning", {"channels_allowed": ["email", "call_task"],
                                                            "contact_name": "Mme Durand"}))
    assert view["settings"]["channels_allowed"] == ["email", "call_task"] and view["records_updated"] == 1
    assert view["profile"]["profile"] == "new" and "fewer than 5" in view["why"][0]
    for d in days(date(2026, 4, 9), date(2026, 4, 21)):
        api.run(d)
    assert api.sms() == []   # SMS not among the allowed channels
    firm = [m for m in api.emails() if m["subject"].startswith("Relance")]
    assert len(firm) == 1 and "Mme Durand" in firm[0]["text"]
    task = [t for t in api.ok(api.get("/tasks"))["data"] if t["kind"] == "call"][0]
    assert api.post(f"/tasks/{task['id']}/complete", {}).status_code == 422
    api.ok(api.post(f"/tasks/{task['id']}/complete", {"outcome": "Will pay on the 30th"}))
    resp = api.post(f"/customers/{cid}/notes", {"text": ""})
    assert resp.status_code == 422 and resp.data["field"] == "text"
    api.ok(api.post(f"/customers/{cid}/notes", {"text": "Sales visit planned", "invoice_ids": [inv["id"]]}), 201)
    timeline = api.ok(api.get(f"/invoices/{inv['id']}/timeline"))["data"]
    kinds = {e["kind"] for e in timeline}
    assert {"reminder", "call_task", "call_outcome", "note", "invoice"} <= kinds
    assert all(e["actor"] for e in timeline)
    assert api.get(f"/customers/{cid}/timeline?before=yesterday").status_code == 400
    reminders = api.ok(api.get(f"/customers/{cid}/timeline?kind=reminder"))["data"]
    assert reminders and {e["kind"] for e in reminders} == {"reminder"}


def test_hosted_page_promise_form(replay) -> None:
    api = replay
    cid = customer(api, "Client SA", "ap@client.example")
    inv = issue(api, cid, date(2026, 3, 1))
    api.run(date(2026, 4, 1))
    friendly = [m for m in api.emails() if m["subject"].startswith("Rappel")][0]
    token = inv["pay_url"].rsplit("/", 1)[-1]
    assert f"/pay/{token}/promise" in friendly["text"]
    api.on(date(2026, 4, 2))
    page = api.client.http.get(f"/pay/{token}/promise")
    assert page.status_code == 200 and "une date de paiement" in page.body.decode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bad = api.client.http.post(f"/pay/{token}/promise", headers=form, body=b"amount=abc&promised_on=2026-04-10")
    assert bad.status_code == 422 and "aria-invalid" in bad.body.decode()
    late = api.client.http.post(f"/pay/{token}/promise", headers=form, body=b"amount=1200&promised_on=2026-07-01")
    assert late.status_code == 422
    ok = api.client.http.post(f"/pay/{token}/promise", headers=form, body=b"amount=1200%2C00&promised_on=2026-04-10")
    assert ok.status_code == 200 and "10 avril 2026" in ok.body.decode()
    promises = api.ok(api.get(f"/promises?customer_id={cid}"))["data"]
    assert promises[0]["source"] == "hosted_page" and promises[0]["created_by"] == "system:customer"
    for d in days(date(2026, 4, 2), date(2026, 4, 10)):
        api.run(d)
    assert not [m for m in api.emails() if m["subject"].startswith("Relance")]   # held until the promised date


def test_penalty_invoice_write_off_evidence_pack_and_dispute_accepted_with_credit_note(replay) -> None:
    api = replay
    cid = customer(api, "Mauvais Payeur SARL", "ap@mauvais.example")
    a = issue(api, cid, date(2026, 3, 1))
    b = issue(api, cid, date(2026, 3, 1), price="500.00")
    c = issue(api, cid, date(2026, 3, 1), price="300.00")
    for d in days(date(2026, 3, 25), date(2026, 5, 1)):
        api.run(d)
    api.on(date(2026, 5, 2))
    penalties = api.ok(api.get(f"/invoices/{a['id']}/penalties"))
    assert penalties["days_late"] == 32 and penalties["indemnity"] == "40.00"
    pen = api.ok(api.post(f"/invoices/{a['id']}/penalty-invoice"), 201)
    assert pen["status"] == "open" and {ln["vat_category"] for ln in pen["lines"]} == {"O"}
    assert pen["vat_total"] == "0.00" and pen["seller"]["vat_number"]   # identity kept; the XML leaves it out
    xml = api.client.http.get(f"/invoices/{pen['id']}/xml", headers={"Authorization": f"Bearer {api.key}"})
    assert xml.status_code == 200 and "FR19812345676" not in xml.body.decode()
    assert api.post(f"/invoices/{a['id']}/penalty-invoice").status_code == 409
    # evidence pack of the first invoice
    resp = api.client.http.post(f"/customers/{cid}/evidence-pack",
                                headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json",
                                         "Accept": "application/zip"},
                                body=('{"invoice_ids": ["%s"]}' % a["id"]).encode())
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(resp.body))
    assert f"invoices/{a['number']}.pdf" in z.namelist() and "claim.json" in z.namelist()
    # write-off of the second: uncollectible, credit note, the loss in the reports
    resp = api.post(f"/invoices/{b['id']}/write-off", {})
    assert resp.status_code == 422 and resp.data["field"] == "reason"
    result = api.ok(api.post(f"/invoices/{b['id']}/write-off", {"reason": "Redressement judiciaire"}), 201)
    assert result["invoice"]["status"] == "uncollectible" and result["credit_note"]["kind"] == "credit_note"
    assert result["vat_recovered"] == "100.00"
    assert api.ok(api.get(f"/invoices/{b['id']}"))["amount_written_off"] == "600.00"
    # a dispute accepted with a credit note: the invoice is credited, nothing more is chased
    api.ok(api.post(f"/invoices/{c['id']}/disputes", {"reason": "price", "message": "Wrong price"}), 201)
    dispute = [d for d in api.ok(api.get(f"/disputes?customer_id={cid}"))["data"] if d["invoice_id"] == c["id"]][0]
    accepted = api.ok(api.post(f"/disputes/{dispute['id']}/accept", {"resolution": "Price error confirmed"}))
    assert accepted["dispute"]["status"] == "accepted" and accepted["credit_note"]["related_invoice_id"] == c["id"]
    assert api.ok(api.get(f"/invoices/{c['id']}"))["status"] == "void"
    assert api.post(f"/disputes/{dispute['id']}/reject", {"resolution": "x"}).status_code == 409


def test_payment_plan_over_http_and_backfill(replay) -> None:
    api = replay
    cid = customer(api, "Echeancier SAS", "ap@echeancier.example")
    inv = issue(api, cid, date(2026, 3, 1))
    api.on(date(2026, 4, 5))
    resp = api.post("/payment-plans", {"invoice_ids": [inv["id"]], "count": 1, "first_due_on": "2026-04-20"})
    assert resp.status_code == 422 and resp.data["field"] == "count"
    resp = api.post("/payment-plans", {"invoice_ids": [inv["id"]],
                                       "installments": [{"due_on": "2026-03-20", "amount": "1200.00"}]})
    assert resp.status_code == 422 and resp.data["field"] == "installments[0].due_on"
    plan = api.ok(api.post("/payment-plans", {"invoice_ids": [inv["id"]], "count": 2, "first_due_on": "2026-04-20"}),
                  201)
    assert plan["next_due"] == "2026-04-20" and [i["amount"] for i in plan["installments"]] == ["600.00", "600.00"]
    for d in days(date(2026, 4, 5), date(2026, 4, 18)):
        api.run(d)
    from chalicelib import wiring

    wiring.outbox().run()
    mails = [m for m in api.emails() if "Échéancier" in m["subject"]]
    assert len(mails) == 1 and "600,00" in mails[0]["text"]
    assert not [m for m in api.emails() if m["subject"].startswith("Relance")]
    pay(api, inv, date(2026, 4, 19), amount="600.00")
    api.run(date(2026, 4, 21))
    assert api.ok(api.get(f"/payment-plans/{plan['id']}"))["installments"][0]["status"] == "paid"
    api.ok(api.post(f"/payment-plans/{plan['id']}/cancel"))
    assert api.ok(api.post("/dunning/backfill"))["created"] == 0
