"""The local Stripe emulator, driven by the real ``stripe`` library.

One emulator and one tiny webhook receiver per module (each on a free 127.0.0.1 port);
every test starts from a reset emulator and an empty receiver.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

import pytest
import stripe

from infra.local.run import free_port, wait_for_http
from infra.local.stripe_emulator import EmulatorHandle, start_emulator

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_DIR.parent / "shared" / "stripe" / "fixtures3.json"
SECRET = "whsec_test_emulator_secret_0123456789"
API_KEY = "sk_test_emulator"


# -- a webhook receiver ------------------------------------------------------------------
class Receiver:
    """Records every POST (raw body + Stripe-Signature) and answers queued statuses (200 by default)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append({"body": body, "signature": self.headers.get("Stripe-Signature"),
                                              "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/stripe"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.statuses.clear()

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.requests)

    def events(self) -> list[Any]:
        """Every received event, verified with the endpoint secret like the app does."""
        return [stripe.Webhook.construct_event(r["body"], r["signature"], SECRET) for r in self.received()]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout_s: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = self.events()
            if predicate(events):
                return events
            time.sleep(0.02)
        raise AssertionError(f"condition not met; received {[e['type'] for e in self.events()]}")

    def wait_types(self, *types: str, timeout_s: float = 5.0) -> list[Any]:
        return self.wait_for(lambda evs: all(t in [e["type"] for e in evs] for t in types), timeout_s)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def emulator(receiver: Receiver) -> Iterator[EmulatorHandle]:
    handle = start_emulator(port=0, webhook_url=receiver.url, webhook_secret=SECRET, retry_delays=(0.05, 0.1, 0.2))
    yield handle
    handle.stop()


@pytest.fixture()
def em(emulator: EmulatorHandle, receiver: Receiver) -> Iterator[EmulatorHandle]:
    emulator.reset()
    emulator.set_webhook(receiver.url, SECRET)
    emulator.emulator.sepa_settle_after = None
    receiver.clear()
    yield emulator
    emulator.wait_for_deliveries(5)


@pytest.fixture()
def client(em: EmulatorHandle) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": em.url}, max_network_retries=0)


# -- small helpers -----------------------------------------------------------------------
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def helper(em: EmulatorHandle, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
    data = json.dumps(body or {}).encode() if method != "GET" else None
    status, _, text = http(method, f"{em.url}/_emulator/{path}", data, {"Content-Type": "application/json"})
    assert status == 200, text
    return json.loads(text)


def api(em: EmulatorHandle, method: str, path: str, params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A raw /v1 call (to look at status codes, headers and error bodies as they are on the wire)."""
    all_headers = {"Authorization": f"Bearer {API_KEY}", **(headers or {})}
    data = urlencode(params or {}).encode() if method == "POST" else None
    query = "?" + urlencode(params) if params and method == "GET" else ""
    status, hdrs, text = http(method, f"{em.url}{path}{query}", data, all_headers)
    return status, hdrs, json.loads(text)


class PageParser(HTMLParser):
    """Collects what an accessibility check needs: lang, buttons, inputs and their labels, alerts."""

    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.buttons: list[dict[str, str]] = []
        self.inputs: list[dict[str, str]] = []
        self.labels: dict[str, str] = {}
        self.alerts: list[str] = []
        self._open: tuple[str, dict[str, str]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang")
        if tag == "input":
            self.inputs.append(a)
        if tag in ("button", "label") or a.get("role") == "alert":
            self._open, self._text = (tag if tag != "div" else "alert", a), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is None:
            return
        kind, attrs = self._open
        if tag == kind or (kind == "alert" and tag == "div"):
            text = "".join(self._text).strip()
            if kind == "button":
                self.buttons.append({**attrs, "text": text})
            elif kind == "label":
                self.labels[attrs.get("for", "")] = text
            else:
                self.alerts.append(text)
            self._open = None


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def price_data_item(amount: int = 12000, name: str = "Facture F-2026-0001") -> dict[str, Any]:
    return {"price_data": {"currency": "eur", "unit_amount": amount, "product_data": {"name": name}}, "quantity": 1}


def paid_card_session(client: stripe.StripeClient, em: EmulatorHandle, amount: int = 12000) -> Any:
    session = client.v1.checkout.sessions.create(params={
        "mode": "payment", "line_items": [price_data_item(amount)], "success_url": "https://example.com/ok",
        "metadata": {"invoice_id": "inv_card"}, "payment_intent_data": {"metadata": {"invoice_id": "inv_card"}}})
    result = em.checkout(session.id, "card_success")
    assert result["redirect"] == "https://example.com/ok"
    return client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent.latest_charge"]})


def sepa_mandate(client: stripe.StripeClient, em: EmulatorHandle) -> tuple[Any, Any]:
    """A customer with an active multi-use SEPA mandate, set up through Checkout (setup mode)."""
    customer = client.v1.customers.create(params={"email": "compta@boulangerie.example", "name": "Boulangerie"})
    session = client.v1.checkout.sessions.create(params={
        "mode": "setup", "customer": customer.id, "currency": "eur", "success_url": "https://example.com/ok",
        "allowed_payment_method_types": ["sepa_debit"],
        "setup_intent_data": {"metadata": {"customer_id": "c_1"}}})
    em.checkout(session.id, "setup_sepa")
    setup_intent = client.v1.setup_intents.retrieve(
        client.v1.checkout.sessions.retrieve(session.id).setup_intent)
    return customer, setup_intent


# -- shapes --------------------------------------------------------------------------------
def test_every_returned_object_has_the_top_level_keys_of_its_stripe_fixture(
        client: stripe.StripeClient, em: EmulatorHandle) -> None:
    if not FIXTURES.exists():
        pytest.skip(f"{FIXTURES} not found")
    fixtures = json.loads(FIXTURES.read_text())["resources"]
    # Given objects of every kind the emulator makes
    customer = client.v1.customers.create(params={"email": "a@example.com"})
    product = client.v1.products.create(params={"name": "Conseil"})
    price = client.v1.prices.create(params={"currency": "eur", "unit_amount": 5000, "product": product.id})
    link = client.v1.payment_links.create(params={"line_items": [{"price": price.id, "quantity": 2}]})
    session = paid_card_session(client, em)
    pi = session.payment_intent
    charge = pi.latest_charge
    refund = client.v1.refunds.create(params={"charge": charge.id, "amount": 1000})
    dispute = helper(em, "disputes", {"charge": charge.id, "amount": 2000})
    customer2, seti = sepa_mandate(client, em)
    payout = helper(em, "payouts", {"currency": "eur"})
    by_type = {
        "customer": customer, "product": product, "price": price, "payment_link": link,
        "checkout.session": client.v1.checkout.sessions.retrieve(session.id),
        "setup_intent": seti, "payment_method": client.v1.payment_methods.retrieve(seti.payment_method),
        "mandate": client.v1.mandates.retrieve(seti.mandate),
        "payment_intent": client.v1.payment_intents.retrieve(pi.id),
        "charge": client.v1.charges.retrieve(charge.id), "refund": client.v1.refunds.retrieve(refund.id),
        "balance_transaction": client.v1.balance_transactions.retrieve(charge.balance_transaction),
        "payout": client.v1.payouts.retrieve(payout["id"]), "dispute": client.v1.disputes.retrieve(dispute["id"]),
        "event": client.v1.events.retrieve(em.events()[0]["id"]),
        "item": client.v1.checkout.sessions.line_items.list(session.id).data[0],
    }
    card_pm = client.v1.payment_methods.retrieve(pi.payment_method)
    # Then each has its fixture's top-level keys and the right object name and id prefix
    prefixes = {"customer": "cus_", "product": "prod_", "price": "price_", "payment_link": "plink_",
                "checkout.session": "cs_test_", "setup_intent": "seti_", "payment_method": "pm_",
                "mandate": "mandate_", "payment_intent": "pi_", "charge": "ch_", "refund": "re_",
                "balance_transaction": "txn_", "payout": "po_", "dispute": "dp_", "event": "evt_", "item": "li_"}
    for object_type, obj in by_type.items():
        data = obj.to_dict() if hasattr(obj, "to_dict") else obj
        expected = set(fixtures[object_type])
        if object_type == "payment_method":  # polymorphic: only the hash named after ``type`` is present
            expected = expected - {"card"} | {data["type"]}
        assert expected <= set(data), (object_type, sorted(expected - set(data)))
        assert data["object"] == object_type
        assert data["id"].startswith(prefixes[object_type]), data["id"]
    assert set(fixtures["payment_method"]) <= set(card_pm.to_dict())
    for event in em.events():
        assert set(fixtures["event"]) <= set(event)


# -- validation ----------------------------------------------------------------------------
def test_unknown_parameters_are_rejected_like_stripe(client: stripe.StripeClient, em: EmulatorHandle) -> None:
    # When a nested parameter is unknown
    status, headers, body = api(em, "POST", "/v1/payment_links", {
        "line_items[0][price_data][currency]": "eur", "line_items[0][price_data][unit_amount]": "100",
        "line_items[0][price_data][product_data][name]": "X", "line_items[0][quantity]": "1",
        "after_completion[type]": "redirect", "after_completion[foo]": "bar"})
    # Then the answer is Stripe's error, on the wire
    assert status == 400
    assert body == {"error": {
        "type": "invalid_request_error", "code": "parameter_unknown", "param": "after_completion[foo]",
        "message": "Received unknown parameter: after_completion[foo]",
        "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown"}}
    assert headers["Request-Id"].startswith("req_")
    # and the stripe library raises InvalidRequestError
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.customers.create(
            params={"email": "a@example.com", "foo": {"bar": "x"}})  # type: ignore[typeddict-unknown-key]
    assert raised.value.code == "parameter_unknown" and raised.value.param == "foo"
    # and a near miss gets Stripe's hint
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.checkout.sessions.create(params={  # type: ignore[typeddict-unknown-key]
            "mode": "payment", "line_items": [price_data_item()], "succes_url": "https://example.com/ok"})
    assert raised.value.param == "succes_url"
    assert str(raised.value.user_message).endswith("Did you mean success_url?")
    # and what the pinned API version removed is refused with the documented code
    for create in (lambda: client.v1.checkout.sessions.create(params={  # type: ignore[typeddict-unknown-key]
                       "mode": "payment", "line_items": [price_data_item()], "payment_method_types": ["card"]}),
                   lambda: client.v1.payment_intents.create(params={  # type: ignore[typeddict-unknown-key]
                       "amount": 1000, "currency": "eur", "payment_method_types": ["sepa_debit"]})):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            create()
        assert (raised.value.code, raised.value.param) == ("payment_method_types_no_longer_supported",
                                                           "payment_method_types")


def test_missing_and_invalid_parameters_are_rejected(client: stripe.StripeClient, em: EmulatorHandle) -> None:
    def error(call: Callable[[], Any]) -> stripe.InvalidRequestError:
        with pytest.raises(stripe.InvalidRequestError) as raised:
            call()
        return raised.value

    e = error(lambda: client.v1.payment_links.create(params={"metadata": {"a": "b"}}))  # type: ignore[typeddict-item]
    assert (e.code, e.param) == ("parameter_missing", "line_items")
    assert e.user_message == "Missing required param: line_items."
    e = error(lambda: client.v1.payment_links.create(params={"line_items": [
        {"price_data": {"unit_amount": 100, "product_data": {"name": "X"}},  # type: ignore[typeddict-item]
         "quantity": 1}]}))
    assert (e.code, e.param) == ("parameter_missing", "line_items[0][price_data][currency]")
    e = error(lambda: client.v1.payment_intents.create(params={"amount": 0, "currency": "eur"}))
    assert e.param == "amount"
    e = error(lambda: client.v1.payment_intents.create(params={"amount": 1000, "currency": "EUR"}))
    assert e.param == "currency"
    e = error(lambda: client.v1.checkout.sessions.create(params={"mode": "payment"}))
    assert (e.code, e.param) == ("parameter_missing", "line_items")
    e = error(lambda: client.v1.checkout.sessions.create(params={
        "mode": "setup", "currency": "eur", "line_items": [price_data_item()]}))
    assert e.param == "line_items"
    e = error(lambda: client.v1.checkout.sessions.create(params={"mode": "setup"}))
    assert (e.code, e.param) == ("parameter_missing", "currency")
    now = int(time.time())
    for expires_at in (now + 600, now + 2 * 86400):
        e = error(lambda: client.v1.checkout.sessions.create(params={
            "mode": "payment", "line_items": [price_data_item()], "expires_at": expires_at}))
        assert e.param == "expires_at"
    e = error(lambda: client.v1.checkout.sessions.create(params={
        "mode": "payment", "line_items": [price_data_item()], "customer": "cus_missing"}))
    assert (e.code, e.param, e.http_status) == ("resource_missing", "customer", 400)
    e = error(lambda: client.v1.payment_links.retrieve("plink_missing"))
    assert (e.code, e.http_status) == ("resource_missing", 404)
    status, _, body = api(em, "POST", "/v1/payment_intents", {"amount": "12.5", "currency": "eur"})
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "parameter_invalid_integer", "amount")


def test_api_keys_are_required(client: stripe.StripeClient, em: EmulatorHandle) -> None:
    status, _, body = api(em, "GET", "/v1/customers", headers={"Authorization": ""})
    assert status == 401 and body["error"]["type"] == "invalid_request_error"
    live = stripe.StripeClient("sk_live_nope", base_addresses={"api": em.url}, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        live.v1.customers.create(params={"email": "a@example.com"})


def test_idempotency_keys_replay_and_refuse_other_parameters(client: stripe.StripeClient, em: EmulatorHandle) -> None:
    # Given a customer created with an idempotency key
    first = client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k-1"})
    # When the same request is retried
    again = client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k-1"})
    status, headers, body = api(em, "POST", "/v1/customers", {"email": "a@example.com"}, {"Idempotency-Key": "k-1"})
    # Then the first answer is replayed and nothing new is created
    assert again.id == first.id == body["id"]
    assert headers.get("Idempotent-Replayed") == "true"
    assert len(em.events("customer.created")) == 1
    # And the key with other parameters is refused
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(params={"email": "b@example.com"}, options={"idempotency_key": "k-1"})
    # And a request that failed validation stored nothing: the key can be used once fixed
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params={"amount": 0, "currency": "eur"}, options={"idempotency_key": "k-2"})
    pi = client.v1.payment_intents.create(params={"amount": 900, "currency": "eur"}, options={"idempotency_key": "k-2"})
    assert pi.status == "requires_payment_method"


def test_updates_unset_metadata_keys_and_carry_previous_attributes(
        client: stripe.StripeClient, em: EmulatorHandle, receiver: Receiver) -> None:
    customer = client.v1.customers.create(params={"email": "a@example.com", "metadata": {"a": "1", "b": "2"}})
    updated = client.v1.customers.update(customer.id, params={"metadata": {"a": ""}, "name": "Atelier"})
    assert (updated.metadata.to_dict(), updated.name) == ({"b": "2"}, "Atelier")
    events = receiver.wait_types("customer.updated")
    previous = next(e for e in events if e["type"] == "customer.updated")["data"]["previous_attributes"]
    assert previous.to_dict() == {"metadata": {"a": "1", "b": "2"}, "name": None}


# -- payment link -> checkout -> card --------------------------------------------------------
def test_payment_link_card_payment_emits_signed_events_with_the_link_metadata(
        client: stripe.StripeClient, em: EmulatorHandle, receiver: Receiver) -> None:
    # Given a payment link for an invoice
    link = client.v1.payment_links.create(params={
        "line_items": [price_data_item(24000)], "metadata": {"invoice_id": "inv_42"},
        "payment_intent_data": {"metadata": {"invoice_id": "inv_42", "tenant": "t1"}},
        "after_completion": {"type": "redirect",
                             "redirect": {"url": "https://seller.example/paid?session={CHECKOUT_SESSION_ID}"}},
        "payment_method_types": ["card", "sepa_debit"]}, options={"idempotency_key": "link-inv_42"})
    assert link.url.startswith(f"{em.url}/pay/plink_")
    # When the customer opens it
    status, headers, _ = http("GET", link.url)
    assert status == 303
    session_url = headers["Location"]
    status, _, page = http("GET", session_url)
    assert status == 200
    doc = parse_page(page)
    # Then the hosted page shows the amount and real, labelled controls
    assert doc.lang == "en"
    assert "€240.00" in page and "EUR" in page
    names = [b["text"] for b in doc.buttons]
    assert names == ["Pay by card (succeeds)", "Card declined", "Pay by SEPA Direct Debit (succeeds later)",
                     "SEPA Direct Debit (fails later)"]
    assert all(b.get("type") == "submit" for b in doc.buttons)
    assert all(i["id"] in doc.labels for i in doc.inputs)
    # When they pay by card
    session_id = session_url.rsplit("/", 1)[1]
    form = urlencode({"action": "card_success", "email": "a@b.example"}).encode()
    status, headers, _ = http("POST", session_url, form)
    # Then they are sent to the success URL
    assert status == 303
    assert headers["Location"] == f"https://seller.example/paid?session={session_id}"
    # And signed events arrive in order, verifiable with the endpoint secret
    events = receiver.wait_types("checkout.session.completed", "payment_intent.succeeded", "charge.succeeded")
    types = [e["type"] for e in events]
    assert types.index("checkout.session.completed") < types.index("payment_intent.succeeded") \
        < types.index("charge.succeeded")
    completed = next(e for e in events if e["type"] == "checkout.session.completed")
    session = completed["data"]["object"]
    assert completed["api_version"] == em.emulator.api_version and completed["livemode"] is False
    assert session["payment_status"] == "paid" and session["status"] == "complete"
    assert session["payment_link"] == link.id
    assert session["metadata"].to_dict() == {"invoice_id": "inv_42"}
    succeeded = next(e for e in events if e["type"] == "payment_intent.succeeded")["data"]["object"]
    assert succeeded["id"] == session["payment_intent"]
    assert succeeded["metadata"].to_dict() == {"invoice_id": "inv_42", "tenant": "t1"}
    assert succeeded["amount_received"] == 24000
    charge = client.v1.charges.retrieve(succeeded["latest_charge"], params={"expand": ["balance_transaction"]})
    assert charge.metadata.to_dict() == {"invoice_id": "inv_42", "tenant": "t1"}
    assert charge.balance_transaction.fee == 24000 * 15 // 1000 + 25
    assert charge.balance_transaction.net == 24000 - charge.balance_transaction.fee
    # And every delivery was answered 200
    em.wait_for_deliveries()
    assert {d["status_code"] for d in em.deliveries()} == {200}
    # And a deactivated link no longer opens
    client.v1.payment_links.update(link.id, params={"active": False})
    assert http("GET", link.url)[0] == 410


def test_declined_card_keeps_the_session_open(client: stripe.StripeClient, em: EmulatorHandle,
                                              receiver: Receiver) -> None:
    session = client.v1.checkout.sessions.create(params={
        "mode": "payment", "line_items": [price_data_item()], "allowed_payment_method_types": ["card"]})
    status, _, page = http("POST", session.url, urlencode({"action": "card_declined"}).encode())
    assert status == 200
    assert parse_page(page).alerts == ["Your card was declined."]
    assert [b["text"] for b in parse_page(page).buttons] == ["Pay by card (succeeds)", "Card declined"]
    failed = receiver.wait_types("payment_intent.payment_failed")
    pi = next(e for e in failed if e["type"] == "payment_intent.payment_failed")["data"]["object"]
    assert pi["last_payment_error"]["code"] == "card_declined"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    # a second try with a good card completes the same session and PaymentIntent
    assert em.checkout(session.id, "card_success")["redirect"]
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status, done.payment_intent) == ("complete", "paid", pi["id"])


# -- SEPA --------------------------------------------------------------------------------------
def test_sepa_checkout_completes_unpaid_then_settles(client: stripe.StripeClient, em: EmulatorHandle,
                                                     receiver: Receiver) -> None:
    # Given a SEPA payment through Checkout
    session = client.v1.checkout.sessions.create(params={
        "mode": "payment", "line_items": [price_data_item(50000)], "allowed_payment_method_types": ["sepa_debit"],
        "metadata": {"invoice_id": "inv_sepa"}, "success_url": "https://example.com/ok"})
    em.checkout(session.id, "sepa_success")
    # Then the session completes unpaid and the PaymentIntent is processing
    events = receiver.wait_types("checkout.session.completed", "payment_intent.processing")
    completed = next(e for e in events if e["type"] == "checkout.session.completed")["data"]["object"]
    assert completed["payment_status"] == "unpaid"
    pi_id = completed["payment_intent"]
    assert client.v1.payment_intents.retrieve(pi_id).status == "processing"
    # When the bank settles it
    settled = helper(em, f"payment_intents/{pi_id}/settle", {"outcome": "succeed"})
    assert settled["status"] == "succeeded"
    events = receiver.wait_types("checkout.session.async_payment_succeeded", "charge.succeeded")
    types = [e["type"] for e in events]
    assert types[-3:] == ["checkout.session.async_payment_succeeded", "payment_intent.succeeded",
                          "charge.succeeded"]
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    txn = client.v1.balance_transactions.retrieve(client.v1.charges.retrieve(settled["latest_charge"])
                                                  .balance_transaction)
    assert (txn.type, txn.fee) == ("payment", 35)


def test_sepa_checkout_failure_settles_automatically_when_configured(
        client: stripe.StripeClient, em: EmulatorHandle, receiver: Receiver) -> None:
    helper(em, "config", {"sepa_settle_after": 0.05})
    session = client.v1.checkout.sessions.create(params={"mode": "payment", "line_items": [price_data_item()]})
    result = helper(em, f"checkout/sessions/{session.id}/complete", {"action": "sepa_fail"})
    assert result["session"]["payment_status"] == "unpaid"
    events = receiver.wait_types("checkout.session.async_payment_failed", "payment_intent.payment_failed")
    failed = next(e for e in events if e["type"] == "payment_intent.payment_failed")["data"]["object"]
    assert failed["last_payment_error"]["code"] == "insufficient_funds"
    assert failed["status"] == "requires_payment_method"


def test_setup_mode_creates_an_active_sepa_mandate(client: stripe.StripeClient, em: EmulatorHandle,
                                                   receiver: Receiver) -> None:
    customer = client.v1.customers.create(params={"email": "compta@client.example", "name": "Client SARL"})
    session = client.v1.checkout.sessions.create(params={
        "mode": "setup", "customer": customer.id, "currency": "eur", "success_url": "https://example.com/ok",
        "cancel_url": "https://example.com/cancel", "setup_intent_data": {"metadata": {"customer_ref": "C-1"}}})
    # The page offers the mandate and a cancel button
    doc = parse_page(http("GET", session.url)[2])
    assert [b["text"] for b in doc.buttons] == ["Set up SEPA mandate", "Cancel"]
    assert "iban" in doc.labels
    status, headers, _ = http("POST", session.url, urlencode({"action": "setup_sepa"}).encode())
    assert (status, headers["Location"]) == (303, "https://example.com/ok")
    # Then a SetupIntent, an attached SEPA PaymentMethod and an active multi-use mandate exist
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["setup_intent.mandate"]})
    assert (done.status, done.mode, done.payment_status) == ("complete", "setup", "no_payment_required")
    seti = done.setup_intent
    assert (seti.status, seti.customer, seti.metadata.to_dict()) == ("succeeded", customer.id, {"customer_ref": "C-1"})
    mandate = seti.mandate
    assert (mandate.status, mandate.type) == ("active", "multi_use")
    assert mandate.payment_method_details.sepa_debit.reference
    pm = client.v1.payment_methods.retrieve(seti.payment_method)
    assert (pm.type, pm.customer, pm.sepa_debit.last4) == ("sepa_debit", customer.id, "2606")
    events = receiver.wait_types("checkout.session.completed", "setup_intent.succeeded", "mandate.updated")
    types = [e["type"] for e in events]
    assert types.index("checkout.session.completed") < types.index("setup_intent.succeeded") \
        < types.index("mandate.updated")
    assert next(e for e in events if e["type"] == "checkout.session.completed")["data"]["object"]["mode"] == "setup"


def test_off_session_sepa_debits_process_then_succeed_or_fail(client: stripe.StripeClient, em: EmulatorHandle,
                                                              receiver: Receiver) -> None:
    customer, seti = sepa_mandate(client, em)

    def debit(key: str) -> Any:
        return client.v1.payment_intents.create(params={
            "amount": 18000, "currency": "eur", "customer": customer.id, "payment_method": seti.payment_method,
            "mandate": seti.mandate, "confirm": True, "off_session": True,
            "metadata": {"invoice_id": key}}, options={"idempotency_key": key})

    # When two debits are sent off-session
    ok, ko = debit("inv_ok"), debit("inv_ko")
    # Then both are processing
    assert ok.status == ko.status == "processing"
    receiver.wait_for(lambda evs: [e["type"] for e in evs].count("payment_intent.processing") == 2)
    # When the bank answers
    em.settle(ok.id, "succeed")
    failed = helper(em, f"payment_intents/{ko.id}/settle", {"outcome": "fail", "failure_code": "insufficient_funds"})
    # Then one succeeded and the other failed with the bank's reason
    events = receiver.wait_types("payment_intent.succeeded", "charge.succeeded", "payment_intent.payment_failed",
                                 "charge.failed")
    succeeded = next(e for e in events if e["type"] == "payment_intent.succeeded")["data"]["object"]
    assert (succeeded["id"], succeeded["metadata"]["invoice_id"]) == (ok.id, "inv_ok")
    failure = next(e for e in events if e["type"] == "payment_intent.payment_failed")["data"]["object"]
    assert failure["id"] == ko.id and failure["last_payment_error"]["code"] == "insufficient_funds"
    assert failed["status"] == "requires_payment_method"
    charge = client.v1.charges.retrieve(failure["latest_charge"])
    assert (charge.status, charge.failure_code) == ("failed", "insufficient_funds")
    # And a debit without a mandate is refused
    other = client.v1.customers.create(params={"email": "x@example.com"})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params={"amount": 1000, "currency": "eur", "customer": other.id,
                                                 "confirm": True, "off_session": True})


# -- refunds, disputes, payouts -------------------------------------------------------------
def test_refunds_update_the_charge_and_emit_events(client: stripe.StripeClient, em: EmulatorHandle,
                                                   receiver: Receiver) -> None:
    session = paid_card_session(client, em, 10000)
    pi = session.payment_intent
    refund = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 2500, "reason": "requested_by_customer"},
        options={"idempotency_key": "refund-1"})
    assert (refund.status, refund.amount, refund.charge) == ("succeeded", 2500, pi.latest_charge.id)
    charge = client.v1.charges.retrieve(pi.latest_charge.id)
    assert (charge.amount_refunded, charge.refunded) == (2500, False)
    events = receiver.wait_types("charge.refunded", "refund.created")
    refunded = next(e for e in events if e["type"] == "charge.refunded")
    assert refunded["data"]["object"]["amount_refunded"] == 2500
    assert refunded["data"]["previous_attributes"]["amount_refunded"] == 0
    assert refunded["request"]["idempotency_key"] == "refund-1"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.refunds.create(params={"charge": charge.id, "amount": 9000})
    assert raised.value.code == "amount_too_large"
    rest = client.v1.refunds.create(params={"charge": charge.id})
    assert rest.amount == 7500 and client.v1.charges.retrieve(charge.id).refunded is True


def test_disputes_are_created_and_closed(client: stripe.StripeClient, em: EmulatorHandle, receiver: Receiver) -> None:
    charge_id = paid_card_session(client, em).payment_intent.latest_charge.id
    dispute = helper(em, "disputes", {"charge": charge_id, "reason": "fraudulent"})
    assert (dispute["status"], dispute["charge"], dispute["reason"]) == ("needs_response", charge_id, "fraudulent")
    created = receiver.wait_types("charge.dispute.created")
    assert next(e for e in created if e["type"] == "charge.dispute.created")["data"]["object"]["id"] == dispute["id"]
    assert client.v1.charges.retrieve(charge_id).disputed is True
    closed = helper(em, f"disputes/{dispute['id']}/close", {"status": "lost"})
    assert closed["status"] == "lost"
    events = receiver.wait_types("charge.dispute.closed")
    assert next(e for e in events if e["type"] == "charge.dispute.closed")["data"]["object"]["status"] == "lost"

    # A returned SEPA debit, emulated as a lost dispute
    customer, seti = sepa_mandate(client, em)
    pi = client.v1.payment_intents.create(params={
        "amount": 5000, "currency": "eur", "customer": customer.id, "payment_method": seti.payment_method,
        "confirm": True, "off_session": True})
    em.settle(pi.id)
    returned = helper(em, "disputes", {"payment_intent": pi.id, "reason": "insufficient_funds", "status": "lost"})
    assert (returned["status"], returned["payment_intent"]) == ("lost", pi.id)
    assert returned["payment_method_details"]["type"] == "sepa_debit"


def test_payouts_group_charges_refunds_and_fees_for_bank_reconciliation(
        client: stripe.StripeClient, em: EmulatorHandle) -> None:
    charge_a = paid_card_session(client, em, 10000).payment_intent.latest_charge
    charge_b = paid_card_session(client, em, 20000).payment_intent.latest_charge
    client.v1.refunds.create(params={"charge": charge_b.id, "amount": 5000})
    payout = helper(em, "payouts", {"currency": "eur"})
    txns = client.v1.balance_transactions.list(params={"payout": payout["id"], "limit": 100})
    by_type: dict[str, list[Any]] = {}
    for txn in txns.auto_paging_iter():
        by_type.setdefault(txn.type, []).append(txn)
    assert sorted(by_type) == ["charge", "payout", "refund"]
    assert {t.source for t in by_type["charge"]} == {charge_a.id, charge_b.id}
    fees = sum(t.fee for t in by_type["charge"])
    assert fees == (10000 * 15 // 1000 + 25) + (20000 * 15 // 1000 + 25)
    assert payout["amount"] == 10000 + 20000 - 5000 - fees
    assert by_type["payout"][0].amount == -payout["amount"]
    assert client.v1.payouts.retrieve(payout["id"]).status == "paid"
    # nothing left to pay out
    status, _, _ = http("POST", f"{em.url}/_emulator/payouts", b"{}")
    assert status == 400


# -- webhook helpers -----------------------------------------------------------------------
def test_events_can_be_resent_concurrently_and_released_out_of_order(
        client: stripe.StripeClient, em: EmulatorHandle, receiver: Receiver) -> None:
    # Given deliveries are held while a card payment happens
    helper(em, "webhooks/hold")
    paid_card_session(client, em)
    held = helper(em, "webhooks/held", method="GET")["data"]
    assert [h["type"] for h in held][-3:] == ["checkout.session.completed", "payment_intent.succeeded",
                                              "charge.succeeded"]
    assert receiver.received() == []
    # When they are released in reverse order
    released = helper(em, "webhooks/release", {"order": "reverse", "wait": True})
    assert released["idle"] is True
    # Then they arrive last-first
    assert [e["id"] for e in receiver.events()] == released["released"]
    assert receiver.types()[:3] == ["charge.succeeded", "payment_intent.succeeded", "checkout.session.completed"]
    # When one event is resent 3 times at once
    completed = helper(em, "events?type=checkout.session.completed", method="GET")["data"][0]
    receiver.clear()
    copies = helper(em, f"events/{completed['id']}/resend", {"times": 3, "concurrent": True})["data"]
    # Then 3 identical, validly signed copies arrive
    assert [c["status_code"] for c in copies] == [200, 200, 200]
    assert [e["id"] for e in receiver.events()] == [completed["id"]] * 3
    # And a chosen order can be replayed too
    helper(em, "webhooks/hold")
    intent = client.v1.payment_intents.create(params={"amount": 700, "currency": "eur"})
    client.v1.payment_intents.cancel(intent.id)
    ids = [h["event_id"] for h in helper(em, "webhooks/held", method="GET")["data"]]
    receiver.clear()
    helper(em, "webhooks/release", {"order": [ids[1], ids[0]], "wait": True})
    assert receiver.types() == ["payment_intent.canceled", "payment_intent.created"]


def test_stale_and_bad_signatures_are_rejected_by_construct_event(
        client: stripe.StripeClient, em: EmulatorHandle, receiver: Receiver) -> None:
    customer = client.v1.customers.create(params={"email": "a@example.com"})
    receiver.wait_types("customer.created")
    event_id = em.events("customer.created", customer.id)[0]["id"]
    for mode in ("stale", "wrong_secret", "tampered", "missing"):
        receiver.clear()
        sent = helper(em, f"events/{event_id}/send", {"signature": mode})["data"]
        assert len(sent) == 1 and sent[0]["signature"] == mode
        request = receiver.received()[0]
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(request["body"], request["signature"] or "", SECRET)
    # while the normal copy verifies
    receiver.clear()
    helper(em, f"events/{event_id}/send", {"signature": "valid"})
    assert receiver.events()[0]["id"] == event_id


def test_failed_deliveries_are_retried_and_recorded(client: stripe.StripeClient, em: EmulatorHandle,
                                                    receiver: Receiver) -> None:
    receiver.statuses[:] = [500, 503]
    customer = client.v1.customers.create(params={"email": "retry@example.com"})
    receiver.wait_types("customer.created")
    em.wait_for_deliveries()
    event_id = em.events("customer.created", customer.id)[0]["id"]
    records = helper(em, f"deliveries?event_id={event_id}", method="GET")["data"]
    assert [(r["attempt"], r["status_code"]) for r in records] == [(1, 500), (2, 503), (3, 200)]
    assert client.v1.events.retrieve(event_id).pending_webhooks == 0


def test_sessions_expire(client: stripe.StripeClient, em: EmulatorHandle, receiver: Receiver) -> None:
    session = client.v1.checkout.sessions.create(params={"mode": "payment", "line_items": [price_data_item()]})
    expired = client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.url) == ("expired", None)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)
    assert http("GET", session.url)[0] == 410
    # and by the clock
    later = client.v1.checkout.sessions.create(params={"mode": "payment", "line_items": [price_data_item()],
                                                       "expires_at": int(time.time()) + 3600})
    helper(em, "clock/advance", {"seconds": 3601})
    assert client.v1.checkout.sessions.retrieve(later.id).status == "expired"
    receiver.wait_for(lambda evs: [e["type"] for e in evs].count("checkout.session.expired") == 2)


def test_command_line_entry_point_serves_the_api() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "infra.local.stripe_emulator", "--host", "127.0.0.1",
                             "--port", str(port), "--webhook-url", "http://127.0.0.1:9/none",
                             "--webhook-secret", SECRET], cwd=PROJECT_DIR,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/_emulator/health", timeout_s=20, proc=proc)
        client = stripe.StripeClient(API_KEY, base_addresses={"api": f"http://127.0.0.1:{port}"},
                                     max_network_retries=0)
        assert client.v1.customers.create(params={"name": "CLI"}).id.startswith("cus_")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/webhooks") as response:
            assert json.loads(response.read())["endpoints"][0]["secret"] == SECRET
    finally:
        proc.terminate()
        proc.wait(timeout=10)
