"""Electronic invoices: Factur-X files, credit notes, delivery, recurring billing, the e-invoicing platform.

Routes (docs/einvoicing.md has curl examples):

- ``GET /invoices/{id}/pdf`` and ``/xml`` (reader): the Factur-X PDF and its CII XML, as stored;
- ``GET /pay/{token}/pdf`` (public, the hosted invoice page's download);
- ``POST /invoices/{id}/credit-notes`` (clerk): a full or partial credit note, applied to the invoice;
- ``POST /invoices/{id}/send`` (clerk): email the document again;
- ``POST/GET /recurring-schedules``, ``GET/PATCH /recurring-schedules/{id}`` (clerk / reader);
- ``POST /recurring/run?as_of=`` (admin): the daily recurring job for a given date;
- ``GET/PUT /settings/einvoicing`` (reader / admin);
- ``POST /einvoicing/statuses`` (clerk): a lifecycle status from the certified platform.

``ses_events`` (a plain Lambda handler) applies SES bounce, complaint and delivery
notifications arriving through SNS.
"""

from __future__ import annotations

import json
from typing import Any

from chalice import Blueprint, Response

from .. import wiring
from ..domain.auth import ADMIN, CLERK, READER
from ..domain.errors import BadRequest, NotFound
from ..observability import flush, logger
from .http import Ctx, created, endpoint, page_body
from .invoices import present

documents_bp = Blueprint(__name__)

CONTENT_TYPES = {"pdf": "application/pdf", "xml": "application/xml"}


def _file(invoice: Any, kind: str, *, public: bool = False) -> Response:
    body = wiring.documents().file(invoice, kind)
    name = f"{invoice.number or invoice.id}.{kind}"
    headers = {"Content-Type": CONTENT_TYPES[kind], "Content-Disposition": f'inline; filename="{name}"',
               "Cache-Control": "private, no-store" if public else "private, max-age=3600",
               "X-Content-Type-Options": "nosniff"}
    if public:
        headers.update({"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"})
    if kind == "xml":
        # served as text (UTF-8, byte for byte): application/xml is not a binary type of the API
        return Response(body=body.decode("utf-8"), headers={**headers, "Content-Type": "application/xml; charset=utf-8"})
    return Response(body=body, headers=headers)


# -- documents ----------------------------------------------------------------------------------------

@endpoint(documents_bp, "/invoices/{invoice_id}/pdf", ["GET"], role=READER)
def invoice_pdf(ctx: Ctx, invoice_id: str) -> Any:
    return _file(wiring.invoices().get(invoice_id), "pdf")


@endpoint(documents_bp, "/invoices/{invoice_id}/xml", ["GET"], role=READER)
def invoice_xml(ctx: Ctx, invoice_id: str) -> Any:
    return _file(wiring.invoices().get(invoice_id), "xml")


@documents_bp.route("/pay/{token}/pdf", methods=["GET"])
def pay_page_pdf(token: str) -> Response:
    """The PDF of the hosted invoice page (the token is the credential); unknown links are a bare 404."""
    from ..domain.errors import Gone
    from .pages import bare_page

    try:
        invoice = wiring.pay().invoice_for(token)
        return _file(invoice, "pdf", public=True)
    except NotFound:
        return bare_page("not_found", 404)
    except Gone:
        return bare_page("gone", 410)
    except Exception:  # noqa: BLE001 - a customer link never shows a stack trace
        logger.exception("pay page PDF failed")
        return bare_page("not_found", 404)


# -- credit notes and delivery -------------------------------------------------------------------------

@endpoint(documents_bp, "/invoices/{invoice_id}/credit-notes", ["POST"], role=CLERK)
def create_credit_note(ctx: Ctx, invoice_id: str) -> Any:
    from ..services.credit_notes import FIELDS

    idempotency = ctx.idempotency()
    replayed = bool(idempotency and wiring.ledger().get_idempotency(idempotency.scope, idempotency.key))
    credit = wiring.credit_notes().create(invoice_id, ctx.body(FIELDS, required=False), ctx.actor, idempotency)
    return created(present(credit), replayed)


