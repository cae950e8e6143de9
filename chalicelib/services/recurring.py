"""Monthly recurring billing: schedules on customers, issued by a daily job.

:meth:`RecurringService.run` (the daily ``recurring_invoices`` job, or
``POST /recurring/run?as_of=``) reads only the schedules due by ``as_of`` (a
sparse index by next invoice date) and issues each due period through the real
issue path (number, documents, pay link, delivery, platform), in one
transaction with:

- a marker per schedule and period (``put_ref("recurring", "<id>#2026-03")``,
  must not exist): running the job twice, or two jobs at once, issues one
  invoice per period;
- the schedule moved to its next date (optimistic version).

Missed periods (the job did not run for a while) are issued one by one, oldest
first. ``as_of`` decides which periods are due; the invoices are dated the day
they are issued (an invoice is never backdated).

Hooks (for the credit checks of the finance capability):

- ``schedule_guards``: run when a schedule is created, like
  ``InvoiceHooks.draft_guards``; raising refuses the schedule;
- ``run_hooks``: run while each recurring invoice is issued, like issue hooks
  plus a :class:`RunContext` ``(invoice, customer, seller, uow, context) -> invoice``.
  They must not block: work already delivered must be invoiced (French law).
  To flag an invoice, call ``context.flag("credit_limit_exceeded")`` (and/or
  return it changed): flags are recorded on the schedule, in the audit entry
  and in the run report. An exception from a run hook is reported and that
  period retried by the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable, Mapping

from ..domain.auth import Actor
from ..domain.errors import Conflict, DomainError
from ..domain.ids import new_id
from ..domain.invoice import Invoice, new_draft
from ..domain.parties import Customer, SellerProfile
from ..domain.recurring import RecurringSchedule, new_schedule
from .common import IdempotencyRequest, idempotent, with_retries
from .invoices import InvoiceService
from .ports import Clock, CommitConflict, Ledger, Page, UnitOfWork

log = logging.getLogger(__name__)

PERIOD_REF = "recurring"
JOB_ACTOR = Actor.system("recurring")
ScheduleGuard = Callable[[RecurringSchedule, Customer, Mapping[str, Any], Actor],
                         "Callable[[UnitOfWork], None] | None"]
RunHook = Callable[[Invoice, Customer, SellerProfile, UnitOfWork, "RunContext"], Invoice]


@dataclass
class RecurringHooks:
    schedule_guards: list[ScheduleGuard] = field(default_factory=list)
    run_hooks: list[RunHook] = field(default_factory=list)


@dataclass
class RunReport:
    as_of: str
    issued: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)   # already billed (another run)
    failed: list[dict[str, Any]] = field(default_factory=list)    # retried by the next run

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "issued": len(self.issued), "skipped": len(self.skipped),
                "failed": len(self.failed), "invoices": self.issued, "skipped_periods": self.skipped,
                "failures": self.failed}


@dataclass
class RunContext:
    """What a run hook knows of the invoice being issued, and where it records flags."""

    schedule: RecurringSchedule
    period: str
    flags: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        """True when the invoice bills a month already over (in arrears): never block it."""
        return self.schedule.timing == "in_arrears"

    def flag(self, flag: str) -> None:
        if flag not in self.flags:
            self.flags.append(flag)


class RecurringService:
    def __init__(self, ledger: Ledger, clock: Clock, invoices: InvoiceService, timezone: Callable[[], str],
                 hooks: RecurringHooks | None = None) -> None:
        self._ledger = ledger
        self._clock = clock
        self._invoices = invoices
        self._timezone = timezone
        self.hooks = hooks or RecurringHooks()

    def today(self) -> date:
        return self._clock.today(self._timezone())

    # -- schedules ----------------------------------------------------------------------------------
    def create(self, data: Mapping[str, Any], actor: Actor,
               idempotency: IdempotencyRequest | None = None) -> tuple[RecurringSchedule, bool]:
        """Create a schedule; raises ``ValidationError`` / ``NotFound`` (customer) or what a guard raises."""
        schedule_id = new_id("rsc")

        def run() -> RecurringSchedule:
            customer_id = data.get("customer_id")
            customer = self._ledger.get_customer(customer_id if isinstance(customer_id, str) else "")
            now = self._clock.now()
            # credit_override is for the schedule guards (credit holds), not part of the schedule
            schedule = new_schedule(schedule_id, {k: v for k, v in data.items() if k != "credit_override"},
                                    customer_currency=customer.currency, today=self.today(), now=now)
            # the first invoice must be issuable: the same validation as a draft
            new_draft("inv_check", schedule.invoice_draft(_first_period(schedule)), customer_currency=customer.currency,
                      now=now)
            # a guard raises to refuse; it may return a function adding writes (an override's audit)
            records = [guard(schedule, customer, data, actor) for guard in self.hooks.schedule_guards]
            uow = UnitOfWork(actor=actor, now=now)
            schedule = uow.create(schedule)
            for record in records:
                if record is not None:
                    record(uow)
            uow.audit("recurring.create", "recurring_schedule", schedule.id, None, schedule.to_dict())
            if idempotency:
                uow.claim_idempotency(idempotency.record("recurring_schedule", schedule.id, now))
            self._ledger.commit(uow)
            return schedule

        return idempotent(self._ledger, idempotency, "recurring_schedule", run, self._ledger.get_schedule)

    def update(self, schedule_id: str, data: Mapping[str, Any], actor: Actor) -> RecurringSchedule:
        """Pause, resume or end a schedule, or move its end date (``version`` optional, optimistic)."""

        def run() -> RecurringSchedule:
            current = self._ledger.get_schedule(schedule_id)
            expected = data.get("version")
            if expected is not None and expected != current.version:
                raise Conflict(f"schedule {schedule_id} is at version {current.version}, not {expected}",
                               code="version_mismatch")
            now = self._clock.now()
            updated = current.patched(data, self.today(), now)
            uow = UnitOfWork(actor=actor, now=now)
            saved = uow.save(updated)
            uow.audit("recurring.update", "recurring_schedule", schedule_id,
                      {k: current.to_dict()[k] for k in ("status", "end", "next_run")},
                      {k: saved.to_dict()[k] for k in ("status", "end", "next_run")})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    def get(self, schedule_id: str) -> RecurringSchedule:
        return self._ledger.get_schedule(schedule_id)

    def list(self, *, customer_id: str | None, limit: int, cursor: str | None) -> Page[RecurringSchedule]:
        """A customer's schedules, or every active one by next invoice date."""
        return self._ledger.list_schedules(customer_id=customer_id, limit=limit, cursor=cursor)

    # -- the daily run ------------------------------------------------------------------------------
    def run(self, as_of: date | None = None, *, max_invoices: int = 5000) -> RunReport:
        """Issue every period due by ``as_of`` (default: today, seller-local); safe to run twice or at once."""
        as_of = as_of or self.today()
        report = RunReport(as_of=as_of.isoformat())
        cursor = None
        seen: set[str] = set()
        while len(report.issued) < max_invoices:
            page = self._ledger.list_schedules(due_before=as_of + timedelta(days=1), limit=100, cursor=cursor)
            for schedule in page.items:
                if schedule.id in seen or len(report.issued) >= max_invoices:
                    continue
                seen.add(schedule.id)
                self._run_schedule(schedule, as_of, report)
            cursor = page.next_cursor
            if not cursor:
                break
        log.info("recurring run", extra={"as_of": report.as_of, "issued": len(report.issued),
                                         "skipped": len(report.skipped), "failed": len(report.failed)})
        return report

    def _run_schedule(self, schedule: RecurringSchedule, as_of: date, report: RunReport) -> None:
        for period in schedule.due_periods(as_of):
            try:
                invoice, flags = self._issue_period(schedule, period)
            except _AlreadyBilled as done:
                report.skipped.append({"schedule_id": schedule.id, "period": period, "invoice_id": done.invoice_id})
                continue
            except Exception as exc:  # noqa: BLE001 - one schedule's failure never stops the run
                log.warning("recurring invoice not issued", extra={"schedule_id": schedule.id, "period": period,
                                                                   "error": exc.__class__.__name__},
                            exc_info=not isinstance(exc, (DomainError, CommitConflict)))
                report.failed.append({"schedule_id": schedule.id, "period": period,
                                      "code": getattr(exc, "code", "conflict"), "message": str(exc)})
                return  # later periods wait for this one
            report.issued.append({"schedule_id": schedule.id, "period": period, "invoice_id": invoice.id,
                                  "number": invoice.number, "total": str(invoice.totals.total),
                                  "currency": invoice.currency, "flags": list(flags)})

    def _issue_period(self, schedule: RecurringSchedule, period: str) -> tuple[Invoice, tuple[str, ...]]:
        """Issue ``period`` of ``schedule`` (as listed), or raise ``_AlreadyBilled``.

        The schedule is read again inside the issue transaction: its ``next_run`` moves in the same
        transaction as the period marker, so a period it has moved past is billed (the marker, which
        must not exist, catches a concurrent run at commit)."""
        schedule_id = schedule.id
        draft = new_draft(new_id("inv"), schedule.invoice_draft(period), customer_currency=schedule.currency,
                          now=self._clock.now())
        context = RunContext(schedule, period)

        def prepare(invoice: Invoice, customer: Customer, seller: SellerProfile, uow: UnitOfWork) -> Invoice:
            current = self._ledger.get_schedule(schedule_id)
            if current.next_run is None or period not in current.due_periods(current.next_run):
                marker = self._ledger.get_ref(PERIOD_REF, f"{schedule_id}#{period}")
                raise _AlreadyBilled(marker.target if marker else current.last_invoice_id)
            context.schedule, context.flags = current, []
            for hook in self.hooks.run_hooks:
                invoice = hook(invoice, customer, seller, uow, context)
            uow.put_ref(PERIOD_REF, f"{schedule_id}#{period}", invoice.id, {"number": invoice.number})
            uow.save(current.billed(period, invoice.id, uow.now, tuple(context.flags)))
            uow.audit("recurring.issue", "recurring_schedule", schedule_id, None,
                      {"period": period, "invoice_id": invoice.id, "number": invoice.number,
                       "flags": list(context.flags)})
            return invoice

        try:
            invoice = self._invoices.issue_new(draft, JOB_ACTOR, prepare=prepare)
        except CommitConflict as exc:
            if f"ref:{PERIOD_REF}" in exc.failed:
                marker = self._ledger.get_ref(PERIOD_REF, f"{schedule_id}#{period}")
                raise _AlreadyBilled(marker.target if marker else None) from None
            raise
        return invoice, tuple(context.flags)


def _first_period(schedule: RecurringSchedule) -> str:
    from ..domain.recurring import period_of

    return period_of(schedule.next_run or schedule.start)


class _AlreadyBilled(Exception):
    def __init__(self, invoice_id: str | None) -> None:
        super().__init__(invoice_id or "")
        self.invoice_id = invoice_id
