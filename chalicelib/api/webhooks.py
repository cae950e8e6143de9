"""POST /webhooks/stripe: verified on the raw body, applied once, answered fast."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from .. import wiring
from ..domain.errors import WebhookSignatureError
from ..observability import count
from .http import JSON_HEADERS, Ctx, endpoint

webhooks_bp = Blueprint(__name__)


@endpoint(webhooks_bp, "/webhooks/stripe", ["POST"], role=None, content_types=["application/json"])
def stripe_webhook(ctx: Ctx) -> Any:
    request = ctx.request
    raw = request.raw_body or b""
    if len(raw) > 512 * 1024:
        return Response(body={"code": "payload_too_large", "message": "webhook body too large"}, status_code=413,
                        headers=dict(JSON_HEADERS))
    try:
        event = wiring.payment_gateway().verify_webhook(raw, (request.headers or {}).get("stripe-signature"))
    except WebhookSignatureError:
        count("WebhookRejected")
        raise
    except Exception:
        count("WebhookFailed")  # e.g. the webhook secret not set yet (503): Stripe retries, the alarm fires
        raise
    from ..services.provider_events import EventNotReady

    try:
        outcome = wiring.provider_events().handle(event)
    except EventNotReady:
        raise  # 409: delivered before the payment it changes; Stripe retries (counted as WebhookDeferred)
    except Exception:
        count("WebhookFailed")  # Stripe retries; the alarm watches this metric
        raise
    return {"received": True, "outcome": outcome}
