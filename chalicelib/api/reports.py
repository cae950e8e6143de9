"""Finance API: reports (aging, DSO, collection, disputes, forecast), statements, scorecards,
credit checks and holds, finance settings, reconciliation (docs/finance.md)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any, Iterable, Sequence

from chalice import Blueprint, Response

from .. import wiring
from ..domain.auth import ADMIN, CLERK, READER
from ..domain.errors import BadRequest, NotFound, ValidationError
from ..domain.money import Money, check_currency
from .http import JSON_HEADERS, Ctx, endpoint

reports_bp = Blueprint(__name__)



# -- helpers ------------------------------------------------------------------------------------

def wants(ctx: Ctx, *formats: str) -> str:
    """The representation asked for: ``format=json|csv``, else the Accept header (the only way to a PDF:
    API Gateway returns binary bodies to requests that accept them); JSON by default."""
    explicit = ctx.q_choice("format", ("json", "csv"))
    if explicit:
        return explicit
    accept = ((ctx.request.headers or {}).get("accept") or "").lower()
    if "csv" in formats and "text/csv" in accept:
        return "csv"
    if "pdf" in formats and "application/pdf" in accept:
        return "pdf"
    return "json"


def csv_response(header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return Response(body=out.getvalue(), status_code=200,
                    headers={"Content-Type": "text/csv; charset=utf-8",
                             "Content-Disposition": f'attachment; filename="{filename}"'})


def as_of_param(ctx: Ctx, name: str = "as_of") -> date:
    today = wiring.reports().today()
    value = ctx.q_date(name) or today
    if value > today:
        raise BadRequest(f"{name} {value.isoformat()} is in the future (today is {today.isoformat()}): reports "
                         "describe what happened up to a day", field=name)
    from ..services.credit import LEDGER_FIRST_YEAR

    if value.year < LEDGER_FIRST_YEAR:
        raise BadRequest(f"{name} must be on or after {LEDGER_FIRST_YEAR}-01-01", field=name)
    return value


def currency_param(ctx: Ctx) -> str:
    value = ctx.q_str("currency", 3)
    try:
        return check_currency(value or "EUR")
    except ValidationError as exc:  # a malformed query parameter: 400, not 422
        raise BadRequest(f"currency must be an ISO 4217 code such as EUR ({exc})", field="currency") from None


def optional_currency_param(ctx: Ctx) -> str | None:
    """``currency`` when given (checked like the reports': 400), else None: the customer's own."""
    return currency_param(ctx) if ctx.query.get("currency") else None


def _bucket_header(buckets: list[dict[str, Any]]) -> list[str]:
    return [f"{b['name']}_{part}" for b in buckets for part in ("amount", "count")]


def _bucket_cells(buckets: list[dict[str, Any]]) -> list[Any]:
    return [v for b in buckets for v in (b["amount"], b["count"])]


# -- reports ------------------------------------------------------------------------------------

@endpoint(reports_bp, "/reports/aging", ["GET"], role=READER)
def aging_report(ctx: Ctx) -> Any:
    ctx.check_query(("as_of", "currency", "customer_id", "month_ends", "by", "limit", "cursor", "include_zero",
                     "format"))
    as_of, currency = as_of_param(ctx), currency_param(ctx)
    fmt = wants(ctx, "csv")
    by = ctx.q_choice("by", ("portfolio", "customer")) or "portfolio"
    if by == "customer":
        if ctx.q_str("customer_id", 64) or ctx.query.get("month_ends"):
            raise BadRequest("by=customer lists every customer: drop customer_id and month_ends", field="by")
        body = wiring.reports().aging_by_customer(as_of=as_of, currency=currency, limit=ctx.q_int("limit", 50, 1, 100),
                                                  cursor=ctx.q_str("cursor", 2000),
                                                  include_zero=bool(ctx.q_bool("include_zero")))
        if fmt == "csv":
            rows = body["data"]
            header = ["customer_id", "name", "total", "count", "past_due",
                      *_bucket_header(rows[0]["buckets"] if rows else body["portfolio"]["buckets"])]
            return csv_response(header, ([r["customer_id"], r["name"], r["total"], r["count"], r["past_due"],
                                          *_bucket_cells(r["buckets"])] for r in rows),
                                f"aging-by-customer-{currency}-{as_of.isoformat()}.csv")
        return body
    if ctx.query.get("limit") or ctx.query.get("cursor") or ctx.query.get("include_zero"):
        raise BadRequest("limit, cursor and include_zero page the by=customer report: add by=customer",
                         field="by")
    current, snapshots, read = wiring.reports().aging(as_of=as_of, currency=currency,
                                                      customer_id=ctx.q_str("customer_id", 64),
                                                      month_ends=ctx.q_int("month_ends", 0, 0, 24))
    if fmt == "csv":
        agings = [current, *snapshots]
        dicts = [a.to_dict() for a in agings]
        return csv_response(["as_of", "scope", "currency", "total", "count", "past_due",
                             *_bucket_header(dicts[0]["buckets"])],
                            ([d["as_of"], d["scope"], d["currency"], d["total"], d["count"], d["past_due"],
                              *_bucket_cells(d["buckets"])] for d in dicts),
                            f"aging-{currency}-{as_of.isoformat()}.csv")
    return {"object": "aging", **current.to_dict(), "snapshots": [s.to_dict() for s in snapshots],
            "items_read": read}


@endpoint(reports_bp, "/reports/dso", ["GET"], role=READER)
def dso_report(ctx: Ctx) -> Any:
    ctx.check_query(("as_of", "currency", "days", "customer_id", "format"))
    body = wiring.reports().dso(as_of=as_of_param(ctx), currency=currency_param(ctx),
                                days=ctx.q_int("days", 90, 1, 366), customer_id=ctx.q_str("customer_id", 64))
    if wants(ctx, "csv") == "csv":
        fields = ("standard", "countback", "best_possible", "average_days_delinquent", "receivables",
                  "current_receivables", "credit_sales", "countback_exhausted", "written_off")
        rows = [["period", body["period"]["start"], body["period"]["end"], *(body["period"][f] for f in fields)]]
        rows += [["month", r["start"], r["end"], *(r[f] for f in fields)] for r in body["series"]]
        return csv_response(["row", "start", "end", *fields], rows, f"dso-{body['currency']}-{body['as_of']}.csv")
    return body


@endpoint(reports_bp, "/reports/collection", ["GET"], role=READER)
def collection_report(ctx: Ctx) -> Any:
    ctx.check_query(("as_of", "start", "days", "currency", "format"))
    end = as_of_param(ctx)
    start = ctx.q_date("start")
    if start is not None and ctx.query.get("days"):
        raise BadRequest("give start or days, not both", field="days")
    start = start or end - timedelta(days=ctx.q_int("days", 30, 1, 366) - 1)
    if start > end:
        raise BadRequest(f"start {start.isoformat()} is after as_of {end.isoformat()}", field="start")
    if (end - start).days > 366:
        raise BadRequest("a collection report covers at most 367 days: move start closer to as_of", field="start")
    body = wiring.reports().collection(start=start, end=end, currency=currency_param(ctx))
    if wants(ctx, "csv") == "csv":
        rows = [["total", "", body["invoices_paid"], body["amount_collected"], body["average_days_late"]],
                ["written_off", "", "", body["amount_written_off"], ""]]   # the loss of the period
        rows += [["method", m["method"], m["invoices"], m["amount"], ""] for m in body["by_method"]]
        rows += [["dunning_step", s["step"], s["invoices"], s["amount"], s["average_days_late"]]
                 for s in body["by_dunning_step"]]
        return csv_response(["row", "key", "invoices", "amount", "average_days_late"], rows,
                            f"collection-{body['currency']}-{body['start']}-{body['end']}.csv")
    return body


@endpoint(reports_bp, "/reports/disputes", ["GET"], role=READER)
def disputes_report(ctx: Ctx) -> Any:
    ctx.check_query(("as_of", "currency", "format"))
    body = wiring.reports().disputes(as_of=as_of_param(ctx), currency=currency_param(ctx))
    if wants(ctx, "csv") == "csv":
        return csv_response(["dispute_id", "invoice_id", "invoice_number", "customer_id", "reason", "opened_on",
                             "age_days", "amount_blocked"],
                            ([d[k] for k in ("dispute_id", "invoice_id", "invoice_number", "customer_id", "reason",
                                             "opened_on", "age_days", "amount_blocked")] for d in body["disputes"]),
                            f"disputes-{body['currency']}-{body['as_of']}.csv")
    return body


@endpoint(reports_bp, "/reports/forecast", ["GET"], role=READER)
def forecast_report(ctx: Ctx) -> Any:
    ctx.check_query(("as_of", "currency", "customer_id", "invoices", "format"))
    fmt = wants(ctx, "csv")
    body = wiring.reports().forecast(as_of=as_of_param(ctx), currency=currency_param(ctx),
                                     customer_id=ctx.q_str("customer_id", 64),
                                     with_invoices=ctx.q_bool("invoices") is not False or fmt == "csv")
    if fmt == "csv":
        return csv_response(["invoice_id", "customer_id", "amount_due", "predicted_payment_date", "rule", "excluded"],
                            ([p["invoice_id"], p["customer_id"], p["amount_due"], p["predicted_payment_date"],
                              p["rule"], p["excluded"]] for p in body["invoices"]),
                            f"forecast-{body['currency']}-{body['as_of']}.csv")
    return body


# -- customers: statement, scorecard, credit ------------------------------------------------------

@endpoint(reports_bp, "/customers/{customer_id}/statement", ["GET"], role=READER)
def customer_statement(ctx: Ctx, customer_id: str) -> Any:
    ctx.check_query(("start", "end", "as_of", "currency", "language", "format"))
    if ctx.query.get("end") and ctx.query.get("as_of"):
        raise BadRequest("give end or as_of (the same thing), not both", field="as_of")
    end = as_of_param(ctx, "end" if ctx.query.get("end") else "as_of")
    fmt = wants(ctx, "csv", "pdf")
    service = wiring.statements()
    st, customer = service.statement(customer_id, start=ctx.q_date("start"), end=end,
                                     currency=optional_currency_param(ctx))
    language = ctx.q_choice("language", ("fr", "en")) or customer.language
    name = f"statement-{customer_id}-{st.start.isoformat()}-{st.end.isoformat()}"
    if fmt == "csv":
        return Response(body=service.to_csv(st, language), status_code=200,
                        headers={"Content-Type": "text/csv; charset=utf-8",
                                 "Content-Disposition": f'attachment; filename="{name}.csv"'})
    if fmt == "pdf":
        return Response(body=service.to_pdf(st, customer, language), status_code=200,
                        headers={"Content-Type": "application/pdf",
                                 "Content-Disposition": f'inline; filename="{name}.pdf"'})
    from ..services.statements import present

    return present(st, customer, language)


@endpoint(reports_bp, "/customers/{customer_id}/scorecard", ["GET"], role=READER)
def customer_scorecard(ctx: Ctx, customer_id: str) -> Any:
    ctx.check_query(("as_of", "currency", "format"))
    as_of, currency, fmt = as_of_param(ctx), optional_currency_param(ctx), wants(ctx, "csv")
    card, extra = wiring.credit().scorecard(customer_id, as_of=as_of, currency=currency)
    body = {"object": "scorecard", **card.to_dict(), **extra}
    if fmt == "csv":
        risk = body["risk"]
        rows: list[list[Any]] = [["scorecard", k, v, "", "", ""] for k, v in body.items()
                                 if k not in ("object", "risk", "payer_profile")]
        rows += [["risk", "score", risk["score"], "", "", ""], ["risk", "band", risk["band"], "", "", ""]]
        rows += [["factor", f["name"], f["value"], f["normalized"], f["weight"], f["contribution"]]
                 for f in risk["factors"]]
        return csv_response(["row", "key", "value", "normalized", "weight", "contribution"], rows,
                            f"scorecard-{customer_id}-{body['currency']}-{body['as_of']}.csv")
    return body


@endpoint(reports_bp, "/customers/{customer_id}/credit-check", ["GET"], role=READER)
def credit_check(ctx: Ctx, customer_id: str) -> Any:
    ctx.check_query(("amount", "currency"))
    service = wiring.credit()
    customer = wiring.ledger().get_customer(customer_id)
    currency = currency_param(ctx) if ctx.query.get("currency") else customer.currency
    raw = ctx.query.get("amount") or "0"
    try:
        amount = Money.parse(raw, currency, field="amount")
    except ValidationError as exc:  # a malformed query parameter: 400, not 422
        raise BadRequest(f"amount must be a decimal string such as 1250.00 ({exc})", field="amount") from None
    if amount.is_negative:
        raise BadRequest("amount must not be negative", field="amount")
    decision = service.check(customer, amount)
    return {"object": "credit_check", "customer_id": customer.id, "on_hold": customer.on_hold,
            "hold_reason": customer.hold_reason, **decision.to_dict()}


@endpoint(reports_bp, "/customers/{customer_id}/hold", ["PUT"], role=CLERK)
def put_hold(ctx: Ctx, customer_id: str) -> Any:
    body = ctx.body(("on_hold", "reason"))
    customer = wiring.credit().set_hold(customer_id, body.get("on_hold"), body.get("reason"), ctx.actor)
    return {"object": "customer", **customer.to_dict()}


# -- settings, reconciliation ---------------------------------------------------------------------

@endpoint(reports_bp, "/settings/finance", ["GET"], role=READER)
def get_finance_settings(ctx: Ctx) -> Any:
    return wiring.finance_settings().get().to_dict()


@endpoint(reports_bp, "/settings/finance", ["PUT"], role=ADMIN)
def put_finance_settings(ctx: Ctx) -> Any:
    body = ctx.body(("risk", "credit", "forecast", "version"))
    version = body.pop("version", None)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise BadRequest("version must be a whole number (the version you read)", field="version")
    return wiring.finance_settings().put(body, ctx.actor, expected_version=version).to_dict()


ADMIN_RECONCILE_BUDGET_S = 5.0  # a slice per request: far under API Gateway's 29 s


@endpoint(reports_bp, "/admin/reconcile", ["POST"], role=ADMIN)
def run_reconcile(ctx: Ctx) -> Any:
    """One slice of the reconciliation (started, or continued): 200 with the report when it is complete,
    202 with the progress when not (send it again to continue; the nightly job continues it too)."""
    ctx.check_query(("as_of",))
    ctx.body((), required=False)
    report = wiring.reconcile().run(as_of_param(ctx), budget_s=ADMIN_RECONCILE_BUDGET_S)
    return Response(body=report.to_dict(), status_code=200 if report.complete else 202, headers=dict(JSON_HEADERS))


@endpoint(reports_bp, "/admin/reconcile", ["GET"], role=ADMIN)
def get_reconcile(ctx: Ctx) -> Any:
    """The current or last reconciliation's report, as recorded (runs nothing)."""
    ctx.check_query(())
    report = wiring.reconcile().latest()
    if report is None:
        raise NotFound("no reconciliation has run yet: POST /admin/reconcile starts one", code="reconcile_not_found")
    return report.to_dict()
