"""Activity timeline per customer and per invoice: who did what, when.

Merged at read time from what the ledger already keeps, newest first:

- timeline entries written with the change they describe (``UnitOfWork.activity``): reminders
  (channel, step, template, provider message id, delivery result), call tasks and their outcome,
  notes, promises (recorded, kept, broken), payment plans, dispute decisions, write-offs,
  penalty invoices, evidence packs;
- payments of the customer (manual or provider);
- disputes as opened (hosted page, portal, API), with who opened them (their audit entry).

For one invoice: the customer's entries that concern it, its payments, its disputes and its own
audit trail (issue, payments allocated, credits, status changes, each with its actor).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from ..domain.auth import Actor
from ..domain.dunning_record import ActivityEntry
from ..domain.errors import ValidationError
from .ports import Clock, Ledger, PaymentQuery, UnitOfWork

MAX_NOTE = 4000


def _entry(at: datetime, kind: str, actor: str, summary: str, invoice_ids: Sequence[str] = (),
           data: Mapping[str, Any] | None = None, source: str = "activity", entry_id: str | None = None
           ) -> dict[str, Any]:
    return {"id": entry_id, "at": at.isoformat(), "kind": kind, "actor": actor, "summary": summary,
            "invoice_ids": list(invoice_ids), "data": dict(data or {}), "source": source}


class TimelineService:
    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock

    def add_note(self, customer_id: str, data: Mapping[str, Any], actor: Actor) -> ActivityEntry:
        """A note by finance or sales (clerk role), on the customer or on some of its invoices."""
        self._ledger.get_customer(customer_id)
        text = data.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_NOTE:
            raise ValidationError(f"text is required (at most {MAX_NOTE} characters)", field="text")
        ids = data.get("invoice_ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 50:
            raise ValidationError("invoice_ids must be a list of at most 50 invoice ids", field="invoice_ids")
        if ids:
            found = self._ledger.get_invoices(ids)
            for n, invoice_id in enumerate(ids):
                if invoice_id not in found or found[invoice_id].customer_id != customer_id:
                    raise ValidationError(f"invoice_ids[{n}]: {invoice_id} is not an invoice of this customer",
                                          field=f"invoice_ids[{n}]")
        uow = UnitOfWork(actor=actor, now=self._clock.now())
        entry = uow.activity(customer_id, "note", text.strip(), invoice_ids=ids)
        self._ledger.commit(uow)
        return entry

    def customer(self, customer_id: str, *, limit: int = 100, before: datetime | None = None,
                 kinds: Iterable[str] | None = None) -> dict[str, Any]:
        self._ledger.get_customer(customer_id)
        entries = [self._activity(a) for a in self._ledger.list_activity(customer_id, limit=limit, before=before).items]
        entries += self._payments(customer_id, limit, before)
        entries += self._disputes(customer_id, limit, before)
        return self._page(entries, limit, kinds)

    def invoice(self, invoice_id: str, *, limit: int = 100, before: datetime | None = None) -> dict[str, Any]:
        invoice = self._ledger.get_invoice(invoice_id)
        entries = []
        cursor = None
        seen = 0
        while seen < 2000:  # the customer's entries, newest first, until enough concern this invoice
            page = self._ledger.list_activity(invoice.customer_id, limit=200, cursor=cursor, before=before)
            seen += len(page.items)
            entries += [self._activity(a) for a in page.items if a.concerns(invoice_id)]
            cursor = page.next_cursor
            if not cursor or len(entries) >= limit:
                break
        entries += [e for e in self._payments(invoice.customer_id, 200, before) if invoice_id in e["invoice_ids"]]
        entries += [e for e in self._disputes(invoice.customer_id, 50, before) if invoice_id in e["invoice_ids"]]
        for a in self._ledger.list_audit(entity_type="invoice", entity_id=invoice_id, limit=limit).items:
            if before is not None and a.at >= before:
                continue
            if a.action in ("invoice.payment_allocated",):
                continue  # shown as the payment itself
            entries.append(_entry(a.at, "invoice", a.actor, a.action.replace("invoice.", "").replace("_", " "),
                                  (invoice_id,), {"action": a.action, "changes": a.after}, source="audit",
                                  entry_id=a.id))
        body = self._page(entries, limit, None)
        body["invoice_id"] = invoice_id
        return body

    # -- sources --------------------------------------------------------------------------------
    @staticmethod
    def _activity(a: ActivityEntry) -> dict[str, Any]:
        return _entry(a.at, a.kind, a.actor, a.summary, a.invoice_ids, a.data, entry_id=a.id)

    def _payments(self, customer_id: str, limit: int, before: datetime | None) -> list[dict[str, Any]]:
        out = []
        for p in self._ledger.query_payments(PaymentQuery(customer_id=customer_id, limit=min(limit, 200))).items:
            if before is not None and p.created_at >= before:
                continue
            actor = "customer (card / SEPA)" if p.source == "stripe" else f"{p.source}"
            allocated = ", ".join(f"{a.invoice_number or a.invoice_id} {a.amount}" for a in p.allocations)
            out.append(_entry(p.created_at, "payment", actor,
                              f"payment of {p.amount} {p.currency} by {p.method} received {p.received_on.isoformat()}"
                              + (f" ({allocated})" if allocated else ""),
                              [a.invoice_id for a in p.allocations],
                              {"payment_id": p.id, "method": p.method, "amount": str(p.amount),
                               "currency": p.currency, "received_on": p.received_on.isoformat(),
                               "unapplied": str(p.unapplied)}, source="payment", entry_id=p.id))
        return out

    def _disputes(self, customer_id: str, limit: int, before: datetime | None) -> list[dict[str, Any]]:
        out = []
        for d in self._ledger.list_disputes(customer_id=customer_id, limit=min(limit, 100)).items:
            if before is not None and d.created_at >= before:
                continue
            actor = "customer" if d.source in ("hosted_page", "portal") else "api"
            if actor == "api":
                audit = self._ledger.list_audit(entity_type="dispute", entity_id=d.id, limit=5).items
                opened = [a for a in audit if a.action == "dispute.open"]
                actor = opened[-1].actor if opened else actor
            out.append(_entry(d.created_at, "dispute", actor,
                              f"dispute opened ({d.reason}) via {d.source}: {d.message[:200]}", (d.invoice_id,),
                              {"dispute_id": d.id, "reason": d.reason, "status": d.status, "assignee": d.assignee},
                              source="dispute", entry_id=d.id))
        return out

    @staticmethod
    def _page(entries: list[dict[str, Any]], limit: int, kinds: Iterable[str] | None) -> dict[str, Any]:
        wanted = set(kinds) if kinds else None
        ordered = sorted((e for e in entries if wanted is None or e["kind"] in wanted),
                         key=lambda e: (e["at"], e["id"] or ""), reverse=True)
        page = ordered[:limit]
        more = len(ordered) > limit
        return {"object": "list", "data": page, "has_more": more,
                "next_before": page[-1]["at"] if more and page else None}
