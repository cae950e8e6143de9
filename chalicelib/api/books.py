"""Books: import existing receivables, export the accounting entries (FEC, CSV)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from chalice import Blueprint, Response

from .. import wiring
from ..domain.auth import CLERK, READER
from ..domain.errors import BadRequest
from .bank import content_type, file_body
from .http import JSON_HEADERS, Ctx, endpoint

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
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object ({\"files\": [...]})", code="invalid_json")
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


@endpoint(books_bp, "/exports/fec", ["GET"], role=READER)
def export_fec(ctx: Ctx) -> Any:
    from ..services.books import parse_rates

    ctx.check_query(("from", "to", "format", "rates"))
    start, end = ctx.q_date("from"), ctx.q_date("to")
    if start is None or end is None:
        raise BadRequest("from and to are required: the period's first and last day, e.g. from=2026-01-01&"
                         "to=2026-12-31", field="from" if start is None else "to")
    fmt = ctx.q_choice("format", ("fec", "csv")) or "fec"
    export = wiring.books().export(start, end, rates=parse_rates(ctx.q_str("rates", 500)))
    if fmt == "csv":
        body, ctype, name = export.csv(), "text/csv; charset=utf-8", export.filename.replace(".txt", ".csv")
    else:
        body, ctype, name = export.fec(), "text/plain; charset=utf-8", export.filename
    headers = {"Content-Type": ctype, "Content-Disposition": f'attachment; filename="{name}"',
               "X-Items-Read": json.dumps(export.reads, separators=(",", ":")),
               "X-Journal-Totals": json.dumps(export.totals(), separators=(",", ":"))}
    if export.warnings:
        headers["X-Export-Warnings"] = str(len(export.warnings))
    return Response(body=body, status_code=200, headers=headers)

