"""Cash application: bank statement import, the review list, one-call allocation."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from .. import wiring
from ..domain.auth import CLERK, READER
from .http import JSON_HEADERS, Ctx, PayloadTooLarge, endpoint, page_body

bank_bp = Blueprint(__name__)

# File uploads are read as they come (no JSON): up to 5 MiB, under Lambda's 6 MB request payload
# (API Gateway would take 10 MB; binary types arrive base64-encoded, a third larger).
MAX_FILE_BYTES = 5 * 1024 * 1024
STATEMENT_TYPES = ["application/xml", "text/xml", "text/csv", "text/plain", "application/octet-stream"]


def file_body(ctx: Ctx) -> bytes:
    raw = ctx.request.raw_body or b""
    if len(raw) > MAX_FILE_BYTES:
        raise PayloadTooLarge(f"the file is {len(raw)} bytes; the limit is {MAX_FILE_BYTES} (5 MiB): split it "
                              "(one statement per day or per account)")
    return raw


def content_type(ctx: Ctx) -> str | None:
    return (ctx.request.headers or {}).get("content-type")


@endpoint(bank_bp, "/bank-statements", ["POST"], role=CLERK, content_types=STATEMENT_TYPES)
def import_statement(ctx: Ctx) -> Any:
    ctx.check_query(("format", "dry_run"))
    report = wiring.bank().import_statement(file_body(ctx), ctx.actor, fmt=ctx.q_choice("format", ("camt", "csv")),
                                            content_type=content_type(ctx), dry_run=bool(ctx.q_bool("dry_run")))
    status = 200 if report.dry_run else 201 if report.complete else 202
    return Response(body=report.to_dict(), status_code=status, headers=dict(JSON_HEADERS))


@endpoint(bank_bp, "/bank-transactions", ["GET"], role=READER)
def list_bank_transactions(ctx: Ctx) -> Any:
    ctx.check_query(("status", "customer_id", "booked_from", "booked_to", "limit", "cursor"))
    from ..domain.bank_transaction import STATUSES

    page = wiring.bank().list(status=ctx.q_choice("status", STATUSES), customer_id=ctx.q_str("customer_id", 64),
                              booked_from=ctx.q_date("booked_from"), booked_to=ctx.q_date("booked_to"),
                              limit=ctx.q_int("limit", 50, 1, 200), cursor=ctx.q_str("cursor", 2000))
    return page_body([t.to_dict() for t in page.items], page.next_cursor, page.scanned)


@endpoint(bank_bp, "/bank-transactions/{transaction_id}", ["GET"], role=READER)
def get_bank_transaction(ctx: Ctx, transaction_id: str) -> Any:
    return wiring.bank().get(transaction_id).to_dict()


@endpoint(bank_bp, "/bank-transactions/{transaction_id}/allocate", ["POST"], role=CLERK)
def allocate_bank_transaction(ctx: Ctx, transaction_id: str) -> Any:
    body = ctx.body(("customer_id", "allocations"), required=False)
    return wiring.bank().allocate(transaction_id, body, ctx.actor).to_dict()
