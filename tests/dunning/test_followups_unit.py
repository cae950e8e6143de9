"""Promises, payment plans, penalties, penalty invoices, write-offs, evidence packs, settings (fakes)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.errors import Conflict, ValidationError
from chalicelib.services.penalty import PenaltyService
from chalicelib.services.timeline import TimelineService
from tests.dunning.builders import ALICE, world


def days(start: date, end: date):
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def penalties(w) -> PenaltyService:
    return PenaltyService(w.ledger, w.clock, w.settings, w.dunning.config, lambda: w.invoices, lambda: w.store,
                          lambda: TimelineService(w.ledger, w.clock))


# -- promises ---------------------------------------------------------------------------------------

def test_promise_validation_names_the_field_and_writes_nothing() -> None:
    w = world()
    cid = w.customer("C", "c@c.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    w.on(date(2026, 4, 2))
    cases = [({"invoice_ids": []}, "invoice_ids"),
             ({"invoice_ids": ["inv_nope"], "promised_on": "2026-04-10"}, "invoice_ids[0]"),
             ({"invoice_ids": [inv.id], "promised_on": "2026-03-01"}, "promised_on"),
             ({"invoice_ids": [inv.id], "promised_on": "2026-12-31"}, "promised_on"),
             ({"invoice_ids": [inv.id], "promised_on": "2026-04-10", "amount": "5000.00"}, "amount"),
             ({"invoice_ids": [inv.id], "promised_on": "2026-04-10", "amount": 12.5}, "amount")]
    commits = w.ledger.commits
    for body, field in cases:
        with pytest.raises(ValidationError) as err:
            w.promises.record(body, ALICE)
        assert err.value.field == field, body
    assert w.ledger.commits == commits


def test_a_new_promise_supersedes_the_active_one() -> None:
    w = world()
    cid = w.customer("C", "c@c.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    w.on(date(2026, 4, 2))
    first = w.promises.record({"invoice_ids": [inv.id], "promised_on": "2026-04-10"}, ALICE)
    second = w.promises.record({"invoice_ids": [inv.id], "promised_on": "2026-04-20"}, ALICE)
    assert w.ledger.get_promise(first.id).status == "cancelled"
    record = w.ledger.get_dunning([inv.id])[inv.id]
    assert [p["id"] for p in record.promises] == [second.id]


# -- payment plans ----------------------------------------------------------------------------------

def test_payment_plan_chases_each_installment_then_breaks_and_the_ladder_resumes() -> None:
    w = world()
    cid = w.customer("Plan SARL", "ap@plan.example")
    a = w.invoice(cid, date(2026, 3, 1), amount="500.00")
    b = w.invoice(cid, date(2026, 3, 1), amount="500.00")
    for d in days(date(2026, 3, 20), date(2026, 4, 3)):
        w.sweep(d)
    w.on(date(2026, 4, 3))
    with pytest.raises(ValidationError) as err:
        w.plans.create({"invoice_ids": [a.id, b.id], "installments": [{"due_on": "2026-04-15", "amount": "600.00"},
                                                                       {"due_on": "2026-05-15", "amount": "500.00"}]},
                       ALICE)
    assert err.value.field == "installments" and "1200.00" in err.value.message
    plan = w.plans.create({"invoice_ids": [a.id, b.id], "count": 3, "first_due_on": "2026-04-15"}, ALICE)
    assert [str(i.amount) for i in plan.installments] == ["400.00", "400.00", "400.00"]
    assert [i.due_on for i in plan.installments] == [date(2026, 4, 15), date(2026, 5, 15), date(2026, 6, 15)]
    before = len(w.mailer.sent)
    for d in days(date(2026, 4, 4), date(2026, 4, 13)):
        w.sweep(d)
    # no ladder step while the plan holds (the firm reminder of 10 April did not go); the installment is chased
    assert [m.subject for _, m in w.mailer.sent[before:] if "Relance" in m.subject] == []
    outbox = [v["message"].payload for v in w.ledger.outbox.values() if v["message"].topic == "dunning.plan_mail"]
    assert [(p["index"], p["kind"]) for p in outbox] == [(0, "installment_due")]
    w.pay(a, date(2026, 4, 14), amount="400.00")
    for d in days(date(2026, 4, 14), date(2026, 5, 12)):
        w.sweep(d)
    assert w.ledger.get_plan(plan.id).installments[0].status == "paid"
    # the second installment is never paid: late, then broken after the grace period, ladder resumes
    for d in days(date(2026, 5, 13), date(2026, 5, 24)):
        w.sweep(d)
    kinds = [(p["index"], p["kind"]) for p in (v["message"].payload for v in w.ledger.outbox.values()
                                                if v["message"].topic == "dunning.plan_mail")]
    assert (1, "installment_due") in kinds and (1, "installment_late") in kinds
    assert w.ledger.get_plan(plan.id).status == "broken"
    resumed = [m.subject for _, m in w.mailer.sent[before:]]
    assert any(s.startswith("Mise en demeure") for s in resumed)


def test_plan_mail_renders_the_installment_and_is_sent_once() -> None:
    w = world()
    cid = w.customer("Plan SARL", "ap@plan.example")
    a = w.invoice(cid, date(2026, 3, 1), amount="500.00")
    w.on(date(2026, 4, 3))
    plan = w.plans.create({"invoice_ids": [a.id], "installments": [{"due_on": "2026-04-20", "amount": "300.00"},
                                                                    {"due_on": "2026-05-20", "amount": "300.00"}]},
                          ALICE)
    payload = {"plan_id": plan.id, "index": 0, "kind": "installment_due", "as_of": "2026-04-17"}
    w.dunning.plan_mail(payload)
    w.dunning.plan_mail(payload)
    mails = [m for _, m in w.mailer.sent if "Échéancier" in m.subject]
    assert len(mails) == 1 and "1/2" in mails[0].subject and "300,00" in mails[0].text
    assert f"http://pay.test/pay/{a.pay_token}" in mails[0].text


# -- penalties ----------------------------------------------------------------------------------

def test_penalties_on_the_invoice_and_their_provisional_flag() -> None:
    w = world()
    cid = w.customer("C", "c@c.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    p = penalties(w)
    body = p.for_invoice(inv.id, date(2026, 4, 30))
    assert body["days_late"] == 30 and body["interest"] == "11.98" and body["indemnity"] == "40.00"
    assert body["provisional"] is False
    # 100 days into the second half of 2026: 2026-H2 carried forward from 2026-H1, flagged
    later = p.for_invoice(inv.id, date(2026, 10, 8))
    assert later["provisional"] is True and {x["half_year"] for x in later["periods"]} == {"2026-H1", "2026-H2"}
    # an admin sets the 2026-H2 rates: no longer provisional
    rates = w.dunning.config.rates().to_dict()
    rates["ecb_mro"]["2026-H2"] = "2.15"
    rates["legal_rate"]["2026-H2"] = "2.62"
    w.dunning.config.put_rates(rates, ALICE)
    assert p.for_invoice(inv.id, date(2026, 10, 8))["provisional"] is False
    # and a gap in the table is refused naming the missing half-year
    rates["ecb_mro"].pop("2025-H2")
    with pytest.raises(ValidationError) as err:
        w.dunning.config.put_rates(rates, ALICE)
    assert err.value.field == "reference_rates.ecb_mro.2025-H2"


def test_penalty_invoice_is_outside_the_scope_of_vat_validated_and_issued_once() -> None:
    w = world()
    cid = w.customer("C", "c@c.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    w.on(date(2026, 4, 30))
    p = penalties(w)
    pen = p.penalty_invoice(inv.id, ALICE)
    assert pen.status == "open" and pen.number and pen.related_invoice_id == inv.id
    assert {line.vat_category for line in pen.lines} == {"O"} and pen.totals.vat_total.amount == 0
    assert str(pen.totals.total) == "51.98"
    with pytest.raises(Conflict):
        p.penalty_invoice(inv.id, ALICE)
    # the Factur-X of a category O invoice carries no VAT identifiers (BR-O-02)
    from chalicelib.services.penalty import validate_einvoice
    from chalicelib.adapters.documents.context import DocumentContext
    from chalicelib.adapters.documents.render import render_invoice

    seller = w.settings.seller()
    validate_einvoice(pen, seller)
    xml = render_invoice(pen, DocumentContext.for_seller(seller, operation_category="services")).xml.decode()
    assert "FR19812345676" not in xml and "FR96901876540" not in xml


def test_write_off_marks_uncollectible_issues_a_credit_note_and_reports_the_loss() -> None:
    from chalicelib.domain.aggregates import month_key

    w = world()
    cid = w.customer("Faillite SARL", "ap@faillite.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    w.pay(inv, date(2026, 4, 2), amount="200.00")
    w.on(date(2026, 6, 1))
    with pytest.raises(ValidationError) as err:
        penalties(w).write_off(inv.id, "", ALICE)
    assert err.value.field == "reason"
    result = penalties(w).write_off(inv.id, "Liquidation judiciaire, créance déclarée", ALICE)
    after = w.ledger.get_invoice(inv.id)
    assert after.status == "uncollectible" and after.amount_written_off == 100000 and after.amount_due.amount == 0
    credit = w.ledger.get_invoice(result["credit_note"]["id"])
    assert credit.kind == "credit_note" and credit.related_invoice_id == inv.id and credit.number.startswith("A")
    assert Decimal(result["vat_recovered"]) == Decimal("166.67")
    assert str(credit.totals.total) == "1000.00"
    assert credit.due_date is None   # nothing due on it: it never waits in a queue
    cells = w.ledger.aggregates.get(month_key("EUR", "*", date(2026, 6, 1)), {})
    assert any(k.startswith("wof") and v == 100000 for k, v in cells.items()), cells
    record = w.ledger.get_dunning([inv.id])[inv.id]
    assert not record.active
    with pytest.raises(Conflict):
        penalties(w).write_off(inv.id, "again", ALICE)


def test_evidence_pack_has_invoices_reminders_with_proofs_timeline_and_claim() -> None:
    w = world()
    cid = w.customer("Litige SARL", "ap@lit.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    for d in days(date(2026, 3, 25), date(2026, 5, 2)):
        w.sweep(d)
    w.on(date(2026, 5, 2))
    TimelineService(w.ledger, w.clock).add_note(cid, {"text": "Called, promised to look", "invoice_ids": [inv.id]},
                                                ALICE)
    content, name = penalties(w).evidence_pack(cid, None, ALICE)
    z = zipfile.ZipFile(io.BytesIO(content))
    names = z.namelist()
    assert f"invoices/{inv.number}.pdf" in names and z.read(f"invoices/{inv.number}.pdf").startswith(b"%PDF")
    reminders = z.read("reminders.csv").decode().splitlines()
    assert len(reminders) == 1 + 7      # courtesy, friendly, firm (email + sms), call task, formal (email + letter)
    assert any(n.startswith("reminders/") and n.endswith(".pdf") for n in names)
    proof = z.read(next(n for n in names if n.startswith("reminders/") and n.endswith("friendly_reminder-email.txt")))
    assert b"Provider message id: ses-" in proof and inv.number.encode() in proof and b"To: c" not in proof[:0]
    claim = json.loads(z.read("claim.json"))
    row = claim["invoices"][0]
    assert row["number"] == inv.number and row["amount_due"] == "1200.00" and row["indemnity"] == "40.00"
    assert any("Called" in e["summary"] for e in json.loads(z.read("timeline.json")))
    assert name.endswith(".zip")


# -- policies and customer settings ---------------------------------------------------------------

def test_policy_validation_names_the_field() -> None:
    w = world()
    config = w.dunning.config
    base = config.policy("default").to_dict()
    bad_offset = json.loads(json.dumps(base))
    bad_offset["steps"][2]["offset_days"] = 0
    with pytest.raises(ValidationError) as err:
        config.put_policy("default", bad_offset, ALICE)
    assert err.value.field == "steps[2].offset_days"
    bad_template = json.loads(json.dumps(base))
    bad_template["steps"][1]["template"] = "shouty_reminder"
    bad_template["steps"][1]["tone"] = "firm"
    saved = config.put_policy("gentle", {**bad_template, "id": "gentle"}, ALICE)   # firm tone's template exists
    assert saved.version == 1
    bad_channel = json.loads(json.dumps(base))
    bad_channel["steps"][0]["channels"] = ["fax"]
    with pytest.raises(ValidationError) as err:
        config.put_policy("default", bad_channel, ALICE)
    assert err.value.field == "steps[0].channels[0]"
    with pytest.raises(Conflict):
        config.delete_policy("default", ALICE)
    assert "dunning.rewake" in w.ledger.outbox_topics()


def test_customer_settings_change_refreshes_the_records_and_reschedules() -> None:
    w = world()
    cid = w.customer("C", "c@c.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    w.sweep(date(2026, 3, 2))
    with pytest.raises(ValidationError) as err:
        w.dunning.config.put_customer_settings(cid, {"quiet_start": "25:00"}, ALICE)
    assert err.value.field == "quiet_start"
    with pytest.raises(ValidationError) as err:
        w.dunning.config.put_customer_settings(cid, {"policy_id": "nope"}, ALICE)
    assert err.value.field == "policy_id"
    w.dunning.config.put_customer_settings(cid, {"language": "en", "contact_email": "ap@other.example"}, ALICE)
    changed = w.dunning.config.resync_customer(cid, date(2026, 3, 2), "Europe/Paris")
    assert changed == 1
    record = w.ledger.get_dunning([inv.id])[inv.id]
    assert record.woken and record.customer["settings"]["language"] == "en"
    for d in days(date(2026, 3, 25), date(2026, 3, 27)):
        w.sweep(d)
    assert [m.subject for _, m in w.mailer.sent if "ap@other.example" in m.to] == [f"Coming due: invoice {inv.number}"]


def test_notes_and_call_outcomes_are_on_the_timeline_with_their_actor() -> None:
    w = world()
    cid = w.customer("C", "c@c.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    for d in days(date(2026, 4, 19), date(2026, 4, 21)):
        w.sweep(d)
    task = [t for t in w.ledger.list_tasks().items if t.kind == "call"][0]
    w.dunning.complete_task(task.id, "Spoke to the accountant: paying Friday", ALICE)
    timeline = TimelineService(w.ledger, w.clock)
    timeline.add_note(cid, {"text": "Sales: keep them happy"}, ALICE)
    with pytest.raises(ValidationError) as err:
        timeline.add_note(cid, {"text": "x", "invoice_ids": ["inv_other"]}, ALICE)
    assert err.value.field == "invoice_ids[0]"
    entries = timeline.invoice(inv.id)["data"]
    kinds = [(e["kind"], e["actor"]) for e in entries]
    assert ("call_outcome", "alice") in kinds and ("call_task", "system:dunning") in kinds
    customer = timeline.customer(cid)["data"]
    assert any(e["kind"] == "note" and e["actor"] == "alice" for e in customer)
