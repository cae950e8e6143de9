"""Composition only: the Chalice app, its middleware and its blueprints."""

from __future__ import annotations

from typing import Any, Callable

from chalice import Chalice

from chalicelib.api.admin import admin_bp
from chalicelib.api.authorizer import authorizer_bp
from chalicelib.api.bank import bank_bp
from chalicelib.api.books import books_bp
from chalicelib.api.collections import collections_bp
from chalicelib.api.customers import customers_bp
from chalicelib.api.documents import documents_bp
from chalicelib.api.dunning import dunning_bp
from chalicelib.api.invoices import invoices_bp
from chalicelib.api.openapi import openapi_bp
from chalicelib.api.pages import pages_bp
from chalicelib.api.payments import payments_bp
from chalicelib.api.reports import reports_bp
from chalicelib.api.responses import normalise_error
from chalicelib.api.webhooks import webhooks_bp
from chalicelib.jobs import jobs_bp
from chalicelib.observability import flush, logger

app = Chalice(app_name="ar-backend")
app.api.binary_types.append("application/pdf")

for blueprint in (authorizer_bp, admin_bp, customers_bp, invoices_bp, payments_bp, collections_bp, webhooks_bp,
                  jobs_bp, pages_bp, reports_bp, openapi_bp):
    app.register_blueprint(blueprint)
for cashapp_blueprint in (bank_bp, books_bp):  # cash application, imports, books (docs/cash-application.md)
    app.register_blueprint(cashapp_blueprint)
app.register_blueprint(documents_bp)  # electronic invoices (docs/einvoicing.md)
app.register_blueprint(dunning_bp)  # dunning, promises, plans, timelines, penalties (docs/dunning.md)
app.api.binary_types.append("application/zip")  # evidence packs (docs/dunning.md)


@app.middleware("http")
def request_context(event: Any, get_response: Callable[[Any], Any]) -> Any:
    ctx = event.context or {}
    logger.append_keys(request_id=ctx.get("requestId"), route=ctx.get("resourcePath"))
    try:
        return normalise_error(get_response(event))
    finally:
        logger.remove_keys(["request_id", "route", "actor"])
        flush()
