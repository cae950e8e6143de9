"""Promises to pay: recorded by a collector (API) or by the customer (hosted invoice page).

A promise covers some open invoices of one customer: ``amount`` by ``promised_on``. While it is
active it pauses the dunning ladder of those invoices (it is copied onto their dunning records,
in the same transaction as the promise). The day after its date, the sweep resolves it:

- **kept** when the customer paid at least ``amount`` on those invoices between the day the
  promise was made and its date (both included);
- **broken** otherwise: ``promise.broken`` event, timeline entry, and the ladder resumes (the
  record is woken; the payer profile counts broken promises).

A new promise on an invoice supersedes the active one (status ``cancelled``, said on the timeline).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from ..domain.auth import Actor
from ..domain.collections import (PROMISE_ACTIVE, PROMISE_BROKEN, PROMISE_CANCELLED, PROMISE_KEPT, Promise)
from ..domain.dunning_record import DunningRecord, invoice_projection
from ..domain.errors import Conflict, ValidationError
from ..domain.ids import new_id
from ..domain.invoice import OPEN, Invoice
from ..domain.money import Money
from ..domain.payer_profile import KEPT, PromiseToPay, promise_status
from .common import with_retries
from .events import envelope
from .ports import Clock, Ledger, PaymentQuery, UnitOfWork

MAX_INVOICES = 40
COLLECTOR_HORIZON_DAYS = 90
CUSTOMER_HORIZON_DAYS = 30
ACTOR = Actor.system("dunning")


def promise_entry(promise_id: str, amount: Money, promised_on: date, made_on: date, source: str) -> dict[str, Any]:
    """How a promise (or a payment-plan installment) sits on a dunning record."""
    return {"id": promise_id, "amount": amount.amount, "currency": amount.currency,
            "promised_date": promised_on.isoformat(), "made_on": made_on.isoformat(), "source": source}


def _parse_date(value: Any, name: str) -> date:
    if not isinstance(value, str):
        raise ValidationError(f"{name} is required: an ISO date such as \"2026-12-15\"", field=name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{name} {value!r} is not an ISO date such as \"2026-12-15\"", field=name) from None


def set_record_promises(ledger: Ledger, uow: UnitOfWork, invoices: Iterable[Invoice],
                        change: Any) -> None:
    """Rewrite the ``promises`` of the invoices' dunning records (``change(list) -> list``) and wake them.
    Existing records are saved on their version (a concurrent sweep makes the caller retry); a missing
    one is created by a touch with the invoice's projection."""
    from .ports import DunningTouch

    invoices = list(invoices)
    records = ledger.get_dunning([i.id for i in invoices], consistent=True)
    touched = {op.invoice_id for op in uow.operations if isinstance(op, DunningTouch)}
    for inv in invoices:
        record: DunningRecord | None = records.get(inv.id)
        if inv.id in touched:  # the invoice changes in this transaction too: one operation per item
            uow.touch_dunning(inv.id, inv.customer_id, promises=tuple(change(list(record.promises) if record else [])),
                              wake=True)
        elif record is None:
            uow.touch_dunning(inv.id, inv.customer_id, invoice=invoice_projection(inv),
                              promises=tuple(change([])), wake=True)
        else:
            uow.save(replace(record, promises=tuple(change(list(record.promises))), woken=True))


