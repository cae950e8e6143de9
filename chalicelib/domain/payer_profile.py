"""Payer profiles: how a customer actually pays, derived from history by a rule that is data.

The rule (``ProfileRule``) is stored in the dunning policy and editable through the
API; :func:`derive_profile` applies it to a customer's paid invoices and promises to
pay and returns the profile *with* the metrics and a human explanation, so a
collector can answer "why does this customer get the firm reminder on day 5?".

Default rule (issue 5): with at least 5 invoices paid in the last 365 days,

- ``chronic_late``: on average more than 15 days late, or more than 50 % paid late,
  or 2 or more broken promises in the window;
- ``reliable``: on average at most 3 days late and at most 10 % paid late;
- otherwise ``occasional_late``.

With fewer invoices the profile is ``new``, which the dunning ladder treats as
``occasional_late``. Chronic conditions are checked first: a customer who pays on
average on time but broke two promises is chronic, not reliable.

Promises to pay: :func:`promise_status` says whether a promise is ``active``, ``kept``
(the promised amount was received between the day it was made and the promised
date, both included) or ``broken`` (the promised date has passed without that).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable, Mapping, Sequence

from .errors import ValidationError
from .fields import reject_unknown
from .money import Money

# -- vocabulary ---------------------------------------------------------------------------------
RELIABLE, OCCASIONAL_LATE, CHRONIC_LATE, NEW = "reliable", "occasional_late", "chronic_late", "new"
PROFILES = (RELIABLE, OCCASIONAL_LATE, CHRONIC_LATE, NEW)

ACTIVE, KEPT, BROKEN = "active", "kept", "broken"
PROMISE_STATUSES = (ACTIVE, KEPT, BROKEN)

COUNT, AMOUNT = "count", "amount"
WEIGHTINGS = (COUNT, AMOUNT)

_TWO_PLACES = Decimal("0.01")


def ladder_profile(profile: str) -> str:
    """The profile whose dunning ladder applies: ``new`` customers get the occasional one."""
    if profile not in PROFILES:
        raise ValidationError(f"profile must be one of {', '.join(PROFILES)}", field="profile")
    return OCCASIONAL_LATE if profile == NEW else profile


# -- small parsers (input from JSON / DynamoDB; errors name the field) ---------------------------

def _int(value: Any, name: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number", field=name)
    if not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}", field=name)
    return value


def _decimal(value: Any, name: str, *, minimum: Decimal, maximum: Decimal, places: int = 2) -> Decimal:
    if isinstance(value, Decimal):
        dec = value
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            dec = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValidationError(f"{name} {value!r} is not a decimal number such as \"10\"", field=name) from None
    else:
        raise ValidationError(f"{name} must be a decimal string such as \"10\" (JSON numbers are refused to "
                              "avoid binary rounding)", field=name)
    if not dec.is_finite():
        raise ValidationError(f"{name} must be a finite number", field=name)
    exponent = dec.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        raise ValidationError(f"{name} must have at most {places} decimals", field=name)
    if not minimum <= dec <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}", field=name)
    return dec


def _date(value: Any, name: str) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be an ISO 8601 date such as \"2026-01-31\"", field=name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{name} {value!r} is not an ISO 8601 date such as \"2026-01-31\"",
                              field=name) from None


def _pct(value: Decimal) -> str:
    return f"{value.normalize():f}"


# -- the rule -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProfileRule:
    """Thresholds of the payer-profile rule. Percentages are in percent ("10" = 10 %).

    ``late_grace_days``: a payment at most this many days after the due date does not
    count as late (0 by default: one day late is late).
    ``weighting``: ``count`` averages days late per invoice, ``amount`` weights each
    invoice by its amount (a late 50 EUR invoice then weighs less than a late 50,000 EUR one).
    """

    min_invoices: int = 5
    window_days: int = 365
    reliable_max_avg_days_late: Decimal = Decimal(3)
    reliable_max_late_percent: Decimal = Decimal(10)
    chronic_min_avg_days_late: Decimal = Decimal(15)      # strictly more than this
    chronic_min_late_percent: Decimal = Decimal(50)       # strictly more than this
    chronic_min_broken_promises: int = 2                  # this many or more
    late_grace_days: int = 0
    weighting: str = COUNT

    FIELDS = ("min_invoices", "window_days", "reliable_max_avg_days_late", "reliable_max_late_percent",
              "chronic_min_avg_days_late", "chronic_min_late_percent", "chronic_min_broken_promises",
              "late_grace_days", "weighting")

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_invoices": self.min_invoices, "window_days": self.window_days,
            "reliable_max_avg_days_late": _pct(self.reliable_max_avg_days_late),
            "reliable_max_late_percent": _pct(self.reliable_max_late_percent),
            "chronic_min_avg_days_late": _pct(self.chronic_min_avg_days_late),
            "chronic_min_late_percent": _pct(self.chronic_min_late_percent),
            "chronic_min_broken_promises": self.chronic_min_broken_promises,
            "late_grace_days": self.late_grace_days, "weighting": self.weighting,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, prefix: str = "profile_rule.") -> ProfileRule:
        """Validate a rule from JSON; missing fields take the defaults of the issue."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValidationError(f"{prefix.rstrip('.')} must be an object", field=prefix.rstrip("."))
        reject_unknown(data, cls.FIELDS, prefix)
        d = cls()
        days = Decimal(365)
        pct = Decimal(100)

        def get(key: str) -> Any:
            return data[key] if key in data and data[key] is not None else getattr(d, key)

        weighting = get("weighting")
        if weighting not in WEIGHTINGS:
            raise ValidationError(f"{prefix}weighting must be one of {', '.join(WEIGHTINGS)}",
                                  field=prefix + "weighting")
        rule = cls(
            min_invoices=_int(get("min_invoices"), prefix + "min_invoices", minimum=1, maximum=1000),
            window_days=_int(get("window_days"), prefix + "window_days", minimum=30, maximum=3 * 366),
            reliable_max_avg_days_late=_decimal(get("reliable_max_avg_days_late"),
                                                prefix + "reliable_max_avg_days_late",
                                                minimum=Decimal(0), maximum=days),
            reliable_max_late_percent=_decimal(get("reliable_max_late_percent"),
                                               prefix + "reliable_max_late_percent",
                                               minimum=Decimal(0), maximum=pct),
            chronic_min_avg_days_late=_decimal(get("chronic_min_avg_days_late"),
                                               prefix + "chronic_min_avg_days_late",
                                               minimum=Decimal(0), maximum=days),
            chronic_min_late_percent=_decimal(get("chronic_min_late_percent"), prefix + "chronic_min_late_percent",
                                              minimum=Decimal(0), maximum=pct),
            chronic_min_broken_promises=_int(get("chronic_min_broken_promises"),
                                             prefix + "chronic_min_broken_promises", minimum=1, maximum=100),
            late_grace_days=_int(get("late_grace_days"), prefix + "late_grace_days", minimum=0, maximum=30),
            weighting=weighting,
        )
        if rule.reliable_max_avg_days_late > rule.chronic_min_avg_days_late:
            raise ValidationError(
                f"{prefix}reliable_max_avg_days_late ({rule.reliable_max_avg_days_late}) must not exceed "
                f"chronic_min_avg_days_late ({rule.chronic_min_avg_days_late}): a payer cannot be both",
                field=prefix + "reliable_max_avg_days_late")
        if rule.reliable_max_late_percent > rule.chronic_min_late_percent:
            raise ValidationError(
                f"{prefix}reliable_max_late_percent ({rule.reliable_max_late_percent}) must not exceed "
                f"chronic_min_late_percent ({rule.chronic_min_late_percent})",
                field=prefix + "reliable_max_late_percent")
        return rule


