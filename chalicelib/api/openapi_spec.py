"""Builds the OpenAPI 3 document of the whole API (``chalicelib/openapi.json``, served at GET /openapi.json).

Every route of the app needs an entry in :data:`OPERATIONS` (``tests/finance/test_openapi.py`` fails
otherwise and prints the line to add). An entry gives the summary and what no code can guess: typed
query parameters, the request body's field types, the response schema. Query parameters a route
passes to ``ctx.check_query(...)`` and body fields it passes to ``ctx.body(...)`` are found in its
source and added as untyped strings / values when the entry does not type them.

    .venv/bin/python -m chalicelib.api.openapi_spec --write     # regenerate chalicelib/openapi.json

Conventions of the API that the document states once: amounts are decimal strings (``Money``),
dates ISO (``Date``), errors are ``Error`` (``{"code", "message", "field"}``), lists are ``Page``
(``data``, ``has_more``, ``next_cursor``), authentication is ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.json"
Schema = dict[str, Any]

# -- schema helpers ---------------------------------------------------------------------------------

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
NUM_STR: Schema = {"$ref": "#/components/schemas/Decimal"}
MONEY: Schema = {"$ref": "#/components/schemas/Money"}
DATE: Schema = {"$ref": "#/components/schemas/Date"}
ANY: Schema = {}
OBJ: Schema = {"type": "object"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def null(schema: Schema) -> Schema:
    """OpenAPI 3.0 nullable (a $ref cannot carry ``nullable``: wrap it)."""
    if "$ref" in schema:
        return {"allOf": [schema], "nullable": True}
    return {**schema, "nullable": True}


def obj(props: dict[str, Schema], required: tuple[str, ...] | None = None) -> Schema:
    """An object whose listed properties have these types (others may appear)."""
    names = list(required if required is not None else props)
    return {"type": "object", "properties": props, **({"required": names} if names else {})}


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def page(item: Schema) -> Schema:
    return {"allOf": [ref("Page"), obj({"data": arr(item)}, ("data",))]}


_PARAM_TYPES: dict[str, Schema] = {
    "date": {"type": "string", "format": "date"}, "int": INT, "bool": {"type": "string", "enum": ["true", "false"]},
    "str": STR, "money": {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,2})?$"}, "ccy": {"type": "string",
                                                                                            "pattern": "^[A-Z]{3}$"},
}


def qtype(spec: str) -> Schema:
    """``date``, ``int``, ``int:1-200``, ``bool``, ``str``, ``money``, ``ccy``, ``enum:a,b``."""
    if spec.startswith("enum:"):
        return enum(*spec[5:].split(","))
    if spec.startswith("int:"):
        low, high = spec[4:].split("-")
        return {"type": "integer", "minimum": int(low), "maximum": int(high)}
    return dict(_PARAM_TYPES[spec])


def op(summary: str, *, query: dict[str, str] | None = None, body: Schema | None = None,
       response: Schema | None = None, status: int = 200, media: str = "application/json",
       body_media: tuple[str, ...] = ("application/json",), description: str | None = None,
       csv: bool = False, pdf: bool = False, html: bool = False, tag: str | None = None,
       accepted: bool = False) -> dict[str, Any]:
    """``accepted``: the operation may also answer 202 (not finished: call again), with the same body."""
    return {"summary": summary, "query": query or {}, "body": body, "response": response, "status": status,
            "media": media, "body_media": body_media, "description": description, "csv": csv, "pdf": pdf,
            "html": html, "tag": tag, "accepted": accepted}


RECONCILIATION = obj({"as_of": DATE, "status": enum("running", "completed"), "ok": null(BOOL), "slices": INT,
                      "customers": INT, "drift_count": INT, "drift": arr(OBJ), "aging": arr(OBJ), "items_read": INT,
                      "slice": OBJ})
PAGE_PARAMS = {"limit": "int:1-200", "cursor": "str"}
REPORT_PARAMS = {"as_of": "date", "currency": "ccy", "format": "enum:json,csv"}
BUCKET = obj({"name": enum("not_due", "1_30", "31_60", "61_90", "over_90"), "amount": MONEY, "count": INT})
AGING = obj({"currency": STR, "as_of": DATE, "scope": STR, "buckets": arr(BUCKET), "total": MONEY, "count": INT,
             "past_due": MONEY})
DSO_FIGURES = obj({"currency": STR, "start": DATE, "end": DATE, "days": INT, "receivables": MONEY,
                   "current_receivables": MONEY, "credit_sales": MONEY, "standard": null(NUM_STR),
                   "countback": null(NUM_STR), "countback_exhausted": BOOL, "best_possible": null(NUM_STR),
                   "average_days_delinquent": null(NUM_STR), "written_off": MONEY})
PREDICTION = obj({"invoice_id": STR, "customer_id": STR, "amount_due": MONEY, "predicted_payment_date": null(DATE),
                  "rule": STR, "excluded": BOOL, "basis": OBJ,
                  "cash_ins": arr(obj({"on": DATE, "amount": MONEY, "rule": STR}))})
FACTOR = obj({"name": STR, "value": null(NUM_STR), "normalized": null(NUM_STR), "weight": INT,
              "contribution": NUM_STR, "applicable": BOOL})
CREDIT_DECISION = obj({"allowed": BOOL, "hold": BOOL, "code": enum("ok", "credit_hold"), "flagged": BOOL,
                       "reasons": arr(obj({"code": enum("credit_limit_exceeded", "overdue_invoices", "manual_hold"),
                                           "message": STR})),
                       "exposure": MONEY, "drafts": null(MONEY), "credit_limit": null(MONEY), "amount": MONEY,
                       "headroom": null(MONEY),
                       "headroom_after": null(MONEY), "oldest_overdue_days": INT, "currency": STR})
FINANCE_SETTINGS = obj({"risk": obj({"weights": obj({k: INT for k in (
    "days_late", "late_share", "overdue_ratio", "oldest_overdue", "broken_promises", "credit_utilization",
    "trend")}, ())}, ()), "credit": obj({"max_overdue_days": INT}, ()), "forecast": OBJ}, ())
GENERIC = OBJ
FEC_PARAMS = {"from": "date", "to": "date", "format": "enum:fec,csv", "rates": "str"}
FEC_EXPORT = obj({"id": STR, "status": enum("queued", "running", "done", "failed"),
                  "period": obj({"from": DATE, "to": DATE}), "format": enum("fec", "csv"), "steps": INT,
                  "links": obj({"self": STR, "download": STR}, ("self",)),
                  "file": obj({"filename": STR, "content_type": STR, "size": INT, "lines": INT, "sha256": STR}),
                  "download": obj({"url": STR, "expires_at": STR, "expires_in": INT}), "error": ref("Error")},
                 ("id", "status", "period", "links"))

SCHEMAS: dict[str, Schema] = {
    "Money": {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "example": "1234.50",
              "description": "An amount as a decimal string in the currency's minor units (never a JSON number)."},
    "Decimal": {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "A ratio or a number of days."},
    "Date": {"type": "string", "format": "date", "example": "2026-03-31"},
    "Error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": STR, "message": STR, "field": STR, "details": OBJ},
        "description": "Every error: what was wrong and how to fix it; ``field`` names the input at fault."},
    "Page": {"type": "object", "required": ["data", "has_more", "next_cursor"], "properties": {
        "object": STR, "data": {"type": "array", "items": {}}, "has_more": BOOL, "next_cursor": null(STR),
        "items_read": INT, "query_plan": null(STR)}},
    "Customer": obj({"id": STR, "name": STR, "email": STR, "currency": STR, "language": STR,
                     "credit_limit": null(MONEY), "on_hold": BOOL, "hold_reason": null(STR), "version": INT},
                    ("id", "name", "currency")),
    "Invoice": obj({"id": STR, "kind": enum("invoice", "credit_note", "deposit"),
                    "status": enum("draft", "open", "paid", "void", "uncollectible"), "customer_id": STR,
                    "currency": STR, "number": null(STR), "issue_date": null(DATE), "due_date": null(DATE),
                    "total": MONEY, "amount_due": MONEY, "dunning_step": null(STR), "dispute_status": STR,
                    "version": INT}, ("id", "status", "customer_id", "currency", "total", "amount_due")),
    "InvoiceWithPrediction": {"allOf": [ref("Invoice"), obj({"predicted_payment_date": null(DATE),
                                                             "prediction": null(OBJ)})]},
    "Payment": obj({"id": STR, "customer_id": null(STR), "amount": MONEY, "currency": STR, "method": STR,
                    "received_on": DATE, "unapplied": MONEY, "allocations": arr(OBJ)},
                   ("id", "amount", "currency", "method", "received_on")),
}

AGING_RESPONSE = {"allOf": [AGING, obj({"object": STR, "snapshots": arr(AGING), "items_read": INT})]}
AGING_BY_CUSTOMER = obj({"currency": STR, "as_of": DATE, "portfolio": AGING, "has_more": BOOL,
                         "next_cursor": null(STR), "items_read": INT, "customers_read": INT,
                         "data": arr(obj({"customer_id": STR, "name": STR, "on_hold": BOOL, "buckets": arr(BUCKET),
                                          "total": MONEY, "count": INT, "past_due": MONEY}))})

# -- every route ------------------------------------------------------------------------------------

OPERATIONS: dict[str, dict[str, Any]] = {
    # administration
    "GET /health": op("Liveness", response=obj({"status": STR})),
    "GET /openapi.json": op("This document (OpenAPI 3)", response=OBJ),
    "GET /settings/seller": op("Seller profile", response=GENERIC),
    "PUT /settings/seller": op("Replace the seller profile", response=GENERIC),
    "POST /api-keys": op("Create an API key (its secret is shown once)", status=201,
                         body=obj({"name": STR, "role": enum("reader", "clerk", "admin")}),
                         description="With an Idempotency-Key, a replay answers 200 with the key's metadata and "
                                     "\"secret\": null (the secret is shown once and never stored).",
                         response=obj({"name": STR, "role": STR, "secret": null(STR)}, ("secret",))),
    "GET /api-keys": op("API keys", response=page(OBJ)),
    "DELETE /api-keys/{key_id}": op("Revoke an API key", response=GENERIC),
    "GET /audit": op("Audit trail of an entity or a day", query={"day": "date", **PAGE_PARAMS},
                     response=page(OBJ)),
    "POST /admin/outbox/drain": op("Run the outbox now", query={"limit": "int:1-1000"}, response=GENERIC),
    "GET /admin/outbox/dead": op("Dead-lettered outbox messages", response=page(OBJ)),
    # customers
    "POST /customers": op("Create a customer", status=201, response=ref("Customer")),
    "GET /customers": op("Customers by name; on_hold=true: those on credit hold",
                         query={"on_hold": "bool", **PAGE_PARAMS}, response=page(ref("Customer"))),
    "GET /customers/{customer_id}": op("A customer", response=ref("Customer")),
    "PATCH /customers/{customer_id}": op("Change a customer", response=ref("Customer")),
    "PUT /customers/{customer_id}/hold": op(
        "Put a customer on credit hold, or take them off", tag="credit",
        body=obj({"on_hold": BOOL, "reason": STR}, ("on_hold",)), response=ref("Customer")),
    "GET /customers/{customer_id}/credit-check": op(
        "May this amount be invoiced now? Exposure, limit, headroom, hold and why", tag="credit",
        query={"amount": "money", "currency": "ccy"},
        response={"allOf": [CREDIT_DECISION, obj({"customer_id": STR, "on_hold": BOOL, "hold_reason": null(STR)})]}),
    "GET /customers/{customer_id}/scorecard": op(
        "Payer scorecard and risk score (each factor's value, weight and contribution); CSV with Accept: "
        "text/csv or format=csv", tag="credit", csv=True,
        query={"as_of": "date", "currency": "ccy", "format": "enum:json,csv"},
        response=obj({"customer_id": STR, "currency": STR, "as_of": DATE, "open_balance": MONEY, "exposure": MONEY,
                      "overdue": MONEY, "oldest_overdue_days": INT, "credit_limit": null(MONEY),
                      "headroom": null(MONEY), "trend": STR, "late_share": null(NUM_STR),
                      "risk": obj({"score": INT, "band": enum("low", "medium", "high"), "factors": arr(FACTOR)}),
                      "payer_profile": OBJ, "items_read": INT})),
    "GET /customers/{customer_id}/statement": op(
        "Account statement: opening balance, invoices, credit notes, payments, closing balance (JSON, CSV, PDF)",
        tag="reports", query={"start": "date", "end": "date", "as_of": "date", "currency": "ccy",
                              "language": "enum:fr,en", "format": "enum:json,csv"}, csv=True, pdf=True,
        response=obj({"customer_id": STR, "currency": STR, "start": DATE, "end": DATE, "language": STR,
                      "opening_balance": MONEY, "closing_balance": MONEY, "total_debits": MONEY,
                      "total_credits": MONEY,
                      "rows": arr(obj({"date": DATE, "kind": STR, "reference": STR, "document_id": STR,
                                       "detail": null(STR), "debit": null(MONEY), "credit": null(MONEY),
                                       "balance": MONEY}))})),
    "POST /customers/{customer_id}/portal-link": op("The customer's portal link", response=GENERIC),
    # invoices
    "POST /invoices": op("Create a draft (credit_override lets it through a credit hold, audited)", status=201,
                         response=ref("Invoice")),
    "GET /invoices": op(
        "Invoices: filters, sorts, cursor pagination (query_plan says which index served it)",
        query={"customer_id": "str", "status": "enum:draft,open,paid,void,uncollectible", "overdue": "bool",
               "due_before": "date", "due_after": "date", "issued_from": "date", "issued_to": "date",
               "amount_min": "money", "amount_max": "money", "currency": "ccy", "dunning_step": "str",
               "dispute_status": "enum:none,open,accepted,rejected",
               "collection_status": "enum:none,scheduled,processing,failed",
               "sort": "enum:due_date,-due_date,amount,-amount", **PAGE_PARAMS},
        response=page(ref("Invoice"))),
    "GET /invoices/{invoice_id}": op("An invoice, with its predicted payment date when open "
                                     "(prediction=false: the invoice alone, one read)",
                                     query={"prediction": "bool"}, response=ref("InvoiceWithPrediction")),
    "PATCH /invoices/{invoice_id}": op("Change a draft", response=ref("Invoice")),
    "POST /invoices/{invoice_id}/issue": op("Number and issue a draft", response=ref("Invoice")),
    "POST /invoices/{invoice_id}/payments": op("Record a payment of one invoice", status=201,
                                               response=ref("Payment")),
    "POST /invoices/{invoice_id}/disputes": op("Open a dispute", status=201, response=GENERIC),
    "POST /invoices/{invoice_id}/refunds": op("Refund a card payment", status=202, response=GENERIC),
    "POST /invoices/{invoice_id}/pay-link/rotate": op("Rotate the pay link", response=GENERIC),
    "POST /invoices/{invoice_id}/pay-link/revoke": op("Revoke the pay link", response=GENERIC),
    # payments
    "POST /payments": op("Record a payment with its allocations", status=201, response=ref("Payment")),
    "GET /payments": op(
        "Payments: filters, sorts, cursor pagination",
        query={"customer_id": "str", "unapplied": "bool", "received_from": "date", "received_to": "date",
               "method": "enum:bank_transfer,cheque,card,sepa_debit,cash,other", "amount_min": "money",
               "amount_max": "money", "currency": "ccy", "sort": "enum:received_on,-received_on,amount,-amount",
               **PAGE_PARAMS},
        response=page(ref("Payment"))),
    "GET /payments/{payment_id}": op("A payment", response=ref("Payment")),
    "POST /payments/{payment_id}/allocations": op("Allocate unapplied cash", response=ref("Payment")),
    # collections
    "GET /disputes": op("Disputes", query={"status": "enum:open,accepted,rejected", **PAGE_PARAMS},
                        response=page(OBJ)),
    "GET /disputes/{dispute_id}": op("A dispute", response=GENERIC),
    "GET /tasks": op("Tasks", query={"status": "enum:open,done", **PAGE_PARAMS}, response=page(OBJ)),
    "POST /collections/run": op("Request today's SEPA debits", query={"as_of": "date"}, response=GENERIC),
    "POST /webhooks/stripe": op("Stripe webhook (signed)", response=GENERIC),
    # reports
    "GET /reports/aging": op(
        "Aging (not yet due, 1-30, 31-60, 61-90, over 90 days): portfolio or customer, any date, month-end "
        "snapshots; by=customer: one page of customers", tag="reports", csv=True,
        query={**REPORT_PARAMS, "customer_id": "str", "month_ends": "int:0-24", "by": "enum:portfolio,customer",
               "limit": "int:1-100", "cursor": "str", "include_zero": "bool"},
        response={"oneOf": [AGING_RESPONSE, AGING_BY_CUSTOMER]},
        description="Portfolio aging reads years + 8 aggregate items whatever the number of invoices "
                    "(items_read says how many). CSV with Accept: text/csv or format=csv."),
    "GET /reports/dso": op("DSO: standard, countback, best possible; 12-month series", tag="reports", csv=True,
                           query={**REPORT_PARAMS, "days": "int:1-366", "customer_id": "str"},
                           response=obj({"currency": STR, "as_of": DATE, "scope": STR, "period": DSO_FIGURES,
                                         "series": arr({"allOf": [DSO_FIGURES, obj({"month": STR})]}),
                                         "items_read": INT})),
    "GET /reports/collection": op(
        "Collection KPIs: CEI, collection rate, amounts collected and written off, days to pay and late, on-time "
        "share, by method and by dunning step", tag="reports", csv=True, query={**REPORT_PARAMS, "start": "date", "days": "int:1-366"},
        response=obj({"currency": STR, "start": DATE, "end": DATE, "cei": null(NUM_STR),
                      "collection_rate": null(NUM_STR), "amount_collected": MONEY, "amount_written_off": MONEY,
                      "invoices_paid": INT,
                      "average_days_to_pay": null(NUM_STR), "average_days_late": null(NUM_STR),
                      "on_time_share": null(NUM_STR),
                      "by_method": arr(obj({"method": STR, "amount": MONEY, "invoices": INT})),
                      "by_dunning_step": arr(obj({"step": STR, "invoices": INT, "amount": MONEY})),
                      "truncated": BOOL, "items_read": INT})),
    "GET /reports/disputes": op("Open disputes by reason and age, amount blocked", tag="reports", csv=True,
                                query=REPORT_PARAMS,
                                response=obj({"currency": STR, "as_of": DATE, "open_disputes": INT,
                                              "amount_blocked": MONEY, "by_reason": arr(OBJ), "by_age": arr(OBJ),
                                              "disputes": arr(OBJ), "items_read": INT})),
    "GET /reports/forecast": op("Cash-in forecast for 13 weeks, per-invoice basis", tag="reports", csv=True,
                                query={**REPORT_PARAMS, "customer_id": "str", "invoices": "bool"},
                                response=obj({"currency": STR, "as_of": DATE,
                                              "weeks": arr(obj({"start": DATE, "end": DATE, "amount": MONEY,
                                                                "invoices": INT})),
                                              "total": MONEY, "beyond_horizon": MONEY, "excluded_disputed": MONEY,
                                              "items_read": INT}, ("weeks", "total"))),
    "GET /settings/finance": op("Finance settings (risk weights, credit policy, forecast)", tag="credit",
                                response=FINANCE_SETTINGS),
    "PUT /settings/finance": op("Replace the finance settings", tag="credit",
                                body=obj({"risk": OBJ, "credit": OBJ, "forecast": OBJ, "version": INT}, ()),
                                response=FINANCE_SETTINGS),
    "POST /admin/reconcile": op("Reconcile the report aggregates with the invoices, one time-boxed slice (started "
                                "or continued): 200 complete, 202 in progress", tag="reports",
                                query={"as_of": "date"}, response=RECONCILIATION, accepted=True),
    "GET /admin/reconcile": op("The current or last reconciliation's report (runs nothing)", tag="reports",
                               response=RECONCILIATION),
    # customer pages (HTML, public: the token is the credential)
    "GET /pay/{token}": op("Hosted invoice page", html=True),
    "POST /pay/{token}/checkout": op("Pay by card or SEPA", html=True),
    "POST /pay/{token}/mandate": op("Set up a SEPA mandate", html=True),
    "POST /pay/{token}/dispute": op("Contest the invoice", html=True),
    "GET /pay/{token}/promise": op("Promise-to-pay form", html=True),
    "POST /pay/{token}/promise": op("Promise to pay", html=True),
    "GET /pay/{token}/pdf": op("The invoice PDF", pdf=True, html=True),
    "GET /portal/{token}": op("Customer portal", html=True),
    "POST /portal/{token}/checkout": op("Pay several invoices", html=True),
    "POST /portal/{token}/mandate": op("Set up a SEPA mandate", html=True),
    "POST /portal/{token}/copy": op("Send a copy of the invoices", html=True),
    "POST /portal/{token}/dispute": op("Contest an invoice", html=True),
    # documents and e-invoicing (issue 3)
    "GET /invoices/{invoice_id}/pdf": op("The invoice PDF (Factur-X)", pdf=True, tag="documents"),
    "GET /invoices/{invoice_id}/xml": op("The invoice CII XML", media="application/xml", tag="documents"),
    "POST /invoices/{invoice_id}/credit-notes": op("Issue a credit note", status=201, response=ref("Invoice")),
    "POST /invoices/{invoice_id}/send": op("Send the invoice", response=GENERIC),
    "POST /recurring-schedules": op("Create a recurring schedule", status=201, response=GENERIC),
    "GET /recurring-schedules": op("Recurring schedules", response=page(OBJ)),
    "GET /recurring-schedules/{schedule_id}": op("A recurring schedule", response=GENERIC),
    "PATCH /recurring-schedules/{schedule_id}": op("Pause, resume or end a schedule", response=GENERIC),
    "POST /recurring/run": op("Issue the due recurring invoices", query={"as_of": "date"}, response=GENERIC),
    "GET /settings/einvoicing": op("E-invoicing settings", response=GENERIC),
    "PUT /settings/einvoicing": op("Replace the e-invoicing settings", response=GENERIC),
    "POST /einvoicing/statuses": op("Status from the e-invoicing platform", response=GENERIC),
    # dunning and collections work (issue 5)
    "GET /customers/{customer_id}/dunning": op("A customer's dunning settings and state", response=GENERIC),
    "PUT /customers/{customer_id}/dunning": op("Replace a customer's dunning settings", response=GENERIC),
    "PATCH /customers/{customer_id}/dunning": op("Change a customer's dunning settings", response=GENERIC),
    "POST /customers/{customer_id}/evidence-pack": op("Evidence pack for a collection agency or court",
                                                      response=GENERIC),
    "POST /customers/{customer_id}/notes": op("Add a note to the timeline", status=201, response=GENERIC),
    "GET /customers/{customer_id}/timeline": op("A customer's timeline", query={"limit": "int:1-200"},
                                                response=GENERIC),
    "GET /invoices/{invoice_id}/dunning": op("An invoice's dunning state", response=GENERIC),
    "GET /invoices/{invoice_id}/timeline": op("An invoice's timeline", query={"limit": "int:1-200"},
                                              response=GENERIC),
    "GET /invoices/{invoice_id}/penalties": op("Late-payment penalties due", query={"as_of": "date"},
                                               response=GENERIC),
    "POST /invoices/{invoice_id}/penalty-invoice": op("Invoice the penalties", response=GENERIC),
    "POST /invoices/{invoice_id}/write-off": op("Write an invoice off", response=GENERIC),
    "POST /dunning/run": op("Run the dunning sweep", query={"as_of": "date"}, response=GENERIC),
    "POST /dunning/backfill": op("Create missing dunning records", response=GENERIC),
    "GET /dunning/policies": op("Dunning policies", response=GENERIC),
    "GET /dunning/policies/{policy_id}": op("A dunning policy", response=GENERIC),
    "PUT /dunning/policies/{policy_id}": op("Replace a dunning policy", response=GENERIC),
    "DELETE /dunning/policies/{policy_id}": op("Delete a dunning policy", response=GENERIC),
    "GET /dunning/rates": op("Penalty rates", response=GENERIC),
    "PUT /dunning/rates": op("Replace the penalty rates", response=GENERIC),
    "POST /promises": op("Record a promise to pay", status=201, response=GENERIC),
    "GET /promises": op("Promises to pay", query={"status": "str", **PAGE_PARAMS}, response=page(OBJ)),
    "GET /promises/{promise_id}": op("A promise to pay", response=GENERIC),
    "POST /promises/{promise_id}/cancel": op("Cancel a promise", response=GENERIC),
    "POST /payment-plans": op("Create a payment plan", status=201, response=GENERIC),
    "GET /payment-plans": op("Payment plans", query={"status": "str", **PAGE_PARAMS}, response=page(OBJ)),
    "GET /payment-plans/{plan_id}": op("A payment plan", response=GENERIC),
    "POST /payment-plans/{plan_id}/cancel": op("Cancel a payment plan", response=GENERIC),
    "POST /disputes/{dispute_id}/accept": op("Accept a dispute", response=GENERIC),
    "POST /disputes/{dispute_id}/reject": op("Reject a dispute", response=GENERIC),
    "POST /disputes/{dispute_id}/assign": op("Assign a dispute", response=GENERIC),
    "POST /tasks/{task_id}/complete": op("Complete a task", response=GENERIC),
    # cash application, imports, books (issue 8)
    "POST /bank-statements": op("Import a bank statement (camt.053 or CSV)", response=GENERIC,
                                body_media=("application/xml", "text/xml", "text/csv", "text/plain",
                                            "application/octet-stream"), query={"dry_run": "bool"}),
    "GET /bank-transactions": op("Bank transactions", query={"booked_from": "date", "booked_to": "date",
                                                             **PAGE_PARAMS}, response=page(OBJ)),
    "GET /bank-transactions/{transaction_id}": op("A bank transaction", response=GENERIC),
    "POST /bank-transactions/{transaction_id}/allocate": op("Allocate a bank transaction", response=GENERIC),
    "POST /imports": op("Import receivables (CSV, CII, Factur-X)", response=GENERIC,
                        body_media=("application/json", "text/csv", "application/xml", "text/xml", "application/pdf",
                                    "application/octet-stream", "text/plain"), query={"dry_run": "bool"}),
    "GET /imports/{import_id}": op("An import", response=GENERIC),
    "GET /exports/fec": op("FEC export of a small period (422 export_too_large: use POST /exports/fec)",
                           query=FEC_PARAMS, media="text/plain", response=GENERIC),
    "POST /exports/fec": op("Export the FEC of any period in the background (Idempotency-Key honoured)",
                            query=FEC_PARAMS, status=202, response=FEC_EXPORT),
    "GET /exports/fec/{export_id}": op("An export job; when done, a pre-signed download URL (5 minutes)",
                                       response=FEC_EXPORT),
}

# -- building -------------------------------------------------------------------------------------------


def _found_args(fn: Callable[..., Any], method: str) -> list[tuple[str, bool]]:
    """Values passed to ``ctx.<method>(...)`` in ``fn`` (evaluated in its module), and whether required."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return []
    out = []
    tree = ast.parse(source)
    namespace = dict(fn.__globals__)
    for node in ast.walk(tree):  # the handler's own (lazy, function-level) imports
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            module = importlib.import_module("." * node.level + node.module, fn.__globals__.get("__package__"))
            namespace.update({alias.asname or alias.name: getattr(module, alias.name) for alias in node.names})
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "ctx" and node.args):
            try:
                value = eval(compile(ast.Expression(node.args[0]), "<openapi>", "eval"),  # noqa: S307 - our code
                             namespace)
            except Exception:  # noqa: BLE001 - a computed list: leave it to the entry
                continue
            required = not any(k.arg == "required" and isinstance(k.value, ast.Constant) and k.value.value is False
                               for k in node.keywords)
            out.extend((str(v), required) for v in value)
    return out


