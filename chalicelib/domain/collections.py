"""Work for people: tasks for collectors, and customers contesting invoices (disputes).

"Dispute" here means a customer contesting an invoice (price, quantity...);
a card or SEPA reversal from the payment network is a *chargeback*
(see provider.py), to keep the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from .errors import InvalidTransition, ValidationError
from .money import Money

# -- tasks ----------------------------------------------------------------------------------------
TASK_KINDS = ("call", "chargeback", "dispute_review", "collection_failed", "review")
TASK_OPEN, TASK_DONE = "open", "done"


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    kind: str
    customer_id: str
    title: str
    due_on: date
    created_at: datetime
    updated_at: datetime
    invoice_ids: tuple[str, ...] = ()
    status: str = TASK_OPEN
    details: dict[str, Any] | None = None
    outcome: str | None = None
    completed_by: str | None = None
    version: int = 0

    def complete(self, outcome: str, actor: str, now: datetime) -> Task:
        if self.status != TASK_OPEN:
            raise InvalidTransition(f"task {self.id} is already {self.status}")
        if not outcome or len(outcome) > 2000:
            raise ValidationError("outcome is required (at most 2000 characters): what happened", field="outcome")
        return replace(self, status=TASK_DONE, outcome=outcome, completed_by=actor, updated_at=now)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "task", "kind": self.kind, "customer_id": self.customer_id,
                "title": self.title, "due_on": self.due_on.isoformat(), "invoice_ids": list(self.invoice_ids),
                "status": self.status, "details": self.details, "outcome": self.outcome,
                "completed_by": self.completed_by, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat(), "version": self.version}


# -- disputes ---------------------------------------------------------------------------------------
DISPUTE_REASONS = ("price", "quantity", "quality", "not_received", "already_paid", "other")
DISPUTE_OPEN, DISPUTE_ACCEPTED, DISPUTE_REJECTED = "open", "accepted", "rejected"


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    invoice_id: str
    customer_id: str
    reason: str
    message: str
    source: str  # hosted_page, portal, api
    created_at: datetime
    updated_at: datetime
    status: str = DISPUTE_OPEN
    assignee: str | None = None
    resolution: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    version: int = 0

    @classmethod
    def open(cls, dispute_id: str, *, invoice_id: str, customer_id: str, reason: Any, message: Any, source: str,
             now: datetime) -> Dispute:
        if reason not in DISPUTE_REASONS:
            raise ValidationError(f"reason must be one of {', '.join(DISPUTE_REASONS)}", field="reason")
        if not isinstance(message, str) or not message.strip() or len(message) > 4000:
            raise ValidationError("message is required (at most 4000 characters): say what is wrong",
                                  field="message")
        return cls(id=dispute_id, invoice_id=invoice_id, customer_id=customer_id, reason=reason,
                   message=message.strip(), source=source, created_at=now, updated_at=now)

    def resolve(self, status: str, resolution: str, actor: str, now: datetime) -> Dispute:
        if self.status != DISPUTE_OPEN:
            raise InvalidTransition(f"dispute {self.id} is already {self.status}")
        if status not in (DISPUTE_ACCEPTED, DISPUTE_REJECTED):
            raise ValidationError("status must be accepted or rejected", field="status")
        return replace(self, status=status, resolution=resolution, resolved_by=actor, resolved_at=now,
                       updated_at=now)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "dispute", "invoice_id": self.invoice_id, "customer_id": self.customer_id,
                "reason": self.reason, "message": self.message, "source": self.source, "status": self.status,
                "assignee": self.assignee, "resolution": self.resolution, "resolved_by": self.resolved_by,
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                "version": self.version}


# -- promises to pay and payment plans -----------------------------------------------------------
PROMISE_ACTIVE, PROMISE_KEPT, PROMISE_BROKEN, PROMISE_CANCELLED = "active", "kept", "broken", "cancelled"
PLAN_ACTIVE, PLAN_COMPLETED, PLAN_BROKEN, PLAN_CANCELLED = "active", "completed", "broken", "cancelled"


@dataclass(frozen=True, slots=True)
class Promise:
    """A customer's promise to pay ``amount`` by ``promised_on`` (kept/broken computed automatically)."""

    id: str
    customer_id: str
    invoice_ids: tuple[str, ...]
    amount: Money
    promised_on: date
    source: str  # collector, hosted_page, portal, api
    created_by: str
    created_at: datetime
    updated_at: datetime
    status: str = PROMISE_ACTIVE
    resolved_at: datetime | None = None
    note: str | None = None
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "promise", "customer_id": self.customer_id,
                "invoice_ids": list(self.invoice_ids), "amount": str(self.amount),
                "currency": self.amount.currency, "promised_on": self.promised_on.isoformat(),
                "source": self.source, "created_by": self.created_by, "status": self.status, "note": self.note,
                "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                "version": self.version}


@dataclass(frozen=True, slots=True)
class Installment:
    due_on: date
    amount: Money
    paid: int = 0          # minor units collected against this installment
    status: str = "pending"  # pending, paid, late

    def to_dict(self) -> dict[str, Any]:
        return {"due_on": self.due_on.isoformat(), "amount": str(self.amount),
                "paid": str(Money(self.paid, self.amount.currency)), "status": self.status}


@dataclass(frozen=True, slots=True)
class PaymentPlan:
    """An échéancier: an overdue balance split into dated installments."""

    id: str
    customer_id: str
    invoice_ids: tuple[str, ...]
    installments: tuple[Installment, ...]
    created_by: str
    created_at: datetime
    updated_at: datetime
    status: str = PLAN_ACTIVE
    note: str | None = None
    version: int = 0

    @property
    def next_due(self) -> date | None:
        pending = [i.due_on for i in self.installments if i.status != "paid"]
        return min(pending) if pending else None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "payment_plan", "customer_id": self.customer_id,
                "invoice_ids": list(self.invoice_ids), "installments": [i.to_dict() for i in self.installments],
                "status": self.status, "note": self.note, "created_by": self.created_by,
                "next_due": self.next_due.isoformat() if self.next_due else None,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                "version": self.version}