DEFAULT_PROFILE_RULE = ProfileRule()


# -- inputs -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PaidInvoiceRecord:
    """One invoice of the customer, paid in full on ``paid_on`` (seller's calendar date)."""

    due_date: date
    paid_on: date
    amount: Money
    invoice_id: str | None = None

    @property
    def days_late(self) -> int:
        return max(0, (self.paid_on - self.due_date).days)


@dataclass(frozen=True, slots=True)
class PromiseRecord:
    """A past promise to pay and how it ended (``kept`` or ``broken``)."""

    promised_date: date
    outcome: str

    def __post_init__(self) -> None:
        if self.outcome not in (KEPT, BROKEN):
            raise ValidationError("a promise record's outcome must be kept or broken (active promises are not "
                                  "history yet)", field="outcome")


# -- output -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ProfileMetrics:
    window_start: date
    window_end: date
    invoices_paid: int
    invoices_paid_late: int
    late_percent: Decimal          # 0..100, two decimals
    avg_days_late: Decimal         # per the rule's weighting, two decimals
    max_days_late: int
    broken_promises: int
    kept_promises: int

    def to_dict(self) -> dict[str, Any]:
        return {"window_start": self.window_start.isoformat(), "window_end": self.window_end.isoformat(),
                "invoices_paid": self.invoices_paid, "invoices_paid_late": self.invoices_paid_late,
                "late_percent": str(self.late_percent), "avg_days_late": str(self.avg_days_late),
                "max_days_late": self.max_days_late, "broken_promises": self.broken_promises,
                "kept_promises": self.kept_promises}