class PromiseService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: Any) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings

    def _tz(self) -> str:
        return self._settings.timezone()

    def today(self) -> date:
        return self._clock.today(self._tz())

    def record(self, data: Mapping[str, Any], actor: Actor, *, source: str = "collector",
               customer_id: str | None = None) -> Promise:
        """Record a promise; raises ValidationError naming the field (``invoice_ids``, ``amount``,
        ``promised_on``) and nothing is written."""
        ids = data.get("invoice_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise ValidationError("invoice_ids must list the open invoices the customer promises to pay",
                                  field="invoice_ids")
        if len(ids) > MAX_INVOICES:
            raise ValidationError(f"a promise covers at most {MAX_INVOICES} invoices", field="invoice_ids")
        ids = list(dict.fromkeys(ids))
        note = data.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > 1000):
            raise ValidationError("note must be a text of at most 1000 characters", field="note")
        horizon = CUSTOMER_HORIZON_DAYS if source in ("hosted_page", "portal") else COLLECTOR_HORIZON_DAYS

        def run() -> Promise:
            invoices = self._ledger.get_invoices(ids)
            chosen = []
            for n, invoice_id in enumerate(ids):
                inv = invoices.get(invoice_id)
                if inv is None or (customer_id and inv.customer_id != customer_id):
                    raise ValidationError(f"invoice_ids[{n}]: {invoice_id} is not an invoice of this customer",
                                          field=f"invoice_ids[{n}]")
                if inv.status != OPEN or not inv.amount_due.is_positive:
                    raise ValidationError(f"invoice_ids[{n}]: {inv.number or invoice_id} is {inv.status}, nothing to "
                                          "promise", field=f"invoice_ids[{n}]")
                chosen.append(inv)
            customers = {i.customer_id for i in chosen}
            currencies = {i.currency for i in chosen}
            if len(customers) != 1:
                raise ValidationError("the invoices of a promise belong to one customer", field="invoice_ids")
            if len(currencies) != 1:
                raise ValidationError("the invoices of a promise share one currency", field="invoice_ids")
            currency = currencies.pop()
            due = Money(sum(i.amount_due.amount for i in chosen), currency)
            amount = Money.parse(data.get("amount", str(due)), currency, field="amount")
            if not amount.is_positive:
                raise ValidationError("amount must be greater than 0", field="amount")
            if amount > due:
                raise ValidationError(f"amount {amount} exceeds the {due} {currency} due on these invoices",
                                      field="amount")
            today = self.today()
            promised_on = _parse_date(data.get("promised_on"), "promised_on")
            if promised_on < today:
                raise ValidationError(f"promised_on {promised_on.isoformat()} is in the past (today is "
                                      f"{today.isoformat()})", field="promised_on")
            if promised_on > today + timedelta(days=horizon):
                raise ValidationError(f"promised_on must be within {horizon} days (by "
                                      f"{(today + timedelta(days=horizon)).isoformat()}): for a longer delay, agree a "
                                      "payment plan", field="promised_on")
            now = self._clock.now()
            cid = chosen[0].customer_id
            promise = Promise(id=new_id("prm"), customer_id=cid, invoice_ids=tuple(i.id for i in chosen),
                              amount=amount, promised_on=promised_on, source=source, created_by=actor.name,
                              created_at=now, updated_at=now, note=note.strip() if isinstance(note, str) else None)
            uow = UnitOfWork(actor=actor, now=now)
            promise = uow.create(promise)
            # Supersede the active promises of these invoices.
            superseded: set[str] = set()
            records = self._ledger.get_dunning(promise.invoice_ids, consistent=True)
            for r in records.values():
                for p in r.promises:
                    if p.get("source") != "plan":
                        superseded.add(str(p.get("id")))
            for old_id in sorted(superseded):
                try:
                    old = self._ledger.get_promise(old_id)
                except Exception:  # noqa: BLE001 - a stale reference
                    continue
                if old.status == PROMISE_ACTIVE:
                    uow.save(replace(old, status=PROMISE_CANCELLED, resolved_at=now, updated_at=now,
                                     note=(old.note or "") + f" [superseded by {promise.id}]"))
            entry = promise_entry(promise.id, amount, promised_on, today, source)

            def change(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [p for p in current if str(p.get("id")) not in superseded] + [entry]

            set_record_promises(self._ledger, uow, chosen, change)
            numbers = ", ".join(i.number or i.id for i in chosen)
            uow.audit("promise.create", "promise", promise.id, None, promise.to_dict())
            uow.activity(cid, "promise", f"promise to pay {amount} {currency} by {promised_on.isoformat()} "
                                         f"({numbers}), recorded via {source}",
                         invoice_ids=promise.invoice_ids, data={"promise_id": promise.id, "status": PROMISE_ACTIVE,
                                                                "superseded": sorted(superseded)})
            uow.emit("event", envelope("promise.created", {
                "promise_id": promise.id, "customer_id": cid, "invoice_ids": list(promise.invoice_ids),
                "amount": str(amount), "currency": currency, "promised_on": promised_on.isoformat(),
                "source": source}, now))
            self._ledger.commit(uow)
            return promise

        return with_retries(run)

    def cancel(self, promise_id: str, actor: Actor) -> Promise:
        def run() -> Promise:
            promise = self._ledger.get_promise(promise_id)
            if promise.status != PROMISE_ACTIVE:
                raise Conflict(f"promise {promise_id} is already {promise.status}", code="not_active")
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            saved = uow.save(replace(promise, status=PROMISE_CANCELLED, resolved_at=uow.now, updated_at=uow.now))
            self._release(uow, promise)
            uow.activity(promise.customer_id, "promise", f"promise {promise.id} cancelled",
                         invoice_ids=promise.invoice_ids, data={"promise_id": promise.id, "status": "cancelled"})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    def _release(self, uow: UnitOfWork, promise: Promise) -> None:
        invoices = self._ledger.get_invoices(promise.invoice_ids)
        set_record_promises(self._ledger, uow, invoices.values(),
                            lambda current: [p for p in current if p.get("id") != promise.id])

    def paid_between(self, promise: Promise, start: date, end: date) -> list[tuple[date, Money]]:
        """Cash allocated to the promise's invoices, received from ``start`` to ``end``."""
        out: list[tuple[date, Money]] = []
        cursor = None
        ids = set(promise.invoice_ids)
        while True:
            page = self._ledger.query_payments(PaymentQuery(customer_id=promise.customer_id, received_from=start,
                                                            received_to=end, limit=200, cursor=cursor))
            for payment in page.items:
                for a in payment.allocations:
                    if a.invoice_id in ids:
                        out.append((payment.received_on, a.amount))
            cursor = page.next_cursor
            if not cursor:
                return out

    def check(self, today: date, now: datetime) -> dict[str, int]:
        """Resolve the active promises whose date passed (the sweep runs this first)."""
        kept = broken = 0
        cursor = None
        while True:
            page = self._ledger.list_promises(status=PROMISE_ACTIVE, due_before=today, limit=100, cursor=cursor)
            for promise in page.items:
                outcome = with_retries(lambda p=promise: self._resolve(p.id, today, now))
                kept += outcome == PROMISE_KEPT
                broken += outcome == PROMISE_BROKEN
            cursor = page.next_cursor
            if not cursor:
                return {"kept": kept, "broken": broken}

    def _resolve(self, promise_id: str, today: date, now: datetime) -> str | None:
        promise = self._ledger.get_promise(promise_id)
        if promise.status != PROMISE_ACTIVE or promise.promised_on >= today:
            return None
        made_on = promise.created_at.astimezone(ZoneInfo(self._tz())).date()
        check = PromiseToPay(amount=promise.amount, promised_date=promise.promised_on, made_on=min(made_on,
                                                                                                  promise.promised_on))
        status = promise_status(check, self.paid_between(promise, check.made_on, promise.promised_on), today=today)
        final = PROMISE_KEPT if status == KEPT else PROMISE_BROKEN
        uow = UnitOfWork(actor=ACTOR, now=now)
        uow.save(replace(promise, status=final, resolved_at=now, updated_at=now))
        self._release(uow, promise)
        uow.activity(promise.customer_id, "promise",
                     f"promise to pay {promise.amount} {promise.amount.currency} by {promise.promised_on.isoformat()} "
                     + ("kept" if final == PROMISE_KEPT else "broken: reminders resume"),
                     invoice_ids=promise.invoice_ids, actor=ACTOR.name,
                     data={"promise_id": promise.id, "status": final})
        uow.emit("event", envelope(f"promise.{final}", {
            "promise_id": promise.id, "customer_id": promise.customer_id, "invoice_ids": list(promise.invoice_ids),
            "amount": str(promise.amount), "currency": promise.amount.currency,
            "promised_on": promise.promised_on.isoformat()}, now))
        uow.emit("dunning.refresh_customer", {"customer_id": promise.customer_id, "as_of": today.isoformat()})
        self._ledger.commit(uow)
        return final

    def for_customer(self, customer_id: str, limit: int = 50, cursor: str | None = None) -> Any:
        return self._ledger.list_promises(customer_id=customer_id, limit=limit, cursor=cursor)


def made_on(promise: Promise, tz: str) -> date:
    return promise.created_at.astimezone(ZoneInfo(tz)).date()


def ids_of(invoices: Sequence[Invoice]) -> list[str]:
    return [i.id for i in invoices]
