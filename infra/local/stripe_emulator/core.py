"""The emulator's state and business flows (thread-safe: one re-entrant lock guards it all).

API operations take already-validated parameters (see ``schema.py``) and a request
context; they raise ``StripeApiError`` for what Stripe would refuse. Flows that Stripe
runs on its side (the hosted Checkout page, SEPA settlement days later, chargebacks,
payouts) are methods the HTML pages and the ``/_emulator`` helpers call.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import urlparse

from stripe._api_version import _ApiVersion

from . import objects as o
from .errors import StripeApiError, invalid, missing, no_such
from .webhooks import DEFAULT_RETRY_DELAYS, Endpoint, WebhookDispatcher, new_secret

F = TypeVar("F", bound=Callable[..., Any])

SUPPORTED_PAYMENT_METHODS = ("card", "sepa_debit")
MIN_CHARGE = {"eur": 50, "usd": 50, "gbp": 30, "chf": 50, "cad": 50, "aud": 50, "dkk": 250, "nok": 300,
              "sek": 300, "pln": 200, "czk": 1500, "huf": 17500, "ron": 200, "bgn": 100, "jpy": 50}
CURRENCIES = frozenset(MIN_CHARGE) | {"isk", "hrk", "mxn", "brl", "sgd", "hkd", "nzd", "inr", "try", "zar",
                                      "mad", "xof", "xaf", "tnd", "dzd", "ils", "aed", "sar", "cny", "krw"}
ZERO_DECIMAL = {"jpy", "krw", "xof", "xaf", "isk", "huf"}
DISPUTE_REASONS = ("bank_cannot_process", "check_returned", "credit_not_processed", "customer_initiated",
                   "debit_not_authorized", "duplicate", "fraudulent", "general", "incorrect_account_details",
                   "insufficient_funds", "noncompliant", "product_not_received", "product_unacceptable",
                   "subscription_canceled", "unrecognized")
SEPA_FAILURES = {
    "insufficient_funds": "The customer's account has insufficient funds to cover this payment.",
    "account_closed": "The customer's bank account has been closed.",
    "debit_not_authorized": "The customer has notified their bank that this payment was unauthorized.",
    "bank_account_restricted": "The customer's account cannot be used with the payment method.",
    "invalid_account_number": "The account number provided is invalid.",
    "generic_could_not_process": "This payment could not be processed.",
}
CHECKOUT_ACTIONS = {
    "card_success": "Pay by card (succeeds)",
    "card_declined": "Card declined",
    "sepa_success": "Pay by SEPA Direct Debit (succeeds later)",
    "sepa_fail": "SEPA Direct Debit (fails later)",
    "setup_sepa": "Set up SEPA mandate",
    "cancel": "Cancel",
}
DEFAULT_IBAN = "FR1420041010050500013M02606"
_CURRENCY_RE = re.compile(r"^[a-z]{3}$")


def locked(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: "Emulator", *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


@dataclass
class RequestContext:
    request_id: str | None = None
    idempotency_key: str | None = None


class Emulator:
    """All objects, events and flows of one emulated Stripe account (test mode)."""

    def __init__(self, *, api_version: str = _ApiVersion.CURRENT,
                 retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
                 sepa_settle_after: float | None = None, webhook_timeout_s: float = 5.0) -> None:
        self.lock = threading.RLock()
        self.api_version = api_version
        self.base_url = "http://127.0.0.1"
        self.sepa_settle_after = sepa_settle_after
        self.dispatcher = WebhookDispatcher(retry_delays, webhook_timeout_s, on_delivered=self._delivered)
        self._timers: list[threading.Timer] = []
        self._reset_state()

    # == state ============================================================================
    def _reset_state(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.order: dict[str, list[str]] = defaultdict(list)  # object type -> ids, oldest first
        self.meta: dict[str, dict[str, Any]] = defaultdict(dict)  # private side data per object id
        self.line_items: dict[str, list[dict[str, Any]]] = {}
        self.idempotency: dict[tuple[str, str], dict[str, Any]] = {}
        self.clock_offset = 0.0

    @locked
    def reset(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.dispatcher.drop_all()
        self._reset_state()

    def close(self) -> None:
        with self.lock:
            for timer in self._timers:
                timer.cancel()
        self.dispatcher.stop()

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    @locked
    def advance_clock(self, seconds: float) -> int:
        self.clock_offset += seconds
        return self.now()

    def _put(self, obj: dict[str, Any]) -> dict[str, Any]:
        if obj["id"] not in self.objects:
            self.order[obj["object"]].append(obj["id"])
        self.objects[obj["id"]] = obj
        return obj

    def _get(self, object_type: str, object_id: Any, param: str = "id", status: int = 404,
             label: str | None = None) -> dict[str, Any]:
        obj = self.objects.get(object_id) if isinstance(object_id, str) else None
        if obj is None or obj["object"] != object_type:
            raise no_such(label or object_type, str(object_id), param=param, status=status)
        return obj

    def _new(self, prefix: str) -> str:
        while True:
            candidate = o.new_id(prefix)
            if candidate not in self.objects:
                return candidate

    # == webhooks & events ================================================================
    @locked
    def set_webhook(self, url: str | None, secret: str | None = None,
                    enabled_events: list[str] | None = None) -> str | None:
        """Replace the endpoints by one (or none when ``url`` is None); return its secret."""
        if not url:
            self.dispatcher.set_endpoints([])
            return None
        secret = secret or new_secret()
        self.dispatcher.set_endpoints([Endpoint(url, secret, enabled_events or ["*"])])
        return secret

    @locked
    def set_webhooks(self, endpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
        built = [Endpoint(e["url"], e.get("secret") or new_secret(), e.get("enabled_events") or ["*"])
                 for e in endpoints]
        self.dispatcher.set_endpoints(built)
        return [e.public() for e in built]

    def webhooks(self) -> list[dict[str, Any]]:
        return [e.public() for e in self.dispatcher.endpoints]

    def _emit(self, event_type: str, obj: dict[str, Any], ctx: RequestContext | None = None,
              previous: dict[str, Any] | None = None) -> dict[str, Any]:
        pending = len(self.dispatcher.endpoints_for(event_type))
        ctx = ctx or RequestContext()
        event = o.event(self._new("evt_"), self.now(), event_type, copy.deepcopy(obj), self.api_version, pending,
                        ctx.request_id, ctx.idempotency_key, previous)
        self._put(event)
        payload = json.dumps(event, indent=2)
        self.meta[event["id"]]["payload"] = payload
        self.meta[event["id"]]["object_id"] = obj.get("id")
        self.dispatcher.enqueue(event["id"], event_type, payload)
        return event

    def _delivered(self, event_id: str) -> None:
        with self.lock:
            event = self.objects.get(event_id)
            if event is not None and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1

    @locked
    def list_events(self, event_type: str | None = None, object_id: str | None = None) -> list[dict[str, Any]]:
        """Events oldest first, filtered by type (``a.b`` or ``a.*``) and/or data.object id."""
        out = []
        for event_id in self.order["event"]:
            event = self.objects[event_id]
            if event_type and not (event["type"] == event_type or (
                    event_type.endswith(".*") and event["type"].startswith(event_type[:-1]))):
                continue
            if object_id and self.meta[event_id].get("object_id") != object_id:
                continue
            out.append(copy.deepcopy(event))
        return out

    def _event_payload(self, event_id: str) -> tuple[dict[str, Any], str]:
        with self.lock:
            event = self.objects.get(event_id)
            if event is None or event["object"] != "event":
                raise no_such("event", event_id)
            return event, self.meta[event_id]["payload"]

    def resend_event(self, event_id: str, times: int = 1, concurrent: bool = False) -> list[dict[str, Any]]:
        event, payload = self._event_payload(event_id)
        return self.dispatcher.resend(event_id, event["type"], payload, times=times, concurrent=concurrent)

    def send_event_signed(self, event_id: str, signature: str, age_s: int = 600) -> list[dict[str, Any]]:
        event, payload = self._event_payload(event_id)
        return self.dispatcher.resend(event_id, event["type"], payload, signature=signature, age_s=age_s)

    # == expansion & lists ================================================================
    @locked
    def render(self, obj: dict[str, Any], expand: Iterable[str] | None = None) -> dict[str, Any]:
        """A deep copy of ``obj`` with the ``expand`` paths expanded (Stripe allows 4 levels)."""
        out = copy.deepcopy(obj)
        for path in expand or ():
            parts = path.split(".")
            if len(parts) > 4:
                raise invalid(f"You cannot expand more than 4 levels of a property. Property: {path}", "expand")
            self._expand(out, parts, path)
        return out

    def _expand(self, obj: dict[str, Any], parts: list[str], full: str) -> None:
        head, rest = parts[0], parts[1:]
        if obj.get("object") == "list" and head == "data":
            for item in obj["data"]:
                if rest:
                    self._expand(item, rest, full)
            return
        if head == "line_items" and obj.get("object") in ("checkout.session", "payment_link"):
            items = self.line_items.get(obj["id"], [])
            obj[head] = o.list_object(copy.deepcopy(items), f"/v1/checkout/sessions/{obj['id']}/line_items"
                                      if obj["object"] == "checkout.session"
                                      else f"/v1/payment_links/{obj['id']}/line_items")
        elif head not in obj:
            raise invalid(f"This property cannot be expanded ({full}).", "expand", code=None)
        else:
            value = obj[head]
            if isinstance(value, str):
                if value not in self.objects:
                    raise invalid(f"This property cannot be expanded ({full}).", "expand", code=None)
                obj[head] = copy.deepcopy(self.objects[value])
            elif value is not None and not isinstance(value, (dict, list)):
                raise invalid(f"This property cannot be expanded ({full}).", "expand", code=None)
        if rest and isinstance(obj.get(head), dict):
            self._expand(obj[head], rest, full)

    def _list(self, object_type: str, params: dict[str, Any], url: str,
              keep: Callable[[dict[str, Any]], bool] = lambda _: True) -> dict[str, Any]:
        """Newest first, ``limit`` (1..100, default 10), ``starting_after`` / ``ending_before``, ``created``."""
        limit = params.get("limit") or 10
        if not 1 <= limit <= 100:
            raise invalid("Invalid limit: must be between 1 and 100", "limit")
        items = [self.objects[i] for i in reversed(self.order[object_type]) if keep(self.objects[i])]
        created = params.get("created")
        if isinstance(created, int):
            items = [i for i in items if i["created"] == created]
        elif isinstance(created, dict):
            ops = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
            for op, bound in created.items():
                if bound is not None:
                    items = [i for i in items if ops[op](i["created"], int(bound))]
        ids = [i["id"] for i in items]
        if params.get("starting_after"):
            cursor = params["starting_after"]
            if cursor not in ids:
                raise no_such(object_type, cursor, "starting_after", 400)
            items = items[ids.index(cursor) + 1:]
        elif params.get("ending_before"):
            cursor = params["ending_before"]
            if cursor not in ids:
                raise no_such(object_type, cursor, "ending_before", 400)
            items = items[:ids.index(cursor)][-limit:]
        page = items[:limit]
        return o.list_object(page, url, has_more=len(items) > limit)

    # == validation helpers ===============================================================
    @staticmethod
    def _currency(value: Any, param: str = "currency") -> str:
        if not isinstance(value, str) or not _CURRENCY_RE.match(value):
            raise invalid(f"Invalid currency: {value}. Use a three-letter ISO code in lowercase "
                          f"(for example eur).", param, code="parameter_invalid")
        if value not in CURRENCIES:
            raise invalid(f"Invalid currency: {value}. Stripe currently supports these currencies: "
                          f"{', '.join(sorted(CURRENCIES))}", param)
        return value

    @staticmethod
    def _amount(value: Any, param: str, *, allow_zero: bool = False) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero):
            raise invalid(f"Invalid positive integer: {param} must be an integer greater than "
                          f"{'or equal to ' if allow_zero else ''}0.", param, code="parameter_invalid_integer")
        if value > 99_999_999:
            raise StripeApiError(400, "Amount must be no more than 999,999.99", code="amount_too_large",
                                 param=param)
        return value

    @staticmethod
    def _minimum(amount: int, currency: str, param: str) -> None:
        floor = MIN_CHARGE.get(currency, 1)
        if amount < floor:
            raise StripeApiError(400, f"Amount must be at least {fmt_amount(floor, currency)}", code="amount_too_small",
                                 param=param)

    @staticmethod
    def _url(value: Any, param: str) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise invalid("Not a valid URL", param, code="url_invalid")
        return value

    @staticmethod
    def _metadata(target: dict[str, Any], params: dict[str, Any], key: str = "metadata", param: str = "metadata",
                  ) -> None:
        if key not in params:
            return
        given = params[key]
        if given is None:  # metadata="" unsets all keys
            target.clear()
            return
        for k, v in given.items():
            if len(k) > 40:
                raise invalid(f"Metadata keys can have up to 40 characters, but you passed in a key that is "
                              f"{len(k)} characters. Invalid key: {k}", f"{param}[{k}]")
            if v is None or v == "":
                target.pop(k, None)
            elif len(str(v)) > 500:
                raise invalid(f"Metadata values can have up to 500 characters, but you passed in a value that is "
                              f"{len(str(v))} characters.", f"{param}[{k}]")
            else:
                target[k] = str(v)
        if len(target) > 50:
            raise invalid("You can have up to 50 metadata keys.", param)

    def _customer_param(self, value: Any, param: str = "customer") -> dict[str, Any] | None:
        if value is None:
            return None
        return self._get("customer", value, param=param, status=400)

    # == customers ========================================================================
    @locked
    def create_customer(self, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        customer = o.customer(self._new("cus_"), self.now())
        self._apply_customer(customer, p)
        self._put(customer)
        if p.get("payment_method"):
            pm = self._get("payment_method", p["payment_method"], "payment_method", 400, "PaymentMethod")
            pm["customer"] = customer["id"]
        self._emit("customer.created", customer, ctx)
        return customer

    def _apply_customer(self, customer: dict[str, Any], p: dict[str, Any]) -> None:
        for key in ("address", "description", "email", "name", "phone", "shipping", "tax_exempt", "balance",
                    "business_name", "individual_name", "invoice_prefix", "next_invoice_sequence"):
            if key in p:
                customer[key] = p[key]
        if "preferred_locales" in p:
            customer["preferred_locales"] = p["preferred_locales"] or []
        if "invoice_settings" in p and p["invoice_settings"] is not None:
            settings = p["invoice_settings"]
            if settings.get("default_payment_method"):
                self._get("payment_method", settings["default_payment_method"],
                          "invoice_settings[default_payment_method]", 400, "PaymentMethod")
            for key in ("default_payment_method", "footer", "custom_fields", "rendering_options"):
                if key in settings:
                    customer["invoice_settings"][key] = settings[key]
        self._metadata(customer["metadata"], p)

    @locked
    def update_customer(self, cid: str, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        customer = self._get("customer", cid)
        before = copy.deepcopy(customer)
        self._apply_customer(customer, p)
        self._emit_updated("customer.updated", customer, before, ctx)
        return customer

    def _emit_updated(self, event_type: str, obj: dict[str, Any], before: dict[str, Any],
                      ctx: RequestContext | None) -> None:
        previous = {k: v for k, v in before.items() if obj.get(k) != v}
        if previous:
            self._emit(event_type, obj, ctx, previous)

    @locked
    def retrieve(self, object_type: str, object_id: str, label: str | None = None) -> dict[str, Any]:
        obj = self._get(object_type, object_id, label=label)
        if object_type == "checkout.session":
            self._refresh_session(obj)
        return obj

    # == products & prices ================================================================
    @locked
    def create_product(self, p: dict[str, Any], ctx: RequestContext, emit: bool = True) -> dict[str, Any]:
        pid = p.get("id") or self._new("prod_")
        if pid in self.objects:
            raise invalid("Product already exists.", "id", code="resource_already_exists")
        product = o.product(pid, self.now(), p["name"])
        for key in ("active", "description", "images", "shippable", "statement_descriptor", "tax_code",
                    "unit_label", "url"):
            if key in p and p[key] is not None:
                product[key] = p[key]
        self._metadata(product["metadata"], p)
        self._put(product)
        if emit:
            self._emit("product.created", product, ctx)
        if p.get("default_price_data"):
            dpd = p["default_price_data"]
            price = self._create_price_obj(dpd, product, "default_price_data", ctx, emit=emit)
            product["default_price"] = price["id"]
        return product

    @locked
    def update_product(self, pid: str, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        product = self._get("product", pid)
        before = copy.deepcopy(product)
        for key in ("active", "description", "name", "images", "statement_descriptor", "tax_code", "unit_label",
                    "url"):
            if key in p:
                product[key] = p[key]
        if "default_price" in p:
            if p["default_price"] is not None:
                self._get("price", p["default_price"], "default_price", 400)
            product["default_price"] = p["default_price"]
        self._metadata(product["metadata"], p)
        product["updated"] = self.now()
        self._emit_updated("product.updated", product, before, ctx)
        return product

    @locked
    def create_price(self, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        if p.get("product") and p.get("product_data"):
            raise StripeApiError(400, "You may only specify one of these parameters: product, product_data.",
                                 code="parameters_exclusive", param="product")
        if p.get("product"):
            product = self._get("product", p["product"], "product", 400)
        elif p.get("product_data"):
            product = self.create_product(p["product_data"], ctx)
        else:
            raise missing("product")
        return self._create_price_obj(p, product, "", ctx)

    def _create_price_obj(self, p: dict[str, Any], product: dict[str, Any], prefix: str, ctx: RequestContext | None,
                          emit: bool = True, inline: bool = False) -> dict[str, Any]:
        def name(key: str) -> str:
            return f"{prefix}[{key}]" if prefix else key
        currency = self._currency(p.get("currency"), name("currency"))
        unit_amount = p.get("unit_amount")
        if unit_amount is None and p.get("unit_amount_decimal") is not None:
            decimal = str(p["unit_amount_decimal"])
            if not re.match(r"^\d+$", decimal):
                raise invalid("The emulator only supports whole minor units in unit_amount_decimal.",
                              name("unit_amount_decimal"))
            unit_amount = int(decimal)
        if unit_amount is None and not p.get("custom_unit_amount"):
            raise missing(name("unit_amount"))
        if unit_amount is not None:
            self._amount(unit_amount, name("unit_amount"), allow_zero=True)
        price = o.price(self._new("price_"), self.now(), currency, unit_amount, product["id"])
        if inline:
            price["active"] = False
        for key in ("nickname", "lookup_key", "tax_behavior"):
            if p.get(key) is not None:
                price[key] = p[key]
        if "active" in p and p["active"] is not None:
            price["active"] = p["active"]
        if p.get("recurring"):
            recurring = p["recurring"]
            price["type"] = "recurring"
            price["recurring"] = {"interval": recurring.get("interval"),
                                  "interval_count": recurring.get("interval_count") or 1, "meter": None,
                                  "trial_period_days": None, "usage_type": recurring.get("usage_type") or "licensed"}
        self._metadata(price["metadata"], p)
        self._put(price)
        if emit and not inline:
            self._emit("price.created", price, ctx)
        return price

    @locked
    def update_price(self, pid: str, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        price = self._get("price", pid)
        before = copy.deepcopy(price)
        for key in ("active", "nickname", "lookup_key", "tax_behavior"):
            if key in p:
                price[key] = p[key]
        self._metadata(price["metadata"], p)
        self._emit_updated("price.updated", price, before, ctx)
        return price

    # == line items (payment links & checkout) ===========================================
    def _resolve_line_items(self, items: list[dict[str, Any]], mode: str, ctx: RequestContext | None
                            ) -> list[dict[str, Any]]:
        if not items:
            raise missing("line_items")
        if len(items) > 100:
            raise invalid("You can pass up to 100 line_items.", "line_items")
        resolved: list[dict[str, Any]] = []
        currency = None
        for i, item in enumerate(items):
            prefix = f"line_items[{i}]"
            if item.get("price") and item.get("price_data"):
                raise StripeApiError(400, "You may only specify one of these parameters: price, price_data.",
                                     code="parameters_exclusive", param=prefix)
            if item.get("price"):
                price = self._get("price", item["price"], f"{prefix}[price]", 400)
                if not price["active"]:
                    raise invalid(f"The price `{price['id']}` is not available to be purchased because it is "
                                  f"not active.", f"{prefix}[price]")
            elif item.get("price_data"):
                data = item["price_data"]
                if data.get("product") and data.get("product_data"):
                    raise StripeApiError(400, "You may only specify one of these parameters: product, "
                                              "product_data.", code="parameters_exclusive",
                                         param=f"{prefix}[price_data][product]")
                if data.get("product"):
                    product = self._get("product", data["product"], f"{prefix}[price_data][product]", 400)
                elif data.get("product_data"):
                    pd = data["product_data"]
                    if not pd.get("name"):
                        raise missing(f"{prefix}[price_data][product_data][name]")
                    product = self.create_product({**pd, "name": pd["name"]}, ctx or RequestContext(), emit=False)
                else:
                    raise missing(f"{prefix}[price_data][product]")
                price = self._create_price_obj(data, product, f"{prefix}[price_data]", ctx, inline=True)
            else:
                raise invalid(f"You must specify either `price` or `price_data` in {prefix}.", prefix,
                              code="parameter_missing")
            if price["type"] == "recurring" and mode == "payment":
                raise invalid("You specified `payment` mode but passed a recurring price. Either switch to "
                              "`subscription` mode or use only one-time prices.", f"{prefix}[price]")
            if price["unit_amount"] is None:
                raise invalid("The emulator only supports prices with a unit_amount.", f"{prefix}[price]")
            quantity = item.get("quantity")
            if quantity is None:
                raise missing(f"{prefix}[quantity]")
            if quantity < 1:
                raise invalid("Quantity must be greater than 0.", f"{prefix}[quantity]")
            if currency is None:
                currency = price["currency"]
            elif price["currency"] != currency:
                raise invalid("All line items must have the same currency.", f"{prefix}[price]")
            product = self.objects[price["product"]]
            li = o.line_item(self._new("li_"), copy.deepcopy(price), product, quantity)
            self._metadata(li["metadata"], item)
            resolved.append(li)
        return resolved

    def _payment_method_types(self, requested: list[str] | None, excluded: list[str] | None, currency: str | None,
                              param: str) -> list[str]:
        """The computed ``payment_method_types``: the account's dynamic methods (card, plus SEPA in eur)
        filtered by ``requested`` (``allowed_payment_method_types`` silently drops what is not
        compatible or not enabled) minus ``excluded``; an empty result is an error."""
        dynamic = ["card"] + (["sepa_debit"] if currency in (None, "eur") else [])
        types = [t for t in (requested if requested is not None else dynamic)
                 if t in dynamic and t not in (excluded or [])]
        if not types:
            raise invalid(f"None of the requested payment method types can be used here: the emulator offers "
                          f"{', '.join(dynamic)} for currency {currency or 'eur'}.", param,
                          code="payment_method_unactivated")
        return types

    # == payment links ====================================================================
    @locked
    def create_payment_link(self, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        items = self._resolve_line_items(p.get("line_items") or [], "payment", ctx)
        currency = items[0]["currency"]
        if p.get("currency") and self._currency(p["currency"]) != currency:
            raise invalid("The currency must match the currency of the line items.", "currency")
        lid = self._new("plink_")
        link = o.payment_link(lid, f"{self.base_url}/pay/{lid}", currency)
        self._apply_link(link, p)
        self.line_items[lid] = items
        self._put(link)
        self._emit("payment_link.created", link, ctx)
        return link

    def _apply_link(self, link: dict[str, Any], p: dict[str, Any]) -> None:
        if "after_completion" in p and p["after_completion"] is not None:
            ac = p["after_completion"]
            if ac.get("type") == "redirect":
                if not (ac.get("redirect") or {}).get("url"):
                    raise missing("after_completion[redirect]")
                self._url(ac["redirect"]["url"], "after_completion[redirect][url]")
                link["after_completion"] = {"type": "redirect", "redirect": {"url": ac["redirect"]["url"]}}
            elif ac.get("type") == "hosted_confirmation":
                message = (ac.get("hosted_confirmation") or {}).get("custom_message")
                link["after_completion"] = {"type": "hosted_confirmation",
                                            "hosted_confirmation": {"custom_message": message}}
            else:
                raise invalid("Invalid after_completion[type]: must be one of hosted_confirmation, redirect",
                              "after_completion[type]")
        if "payment_intent_data" in p:
            pid = p["payment_intent_data"]
            if pid is None:
                link["payment_intent_data"] = None
            else:
                current = link["payment_intent_data"] or {
                    "capture_method": None, "description": None, "metadata": {}, "setup_future_usage": None,
                    "statement_descriptor": None, "statement_descriptor_suffix": None, "transfer_group": None}
                for key in ("capture_method", "description", "setup_future_usage", "statement_descriptor",
                            "statement_descriptor_suffix", "transfer_group"):
                    if key in pid:
                        current[key] = pid[key]
                self._metadata(current["metadata"], pid, param="payment_intent_data[metadata]")
                link["payment_intent_data"] = current
        if "payment_method_types" in p:
            types = p["payment_method_types"]
            for i, kind in enumerate(types or []):
                if kind not in SUPPORTED_PAYMENT_METHODS:
                    raise invalid(f"The payment method type `{kind}` is not emulated: the emulator supports "
                                  f"{', '.join(SUPPORTED_PAYMENT_METHODS)}.", f"payment_method_types[{i}]")
                if kind == "sepa_debit" and link["currency"] != "eur":
                    raise invalid(f"The payment method `sepa_debit` only supports `eur`; this link uses "
                                  f"`{link['currency']}`.", f"payment_method_types[{i}]")
            link["payment_method_types"] = types
        for key in ("active", "inactive_message", "customer_creation", "submit_type", "allow_promotion_codes",
                    "billing_address_collection", "custom_fields", "custom_text", "phone_number_collection",
                    "tax_id_collection", "payment_method_collection"):
            if key in p and p[key] is not None:
                link[key] = p[key] if not isinstance(link.get(key), dict) or not isinstance(p[key], dict) \
                    else {**link[key], **p[key]}
        if "restrictions" in p:
            r = p["restrictions"]
            link["restrictions"] = None if r is None else {"completed_sessions": {
                "count": (link["restrictions"] or {}).get("completed_sessions", {}).get("count", 0),
                "limit": r["completed_sessions"]["limit"]}}
        if "invoice_creation" in p and p["invoice_creation"] is not None:
            link["invoice_creation"]["enabled"] = bool(p["invoice_creation"].get("enabled"))
        self._metadata(link["metadata"], p)

    @locked
    def update_payment_link(self, lid: str, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        link = self._get("payment_link", lid)
        before = copy.deepcopy(link)
        self._apply_link(link, p)
        for i, update in enumerate(p.get("line_items") or []):
            match = next((li for li in self.line_items[lid] if li["id"] == update["id"]), None)
            if match is None:
                raise no_such("line item", update["id"], f"line_items[{i}][id]", 400)
            if update.get("quantity") is not None:
                match["quantity"] = update["quantity"]
                amount = (match["price"]["unit_amount"] or 0) * update["quantity"]
                match.update(amount_subtotal=amount, amount_total=amount)
        self._emit_updated("payment_link.updated", link, before, ctx)
        return link

    @locked
    def list_line_items(self, owner_type: str, owner_id: str, p: dict[str, Any]) -> dict[str, Any]:
        self._get(owner_type, owner_id)
        items = copy.deepcopy(self.line_items.get(owner_id, []))
        limit = p.get("limit") or 10
        base = "/v1/checkout/sessions" if owner_type == "checkout.session" else "/v1/payment_links"
        return o.list_object(items[:limit], f"{base}/{owner_id}/line_items", has_more=len(items) > limit)

    @locked
    def open_payment_link(self, lid: str) -> dict[str, Any]:
        """What visiting the link's URL does: a new Checkout Session from the link."""
        link = self._get("payment_link", lid)
        if not link["active"]:
            raise LinkInactive(link["inactive_message"] or "This link is no longer active.")
        restrictions = link["restrictions"]
        if restrictions and restrictions["completed_sessions"]["count"] >= restrictions["completed_sessions"]["limit"]:
            raise LinkInactive(link["inactive_message"] or "This link is no longer accepting payments.")
        now = self.now()
        sid = self._new("cs_test_")
        session = o.checkout_session(sid, now, now + 86400, "payment", f"{self.base_url}/checkout/{sid}")
        items = []
        for li in self.line_items[lid]:
            copy_li = copy.deepcopy(li)
            copy_li["id"] = self._new("li_")
            items.append(copy_li)
        self.line_items[sid] = items
        total = sum(li["amount_total"] for li in items)
        session.update(currency=link["currency"], amount_subtotal=total, amount_total=total, payment_link=lid,
                       metadata=copy.deepcopy(link["metadata"]), customer_creation=link["customer_creation"],
                       submit_type=link["submit_type"], billing_address_collection=link["billing_address_collection"],
                       payment_method_collection=link["payment_method_collection"],
                       allowed_payment_method_types=link["payment_method_types"])
        session["payment_method_types"] = self._payment_method_types(link["payment_method_types"], None,
                                                                     link["currency"], "payment_method_types")
        if link["after_completion"]["type"] == "redirect":
            session["success_url"] = link["after_completion"]["redirect"]["url"]
        self.meta[sid]["payment_intent_data"] = copy.deepcopy(link["payment_intent_data"] or {})
        self.meta[sid]["hosted_message"] = (link["after_completion"].get("hosted_confirmation") or {}).get(
            "custom_message")
        self._put(session)
        return session

    # == checkout sessions ================================================================
    @locked
    def create_session(self, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        mode = p.get("mode")
        if mode is None:
            raise missing("mode")
        if mode not in ("payment", "setup"):
            raise invalid(f"mode={mode} is not emulated: the emulator supports payment and setup.", "mode")
        customer = self._customer_param(p.get("customer"))
        if customer is not None and p.get("customer_email"):
            raise StripeApiError(400, "You may only specify one of these parameters: customer, customer_email.",
                                 code="parameters_exclusive", param="customer_email")
        now = self.now()
        expires_at = p.get("expires_at")
        if expires_at is not None:
            if expires_at - now < 1800:
                raise invalid("The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
                              "creation.", "expires_at")
            if expires_at - now > 86400:
                raise invalid("The `expires_at` timestamp must be less than 24 hours from Checkout Session "
                              "creation.", "expires_at")
        success_url = self._url(p.get("success_url"), "success_url")
        cancel_url = self._url(p.get("cancel_url"), "cancel_url")
        ui_mode = p.get("ui_mode") or "hosted_page"
        if ui_mode != "hosted_page":
            raise invalid(f"ui_mode={ui_mode} is not emulated: the emulator serves hosted pages only.", "ui_mode")
        currency = self._currency(p["currency"]) if p.get("currency") else None
        items: list[dict[str, Any]] = []
        if mode == "payment":
            if p.get("setup_intent_data") is not None:
                raise invalid("You can only pass in setup_intent_data in setup mode.", "setup_intent_data")
            if not p.get("line_items"):
                raise missing("line_items")
            items = self._resolve_line_items(p["line_items"], "payment", ctx)
            if currency is not None and currency != items[0]["currency"]:
                raise invalid("The currency must match the currency of the line items.", "currency")
            currency = items[0]["currency"]
            total = sum(li["amount_total"] for li in items)
            self._minimum(total, currency, "line_items")
        else:
            if p.get("line_items"):
                raise invalid("You cannot pass `line_items` in `setup` mode.", "line_items")
            if p.get("payment_intent_data") is not None:
                raise invalid("You can only pass in payment_intent_data in payment mode.", "payment_intent_data")
            if p.get("customer_creation") is not None:
                raise invalid("customer_creation can only be used in payment mode.", "customer_creation")
            if currency is None and not p.get("allowed_payment_method_types"):
                raise StripeApiError(400, "Missing required param: currency. In setup mode, currency is required "
                                          "when allowed_payment_method_types is not set.",
                                     code="parameter_missing", param="currency")
        types = self._payment_method_types(p.get("allowed_payment_method_types"),
                                           p.get("excluded_payment_method_types"), currency,
                                           "allowed_payment_method_types")
        sid = self._new("cs_test_")
        session = o.checkout_session(sid, now, expires_at or now + 86400, mode, f"{self.base_url}/checkout/{sid}")
        session.update(
            currency=currency, customer=customer["id"] if customer else None, customer_email=p.get("customer_email"),
            success_url=success_url, cancel_url=cancel_url, client_reference_id=p.get("client_reference_id"),
            locale=p.get("locale"), payment_method_types=types,
            allowed_payment_method_types=p.get("allowed_payment_method_types"),
            excluded_payment_method_types=p.get("excluded_payment_method_types"),
        )
        if mode == "payment":
            total = sum(li["amount_total"] for li in items)
            session.update(amount_subtotal=total, amount_total=total,
                           customer_creation=p.get("customer_creation") or "if_required",
                           submit_type=p.get("submit_type"))
        for key in ("billing_address_collection", "custom_text", "phone_number_collection", "tax_id_collection",
                    "allow_promotion_codes", "consent_collection", "payment_method_collection",
                    "saved_payment_method_options", "after_expiration"):
            if p.get(key) is not None:
                session[key] = p[key] if not isinstance(session.get(key), dict) else {**session[key], **p[key]}
        self._metadata(session["metadata"], p)
        pid = p.get("payment_intent_data") or {}
        self._metadata({}, pid, param="payment_intent_data[metadata]")  # validate limits
        sid_data = p.get("setup_intent_data") or {}
        self.meta[sid]["payment_intent_data"] = copy.deepcopy(pid)
        self.meta[sid]["setup_intent_data"] = copy.deepcopy(sid_data)
        self.line_items[sid] = items
        self._put(session)
        return session

    def _refresh_session(self, session: dict[str, Any]) -> None:
        if session["status"] == "open" and self.now() >= session["expires_at"]:
            self._expire(session, None)

    def _expire(self, session: dict[str, Any], ctx: RequestContext | None) -> None:
        session.update(status="expired", url=None)
        self._emit("checkout.session.expired", session, ctx)

    @locked
    def expire_session(self, sid: str, ctx: RequestContext) -> dict[str, Any]:
        session = self._get("checkout.session", sid)
        self._refresh_session(session)
        if session["status"] != "open":
            raise invalid('Only Checkout Sessions with a status in ["open"] can be expired.', None, code=None)
        self._expire(session, ctx)
        return session

    def success_redirect(self, session: dict[str, Any]) -> str:
        if session["success_url"]:
            return session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
        return f"{self.base_url}/checkout/{session['id']}/complete"

    @locked
    def checkout_action(self, sid: str, action: str, email: str | None = None, name: str | None = None,
                        iban: str | None = None) -> dict[str, Any]:
        """A button on the hosted page: returns ``{"redirect": url}`` or ``{"error": message}``."""
        session = self._get("checkout.session", sid)
        self._refresh_session(session)
        if action not in CHECKOUT_ACTIONS:
            raise invalid(f"Unknown action {action!r}; use one of {', '.join(CHECKOUT_ACTIONS)}", "action")
        if action == "cancel":
            return {"redirect": session["cancel_url"], "cancelled": True}
        if session["status"] == "expired":
            return {"error": "This Checkout Session has expired."}
        if session["status"] == "complete":
            return {"redirect": self.success_redirect(session), "already_complete": True}
        email = email or session["customer_email"] or (
            self.objects[session["customer"]]["email"] if session["customer"] else None) or "customer@example.com"
        name = name or (self.objects[session["customer"]]["name"] if session["customer"] else None) or "Jenny Rosen"
        iban = (iban or DEFAULT_IBAN).replace(" ", "").upper()
        if not re.match(r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$", iban):
            return {"error": "The IBAN you entered is invalid."}
        if session["mode"] == "setup":
            if action != "setup_sepa":
                return {"error": "This action is not available in setup mode."}
            if "sepa_debit" not in session["payment_method_types"]:
                return {"error": "SEPA Direct Debit is not enabled for this Checkout Session."}
            self._complete_setup(session, email, name, iban)
            return {"redirect": self.success_redirect(session)}
        kind = "card" if action.startswith("card") else "sepa_debit"
        if action == "setup_sepa" or kind not in session["payment_method_types"]:
            return {"error": "This payment method is not enabled for this Checkout Session."}
        pi = self._session_payment_intent(session)
        session["customer_details"] = o.customer_details(email, name)
        if action == "card_declined":
            pm = self._new_pm("card", email, name, declined=True)
            self._card_decline(pi, pm, None)
            return {"error": "Your card was declined."}
        if session["customer"] is None and session["customer_creation"] == "always":
            customer = o.customer(self._new("cus_"), self.now())
            customer.update(email=email, name=name)
            self._put(customer)
            self._emit("customer.created", customer)
            session["customer"] = pi["customer"] = customer["id"]
        if kind == "card":
            pm = self._new_pm("card", email, name)
            self._attach_if_saving(pi, pm)
            charge = self._card_charge(pi, pm)
            session.update(status="complete", payment_status="paid", url=None)
            self._count_link_completion(session)
            self._emit("checkout.session.completed", session)
            self._emit("payment_intent.succeeded", pi)
            self._emit("charge.succeeded", charge)
        else:
            pm = self._new_pm("sepa_debit", email, name, iban=iban)
            self._attach_if_saving(pi, pm)
            multi = pi["setup_future_usage"] is not None
            mandate = self._new_mandate(pm, multi, pi["amount"], pi["currency"])
            charge = self._sepa_pending(pi, pm, mandate)
            self.meta[pi["id"]]["outcome"] = "fail" if action == "sepa_fail" else "succeed"
            session.update(status="complete", payment_status="unpaid", url=None)
            self._count_link_completion(session)
            self._emit("checkout.session.completed", session)
            self._emit("payment_intent.processing", pi)
            self._emit("charge.pending", charge)
            self._schedule_settlement(pi["id"])
        return {"redirect": self.success_redirect(session)}

    def _count_link_completion(self, session: dict[str, Any]) -> None:
        link = self.objects.get(session["payment_link"] or "")
        if link and link["restrictions"]:
            link["restrictions"]["completed_sessions"]["count"] += 1

    def _session_payment_intent(self, session: dict[str, Any]) -> dict[str, Any]:
        if session["payment_intent"]:
            return self.objects[session["payment_intent"]]
        data = self.meta[session["id"]].get("payment_intent_data") or {}
        pi = o.payment_intent(self._new("pi_"), self.now(), session["amount_total"], session["currency"])
        pi.update(customer=session["customer"], description=data.get("description"),
                  payment_method_types=list(session["payment_method_types"]),
                  setup_future_usage=data.get("setup_future_usage"),
                  statement_descriptor=data.get("statement_descriptor"),
                  statement_descriptor_suffix=data.get("statement_descriptor_suffix"),
                  receipt_email=data.get("receipt_email"), transfer_group=data.get("transfer_group"),
                  capture_method=data.get("capture_method") or "automatic")
        pi["metadata"] = copy.deepcopy(data.get("metadata") or {})
        self._put(pi)
        self.meta[pi["id"]]["session"] = session["id"]
        session["payment_intent"] = pi["id"]
        self._emit("payment_intent.created", pi)
        return pi

    def _new_pm(self, kind: str, email: str | None, name: str | None, *, iban: str = DEFAULT_IBAN,
                declined: bool = False) -> dict[str, Any]:
        pm = o.payment_method(self._new("pm_"), self.now(), kind, email, name, iban)
        if declined:
            pm["card"]["last4"] = "0002"
            self.meta[pm["id"]]["declined"] = True
        return self._put(pm)

    def _attach_if_saving(self, pi: dict[str, Any], pm: dict[str, Any]) -> None:
        if pi["setup_future_usage"] and pi["customer"]:
            pm["customer"] = pi["customer"]
            self._emit("payment_method.attached", pm)

    def _new_mandate(self, pm: dict[str, Any], multi_use: bool, amount: int | None = None,
                     currency: str | None = None) -> dict[str, Any]:
        mandate = o.mandate(self._new("mandate_"), pm["id"], self.now(), multi_use, amount, currency)
        self.meta[pm["id"]]["mandate"] = mandate["id"]
        return self._put(mandate)

    def _balance_txn(self, amount: int, currency: str, fee: int, source: str, kind: str, category: str,
                     description: str | None, fee_description: str = "Stripe processing fees") -> dict[str, Any]:
        txn = o.balance_transaction(self._new("txn_"), self.now(), amount, currency, fee, source, kind, category,
                                    description, fee_description)
        return self._put(txn)

    def _card_charge(self, pi: dict[str, Any], pm: dict[str, Any]) -> dict[str, Any]:
        charge = self._put(o.charge(self._new("ch_"), self.now(), pi, pm, "succeeded"))
        txn = self._balance_txn(pi["amount"], pi["currency"], o.card_fee(pi["amount"]), charge["id"], "charge",
                                "charge", pi["description"])
        charge["balance_transaction"] = txn["id"]
        pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=charge["id"],
                  payment_method=pm["id"], last_payment_error=None)
        return charge

    def _card_decline(self, pi: dict[str, Any], pm: dict[str, Any], ctx: RequestContext | None) -> dict[str, Any]:
        charge = self._put(o.charge(self._new("ch_"), self.now(), pi, pm, "failed"))
        charge.update(failure_code="card_declined", failure_message="Your card was declined.", paid=False,
                      outcome={"advice_code": "try_again_later", "network_advice_code": None,
                               "network_decline_code": "05", "network_status": "declined_by_network",
                               "reason": "generic_decline", "risk_level": "normal",
                               "seller_message": "The bank did not return any further details with this decline.",
                               "type": "issuer_declined"})
        pi.update(status="requires_payment_method", latest_charge=charge["id"], payment_method=None,
                  last_payment_error={
                      "advice_code": "try_again_later", "charge": charge["id"], "code": "card_declined",
                      "decline_code": "generic_decline",
                      "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                      "message": "Your card was declined.", "network_decline_code": "05",
                      "payment_method": copy.deepcopy(pm), "type": "card_error"})
        self._emit("charge.failed", charge, ctx)
        self._emit("payment_intent.payment_failed", pi, ctx)
        return charge

    def _sepa_pending(self, pi: dict[str, Any], pm: dict[str, Any], mandate: dict[str, Any]) -> dict[str, Any]:
        charge = self._put(o.charge(self._new("ch_"), self.now(), pi, pm, "pending"))
        charge["payment_method_details"]["sepa_debit"]["mandate"] = mandate["id"]
        charge["payment_method_details"]["sepa_debit"]["expected_debit_date"] = time.strftime(
            "%Y-%m-%d", time.gmtime(self.now() + 2 * 86400))
        charge["outcome"]["seller_message"] = "Payment is pending."
        pi.update(status="processing", latest_charge=charge["id"], payment_method=pm["id"], last_payment_error=None)
        return charge

    def _complete_setup(self, session: dict[str, Any], email: str, name: str, iban: str) -> None:
        data = self.meta[session["id"]].get("setup_intent_data") or {}
        customer_id = session["customer"]
        if customer_id is None:
            customer = o.customer(self._new("cus_"), self.now())
            customer.update(email=email, name=name)
            self._put(customer)
            self._emit("customer.created", customer)
            customer_id = customer["id"]
        seti = o.setup_intent(self._new("seti_"), self.now())
        seti.update(customer=customer_id, description=data.get("description"), payment_method_types=["sepa_debit"])
        seti["metadata"] = copy.deepcopy(data.get("metadata") or {})
        self._put(seti)
        self._emit("setup_intent.created", seti)
        pm = self._new_pm("sepa_debit", email, name, iban=iban)
        pm["customer"] = customer_id
        self._emit("payment_method.attached", pm)
        mandate = self._new_mandate(pm, True)
        seti.update(status="succeeded", payment_method=pm["id"], mandate=mandate["id"])
        session.update(status="complete", setup_intent=seti["id"], customer=customer_id, url=None,
                       customer_details=o.customer_details(email, name))
        self._emit("checkout.session.completed", session)
        self._emit("setup_intent.succeeded", seti)
        self._emit("mandate.updated", mandate, previous={"status": "pending"})

    # == SEPA settlement ==================================================================
    def _schedule_settlement(self, pi_id: str) -> None:
        if self.sepa_settle_after is None:
            return

        def fire() -> None:
            try:
                with self.lock:
                    pi = self.objects.get(pi_id)
                    if pi is None or pi["status"] != "processing":
                        return
                    outcome = self.meta[pi_id].get("outcome", "succeed")
                self.settle_payment_intent(pi_id, outcome)
            except Exception:  # noqa: BLE001 - state reset meanwhile: nothing to settle
                pass
        timer = threading.Timer(self.sepa_settle_after, fire)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    @locked
    def settle_payment_intent(self, pi_id: str, outcome: str | None = None, failure_code: str = "insufficient_funds",
                              ctx: RequestContext | None = None) -> dict[str, Any]:
        """A processing (SEPA) PaymentIntent succeeds or fails, as the bank answers days later."""
        pi = self._get("payment_intent", pi_id)
        if pi["status"] != "processing":
            raise invalid(f"PaymentIntent {pi_id} is not processing (status: {pi['status']}).", "payment_intent",
                          code="payment_intent_unexpected_state")
        outcome = outcome or self.meta[pi_id].get("outcome", "succeed")
        if outcome not in ("succeed", "fail"):
            raise invalid("outcome must be succeed or fail", "outcome")
        if outcome == "fail" and failure_code not in SEPA_FAILURES:
            raise invalid(f"failure_code must be one of {', '.join(SEPA_FAILURES)}", "failure_code")
        charge = self.objects[pi["latest_charge"]]
        session = self.objects.get(self.meta[pi_id].get("session", ""))
        if outcome == "succeed":
            txn = self._balance_txn(pi["amount"], pi["currency"], o.SEPA_FEE_FIXED, charge["id"], "payment",
                                    "charge", pi["description"])
            charge.update(status="succeeded", paid=True, captured=True, amount_captured=charge["amount"],
                          balance_transaction=txn["id"])
            charge["outcome"]["seller_message"] = "Payment complete."
            pi.update(status="succeeded", amount_received=pi["amount"])
            if session is not None:
                session["payment_status"] = "paid"
                self._emit("checkout.session.async_payment_succeeded", session, ctx)
            self._emit("payment_intent.succeeded", pi, ctx)
            self._emit("charge.succeeded", charge, ctx)
        else:
            message = SEPA_FAILURES[failure_code]
            charge.update(status="failed", paid=False, failure_code=failure_code, failure_message=message)
            charge["outcome"].update(network_status="declined_by_network", type="issuer_declined",
                                     seller_message=message, reason=failure_code)
            pm = self.objects[pi["payment_method"]]
            pi.update(status="requires_payment_method", payment_method=None, last_payment_error={
                "charge": charge["id"], "code": failure_code, "decline_code": None,
                "doc_url": f"https://stripe.com/docs/error-codes/{failure_code.replace('_', '-')}",
                "message": message, "payment_method": copy.deepcopy(pm), "type": "card_error"})
            if session is not None:
                self._emit("checkout.session.async_payment_failed", session, ctx)
            self._emit("payment_intent.payment_failed", pi, ctx)
            self._emit("charge.failed", charge, ctx)
        return pi

    # == payment intents ==================================================================
    @locked
    def create_payment_intent(self, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        currency = self._currency(p["currency"])
        amount = self._amount(p["amount"], "amount")
        self._minimum(amount, currency, "amount")
        customer = self._customer_param(p.get("customer"))
        if not p.get("confirm"):
            for key in ("off_session", "mandate", "mandate_data"):
                if p.get(key) not in (None, False):
                    raise invalid(f"You can only pass `{key}` when `confirm` is true.", key)
        allowed = p.get("allowed_payment_method_types")
        if allowed is not None and p.get("excluded_payment_method_types") is not None:
            raise StripeApiError(400, "You may only specify one of these parameters: allowed_payment_method_types, "
                                      "excluded_payment_method_types.", code="parameters_exclusive",
                                 param="allowed_payment_method_types")
        pm = None
        if p.get("payment_method"):
            pm = self._get("payment_method", p["payment_method"], "payment_method", 400, "PaymentMethod")
        pi = o.payment_intent(self._new("pi_"), self.now(), amount, currency)
        pi.update(customer=customer["id"] if customer else None, description=p.get("description"),
                  receipt_email=p.get("receipt_email"), statement_descriptor=p.get("statement_descriptor"),
                  statement_descriptor_suffix=p.get("statement_descriptor_suffix"),
                  setup_future_usage=p.get("setup_future_usage"), transfer_group=p.get("transfer_group"),
                  capture_method=p.get("capture_method") or "automatic", allowed_payment_method_types=allowed,
                  excluded_payment_method_types=p.get("excluded_payment_method_types"))
        pi["payment_method_types"] = self._payment_method_types(allowed, p.get("excluded_payment_method_types"),
                                                                currency, "allowed_payment_method_types")
        if pi["capture_method"] != "automatic":
            raise invalid("The emulator only supports capture_method=automatic.", "capture_method")
        self._metadata(pi["metadata"], p)
        if p.get("confirm"):
            self._check_confirm(pi, pm, p, customer)  # before anything is stored: a 400 leaves no trace
        self._put(pi)
        if pm is not None:
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
        self._emit("payment_intent.created", pi, ctx)
        if p.get("confirm"):
            self._confirm(pi, pm, p, ctx)
        return pi

    def _resolve_pm_for_confirm(self, pi: dict[str, Any], pm: dict[str, Any] | None,
                                customer: dict[str, Any] | None) -> dict[str, Any]:
        if pm is None and customer is not None and customer["invoice_settings"]["default_payment_method"]:
            pm = self.objects[customer["invoice_settings"]["default_payment_method"]]
        if pm is None:
            raise StripeApiError(400, "You cannot confirm this PaymentIntent because it's missing a payment method. "
                                      "To confirm the PaymentIntent with a customer, pass a payment_method.",
                                 code="payment_intent_unexpected_state", param="payment_method")
        return pm

    def _check_confirm(self, pi: dict[str, Any], pm: dict[str, Any] | None, p: dict[str, Any],
                       customer: dict[str, Any] | None) -> None:
        pm = self._resolve_pm_for_confirm(pi, pm, customer)
        if pm["customer"] and pi["customer"] and pm["customer"] != pi["customer"]:
            raise invalid("The provided PaymentMethod belongs to a different Customer.", "payment_method")
        if pi["customer"] is None and pm["customer"] is not None:
            raise invalid("The provided PaymentMethod was previously attached to a Customer; pass the customer "
                          "parameter too.", "customer")
        if pm["type"] not in pi["payment_method_types"]:
            raise invalid(f"The PaymentMethod provided ({pm['type']}) is not allowed for this PaymentIntent. "
                          f"Allowed: {', '.join(pi['payment_method_types'])}.", "payment_method",
                          code="payment_intent_incompatible_payment_method")
        if pm["type"] == "sepa_debit":
            if pi["currency"] != "eur":
                raise invalid("The payment method `sepa_debit` only supports `eur`.", "currency")
            mandate = self._mandate_for(pm, p)
            if mandate is None and p.get("off_session"):
                raise invalid("A mandate is required to confirm an off-session SEPA Direct Debit PaymentIntent: "
                              "pass `mandate` or a PaymentMethod set up with a mandate.", "mandate", code=None)
            if mandate is None and not p.get("mandate_data"):
                raise missing("mandate_data")

    def _mandate_for(self, pm: dict[str, Any], p: dict[str, Any]) -> dict[str, Any] | None:
        if p.get("mandate"):
            mandate = self._get("mandate", p["mandate"], "mandate", 400)
            if mandate["payment_method"] != pm["id"]:
                raise invalid(f"The mandate {mandate['id']} does not belong to the PaymentMethod {pm['id']}.",
                              "mandate")
            if mandate["status"] != "active":
                raise invalid(f"The mandate {mandate['id']} is {mandate['status']}, not active.", "mandate")
            return mandate
        mandate_id = self.meta[pm["id"]].get("mandate")
        mandate = self.objects.get(mandate_id or "")
        if mandate is not None and mandate["status"] == "active" and mandate["type"] == "multi_use":
            return mandate
        return None

    def _confirm(self, pi: dict[str, Any], pm: dict[str, Any] | None, p: dict[str, Any], ctx: RequestContext) -> None:
        customer = self.objects.get(pi["customer"] or "")
        pm = self._resolve_pm_for_confirm(pi, pm, customer)
        if pm["type"] == "card":
            if self.meta[pm["id"]].get("declined"):
                charge = self._card_decline(pi, pm, ctx)
                raise StripeApiError(402, "Your card was declined.", type="card_error", code="card_declined",
                                     cacheable=True, decline_code="generic_decline", charge=charge["id"],
                                     payment_intent=copy.deepcopy(pi), payment_method=copy.deepcopy(pm))
            charge = self._card_charge(pi, pm)
            self._emit("payment_intent.succeeded", pi, ctx)
            self._emit("charge.succeeded", charge, ctx)
            return
        mandate = self._mandate_for(pm, p)
        if mandate is None:  # mandate_data: an online single-use mandate accepted now
            mandate = self._new_mandate(pm, pi["setup_future_usage"] is not None, pi["amount"], pi["currency"])
        charge = self._sepa_pending(pi, pm, mandate)
        self.meta[pi["id"]].setdefault("outcome", "succeed")
        self._emit("payment_intent.processing", pi, ctx)
        self._emit("charge.pending", charge, ctx)
        self._schedule_settlement(pi["id"])

    @locked
    def confirm_payment_intent(self, pi_id: str, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        pi = self._get("payment_intent", pi_id)
        if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise StripeApiError(400, f"You cannot confirm this PaymentIntent because it has a status of "
                                      f"{pi['status']}.", code="payment_intent_unexpected_state",
                                 payment_intent=copy.deepcopy(pi))
        pm = None
        if p.get("payment_method"):
            pm = self._get("payment_method", p["payment_method"], "payment_method", 400, "PaymentMethod")
        elif pi["payment_method"]:
            pm = self.objects[pi["payment_method"]]
        customer = self.objects.get(pi["customer"] or "")
        self._check_confirm(pi, pm, p, customer)
        if p.get("setup_future_usage") is not None:
            pi["setup_future_usage"] = p["setup_future_usage"]
        self._confirm(pi, pm, p, ctx)
        return pi

    @locked
    def cancel_payment_intent(self, pi_id: str, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        pi = self._get("payment_intent", pi_id)
        if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action",
                                "requires_capture"):
            raise StripeApiError(400, f"You cannot cancel this PaymentIntent because it has a status of "
                                      f"{pi['status']}. Only a PaymentIntent with one of the following statuses may "
                                      f"be canceled: requires_payment_method, requires_capture, "
                                      f"requires_confirmation, requires_action.",
                                 code="payment_intent_unexpected_state")
        pi.update(status="canceled", canceled_at=self.now(),
                  cancellation_reason=p.get("cancellation_reason") or "requested_by_customer")
        self._emit("payment_intent.canceled", pi, ctx)
        return pi

    @locked
    def update_payment_intent(self, pi_id: str, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        pi = self._get("payment_intent", pi_id)
        for key in ("description", "receipt_email", "statement_descriptor", "statement_descriptor_suffix",
                    "transfer_group"):
            if key in p:
                pi[key] = p[key]
        if "amount" in p and p["amount"] is not None:
            if pi["status"] not in ("requires_payment_method", "requires_confirmation"):
                raise StripeApiError(400, "The amount can only be updated before the PaymentIntent is confirmed.",
                                     code="payment_intent_unexpected_state", param="amount")
            pi["amount"] = self._amount(p["amount"], "amount")
        self._metadata(pi["metadata"], p)
        return pi

    # == refunds ==========================================================================
    @locked
    def create_refund(self, p: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        if not p.get("charge") and not p.get("payment_intent"):
            raise StripeApiError(400, "One of the following params should be provided for this request: "
                                      "payment_intent or charge.", code="parameter_missing", param="charge")
        if p.get("charge"):
            charge = self._get("charge", p["charge"], "charge", 400)
            if p.get("payment_intent") and charge["payment_intent"] != p["payment_intent"]:
                raise invalid("The charge does not belong to the given payment_intent.", "payment_intent")
        else:
            pi = self._get("payment_intent", p["payment_intent"], "payment_intent", 400)
            if pi["status"] != "succeeded" or not pi["latest_charge"]:
                raise StripeApiError(400, f"This PaymentIntent ({pi['id']}) does not have a successful charge to "
                                          f"refund.", code="charge_not_refundable", param="payment_intent")
            charge = self.objects[pi["latest_charge"]]
        if charge["status"] != "succeeded":
            raise invalid(f"Charge {charge['id']} cannot be refunded: its status is {charge['status']}.", "charge",
                          code="charge_not_refundable")
        if charge["disputed"]:
            raise invalid(f"Charge {charge['id']} has been charged back; cannot issue a refund.", "charge",
                          code="charge_disputed")
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise invalid(f"Charge {charge['id']} has already been refunded.", "charge",
                          code="charge_already_refunded")
        amount = remaining if p.get("amount") is None else self._amount(p["amount"], "amount")
        if amount > remaining:
            raise invalid(f"Refund amount ({fmt_amount(amount, charge['currency'])}) is greater than unrefunded "
                          f"amount on charge ({fmt_amount(remaining, charge['currency'])})", "amount",
                          code="amount_too_large")
        if p.get("reason") is not None and p["reason"] not in ("duplicate", "fraudulent", "requested_by_customer"):
            raise invalid("Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer", "reason")
        refund = o.refund(self._new("re_"), self.now(), charge, amount)
        refund["reason"] = p.get("reason")
        self._metadata(refund["metadata"], p)
        card = charge["payment_method_details"]["type"] == "card"
        txn = self._balance_txn(-amount, charge["currency"], 0, refund["id"], "refund" if card else "payment_refund",
                                "refund", "REFUND FOR CHARGE" + (f" ({charge['description']})"
                                                                 if charge["description"] else ""))
        refund["balance_transaction"] = txn["id"]
        self._put(refund)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
        self._emit("charge.refunded", charge, ctx, previous={"amount_refunded": charge["amount_refunded"] - amount})
        self._emit("refund.created", refund, ctx)
        return refund

    # == disputes =========================================================================
    @locked
    def create_dispute(self, charge_id: str | None = None, payment_intent: str | None = None, reason: str = "general",
                       amount: int | None = None, status: str = "needs_response") -> dict[str, Any]:
        if charge_id:
            charge = self._get("charge", charge_id, "charge", 400)
        elif payment_intent:
            pi = self._get("payment_intent", payment_intent, "payment_intent", 400)
            if not pi["latest_charge"]:
                raise invalid("This PaymentIntent has no charge to dispute.", "payment_intent")
            charge = self.objects[pi["latest_charge"]]
        else:
            raise missing("charge")
        if charge["status"] != "succeeded":
            raise invalid(f"Only a succeeded charge can be disputed (status: {charge['status']}).", "charge")
        if charge["disputed"]:
            raise invalid(f"Charge {charge['id']} is already disputed.", "charge")
        if reason not in DISPUTE_REASONS:
            raise invalid(f"reason must be one of {', '.join(DISPUTE_REASONS)}", "reason")
        if status not in ("needs_response", "under_review", "warning_needs_response", "won", "lost"):
            raise invalid("status must be needs_response, under_review, won or lost", "status")
        amount = charge["amount"] if amount is None else self._amount(amount, "amount")
        if amount > charge["amount"]:
            raise invalid("The dispute amount cannot exceed the charge amount.", "amount")
        dispute = o.dispute(self._new("dp_"), self.now(), charge, amount, reason)
        txn = self._balance_txn(-amount, charge["currency"], o.DISPUTE_FEE, dispute["id"], "adjustment", "dispute",
                                f"Chargeback withdrawal for {charge['id']}", "Dispute fee")
        dispute["balance_transactions"].append(copy.deepcopy(txn))
        self._put(dispute)
        charge["disputed"] = True
        if status in ("under_review", "warning_needs_response"):
            dispute["status"] = status
        self._emit("charge.dispute.created", dispute)
        self._emit("charge.dispute.funds_withdrawn", dispute)
        if status in ("won", "lost"):
            self.close_dispute(dispute["id"], status)
        return dispute

    @locked
    def close_dispute(self, dispute_id: str, status: str) -> dict[str, Any]:
        dispute = self._get("dispute", dispute_id)
        if status not in ("won", "lost"):
            raise invalid("status must be won or lost", "status")
        if dispute["status"] in ("won", "lost"):
            raise invalid(f"Dispute {dispute_id} is already closed ({dispute['status']}).", "status")
        dispute["status"] = status
        if status == "won":
            charge = self.objects[dispute["charge"]]
            txn = self._balance_txn(dispute["amount"], dispute["currency"], 0, dispute["id"], "adjustment",
                                    "dispute_reversal", f"Chargeback reversal for {charge['id']}")
            dispute["balance_transactions"].append(copy.deepcopy(txn))
        dispute["is_charge_refundable"] = False
        self._emit("charge.dispute.closed", dispute)
        if status == "won":
            self._emit("charge.dispute.funds_reinstated", dispute)
        return dispute

    # == payouts ==========================================================================
    @locked
    def create_payout(self, currency: str = "eur", status: str = "paid") -> dict[str, Any]:
        """Pay out every balance transaction in ``currency`` not paid out yet (charges, refunds, disputes)."""
        currency = self._currency(currency)
        if status not in ("paid", "in_transit"):
            raise invalid("status must be paid or in_transit", "status")
        included = [self.objects[t] for t in self.order["balance_transaction"]
                    if self.objects[t]["currency"] == currency and self.objects[t]["type"] != "payout"
                    and "payout" not in self.meta[t]]
        total = sum(t["net"] for t in included)
        if not included or total <= 0:
            raise invalid(f"Nothing to pay out in {currency}: the balance is {fmt_amount(total, currency)}.",
                          "currency", code="balance_insufficient")
        pid = self._new("po_")
        txn = self._balance_txn(-total, currency, 0, pid, "payout", "payout", "STRIPE PAYOUT")
        payout = self._put(o.payout(pid, self.now(), total, currency, txn["id"]))
        for t in [*included, txn]:
            self.meta[t["id"]]["payout"] = pid
        self._emit("payout.created", payout)
        if status == "paid":
            payout["status"] = "paid"
            self._emit("payout.paid", payout)
        return payout

    @locked
    def list_balance_transactions(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("payout"):
            self._get("payout", p["payout"], "payout", 400)

        def keep(t: dict[str, Any]) -> bool:
            return ((not p.get("payout") or self.meta[t["id"]].get("payout") == p["payout"])
                    and (not p.get("type") or t["type"] == p["type"])
                    and (not p.get("source") or t["source"] == p["source"])
                    and (not p.get("currency") or t["currency"] == p["currency"]))
        return self._list("balance_transaction", p, "/v1/balance_transactions", keep)

    @locked
    def list_objects(self, object_type: str, p: dict[str, Any], url: str, filters: Iterable[str]) -> dict[str, Any]:
        """A list endpoint filtering by equality on the given top-level fields."""
        wanted = {k: p[k] for k in filters if p.get(k) is not None}
        types = p.get("types")

        def keep(obj: dict[str, Any]) -> bool:
            if types and obj.get("type") not in types:
                return False
            return all(obj.get(k) == v for k, v in wanted.items())
        return self._list(object_type, p, url, keep)

    # == idempotency ======================================================================
    @locked
    def idempotent(self, scope: str, key: str, fingerprint: str, run: Callable[[], tuple[int, dict[str, Any]]]
                   ) -> tuple[int, dict[str, Any], bool]:
        """Run once per key; replay the stored answer; refuse a key reused with other parameters."""
        stored = self.idempotency.get((scope, key))
        if stored is not None:
            if stored["fingerprint"] != fingerprint:
                raise StripeApiError(400, f"Keys for idempotent requests can only be used with the same parameters "
                                          f"they were first used with. Try using a key other than '{key}' if you "
                                          f"meant to execute a different request.", type="idempotency_error")
            return stored["status"], copy.deepcopy(stored["body"]), True
        try:
            status, body = run()
        except StripeApiError as exc:
            if exc.cacheable:
                self.idempotency[(scope, key)] = {"fingerprint": fingerprint, "status": exc.status,
                                                  "body": exc.body()}
            raise
        self.idempotency[(scope, key)] = {"fingerprint": fingerprint, "status": status, "body": copy.deepcopy(body)}
        return status, body, False


class LinkInactive(Exception):
    """Visiting a deactivated (or exhausted) payment link."""


def fmt_amount(amount: int, currency: str) -> str:
    """``1234, "eur"`` -> ``€12.34`` (zero-decimal currencies as they are)."""
    symbol = {"eur": "€", "usd": "$", "gbp": "£"}.get(currency, "")
    sign, amount = ("-" if amount < 0 else ""), abs(amount)
    value = str(amount) if currency in ZERO_DECIMAL else f"{amount // 100}.{amount % 100:02d}"
    return f"{sign}{symbol}{value}" if symbol else f"{sign}{value} {currency}"
