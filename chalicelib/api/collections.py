"""Collections work: disputes, tasks, refunds, pay links, SEPA collections."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from .. import wiring
from ..domain.auth import ADMIN, CLERK, READER
from ..services.common import IdempotencyRequest
from .http import Ctx, created, endpoint, page_body

collections_bp = Blueprint(__name__)


def _seen(idempotency: IdempotencyRequest | None) -> bool:
    """Whether this Idempotency-Key already ran (its answer is then a replay; the service checks the request)."""
    return bool(idempotency and wiring.ledger().get_idempotency(idempotency.scope, idempotency.key))


@endpoint(collections_bp, "/invoices/{invoice_id}/disputes", ["POST"], role=CLERK)
def open_dispute(ctx: Ctx, invoice_id: str) -> Any:
    body = ctx.body(("reason", "message"))
    idempotency = ctx.idempotency()
    replayed = _seen(idempotency)
    dispute = wiring.pay().open_dispute(invoice_id, body.get("reason"), body.get("message"), ctx.actor,
                                        idempotency=idempotency)
    return created(dispute.to_dict(), replayed)


@endpoint(collections_bp, "/disputes", ["GET"], role=READER)
def list_disputes(ctx: Ctx) -> Any:
    ctx.check_query(("customer_id", "status", "limit", "cursor"))
    page = wiring.ledger().list_disputes(customer_id=ctx.q_str("customer_id", 64),
                                         status=ctx.q_choice("status", ("open", "accepted", "rejected")),
                                         limit=ctx.q_int("limit", 50, 1, 200), cursor=ctx.q_str("cursor", 2000))
    return page_body([d.to_dict() for d in page.items], page.next_cursor)


@endpoint(collections_bp, "/disputes/{dispute_id}", ["GET"], role=READER)
def get_dispute(ctx: Ctx, dispute_id: str) -> Any:
    return wiring.ledger().get_dispute(dispute_id).to_dict()


@endpoint(collections_bp, "/tasks", ["GET"], role=READER)
def list_tasks(ctx: Ctx) -> Any:
    ctx.check_query(("customer_id", "status", "limit", "cursor"))
    page = wiring.ledger().list_tasks(status=ctx.q_choice("status", ("open", "done")) or "open",
                                      customer_id=ctx.q_str("customer_id", 64),
                                      limit=ctx.q_int("limit", 50, 1, 200), cursor=ctx.q_str("cursor", 2000))
    return page_body([t.to_dict() for t in page.items], page.next_cursor)


@endpoint(collections_bp, "/invoices/{invoice_id}/refunds", ["POST"], role=CLERK)
def refund_invoice(ctx: Ctx, invoice_id: str) -> Any:
    body = ctx.body(("amount", "reason"), required=False)
    idempotency = ctx.idempotency()
    replayed = _seen(idempotency)
    return created(wiring.pay().refund(invoice_id, body.get("amount"), ctx.actor, idempotency), replayed,
                   status=202)


@endpoint(collections_bp, "/invoices/{invoice_id}/pay-link/rotate", ["POST"], role=CLERK)
def rotate_pay_link(ctx: Ctx, invoice_id: str) -> Any:
    ctx.body((), required=False)
    invoice = wiring.pay().rotate(invoice_id, ctx.actor)
    return {"invoice_id": invoice.id, "pay_url": wiring.pay().pay_url(invoice)}


@endpoint(collections_bp, "/invoices/{invoice_id}/pay-link/revoke", ["POST"], role=CLERK)
def revoke_pay_link(ctx: Ctx, invoice_id: str) -> Any:
    ctx.body((), required=False)
    invoice = wiring.pay().rotate(invoice_id, ctx.actor, revoke=True)
    return {"invoice_id": invoice.id, "pay_url": wiring.pay().pay_url(invoice)}


@endpoint(collections_bp, "/customers/{customer_id}/portal-link", ["POST"], role=CLERK)
def portal_link(ctx: Ctx, customer_id: str) -> Any:
    body = ctx.body(("rotate",), required=False)
    customer = wiring.pay().portal_token(customer_id, ctx.actor, rotate=bool(body.get("rotate")))
    return {"customer_id": customer.id, "portal_url": wiring.pay().portal_url(customer)}


@endpoint(collections_bp, "/collections/run", ["POST"], role=ADMIN)
def run_collections(ctx: Ctx) -> Any:
    ctx.body((), required=False)
    as_of = ctx.q_date("as_of") or wiring.invoices().today()
    report = wiring.collections().run(as_of)
    return {"as_of": as_of.isoformat(), **report.to_dict()}
