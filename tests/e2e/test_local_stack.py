"""End to end: the stack `make run` starts, used over HTTP like a finance team would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from infra.local.run import PROJECT_DIR, free_port
from tests.conftest import CUSTOMER_INPUT, line


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    env_file = tmp_path_factory.mktemp("stack") / "run.env"
    api_port, moto_port, stripe_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "infra.local.run", "--api-port", str(api_port), "--moto-port",
                             str(moto_port), "--stripe-port", str(stripe_port), "--env-file", str(env_file),
                             "--tick", "0.5"],
                            cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while not env_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode() if proc.stdout else ""
            proc.kill()
            pytest.fail(f"make run's stack did not start:\n{out}")
        time.sleep(0.3)
    values = dict(line.split("=", 1) for line in Path(env_file).read_text().splitlines() if "=" in line)
    yield values, proc
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the stack did not stop on Ctrl-C")
    assert proc.returncode == 0


def test_finance_flow_over_http(running):
    env, _ = running
    url, headers = env["API_URL"], {"Authorization": f"Bearer {env['API_KEY']}"}
    s = requests.Session()
    s.headers.update(headers)
    # demo data is there
    demo = s.get(f"{url}/invoices?limit=200").json()["data"]
    assert any(i["overdue"] for i in demo) and any(i["status"] == "draft" for i in demo)
    assert any(i["status"] == "paid" for i in demo)
    # create customer, create and issue invoice, list it, record payment, invoice becomes paid
    customer = s.post(f"{url}/customers", json={**CUSTOMER_INPUT, "name": "E2E SARL"})
    assert customer.status_code == 201, customer.text
    draft = s.post(f"{url}/invoices", json={"customer_id": customer.json()["id"],
                                            "lines": [line(quantity="4", unit_price="99.90")]})
    assert draft.status_code == 201, draft.text
    invoice = s.post(f"{url}/invoices/{draft.json()['id']}/issue").json()
    assert invoice["status"] == "open" and invoice["total"] == "479.52"
    listed = s.get(f"{url}/invoices", params={"customer_id": customer.json()["id"]}).json()["data"]
    assert [i["number"] for i in listed] == [invoice["number"]]
    paid = s.post(f"{url}/payments", json={"customer_id": customer.json()["id"], "amount": "479.52",
                                           "method": "bank_transfer", "received_on": invoice["issue_date"],
                                           "reference": f"VIR {invoice['number']}",
                                           "allocations": [{"invoice_id": invoice["id"], "amount": "479.52"}]})
    assert paid.status_code == 201, paid.text
    final = s.get(f"{url}/invoices/{invoice['id']}").json()
    assert final["status"] == "paid" and final["amount_due"] == "0.00"


def test_pay_link_opens_and_stripe_settings_are_published(running):
    env, _ = running
    assert env["STRIPE_API_BASE"].startswith("http://127.0.0.1:") and env["STRIPE_WEBHOOK_SECRET"].startswith("whsec_")
    s = requests.Session()
    s.headers.update({"Authorization": f"Bearer {env['API_KEY']}"})
    open_invoice = next(i for i in s.get(f"{env['API_URL']}/invoices?status=open").json()["data"])
    page = requests.get(open_invoice["pay_url"])
    assert page.status_code == 200 and open_invoice["number"] in page.text
    pay = requests.post(f"{open_invoice['pay_url']}/checkout", data="", allow_redirects=False,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert pay.status_code == 303 and pay.headers["Location"].startswith(env["STRIPE_API_BASE"])


def test_gateway_errors_use_our_shape(running):
    env, _ = running
    url = env["API_URL"]
    no_key = requests.get(f"{url}/invoices")
    assert no_key.status_code == 401 and no_key.json()["code"] == "unauthorized"
    bad_key = requests.get(f"{url}/invoices", headers={"Authorization": "Bearer ark_wrong"})
    assert bad_key.status_code == 401 and bad_key.json()["code"] == "unauthorized"
    unknown = requests.get(f"{url}/no/such/route")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_business_events_reach_the_bus(running):
    from infra.local.bootstrap import read_tapped_events

    env, _ = running
    deadline = time.monotonic() + 20
    types: set[str] = set()
    while time.monotonic() < deadline and not {"invoice.issued", "invoice.paid"} <= types:
        types |= {e["detail-type"] for e in read_tapped_events(env["AWS_ENDPOINT_URL"], 100)}
        time.sleep(0.5)
    assert {"invoice.issued", "invoice.paid", "payment.recorded"} <= types