@dataclass(frozen=True, slots=True)
class PayerProfile:
    """The derived profile, with the figures and rule values that produced it."""

    profile: str
    metrics: ProfileMetrics
    rule: ProfileRule
    reasons: tuple[str, ...]

    @property
    def ladder_profile(self) -> str:
        return ladder_profile(self.profile)

    @property
    def explanation(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "ladder_profile": self.ladder_profile, "metrics": self.metrics.to_dict(),
                "rule": self.rule.to_dict(), "reasons": list(self.reasons), "explanation": self.explanation}


def _q(value: Decimal) -> Decimal:
    return value.quantize(_TWO_PLACES, rounding=ROUND_HALF_UP)


def derive_profile(paid: Iterable[PaidInvoiceRecord], promises: Iterable[PromiseRecord] = (), *,
                   today: date, rule: ProfileRule = DEFAULT_PROFILE_RULE) -> PayerProfile:
    """Classify a customer from the invoices paid and promises due in the rule's window.

    The window is ``(today - window_days, today]`` on the paid date (invoices) and on
    the promised date (promises). Never raises on data: an empty history is ``new``.
    """
    start = today - timedelta(days=rule.window_days - 1)
    in_window = [p for p in paid if start <= p.paid_on <= today]
    proms = [p for p in promises if start <= p.promised_date <= today]
    broken = sum(1 for p in proms if p.outcome == BROKEN)
    kept = sum(1 for p in proms if p.outcome == KEPT)
    n = len(in_window)
    late = [p for p in in_window if p.days_late > rule.late_grace_days]
    late_percent = _q(Decimal(len(late) * 100) / Decimal(n)) if n else Decimal("0.00")
    if n and rule.weighting == AMOUNT and sum(abs(p.amount.amount) for p in in_window) > 0:
        weight = sum(abs(p.amount.amount) for p in in_window)
        avg = _q(Decimal(sum(p.days_late * abs(p.amount.amount) for p in in_window)) / Decimal(weight))
    else:
        avg = _q(Decimal(sum(p.days_late for p in in_window)) / Decimal(n)) if n else Decimal("0.00")
    metrics = ProfileMetrics(window_start=start, window_end=today, invoices_paid=n, invoices_paid_late=len(late),
                             late_percent=late_percent, avg_days_late=avg,
                             max_days_late=max((p.days_late for p in in_window), default=0),
                             broken_promises=broken, kept_promises=kept)
    facts = (f"{n} invoice(s) paid between {start.isoformat()} and {today.isoformat()}, {len(late)} late "
             f"({late_percent}%), on average {avg} days late"
             + (" (weighted by amount)" if rule.weighting == AMOUNT else "")
             + f", {broken} broken promise(s)")
    if n < rule.min_invoices:
        return PayerProfile(NEW, metrics, rule, (
            facts,
            f"new: fewer than {rule.min_invoices} invoices paid in the last {rule.window_days} days, "
            f"treated as {OCCASIONAL_LATE}"))
    chronic = []
    if avg > rule.chronic_min_avg_days_late:
        chronic.append(f"average {avg} days late > {_pct(rule.chronic_min_avg_days_late)}")
    if late_percent > rule.chronic_min_late_percent:
        chronic.append(f"{late_percent}% paid late > {_pct(rule.chronic_min_late_percent)}%")
    if broken >= rule.chronic_min_broken_promises:
        chronic.append(f"{broken} broken promises >= {rule.chronic_min_broken_promises}")
    if chronic:
        return PayerProfile(CHRONIC_LATE, metrics, rule, (facts, f"{CHRONIC_LATE}: " + " and ".join(chronic)))
    if avg <= rule.reliable_max_avg_days_late and late_percent <= rule.reliable_max_late_percent:
        return PayerProfile(RELIABLE, metrics, rule, (
            facts,
            f"{RELIABLE}: average {avg} days late <= {_pct(rule.reliable_max_avg_days_late)} and "
            f"{late_percent}% paid late <= {_pct(rule.reliable_max_late_percent)}%"))
    why = []
    if avg > rule.reliable_max_avg_days_late:
        why.append(f"average {avg} days late > {_pct(rule.reliable_max_avg_days_late)}")
    if late_percent > rule.reliable_max_late_percent:
        why.append(f"{late_percent}% paid late > {_pct(rule.reliable_max_late_percent)}%")
    return PayerProfile(OCCASIONAL_LATE, metrics, rule, (
        facts, f"{OCCASIONAL_LATE}: not reliable (" + " and ".join(why) + ") and no chronic threshold reached"))


