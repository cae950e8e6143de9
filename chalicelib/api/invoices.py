"""Invoices: drafts, issuing, reads and lists."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from .. import wiring
from ..domain.auth import CLERK, READER
from ..domain.invoice import DRAFT_FIELDS, STATUSES, Invoice
from ..services.ports import InvoiceQuery
from .http import Ctx, created, endpoint, page_body

invoices_bp = Blueprint(__name__)


def present(invoice: Invoice) -> dict[str, Any]:
    body = invoice.to_dict(today=wiring.invoices().today())
    body["pay_url"] = wiring.pay().pay_url(invoice)
    return body


@endpoint(invoices_bp, "/invoices", ["POST"], role=CLERK)
def create_invoice(ctx: Ctx) -> Any:
    invoice, replayed = wiring.invoices().create_draft(ctx.body(DRAFT_FIELDS), ctx.actor, ctx.idempotency())
    return created(present(invoice), replayed)


@endpoint(invoices_bp, "/invoices", ["GET"], role=READER)
def list_invoices(ctx: Ctx) -> Any:
    ctx.check_query(("customer_id", "status", "overdue", "due_before", "due_after", "limit", "cursor"))
    service = wiring.invoices()
    due_before = ctx.q_date("due_before")
    status = ctx.q_choice("status", STATUSES)
    if ctx.q_bool("overdue"):
        today = service.today()
        due_before = min(due_before, today) if due_before else today
        status = status or "open"
    page = service.list(InvoiceQuery(
        customer_id=ctx.q_str("customer_id", 64), status=status, due_before=due_before,
        due_after=ctx.q_date("due_after"), limit=ctx.q_int("limit", 50, 1, 200), cursor=ctx.q_str("cursor", 2000)))
    return page_body([present(i) for i in page.items], page.next_cursor, page.scanned)


@endpoint(invoices_bp, "/invoices/{invoice_id}", ["GET"], role=READER)
def get_invoice(ctx: Ctx, invoice_id: str) -> Any:
    return present(wiring.invoices().get(invoice_id))


@endpoint(invoices_bp, "/invoices/{invoice_id}", ["PATCH"], role=CLERK)
def update_invoice(ctx: Ctx, invoice_id: str) -> Any:
    return present(wiring.invoices().update_draft(invoice_id, ctx.body(DRAFT_FIELDS), ctx.actor))


@endpoint(invoices_bp, "/invoices/{invoice_id}/issue", ["POST"], role=CLERK)
def issue_invoice(ctx: Ctx, invoice_id: str) -> Any:
    ctx.body((), required=False)
    return present(wiring.invoices().issue(invoice_id, ctx.actor, ctx.idempotency()))
