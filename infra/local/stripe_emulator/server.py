"""The HTTP edge: Stripe's ``/v1`` API, the hosted pages and the ``/_emulator`` helpers."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from .core import Emulator, LinkInactive, RequestContext
from .errors import StripeApiError, invalid
from .formdata import parse_body, parse_query
from .pages import checkout_page, message_page
from .schema import validate_params
from .webhooks import SIGNATURE_MODES

Handler = Callable[..., Any]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    params: str  # a stripe.params class, e.g. "checkout.SessionCreateParams"
    run: Handler  # (emulator, params, ctx, *path ids) -> object


def _route(method: str, path: str, params: str, run: Handler) -> Route:
    return Route(method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), params, run)


def _lister(object_type: str, url: str, *filters: str) -> Handler:
    return lambda em, p, ctx: em.list_objects(object_type, p, url, filters)


API_ROUTES: list[Route] = [
    _route("POST", "/v1/customers", "CustomerCreateParams", lambda em, p, ctx: em.create_customer(p, ctx)),
    _route("GET", "/v1/customers", "CustomerListParams", _lister("customer", "/v1/customers", "email")),
    _route("GET", "/v1/customers/{id}", "CustomerRetrieveParams", lambda em, p, ctx, i: em.retrieve("customer", i)),
    _route("POST", "/v1/customers/{id}", "CustomerUpdateParams", lambda em, p, ctx, i: em.update_customer(i, p, ctx)),
    _route("POST", "/v1/products", "ProductCreateParams", lambda em, p, ctx: em.create_product(p, ctx)),
    _route("GET", "/v1/products/{id}", "ProductRetrieveParams", lambda em, p, ctx, i: em.retrieve("product", i)),
    _route("POST", "/v1/products/{id}", "ProductUpdateParams", lambda em, p, ctx, i: em.update_product(i, p, ctx)),
    _route("POST", "/v1/prices", "PriceCreateParams", lambda em, p, ctx: em.create_price(p, ctx)),
    _route("GET", "/v1/prices/{id}", "PriceRetrieveParams", lambda em, p, ctx, i: em.retrieve("price", i)),
    _route("POST", "/v1/prices/{id}", "PriceUpdateParams", lambda em, p, ctx, i: em.update_price(i, p, ctx)),
    _route("POST", "/v1/payment_links", "PaymentLinkCreateParams", lambda em, p, ctx: em.create_payment_link(p, ctx)),
    _route("GET", "/v1/payment_links/{id}", "PaymentLinkRetrieveParams",
           lambda em, p, ctx, i: em.retrieve("payment_link", i)),
    _route("POST", "/v1/payment_links/{id}", "PaymentLinkUpdateParams",
           lambda em, p, ctx, i: em.update_payment_link(i, p, ctx)),
    _route("GET", "/v1/payment_links/{id}/line_items", "PaymentLinkLineItemListParams",
           lambda em, p, ctx, i: em.list_line_items("payment_link", i, p)),
    _route("POST", "/v1/checkout/sessions", "checkout.SessionCreateParams",
           lambda em, p, ctx: em.create_session(p, ctx)),
    _route("GET", "/v1/checkout/sessions", "checkout.SessionListParams",
           _lister("checkout.session", "/v1/checkout/sessions", "customer", "payment_intent", "payment_link",
                   "status")),
    _route("GET", "/v1/checkout/sessions/{id}", "checkout.SessionRetrieveParams",
           lambda em, p, ctx, i: em.retrieve("checkout.session", i)),
    _route("POST", "/v1/checkout/sessions/{id}/expire", "checkout.SessionExpireParams",
           lambda em, p, ctx, i: em.expire_session(i, ctx)),
    _route("GET", "/v1/checkout/sessions/{id}/line_items", "checkout.SessionLineItemListParams",
           lambda em, p, ctx, i: em.list_line_items("checkout.session", i, p)),
    _route("GET", "/v1/setup_intents/{id}", "SetupIntentRetrieveParams",
           lambda em, p, ctx, i: em.retrieve("setup_intent", i)),
    _route("GET", "/v1/payment_methods/{id}", "PaymentMethodRetrieveParams",
           lambda em, p, ctx, i: em.retrieve("payment_method", i, "PaymentMethod")),
    _route("GET", "/v1/mandates/{id}", "MandateRetrieveParams", lambda em, p, ctx, i: em.retrieve("mandate", i)),
    _route("POST", "/v1/payment_intents", "PaymentIntentCreateParams",
           lambda em, p, ctx: em.create_payment_intent(p, ctx)),
    _route("GET", "/v1/payment_intents", "PaymentIntentListParams",
           _lister("payment_intent", "/v1/payment_intents", "customer")),
    _route("GET", "/v1/payment_intents/{id}", "PaymentIntentRetrieveParams",
           lambda em, p, ctx, i: em.retrieve("payment_intent", i)),
    _route("POST", "/v1/payment_intents/{id}", "PaymentIntentUpdateParams",
           lambda em, p, ctx, i: em.update_payment_intent(i, p, ctx)),
    _route("POST", "/v1/payment_intents/{id}/confirm", "PaymentIntentConfirmParams",
           lambda em, p, ctx, i: em.confirm_payment_intent(i, p, ctx)),
    _route("POST", "/v1/payment_intents/{id}/cancel", "PaymentIntentCancelParams",
           lambda em, p, ctx, i: em.cancel_payment_intent(i, p, ctx)),
    _route("GET", "/v1/charges", "ChargeListParams", _lister("charge", "/v1/charges", "customer", "payment_intent")),
    _route("GET", "/v1/charges/{id}", "ChargeRetrieveParams", lambda em, p, ctx, i: em.retrieve("charge", i)),
    _route("POST", "/v1/refunds", "RefundCreateParams", lambda em, p, ctx: em.create_refund(p, ctx)),
    _route("GET", "/v1/refunds", "RefundListParams", _lister("refund", "/v1/refunds", "charge", "payment_intent")),
    _route("GET", "/v1/refunds/{id}", "RefundRetrieveParams", lambda em, p, ctx, i: em.retrieve("refund", i)),
    _route("GET", "/v1/balance_transactions", "BalanceTransactionListParams",
           lambda em, p, ctx: em.list_balance_transactions(p)),
    _route("GET", "/v1/balance_transactions/{id}", "BalanceTransactionRetrieveParams",
           lambda em, p, ctx, i: em.retrieve("balance_transaction", i)),
    _route("GET", "/v1/payouts", "PayoutListParams", _lister("payout", "/v1/payouts", "status")),
    _route("GET", "/v1/payouts/{id}", "PayoutRetrieveParams", lambda em, p, ctx, i: em.retrieve("payout", i)),
    _route("GET", "/v1/disputes", "DisputeListParams",
           _lister("dispute", "/v1/disputes", "charge", "payment_intent")),
    _route("GET", "/v1/disputes/{id}", "DisputeRetrieveParams", lambda em, p, ctx, i: em.retrieve("dispute", i)),
    _route("GET", "/v1/events", "EventListParams", _lister("event", "/v1/events", "type")),
    _route("GET", "/v1/events/{id}", "EventRetrieveParams", lambda em, p, ctx, i: em.retrieve("event", i)),
]


class _HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _auth_error(message: str) -> StripeApiError:
    return StripeApiError(401, message, type="invalid_request_error")


def _api_key(header: str | None) -> str:
    if not header:
        raise _auth_error("You did not provide an API key. You need to provide your API key in the Authorization "
                          "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value).decode().split(":", 1)[0]
        except Exception:  # noqa: BLE001 - malformed basic auth is an invalid key
            value = ""
    elif scheme.lower() != "bearer":
        raise _auth_error("Invalid API Key provided: use Bearer auth.")
    value = value.strip()
    if not re.match(r"^(sk|rk)_test_\w+$", value):
        shown = value[:8] + "*" * max(len(value) - 12, 0) + value[-4:] if len(value) > 12 else "****"
        raise _auth_error(f"Invalid API Key provided: {shown}. The emulator accepts test-mode secret keys "
                          f"(sk_test_...).")
    return value


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-emulator/1.0"
    emulator: Emulator  # set on the subclass made per server
    verbose = False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.verbose:
            super().log_message(format, *args)

    # -- plumbing --------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload, indent=2).encode(), "application/json", headers)

    def _html(self, status: int, page: str) -> None:
        self._send(status, page.encode(), "text/html; charset=utf-8")

    def _redirect(self, location: str) -> None:
        self._send(303, b"", "text/plain", {"Location": location})

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        try:
            if path.startswith("/v1/"):
                self._api(method, path, url.query)
            elif path.startswith("/_emulator"):
                self._helper(method, path, url.query)
            elif path.startswith("/checkout/") or path.startswith("/pay/"):
                self._pages(method, path)
            elif path == "/":
                self._json(200, {"emulator": "stripe", "api_version": self.emulator.api_version,
                                 "helpers": "/_emulator/health"})
            else:
                self._json(404, {"error": {"type": "invalid_request_error",
                                           "message": f"Unrecognized request URL ({method}: {path})."}})
        except BrokenPipeError:
            pass

    # -- /v1 -------------------------------------------------------------------------------
    def _api(self, method: str, path: str, query: str) -> None:
        em = self.emulator
        request_id = "req_" + secrets.token_hex(7)
        headers = {"Request-Id": request_id, "Stripe-Version": self.headers.get("Stripe-Version") or em.api_version}
        try:
            api_key = _api_key(self.headers.get("Authorization"))
            route, ids = self._match(method, path)
            if method == "POST":
                tree, pairs = parse_body(self._body())
            else:
                tree, pairs = parse_query(query)
            params = validate_params(route.params, tree)
            key = self.headers.get("Idempotency-Key") if method == "POST" else None
            ctx = RequestContext(request_id, key)

            def run() -> tuple[int, dict[str, Any]]:
                with em.lock:
                    obj = route.run(em, params, ctx, *ids)
                    return 200, em.render(obj, params.get("expand"))

            if key:
                fingerprint = method + " " + path + "?" + "&".join(f"{k}={v}" for k, v in sorted(pairs))
                status, body, replayed = em.idempotent(api_key, key, fingerprint, run)
                if replayed:
                    headers["Idempotent-Replayed"] = "true"
                headers["Idempotency-Key"] = key
            else:
                status, body = run()
            self._json(status, body, headers)
        except StripeApiError as exc:
            self._json(exc.status, exc.body(), headers)

    def _match(self, method: str, path: str) -> tuple[Route, tuple[str, ...]]:
        path_known = False
        for route in API_ROUTES:
            match = route.pattern.match(path)
            if match:
                path_known = True
                if route.method == method:
                    return route, tuple(match.groups())
        message = (f"Unrecognized request URL ({method}: {path}). The emulator implements only part of the API; "
                   f"see infra/local/stripe_emulator/README.md.")
        raise StripeApiError(404 if not path_known else 405, message)

    # -- hosted pages ----------------------------------------------------------------------
    def _pages(self, method: str, path: str) -> None:
        em = self.emulator
        parts = path.strip("/").split("/")
        if parts[0] == "pay" and len(parts) == 2 and method == "GET":
            try:
                session = em.open_payment_link(parts[1])
            except LinkInactive as exc:
                self._html(410, message_page("This link is no longer active", str(exc)))
                return
            except StripeApiError:
                self._html(404, message_page("Payment link not found", "This payment link does not exist."))
                return
            self._redirect(session["url"])
            return
        if parts[0] != "checkout" or len(parts) not in (2, 3):
            self._html(404, message_page("Not found", "There is nothing here."))
            return
        sid = parts[1]
        try:
            with em.lock:
                session = em.retrieve("checkout.session", sid)
                items = list(em.line_items.get(sid, []))
                snapshot = em.render(session)
        except StripeApiError:
            self._html(404, message_page("Checkout Session not found", "This Checkout Session does not exist."))
            return
        if len(parts) == 3:
            if parts[2] != "complete" or method != "GET":
                self._html(404, message_page("Not found", "There is nothing here."))
                return
            self._confirmation(snapshot)
            return
        if method == "GET":
            if snapshot["status"] == "expired":
                self._html(410, message_page("This Checkout Session has expired",
                                             "Ask the merchant for a new payment link."))
            elif snapshot["status"] == "complete":
                self._confirmation(snapshot)
            else:
                self._html(200, checkout_page(snapshot, items, email=snapshot["customer_email"]))
            return
        if method != "POST":
            self._html(405, message_page("Method not allowed", "Use the buttons on the page."))
            return
        form = dict(parse_qsl(self._body().decode("utf-8"), keep_blank_values=True))
        try:
            result = em.checkout_action(sid, form.get("action", ""), form.get("email") or None,
                                        form.get("name") or None, form.get("iban") or None)
        except StripeApiError as exc:
            self._html(400, message_page("Invalid request", exc.message))
            return
        if result.get("redirect"):
            self._redirect(result["redirect"])
        elif result.get("cancelled"):
            self._html(200, message_page("Payment cancelled", "You can close this page."))
        else:
            with em.lock:
                snapshot = em.render(em.retrieve("checkout.session", sid))
            if snapshot["status"] == "expired":
                self._html(410, message_page("This Checkout Session has expired",
                                             "Ask the merchant for a new payment link."))
                return
            self._html(200, checkout_page(snapshot, items, error=result.get("error"), email=form.get("email"),
                                          name=form.get("name")))

    def _confirmation(self, session: dict[str, Any]) -> None:
        em = self.emulator
        custom = em.meta[session["id"]].get("hosted_message")
        if session["mode"] == "setup":
            title, message = "SEPA mandate set up", "Your SEPA Direct Debit mandate is active."
        elif session["payment_status"] == "paid":
            title, message = "Thanks for your payment", custom or "Your payment succeeded."
        else:
            title, message = "Payment processing", custom or ("Your SEPA Direct Debit payment is processing; it "
                                                               "takes a few business days.")
        self._html(200, message_page(title, message))

    # -- /_emulator ------------------------------------------------------------------------
    def _helper(self, method: str, path: str, query: str) -> None:
        try:
            raw = self._body() if method in ("POST", "DELETE") else b""
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise invalid("The body must be a JSON object.")
            args = dict(parse_qsl(query))
            status, payload = self._helper_route(method, path, body, args)
            self._json(status, payload)
        except json.JSONDecodeError as exc:
            self._json(400, {"error": {"type": "invalid_request_error", "message": f"Invalid JSON body: {exc}"}})
        except StripeApiError as exc:
            self._json(exc.status, exc.body())
        except (KeyError, TypeError, ValueError) as exc:
            self._json(400, {"error": {"type": "invalid_request_error", "message": f"Bad helper request: {exc!r}"}})

    def _helper_route(self, method: str, path: str, body: dict[str, Any], args: dict[str, str]
                      ) -> tuple[int, Any]:
        em = self.emulator
        parts = path.split("/")[2:]  # after "/_emulator"
        route = (method, *parts)
        if route == ("GET", "health"):
            return 200, {"ok": True, "url": em.base_url, "api_version": em.api_version}
        if route[1:] == ("config",) and method in ("GET", "POST"):
            if method == "POST":
                if "sepa_settle_after" in body:
                    value = body["sepa_settle_after"]
                    em.sepa_settle_after = None if value is None else float(value)
                if "retry_delays" in body:
                    em.dispatcher.retry_delays = tuple(float(d) for d in body["retry_delays"])
                if "api_version" in body:
                    em.api_version = str(body["api_version"])
            return 200, {"sepa_settle_after": em.sepa_settle_after, "retry_delays": list(em.dispatcher.retry_delays),
                         "api_version": em.api_version}
        if route == ("POST", "reset"):
            em.reset()
            if body.get("webhooks"):
                em.set_webhook(None)
            return 200, {"ok": True}
        if route == ("POST", "clock", "advance"):
            return 200, {"now": em.advance_clock(float(body["seconds"]))}
        if parts[:1] == ["webhooks"]:
            return self._webhook_helpers(method, parts[1:], body)
        if route == ("GET", "events"):
            events = em.list_events(args.get("type"), args.get("object_id"))
            return 200, {"data": events}
        if route == ("GET", "deliveries"):
            with em.dispatcher._cond:
                records = list(em.dispatcher.deliveries)
            if args.get("event_id"):
                records = [r for r in records if r["event_id"] == args["event_id"]]
            if args.get("type"):
                records = [r for r in records if r["event_type"] == args["type"]]
            return 200, {"data": records}
        if method == "POST" and len(parts) == 3 and parts[0] == "events" and parts[2] == "resend":
            times = int(body.get("times", 1))
            if not 1 <= times <= 50:
                raise invalid("times must be between 1 and 50", "times")
            return 200, {"data": em.resend_event(parts[1], times, bool(body.get("concurrent", False)))}
        if method == "POST" and len(parts) == 3 and parts[0] == "events" and parts[2] == "send":
            mode = body.get("signature", "stale")
            if mode not in SIGNATURE_MODES:
                raise invalid(f"signature must be one of {', '.join(SIGNATURE_MODES)}", "signature")
            return 200, {"data": em.send_event_signed(parts[1], mode, int(body.get("age_seconds", 600)))}
        if method == "POST" and len(parts) == 4 and parts[:2] == ["checkout", "sessions"] and parts[3] == "complete":
            result = em.checkout_action(parts[2], body.get("action", "card_success"), body.get("email"),
                                        body.get("name"), body.get("iban"))
            with em.lock:
                session = em.render(em.retrieve("checkout.session", parts[2]))
            return 200, {**result, "session": session}
        if method == "POST" and len(parts) == 3 and parts[0] == "payment_intents" and parts[2] == "settle":
            pi = em.settle_payment_intent(parts[1], body.get("outcome", "succeed"),
                                          body.get("failure_code", "insufficient_funds"))
            return 200, em.render(pi)
        if route == ("POST", "disputes"):
            dispute = em.create_dispute(body.get("charge"), body.get("payment_intent"), body.get("reason", "general"),
                                        body.get("amount"), body.get("status", "needs_response"))
            return 200, em.render(dispute)
        if method == "POST" and len(parts) == 3 and parts[0] == "disputes" and parts[2] == "close":
            return 200, em.render(em.close_dispute(parts[1], body.get("status", "lost")))
        if route == ("POST", "payouts"):
            payout = em.create_payout(body.get("currency", "eur"), body.get("status", "paid"))
            return 200, em.render(payout)
        raise StripeApiError(404, f"Unknown emulator helper ({method} {path}); see "
                                  f"infra/local/stripe_emulator/README.md.")

    def _webhook_helpers(self, method: str, parts: list[str], body: dict[str, Any]) -> tuple[int, Any]:
        em = self.emulator
        dispatcher = em.dispatcher
        route = (method, *parts)
        if route == ("GET",):
            return 200, {"endpoints": em.webhooks(), "holding": dispatcher._holding, "held": dispatcher.held()}
        if route == ("POST",):
            if "endpoints" in body:
                return 200, {"endpoints": em.set_webhooks(body["endpoints"])}
            em.set_webhook(body["url"], body.get("secret"), body.get("enabled_events"))
            return 200, {"endpoints": em.webhooks()}
        if route == ("DELETE",):
            em.set_webhook(None)
            return 200, {"endpoints": []}
        if route == ("POST", "hold"):
            dispatcher.hold()
            return 200, {"holding": True}
        if route == ("GET", "held"):
            return 200, {"data": dispatcher.held()}
        if route == ("POST", "release"):
            order = body.get("order")
            if order is not None and order != "reverse" and not isinstance(order, list):
                raise invalid('order must be a list of event ids or "reverse"', "order")
            released = dispatcher.release(order)
            idle = dispatcher.wait_idle(float(body.get("timeout", 10))) if body.get("wait") else None
            return 200, {"released": released, "idle": idle}
        if route == ("POST", "wait"):
            return 200, {"idle": dispatcher.wait_idle(float(body.get("timeout", 10)))}
        raise StripeApiError(404, f"Unknown webhook helper ({method} /_emulator/webhooks/{'/'.join(parts)}).")


class EmulatorServer:
    """A running emulator: ``url``, ``emulator`` (the state), ``stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False, **emulator_options: Any) -> None:
        self.emulator = Emulator(**emulator_options)
        handler = type("BoundHandler", (EmulatorRequestHandler,), {"emulator": self.emulator, "verbose": verbose})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self.emulator.base_url = self.url
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="stripe-emulator-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
        self.emulator.close()