# -- promises to pay ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PromiseToPay:
    """A promise recorded by a collector or by the customer on the hosted page."""

    amount: Money
    promised_date: date
    made_on: date
    id: str | None = None
    invoice_id: str | None = None

    def __post_init__(self) -> None:
        if not self.amount.is_positive:
            raise ValidationError("a promise to pay needs an amount greater than 0", field="amount")
        if self.promised_date < self.made_on:
            raise ValidationError("promised_date must not be before the day the promise is made",
                                  field="promised_date")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "invoice_id": self.invoice_id, "amount": str(self.amount),
                "currency": self.amount.currency, "promised_date": self.promised_date.isoformat(),
                "made_on": self.made_on.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "") -> PromiseToPay:
        if not isinstance(data, Mapping):
            raise ValidationError(f"{prefix or 'promise'} must be an object", field=prefix.rstrip(".") or None)
        reject_unknown(data, ("id", "invoice_id", "amount", "currency", "promised_date", "made_on"), prefix)
        currency = data.get("currency") or "EUR"
        return cls(amount=Money.parse(data.get("amount"), currency, field=prefix + "amount"),
                   promised_date=_date(data.get("promised_date"), prefix + "promised_date"),
                   made_on=_date(data.get("made_on"), prefix + "made_on"),
                   id=data.get("id"), invoice_id=data.get("invoice_id"))


def promise_status(promise: PromiseToPay, payments: Sequence[tuple[date, Money]], *, today: date) -> str:
    """``kept`` once the promised amount is received from ``made_on`` to ``promised_date``
    (both included); ``broken`` once ``today`` is after the promised date without that;
    else ``active``. Payments in another currency than the promise's, or dated after
    ``today`` (replays), are ignored.
    """
    received = sum(m.amount for d, m in payments
                   if m.currency == promise.amount.currency
                   and promise.made_on <= d <= min(promise.promised_date, today))
    if received >= promise.amount.amount:
        return KEPT
    if today > promise.promised_date:
        return BROKEN
    return ACTIVE
