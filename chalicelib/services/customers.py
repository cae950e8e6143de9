"""Use cases on customers."""

from __future__ import annotations

from typing import Any, Mapping

from ..domain.auth import Actor
from ..domain.errors import Conflict
from ..domain.ids import new_id
from ..domain.parties import Customer, new_customer, patched_customer
from .common import IdempotencyRequest, diff, idempotent, with_retries
from .ports import Clock, Ledger, Page, UnitOfWork
from .settings import SettingsService


class CustomerService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings

    def _jurisdiction(self) -> str:
        seller = self._settings.seller_or_none()
        return seller.jurisdiction if seller else "FR"

    def create(self, data: Mapping[str, Any], actor: Actor,
               idempotency: IdempotencyRequest | None = None) -> tuple[Customer, bool]:
        """Create a customer; raises ``ValidationError`` naming the faulty field."""
        customer_id = new_id("cus")

        def run() -> Customer:
            now = self._clock.now()
            customer = new_customer(customer_id, data, now=now, jurisdiction=self._jurisdiction())
            uow = UnitOfWork(actor=actor, now=now)
            customer = uow.create(customer)
            uow.audit("customer.create", "customer", customer.id, None, customer.to_dict())
            if idempotency:
                uow.claim_idempotency(idempotency.record("customer", customer.id, now))
            self._ledger.commit(uow)
            return customer

        return idempotent(self._ledger, idempotency, "customer", run, self._ledger.get_customer)

    def update(self, customer_id: str, patch: Mapping[str, Any], actor: Actor,
               expected_version: int | None = None) -> Customer:
        """Partial update. Issued invoices keep the identity copied when they were issued."""

        def run() -> Customer:
            current = self._ledger.get_customer(customer_id)
            if expected_version is not None and current.version != expected_version:
                raise Conflict(f"customer {customer_id} is at version {current.version}, not {expected_version}: "
                               "read it again and reapply your change", code="version_mismatch")
            now = self._clock.now()
            updated = patched_customer(current, patch, now=now, jurisdiction=self._jurisdiction())
            uow = UnitOfWork(actor=actor, now=now)
            saved = uow.save(updated)
            before, after = diff(current.to_dict(), saved.to_dict())
            uow.audit("customer.update", "customer", customer_id, before, after)
            if set(after or {}) & {"name", "email", "phone", "language", "timezone"}:
                # the dunning records carry the contact details: refresh them (issue 5, docs/dunning.md)
                uow.emit("dunning.customer_changed", {"customer_id": customer_id})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    def get(self, customer_id: str) -> Customer:
        return self._ledger.get_customer(customer_id)

    def list(self, *, limit: int = 50, cursor: str | None = None, on_hold: bool = False) -> Page[Customer]:
        """Customers by name; ``on_hold``: only those on credit hold (their own sparse index)."""
        return self._ledger.list_customers(limit=limit, cursor=cursor, on_hold=on_hold)