def _responses(spec: dict[str, Any], public: bool) -> dict[str, Any]:
    error = {"description": "Error (see Error): 400 unparseable input, 401 no valid key, 403 role, 404, 409 "
                            "state conflict, 413 too large, 422 business rule, 502 provider",
             "content": {"application/json": {"schema": ref("Error")}}}
    if spec["html"]:
        content: dict[str, Any] = {"text/html": {"schema": STR}}
        if spec["pdf"]:
            content["application/pdf"] = {"schema": {"type": "string", "format": "binary"}}
        return {"2XX": {"description": "An HTML page (or the PDF)", "content": content},
                "303": {"description": "Redirect (Location)"},
                "default": {"description": "An HTML error page", "content": {"text/html": {"schema": STR}}}}
    content = {spec["media"]: {"schema": spec["response"] if spec["response"] is not None else OBJ}}
    if spec["media"] != "application/json":
        content = {spec["media"]: {"schema": STR}}
    if spec["csv"]:
        content["text/csv"] = {"schema": STR}
    if spec["pdf"]:
        content["application/pdf"] = {"schema": {"type": "string", "format": "binary"}}
    status = str(spec["status"])
    out: dict[str, Any] = {status: {"description": "OK", "content": content}}
    if status == "201":
        out["200"] = {"description": "Replayed (Idempotency-Key)", "content": content}
    if spec.get("accepted"):
        out["202"] = {"description": "Not finished within this request: send it again to continue", "content": content}
    out["default"] = error
    return out


