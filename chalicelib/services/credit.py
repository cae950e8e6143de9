"""Credit management: finance settings, exposure, credit checks and holds, payer scorecards.

- **Exposure** is real time: the customer-scope report aggregates (written in the
  same transaction as every invoice change) give the open receivables; unapplied
  cash on the customer's payments is deducted. Reads: one Query (the customer's
  year items) + one BatchGetItem (the current month item) + the customer's
  payments with unapplied cash.
- **Credit check** (:meth:`CreditService.check`): exposure + the customer's
  pending drafts + amount against the limit, the oldest overdue invoice against
  ``max_overdue_days`` (finance settings), and the manual hold. Used by
  ``GET /customers/{id}/credit-check`` and by the guards, each with the same
  ``credit_override: {"reason"}`` escape hatch (audited in the caller's
  transaction), so no path takes a customer over its headroom unrecorded:

  * ``POST /invoices`` (:meth:`draft_guard`) and ``PATCH /invoices/{id}`` when
    it raises the amount (:meth:`update_guard`): other drafts count;
  * ``POST /recurring-schedules`` (:meth:`schedule_guard`). The monthly run never
    blocks: recurring invoices for delivered service must be invoiced (issue 6);
    they are flagged (:meth:`recurring_run_hook`); so is a draft for work already
    delivered (``delivery_date`` today or before).
  * Issuing a draft is not checked again: the draft was (at creation and when
    raised), and what was agreed, often delivered, must be invoiced.
- **Holds**: ``PUT /customers/{id}/hold``; a held customer sits in a sparse index
  (``GET /customers?on_hold=true``).
- **Scorecard**: from the customer's own invoices (their dated histories), payments,
  promises and tasks: O(that customer's records), never the portfolio.

Raises: ``NotFound`` (customer), ``ValidationError`` (bad settings, override
without reason), ``CreditHold`` (422 ``credit_hold``) from the guards.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Callable, Mapping

from ..domain.aggregates import AggregateView, ReceivableHistory, month_key, year_key
from ..domain.auth import Actor
from ..domain.collections import PROMISE_BROKEN, PROMISE_KEPT, TASK_DONE, Promise
from ..domain.errors import ValidationError
from ..domain.fields import reject_unknown
from ..domain.forecast import ForecastConfig
from ..domain.invoice import CREDIT_NOTE, DRAFT, Invoice
from ..domain.money import Money
from ..domain.parties import Customer
from ..domain.payer_profile import BROKEN, KEPT, PaidInvoiceRecord, PromiseRecord, derive_profile
from ..domain.payment import Payment
from ..domain.risk import (CreditDecision, CreditPolicy, OpenItem, Override, PaidItem, PayerActivity,
                           PromiseOutcome, RiskConfig, Scorecard, credit_check, scorecard)
from ..domain.statement import paid_on
from .common import diff, with_retries
from .events import envelope
from .ports import Clock, InvoiceQuery, Ledger, PaymentQuery, SettingsDoc, UnitOfWork
from .settings import SettingsService

FINANCE = "finance"
FINANCE_FIELDS = ("risk", "credit", "forecast")
FORECAST_FIELDS = ("window_days", "half_life_days", "full_credibility_payments", "sepa_settlement_days",
                   "dispute_delay_days", "overdue_extra_days")
CREDIT_LIMIT_EXCEEDED = "customer.credit_limit_exceeded"
# Report aggregates are read from this year on; the reconciliation reports any history before it.
LEDGER_FIRST_YEAR = 2000


# -- finance settings (admin-editable document) -------------------------------------------------

@dataclass(frozen=True)
class FinanceSettings:
    risk: RiskConfig = RiskConfig()
    credit: CreditPolicy = CreditPolicy()
    forecast: ForecastConfig = ForecastConfig()
    version: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, version: int = 0) -> FinanceSettings:
        """Validate the document; missing parts take their defaults. Raises ``ValidationError``."""
        data = data or {}
        if not isinstance(data, Mapping):
            raise ValidationError("the finance settings are a JSON object", field="body")
        reject_unknown(data, FINANCE_FIELDS)
        credit = data.get("credit") or {}
        if not isinstance(credit, Mapping):
            raise ValidationError("credit must be an object like {\"max_overdue_days\": 30}", field="credit")
        reject_unknown(credit, ("max_overdue_days",), "credit.")
        try:
            policy = CreditPolicy(**credit)
        except ValidationError as exc:
            raise ValidationError(exc.message, field=f"credit.{exc.field}") from None
        forecast = data.get("forecast") or {}
        if not isinstance(forecast, Mapping):
            raise ValidationError("forecast must be an object", field="forecast")
        reject_unknown(forecast, FORECAST_FIELDS, "forecast.")
        for name, value in forecast.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValidationError(f"forecast.{name} must be a whole number", field=f"forecast.{name}")
        try:
            config = ForecastConfig(**forecast)
        except ValidationError as exc:
            raise ValidationError(exc.message, field=f"forecast.{exc.field}") from None
        try:
            risk = RiskConfig.from_dict(data.get("risk"))
        except ValidationError as exc:
            raise ValidationError(exc.message, field=f"risk.{exc.field}" if exc.field else "risk") from None
        return cls(risk=risk, credit=policy, forecast=config, version=version)

    def to_dict(self) -> dict[str, Any]:
        f = self.forecast
        return {"risk": self.risk.to_dict(), "credit": {"max_overdue_days": self.credit.max_overdue_days},
                "forecast": {name: getattr(f, name) for name in FORECAST_FIELDS}, "version": self.version}


class FinanceSettingsService:
    """Reads (cached ``ttl_s``) and replaces the finance settings document."""

    def __init__(self, ledger: Ledger, clock: Clock, ttl_s: float = 30.0) -> None:
        self._ledger = ledger
        self._clock = clock
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, FinanceSettings] | None = None

    def get(self) -> FinanceSettings:
        with self._lock:
            cached = self._cached
        if cached and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        doc = self._ledger.get_settings(FINANCE)
        value = FinanceSettings.from_dict(doc.data, doc.version) if doc else FinanceSettings()
        with self._lock:
            self._cached = (time.monotonic(), value)
        return value

    def put(self, data: Mapping[str, Any], actor: Actor, expected_version: int | None = None) -> FinanceSettings:
        """Replace the document as a whole (validated); optimistic on ``expected_version`` when given."""
        from ..domain.errors import Conflict

        value = FinanceSettings.from_dict(data)
        stored = value.to_dict()
        stored.pop("version")
        now = self._clock.now()
        current = self._ledger.get_settings(FINANCE)
        if expected_version is not None and (current.version if current else 0) != expected_version:
            raise Conflict(f"the finance settings are at version {current.version if current else 0}, not "
                           f"{expected_version}: read them again and reapply your change", code="version_mismatch")
        uow = UnitOfWork(actor=actor, now=now)
        doc = SettingsDoc(name=FINANCE, data=stored, updated_at=now, version=current.version if current else 0)
        saved = uow.save(doc) if current else uow.create(doc)
        before, after = diff(current.data if current else None, stored)
        uow.audit("settings.finance.update", "settings", FINANCE, before, after)
        self._ledger.commit(uow)
        value = replace(value, version=saved.version)
        with self._lock:
            self._cached = (time.monotonic(), value)
        return value


# -- a customer's own records -------------------------------------------------------------------

def all_pages(fetch: Callable[[str | None], Any], cap: int = 100_000) -> tuple[list[Any], int]:
    """Every item of a paged query (and the items read), up to ``cap`` items."""
    items: list[Any] = []
    read = 0
    cursor = None
    while True:
        page = fetch(cursor)
        items.extend(page.items)
        read += page.scanned or len(page.items)
        cursor = page.next_cursor
        if not cursor or len(items) >= cap:
            return items, read


def history_of(invoice: Invoice) -> ReceivableHistory | None:
    """The invoice's stored receivable history (None for drafts and credit notes)."""
    if invoice.kind == CREDIT_NOTE or invoice.status == DRAFT or not invoice.ledger_history:
        return None
    return ReceivableHistory.from_dict(invoice.ledger_history)


