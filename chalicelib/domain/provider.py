"""What payment providers tell us, reduced to ledger facts.

A provider (Stripe) reports one payment through several events that may arrive
twice, concurrently or out of order (checkout.session.completed,
checkout.session.async_payment_succeeded and payment_intent.succeeded all say
"this PaymentIntent succeeded"). :class:`IntentState` keeps, per PaymentIntent,
the furthest state seen; transitions never go backwards, and cash is recorded
once, when the state first becomes ``succeeded``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .money import Money

# Order of PaymentIntent states; a later event can only move forward.
REQUIRES_PAYMENT = "requires_payment_method"
PROCESSING = "processing"
FAILED = "failed"
SUCCEEDED = "succeeded"
CANCELED = "canceled"
_RANK = {REQUIRES_PAYMENT: 0, PROCESSING: 1, FAILED: 2, CANCELED: 2, SUCCEEDED: 3}


@dataclass(frozen=True, slots=True)
class Mandate:
    """A SEPA Direct Debit mandate (Core scheme) held by a customer."""

    id: str
    status: str  # active, inactive, pending
    reference: str | None
    payment_method: str | None
    created_at: datetime

    @property
    def active(self) -> bool:
        return self.status == "active"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "reference": self.reference,
                "payment_method": self.payment_method, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    id: str
    amount: Money
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Chargeback:
    """A card dispute or a SEPA return (Stripe's ``charge.dispute.*``)."""

    id: str
    amount: Money
    reason: str | None
    status: str  # open, won, lost
    created_at: datetime
    contestable: bool = True


@dataclass(frozen=True, slots=True)
class IntentState:
    """Everything we learned about one PaymentIntent, with an optimistic version."""

    id: str
    status: str
    amount: Money
    customer_id: str | None
    invoice_ids: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    method: str = "card"
    charge_id: str | None = None
    payment_id: str | None = None
    failure_reason: str | None = None
    refunds: tuple[ProviderRefund, ...] = ()
    chargebacks: tuple[Chargeback, ...] = field(default_factory=tuple)
    collection: bool = False  # an off-session SEPA collection started by us
    version: int = 0

    def advances_to(self, status: str) -> bool:
        """True if ``status`` is progress (never regress: processing after succeeded is ignored)."""
        if status == self.status:
            return False
        if self.status == FAILED and status == PROCESSING:
            return True  # a retried collection
        return _RANK.get(status, -1) > _RANK.get(self.status, -1)

    def moved(self, status: str, now: datetime, **changes: Any) -> IntentState:
        return replace(self, status=status, updated_at=now, **changes)

    def refund(self, refund_id: str) -> ProviderRefund | None:
        return next((r for r in self.refunds if r.id == refund_id), None)

    def chargeback(self, dispute_id: str) -> Chargeback | None:
        return next((c for c in self.chargebacks if c.id == dispute_id), None)

    @property
    def refunded(self) -> Money:
        total = Money.zero(self.amount.currency)
        for r in self.refunds:
            total = total + r.amount
        return total
