"""Monthly recurring billing: a schedule of invoice lines on a customer.

A schedule issues one invoice per month (a *period*, ``"2026-03"``) on its
``day_of_month`` (the 31st means the last day of shorter months), from
``start`` until ``end`` (inclusive, optional). ``timing`` says which month the
invoice bills: ``in_advance`` the month it is issued in (subscriptions),
``in_arrears`` the month before (service already delivered); the lines carry
that month as their invoicing period (BG-26).

``next_run`` is the date of the next invoice to issue (seller-local); the
daily job issues every period whose date has come (catching up after
downtime) and moves ``next_run`` on, in the same transaction as the invoice
and a marker per schedule and period, so a period is never billed twice.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Mapping

from .errors import InvalidTransition, ValidationError
from .fields import reject_unknown
from .invoice import MAX_LINES, OPERATION_CATEGORIES, InvoiceLine
from .money import check_currency
from .terms import PaymentTerms

ACTIVE, PAUSED, ENDED = "active", "paused", "ended"
STATUSES = (ACTIVE, PAUSED, ENDED)
IN_ADVANCE, IN_ARREARS = "in_advance", "in_arrears"
TIMINGS = (IN_ADVANCE, IN_ARREARS)
MAX_SCHEDULE_LINES = 100
FIELDS = ("customer_id", "currency", "lines", "day_of_month", "start", "end", "timing", "operation_category",
          "payment_terms", "purchase_order", "buyer_reference", "note")
PATCH_FIELDS = ("status", "end", "version")


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def _month(period: str) -> tuple[int, int]:
    year, month = period.split("-")
    return int(year), int(month)


def add_months(period: str, months: int) -> str:
    year, month = _month(period)
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_bounds(period: str) -> tuple[date, date]:
    year, month = _month(period)
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def run_date(period: str, day_of_month: int) -> date:
    """The day a period's invoice is issued: ``day_of_month``, or the month's last day if shorter."""
    year, month = _month(period)
    return date(year, month, min(day_of_month, calendar.monthrange(year, month)[1]))


def _parse_date(value: Any, name: str) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be an ISO date such as \"2026-01-31\"", field=name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{name} {value!r} is not an ISO date such as \"2026-01-31\"", field=name) from None


def _text(data: Mapping[str, Any], key: str, max_len: int) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise ValidationError(f"{key} must be a string of at most {max_len} characters", field=key)
    return value.strip()


@dataclass(frozen=True, slots=True)
class RecurringSchedule:
    id: str
    customer_id: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    day_of_month: int
    start: date
    next_run: date | None
    created_at: datetime
    updated_at: datetime
    end: date | None = None
    timing: str = IN_ADVANCE
    status: str = ACTIVE
    operation_category: str | None = None
    payment_terms: PaymentTerms | None = None
    purchase_order: str | None = None
    buyer_reference: str | None = None
    note: str | None = None
    last_period: str | None = None
    last_invoice_id: str | None = None
    invoices_issued: int = 0
    # Flags raised by run hooks (e.g. credit checks) on the last invoice: issued anyway, flagged for review.
    flags: tuple[str, ...] = ()
    version: int = 0

    # -- periods --------------------------------------------------------------------------------
    def first_run(self, on_or_after: date) -> date | None:
        """The first invoice date on or after ``on_or_after`` (and ``start``), None past ``end``."""
        day = max(on_or_after, self.start)
        period = period_of(day)
        when = run_date(period, self.day_of_month)
        if when < day:
            when = run_date(add_months(period, 1), self.day_of_month)
        return None if self.end is not None and when > self.end else when

    def due_periods(self, as_of: date, limit: int = 24) -> list[str]:
        """Periods whose invoice date has come by ``as_of`` and that are not billed yet (oldest first)."""
        if self.status != ACTIVE or self.next_run is None:
            return []
        out: list[str] = []
        period = period_of(self.next_run)
        while len(out) < limit:
            when = run_date(period, self.day_of_month)
            if when > as_of or (self.end is not None and when > self.end):
                break
            out.append(period)
            period = add_months(period, 1)
        return out

    def billed_month(self, period: str) -> tuple[date, date]:
        """The month an invoice of ``period`` bills (its lines' invoicing period)."""
        return month_bounds(period if self.timing == IN_ADVANCE else add_months(period, -1))

    def invoice_draft(self, period: str) -> dict[str, Any]:
        """The draft input (as POST /invoices takes it) of the invoice for ``period``."""
        first, last = self.billed_month(period)
        lines = []
        for line in self.lines:
            data = line.to_dict()
            data.pop("net_amount", None)
            data["period_start"] = (line.period_start or first).isoformat()
            data["period_end"] = (line.period_end or last).isoformat()
            lines.append({k: v for k, v in data.items() if v is not None})
        draft: dict[str, Any] = {"customer_id": self.customer_id, "currency": self.currency, "lines": lines}
        for key in ("operation_category", "purchase_order", "buyer_reference", "note"):
            if getattr(self, key) is not None:
                draft[key] = getattr(self, key)
        if self.payment_terms is not None:
            draft["payment_terms"] = self.payment_terms.to_dict()
        return draft

    def billed(self, period: str, invoice_id: str, now: datetime, flags: tuple[str, ...] = ()) -> RecurringSchedule:
        """After the invoice of ``period`` was issued: move ``next_run`` to the next period (or end)."""
        if self.next_run is None or period != period_of(self.next_run):
            raise InvalidTransition(f"schedule {self.id}: period {period} is not the next one to bill")
        following = add_months(period, 1)
        when = run_date(following, self.day_of_month)
        done = self.end is not None and when > self.end
        return replace(self, next_run=None if done else when, status=ENDED if done else self.status,
                       last_period=period, last_invoice_id=invoice_id, invoices_issued=self.invoices_issued + 1,
                       flags=flags, updated_at=now)

    def patched(self, data: Mapping[str, Any], today: date, now: datetime) -> RecurringSchedule:
        """Pause, resume, end, or move the end date. Resuming bills from the next date to come
        (periods skipped while paused are not billed)."""
        reject_unknown(data, PATCH_FIELDS)
        if self.status == ENDED:
            raise InvalidTransition(f"schedule {self.id} has ended: create a new schedule")
        updated = self
        if "end" in data:
            end = _parse_date(data["end"], "end") if data["end"] is not None else None
            if end is not None and end < self.start:
                raise ValidationError("end must not be before start", field="end")
            updated = replace(updated, end=end)
        status = data.get("status", self.status)
        if status not in STATUSES:
            raise ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
        if status == ENDED:
            updated = replace(updated, status=ENDED, next_run=None)
        elif status == PAUSED:
            updated = replace(updated, status=PAUSED)
        else:
            resume = self.status == PAUSED
            nxt = updated.first_run(today) if resume else updated.next_run
            if not resume and nxt is not None and updated.end is not None and run_date(
                    period_of(nxt), self.day_of_month) > updated.end:
                nxt = None
            updated = replace(updated, status=ACTIVE if nxt else ENDED, next_run=nxt)
        return replace(updated, updated_at=now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "recurring_schedule", "customer_id": self.customer_id,
            "currency": self.currency, "lines": [line.to_dict(self.currency) for line in self.lines],
            "day_of_month": self.day_of_month, "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end else None, "timing": self.timing, "status": self.status,
            "next_run": self.next_run.isoformat() if self.next_run else None,
            "operation_category": self.operation_category,
            "payment_terms": self.payment_terms.to_dict() if self.payment_terms else None,
            "purchase_order": self.purchase_order, "buyer_reference": self.buyer_reference, "note": self.note,
            "last_period": self.last_period, "last_invoice_id": self.last_invoice_id,
            "invoices_issued": self.invoices_issued, "flags": list(self.flags),
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "version": self.version,
        }


def new_schedule(schedule_id: str, data: Mapping[str, Any], *, customer_currency: str, today: date,
                 now: datetime) -> RecurringSchedule:
    """Validate a schedule (raises ``ValidationError`` naming the field)."""
    reject_unknown(data, FIELDS)
    customer_id = data.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        raise ValidationError("customer_id is required", field="customer_id")
    currency = check_currency(data.get("currency") or customer_currency)
    lines = data.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ValidationError("lines must be a non-empty list of invoice lines", field="lines")
    if len(lines) > min(MAX_LINES, MAX_SCHEDULE_LINES):
        raise ValidationError(f"a schedule has at most {MAX_SCHEDULE_LINES} lines", field="lines")
    parsed = tuple(InvoiceLine.from_input(line, i) for i, line in enumerate(lines))
    day = data.get("day_of_month")
    if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 31:
        raise ValidationError("day_of_month must be a whole number from 1 to 31 (31 = the last day of each month)",
                              field="day_of_month")
    start = _parse_date(data["start"], "start") if data.get("start") is not None else today
    if start < today:
        raise ValidationError(f"start {start.isoformat()} is in the past (today is {today.isoformat()}): invoices "
                              "are issued on the day they are dated", field="start")
    end = _parse_date(data["end"], "end") if data.get("end") is not None else None
    if end is not None and end < start:
        raise ValidationError("end must not be before start", field="end")
    timing = data.get("timing") or IN_ADVANCE
    if timing not in TIMINGS:
        raise ValidationError("timing must be in_advance (bill the month of issue) or in_arrears (bill the month "
                              "before)", field="timing")
    category = data.get("operation_category")
    if category is not None and category not in OPERATION_CATEGORIES:
        raise ValidationError("operation_category must be goods, services or mixed", field="operation_category")
    terms = data.get("payment_terms")
    if terms is not None:
        if not isinstance(terms, Mapping):
            raise ValidationError("payment_terms must be an object like {\"kind\": \"net\", \"days\": 30}",
                                  field="payment_terms")
        reject_unknown(terms, ("kind", "days"), "payment_terms.")
        terms = PaymentTerms(kind=terms.get("kind", "net"), days=terms.get("days", 30))
    schedule = RecurringSchedule(
        id=schedule_id, customer_id=customer_id, currency=currency, lines=parsed, day_of_month=day, start=start,
        next_run=None, created_at=now, updated_at=now, end=end, timing=timing, operation_category=category,
        payment_terms=terms, purchase_order=_text(data, "purchase_order", 100),
        buyer_reference=_text(data, "buyer_reference", 100), note=_text(data, "note", 2000))
    first = schedule.first_run(start)
    if first is None:
        raise ValidationError("this schedule would never issue an invoice: no day_of_month falls between start "
                              "and end", field="end")
    return replace(schedule, next_run=first)
