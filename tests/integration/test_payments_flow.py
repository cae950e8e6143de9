"""Card payment through a payment link, end to end against the emulator (no browser)."""

from __future__ import annotations

import time

import requests

from tests.conftest import CUSTOMER_INPUT, line


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def issued_invoice(ps, **line_kw):
    http, url = ps["http"], ps["api_url"]
    customer = http.post(f"{url}/customers", json=CUSTOMER_INPUT).json()
    draft = http.post(f"{url}/invoices", json={"customer_id": customer["id"], "lines": [line(**line_kw)]}).json()
    return http.post(f"{url}/invoices/{draft['id']}/issue").json()


def test_pay_link_card_payment_marks_the_invoice_paid(payments_stack):
    ps = payments_stack
    invoice = issued_invoice(ps)
    assert invoice["pay_url"].startswith(ps["api_url"] + "/pay/")
    token = invoice["pay_url"].rsplit("/", 1)[1]
    # When the payer clicks Pay and pays by card on the checkout page
    from chalicelib import wiring

    checkout_url = wiring.pay().checkout_url(token)
    redirect = requests.get(checkout_url, allow_redirects=False)
    assert redirect.status_code in (302, 303)
    session_id = redirect.headers["Location"].rstrip("/").split("/")[-1]
    ps["emulator"].checkout(session_id, "card_success")
    # Then the webhook makes it paid, once
    paid = wait_until(lambda: (lambda i: i if i["status"] == "paid" else None)(
        ps["http"].get(f"{ps['api_url']}/invoices/{invoice['id']}").json()))
    assert paid["amount_due"] == "0.00"
    payments = ps["http"].get(f"{ps['api_url']}/payments", params={"customer_id": invoice["customer_id"]}).json()
    assert len(payments["data"]) == 1 and payments["data"][0]["method"] == "card"
    # inside the seller's escompte window (2 % within 10 days): 117.60 settles the 120.00 invoice
    assert payments["data"][0]["amount"] == "117.60" and paid["amount_discounted"] == "2.40"
