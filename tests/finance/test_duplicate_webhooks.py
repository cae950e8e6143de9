"""Duplicate and concurrent webhook deliveries leave the report aggregates exactly as one delivery does.

Through the Stripe emulator and the app over HTTP: a card payment, then its events resent (in a row and
concurrently), the same money reported by another event type, a refund and its resends. Every aggregate
cell of the portfolio and the customer is compared, and the reports read through the API.
"""

from __future__ import annotations

import json

import pytest
import requests

from chalicelib.domain.aggregates import PORTFOLIO
from tests.conftest import CUSTOMER_INPUT, line


def _snapshot(customer_id: str) -> dict:
    from chalicelib import wiring

    ledger = wiring.ledger()
    return {scope: ledger.query_aggregates("EUR", scope) for scope in (PORTFOLIO, customer_id)}


def _resend(emulator_url: str, event_id: str, **body) -> None:
    r = requests.post(f"{emulator_url}/_emulator/events/{event_id}/resend", json=body, timeout=30)
    assert r.status_code < 300, r.text


@pytest.mark.slow
def test_duplicate_webhooks_leave_aggregates_unchanged(payments_stack):
    import stripe

    url, http, emu = payments_stack["api_url"], payments_stack["http"], payments_stack["emulator"]
    customer = http.post(f"{url}/customers", json=CUSTOMER_INPUT).json()
    draft = http.post(f"{url}/invoices", json={"customer_id": customer["id"], "lines": [line()]}).json()
    invoice = http.post(f"{url}/invoices/{draft['id']}/issue").json()
    client = stripe.StripeClient("sk_test_local", base_addresses={"api": emu.url}, max_network_retries=0)
    meta = {"invoice_id": invoice["id"], "customer_id": customer["id"]}
    session = client.v1.checkout.sessions.create(params={
        "mode": "payment", "success_url": "http://127.0.0.1/ok", "cancel_url": "http://127.0.0.1/no",
        "line_items": [{"quantity": 1, "price_data": {"currency": "eur", "unit_amount": 12000,
                                                      "product_data": {"name": "x"}}}],
        "metadata": meta, "payment_intent_data": {"metadata": meta}})
    emu.checkout(session["id"], "card_success")
    emu.wait_for_deliveries(15)
    pi = client.v1.checkout.sessions.retrieve(session["id"])["payment_intent"]
    once = _snapshot(customer["id"])
    assert once[customer["id"]], "the payment moved the customer's aggregates"
    aging_once = http.get(f"{url}/reports/aging").json()
    collection_once = http.get(f"{url}/reports/collection").json()

    paid_events = [e for e in emu.events() if pi in json.dumps(e["data"]["object"])]
    assert {"payment_intent.succeeded", "checkout.session.completed"} <= {e["type"] for e in paid_events}
    for e in paid_events:
        _resend(emu.url, e["id"], times=3)
        _resend(emu.url, e["id"], times=3, concurrent=True)
    emu.wait_for_deliveries(20)
    assert _snapshot(customer["id"]) == once
    assert http.get(f"{url}/reports/aging").json() == aging_once
    assert http.get(f"{url}/reports/collection").json() == collection_once

    refund = http.post(f"{url}/invoices/{invoice['id']}/refunds", json={"amount": "20.00"})
    assert refund.status_code == 202, refund.text
    emu.wait_for_deliveries(15)
    for _ in range(50):
        if http.get(f"{url}/invoices/{invoice['id']}").json()["status"] == "open":
            break
        import time

        time.sleep(0.1)
    refunded = _snapshot(customer["id"])
    assert refunded != once
    event = [e for e in emu.events("charge.refunded") if e["data"]["object"]["payment_intent"] == pi][-1]
    _resend(emu.url, event["id"], times=3, concurrent=True)
    emu.wait_for_deliveries(15)
    assert _snapshot(customer["id"]) == refunded
    assert http.get(f"{url}/reports/aging").json()["total"] == "20.00"
    report = http.post(f"{url}/admin/reconcile").json()
    assert report["ok"] and report["drift_count"] == 0, report
