"""Payments: manual receipts, allocations of unapplied cash, lists."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from .. import wiring
from ..domain.auth import CLERK, READER
from .http import Ctx, created, endpoint, page_body
from .queries import payment_query

payments_bp = Blueprint(__name__)

PAYMENT_FIELDS = ("customer_id", "amount", "currency", "method", "received_on", "reference", "provider_ref", "note",
                  "allocations", "keep_excess_as_credit")


@endpoint(payments_bp, "/payments", ["POST"], role=CLERK)
def record_payment(ctx: Ctx) -> Any:
    payment, replayed = wiring.payments().record(ctx.body(PAYMENT_FIELDS), ctx.actor, ctx.idempotency())
    return created(payment.to_dict(), replayed)


@endpoint(payments_bp, "/invoices/{invoice_id}/payments", ["POST"], role=CLERK)
def record_invoice_payment(ctx: Ctx, invoice_id: str) -> Any:
    body = ctx.body(("amount", "method", "received_on", "reference", "provider_ref", "note", "keep_excess_as_credit"))
    payment, replayed = wiring.payments().record_for_invoice(invoice_id, body, ctx.actor, ctx.idempotency())
    return created(payment.to_dict(), replayed)


@endpoint(payments_bp, "/payments/{payment_id}/allocations", ["POST"], role=CLERK)
def allocate_payment(ctx: Ctx, payment_id: str) -> Any:
    return wiring.payments().allocate(payment_id, ctx.body(("allocations",)), ctx.actor).to_dict()


@endpoint(payments_bp, "/payments/{payment_id}", ["GET"], role=READER)
def get_payment(ctx: Ctx, payment_id: str) -> Any:
    return wiring.payments().get(payment_id).to_dict()


@endpoint(payments_bp, "/payments", ["GET"], role=READER)
def list_payments(ctx: Ctx) -> Any:
    page = wiring.payments().list(payment_query(ctx))  # finance filters and sorts: api/queries.py
    return {**page_body([p.to_dict() for p in page.items], page.next_cursor, page.scanned), "query_plan": page.plan}
