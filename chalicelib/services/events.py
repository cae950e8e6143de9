"""Business events sent to subscribers (ERP, CRM, sales) through the outbox.

Every event has the same envelope, documented in README ("Events"):
``{"id", "type", "occurred_at", "data"}``; ``id`` is stable across retries so
subscribers can de-duplicate (delivery is at least once).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..domain.ids import new_id
from ..domain.invoice import Invoice
from ..domain.payment import Payment

EVENT_TOPIC = "event"


def envelope(event_type: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"id": new_id("evt"), "type": event_type, "occurred_at": now.isoformat(), "data": data}


def invoice_event(event_type: str, inv: Invoice, now: datetime) -> dict[str, Any]:
    return envelope(event_type, {
        "invoice_id": inv.id, "number": inv.number, "kind": inv.kind, "customer_id": inv.customer_id,
        "currency": inv.currency, "total": str(inv.totals.total), "amount_due": str(inv.amount_due),
        "issue_date": inv.issue_date.isoformat() if inv.issue_date else None,
        "due_date": inv.due_date.isoformat() if inv.due_date else None, "status": inv.status,
    }, now)


def payment_event(event_type: str, payment: Payment, now: datetime) -> dict[str, Any]:
    return envelope(event_type, {
        "payment_id": payment.id, "customer_id": payment.customer_id, "amount": str(payment.amount),
        "currency": payment.currency, "method": payment.method, "received_on": payment.received_on.isoformat(),
        "allocations": [{"invoice_id": a.invoice_id, "amount": str(a.amount)} for a in payment.allocations],
        "unapplied": str(payment.unapplied),
    }, now)