def build(app: Any = None) -> dict[str, Any]:
    """The document for ``app`` (the Chalice app of ``app.py`` by default). Raises KeyError naming the
    routes that have no entry in OPERATIONS."""
    if app is None:
        from app import app as chalice_app

        app = chalice_app
    missing = [f"{m} {p}" for p, methods in app.routes.items() for m in methods if f"{m} {p}" not in OPERATIONS]
    if missing:
        raise KeyError(f"no OPERATIONS entry for: {', '.join(sorted(missing))}")
    paths: dict[str, Any] = {}
    used_ids: set[str] = set()
    for path in sorted(app.routes):
        for method, entry in sorted(app.routes[path].items()):
            spec = OPERATIONS[f"{method} {path}"]
            public = entry.authorizer is None
            view = getattr(entry.view_function, "__wrapped__", entry.view_function)
            params: list[dict[str, Any]] = [{"name": name, "in": "path", "required": True, "schema": STR}
                                            for name in re.findall(r"{(\w+)}", path)]
            typed = dict(spec["query"])
            for name, _ in _found_args(view, "check_query"):
                typed.setdefault(name, "str")
            params += [{"name": name, "in": "query", "required": False, "schema": qtype(kind)}
                       for name, kind in typed.items()]
            op_id = entry.view_name if entry.view_name not in used_ids else f"{entry.view_name}_{method.lower()}"
            used_ids.add(op_id)
            operation: dict[str, Any] = {
                "operationId": op_id, "summary": spec["summary"],
                "tags": [spec["tag"] or path.strip("/").split("/")[0]],
                "parameters": params, "responses": _responses(spec, public)}
            if spec["description"]:
                operation["description"] = spec["description"]
            operation["security"] = [] if public else [{"bearerAuth": []}]
            if method in ("POST", "PUT", "PATCH"):
                fields = _found_args(view, "body")
                schema = spec["body"]
                if schema is None:
                    schema = {"type": "object", "properties": {name: ANY for name, _ in fields}}
                required = bool(fields) and all(req for _, req in fields) if spec["body"] is None else True
                if spec["html"]:
                    content = {"application/x-www-form-urlencoded": {"schema": OBJ}}
                    required = False
                elif spec["body_media"] != ("application/json",):
                    content = {m: {"schema": OBJ if m == "application/json" else STR} for m in spec["body_media"]}
                else:
                    content = {"application/json": {"schema": schema}}
                operation["requestBody"] = {"required": required, "content": content}
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "Accounts-receivable backend API", "version": "1.0.0",
                 "description": "Invoices, payments, collections and finance reports for B2B receivables. "
                                "Amounts are decimal strings, dates ISO 8601, errors {code, message, field}. "
                                "Lists page with next_cursor. See README.md and docs/."},
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in sorted({o["tags"][0] for p in paths.values() for o in p.values()})],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                                          "description": "An API key: reader, clerk or admin"}}},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    text = render(build())
    if "--write" in sys.argv:
        DOCUMENT.write_text(text, encoding="utf-8")
        print(f"wrote {DOCUMENT} ({len(text):,} bytes)")
    else:
        sys.stdout.write(text)
