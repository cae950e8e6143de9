"""The per-invoice dunning record: everything the sweep needs about one invoice, in one item.

Why one item holds copies: the sweep must read at most ~1 item per due step (goal
1.2). So the record carries

- ``invoice``: a projection of the invoice (number, status, amounts, due date, dispute /
  chargeback / collection status, pay token, buyer name and address), rewritten in the
  *same transaction* as every invoice change (``UnitOfWork.save_invoice`` adds a
  :class:`~chalicelib.services.ports.DunningTouch`), so it is never stale;
- ``customer``: a snapshot of the customer's dunning settings and payer profile, rewritten
  (fan-out over the customer's active records) when the settings, the customer's contact
  details or the profile change;
- ``promises``: active promises to pay and the next installment of a payment plan, which
  pause the ladder until their date;
- ``sent`` / ``claims``: what was sent (with the provider's message id) and the live leases
  of sends in flight, written only by the sweep, conditioned on the record's version.

The sparse index entry (``gsi2``: ``DUNNING#due#<shard>`` / ``<next action UTC>#<invoice id>``) exists
only while an action is pending. A change that may matter (any touch of the projection,
promises or snapshot) *wakes* the record: its index key becomes ``!wake#<invoice id>``, which
sorts before every date, so the next sweep re-decides it from fresh state whatever clock it
runs with (a replay with ``as_of`` in the past included).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Mapping

from .dunning import (CustomerDunningSettings, InvoiceDunningState, SentRecord)
from .invoice import CREDIT_NOTE, DRAFT, OPEN, Invoice
from .money import Money
from .payer_profile import PromiseToPay

DUE_INDEX = "DUNNING#due"
# The due index is spread over a few partitions (by invoice id): one index partition would take
# every record's write of a 10,000-step sweep; the sweep reads each shard's due range.
DUE_SHARDS = 8


def due_partition(invoice_id: str) -> str:
    import zlib

    return f"{DUE_INDEX}#{zlib.crc32(invoice_id.encode()) % DUE_SHARDS}"
WAKE_PREFIX = "!wake#"          # "!" sorts before digits: a woken record is due at any clock
# Projection fields whose change may move the next action (the others are display only).
RELEVANT = ("status", "amount_due", "currency", "due_date", "dispute_status", "chargeback_status",
            "collection_status")


def invoice_projection(inv: Invoice) -> dict[str, Any] | None:
    """What the sweep needs of an invoice; None for documents that are never dunned."""
    if inv.status == DRAFT or inv.kind == CREDIT_NOTE:
        return None
    buyer = inv.buyer or {}
    return {
        "id": inv.id, "customer_id": inv.customer_id, "number": inv.number, "kind": inv.kind,
        "status": inv.status, "currency": inv.currency, "amount_due": inv.amount_due.amount,
        "total": inv.totals.payable.amount,
        "issue_date": inv.issue_date.isoformat() if inv.issue_date else None,
        "due_date": inv.due_date.isoformat() if inv.due_date else None,
        "dispute_status": inv.dispute_status or "none", "chargeback_status": inv.chargeback_status or "none",
        "collection_status": inv.collection_status or "none", "pay_token": inv.pay_token,
        "paid_at": inv.paid_at.isoformat() if inv.paid_at else None,
        "buyer_name": buyer.get("name"), "buyer_address": buyer.get("address"),
    }


def projection_changed(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> bool:
    """True when a field that may move the next action differs (or the record is new)."""
    if after is None:
        return False
    if before is None:
        return True
    return any(before.get(k) != after.get(k) for k in RELEVANT)


def is_active(projection: Mapping[str, Any] | None) -> bool:
    """Still something to chase (open); paid, void and uncollectible records are history."""
    return bool(projection) and projection.get("status") == OPEN


# -- what the sweep writes ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SentEntry:
    """One channel of one step that went out (or a task that was created), with its proof."""

    step_key: str
    channel: str
    sent_at: datetime
    message_id: str | None
    template: str | None = None
    plan_id: str | None = None
    result: str = "sent"            # sent (accepted by the provider), created (task), stored (letter)
    proof_key: str | None = None    # the stored copy of what was sent (documents store)

    def to_record(self) -> SentRecord:
        return SentRecord(step_key=self.step_key, channel=self.channel, sent_at=self.sent_at,
                          message_id=self.message_id)

    def to_dict(self) -> dict[str, Any]:
        return {"step_key": self.step_key, "channel": self.channel, "sent_at": self.sent_at.isoformat(),
                "message_id": self.message_id, "template": self.template, "plan_id": self.plan_id,
                "result": self.result, "proof_key": self.proof_key}


@dataclass(frozen=True, slots=True)
class Claim:
    """A lease on (invoice, step, channel): while live, no other sweep sends it."""

    step_key: str
    channel: str
    claim_id: str
    lease_until: datetime
    plan_id: str | None = None

    def live(self, now: datetime) -> bool:
        return self.lease_until > now


@dataclass(frozen=True, slots=True)
class DunningRecord:
    invoice_id: str
    customer_id: str
    invoice: dict[str, Any] | None = None
    customer: dict[str, Any] | None = None
    promises: tuple[dict[str, Any], ...] = ()
    sent: tuple[SentEntry, ...] = ()
    claims: tuple[Claim, ...] = ()
    overdue_event_emitted: bool = False
    next_action_at: datetime | None = None
    woken: bool = False
    last_decision: dict[str, Any] | None = None
    failures: tuple[dict[str, Any], ...] = ()   # last send errors (kept short), for the API
    version: int = 0

    # -- derived ------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return is_active(self.invoice)

    def index_key(self) -> str | None:
        """The sparse index sort key, or None when nothing is pending."""
        if self.woken:
            return f"{WAKE_PREFIX}{self.invoice_id}"
        if self.next_action_at is None:
            return None
        return f"{utc_key(self.next_action_at)}#{self.invoice_id}"

    def live_claims(self, now: datetime) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.live(now))

    def has_sent(self, step_key: str, channel: str) -> bool:
        return any(s.step_key == step_key and s.channel == channel and s.message_id for s in self.sent)

    def promise_list(self) -> tuple[PromiseToPay, ...]:
        out = []
        for p in self.promises:
            try:
                out.append(PromiseToPay(amount=Money(int(p["amount"]), p["currency"]),
                                        promised_date=date.fromisoformat(p["promised_date"]),
                                        made_on=date.fromisoformat(p["made_on"]), id=p.get("id"),
                                        invoice_id=self.invoice_id))
            except (KeyError, ValueError):  # a malformed entry must not stop the ladder
                continue
        return tuple(out)

    def state(self) -> InvoiceDunningState:
        """The pure decision's input, from the projection and what was sent."""
        inv = self.invoice or {}
        currency = inv.get("currency") or "EUR"
        return InvoiceDunningState(
            invoice_id=self.invoice_id, customer_id=self.customer_id, status=inv.get("status", "draft"),
            due_date=date.fromisoformat(inv["due_date"]) if inv.get("due_date") else None,
            amount_due=Money(int(inv.get("amount_due") or 0), currency), number=inv.get("number"),
            issue_date=date.fromisoformat(inv["issue_date"]) if inv.get("issue_date") else None,
            sent=tuple(s.to_record() for s in self.sent if s.message_id),
            dispute_status=inv.get("dispute_status") or "none",
            chargeback_open=inv.get("chargeback_status") == "open",
            collection_status=inv.get("collection_status") or "none",
            promises=self.promise_list(), overdue_event_emitted=self.overdue_event_emitted)

    def settings(self) -> CustomerDunningSettings | None:
        snap = self.customer or {}
        raw = snap.get("settings")
        if not raw:
            return None
        return CustomerDunningSettings.from_dict(raw, customer_id=self.customer_id)

    def to_dict(self) -> dict[str, Any]:
        return {"invoice_id": self.invoice_id, "customer_id": self.customer_id, "invoice": self.invoice,
                "customer": self.customer, "promises": list(self.promises),
                "sent": [s.to_dict() for s in self.sent],
                "claims": [{"step_key": c.step_key, "channel": c.channel, "lease_until": c.lease_until.isoformat(),
                            "plan_id": c.plan_id} for c in self.claims],
                "overdue_event_emitted": self.overdue_event_emitted,
                "next_action_at": self.next_action_at.isoformat() if self.next_action_at else None,
                "woken": self.woken, "last_decision": self.last_decision, "failures": list(self.failures),
                "version": self.version}


