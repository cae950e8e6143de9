"""Invoices: drafts, issuing, reads and lists."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint

from .. import wiring
from ..domain.auth import CLERK, READER
from .http import Ctx, created, endpoint, page_body
from .queries import invoice_query, prediction_fields

if TYPE_CHECKING:  # domain modules load with the first request that needs them (cold start)
    from ..domain.invoice import Invoice

invoices_bp = Blueprint(__name__)


def present(invoice: Invoice) -> dict[str, Any]:
    from ..domain import creditor_reference

    body = invoice.to_dict(today=wiring.invoices().today())
    body["pay_url"] = wiring.pay().pay_url(invoice)
    # ISO 11649 RF reference to give with a transfer (docs/cash-application.md)

    body["payment_reference"] = creditor_reference.for_invoice(invoice.number, invoice.id) if invoice.number else None
    return body


@endpoint(invoices_bp, "/invoices", ["POST"], role=CLERK)
def create_invoice(ctx: Ctx) -> Any:
    # credit_override: {"reason"} lets a draft through a credit hold (services/credit.py, audited)
    from ..domain.invoice import DRAFT_FIELDS

    body = ctx.body((*DRAFT_FIELDS, "credit_override"))
    invoice, replayed = wiring.invoices().create_draft(body, ctx.actor, ctx.idempotency())
    return created(present(invoice), replayed)


@endpoint(invoices_bp, "/invoices", ["GET"], role=READER)
def list_invoices(ctx: Ctx) -> Any:
    service = wiring.invoices()
    page = service.list(invoice_query(ctx, service.today()))  # finance filters and sorts: api/queries.py
    return {**page_body([present(i) for i in page.items], page.next_cursor, page.scanned), "query_plan": page.plan}


@endpoint(invoices_bp, "/invoices/{invoice_id}", ["GET"], role=READER)
def get_invoice(ctx: Ctx, invoice_id: str) -> Any:
    """One read; the predicted payment date of an open invoice costs the customer's history (3 Queries):
    ``?prediction=false`` skips it (a caller that only needs the invoice, e.g. a sync)."""
    with_prediction = ctx.q_bool("prediction") is not False
    invoice = wiring.invoices().get(invoice_id)
    if not with_prediction:
        return present(invoice)
    return {**present(invoice), **prediction_fields(invoice)}  # computed here only, not in lists


@endpoint(invoices_bp, "/invoices/{invoice_id}", ["PATCH"], role=CLERK)
def update_invoice(ctx: Ctx, invoice_id: str) -> Any:
    # credit_override: {"reason"} lets a change that raises the amount through a credit hold (audited)
    from ..domain.invoice import DRAFT_FIELDS

    body = ctx.body((*DRAFT_FIELDS, "credit_override"))
    return present(wiring.invoices().update_draft(invoice_id, body, ctx.actor))


@endpoint(invoices_bp, "/invoices/{invoice_id}/issue", ["POST"], role=CLERK)
def issue_invoice(ctx: Ctx, invoice_id: str) -> Any:
    # Not credit-checked: the draft was, when created and when raised by PATCH; issuing an existing draft
    # invoices work agreed (and often delivered), which French law requires (docs/finance.md).
    ctx.body((), required=False)
    return present(wiring.invoices().issue(invoice_id, ctx.actor, ctx.idempotency()))
