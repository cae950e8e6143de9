"""Payment plans (échéanciers): an overdue balance split into dated installments.

While a plan is active, the dunning ladder of its invoices is replaced by the plan's own chasing:
the next unpaid installment sits on their dunning records as a promise until its date plus a
grace period. The sweep (``run``) then, for each active plan whose next installment is near:

- ``REMIND_DAYS`` before the date: a reminder email (``installment_due``), or, when the customer
  has an active SEPA mandate, the debit of that installment is scheduled on its date (outbox
  ``stripe.collect`` per invoice portion, the same handler as the SEPA collections);
- the day after the date, unpaid: ``installment_late`` email; after ``GRACE_DAYS`` still unpaid,
  the plan is **broken** (``payment_plan.broken``): the promise leaves the records and the normal
  ladder resumes for what is left;
- paid installments (cash received on the invoices since the plan began) move the plan on; all
  paid: **completed**.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from ..domain.auth import Actor
from ..domain.collections import (PLAN_ACTIVE, PLAN_BROKEN, PLAN_CANCELLED, PLAN_COMPLETED, Installment,
                                  PaymentPlan)
from ..domain.errors import Conflict, ValidationError
from ..domain.ids import new_id
from ..domain.invoice import OPEN, Invoice
from ..domain.money import Money
from .common import with_retries
from .events import envelope
from .ports import Clock, Ledger, UnitOfWork
from .promises import promise_entry, set_record_promises

REMIND_DAYS = 3
GRACE_DAYS = 7
MAX_INSTALLMENTS = 24
MAX_INVOICES = 30
ACTOR = Actor.system("payment-plans")
SEPA_LIMIT = Money(1_000_000, "EUR")


def _date(value: Any, name: str) -> date:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be an ISO date such as \"2026-12-15\"", field=name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{name} {value!r} is not an ISO date such as \"2026-12-15\"", field=name) from None


def _add_months(day: date, months: int) -> date:
    import calendar

    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def split_evenly(total: Money, count: int, first: date, every: Any) -> list[Installment]:
    """``count`` installments of the same amount (the remainder on the last), monthly or every N days."""
    base = total.amount // count
    out = []
    for i in range(count):
        amount = base if i < count - 1 else total.amount - base * (count - 1)
        due = _add_months(first, i) if every in (None, "month") else first + timedelta(days=int(every) * i)
        out.append(Installment(due_on=due, amount=Money(amount, total.currency)))
    return out


class PlanService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: Any) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings

    def _tz(self) -> str:
        return self._settings.timezone()

    def today(self) -> date:
        return self._clock.today(self._tz())

    # -- create / cancel ------------------------------------------------------------------------
    def create(self, data: Mapping[str, Any], actor: Actor) -> PaymentPlan:
        """Split the balance of ``invoice_ids`` into ``installments`` ([{due_on, amount}]) or into
        ``count`` equal ones from ``first_due_on`` (``every``: "month" or a number of days)."""
        ids = data.get("invoice_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise ValidationError("invoice_ids must list the overdue invoices the plan covers", field="invoice_ids")
        if len(ids) > MAX_INVOICES:
            raise ValidationError(f"a plan covers at most {MAX_INVOICES} invoices", field="invoice_ids")
        ids = list(dict.fromkeys(ids))
        note = data.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > 1000):
            raise ValidationError("note must be a text of at most 1000 characters", field="note")

        def run() -> PaymentPlan:
            invoices = self._ledger.get_invoices(ids)
            chosen: list[Invoice] = []
            for n, invoice_id in enumerate(ids):
                inv = invoices.get(invoice_id)
                if inv is None or inv.status != OPEN or not inv.amount_due.is_positive:
                    raise ValidationError(f"invoice_ids[{n}]: {invoice_id} is not an open invoice with something due",
                                          field=f"invoice_ids[{n}]")
                chosen.append(inv)
            if len({i.customer_id for i in chosen}) != 1 or len({i.currency for i in chosen}) != 1:
                raise ValidationError("the invoices of a plan belong to one customer and share one currency",
                                      field="invoice_ids")
            customer_id = chosen[0].customer_id
            for plan in self._ledger.list_plans(customer_id=customer_id, status=PLAN_ACTIVE, limit=50).items:
                overlap = set(plan.invoice_ids) & set(ids)
                if overlap:
                    raise Conflict(f"invoice {sorted(overlap)[0]} is already in active plan {plan.id}: cancel it first",
                                   code="plan_exists")
            currency = chosen[0].currency
            balance = Money(sum(i.amount_due.amount for i in chosen), currency)
            installments = self._installments(data, balance)
            now = self._clock.now()
            plan = PaymentPlan(id=new_id("pln"), customer_id=customer_id, invoice_ids=tuple(ids),
                               installments=tuple(installments), created_by=actor.name, created_at=now, updated_at=now,
                               note=note.strip() if isinstance(note, str) else None)
            uow = UnitOfWork(actor=actor, now=now)
            plan = uow.create(plan)
            self._hold(uow, plan, chosen)
            uow.audit("payment_plan.create", "payment_plan", plan.id, None, plan.to_dict())
            uow.activity(customer_id, "payment_plan",
                         f"payment plan of {len(installments)} installments for {balance} {currency} "
                         f"({installments[0].due_on.isoformat()} to {installments[-1].due_on.isoformat()})",
                         invoice_ids=plan.invoice_ids, data={"plan_id": plan.id, "status": PLAN_ACTIVE})
            uow.emit("event", envelope("payment_plan.created", {
                "plan_id": plan.id, "customer_id": customer_id, "invoice_ids": list(ids), "total": str(balance),
                "currency": currency, "installments": [i.to_dict() for i in installments]}, now))
            self._ledger.commit(uow)
            return plan

        return with_retries(run)

    def _installments(self, data: Mapping[str, Any], balance: Money) -> list[Installment]:
        today = self.today()
        raw = data.get("installments")
        if raw is not None:
            if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_INSTALLMENTS:
                raise ValidationError(f"installments must list 1 to {MAX_INSTALLMENTS} {{due_on, amount}}",
                                      field="installments")
            out = []
            for n, item in enumerate(raw):
                if not isinstance(item, Mapping):
                    raise ValidationError(f"installments[{n}] must be an object {{due_on, amount}}",
                                          field=f"installments[{n}]")
                amount = Money.parse(item.get("amount"), balance.currency, field=f"installments[{n}].amount")
                if not amount.is_positive:
                    raise ValidationError(f"installments[{n}].amount must be greater than 0",
                                          field=f"installments[{n}].amount")
                out.append(Installment(due_on=_date(item.get("due_on"), f"installments[{n}].due_on"), amount=amount))
        else:
            count = data.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or not 2 <= count <= MAX_INSTALLMENTS:
                raise ValidationError(f"give installments, or count (2 to {MAX_INSTALLMENTS}) with first_due_on",
                                      field="count")
            every = data.get("every", "month")
            if every != "month" and (isinstance(every, bool) or not isinstance(every, int) or not 7 <= every <= 92):
                raise ValidationError("every must be \"month\" or a number of days between 7 and 92", field="every")
            out = split_evenly(balance, count, _date(data.get("first_due_on"), "first_due_on"), every)
        for n, inst in enumerate(out):
            if inst.due_on < today:
                raise ValidationError(f"installments[{n}].due_on {inst.due_on.isoformat()} is in the past",
                                      field=f"installments[{n}].due_on")
            if n and inst.due_on <= out[n - 1].due_on:
                raise ValidationError(f"installments[{n}].due_on must come after the previous installment",
                                      field=f"installments[{n}].due_on")
        total = sum(i.amount.amount for i in out)
        if total != balance.amount:
            raise ValidationError(f"the installments add up to {Money(total, balance.currency)} but the balance of "
                                  f"these invoices is {balance} {balance.currency}: they must be equal",
                                  field="installments")
        return out

    def _hold(self, uow: UnitOfWork, plan: PaymentPlan, invoices: list[Invoice]) -> None:
        """Put the next unpaid installment on the invoices' dunning records (a promise until its date
        plus the grace period), or take the plan off them when it is over."""
        nxt = next((i for i in plan.installments if i.status != "paid"), None)
        entries: list[dict[str, Any]] = []
        if plan.status == PLAN_ACTIVE and nxt is not None:
            made_on = plan.created_at.astimezone(ZoneInfo(self._tz())).date()
            entries = [promise_entry(plan.id, nxt.amount, nxt.due_on + timedelta(days=GRACE_DAYS),
                                     min(made_on, nxt.due_on), "plan")]

        def change(current: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [p for p in current if p.get("id") != plan.id] + entries

        set_record_promises(self._ledger, uow, invoices, change)

    def cancel(self, plan_id: str, actor: Actor) -> PaymentPlan:
        def run() -> PaymentPlan:
            plan = self._ledger.get_plan(plan_id)
            if plan.status != PLAN_ACTIVE:
                raise Conflict(f"payment plan {plan_id} is already {plan.status}", code="not_active")
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            saved = uow.save(replace(plan, status=PLAN_CANCELLED, updated_at=uow.now))
            self._hold(uow, saved, list(self._ledger.get_invoices(plan.invoice_ids).values()))
            uow.activity(plan.customer_id, "payment_plan", f"payment plan {plan.id} cancelled: reminders resume",
                         invoice_ids=plan.invoice_ids, data={"plan_id": plan.id, "status": PLAN_CANCELLED})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    # -- the daily run --------------------------------------------------------------------------
    def run(self, today: date, now: datetime) -> dict[str, int]:
        report = {"reminded": 0, "debits": 0, "late": 0, "broken": 0, "completed": 0}
        cursor = None
        while True:
            page = self._ledger.list_plans(status=PLAN_ACTIVE, due_before=today + timedelta(days=REMIND_DAYS + 1),
                                           limit=100, cursor=cursor)
            for plan in page.items:
                for key, n in with_retries(lambda p=plan: self._process(p.id, today, now)).items():
                    report[key] = report.get(key, 0) + n
            cursor = page.next_cursor
            if not cursor:
                return report

    def _process(self, plan_id: str, today: date, now: datetime) -> dict[str, int]:
        plan = self._ledger.get_plan(plan_id)
        done: dict[str, int] = {}
        if plan.status != PLAN_ACTIVE:
            return done
        invoices = self._ledger.get_invoices(plan.invoice_ids)
        currency = plan.installments[0].amount.currency
        left = sum(i.amount_due.amount for i in invoices.values() if i.status == OPEN)
        total = sum(i.amount.amount for i in plan.installments)
        paid_total = max(0, total - left)
        running = 0
        installments = []
        for inst in plan.installments:
            covered = max(0, min(inst.amount.amount, paid_total - running))
            running += inst.amount.amount
            status = "paid" if covered >= inst.amount.amount else inst.status
            installments.append(replace(inst, paid=covered, status=status))
        updated = replace(plan, installments=tuple(installments), updated_at=now)
        uow = UnitOfWork(actor=ACTOR, now=now)
        open_invoices = [i for i in invoices.values() if i.status == OPEN]
        index, nxt = next(((n, i) for n, i in enumerate(installments) if i.status != "paid"), (None, None))
        if nxt is None or index is None:
            updated = replace(updated, status=PLAN_COMPLETED)
            uow.activity(plan.customer_id, "payment_plan", f"payment plan {plan.id} completed",
                         invoice_ids=plan.invoice_ids, actor=ACTOR.name, data={"plan_id": plan.id,
                                                                               "status": PLAN_COMPLETED})
            uow.emit("event", envelope("payment_plan.completed", {"plan_id": plan.id,
                                                                  "customer_id": plan.customer_id}, now))
            done["completed"] = 1
        elif today > nxt.due_on + timedelta(days=GRACE_DAYS):
            updated = replace(updated, status=PLAN_BROKEN)
            uow.activity(plan.customer_id, "payment_plan",
                         f"payment plan {plan.id} broken: installment {index + 1} ({nxt.amount} {currency}, due "
                         f"{nxt.due_on.isoformat()}) unpaid; reminders resume", invoice_ids=plan.invoice_ids,
                         actor=ACTOR.name, data={"plan_id": plan.id, "status": PLAN_BROKEN})
            uow.emit("event", envelope("payment_plan.broken", {
                "plan_id": plan.id, "customer_id": plan.customer_id, "installment": index + 1,
                "amount": str(nxt.amount), "due_on": nxt.due_on.isoformat()}, now))
            uow.emit("dunning.refresh_customer", {"customer_id": plan.customer_id, "as_of": today.isoformat()})
            done["broken"] = 1
        elif today > nxt.due_on and nxt.status != "late":
            installments[index] = replace(nxt, status="late")
            updated = replace(updated, installments=tuple(installments))
            uow.emit("dunning.plan_mail", {"plan_id": plan.id, "index": index, "kind": "installment_late",
                                           "as_of": today.isoformat()})
            uow.activity(plan.customer_id, "payment_plan", f"installment {index + 1} of plan {plan.id} is late",
                         invoice_ids=plan.invoice_ids, actor=ACTOR.name, data={"plan_id": plan.id, "index": index})
            done["late"] = 1
        elif today >= nxt.due_on - timedelta(days=REMIND_DAYS) and nxt.status == "pending":
            debit = self._debit(uow, plan, nxt, open_invoices, now)
            installments[index] = replace(nxt, status="collecting" if debit else "reminded")
            updated = replace(updated, installments=tuple(installments))
            uow.emit("dunning.plan_mail", {"plan_id": plan.id, "index": index, "kind": "installment_due",
                                           "debit": debit, "as_of": today.isoformat()})
            done["debits" if debit else "reminded"] = 1
        if updated == replace(plan, updated_at=now):
            return done
        saved = uow.save(updated)
        self._hold(uow, saved, open_invoices)
        self._ledger.commit(uow)
        return done

    def _debit(self, uow: UnitOfWork, plan: PaymentPlan, inst: Installment, invoices: list[Invoice],
               now: datetime) -> bool:
        """Schedule the SEPA debit of an installment (per invoice portion) when a mandate allows it."""
        customer = self._ledger.get_customer(plan.customer_id)
        if not (customer.mandate and customer.mandate.active) or inst.amount.currency != "EUR" \
                or inst.amount > SEPA_LIMIT or any(i.dispute_status == "open" for i in invoices):
            return False
        remaining = inst.amount.amount
        at = datetime.combine(inst.due_on, time(6, 0), tzinfo=ZoneInfo(self._tz())).astimezone(timezone.utc)
        for inv in sorted(invoices, key=lambda i: (i.due_date or date.max, i.id)):
            if remaining <= 0:
                break
            portion = min(remaining, inv.amount_due.amount)
            if portion <= 0:
                continue
            uow.save_invoice(inv, replace(inv, collection_status="processing", updated_at=now),
                             action="invoice.collection_requested", note={"payment_plan_id": plan.id})
            uow.emit("stripe.collect", {"invoice_id": inv.id, "amount": portion,
                                        "attempt_key": f"plan-{plan.id}-{inst.due_on.isoformat()}-{inv.id}"},
                     not_before=max(at, now))
            remaining -= portion
        return True


def plan_context(plan: PaymentPlan, index: int, *, debit: bool = False) -> dict[str, Any]:
    inst = plan.installments[index]
    return {"index": index + 1, "count": len(plan.installments), "amount": inst.amount, "due_on": inst.due_on,
            "grace_until": inst.due_on + timedelta(days=GRACE_DAYS), "debit": debit}
