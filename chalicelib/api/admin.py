"""Administration: seller settings, API keys, audit trail, outbox, health."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from .. import wiring
from ..domain.auth import ADMIN, READER
from .http import Ctx, created, endpoint, page_body

admin_bp = Blueprint(__name__)


@endpoint(admin_bp, "/health", ["GET"], role=None)
def health(ctx: Ctx) -> Any:
    return {"status": "ok"}


@endpoint(admin_bp, "/settings/seller", ["GET"], role=READER)
def get_seller(ctx: Ctx) -> Any:
    return wiring.settings().seller().to_dict()


@endpoint(admin_bp, "/settings/seller", ["PUT"], role=ADMIN)
def put_seller(ctx: Ctx) -> Any:
    from ..domain.parties import SellerProfile

    body = ctx.body((*SellerProfile.SETTABLE, "version", "share_capital_currency"))
    version = body.pop("version", None)
    return wiring.settings().put_seller(body, ctx.actor, expected_version=version).to_dict()


@endpoint(admin_bp, "/api-keys", ["POST"], role=ADMIN)
def create_api_key(ctx: Ctx) -> Any:
    body = ctx.body(("name", "role"))
    key, secret = wiring.access().create_key(body.get("name", ""), body.get("role", ""), ctx.actor,
                                             ctx.idempotency())
    if secret is None:  # a replay (same Idempotency-Key, same request): the key exists, its secret was shown once
        return created({**key.to_dict(), "secret": None, "replayed": True,
                        "note": "this Idempotency-Key already created this key: its secret was shown once, in the "
                                "first response, and is not stored. Lost it? Revoke this key (DELETE /api-keys/"
                                f"{key.key_hash[:16]}) and create a new one with a new Idempotency-Key"}, True)
    return created({**key.to_dict(), "secret": secret,
                    "note": "store this secret now: it is shown once and never stored"}, False)


@endpoint(admin_bp, "/api-keys", ["GET"], role=ADMIN)
def list_api_keys(ctx: Ctx) -> Any:
    return page_body([k.to_dict() for k in wiring.access().list_keys()], None)


@endpoint(admin_bp, "/api-keys/{key_id}", ["DELETE"], role=ADMIN)
def revoke_api_key(ctx: Ctx, key_id: str) -> Any:
    return wiring.access().revoke(key_id, ctx.actor).to_dict()


@endpoint(admin_bp, "/audit", ["GET"], role=ADMIN)
def list_audit(ctx: Ctx) -> Any:
    ctx.check_query(("entity_type", "entity_id", "day", "limit", "cursor"))
    page = wiring.ledger().list_audit(
        entity_type=ctx.q_str("entity_type", 40), entity_id=ctx.q_str("entity_id", 80), day=ctx.q_date("day"),
        limit=ctx.q_int("limit", 50, 1, 200), cursor=ctx.q_str("cursor", 2000))
    return page_body([e.to_dict() for e in page.items], page.next_cursor)


@endpoint(admin_bp, "/admin/outbox/drain", ["POST"], role=ADMIN)
def drain_outbox(ctx: Ctx) -> Any:
    ctx.body((), required=False)
    return wiring.outbox().run(limit=ctx.q_int("limit", 100, 1, 1000)).to_dict()


@endpoint(admin_bp, "/admin/outbox/dead", ["GET"], role=ADMIN)
def dead_letters(ctx: Ctx) -> Any:
    return page_body([{"id": m.id, "topic": m.topic, "created_at": m.created_at.isoformat(),
                       "attempts": m.attempts, "last_error": m.last_error}
                      for m in wiring.ledger().list_dead_letters()], None)
