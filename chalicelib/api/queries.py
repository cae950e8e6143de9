"""Query-string parsing of the invoice and payment lists (finance filters, sorts), and the
predicted payment date shown on GET /invoices/{id}.

Which index serves which combination: docs/finance.md ("Queries"); every list
response says it in ``query_plan`` and counts ``items_read``.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from ..domain.errors import BadRequest, ValidationError
from ..observability import logger
from .http import Ctx

if TYPE_CHECKING:  # the domain and ports load with the first list request, not at import (cold start)
    from ..domain.invoice import Invoice
    from ..services.ports import InvoiceQuery, PaymentQuery

INVOICE_PARAMS = ("customer_id", "status", "overdue", "due_before", "due_after", "issued_from", "issued_to",
                  "amount_min", "amount_max", "currency", "dunning_step", "dispute_status", "collection_status",
                  "sort", "limit", "cursor")
PAYMENT_PARAMS = ("customer_id", "unapplied", "received_from", "received_to", "method", "amount_min", "amount_max",
                  "currency", "sort", "limit", "cursor")
DISPUTE_STATUSES = ("none", "open", "accepted", "rejected")
COLLECTION_STATUSES = ("none", "scheduled", "processing", "failed")


def _currency(ctx: Ctx) -> str | None:
    value = ctx.q_str("currency", 3)
    if value is None:
        return None
    try:
        from ..domain.money import check_currency

        return check_currency(value)
    except ValidationError:
        raise BadRequest("currency must be an ISO 4217 code such as EUR", field="currency") from None


def _amount(ctx: Ctx, name: str, currency: str | None) -> int | None:
    value = ctx.query.get(name)
    if value is None or value == "":
        return None
    try:
        from ..domain.money import Money

        amount = Money.parse(value, currency or "EUR", field=name)
    except ValidationError:
        raise BadRequest(f"{name} must be a decimal string such as 1250.00 (in the currency parameter's "
                         "units, EUR when absent)", field=name) from None
    if amount.is_negative:
        raise BadRequest(f"{name} must not be negative", field=name)
    return amount.amount


def _range(ctx: Ctx, low: str, high: str, lo: Any, hi: Any) -> None:
    if lo is not None and hi is not None and lo > hi:
        raise BadRequest(f"{low} is after {high}: swap them", field=low)


def invoice_query(ctx: Ctx, today: date) -> InvoiceQuery:
    from ..domain.invoice import STATUSES
    from ..services.ports import INVOICE_SORTS, InvoiceQuery

    ctx.check_query(INVOICE_PARAMS)
    due_before = ctx.q_date("due_before")
    status = ctx.q_choice("status", STATUSES)
    if ctx.q_bool("overdue"):
        due_before = min(due_before, today) if due_before else today
        if status not in (None, "open"):
            raise BadRequest("overdue=true lists open invoices: drop status or use status=open", field="status")
        status = "open"
    currency = _currency(ctx)
    issued_from, issued_to = ctx.q_date("issued_from"), ctx.q_date("issued_to")
    _range(ctx, "issued_from", "issued_to", issued_from, issued_to)
    amount_min, amount_max = _amount(ctx, "amount_min", currency), _amount(ctx, "amount_max", currency)
    _range(ctx, "amount_min", "amount_max", amount_min, amount_max)
    return InvoiceQuery(
        customer_id=ctx.q_str("customer_id", 64), status=status, due_before=due_before,
        due_after=ctx.q_date("due_after"), issued_from=issued_from, issued_to=issued_to, amount_min=amount_min,
        amount_max=amount_max, currency=currency, dunning_step=ctx.q_str("dunning_step", 40),
        dispute_status=ctx.q_choice("dispute_status", DISPUTE_STATUSES),
        collection_status=ctx.q_choice("collection_status", COLLECTION_STATUSES),
        sort=ctx.q_choice("sort", INVOICE_SORTS), limit=ctx.q_int("limit", 50, 1, 200),
        cursor=ctx.q_str("cursor", 2000))


def payment_query(ctx: Ctx) -> PaymentQuery:
    from ..domain.payment import METHODS
    from ..services.ports import PAYMENT_SORTS, PaymentQuery

    ctx.check_query(PAYMENT_PARAMS)
    currency = _currency(ctx)
    received_from, received_to = ctx.q_date("received_from"), ctx.q_date("received_to")
    _range(ctx, "received_from", "received_to", received_from, received_to)
    amount_min, amount_max = _amount(ctx, "amount_min", currency), _amount(ctx, "amount_max", currency)
    _range(ctx, "amount_min", "amount_max", amount_min, amount_max)
    return PaymentQuery(
        customer_id=ctx.q_str("customer_id", 64), unapplied=ctx.q_bool("unapplied"), received_from=received_from,
        received_to=received_to, method=ctx.q_choice("method", METHODS), amount_min=amount_min,
        amount_max=amount_max, currency=currency, sort=ctx.q_choice("sort", PAYMENT_SORTS),
        limit=ctx.q_int("limit", 50, 1, 200), cursor=ctx.q_str("cursor", 2000))


def prediction_fields(invoice: Invoice) -> dict[str, Any]:
    """``predicted_payment_date`` and its basis, computed on GET /invoices/{id} only (lazily: the
    customer's paid invoices of the forecast window and its active commitments are read then).
    A failure to predict never fails the read: the fields are null and the error is logged."""
    from .. import wiring

    try:
        prediction = wiring.reports().predict(invoice)
    except Exception:  # noqa: BLE001 - a prediction is an extra, the invoice must still be served
        logger.exception("payment prediction failed", extra={"invoice_id": invoice.id})
        prediction = None
    if prediction is None:
        return {"predicted_payment_date": None, "prediction": None}
    d = prediction.to_dict()
    return {"predicted_payment_date": d["predicted_payment_date"],
            "prediction": {"rule": d["rule"], "excluded": d["excluded"], "basis": d["basis"],
                           "cash_ins": d["cash_ins"]}}
