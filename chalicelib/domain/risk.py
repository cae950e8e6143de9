"""Payer scorecard, risk score and credit check.

The scorecard answers "how does this customer pay, and how much do we risk?":
exposure (open balance net of unapplied cash), credit limit and headroom, average
days to pay and days late over 90 and 365 days and their trend, the share paid
late, promises broken and kept, payer profile and last contact.

The **risk score** (0 = no risk, 100 = highest) is a weighted mean of factors
normalised to [0, 1]; the weights are configuration (:class:`RiskWeights`). A
factor without data (no paid invoice yet, no credit limit) is *not applicable*:
its weight is left out and the others are re-weighted, rather than pretending a
missing figure is good or bad. Each factor is returned with its raw value, its
normalised score, its weight and its contribution in points, which add up to the
score (before rounding).

The **credit check** says whether a new order, draft, deposit or recurring
invoice may go ahead: ``credit_hold`` when exposure + the customer's pending
drafts + amount exceeds the limit, when the oldest overdue invoice is more than
``max_overdue_days`` late, or when the customer is on hold by hand; an explicit
override (who and why) lets it through and is recorded; recurring invoices for
delivered service are never blocked (French law: they must be invoiced) but are
flagged (``delivered_work``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping

from .errors import ValidationError
from .money import Money

KEPT, BROKEN = "kept", "broken"
IMPROVING, STABLE, WORSENING, UNKNOWN = "improving", "stable", "worsening", "unknown"
LOW, MEDIUM, HIGH = "low", "medium", "high"

_CENT = Decimal("0.01")
_TENTH = Decimal("0.1")


def _q(value: Decimal | None, places: Decimal = _TENTH) -> Decimal | None:
    return None if value is None else value.quantize(places, rounding=ROUND_HALF_UP)


def _mean(values: list[int]) -> Decimal | None:
    return Decimal(sum(values)) / len(values) if values else None


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# -- inputs ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OpenItem:
    invoice_id: str
    due_date: date
    amount_due: int


@dataclass(frozen=True, slots=True)
class PaidItem:
    """An invoice of the customer paid in full on ``paid_on``."""

    issue_date: date
    due_date: date
    paid_on: date
    amount: int = 0

    @property
    def days_to_pay(self) -> int:
        return (self.paid_on - self.issue_date).days

    @property
    def days_late(self) -> int:
        return max(0, (self.paid_on - self.due_date).days)


@dataclass(frozen=True, slots=True)
class PromiseOutcome:
    promised_date: date
    outcome: str

    def __post_init__(self) -> None:
        if self.outcome not in (KEPT, BROKEN):
            raise ValidationError("a promise outcome is kept or broken", field="outcome")


@dataclass(frozen=True, slots=True)
class PayerActivity:
    """Everything the scorecard reads about one customer, in one currency."""

    customer_id: str
    currency: str
    open_items: tuple[OpenItem, ...] = ()
    paid: tuple[PaidItem, ...] = ()
    promises: tuple[PromiseOutcome, ...] = ()
    credit_limit: int | None = None
    unapplied_cash: int = 0
    profile: str | None = None
    last_contact: date | None = None


# -- configuration --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RiskWeights:
    """Relative weights of the factors (whole numbers; they need not add up to 100)."""

    days_late: int = 25
    late_share: int = 15
    overdue_ratio: int = 15
    oldest_overdue: int = 20
    broken_promises: int = 10
    credit_utilization: int = 10
    trend: int = 5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
                raise ValidationError(f"weights.{f.name} must be a whole number between 0 and 1000",
                                      field=f"weights.{f.name}")
        if sum(self.as_dict().values()) == 0:
            raise ValidationError("at least one risk weight must be above 0", field="weights")

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Weights and the values at which each factor reaches its maximum (1.0)."""

    weights: RiskWeights = RiskWeights()
    days_late_cap: int = 60
    oldest_overdue_cap: int = 90
    broken_promises_cap: int = 3
    trend_cap_days: int = 30
    trend_threshold_days: int = 3
    no_data_score: int = 50
    medium_from: int = 34
    high_from: int = 67

    def __post_init__(self) -> None:
        for name in ("days_late_cap", "oldest_overdue_cap", "broken_promises_cap", "trend_cap_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
                raise ValidationError(f"{name} must be a whole number between 1 and 3650", field=name)
        for name in ("trend_threshold_days", "no_data_score", "medium_from", "high_from"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise ValidationError(f"{name} must be a whole number between 0 and 100", field=name)
        if self.medium_from > self.high_from:
            raise ValidationError("medium_from must not exceed high_from", field="medium_from")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RiskConfig:
        """Validate a configuration from JSON; missing keys take the defaults."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValidationError("risk configuration must be an object", field="risk")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError(f"unknown risk setting(s): {', '.join(unknown)}", field=unknown[0])
        weights = data.get("weights")
        if weights is not None:
            if not isinstance(weights, Mapping):
                raise ValidationError("weights must be an object of factor -> whole number", field="weights")
            names = {f.name for f in fields(RiskWeights)}
            bad = sorted(set(weights) - names)
            if bad:
                raise ValidationError(f"unknown risk factor(s): {', '.join(bad)}; known: {', '.join(sorted(names))}",
                                      field=f"weights.{bad[0]}")
            weights = RiskWeights(**weights)
        rest = {k: v for k, v in data.items() if k != "weights"}
        return cls(weights=weights or RiskWeights(), **rest)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "weights"}
        out["weights"] = self.weights.as_dict()
        return out


DEFAULT_RISK_CONFIG = RiskConfig()


# -- scorecard ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RiskFactor:
    name: str
    value: Decimal | None          # the raw figure (days, percent, count, ratio); None: not applicable
    normalized: Decimal | None     # 0..1
    weight: int
    contribution: Decimal          # points of the 0-100 score

    @property
    def applicable(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": _s(self.value), "normalized": _s(self.normalized),
                "weight": self.weight, "contribution": str(self.contribution), "applicable": self.applicable}


@dataclass(frozen=True, slots=True)
class RiskScore:
    score: int
    band: str
    factors: tuple[RiskFactor, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "band": self.band, "factors": [f.to_dict() for f in self.factors]}


@dataclass(frozen=True, slots=True)
class Scorecard:
    customer_id: str
    currency: str
    as_of: date
    open_balance: int
    unapplied_cash: int
    exposure: int
    overdue: int
    oldest_overdue_days: int
    credit_limit: int | None
    headroom: int | None
    utilization: Decimal | None           # percent of the limit used
    avg_days_to_pay_90: Decimal | None
    avg_days_to_pay_365: Decimal | None
    avg_days_late_90: Decimal | None
    avg_days_late_365: Decimal | None
    trend_days: Decimal | None            # avg days late over 90 days minus over 365 days
    trend: str
    late_share: Decimal | None            # percent of the invoices paid in 365 days that were late
    invoices_paid_365: int
    broken_promises: int
    kept_promises: int
    profile: str | None
    last_contact: date | None
    risk: RiskScore

    def to_dict(self) -> dict[str, Any]:
        money = lambda minor: None if minor is None else str(Money(minor, self.currency))  # noqa: E731
        return {
            "customer_id": self.customer_id, "currency": self.currency, "as_of": self.as_of.isoformat(),
            "open_balance": money(self.open_balance), "unapplied_cash": money(self.unapplied_cash),
            "exposure": money(self.exposure), "overdue": money(self.overdue),
            "oldest_overdue_days": self.oldest_overdue_days, "credit_limit": money(self.credit_limit),
            "headroom": money(self.headroom), "utilization": _s(_q(self.utilization)),
            "avg_days_to_pay_90": _s(_q(self.avg_days_to_pay_90)),
            "avg_days_to_pay_365": _s(_q(self.avg_days_to_pay_365)),
            "avg_days_late_90": _s(_q(self.avg_days_late_90)), "avg_days_late_365": _s(_q(self.avg_days_late_365)),
            "trend_days": _s(_q(self.trend_days)), "trend": self.trend, "late_share": _s(_q(self.late_share)),
            "invoices_paid_365": self.invoices_paid_365, "broken_promises": self.broken_promises,
            "kept_promises": self.kept_promises, "profile": self.profile,
            "last_contact": self.last_contact.isoformat() if self.last_contact else None,
            "risk": self.risk.to_dict()}


def _norm(value: Decimal, cap: int | Decimal) -> Decimal:
    return min(Decimal(1), max(Decimal(0), value / Decimal(cap)))


def risk_score(values: Mapping[str, tuple[Decimal | None, Decimal | None]],
               config: RiskConfig = DEFAULT_RISK_CONFIG) -> RiskScore:
    """Weighted mean of the applicable factors' normalised values, in points out of 100.

    ``values`` maps a factor name to ``(raw value, normalised 0..1)``, ``(None, None)``
    when not applicable.
    """
    weights = config.weights.as_dict()
    applicable = sum(w for name, w in weights.items() if values.get(name, (None, None))[0] is not None)
    factors = []
    total = Decimal(0)
    for name, weight in weights.items():
        raw, norm = values.get(name, (None, None))
        if raw is None or norm is None or applicable == 0:
            factors.append(RiskFactor(name, None, None, weight, Decimal("0.00")))
            continue
        points = Decimal(weight) * norm * 100 / applicable
        total += points
        factors.append(RiskFactor(name, raw, _q(norm, Decimal("0.001")), weight, _q(points, _CENT) or Decimal(0)))
    score = (config.no_data_score if applicable == 0
             else int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP)))
    band = HIGH if score >= config.high_from else MEDIUM if score >= config.medium_from else LOW
    return RiskScore(score=score, band=band, factors=tuple(factors))


def scorecard(activity: PayerActivity, *, as_of: date, config: RiskConfig = DEFAULT_RISK_CONFIG) -> Scorecard:
    """The payer scorecard of ``activity`` as of ``as_of`` (only what happened by then counts)."""
    open_balance = sum(i.amount_due for i in activity.open_items)
    exposure = open_balance - activity.unapplied_cash
    overdue_items = [i for i in activity.open_items if i.due_date < as_of and i.amount_due > 0]
    overdue = sum(i.amount_due for i in overdue_items)
    oldest = max(((as_of - i.due_date).days for i in overdue_items), default=0)
    limit = activity.credit_limit
    headroom = None if limit is None else limit - exposure
    utilization = None if not limit else Decimal(exposure) * 100 / limit

    def window(days: int) -> list[PaidItem]:
        start = as_of - timedelta(days=days - 1)
        return [p for p in activity.paid if start <= p.paid_on <= as_of]

    w90, w365 = window(90), window(365)
    late_90 = _mean([p.days_late for p in w90])
    late_365 = _mean([p.days_late for p in w365])
    trend_days = None if late_90 is None or late_365 is None else late_90 - late_365
    if trend_days is None:
        trend = UNKNOWN
    elif trend_days > config.trend_threshold_days:
        trend = WORSENING
    elif trend_days < -config.trend_threshold_days:
        trend = IMPROVING
    else:
        trend = STABLE
    late_share = _mean([100 if p.days_late > 0 else 0 for p in w365])
    promises = [p for p in activity.promises if as_of - timedelta(days=364) <= p.promised_date <= as_of]
    broken = sum(1 for p in promises if p.outcome == BROKEN)
    kept = len(promises) - broken

    overdue_ratio = Decimal(overdue) / open_balance if open_balance > 0 else Decimal(0)
    values: dict[str, tuple[Decimal | None, Decimal | None]] = {
        "days_late": (late_365, None if late_365 is None else _norm(late_365, config.days_late_cap)),
        "late_share": (late_share, None if late_share is None else _norm(late_share, 100)),
        "overdue_ratio": (overdue_ratio, _norm(overdue_ratio, 1)),
        "oldest_overdue": (Decimal(oldest), _norm(Decimal(oldest), config.oldest_overdue_cap)),
        "broken_promises": (Decimal(broken), _norm(Decimal(broken), config.broken_promises_cap)),
        "credit_utilization": ((None, None) if utilization is None
                               else (utilization, _norm(utilization, 100))),
        "trend": ((None, None) if trend_days is None
                  else (trend_days, _norm(max(Decimal(0), trend_days), config.trend_cap_days))),
    }
    values = {k: (_q(v[0], _CENT) if v[0] is not None else None, v[1]) for k, v in values.items()}
    return Scorecard(
        customer_id=activity.customer_id, currency=activity.currency, as_of=as_of, open_balance=open_balance,
        unapplied_cash=activity.unapplied_cash, exposure=exposure, overdue=overdue, oldest_overdue_days=oldest,
        credit_limit=limit, headroom=headroom, utilization=utilization,
        avg_days_to_pay_90=_mean([p.days_to_pay for p in w90]), avg_days_to_pay_365=_mean([p.days_to_pay for p in w365]),
        avg_days_late_90=late_90, avg_days_late_365=late_365, trend_days=trend_days, trend=trend,
        late_share=late_share, invoices_paid_365=len(w365), broken_promises=broken, kept_promises=kept,
        profile=activity.profile, last_contact=activity.last_contact, risk=risk_score(values, config))


# -- credit check ---------------------------------------------------------------------------------

CREDIT_HOLD = "credit_hold"
LIMIT_EXCEEDED, OVERDUE, MANUAL_HOLD = "credit_limit_exceeded", "overdue_invoices", "manual_hold"


class CreditHold(ValidationError):
    """The customer is on credit hold for this amount (HTTP 422, code ``credit_hold``)."""

    code = CREDIT_HOLD


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    max_overdue_days: int = 30

    def __post_init__(self) -> None:
        if isinstance(self.max_overdue_days, bool) or not isinstance(self.max_overdue_days, int) \
                or not 0 <= self.max_overdue_days <= 3650:
            raise ValidationError("max_overdue_days must be a whole number of days between 0 and 3650",
                                  field="max_overdue_days")


@dataclass(frozen=True, slots=True)
class Override:
    """A clerk's explicit decision to let a held order through."""

    by: str
    reason: str

    def __post_init__(self) -> None:
        if not self.by or not self.by.strip():
            raise ValidationError("an override must say who decided it", field="override.by")
        if not self.reason or not self.reason.strip():
            raise ValidationError("an override needs a reason (it is recorded in the audit trail)",
                                  field="override.reason")


@dataclass(frozen=True, slots=True)
class HoldReason:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class CreditDecision:
    allowed: bool
    reasons: tuple[HoldReason, ...]
    exposure: Money
    credit_limit: Money | None
    amount: Money
    headroom: Money | None              # limit - exposure
    headroom_after: Money | None        # limit - exposure - amount
    oldest_overdue_days: int
    override: Override | None = None
    delivered_work: bool = False
    drafts: Money | None = None         # the customer's other drafts, counted in headroom (None: not counted)

    @property
    def hold(self) -> bool:
        """The customer would be held (even if an override or delivered work lets this one through)."""
        return bool(self.reasons)

    @property
    def code(self) -> str:
        return CREDIT_HOLD if self.reasons else "ok"

    @property
    def flagged(self) -> bool:
        """Allowed despite a hold: by override or because the work was already delivered."""
        return self.allowed and self.hold

    def raise_if_refused(self) -> None:
        if not self.allowed:
            raise CreditHold("; ".join(r.message for r in self.reasons), field="customer_id",
                             details={"reasons": [r.code for r in self.reasons], **self._figures()})

    def _figures(self) -> dict[str, Any]:
        m = lambda v: None if v is None else str(v)  # noqa: E731
        return {"exposure": m(self.exposure), "drafts": m(self.drafts), "credit_limit": m(self.credit_limit),
                "amount": m(self.amount),
                "headroom": m(self.headroom), "headroom_after": m(self.headroom_after),
                "oldest_overdue_days": self.oldest_overdue_days, "currency": self.exposure.currency}

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "hold": self.hold, "code": self.code, "flagged": self.flagged,
                "reasons": [{"code": r.code, "message": r.message} for r in self.reasons], **self._figures(),
                "override": None if self.override is None else {"by": self.override.by, "reason": self.override.reason},
                "delivered_work": self.delivered_work}


def credit_check(*, exposure: Money, credit_limit: Money | None, amount: Money, oldest_overdue_days: int,
                 on_hold: bool = False, policy: CreditPolicy = CreditPolicy(), override: Override | None = None,
                 delivered_work: bool = False, drafts: Money | None = None) -> CreditDecision:
    """May ``amount`` more be invoiced to a customer with this ``exposure``?

    ``drafts`` (the customer's other drafts, not yet receivables) take headroom
    too: several drafts each under the headroom cannot add up over the limit.
    Held (``credit_hold``) when exposure + drafts + amount exceeds the limit, when
    the oldest overdue invoice is more than ``policy.max_overdue_days`` days late,
    or when the customer is on hold by hand. An ``override`` or ``delivered_work``
    (recurring invoices for delivered service only: the callers decide) lets it
    through, flagged. No limit means no limit check. Raises ``CurrencyError`` if
    the amounts are in different currencies.
    """
    reserved = exposure + drafts if drafts is not None else exposure  # CurrencyError on a mix
    after = reserved + amount  # CurrencyError if the order is in another currency
    currency = exposure.currency
    if credit_limit is not None and credit_limit.currency != currency:
        raise ValidationError(f"the credit limit is in {credit_limit.currency} but the exposure in {currency}",
                              field="credit_limit", code="currency_mismatch")
    reasons = []
    if on_hold:
        reasons.append(HoldReason(MANUAL_HOLD, "the customer is on credit hold: take them off hold or pass an "
                                               "override with a reason"))
    if credit_limit is not None and after > credit_limit:
        pending = f" + drafts {drafts} {currency}" if drafts is not None and drafts.amount else ""
        reasons.append(HoldReason(LIMIT_EXCEEDED, (
            f"exposure {exposure} {currency}{pending} + {amount} {currency} = {after} {currency} exceeds the credit limit "
            f"of {credit_limit} {currency} by {after - credit_limit} {currency}: collect open invoices, raise the "
            "limit, or pass an override with a reason")))
    if oldest_overdue_days > policy.max_overdue_days:
        reasons.append(HoldReason(OVERDUE, (
            f"an invoice is {oldest_overdue_days} days overdue, more than the {policy.max_overdue_days} days "
            "allowed: collect it first or pass an override with a reason")))
    return CreditDecision(
        allowed=not reasons or override is not None or delivered_work, reasons=tuple(reasons), exposure=exposure,
        credit_limit=credit_limit, amount=amount,
        headroom=None if credit_limit is None else credit_limit - reserved,
        headroom_after=None if credit_limit is None else credit_limit - after,
        oldest_overdue_days=oldest_overdue_days, override=override if reasons else None,
        delivered_work=delivered_work, drafts=drafts)


def oldest_overdue_days(open_items: Iterable[OpenItem], as_of: date) -> int:
    return max(((as_of - i.due_date).days for i in open_items if i.due_date < as_of and i.amount_due > 0),
               default=0)
