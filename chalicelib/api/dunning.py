"""Dunning (issue 5): the sweep, policies and rates, customer settings and profiles, promises,
payment plans, disputes, timelines, penalties, evidence packs and write-offs. docs/dunning.md."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from chalice import Blueprint, Response

from .. import wiring
from ..domain.auth import ADMIN, CLERK, READER
from ..domain.errors import BadRequest
from .http import Ctx, created, endpoint, page_body

dunning_bp = Blueprint(__name__)
API_BUDGET_S = 20.0


def _as_of(ctx: Ctx) -> date | None:
    return ctx.q_date("as_of")


def _before(ctx: Ctx) -> datetime | None:
    value = ctx.q_str("before", 40)
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest("before must be an ISO date-time, the next_before of the previous page",
                         field="before") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# -- the sweep -----------------------------------------------------------------------------------

@endpoint(dunning_bp, "/dunning/run", ["POST"], role=ADMIN)
def run_dunning(ctx: Ctx) -> Any:
    """Run the sweep now, or for ``as_of`` (noon seller time that day): replays a month in a minute.
    At most ~20 s of sending per call (API Gateway stops at 29 s): ``deferred_to_next_sweep`` says
    how many messages are left; call again."""
    ctx.check_query(("as_of",))
    ctx.body((), required=False)
    service = wiring.dunning()
    as_of = _as_of(ctx)
    if as_of is not None:
        from ..services.dunning import as_of_instant

        report = service.run(as_of_instant(as_of, service.timezone()), budget_s=API_BUDGET_S)
    else:
        report = service.run(budget_s=API_BUDGET_S)
    return {"object": "dunning_run", "as_of": as_of.isoformat() if as_of else None, **report.to_dict()}


@endpoint(dunning_bp, "/dunning/backfill", ["POST"], role=ADMIN)
def backfill(ctx: Ctx) -> Any:
    ctx.check_query(("cursor",))
    ctx.body((), required=False)
    return wiring.dunning().backfill(cursor=ctx.q_str("cursor", 2000))


# -- policies and rates --------------------------------------------------------------------------

@endpoint(dunning_bp, "/dunning/policies", ["GET"], role=READER)
def list_policies(ctx: Ctx) -> Any:
    return page_body([p.to_dict() for p in wiring.dunning_config().policies().values()], None)


@endpoint(dunning_bp, "/dunning/policies/{policy_id}", ["GET"], role=READER)
def get_policy(ctx: Ctx, policy_id: str) -> Any:
    return wiring.dunning_config().policy(policy_id).to_dict()


@endpoint(dunning_bp, "/dunning/policies/{policy_id}", ["PUT"], role=ADMIN)
def put_policy(ctx: Ctx, policy_id: str) -> Any:
    return wiring.dunning_config().put_policy(policy_id, ctx.body(), ctx.actor).to_dict()


@endpoint(dunning_bp, "/dunning/policies/{policy_id}", ["DELETE"], role=ADMIN)
def delete_policy(ctx: Ctx, policy_id: str) -> Any:
    wiring.dunning_config().delete_policy(policy_id, ctx.actor)
    return {"id": policy_id, "deleted": True}


@endpoint(dunning_bp, "/dunning/rates", ["GET"], role=READER)
def get_rates(ctx: Ctx) -> Any:
    return wiring.dunning_config().rates_view()


@endpoint(dunning_bp, "/dunning/rates", ["PUT"], role=ADMIN)
def put_rates(ctx: Ctx) -> Any:
    wiring.dunning_config().put_rates(ctx.body(), ctx.actor)
    return wiring.dunning_config().rates_view()


# -- customers -----------------------------------------------------------------------------------

@endpoint(dunning_bp, "/customers/{customer_id}/dunning", ["GET"], role=READER)
def customer_dunning(ctx: Ctx, customer_id: str) -> Any:
    return wiring.dunning().customer_view(customer_id)


@endpoint(dunning_bp, "/customers/{customer_id}/dunning", ["PATCH", "PUT"], role=CLERK)
def put_customer_dunning(ctx: Ctx, customer_id: str) -> Any:
    from ..domain.dunning import CustomerDunningSettings

    wiring.dunning_config().put_customer_settings(customer_id, ctx.body(CustomerDunningSettings.EDITABLE), ctx.actor)
    service = wiring.dunning()
    changed = wiring.dunning_config().resync_customer(customer_id, wiring.invoices().today(), service.timezone())
    return {**service.customer_view(customer_id), "records_updated": changed}


@endpoint(dunning_bp, "/customers/{customer_id}/timeline", ["GET"], role=READER)
def customer_timeline(ctx: Ctx, customer_id: str) -> Any:
    ctx.check_query(("limit", "before", "kind"))
    kinds = ctx.q_str("kind", 200)
    return wiring.timeline().customer(customer_id, limit=ctx.q_int("limit", 100, 1, 500), before=_before(ctx),
                                      kinds=kinds.split(",") if kinds else None)


@endpoint(dunning_bp, "/customers/{customer_id}/notes", ["POST"], role=CLERK)
def add_note(ctx: Ctx, customer_id: str) -> Any:
    entry = wiring.timeline().add_note(customer_id, ctx.body(("text", "invoice_ids")), ctx.actor)
    return created(entry.to_dict(), False)


@endpoint(dunning_bp, "/customers/{customer_id}/evidence-pack", ["POST"], role=CLERK)
def evidence_pack(ctx: Ctx, customer_id: str) -> Any:
    body = ctx.body(("invoice_ids",), required=False)
    ids = body.get("invoice_ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise BadRequest("invoice_ids must be a list of invoice ids", field="invoice_ids")
    content, name = wiring.penalties().evidence_pack(customer_id, ids, ctx.actor)
    return Response(body=content, status_code=200,
                    headers={"Content-Type": "application/zip", "Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "private, no-store"})


# -- invoices ------------------------------------------------------------------------------------

@endpoint(dunning_bp, "/invoices/{invoice_id}/dunning", ["GET"], role=READER)
def invoice_dunning(ctx: Ctx, invoice_id: str) -> Any:
    return wiring.dunning().invoice_view(invoice_id)


@endpoint(dunning_bp, "/invoices/{invoice_id}/timeline", ["GET"], role=READER)
def invoice_timeline(ctx: Ctx, invoice_id: str) -> Any:
    ctx.check_query(("limit", "before"))
    return wiring.timeline().invoice(invoice_id, limit=ctx.q_int("limit", 100, 1, 500), before=_before(ctx))


@endpoint(dunning_bp, "/invoices/{invoice_id}/penalties", ["GET"], role=READER)
def invoice_penalties(ctx: Ctx, invoice_id: str) -> Any:
    ctx.check_query(("as_of",))
    return wiring.penalties().for_invoice(invoice_id, _as_of(ctx))


@endpoint(dunning_bp, "/invoices/{invoice_id}/penalty-invoice", ["POST"], role=CLERK)
def penalty_invoice(ctx: Ctx, invoice_id: str) -> Any:
    ctx.check_query(("as_of",))
    ctx.body((), required=False)
    invoice = wiring.penalties().penalty_invoice(invoice_id, ctx.actor, _as_of(ctx))
    from .invoices import present

    return created(present(invoice), False)


@endpoint(dunning_bp, "/invoices/{invoice_id}/write-off", ["POST"], role=CLERK)
def write_off(ctx: Ctx, invoice_id: str) -> Any:
    body = ctx.body(("reason",))
    return created(wiring.penalties().write_off(invoice_id, body.get("reason"), ctx.actor), False)


# -- promises to pay -----------------------------------------------------------------------------

@endpoint(dunning_bp, "/promises", ["POST"], role=CLERK)
def create_promise(ctx: Ctx) -> Any:
    body = ctx.body(("invoice_ids", "amount", "promised_on", "note"))
    return created(wiring.promises().record(body, ctx.actor, source="collector").to_dict(), False)


@endpoint(dunning_bp, "/promises", ["GET"], role=READER)
def list_promises(ctx: Ctx) -> Any:
    ctx.check_query(("customer_id", "status", "limit", "cursor"))
    page = wiring.ledger().list_promises(customer_id=ctx.q_str("customer_id", 64),
                                         status=ctx.q_choice("status", ("active", "kept", "broken", "cancelled")),
                                         limit=ctx.q_int("limit", 50, 1, 200), cursor=ctx.q_str("cursor", 2000))
    return page_body([p.to_dict() for p in page.items], page.next_cursor)


@endpoint(dunning_bp, "/promises/{promise_id}", ["GET"], role=READER)
def get_promise(ctx: Ctx, promise_id: str) -> Any:
    return wiring.ledger().get_promise(promise_id).to_dict()


@endpoint(dunning_bp, "/promises/{promise_id}/cancel", ["POST"], role=CLERK)
def cancel_promise(ctx: Ctx, promise_id: str) -> Any:
    ctx.body((), required=False)
    return wiring.promises().cancel(promise_id, ctx.actor).to_dict()


# -- payment plans -------------------------------------------------------------------------------

@endpoint(dunning_bp, "/payment-plans", ["POST"], role=CLERK)
def create_plan(ctx: Ctx) -> Any:
    body = ctx.body(("invoice_ids", "installments", "count", "first_due_on", "every", "note"))
    return created(wiring.plans().create(body, ctx.actor).to_dict(), False)


@endpoint(dunning_bp, "/payment-plans", ["GET"], role=READER)
def list_plans(ctx: Ctx) -> Any:
    ctx.check_query(("customer_id", "status", "limit", "cursor"))
    page = wiring.ledger().list_plans(customer_id=ctx.q_str("customer_id", 64),
                                      status=ctx.q_choice("status", ("active", "completed", "broken", "cancelled")),
                                      limit=ctx.q_int("limit", 50, 1, 200), cursor=ctx.q_str("cursor", 2000))
    return page_body([p.to_dict() for p in page.items], page.next_cursor)


@endpoint(dunning_bp, "/payment-plans/{plan_id}", ["GET"], role=READER)
def get_plan(ctx: Ctx, plan_id: str) -> Any:
    return wiring.ledger().get_plan(plan_id).to_dict()


@endpoint(dunning_bp, "/payment-plans/{plan_id}/cancel", ["POST"], role=CLERK)
def cancel_plan(ctx: Ctx, plan_id: str) -> Any:
    ctx.body((), required=False)
    return wiring.plans().cancel(plan_id, ctx.actor).to_dict()


# -- disputes and call tasks ---------------------------------------------------------------------

@endpoint(dunning_bp, "/disputes/{dispute_id}/assign", ["POST"], role=CLERK)
def assign_dispute(ctx: Ctx, dispute_id: str) -> Any:
    return wiring.disputes().assign(dispute_id, ctx.body(("assignee",)), ctx.actor).to_dict()


@endpoint(dunning_bp, "/disputes/{dispute_id}/accept", ["POST"], role=CLERK)
def accept_dispute(ctx: Ctx, dispute_id: str) -> Any:
    return wiring.disputes().accept(dispute_id, ctx.body(("resolution", "credit_note")), ctx.actor)


@endpoint(dunning_bp, "/disputes/{dispute_id}/reject", ["POST"], role=CLERK)
def reject_dispute(ctx: Ctx, dispute_id: str) -> Any:
    return wiring.disputes().reject(dispute_id, ctx.body(("resolution",)), ctx.actor).to_dict()


@endpoint(dunning_bp, "/tasks/{task_id}/complete", ["POST"], role=CLERK)
def complete_task(ctx: Ctx, task_id: str) -> Any:
    body = ctx.body(("outcome",))
    return wiring.dunning().complete_task(task_id, body.get("outcome"), ctx.actor).to_dict()