def utc_key(moment: datetime) -> str:
    """Sortable UTC text of an instant (seconds): the index key of a next action."""
    from datetime import timezone

    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def touched(record: DunningRecord, *, invoice: dict[str, Any] | None = None,
            customer: dict[str, Any] | None = None, promises: tuple[dict[str, Any], ...] | None = None,
            wake: bool = False) -> DunningRecord:
    """The effect of a :class:`~chalicelib.services.ports.DunningTouch` (used by the fake ledger)."""
    out = record
    if invoice is not None:
        out = replace(out, invoice=invoice)
    if customer is not None:
        out = replace(out, customer=customer)
    if promises is not None:
        out = replace(out, promises=tuple(promises))
    if wake:
        out = replace(out, woken=True)
    return replace(out, version=out.version + 1)


# -- activity (timeline) ----------------------------------------------------------------------

ACTIVITY_KINDS = ("reminder", "call_task", "call_outcome", "note", "dispute", "promise", "payment_plan",
                  "write_off", "penalty_invoice", "evidence_pack", "overdue", "settings")


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    """One line of a customer's timeline (append-only)."""

    id: str
    customer_id: str
    at: datetime
    kind: str
    actor: str
    summary: str
    invoice_ids: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def concerns(self, invoice_id: str) -> bool:
        return invoice_id in self.invoice_ids

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "activity", "customer_id": self.customer_id, "at": self.at.isoformat(),
                "kind": self.kind, "actor": self.actor, "summary": self.summary,
                "invoice_ids": list(self.invoice_ids), "data": self.data}
