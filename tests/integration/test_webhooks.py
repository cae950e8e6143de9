"""Stripe webhooks: signatures, exactly-once by money, any order, every money movement.

Real flows through the Stripe emulator, which signs and delivers events to the
app served over HTTP; the ledger is checked through the API.
"""

from __future__ import annotations

import json
import time

import pytest
import requests
import stripe

from tests.conftest import CUSTOMER_INPUT, WEBHOOK_SECRET, line


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


class Flow:
    def __init__(self, ps):
        self.ps = ps
        self.url = ps["api_url"]
        self.http = ps["http"]
        self.emu = ps["emulator"]
        self.emu_url = self.emu.url

    def helper(self, path, body=None):
        resp = requests.post(f"{self.emu_url}/_emulator/{path}", json=body or {}, timeout=30)
        assert resp.status_code < 300, resp.text
        return resp.json()

    def customer(self, **extra):
        return self.http.post(f"{self.url}/customers", json={**CUSTOMER_INPUT, **extra}).json()

    def invoice(self, customer_id, *lines):
        draft = self.http.post(f"{self.url}/invoices", json={"customer_id": customer_id,
                                                             "lines": list(lines) or [line()]}).json()
        return self.http.post(f"{self.url}/invoices/{draft['id']}/issue").json()

    def get(self, invoice_id):
        return self.http.get(f"{self.url}/invoices/{invoice_id}").json()

    def payments(self, **params):
        return self.http.get(f"{self.url}/payments", params=params).json()["data"]

    def client(self):
        return stripe.StripeClient("sk_test_local", base_addresses={"api": self.emu_url}, max_network_retries=0)

    def pay_by_card(self, invoice, amount=None, metadata=None):
        """A checkout session for ``invoice`` paid by card: returns the PaymentIntent id."""
        meta = metadata or {"invoice_id": invoice["id"], "customer_id": invoice["customer_id"]}
        session = self.client().v1.checkout.sessions.create(params={
            "mode": "payment", "success_url": "http://127.0.0.1/ok", "cancel_url": "http://127.0.0.1/no",
            "line_items": [{"quantity": 1, "price_data": {"currency": invoice["currency"].lower(),
                                                          "unit_amount": amount or int(
                                                              invoice["amount_due"].replace(".", "")),
                                                          "product_data": {"name": "x"}}}],
            "metadata": meta, "payment_intent_data": {"metadata": meta}})
        result = self.emu.checkout(session["id"], "card_success")
        assert "error" not in result or not result["error"], result
        pi = self.client().v1.checkout.sessions.retrieve(session["id"])["payment_intent"]
        return pi

    def settle_wait(self):
        self.emu.wait_for_deliveries(15)

    def event(self, type_, object_id):
        events = self.emu.events(type_, object_id)
        assert events, f"no {type_} for {object_id}"
        return events[-1]


@pytest.fixture
def flow(payments_stack):
    return Flow(payments_stack)


def signed(payload: bytes, secret=WEBHOOK_SECRET, ts=None):
    ts = int(time.time()) if ts is None else ts
    return stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp=ts)


def post_event(flow, payload: bytes, header=None):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return requests.post(f"{flow.url}/webhooks/stripe", data=payload, headers=headers, timeout=30)