@dataclass
class CustomerBook:
    """What a customer-level report reads: the customer's invoices, payments, promises."""

    customer: Customer
    invoices: list[Invoice]
    payments: list[Payment]
    promises: list[Promise]
    items_read: int

    def histories(self, currency: str) -> list[tuple[Invoice, ReceivableHistory]]:
        out = []
        for inv in self.invoices:
            h = history_of(inv)
            if h is not None and h.currency == currency:
                out.append((inv, h))
        return out


def load_book(ledger: Ledger, customer_id: str, today: date, *, payments: bool = True,
              promises: bool = True) -> CustomerBook:
    customer = ledger.get_customer(customer_id)
    invoices, read = all_pages(lambda c: ledger.query_invoices(InvoiceQuery(customer_id=customer_id, limit=200,
                                                                            cursor=c), today))
    pays: list[Payment] = []
    if payments:
        pays, n = all_pages(lambda c: ledger.query_payments(PaymentQuery(customer_id=customer_id, limit=200,
                                                                         cursor=c)))
        read += n
    proms: list[Promise] = []
    if promises:
        proms, n = all_pages(lambda c: ledger.list_promises(customer_id=customer_id, limit=200, cursor=c))
        read += n
    return CustomerBook(customer, invoices, pays, proms, read + 1)


