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

Paging (``before`` = the previous page's ``next_before``) is a bound on each source's query, never a
filter after a fixed-size fetch, so every page is complete and in order however far back it goes:

- activity entries: their sort key is the entry's time;
- disputes: the customer index key ``DSP#<opened at>#<id>``;
- payments: the customer index key ``PAY#<received on>#<id>`` carries the received *date*. A payment
  sits on the timeline at the time it was recorded, kept within the (UTC) day it was received: a
  payment recorded later than its received date (a bank statement, a back-dated cheque) shows on its
  received day, so the timeline order follows the index order and a page is read as far as the last
  received day it reaches, no further;
- an invoice's payments: only the customer's payments received on the days the invoice's own history
  has payments (its ledger history), not the customer's last N.

Each source returns one more entry than the page when there is one, so ``has_more`` is exact.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from ..domain.auth import Actor
from ..domain.dunning_record import ActivityEntry
from ..domain.errors import ValidationError
from ..domain.invoice import CREDIT_NOTE, Invoice
from ..domain.payment import Payment
from .ports import Clock, Ledger, PaymentQuery, UnitOfWork

MAX_NOTE = 4000
PAGE = 200


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(timezone.utc)


def payment_at(p: Payment) -> datetime:
    """Where a payment sits on the timeline: when it was recorded, within the UTC day it was received
    (so that ordering by it agrees with the index order, by received date)."""
    first = datetime.combine(p.received_on, time.min, tzinfo=timezone.utc)
    last = first + timedelta(days=1) - timedelta(microseconds=1)
    return min(max(p.created_at.astimezone(timezone.utc), first), last)


def _payment_days(invoice: Invoice) -> tuple[date, date] | None:
    """First and last received dates of the payments allocated to ``invoice`` (its ledger history dates
    each allocation by the payment's received date); None when nothing was ever paid on it."""
    if invoice.kind == CREDIT_NOTE or not invoice.ledger_history:
        return None
    from ..domain.aggregates import PAYMENT, ReceivableHistory

    days = [e.on for e in ReceivableHistory.from_dict(invoice.ledger_history).entries if e.kind == PAYMENT]
    return (min(days), max(days)) if days else None


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
        before = _utc(before)
        want = limit + 1  # one more than the page: has_more is then exact
        entries = [self._activity(a) for a in self._ledger.list_activity(customer_id, limit=want, before=before).items]
        entries += self._payments(customer_id, want, before)
        entries += self._disputes(customer_id, want, before)
        return self._page(entries, limit, kinds)

    def invoice(self, invoice_id: str, *, limit: int = 100, before: datetime | None = None) -> dict[str, Any]:
        invoice = self._ledger.get_invoice(invoice_id)
        before = _utc(before)
        want = limit + 1
        entries = []
        cursor = None
        seen = 0
        while seen < 2000:  # the customer's entries, newest first, until enough concern this invoice
            page = self._ledger.list_activity(invoice.customer_id, limit=PAGE, cursor=cursor, before=before)
            seen += len(page.items)
            entries += [self._activity(a) for a in page.items if a.concerns(invoice_id)]
            cursor = page.next_cursor
            if not cursor or len(entries) >= want:
                break
        days = _payment_days(invoice)
        if days is not None:
            entries += self._payments(invoice.customer_id, want, before, received=days, invoice_id=invoice_id)
        # disputes are opened on an issued invoice: read back to its creation, no further
        entries += self._disputes(invoice.customer_id, want, before, invoice_id=invoice_id, since=invoice.created_at)
        cursor = None
        audit: list[dict[str, Any]] = []
        while len(audit) < want:  # newest first; paged past the entries at or after ``before``
            page_a = self._ledger.list_audit(entity_type="invoice", entity_id=invoice_id, limit=PAGE, cursor=cursor)
            for a in page_a.items:
                if before is not None and a.at >= before:
                    continue
                if a.action in ("invoice.payment_allocated",):
                    continue  # shown as the payment itself
                audit.append(_entry(a.at, "invoice", a.actor,
                                    a.action.replace("invoice.", "").replace("_", " "), (invoice_id,),
                                    {"action": a.action, "changes": a.after}, source="audit", entry_id=a.id))
            cursor = page_a.next_cursor
            if not cursor:
                break
        entries += audit
        body = self._page(entries, limit, None)
        body["invoice_id"] = invoice_id
        return body

    # -- sources --------------------------------------------------------------------------------
    @staticmethod
    def _activity(a: ActivityEntry) -> dict[str, Any]:
        return _entry(a.at, a.kind, a.actor, a.summary, a.invoice_ids, a.data, entry_id=a.id)

    def _payments(self, customer_id: str, limit: int, before: datetime | None, *,
                  received: tuple[date, date] | None = None, invoice_id: str | None = None) -> list[dict[str, Any]]:
        """The ``limit`` latest payments placed before ``before`` (see :func:`payment_at`), newest first:
        the customer index read by received date, bounded by ``before``'s day (and ``received``), up to
        the end of the received day of the ``limit``-th (the ones after it sit earlier on the timeline)."""
        low, high = received if received else (None, None)
        if before is not None:
            high = min(high, before.date()) if high else before.date()
        if low and high and high < low:
            return []
        out: list[dict[str, Any]] = []
        last_day: date | None = None
        cursor = None
        while True:
            page = self._ledger.query_payments(PaymentQuery(customer_id=customer_id, received_from=low,
                                                            received_to=high, limit=PAGE, cursor=cursor))
            for p in page.items:
                if last_day is not None and p.received_on < last_day:
                    return out
                at = payment_at(p)
                if (before is not None and at >= before) or (invoice_id and not any(
                        a.invoice_id == invoice_id for a in p.allocations)):
                    continue
                out.append(self._payment(p, at))
                if len(out) >= limit and last_day is None:
                    last_day = p.received_on
            cursor = page.next_cursor
            if not cursor:
                return out

    @staticmethod
    def _payment(p: Payment, at: datetime) -> dict[str, Any]:
        actor = "customer (card / SEPA)" if p.source == "stripe" else f"{p.source}"
        allocated = ", ".join(f"{a.invoice_number or a.invoice_id} {a.amount}" for a in p.allocations)
        return _entry(at, "payment", actor,
                      f"payment of {p.amount} {p.currency} by {p.method} received {p.received_on.isoformat()}"
                      + (f" ({allocated})" if allocated else ""),
                      [a.invoice_id for a in p.allocations],
                      {"payment_id": p.id, "method": p.method, "amount": str(p.amount),
                       "currency": p.currency, "received_on": p.received_on.isoformat(),
                       "recorded_at": p.created_at.isoformat(), "unapplied": str(p.unapplied)},
                      source="payment", entry_id=p.id)

    def _disputes(self, customer_id: str, limit: int, before: datetime | None, *, invoice_id: str | None = None,
                  since: datetime | None = None) -> list[dict[str, Any]]:
        """The ``limit`` latest disputes opened before ``before`` (a bound on the customer index key),
        newest first; for one invoice, those of ``invoice_id``, read back to ``since``."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self._ledger.list_disputes(customer_id=customer_id, limit=min(max(limit, 1), 100), cursor=cursor,
                                              before=before)
            for d in page.items:
                if since is not None and d.created_at < since:
                    return out
                if invoice_id and d.invoice_id != invoice_id:
                    continue
                out.append(self._dispute(d))
                if len(out) >= limit:
                    return out
            cursor = page.next_cursor
            if not cursor:
                return out

    def _dispute(self, d: Any) -> dict[str, Any]:
        actor = "customer" if d.source in ("hosted_page", "portal") else "api"
        if actor == "api":
            audit = self._ledger.list_audit(entity_type="dispute", entity_id=d.id, limit=5).items
            opened = [a for a in audit if a.action == "dispute.open"]
            actor = opened[-1].actor if opened else actor
        return _entry(d.created_at, "dispute", actor,
                      f"dispute opened ({d.reason}) via {d.source}: {d.message[:200]}", (d.invoice_id,),
                      {"dispute_id": d.id, "reason": d.reason, "status": d.status, "assignee": d.assignee},
                      source="dispute", entry_id=d.id)

    @staticmethod
    def _page(entries: list[dict[str, Any]], limit: int, kinds: Iterable[str] | None) -> dict[str, Any]:
        wanted = set(kinds) if kinds else None
        ordered = sorted((e for e in entries if wanted is None or e["kind"] in wanted),
                         key=lambda e: (e["at"], e["id"] or ""), reverse=True)
        page = ordered[:limit]
        # entries of the same instant stay on one page: the next one starts strictly before it
        while page and len(page) < len(ordered) and ordered[len(page)]["at"] == page[-1]["at"]:
            page.append(ordered[len(page)])
        more = len(ordered) > len(page)
        return {"object": "list", "data": page, "has_more": more,
                "next_before": page[-1]["at"] if more and page else None}
