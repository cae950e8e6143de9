"""Cash-in forecast: a predicted payment date for each open invoice, summed per week.

Each open invoice gets a :class:`Prediction` (one or more dated cash-ins) from
the first rule that applies, with its *basis* (the rule and the numbers), so the
API can show why (``GET /invoices/{id}`` -> ``predicted_payment_date``):

1. **open dispute** -> excluded from the forecast by default: nobody can date the
   cash of a contested invoice, and counting it would overstate the weeks ahead;
   the report shows the blocked amount apart. ``ForecastConfig.dispute_delay_days``
   switches to "pushed out": due date (or today) + that delay.
2. **pending SEPA collection** -> collection date + ``sepa_settlement_days``
   business days (SEPA Core settles on the collection date; the setting absorbs
   the bank's value date).
3. **payment plan installments** -> each unpaid installment on its date (an
   overdue one: today).
4. **active promise to pay** -> the promised date, for the promised amount.
5. **payer history** -> due date + the payer's typical lateness (below); with no
   history at all, the payer profile's typical lateness.

Whatever rules 2-4 do not cover (a partial promise, a partial collection) falls
through to rule 5.

Typical lateness of a payer
---------------------------
Days late (``paid_on - due_date``, negative when early) of the invoices the
payer fully paid in the last ``window_days``, each weighted by recency
(half-life ``half_life_days``). The robust centre is the **weighted median**
(one 200-day outlier does not move it). It is blended with the profile's typical
lateness by limited-fluctuation credibility: ``Z = min(1, sqrt(n / n_full))``,
``estimate = Z x median + (1 - Z) x profile prior``, so a payer with one paid
invoice leans on its profile and one with ``n_full`` or more stands on its own.

An invoice already later than that estimate is predicted from the payer's
*conditional* history: the weighted median of the lateness of the payments that
were later than this invoice is now (the payer who usually pays 45 days late and
is now at 20 is predicted at 45, not today); with no such payment, today +
``overdue_extra_days``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping, Sequence

from .errors import ValidationError
from .money import Money

DISPUTE, SEPA, PLAN, PROMISE, HISTORY, PROFILE = (
    "open_dispute", "sepa_collection", "payment_plan", "promise_to_pay", "payer_history", "payer_profile")

# Typical days late per payer profile (the vocabulary of payer_profile.py).
DEFAULT_PROFILE_DAYS_LATE: Mapping[str, int] = {"reliable": 0, "occasional_late": 7, "chronic_late": 30, "new": 5}


# -- inputs ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OpenInvoice:
    invoice_id: str
    customer_id: str
    currency: str
    issue_date: date
    due_date: date
    amount_due: int


@dataclass(frozen=True, slots=True)
class PaymentObservation:
    """One invoice the payer paid in full: when it was due and when it was paid."""

    due_date: date
    paid_on: date
    amount: int = 0

    @property
    def days_late(self) -> int:
        return (self.paid_on - self.due_date).days


@dataclass(frozen=True, slots=True)
class Promise:
    """An active promise to pay (``amount`` None: the whole balance)."""

    promised_date: date
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class Installment:
    due_date: date
    amount: int


@dataclass(frozen=True, slots=True)
class SepaCollection:
    """A SEPA direct debit submitted and not settled yet (``amount`` None: the whole balance)."""

    collection_date: date
    amount: int | None = None


@dataclass(frozen=True, slots=True)
class Dispute:
    opened_on: date
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Commitments:
    """What is known about one invoice beyond its payer's habits."""

    promise: Promise | None = None
    installments: tuple[Installment, ...] = ()
    sepa: SepaCollection | None = None
    dispute: Dispute | None = None


