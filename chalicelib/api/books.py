"""Books: import existing receivables, export the accounting entries (FEC, CSV): at once for a small period,
in the background (POST /exports/fec, then GET /exports/fec/{id} for a download link) for any period."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from chalice import Blueprint, Response

from .. import wiring
from ..domain.auth import CLERK, READER
from ..domain.errors import BadRequest
from .bank import content_type, file_body
from .http import JSON_HEADERS, Ctx, created, endpoint, refuse_lone_surrogates

books_bp = Blueprint(__name__)

IMPORT_TYPES = ["application/json", "text/csv", "application/xml", "text/xml", "application/pdf",
                "application/octet-stream", "text/plain"]
_KIND_OF_TYPE = {"text/csv": "csv", "text/plain": "csv", "application/xml": "cii", "text/xml": "cii",
                 "application/pdf": "facturx"}


@endpoint(books_bp, "/imports", ["POST"], role=CLERK, content_types=IMPORT_TYPES)
def import_receivables(ctx: Ctx) -> Any:
    from ..services.imports import ImportFile, parse_request

    raw = file_body(ctx)
    ctype = (content_type(ctx) or "application/json").split(";")[0].strip().lower()
    if ctype == "application/json":
        ctx.check_query(())
        try:
            data = json.loads(raw or b"{}", parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
        except RecursionError:
            raise BadRequest("request body is nested too deeply: send a flatter JSON object",
                             code="invalid_json") from None
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object ({\"files\": [...]})", code="invalid_json")
        refuse_lone_surrogates(data)
        unknown = sorted(set(data) - {"files", "dry_run", "contacts"})
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r}: allowed are files, dry_run, contacts", field=unknown[0])
        files, dry_run, contacts = parse_request(data)
    else:
        ctx.check_query(("dry_run", "name", "kind"))
        kind = ctx.q_choice("kind", ("csv", "cii", "facturx")) or _KIND_OF_TYPE.get(ctype)
        files = [ImportFile(name=ctx.q_str("name", 200) or "upload", content=raw, kind=kind)]
        dry_run, contacts = bool(ctx.q_bool("dry_run")), {}
    report = wiring.imports().run(files, ctx.actor, dry_run=dry_run, contacts=contacts)
    status = 200 if report.dry_run else 201 if report.status == "completed" else 202
    return Response(body=report.to_dict(), status_code=status, headers=dict(JSON_HEADERS))


@endpoint(books_bp, "/imports/{import_id}", ["GET"], role=READER)
def get_import(ctx: Ctx, import_id: str) -> Any:
    return wiring.imports().get(import_id).to_dict()


def _period(ctx: Ctx) -> tuple[date, date, str, dict[str, Decimal]]:
    """The export's parameters (the same for GET and POST /exports/fec): from, to, format, rates."""
    from ..services.books import parse_rates

    ctx.check_query(("from", "to", "format", "rates"))
    start, end = ctx.q_date("from"), ctx.q_date("to")
    if start is None or end is None:
        raise BadRequest("from and to are required: the period's first and last day, e.g. from=2026-01-01&"
                         "to=2026-12-31", field="from" if start is None else "to")
    fmt = ctx.q_choice("format", ("fec", "csv")) or "fec"
    return start, end, fmt, parse_rates(ctx.q_str("rates", 500))


@endpoint(books_bp, "/exports/fec", ["GET"], role=READER)
def export_fec(ctx: Ctx) -> Any:
    start, end, fmt, rates = _period(ctx)
    books = wiring.books()
    export, file = books.export_file(start, end, fmt=fmt, rates=rates, limits=books.sync_limits)
    headers = {"Content-Type": file.content_type, "Content-Disposition": f'attachment; filename="{file.filename}"',
               "X-Items-Read": json.dumps(export.reads, separators=(",", ":")),
               "X-Journal-Totals": json.dumps(export.totals(), separators=(",", ":"))}
    if export.warnings:
        headers["X-Export-Warnings"] = str(len(export.warnings))
    return Response(body=file.text, status_code=200, headers=headers)


@endpoint(books_bp, "/exports/fec", ["POST"], role=READER)
def request_fec_export(ctx: Ctx) -> Any:
    start, end, fmt, rates = _period(ctx)
    ctx.body((), required=False)  # the parameters are in the query string, as for GET
    idempotency = ctx.idempotency()
    if idempotency is not None:  # the request hash covers the body, not the query string: add the parameters
        params = json.dumps(sorted(ctx.query.items())).encode()
        idempotency = replace(idempotency, request_hash=hashlib.sha256(
            idempotency.request_hash.encode() + params).hexdigest())
    job, replayed = wiring.fec_exports().request(start, end, fmt=fmt, rates=rates, actor=ctx.actor,
                                                 idempotency=idempotency)
    response = created(job.to_dict(), replayed, status=202)
    response.headers["Location"] = f"/exports/fec/{job.id}"
    return response


@endpoint(books_bp, "/exports/fec/{export_id}", ["GET"], role=READER)
def get_fec_export(ctx: Ctx, export_id: str) -> Any:
    return wiring.fec_exports().status(export_id)