def test_signatures_fail_closed(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"])
    pi = flow.pay_by_card(inv, amount=5000)
    flow.settle_wait()
    event = flow.event("payment_intent.succeeded", pi)
    body = json.dumps({**event, "id": "evt_forged"}).encode()
    assert post_event(flow, body).status_code == 400                                   # missing
    assert post_event(flow, body, signed(body, "whsec_wrong")).status_code == 400       # wrong secret
    assert post_event(flow, body, signed(body, ts=int(time.time()) - 301)).status_code == 400  # stale
    tampered = body.replace(b'"amount": 5000', b'"amount": 9999')
    assert post_event(flow, tampered, signed(body)).status_code == 400                 # tampered
    resp = post_event(flow, b"not json", signed(b"not json"))
    assert resp.status_code == 400 and resp.json()["code"] == "invalid_signature"
    # the emulator's own badly signed copies are refused too
    for kind in ("stale", "wrong_secret", "tampered", "missing"):
        flow.helper(f"events/{event['id']}/send", {"signature": kind})
    flow.settle_wait()
    bad = [d for d in flow.emu.deliveries(event["id"]) if d.get("kind") != "normal" and d.get("signature") != "valid"]
    assert bad and all(d["status_code"] == 400 for d in bad if d.get("status_code"))
    # nothing was written by any of them: one payment of 50.00
    assert [p["amount"] for p in flow.payments(customer_id=c["id"])] == ["50.00"]


def test_replays_and_concurrent_duplicates_change_the_ledger_once(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"])
    pi = flow.pay_by_card(inv, amount=6000)
    flow.settle_wait()
    succeeded = flow.event("payment_intent.succeeded", pi)
    flow.helper(f"events/{succeeded['id']}/resend", {"times": 10})
    flow.helper(f"events/{succeeded['id']}/resend", {"times": 2, "concurrent": True})
    flow.settle_wait()
    deliveries = flow.emu.deliveries(succeeded["id"])
    assert len(deliveries) >= 13 and all(d["status_code"] == 200 for d in deliveries)
    payments = flow.payments(customer_id=c["id"])
    assert len(payments) == 1 and payments[0]["amount"] == "60.00"
    assert flow.get(inv["id"])["amount_due"] == "60.00"  # 120.00 - 60.00, once


def test_same_payment_reported_by_three_event_types_counts_once(flow):
    # SEPA through checkout: session.completed (unpaid), then async_payment_succeeded AND payment_intent.succeeded
    c = flow.customer()
    inv = flow.invoice(c["id"])
    meta = {"invoice_id": inv["id"], "customer_id": c["id"]}
    session = flow.client().v1.checkout.sessions.create(params={
        "mode": "payment", "success_url": "http://127.0.0.1/ok", "cancel_url": "http://127.0.0.1/no",
        "line_items": [{"quantity": 1, "price_data": {"currency": "eur", "unit_amount": 12000,
                                                      "product_data": {"name": "x"}}}],
        "metadata": meta, "payment_intent_data": {"metadata": meta}})
    flow.emu.checkout(session["id"], "sepa_success")
    flow.settle_wait()
    pi = flow.client().v1.checkout.sessions.retrieve(session["id"])["payment_intent"]
    assert flow.get(inv["id"])["collection_status"] == "processing"
    flow.emu.settle(pi, "succeed")
    flow.settle_wait()
    types = [e["type"] for e in flow.emu.events() if e["data"]["object"].get("id") in (pi, session["id"])
             or e["data"]["object"].get("payment_intent") == pi]
    assert {"checkout.session.completed", "checkout.session.async_payment_succeeded",
            "payment_intent.succeeded"} <= set(types)
    for t in ("checkout.session.async_payment_succeeded", "payment_intent.succeeded"):
        ev = [e for e in flow.emu.events(t) if pi in json.dumps(e)][-1]
        flow.helper(f"events/{ev['id']}/resend", {"times": 2, "concurrent": True})
    flow.settle_wait()
    payments = flow.payments(customer_id=c["id"])
    assert len(payments) == 1 and payments[0]["method"] == "sepa_debit"
    final = flow.get(inv["id"])
    assert final["status"] == "paid" and final["collection_status"] == "none"


def test_out_of_order_processing_after_succeeded_does_not_reopen(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"])
    flow.helper("webhooks/hold")
    meta = {"invoice_id": inv["id"], "customer_id": c["id"]}
    session = flow.client().v1.checkout.sessions.create(params={
        "mode": "payment", "success_url": "http://127.0.0.1/ok", "cancel_url": "http://127.0.0.1/no",
        "line_items": [{"quantity": 1, "price_data": {"currency": "eur", "unit_amount": 12000,
                                                      "product_data": {"name": "x"}}}],
        "metadata": meta, "payment_intent_data": {"metadata": meta}})
    flow.emu.checkout(session["id"], "sepa_success")
    pi = flow.client().v1.checkout.sessions.retrieve(session["id"])["payment_intent"]
    flow.emu.settle(pi, "succeed")
    released = flow.helper("webhooks/release", {"order": "reverse", "wait": True, "timeout": 20})
    assert len(released["released"]) >= 4
    final = flow.get(inv["id"])
    assert final["status"] == "paid" and final["collection_status"] == "none"
    assert len(flow.payments(customer_id=c["id"])) == 1


def test_unknown_invoice_and_overpayment_become_unapplied_cash(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"])
    flow.pay_by_card(inv, amount=20000)  # 200.00 for a 120.00 invoice
    pi_unknown = flow.pay_by_card(inv, amount=3000, metadata={"invoice_id": "inv_does_not_exist",
                                                                "customer_id": c["id"]})
    pi_nobody = flow.pay_by_card(inv, amount=1000, metadata={"note": "no metadata at all"})
    flow.settle_wait()
    assert flow.get(inv["id"])["status"] == "paid"
    mine = {p["provider_ref"]: p for p in flow.payments(customer_id=c["id"])}
    assert mine[pi_unknown]["unapplied"] == "30.00"
    unapplied = {p["provider_ref"]: p["unapplied"] for p in flow.payments(unapplied="true")}
    assert unapplied[pi_unknown] == "30.00" and unapplied[pi_nobody] == "10.00"
    assert sorted(unapplied.values()) == ["10.00", "30.00", "80.00"]


def test_partial_payments_sum_to_the_total(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"], line(unit_price="1000.00"))  # 1200.00; no instalment equals the escompte amount
    for amount in (40000, 30000, 50000):
        flow.pay_by_card(inv, amount=amount)
        flow.settle_wait()
    final = flow.get(inv["id"])
    assert final["status"] == "paid" and final["amount_paid"] == "1200.00" and final["amount_due"] == "0.00"


def test_refund_after_payment_reopens_the_invoice(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"])
    pi = flow.pay_by_card(inv, amount=12000)  # not the discounted amount: paid in full, no escompte
    flow.settle_wait()
    assert flow.get(inv["id"])["status"] == "paid"
    refund = flow.http.post(f"{flow.url}/invoices/{inv['id']}/refunds", json={"amount": "20.00"})
    assert refund.status_code == 202, refund.text
    flow.settle_wait()
    reopened = wait_until(lambda: (lambda i: i if i["status"] == "open" else None)(flow.get(inv["id"])))
    assert reopened["amount_due"] == "20.00" and reopened["amount_paid"] == "100.00"
    ev = [e for e in flow.emu.events("charge.refunded") if e["data"]["object"]["payment_intent"] == pi][-1]
    flow.helper(f"events/{ev['id']}/resend", {"times": 3, "concurrent": True})
    flow.settle_wait()
    assert flow.get(inv["id"])["amount_due"] == "20.00"  # once
    too_much = flow.http.post(f"{flow.url}/invoices/{inv['id']}/refunds", json={"amount": "500.00"})
    assert too_much.status_code == 422


def test_card_chargeback_then_won(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"])
    pi = flow.pay_by_card(inv, amount=12000)
    flow.settle_wait()
    dispute = flow.helper("disputes", {"payment_intent": pi, "reason": "fraudulent"})
    flow.settle_wait()
    opened = flow.get(inv["id"])
    assert opened["status"] == "open" and opened["chargeback_status"] == "open" and opened["amount_due"] == "120.00"
    tasks = flow.http.get(f"{flow.url}/tasks").json()["data"]
    assert any(t["kind"] == "chargeback" and inv["id"] in t["invoice_ids"] for t in tasks)
    flow.helper(f"disputes/{dispute['id']}/close", {"status": "won"})
    flow.settle_wait()
    won = flow.get(inv["id"])
    assert won["status"] == "paid" and won["chargeback_status"] == "won"
    for ev in flow.emu.events("charge.dispute.*"):
        flow.helper(f"events/{ev['id']}/resend", {"times": 2})
    flow.settle_wait()
    assert flow.get(inv["id"])["status"] == "paid"


def test_sepa_debit_returned_reopens_and_cannot_be_contested(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"])
    meta = {"invoice_id": inv["id"], "customer_id": c["id"]}
    session = flow.client().v1.checkout.sessions.create(params={
        "mode": "payment", "success_url": "http://127.0.0.1/ok", "cancel_url": "http://127.0.0.1/no",
        "line_items": [{"quantity": 1, "price_data": {"currency": "eur", "unit_amount": 12000,
                                                      "product_data": {"name": "x"}}}],
        "metadata": meta, "payment_intent_data": {"metadata": meta}})
    flow.emu.checkout(session["id"], "sepa_success")
    pi = flow.client().v1.checkout.sessions.retrieve(session["id"])["payment_intent"]
    flow.emu.settle(pi, "succeed")
    flow.settle_wait()
    assert flow.get(inv["id"])["status"] == "paid"
    flow.helper("disputes", {"payment_intent": pi, "reason": "insufficient_funds", "status": "lost"})
    flow.settle_wait()
    returned = flow.get(inv["id"])
    assert returned["status"] == "open" and returned["amount_due"] == "120.00"
    assert returned["chargeback_status"] in ("open", "lost")
    tasks = flow.http.get(f"{flow.url}/tasks").json()["data"]
    task = next(t for t in tasks if t["kind"] == "chargeback" and inv["id"] in t["invoice_ids"])
    assert task["details"]["contestable"] is False


def test_sepa_failure_marks_collection_failed(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"])
    meta = {"invoice_id": inv["id"], "customer_id": c["id"]}
    session = flow.client().v1.checkout.sessions.create(params={
        "mode": "payment", "success_url": "http://127.0.0.1/ok", "cancel_url": "http://127.0.0.1/no",
        "line_items": [{"quantity": 1, "price_data": {"currency": "eur", "unit_amount": 12000,
                                                      "product_data": {"name": "x"}}}],
        "metadata": meta, "payment_intent_data": {"metadata": meta}})
    flow.emu.checkout(session["id"], "sepa_success")
    pi = flow.client().v1.checkout.sessions.retrieve(session["id"])["payment_intent"]
    flow.settle_wait()
    flow.emu.settle(pi, "fail", "insufficient_funds")
    flow.settle_wait()
    failed = flow.get(inv["id"])
    assert failed["status"] == "open" and failed["collection_status"] == "failed"
    assert failed["collection_failure"]
    assert flow.payments(customer_id=c["id"]) == []


def test_unknown_event_types_are_acknowledged(flow):
    body = json.dumps({"id": "evt_x", "object": "event", "type": "customer.tax_id.created",
                       "data": {"object": {"id": "txi_1"}}}).encode()
    resp = post_event(flow, body, signed(body))
    assert resp.status_code == 200 and resp.json()["outcome"] == "ignored"


def test_refund_delivered_before_its_payment_is_retried_and_applied_once(flow):
    # Given a card payment and its refund, whose events reach us refund first
    c = flow.customer()
    inv = flow.invoice(c["id"])
    flow.helper("webhooks/hold")
    pi = flow.pay_by_card(inv, amount=12000)
    flow.client().v1.refunds.create(params={"payment_intent": pi, "amount": 2000,
                                            "metadata": {"invoice_id": inv["id"]}})
    refunded = [e for e in flow.emu.events("charge.refunded") if e["data"]["object"]["payment_intent"] == pi][-1]
    # When they are released, the refund first
    flow.helper("webhooks/release", {"order": [refunded["id"]], "wait": True, "timeout": 20})
    # Then the refund was refused (409, retryable) before the payment, and applied once after it
    codes = [d["status_code"] for d in flow.emu.deliveries(refunded["id"])]
    assert codes[0] == 409 and codes[-1] == 200, codes
    final = wait_until(lambda: (lambda i: i if i["status"] == "open" else None)(flow.get(inv["id"])))
    assert final["amount_due"] == "20.00" and final["amount_paid"] == "100.00"
    flow.helper(f"events/{refunded['id']}/resend", {"times": 2, "concurrent": True})
    flow.settle_wait()
    assert flow.get(inv["id"])["amount_due"] == "20.00"


def test_dispute_closed_before_opened_is_retried_and_applied_once(flow):
    c = flow.customer()
    inv = flow.invoice(c["id"])
    pi = flow.pay_by_card(inv, amount=12000)
    flow.settle_wait()
    flow.helper("webhooks/hold")
    dispute = flow.helper("disputes", {"payment_intent": pi, "reason": "fraudulent"})
    flow.helper(f"disputes/{dispute['id']}/close", {"status": "won"})
    closed = flow.event("charge.dispute.closed", dispute["id"])
    flow.helper("webhooks/release", {"order": "reverse", "wait": True, "timeout": 20})
    codes = [d["status_code"] for d in flow.emu.deliveries(closed["id"])]
    assert codes[0] == 409 and codes[-1] == 200, codes
    won = flow.get(inv["id"])
    assert won["status"] == "paid" and won["chargeback_status"] == "won" and won["amount_due"] == "0.00"


def test_webhook_secret_not_set_yet_is_a_503_the_provider_retries(api, monkeypatch):
    """A configuration gap on our side (the secret exists but has no value yet) is never the caller's
    fault: 503, so Stripe keeps retrying until the secret is set, and nothing is applied."""
    import boto3

    from chalicelib import wiring
    from chalicelib.adapters import secrets

    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    cfg = wiring.get_config()
    wiring.reset()
    secrets.forget()
    sm = boto3.client("secretsmanager", endpoint_url=cfg.aws_endpoint_url, region_name=cfg.region)
    sm.put_secret_value(SecretId=cfg.secrets_name, SecretString="{}")
    try:
        resp = api.post("/webhooks/stripe", {"id": "evt_1", "type": "charge.succeeded"}, key="",
                        headers={"Stripe-Signature": "t=1,v1=abc"})
        assert resp.status_code == 503 and resp.data["code"] == "secret_unavailable"
        assert "stripe_webhook_secret" in resp.data["message"]
    finally:
        wiring.reset()
        secrets.forget()