@endpoint(documents_bp, "/invoices/{invoice_id}/send", ["POST"], role=CLERK)
def send_invoice(ctx: Ctx, invoice_id: str) -> Any:
    ctx.body((), required=False)
    invoice = wiring.delivery().resend(invoice_id, ctx.actor)
    return Response(body={"invoice_id": invoice.id, "delivery": invoice.delivery,
                          "note": "the email is sent within seconds (outbox); its status shows on the invoice"},
                    status_code=202, headers={"Content-Type": "application/json"})


# -- recurring billing ---------------------------------------------------------------------------------

@endpoint(documents_bp, "/recurring-schedules", ["POST"], role=CLERK)
def create_schedule(ctx: Ctx) -> Any:
    from ..domain.recurring import FIELDS

    # credit_override: {"reason"} lets a schedule through a credit hold (services/credit.py, audited)
    schedule, replayed = wiring.recurring().create(ctx.body((*FIELDS, "credit_override")), ctx.actor,
                                                   ctx.idempotency())
    return created(schedule.to_dict(), replayed)


@endpoint(documents_bp, "/recurring-schedules", ["GET"], role=READER)
def list_schedules(ctx: Ctx) -> Any:
    ctx.check_query(("customer_id", "limit", "cursor"))
    page = wiring.recurring().list(customer_id=ctx.q_str("customer_id", 64), limit=ctx.q_int("limit", 50, 1, 200),
                                   cursor=ctx.q_str("cursor", 2000))
    return page_body([s.to_dict() for s in page.items], page.next_cursor)


@endpoint(documents_bp, "/recurring-schedules/{schedule_id}", ["GET"], role=READER)
def get_schedule(ctx: Ctx, schedule_id: str) -> Any:
    return wiring.recurring().get(schedule_id).to_dict()


@endpoint(documents_bp, "/recurring-schedules/{schedule_id}", ["PATCH"], role=CLERK)
def update_schedule(ctx: Ctx, schedule_id: str) -> Any:
    from ..domain.recurring import PATCH_FIELDS

    return wiring.recurring().update(schedule_id, ctx.body(PATCH_FIELDS), ctx.actor).to_dict()


@endpoint(documents_bp, "/recurring/run", ["POST"], role=ADMIN)
def run_recurring(ctx: Ctx) -> Any:
    ctx.check_query(("as_of",))
    ctx.body((), required=False)
    as_of = ctx.q_date("as_of")
    if as_of is None:
        raise BadRequest("as_of is required: the date to run the recurring job for, e.g. ?as_of=2026-03-31",
                         field="as_of")
    return wiring.recurring().run(as_of).to_dict()


# -- e-invoicing settings and platform -------------------------------------------------------------------

@endpoint(documents_bp, "/settings/einvoicing", ["GET"], role=READER)
def get_einvoicing_settings(ctx: Ctx) -> Any:
    return wiring.einvoicing_settings().get().to_dict()


@endpoint(documents_bp, "/settings/einvoicing", ["PUT"], role=ADMIN)
def put_einvoicing_settings(ctx: Ctx) -> Any:
    from ..services.einvoicing import EInvoicingSettings

    body = ctx.body((*EInvoicingSettings.FIELDS, "version"))
    version = body.pop("version", None)
    return wiring.einvoicing_settings().put(body, ctx.actor, expected_version=version).to_dict()


@endpoint(documents_bp, "/einvoicing/statuses", ["POST"], role=CLERK)
def receive_platform_status(ctx: Ctx) -> Any:
    invoice = wiring.einvoicing().receive_status(ctx.body(), ctx.actor)
    return {"invoice_id": invoice.id, "number": invoice.number, "einvoice": invoice.einvoice}


# -- SES notifications ---------------------------------------------------------------------------------

def ses_events(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda handler for SES notifications delivered by SNS (the stage's SES events topic).

    Accepts an SNS event (``Records[].Sns.Message`` holding the SES JSON) or one SES notification
    itself (handy locally: call it with a real-shaped bounce). Returns what each record did.
    """
    records = event.get("Records")
    messages = ([json.loads(r["Sns"]["Message"]) for r in records if "Sns" in r] if records is not None
                else [event])
    results = [wiring.delivery().handle_ses_event(m) for m in messages]
    logger.info("ses events applied", extra={"count": len(results)})
    flush()
    return {"results": results}
