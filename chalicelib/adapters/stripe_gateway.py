"""The only module that imports ``stripe``.

- the API version is pinned and the key is passed per client (never the global
  ``stripe.api_key``);
- ``stripe`` is imported on first use: the webhook and pay paths need it, the
  rest of the API does not pay its ~130 ms import;
- every create carries an idempotency key, so a retried call never duplicates;
- ``stripe.StripeError`` becomes our ``PaymentGatewayError``; nothing returns
  ``(obj, error)`` tuples.

Locally, ``STRIPE_API_BASE`` points the same code at the emulator in
infra/local/stripe_emulator; on AWS it is unset and the key (test or live)
comes from Secrets Manager.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any, Callable, Sequence

from ..domain.errors import PaymentGatewayError, WebhookSignatureError
from ..domain.invoice import Invoice
from ..domain.money import Money
from ..domain.parties import Customer
from ..services.ports import PaymentGateway, ProviderLink

API_VERSION = "2026-10-28.endive"
WEBHOOK_TOLERANCE_S = 300


class StripeGateway(PaymentGateway):
    def __init__(self, secret: Callable[[str], str], api_base: str | None = None) -> None:
        self._secret = secret
        self._api_base = api_base
        self._client: Any = None
        self._lock = threading.Lock()

    def _stripe(self) -> Any:
        with self._lock:
            if self._client is None:
                import stripe

                kwargs: dict[str, Any] = {"stripe_version": API_VERSION, "max_network_retries": 2}
                if self._api_base:
                    kwargs["base_addresses"] = {"api": self._api_base}
                    kwargs["max_network_retries"] = 0
                self._client = stripe.StripeClient(self._secret("stripe_secret_key"), **kwargs)
            return self._client

    def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        import stripe

        try:
            return fn(self._stripe().v1)
        except stripe.StripeError as exc:
            message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
            status = getattr(exc, "http_status", None)
            # Network errors (no status), 409 (a concurrent request with the same idempotency key),
            # 429 and 5xx may succeed if tried again; any other answer refuses this request as sent.
            retryable = not isinstance(status, int) or status in (409, 429) or status >= 500
            raise PaymentGatewayError(f"the payment provider refused to {what}: {message}",
                                      details={"provider_code": getattr(exc, "code", None), "http_status": status,
                                               "retryable": retryable}) from exc

    # -- customers, links, sessions -------------------------------------------------------------
    def ensure_customer(self, customer: Customer) -> str:
        if customer.stripe_customer_id:
            return customer.stripe_customer_id
        created = self._call("create the customer", lambda v1: v1.customers.create(
            params={"name": customer.name, "email": customer.email, "preferred_locales": [customer.language],
                    "metadata": {"customer_id": customer.id}},
            options={"idempotency_key": f"customer-{customer.id}"}))
        return str(created["id"])

    def create_payment_link(self, *, invoice: Invoice, amount: Money, description: str,
                            metadata: dict[str, str], idempotency_key: str,
                            return_url: str | None = None) -> ProviderLink:
        extra: dict[str, Any] = {}
        if return_url:
            extra["after_completion"] = {"type": "redirect", "redirect": {"url": return_url}}
        link = self._call("create a payment link", lambda v1: v1.payment_links.create(params={
            **extra,
            "line_items": [{"quantity": 1, "price_data": {
                "currency": amount.currency.lower(), "unit_amount": amount.amount,
                "product_data": {"name": description}}}],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata, "description": description},
            "payment_method_types": ["card", "sepa_debit"] if amount.currency == "EUR" else ["card"],
        }, options={"idempotency_key": idempotency_key}))
        return ProviderLink(id=str(link["id"]), url=str(link["url"]))

    def deactivate_payment_link(self, link_id: str) -> None:
        self._call("deactivate a payment link",
                   lambda v1: v1.payment_links.update(link_id, params={"active": False}))

    def create_checkout_session(self, *, mode: str, provider_customer: str | None, amount: Money | None,
                                description: str, metadata: dict[str, str], success_url: str, cancel_url: str,
                                expires_at: datetime, idempotency_key: str,
                                payment_method_types: Sequence[str] = ("card", "sepa_debit")) -> ProviderLink:
        params: dict[str, Any] = {"mode": mode, "metadata": metadata, "success_url": success_url,
                                  "cancel_url": cancel_url, "expires_at": int(expires_at.timestamp()),
                                  # API 2026-09-30+: payment_method_types is gone from sessions and intents
                                  "allowed_payment_method_types": list(payment_method_types)}
        if provider_customer:
            params["customer"] = provider_customer
        if mode == "payment":
            if amount is None:
                raise ValueError("a payment session needs an amount")
            params["line_items"] = [{"quantity": 1, "price_data": {
                "currency": amount.currency.lower(), "unit_amount": amount.amount,
                "product_data": {"name": description}}}]
            params["payment_intent_data"] = {"metadata": metadata, "description": description}
        else:
            params["currency"] = "eur"
            params["setup_intent_data"] = {"metadata": metadata, "description": description}
        session = self._call("open a checkout session", lambda v1: v1.checkout.sessions.create(
            params=params, options={"idempotency_key": idempotency_key}))
        return ProviderLink(id=str(session["id"]), url=str(session["url"]))

    # -- money movements ------------------------------------------------------------------------
    def collect_sepa_debit(self, *, provider_customer: str, mandate_id: str, payment_method: str, amount: Money,
                           metadata: dict[str, str], idempotency_key: str) -> tuple[str, str]:
        intent = self._call("start a SEPA debit", lambda v1: v1.payment_intents.create(params={
            "amount": amount.amount, "currency": amount.currency.lower(), "customer": provider_customer,
            "payment_method": payment_method, "mandate": mandate_id, "allowed_payment_method_types": ["sepa_debit"],
            "confirm": True, "off_session": True, "metadata": metadata,
        }, options={"idempotency_key": idempotency_key}))
        return str(intent["id"]), str(intent["status"])

    def refund(self, *, payment_intent: str, amount: Money, metadata: dict[str, str], idempotency_key: str) -> str:
        refund = self._call("refund", lambda v1: v1.refunds.create(params={
            "payment_intent": payment_intent, "amount": amount.amount, "metadata": metadata,
        }, options={"idempotency_key": idempotency_key}))
        return str(refund["id"])

    def setup_intent_details(self, setup_intent_id: str) -> dict[str, Any]:
        intent = self._call("read a setup intent", lambda v1: v1.setup_intents.retrieve(setup_intent_id))
        mandate_id = intent["mandate"]
        mandate = self._call("read a mandate", lambda v1: v1.mandates.retrieve(mandate_id)) if mandate_id else None
        return {
            "customer": intent["customer"], "payment_method": intent["payment_method"],
            "metadata": intent["metadata"].to_dict() if intent["metadata"] else {},
            "mandate": None if mandate is None else {
                "id": mandate["id"], "status": mandate["status"],
                "reference": (mandate["payment_method_details"]["sepa_debit"]["reference"]
                              if mandate["payment_method_details"]["type"] == "sepa_debit" else None)},
        }

    # -- payouts (cash application) -------------------------------------------------------------
    def payout_details(self, payout_id: str) -> dict[str, Any]:
        """The payout and every balance transaction it pays out (``GET /v1/payouts/{id}`` and
        ``GET /v1/balance_transactions?payout=``, all pages)."""
        payout = self._call("read a payout", lambda v1: v1.payouts.retrieve(payout_id))
        transactions: list[dict[str, Any]] = []
        params: dict[str, Any] = {"payout": payout_id, "limit": 100}
        while True:
            page = self._call("list a payout's balance transactions",
                              lambda v1: v1.balance_transactions.list(params=dict(params)))
            data = list(page["data"])
            for bt in data:
                source = bt["source"]
                transactions.append({"id": str(bt["id"]), "type": str(bt["type"]), "amount": int(bt["amount"]),
                                     "fee": int(bt["fee"] or 0), "currency": str(bt["currency"]).upper(),
                                     "source": source if isinstance(source, str) or source is None
                                     else str(source["id"])})
            if not page["has_more"] or not data:
                break
            params["starting_after"] = data[-1]["id"]
        return {"id": str(payout["id"]), "amount": int(payout["amount"]), "currency": str(payout["currency"]).upper(),
                "arrival_date": int(payout["arrival_date"]) if payout["arrival_date"] else None,
                "status": str(payout["status"]), "balance_transactions": transactions}

    # -- webhooks -------------------------------------------------------------------------------
    def verify_webhook(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        import stripe

        if not signature:
            raise WebhookSignatureError("missing Stripe-Signature header")
        try:
            stripe.Webhook.construct_event(payload, signature, self._secret("stripe_webhook_secret"),
                                           tolerance=WEBHOOK_TOLERANCE_S)
        except stripe.SignatureVerificationError as exc:
            raise WebhookSignatureError(f"webhook signature rejected: {exc.user_message or exc}") from None
        except ValueError:
            raise WebhookSignatureError("webhook body is not valid JSON") from None
        event = json.loads(payload)
        if not isinstance(event, dict) or "type" not in event or "data" not in event:
            raise WebhookSignatureError("webhook body is not a Stripe event")
        return event
