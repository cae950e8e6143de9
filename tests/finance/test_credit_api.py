"""Credit management through the API: holds refused and overridden (audited), manual holds,
the on-hold list, the credit check at order time, the credit_limit_exceeded event."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CUSTOMER_INPUT, line

pytestmark = pytest.mark.usefixtures("fapi")


@pytest.fixture
def customer(fapi: Any, calendar: Any) -> str:
    """Limit 5,000.00; one open invoice of 2,400.00 issued 2026-02-10, due 2026-03-12; today 2026-03-31."""
    calendar.on("2026-02-10")
    r = fapi.post("/customers", {**CUSTOMER_INPUT, "name": "Alpha SARL", "credit_limit": "5000.00"})
    cid = r.data["id"]
    draft = fapi.post("/invoices", {"customer_id": cid, "lines": [line(unit_price="2000.00")]})
    assert fapi.post(f"/invoices/{draft.data['id']}/issue").status_code == 200
    calendar.on("2026-03-31")
    return cid


def _events(types: tuple[str, ...]) -> list[dict[str, Any]]:
    from datetime import datetime, timezone

    from chalicelib import wiring

    return [m.payload for m in wiring.ledger().pending_outbox(datetime(2100, 1, 1, tzinfo=timezone.utc), limit=500)
            if m.topic == "event" and m.payload["type"] in types]


def test_credit_check_at_order_time(fapi, customer):
    r = fapi.get(f"/customers/{customer}/credit-check?amount=2600.00")
    assert r.status_code == 200, r.data
    assert (r.data["allowed"], r.data["exposure"], r.data["headroom"], r.data["headroom_after"]) == (
        True, "2400.00", "2600.00", "0.00")
    r = fapi.get(f"/customers/{customer}/credit-check?amount=2600.01")
    assert (r.data["allowed"], r.data["code"]) == (False, "credit_hold")
    assert [x["code"] for x in r.data["reasons"]] == ["credit_limit_exceeded"]
    assert fapi.get(f"/customers/{customer}/credit-check?amount=abc").status_code == 400


def test_draft_over_the_limit_is_refused_then_overridden_and_audited(fapi, customer):
    body = {"customer_id": customer, "lines": [line(unit_price="2500.00")]}   # 3,000.00 with VAT
    r = fapi.post("/invoices", body)
    assert r.status_code == 422 and r.data["code"] == "credit_hold" and r.data["field"] == "customer_id"
    assert r.data["details"]["reasons"] == ["credit_limit_exceeded"]
    assert "5400.00" in r.data["message"] and "override" in r.data["message"]
    assert fapi.get(f"/invoices?customer_id={customer}&status=draft").data["data"] == []   # nothing written
    r = fapi.post("/invoices", {**body, "credit_override": {}})
    assert r.status_code == 422 and r.data["field"] == "credit_override.reason"
    r = fapi.post("/invoices", {**body, "credit_override": {"reason": "CFO agreed, bank guarantee received"}})
    assert r.status_code == 201, r.data
    audit = fapi.get(f"/audit?entity_type=customer&entity_id={customer}").data["data"]
    override = [a for a in audit if a["action"] == "credit.override"]
    assert len(override) == 1 and override[0]["actor"] == "test-admin"
    assert override[0]["after"]["override"] == {"by": "test-admin", "reason": "CFO agreed, bank guarantee received"}
    assert override[0]["after"]["invoice_id"] == r.data["id"]
    # issuing the accepted draft is not checked again (what was agreed must be invoiced); it takes
    # exposure from 2,400.00 to 5,400.00: the event for sales and the ERP
    assert fapi.post(f"/invoices/{r.data['id']}/issue").status_code == 200
    exceeded = _events(("customer.credit_limit_exceeded",))
    assert len(exceeded) == 1
    data = exceeded[0]["data"]
    assert {k: data[k] for k in ("customer_id", "credit_limit", "exposure_before", "exposure", "excess")} == {
        "customer_id": customer, "credit_limit": "5000.00", "exposure_before": "2400.00", "exposure": "5400.00",
        "excess": "400.00"}


def test_overdue_invoices_hold_new_drafts_past_the_configured_days(fapi, customer, calendar):
    small = {"customer_id": customer, "lines": [line(unit_price="10.00")]}
    assert fapi.post("/invoices", small).status_code == 201          # 19 days overdue <= 30
    assert fapi.put("/settings/finance", {"credit": {"max_overdue_days": 15}}).status_code == 200
    from chalicelib import wiring

    wiring.finance_settings()._cached = None
    r = fapi.post("/invoices", small)
    assert r.status_code == 422 and r.data["details"]["reasons"] == ["overdue_invoices"]
    assert r.data["details"]["oldest_overdue_days"] == 19
    # delivered work is invoiced anyway (French law), flagged in the audit trail
    r = fapi.post("/invoices", {**small, "delivery_date": "2026-03-30"})
    assert r.status_code == 201
    audit = fapi.get(f"/audit?entity_type=customer&entity_id={customer}").data["data"]
    assert [a["after"]["delivered_work"] for a in audit if a["action"] == "credit.flagged"] == [True]


def test_manual_hold_and_the_on_hold_list(fapi, customer):
    other = fapi.post("/customers", {**CUSTOMER_INPUT, "name": "Beta SAS"}).data["id"]
    assert fapi.get("/customers?on_hold=true").data["data"] == []
    r = fapi.put(f"/customers/{customer}/hold", {"on_hold": True})
    assert r.status_code == 422 and r.data["field"] == "reason"
    r = fapi.put(f"/customers/{customer}/hold", {"on_hold": True, "reason": "Litige en cours"})
    assert r.status_code == 200 and r.data["on_hold"] and r.data["hold_by"] == "test-admin"
    listed = fapi.get("/customers?on_hold=true").data["data"]
    assert [c["id"] for c in listed] == [customer] and listed[0]["hold_reason"] == "Litige en cours"
    r = fapi.post("/invoices", {"customer_id": customer, "lines": [line(unit_price="1.00")]})
    assert r.status_code == 422 and r.data["details"]["reasons"] == ["manual_hold"]
    assert fapi.post("/invoices", {"customer_id": other, "lines": [line(unit_price="1.00")]}).status_code == 201
    check = fapi.get(f"/customers/{customer}/credit-check?amount=1.00").data
    assert (check["hold"], check["on_hold"], check["hold_reason"]) == (True, True, "Litige en cours")
    assert fapi.put(f"/customers/{customer}/hold", {"on_hold": False}).data["on_hold"] is False
    assert fapi.get("/customers?on_hold=true").data["data"] == []
    actions = [a["action"] for a in fapi.get(f"/audit?entity_type=customer&entity_id={customer}").data["data"]]
    assert actions.count("customer.hold") == 1 and actions.count("customer.release") == 1


def test_a_reader_cannot_put_a_customer_on_hold(fapi, customer):
    key = fapi.post("/api-keys", {"name": "bi", "role": "reader"}).data["secret"]
    r = fapi.put(f"/customers/{customer}/hold", {"on_hold": True, "reason": "x"}, key=key)
    assert r.status_code == 403
    assert fapi.get(f"/customers/{customer}/credit-check?amount=1", key=key).status_code == 200


def test_recurring_schedule_over_the_limit_is_held_and_its_invoices_flagged_not_blocked(fapi, customer):
    # exposure 2,400.00 of 5,000.00; a monthly subscription of 3,000.00 (2,500.00 + VAT)
    body = {"customer_id": customer, "lines": [line("Abonnement", unit_price="2500.00")], "day_of_month": 31,
            "operation_category": "services"}
    r = fapi.post("/recurring-schedules", body)
    assert r.status_code == 422 and r.data["code"] == "credit_hold", r.data
    assert r.data["details"]["reasons"] == ["credit_limit_exceeded"]
    r = fapi.post("/recurring-schedules", {**body, "credit_override": {"reason": "annual contract signed"}})
    assert r.status_code == 201, r.data
    schedule_id = r.data["id"]
    audit = fapi.get(f"/audit?entity_type=customer&entity_id={customer}").data["data"]
    assert [a["after"]["schedule_id"] for a in audit if a["action"] == "credit.override"] == [schedule_id]
    # the monthly run issues it anyway (French law: delivered service is invoiced) and flags it
    run = fapi.post("/recurring/run?as_of=2026-03-31")
    assert run.status_code == 200 and run.data["issued"] == 1, run.data
    assert run.data["invoices"][0]["flags"] == ["credit_limit_exceeded"]
    assert fapi.get(f"/recurring-schedules/{schedule_id}").data["flags"] == ["credit_limit_exceeded"]
    assert fapi.get(f"/customers/{customer}/credit-check?amount=0").data["exposure"] == "5400.00"


def _draft(fapi: Any, customer: str, unit_price: str, **extra: Any) -> Any:
    return fapi.post("/invoices", {"customer_id": customer, "lines": [line(unit_price=unit_price)], **extra})


def test_a_patch_that_raises_a_draft_over_the_limit_is_refused_unless_overridden(fapi, customer):
    # exposure 2,400.00 of 5,000.00: a draft of 1,200.00 (1,000.00 + VAT) passes
    draft = _draft(fapi, customer, "1000.00")
    assert draft.status_code == 201, draft.data
    did = draft.data["id"]
    raised = {"lines": [line(unit_price="2500.00")]}                     # 3,000.00: 5,400.00 > 5,000.00
    r = fapi.patch(f"/invoices/{did}", raised)
    assert r.status_code == 422 and r.data["code"] == "credit_hold", r.data
    assert r.data["details"]["reasons"] == ["credit_limit_exceeded"] and r.data["details"]["drafts"] == "0.00"
    assert fapi.get(f"/invoices/{did}").data["total"] == "1200.00"       # nothing written
    lowered = fapi.patch(f"/invoices/{did}", {"lines": [line(unit_price="500.00")], "note": "smaller order"})
    assert lowered.status_code == 200 and lowered.data["total"] == "600.00"
    r = fapi.patch(f"/invoices/{did}", {**raised, "credit_override": {"reason": "prepaid by bank guarantee"}})
    assert r.status_code == 200 and r.data["total"] == "3000.00", r.data
    audit = fapi.get(f"/audit?entity_type=customer&entity_id={customer}").data["data"]
    override = [a["after"] for a in audit if a["action"] == "credit.override"]
    assert [(o["stage"], o["invoice_id"], o["amount_before"]) for o in override] == [("update", did, "600.00")]


def test_pending_drafts_take_headroom_so_several_cannot_add_up_over_the_limit(fapi, customer):
    # headroom 2,600.00: two drafts of 1,800.00 each fit alone, not together
    assert _draft(fapi, customer, "1500.00").status_code == 201
    r = _draft(fapi, customer, "1500.00")
    assert r.status_code == 422 and r.data["details"]["reasons"] == ["credit_limit_exceeded"], r.data
    assert (r.data["details"]["exposure"], r.data["details"]["drafts"], r.data["details"]["headroom"]) == (
        "2400.00", "1800.00", "800.00")
    check = fapi.get(f"/customers/{customer}/credit-check?amount=800.00").data
    assert (check["allowed"], check["drafts"], check["headroom_after"]) == (True, "1800.00", "0.00")
    assert fapi.get(f"/customers/{customer}/credit-check?amount=800.01").data["allowed"] is False


def test_issuing_an_accepted_draft_is_not_held_again(fapi, customer):
    """The draft was checked when created; issuing it invoices what was agreed (often delivered, which
    French law requires to be invoiced), so a hold put on afterwards does not block the issue."""
    first = _draft(fapi, customer, "1500.00").data["id"]                  # 1,800.00, within the headroom
    assert fapi.put(f"/customers/{customer}/hold", {"on_hold": True, "reason": "cheque rejeté"}).status_code == 200
    assert _draft(fapi, customer, "10.00").data["details"]["reasons"] == ["manual_hold"]  # new work is held
    issued = fapi.post(f"/invoices/{first}/issue")
    assert issued.status_code == 200 and issued.data["status"] == "open", issued.data
    refused = fapi.post(f"/invoices/{first}/issue", {"credit_override": {"reason": "x"}})  # nothing to override
    assert refused.status_code == 422 and refused.data["field"] == "credit_override"