def paid_items(histories: list[tuple[Invoice, ReceivableHistory]], as_of: date) -> list[PaidItem]:
    out = []
    for _, h in histories:
        settled = paid_on(h, as_of)
        if settled is not None:
            out.append(PaidItem(issue_date=h.issue_date, due_date=h.due_date, paid_on=settled,
                                amount=sum(e.amount for e in h.entries if e.kind == "issue")))
    return out


def promise_outcomes(promises: list[Promise]) -> list[PromiseOutcome]:
    return [PromiseOutcome(p.promised_on, KEPT if p.status == PROMISE_KEPT else BROKEN)
            for p in promises if p.status in (PROMISE_KEPT, PROMISE_BROKEN)]


def parse_override(raw: Any, actor: Actor) -> Override | None:
    """Parse ``credit_override: {"reason": "..."}`` (who = the API key's name)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValidationError("credit_override must be an object like {\"reason\": \"agreed with the CFO\"}",
                              field="credit_override")
    reject_unknown(raw, ("reason",), "credit_override.")
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise ValidationError("credit_override.reason is required (at most 500 characters): why this order may "
                              "go ahead despite the credit hold; it is recorded in the audit trail",
                              field="credit_override.reason")
    return Override(by=actor.name, reason=reason.strip())


# -- the service --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Exposure:
    currency: str
    open_receivables: int
    unapplied_cash: int
    items_read: int

    @property
    def exposure(self) -> int:
        return self.open_receivables - self.unapplied_cash


class CreditService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService,
                 finance: FinanceSettingsService) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self._finance = finance

    def today(self) -> date:
        return self._clock.today(self._settings.timezone())

    # -- exposure ---------------------------------------------------------------------------------
    def exposure(self, customer: Customer, currency: str, as_of: date | None = None) -> Exposure:
        """Open receivables of ``customer`` in ``currency`` (customer-scope aggregates: one BatchGetItem of its
        year items and the current month item) minus the unapplied cash of its payments."""
        day = as_of or self.today()
        keys = frozenset([*(year_key(currency, customer.id, y) for y in range(LEDGER_FIRST_YEAR, day.year + 1)),
                          month_key(currency, customer.id, day)])
        items = self._ledger.get_aggregates(sorted(keys))
        view = AggregateView(currency, customer.id, LEDGER_FIRST_YEAR, items, keys)
        pays, read = all_pages(lambda c: self._ledger.query_payments(
            PaymentQuery(customer_id=customer.id, unapplied=True, currency=currency, limit=200, cursor=c)))
        cash = sum(p.unapplied.amount for p in pays)
        return Exposure(currency, view.receivables(day), cash, len(items) + read)

    def oldest_overdue_days(self, customer_id: str, currency: str | None, today: date) -> int:
        """Days past due of the customer's oldest open invoice (its open invoices, on the customer index)."""
        items, _ = all_pages(lambda c: self._ledger.query_invoices(InvoiceQuery(
            customer_id=customer_id, status="open", due_before=today, currency=currency, limit=200, cursor=c),
            today))
        return max(((today - i.due_date).days for i in items if i.due_date and i.amount_due.is_positive),
                   default=0)

    def pending_drafts(self, customer_id: str, currency: str, *, excluding: str | None = None) -> Money:
        """What the customer's drafts (invoices and deposits, not credit notes) in ``currency`` will add to
        its receivables when issued: one Query of its invoices on the customer index, filtered on drafts."""
        items, _ = all_pages(lambda c: self._ledger.query_invoices(InvoiceQuery(
            customer_id=customer_id, status=DRAFT, currency=currency, limit=200, cursor=c), self.today()))
        return Money(sum(i.totals.payable.amount for i in items
                         if i.kind != CREDIT_NOTE and i.id != excluding and i.currency == currency), currency)

    # -- credit check -----------------------------------------------------------------------------
    def check(self, customer: Customer | str, amount: Money, *, override: Override | None = None,
              delivered_work: bool = False, drafts: bool = True,
              excluding_draft: str | None = None) -> CreditDecision:
        """May ``amount`` more be invoiced to ``customer`` now? (see the module docstring).

        ``drafts``: count the customer's pending drafts (but ``excluding_draft``) in the headroom; the
        issue guard does not (the draft it issues is the amount; drafts are not receivables)."""
        if isinstance(customer, str):
            customer = self._ledger.get_customer(customer)
        today = self.today()
        exposure = self.exposure(customer, amount.currency, today)
        limit = customer.credit_limit if customer.credit_limit is not None and \
            customer.credit_limit.currency == amount.currency else None
        # drafts only matter against a limit in their currency
        pending = (self.pending_drafts(customer.id, amount.currency, excluding=excluding_draft)
                   if drafts and limit is not None else None)
        return credit_check(exposure=Money(exposure.exposure, amount.currency), credit_limit=limit, amount=amount,
                            oldest_overdue_days=self.oldest_overdue_days(customer.id, None, today),
                            on_hold=customer.on_hold, policy=self._finance.get().credit, override=override,
                            delivered_work=delivered_work, drafts=pending)

    def _recorder(self, decision: CreditDecision, customer: Customer, subject: dict[str, Any],
                  actor: Actor) -> Callable[[UnitOfWork], None] | None:
        """Audit an override or a flagged pass in the caller's transaction."""
        if not decision.flagged:
            return None

        def record(uow: UnitOfWork) -> None:
            action = "credit.override" if decision.override is not None else "credit.flagged"
            uow.audit(action, "customer", customer.id, None, {**subject, **decision.to_dict(), "actor": actor.name})

        return record

    def draft_guard(self, draft: Invoice, customer: Customer, data: Mapping[str, Any],
                    actor: Actor) -> Callable[[UnitOfWork], None] | None:
        """``InvoiceHooks.draft_guards``: refuse a draft or deposit invoice on credit hold (422 credit_hold),
        counting the customer's other drafts, unless ``credit_override`` says why (audited with the draft).
        Work already delivered (``delivery_date`` today or before) must be invoiced (French law, issue 6):
        it passes, flagged in the audit trail, like the recurring run's invoices."""
        override = parse_override(data.get("credit_override"), actor)
        if draft.kind == CREDIT_NOTE:
            return None
        delivered = draft.delivery_date is not None and draft.delivery_date <= self.today()
        decision = self.check(customer, draft.totals.payable, override=override, excluding_draft=draft.id,
                              delivered_work=delivered)
        decision.raise_if_refused()
        return self._recorder(decision, customer, {"invoice_id": draft.id, "kind": draft.kind, "stage": "create"},
                              actor)

    def update_guard(self, before: Invoice, after: Invoice, customer: Customer, data: Mapping[str, Any],
                     actor: Actor) -> Callable[[UnitOfWork], None] | None:
        """``InvoiceHooks.update_guards`` (``PATCH /invoices/{id}``): a change that raises what the draft will
        add to the receivables (or moves it to another currency) is checked like a new draft, the other
        drafts counted, with the same override (audited with the change). A change that does not raise it
        takes no new credit and passes."""
        override = parse_override(data.get("credit_override"), actor)
        if after.kind == CREDIT_NOTE:
            return None
        old, new = before.totals.payable, after.totals.payable
        if new.currency == old.currency and new.amount <= old.amount:
            return None
        decision = self.check(customer, new, override=override, excluding_draft=after.id)
        decision.raise_if_refused()
        return self._recorder(decision, customer, {"invoice_id": after.id, "kind": after.kind, "stage": "update",
                                                   "amount_before": str(old)}, actor)

    def schedule_guard(self, schedule: Any, customer: Customer, data: Mapping[str, Any],
                       actor: Actor) -> Callable[[UnitOfWork], None] | None:
        """``RecurringHooks.schedule_guards``: a new recurring schedule whose monthly invoice would take the
        customer over its limit, or for a customer on hold or with invoices too late, is refused (422
        credit_hold) unless ``credit_override`` says why (audited with the schedule)."""
        from ..domain.invoice import new_draft
        from ..domain.recurring import period_of

        override = parse_override(data.get("credit_override"), actor)
        period = period_of(schedule.next_run or schedule.start)
        monthly = new_draft("inv_check", schedule.invoice_draft(period), customer_currency=customer.currency,
                            now=self._clock.now()).totals.payable
        decision = self.check(customer, monthly, override=override)
        decision.raise_if_refused()
        return self._recorder(decision, customer, {"schedule_id": schedule.id, "monthly_amount": str(monthly)},
                              actor)

    def recurring_run_hook(self, invoice: Invoice, customer: Customer, seller: Any, uow: UnitOfWork,
                           context: Any) -> Invoice:
        """``RecurringHooks.run_hooks``: a recurring invoice is never blocked (what was delivered must be
        invoiced; the schedule was checked when it was created) but a hold flags it on the schedule, in the
        run report and the audit trail (``credit.flagged``)."""
        decision = self.check(customer, invoice.totals.payable, delivered_work=True, drafts=False)
        for reason in decision.reasons:
            context.flag(reason.code)
        if decision.hold:
            uow.audit("credit.flagged", "customer", customer.id, None,
                      {"invoice_id": invoice.id, "schedule_id": context.schedule.id, "period": context.period,
                       **decision.to_dict()})
        return invoice

    def issue_hook(self, invoice: Invoice, customer: Customer, seller: Any, uow: UnitOfWork) -> Invoice:
        """``InvoiceHooks.on_issue``: the issue that takes exposure over the limit emits
        ``customer.credit_limit_exceeded`` (only customers with a limit in the invoice's currency pay the reads)."""
        limit = customer.credit_limit
        if limit is None or limit.currency != invoice.currency or invoice.kind == CREDIT_NOTE:
            return invoice
        before = self.exposure(customer, invoice.currency).exposure
        after = before + invoice.totals.payable.amount
        if before <= limit.amount < after:
            uow.emit("event", envelope(CREDIT_LIMIT_EXCEEDED, {
                "customer_id": customer.id, "currency": invoice.currency, "credit_limit": str(limit),
                "exposure_before": str(Money(before, invoice.currency)),
                "exposure": str(Money(after, invoice.currency)),
                "excess": str(Money(after - limit.amount, invoice.currency)),
                "invoice_id": invoice.id, "invoice_number": invoice.number}, uow.now))
        return invoice

    # -- holds ------------------------------------------------------------------------------------
    def set_hold(self, customer_id: str, on_hold: Any, reason: Any, actor: Actor) -> Customer:
        if not isinstance(on_hold, bool):
            raise ValidationError("on_hold must be true or false", field="on_hold")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            raise ValidationError("reason must be a string of at most 500 characters", field="reason")
        if on_hold and not (reason or "").strip():
            raise ValidationError("reason is required to put a customer on hold (it is shown to whoever creates "
                                  "their next invoice)", field="reason")

        def run() -> Customer:
            current = self._ledger.get_customer(customer_id)
            now = self._clock.now()
            if on_hold:
                updated = replace(current, on_hold=True, hold_reason=str(reason).strip(), hold_by=actor.name,
                                  hold_since=current.hold_since if current.on_hold else now, updated_at=now)
            else:
                updated = replace(current, on_hold=False, hold_reason=None, hold_by=None, hold_since=None,
                                  updated_at=now)
            uow = UnitOfWork(actor=actor, now=now)
            saved = uow.save(updated)
            before, after = diff(current.to_dict(), saved.to_dict())
            uow.audit("customer.hold" if on_hold else "customer.release", "customer", customer_id, before,
                      {**(after or {}), "reason": (reason or None)})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    # -- scorecard --------------------------------------------------------------------------------
    def scorecard(self, customer_id: str, *, as_of: date | None = None,
                  currency: str | None = None) -> tuple[Scorecard, dict[str, Any]]:
        """The payer scorecard and the extra facts it was built from (profile explanation, reads)."""
        today = self.today()
        day = as_of or today
        book = load_book(self._ledger, customer_id, today)
        customer = book.customer
        ccy = currency or customer.currency
        histories = book.histories(ccy)
        open_items = []
        for inv, h in histories:
            balance = h.balance_as_of(day)
            if balance > 0 and h.issue_date <= day:
                open_items.append(OpenItem(inv.id, h.due_date, balance))
        paid = paid_items(histories, day)
        outcomes = promise_outcomes([p for p in book.promises if p.amount.currency == ccy])
        profile = derive_profile([PaidInvoiceRecord(p.due_date, p.paid_on, Money(p.amount, ccy)) for p in paid],
                                 [PromiseRecord(o.promised_date, o.outcome) for o in outcomes], today=day)
        unapplied = sum(p.unapplied.amount for p in book.payments if p.currency == ccy and p.received_on <= day)
        contacts = [t.updated_at for t in all_pages(lambda c: self._ledger.list_tasks(
            status=TASK_DONE, customer_id=customer_id, limit=200, cursor=c))[0]]
        contacts += [p.created_at for p in book.promises]
        last_contact = max((local_day(c, self._settings.timezone()) for c in contacts), default=None)
        limit = customer.credit_limit.amount if customer.credit_limit is not None and \
            customer.credit_limit.currency == ccy else None
        activity = PayerActivity(customer_id=customer.id, currency=ccy, open_items=tuple(open_items),
                                 paid=tuple(paid), promises=tuple(outcomes), credit_limit=limit,
                                 unapplied_cash=unapplied, profile=profile.profile, last_contact=last_contact)
        card = scorecard(activity, as_of=day, config=self._finance.get().risk)
        extra = {"name": customer.name, "on_hold": customer.on_hold, "hold_reason": customer.hold_reason,
                 "payer_profile": profile.to_dict(), "items_read": book.items_read}
        return card, extra


def local_day(at: datetime, tz: str) -> date:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(tz)).date()
