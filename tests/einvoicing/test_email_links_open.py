"""Over real HTTP (the app served as `make run` serves it, with the Stripe emulator): the links in the email
open, the PDF link of the hosted page serves the stored document, and the portal's "request a copy" is mailed."""

from __future__ import annotations

import email
import hashlib
import re
from email import policy

import requests

from tests.conftest import CUSTOMER_INPUT, line, moto_data


def mails(endpoint):
    return [email.message_from_string(m["raw_data"], policy=policy.default)
            for m in moto_data(endpoint)["ses"]["RawMessage"]]


def test_the_pay_and_portal_links_of_the_email_open(payments_stack, stack):
    from chalicelib import wiring

    ps = payments_stack
    http, url = ps["http"], ps["api_url"]
    customer = http.post(f"{url}/customers", json=CUSTOMER_INPUT).json()
    draft = http.post(f"{url}/invoices", json={"customer_id": customer["id"], "lines": [line()]}).json()
    invoice = http.post(f"{url}/invoices/{draft['id']}/issue").json()
    wiring.outbox().run(limit=100)
    (mail,) = mails(stack)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    pay_url = re.search(r"(http://\S+/pay/\S+)", text).group(1)
    portal_url = re.search(r"(http://\S+/portal/\S+)", text).group(1)
    assert pay_url == invoice["pay_url"]
    page = requests.get(pay_url, timeout=10)
    assert page.status_code == 200 and invoice["number"] in page.text
    assert requests.get(portal_url, timeout=10).status_code == 200
    # the hosted page's PDF is the stored document
    pdf = requests.get(f"{pay_url}/pdf", timeout=10)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert hashlib.sha256(pdf.content).hexdigest() == invoice["documents"]["sha256_pdf"]
    # "request a copy" from the portal is mailed as a copy
    token = portal_url.rsplit("/", 1)[1]
    copy = requests.post(f"{url}/portal/{token}/copy", data={"invoice_id": invoice["id"]}, timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert copy.status_code == 200
    wiring.outbox().run(limit=100)
    assert mails(stack)[-1]["Subject"].endswith("(copie)")
