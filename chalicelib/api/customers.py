"""Customers: create, read, list, partial update."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice import Blueprint

from .. import wiring
from ..domain.auth import CLERK, READER
from .http import Ctx, created, endpoint, page_body

if TYPE_CHECKING:
    from ..domain.parties import Customer

customers_bp = Blueprint(__name__)


def present(customer: Customer) -> dict[str, Any]:
    return {"object": "customer", **customer.to_dict()}


@endpoint(customers_bp, "/customers", ["POST"], role=CLERK)
def create_customer(ctx: Ctx) -> Any:
    from ..domain.parties import Customer

    customer, replayed = wiring.customers().create(ctx.body(Customer.EDITABLE), ctx.actor, ctx.idempotency())
    return created(present(customer), replayed)


@endpoint(customers_bp, "/customers", ["GET"], role=READER)
def list_customers(ctx: Ctx) -> Any:
    ctx.check_query(("limit", "cursor", "on_hold"))
    page = wiring.customers().list(limit=ctx.q_int("limit", 50, 1, 200), cursor=ctx.q_str("cursor", 2000),
                                   on_hold=bool(ctx.q_bool("on_hold")))
    return page_body([present(c) for c in page.items], page.next_cursor)


@endpoint(customers_bp, "/customers/{customer_id}", ["GET"], role=READER)
def get_customer(ctx: Ctx, customer_id: str) -> Any:
    return present(wiring.customers().get(customer_id))


@endpoint(customers_bp, "/customers/{customer_id}", ["PATCH"], role=CLERK)
def update_customer(ctx: Ctx, customer_id: str) -> Any:
    from ..domain.parties import Customer

    body = ctx.body((*Customer.EDITABLE, "version"))
    version = body.pop("version", None)
    return present(wiring.customers().update(customer_id, body, ctx.actor, expected_version=version))