@dataclass(frozen=True, slots=True)
class ForecastConfig:
    horizon_weeks: int = 13
    window_days: int = 730
    half_life_days: int = 180
    full_credibility_payments: int = 6
    profile_days_late: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PROFILE_DAYS_LATE))
    default_profile: str = "new"
    sepa_settlement_days: int = 1
    dispute_delay_days: int | None = None
    overdue_extra_days: int = 7

    def __post_init__(self) -> None:
        for name in ("horizon_weeks", "window_days", "half_life_days", "full_credibility_payments"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be a whole number >= 1", field=name)
        for name in ("sepa_settlement_days", "overdue_extra_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 60:
                raise ValidationError(f"{name} must be a whole number of days between 0 and 60", field=name)
        if self.dispute_delay_days is not None and not 0 <= self.dispute_delay_days <= 365:
            raise ValidationError("dispute_delay_days must be between 0 and 365, or null to exclude disputed "
                                  "invoices", field="dispute_delay_days")
        if self.default_profile not in self.profile_days_late:
            raise ValidationError(f"default_profile {self.default_profile!r} has no typical lateness in "
                                  "profile_days_late", field="default_profile")


DEFAULT_CONFIG = ForecastConfig()


# -- the payer's typical lateness -----------------------------------------------------------------

def weighted_median(values: Sequence[tuple[int, float]]) -> int | None:
    """Lower weighted median of ``(value, weight)`` pairs (None when empty or weightless)."""
    pairs = sorted((v, w) for v, w in values if w > 0)
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    running = 0.0
    for v, w in pairs:
        running += w
        if running >= total / 2:
            return v
    return pairs[-1][0]  # pragma: no cover (float rounding)


def _half_up(value: float) -> int:
    return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class Lateness:
    """A payer's typical days late and how it was obtained."""

    days: int
    payments: int                 # payments in the window
    median: int | None            # their recency-weighted median days late
    prior: int                    # the profile's typical lateness
    profile: str
    credibility: Decimal          # Z, the weight of the payer's own history

    def to_dict(self) -> dict[str, Any]:
        return {"days_late": self.days, "payments": self.payments, "weighted_median_days_late": self.median,
                "profile": self.profile, "profile_days_late": self.prior,
                "credibility": str(self.credibility)}


def _weighted(history: Iterable[PaymentObservation], as_of: date,
              config: ForecastConfig) -> list[tuple[int, float]]:
    start = as_of - timedelta(days=config.window_days)
    out = []
    for p in history:
        if start < p.paid_on <= as_of:
            # recency weight: a float, but a weight, never money
            out.append((p.days_late, 0.5 ** ((as_of - p.paid_on).days / config.half_life_days)))
    return out


def payer_lateness(history: Iterable[PaymentObservation], *, as_of: date, profile: str | None = None,
                   config: ForecastConfig = DEFAULT_CONFIG) -> Lateness:
    """Typical days late of a payer as of ``as_of`` (only payments made by then count)."""
    name = profile if profile in config.profile_days_late else config.default_profile
    prior = config.profile_days_late[name]
    weighted = _weighted(history, as_of, config)
    median = weighted_median(weighted)
    n = len(weighted)
    z = min(1.0, math.sqrt(n / config.full_credibility_payments))
    days = prior if median is None else _half_up(z * median + (1 - z) * prior)
    return Lateness(days=days, payments=n, median=median, prior=prior, profile=name,
                    credibility=Decimal(repr(z)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# -- predictions ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CashIn:
    on: date
    amount: int
    rule: str


@dataclass(frozen=True, slots=True)
class Prediction:
    invoice_id: str
    customer_id: str
    currency: str
    amount_due: int
    cash_ins: tuple[CashIn, ...]
    rule: str                                  # the rule of the first (main) cash-in, or open_dispute
    basis: Mapping[str, Any]                   # JSON-ready numbers behind the prediction
    excluded: bool = False                     # disputed and excluded from the forecast

    @property
    def predicted_payment_date(self) -> date | None:
        """When the invoice is predicted to be fully paid (None when excluded)."""
        return max((c.on for c in self.cash_ins), default=None)

    def to_dict(self) -> dict[str, Any]:
        d = self.predicted_payment_date
        return {"invoice_id": self.invoice_id, "customer_id": self.customer_id,
                "amount_due": str(Money(self.amount_due, self.currency)),
                "predicted_payment_date": d.isoformat() if d else None, "rule": self.rule,
                "excluded": self.excluded, "basis": dict(self.basis),
                "cash_ins": [{"on": c.on.isoformat(), "amount": str(Money(c.amount, self.currency)), "rule": c.rule}
                             for c in self.cash_ins]}


def add_business_days(d: date, days: int) -> date:
    """``d`` + ``days`` Monday-to-Friday days (bank holidays are not modelled); a weekend ``d`` rolls forward."""
    while d.weekday() >= 5:
        d += timedelta(days=1)
    while days > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            days -= 1
    return d


def _history_date(invoice: OpenInvoice, lateness: Lateness, history: Sequence[PaymentObservation], as_of: date,
                  config: ForecastConfig) -> tuple[date, dict[str, Any]]:
    basis: dict[str, Any] = lateness.to_dict()
    predicted = invoice.due_date + timedelta(days=lateness.days)
    if predicted >= as_of:
        return predicted, basis
    # Already later than usual: what did this payer do when it was at least this late?
    now_late = (as_of - invoice.due_date).days
    later = [(d, w) for d, w in _weighted(history, as_of, config) if d > now_late]
    conditional = weighted_median(later)
    basis["days_late_now"] = now_late
    if conditional is not None:
        basis["conditional_median_days_late"] = conditional
        basis["conditional_payments"] = len(later)
        return invoice.due_date + timedelta(days=conditional), basis
    basis["overdue_extra_days"] = config.overdue_extra_days
    return as_of + timedelta(days=config.overdue_extra_days), basis


def predict(invoice: OpenInvoice, *, as_of: date, history: Sequence[PaymentObservation] = (),
            profile: str | None = None, commitments: Commitments = Commitments(),
            config: ForecastConfig = DEFAULT_CONFIG) -> Prediction:
    """Predict when and how ``invoice``'s amount due comes in (see the module docstring)."""
    due = invoice.amount_due
    if commitments.dispute is not None:
        basis: dict[str, Any] = {"dispute_opened_on": commitments.dispute.opened_on.isoformat(),
                                 "dispute_reason": commitments.dispute.reason}
        if config.dispute_delay_days is None:
            basis["policy"] = "excluded"
            return Prediction(invoice.invoice_id, invoice.customer_id, invoice.currency, due, (), DISPUTE, basis,
                              excluded=True)
        basis.update(policy="pushed_out", dispute_delay_days=config.dispute_delay_days)
        on = max(as_of, invoice.due_date) + timedelta(days=config.dispute_delay_days)
        return Prediction(invoice.invoice_id, invoice.customer_id, invoice.currency, due,
                          (CashIn(on, due, DISPUTE),), DISPUTE, basis)
    cash: list[CashIn] = []
    basis = {}
    left = due
    if commitments.sepa is not None and left > 0:
        amount = min(left, commitments.sepa.amount if commitments.sepa.amount is not None else left)
        on = max(as_of, add_business_days(commitments.sepa.collection_date, config.sepa_settlement_days))
        cash.append(CashIn(on, amount, SEPA))
        basis["sepa"] = {"collection_date": commitments.sepa.collection_date.isoformat(),
                         "settlement_business_days": config.sepa_settlement_days}
        left -= amount
    if commitments.installments and left > 0:
        planned = []
        for inst in sorted(commitments.installments, key=lambda i: i.due_date):
            amount = min(left, inst.amount)
            if amount <= 0:
                break
            cash.append(CashIn(max(as_of, inst.due_date), amount, PLAN))
            planned.append({"due_date": inst.due_date.isoformat(), "amount": str(Money(amount, invoice.currency))})
            left -= amount
        basis["installments"] = planned
    if commitments.promise is not None and left > 0:
        promise = commitments.promise
        if promise.promised_date >= as_of:
            amount = min(left, promise.amount if promise.amount is not None else left)
            cash.append(CashIn(promise.promised_date, amount, PROMISE))
            basis["promise"] = {"promised_date": promise.promised_date.isoformat(),
                                "amount": str(Money(amount, invoice.currency))}
            left -= amount
        else:
            basis["promise"] = {"promised_date": promise.promised_date.isoformat(), "status": "broken, ignored"}
    if left > 0:
        lateness = payer_lateness(history, as_of=as_of, profile=profile, config=config)
        on, history_basis = _history_date(invoice, lateness, history, as_of, config)
        rule = HISTORY if lateness.payments else PROFILE
        cash.append(CashIn(max(as_of, on), left, rule))
        basis["lateness"] = history_basis
    rule = cash[0].rule if cash else HISTORY
    return Prediction(invoice.invoice_id, invoice.customer_id, invoice.currency, due, tuple(cash), rule, basis)


# -- the weekly forecast ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WeekForecast:
    start: date
    end: date
    amount: int
    invoices: int


@dataclass(frozen=True, slots=True)
class CashForecast:
    currency: str
    as_of: date
    weeks: tuple[WeekForecast, ...]
    beyond_horizon: int          # predicted after the last week
    excluded: int                # disputed amounts left out
    predictions: tuple[Prediction, ...]

    @property
    def total(self) -> int:
        return sum(w.amount for w in self.weeks)

    def to_dict(self, with_invoices: bool = True) -> dict[str, Any]:
        money = lambda minor: str(Money(minor, self.currency))  # noqa: E731
        body: dict[str, Any] = {
            "currency": self.currency, "as_of": self.as_of.isoformat(),
            "weeks": [{"start": w.start.isoformat(), "end": w.end.isoformat(), "amount": money(w.amount),
                       "invoices": w.invoices} for w in self.weeks],
            "total": money(self.total), "beyond_horizon": money(self.beyond_horizon),
            "excluded_disputed": money(self.excluded)}
        if with_invoices:
            body["invoices"] = [p.to_dict() for p in self.predictions]
        return body


def weekly(predictions: Iterable[Prediction], *, as_of: date, currency: str,
           weeks: int = DEFAULT_CONFIG.horizon_weeks) -> CashForecast:
    """Sum predictions into ``weeks`` weeks starting on ``as_of`` (week i = as_of + 7i .. + 6)."""
    preds = tuple(p for p in predictions if p.currency == currency)
    amounts = [0] * weeks
    invoices: list[set[str]] = [set() for _ in range(weeks)]
    beyond = excluded = 0
    for p in preds:
        if p.excluded:
            excluded += p.amount_due
            continue
        for c in p.cash_ins:
            i = (c.on - as_of).days // 7
            if i >= weeks:
                beyond += c.amount
            else:
                i = max(i, 0)
                amounts[i] += c.amount
                invoices[i].add(p.invoice_id)
    return CashForecast(currency=currency, as_of=as_of, beyond_horizon=beyond, excluded=excluded, predictions=preds,
                        weeks=tuple(WeekForecast(as_of + timedelta(days=7 * i), as_of + timedelta(days=7 * i + 6),
                                                 amounts[i], len(invoices[i])) for i in range(weeks)))


def forecast(invoices: Iterable[OpenInvoice], *, as_of: date, currency: str,
             histories: Mapping[str, Sequence[PaymentObservation]] | None = None,
             profiles: Mapping[str, str] | None = None, commitments: Mapping[str, Commitments] | None = None,
             config: ForecastConfig = DEFAULT_CONFIG) -> CashForecast:
    """The 13-week cash-in forecast of the open invoices of ``currency``.

    ``histories`` and ``profiles`` are keyed by customer id, ``commitments`` by
    invoice id; anything missing means "nothing known".
    """
    histories, profiles, commitments = histories or {}, profiles or {}, commitments or {}
    preds = [predict(inv, as_of=as_of, history=histories.get(inv.customer_id, ()),
                     profile=profiles.get(inv.customer_id), commitments=commitments.get(inv.invoice_id, Commitments()),
                     config=config)
             for inv in invoices if inv.currency == currency and inv.amount_due > 0]
    return weekly(preds, as_of=as_of, currency=currency, weeks=config.horizon_weeks)


def naive_forecast(invoices: Iterable[OpenInvoice], *, as_of: date, currency: str,
                   weeks: int = DEFAULT_CONFIG.horizon_weeks) -> CashForecast:
    """The baseline: every invoice is paid on its due date (an overdue one, today)."""
    preds = [Prediction(inv.invoice_id, inv.customer_id, inv.currency, inv.amount_due,
                        (CashIn(max(as_of, inv.due_date), inv.amount_due, "due_date"),), "due_date", {})
             for inv in invoices if inv.currency == currency and inv.amount_due > 0]
    return weekly(preds, as_of=as_of, currency=currency, weeks=weeks)


# -- backtest -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SimulatedInvoice:
    invoice_id: str
    customer_id: str
    issue_date: date
    due_date: date
    amount: int
    paid_on: date


def generate_history(seed: int, *, start: date, days: int = 365, customers: int = 40,
                     on_time: bool = False) -> list[SimulatedInvoice]:
    """A seeded year of invoices where each customer has its own lateness distribution.

    Customers differ in habit (mean days late 0 to 60, spread 1 to 8 days, a few
    early payers) and in rhythm (an invoice every 5 to 30 days, net 30 or 45).
    With ``on_time`` everyone pays exactly on the due date.
    """
    rng = random.Random(seed)
    out = []
    for c in range(customers):
        mean = rng.choice((0, 0, 2, 5, 10, 20, 30, 45, 60))
        spread = rng.choice((1, 3, 5, 8))
        every = rng.randint(5, 30)
        terms = rng.choice((30, 45))
        day = rng.randint(0, every)
        n = 0
        while day < days:
            issue = start + timedelta(days=day)
            due = issue + timedelta(days=terms)
            late = 0 if on_time else max(-5, round(rng.gauss(mean, spread)))
            out.append(SimulatedInvoice(f"c{c}-{n}", f"c{c}", issue, due, rng.randint(20_000, 5_000_000),
                                        due + timedelta(days=late)))
            n += 1
            day += every + rng.randint(-2, 2)
    return out


@dataclass(frozen=True, slots=True)
class Backtest:
    cutoff: date
    weeks: int
    actual: tuple[int, ...]
    predicted: tuple[int, ...]
    naive: tuple[int, ...]

    @staticmethod
    def _mae(predicted: Sequence[int], actual: Sequence[int]) -> int:
        return int((Decimal(sum(abs(p - a) for p, a in zip(predicted, actual))) / len(actual))
                   .quantize(Decimal(1), rounding=ROUND_HALF_UP))

    @property
    def mae(self) -> int:
        """Weekly mean absolute error of the model, in minor units."""
        return self._mae(self.predicted, self.actual)

    @property
    def naive_mae(self) -> int:
        return self._mae(self.naive, self.actual)


def backtest(history: Sequence[SimulatedInvoice], *, cutoff: date, weeks: int = 8, currency: str = "EUR",
             config: ForecastConfig = DEFAULT_CONFIG) -> Backtest:
    """Forecast the invoices open at ``cutoff`` from what was known then; compare with what came in.

    Known at the cutoff: the invoices issued by then and the payments made by
    then. Actual: the cash those open invoices brought in each week after.
    """
    open_invoices = [OpenInvoice(s.invoice_id, s.customer_id, currency, s.issue_date, s.due_date, s.amount)
                     for s in history if s.issue_date <= cutoff < s.paid_on]
    known: dict[str, list[PaymentObservation]] = {}
    for s in history:
        if s.paid_on <= cutoff:
            known.setdefault(s.customer_id, []).append(PaymentObservation(s.due_date, s.paid_on, s.amount))
    model = forecast(open_invoices, as_of=cutoff, currency=currency, histories=known,
                     config=ForecastConfig(**{**_fields(config), "horizon_weeks": weeks}))
    naive = naive_forecast(open_invoices, as_of=cutoff, currency=currency, weeks=weeks)
    actual = [0] * weeks
    for s in history:
        if s.issue_date <= cutoff < s.paid_on:
            i = (s.paid_on - cutoff).days // 7
            if i < weeks:
                actual[i] += s.amount
    return Backtest(cutoff=cutoff, weeks=weeks, actual=tuple(actual),
                    predicted=tuple(w.amount for w in model.weeks), naive=tuple(w.amount for w in naive.weeks))


def _fields(config: ForecastConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in ForecastConfig.__dataclass_fields__}
