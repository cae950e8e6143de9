"""Receivables KPIs: aging buckets, DSO (standard, countback, best possible), CEI,
collection rate and the payment-behaviour figures of the collection report.

Everything here is arithmetic over plain inputs (integers of minor units, dates):
where the inputs come from is the business of :mod:`.aggregates` (balances and
flows per day, maintained on write) and of the services (paid invoices of a
period). Money stays an ``int`` of minor units; ratios (days, percentages) are
``Decimal`` rounded half-up once, for output, to one decimal place.

Definitions (sources quoted in each function's docstring):

- **Standard DSO** = ending total receivables / credit sales of the period x days
  in the period (creditguru.com "Average Days Delinquent"; aro2c "What is count
  back DSO?").
- **Countback DSO**: start from the period-end receivables, subtract the latest
  month's credit sales and count that month's days, then the month before, until
  what is left is smaller than a month's sales; that last month counts
  pro rata (remaining / that month's sales x its days) (Credit Today / COKeM,
  quoted by academy.highako.com "Why you should switch to the countback method").
- **Best possible DSO** = current (not yet due) receivables / credit sales x days
  (apruve.com "What is best possible DSO"); **average days delinquent** = standard
  DSO - best possible DSO (creditguru.com, yaypay.com).
- **CEI** = (beginning receivables + credit sales - ending total receivables) /
  (beginning receivables + credit sales - ending current receivables) x 100
  (creditguru.com "Collection Effectiveness Index", one-period form; their
  multi-month variant divides credit sales by the number of months N, we do not).
- **Collection rate**: definitions vary (paraglide.ai lists two). We use the one
  computable from the ledger's own flows: cash collected in the period /
  (beginning receivables + credit sales of the period) x 100, i.e. the share of
  what was there to collect that came in as cash.

"Credit sales" are *net* credit sales: invoiced (payable amounts, VAT included,
like the receivables they create) minus credit notes applied in the period.
"Current receivables" are those not yet past due (due date on or after the day).
"Written off" is the bad debt of the period: balances of invoices declared
uncollectible (the loss), reported next to the collection and DSO figures.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Sequence

from .errors import ValidationError
from .money import Money

ONE_PLACE = Decimal("0.1")
NO_DUNNING = "none"


def rounded(value: Decimal | None, places: Decimal = ONE_PLACE) -> Decimal | None:
    """Round half-up for output (``None`` stays ``None``: a ratio with no denominator)."""
    return None if value is None else value.quantize(places, rounding=ROUND_HALF_UP)


def _ratio(numerator: int, denominator: int, factor: int | Decimal = 1) -> Decimal | None:
    if denominator == 0:
        return None
    return Decimal(numerator) * Decimal(factor) / Decimal(denominator)


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def days_in_period(start: date, end: date) -> int:
    """Calendar days from ``start`` to ``end``, both included."""
    if end < start:
        raise ValidationError(f"period end {end.isoformat()} is before its start {start.isoformat()}",
                              field="end")
    return (end - start).days + 1


def month_start(d: date) -> date:
    return d.replace(day=1)


def month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def add_months(d: date, months: int) -> date:
    """First day of the month ``months`` after (or before) ``d``'s month."""
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


# -- aging ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BucketSpec:
    """Days past due covered by a bucket, both ends included; ``None`` is unbounded.

    Days past due = as_of - due_date: an invoice due today is 0 days past due, i.e.
    not yet due (the same rule as :meth:`Invoice.is_overdue`).
    """

    name: str
    min_days: int | None
    max_days: int | None

    def contains(self, days_past_due: int) -> bool:
        return ((self.min_days is None or days_past_due >= self.min_days)
                and (self.max_days is None or days_past_due <= self.max_days))


NOT_DUE, D1_30, D31_60, D61_90, OVER_90 = "not_due", "1_30", "31_60", "61_90", "over_90"
AGING_BUCKETS: tuple[BucketSpec, ...] = (
    BucketSpec(NOT_DUE, None, 0),
    BucketSpec(D1_30, 1, 30),
    BucketSpec(D31_60, 31, 60),
    BucketSpec(D61_90, 61, 90),
    BucketSpec(OVER_90, 91, None),
)


def check_buckets(buckets: Sequence[BucketSpec]) -> None:
    """Buckets must tile the integers: ``(-inf, 0]``, then contiguous ranges, then ``[n, +inf)``."""
    if len(buckets) < 2:
        raise ValidationError("aging needs at least two buckets", field="buckets")
    first, last = buckets[0], buckets[-1]
    if first.min_days is not None or first.max_days != 0:
        raise ValidationError("the first aging bucket must be 'not yet due' (max_days 0, no min_days)",
                              field="buckets")
    if last.max_days is not None:
        raise ValidationError("the last aging bucket must be open-ended (no max_days)", field="buckets")
    expected = 1
    for spec in buckets[1:]:
        if spec.min_days != expected:
            raise ValidationError(f"aging bucket {spec.name} must start at {expected} days past due",
                                  field="buckets")
        if spec.max_days is not None:
            if spec.max_days < spec.min_days:
                raise ValidationError(f"aging bucket {spec.name} ends before it starts", field="buckets")
            expected = spec.max_days + 1
    if len({b.name for b in buckets}) != len(buckets):
        raise ValidationError("aging bucket names must be unique", field="buckets")


def bucket_of(days_past_due: int, buckets: Sequence[BucketSpec] = AGING_BUCKETS) -> str:
    for spec in buckets:
        if spec.contains(days_past_due):
            return spec.name
    raise ValueError(f"no aging bucket covers {days_past_due} days past due")


@dataclass(frozen=True, slots=True)
class AgingBucket:
    name: str
    amount: int   # minor units open in the bucket
    count: int    # invoices with a positive open balance in the bucket


@dataclass(frozen=True, slots=True)
class Aging:
    """Open receivables as of a date, by days past due as of that same date."""

    currency: str
    as_of: date
    scope: str              # "*" for the portfolio, else a customer id
    buckets: tuple[AgingBucket, ...]

    @property
    def total(self) -> int:
        return sum(b.amount for b in self.buckets)

    @property
    def count(self) -> int:
        return sum(b.count for b in self.buckets)

    @property
    def current(self) -> int:
        """Not yet due (the first bucket)."""
        return self.buckets[0].amount

    @property
    def past_due(self) -> int:
        return self.total - self.current

    def bucket(self, name: str) -> AgingBucket:
        for b in self.buckets:
            if b.name == name:
                return b
        raise KeyError(name)

    def oldest_bucket(self) -> str | None:
        """Name of the oldest bucket with a positive amount (None when nothing is open)."""
        for b in reversed(self.buckets):
            if b.amount > 0:
                return b.name
        return None

    def to_dict(self) -> dict[str, Any]:
        money = lambda minor: str(Money(minor, self.currency))  # noqa: E731
        return {"currency": self.currency, "as_of": self.as_of.isoformat(), "scope": self.scope,
                "buckets": [{"name": b.name, "amount": money(b.amount), "count": b.count} for b in self.buckets],
                "total": money(self.total), "count": self.count, "past_due": money(self.past_due)}


def aging_of(open_items: Iterable[tuple[date, int]], *, currency: str, as_of: date, scope: str = "*",
             buckets: Sequence[BucketSpec] = AGING_BUCKETS) -> Aging:
    """Aging of a list of ``(due_date, open amount)`` pairs (one per invoice).

    Amounts of zero are ignored; a positive amount counts one invoice; a negative
    one (an overpaid invoice, which the ledger refuses but a report must not hide)
    is added to the amounts without counting.
    """
    check_buckets(buckets)
    amounts: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for due, amount in open_items:
        if amount == 0:
            continue
        name = bucket_of((as_of - due).days, buckets)
        amounts[name] += amount
        counts[name] += 1 if amount > 0 else 0
    return Aging(currency=currency, as_of=as_of, scope=scope,
                 buckets=tuple(AgingBucket(b.name, amounts[b.name], counts[b.name]) for b in buckets))


# -- period figures (fed from the aggregates) -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class PeriodFigures:
    """Balances and flows of one currency (and scope) over ``[start, end]``.

    ``beginning_receivables`` is what was open at the end of the day before
    ``start``; ``ending_*`` at the end of ``end``. Flows are positive amounts.
    """

    currency: str
    start: date
    end: date
    beginning_receivables: int
    ending_receivables: int
    ending_current_receivables: int
    invoiced: int = 0
    credited: int = 0
    collected: int = 0
    refunded: int = 0
    discounted: int = 0
    written_off: int = 0
    adjusted: int = 0

    @property
    def days(self) -> int:
        return days_in_period(self.start, self.end)

    @property
    def credit_sales(self) -> int:
        """Net credit sales: invoiced minus credit notes."""
        return self.invoiced - self.credited

    @property
    def net_collected(self) -> int:
        """Cash collected minus refunds and chargebacks."""
        return self.collected - self.refunded

    def reconciles(self) -> bool:
        """Beginning + flows == ending: the ledger identity the aggregates must keep."""
        return (self.beginning_receivables + self.invoiced - self.collected + self.refunded - self.credited
                - self.discounted - self.written_off + self.adjusted) == self.ending_receivables


def dso_standard(receivables: int, credit_sales: int, days: int) -> Decimal | None:
    """(Ending total receivables / credit sales of the period) x days in the period.

    Source: creditguru.com, "Regular DSO = (Total Accounts Receivables / Total
    Credit Sales) x Number of Days in the period that is being analyzed".
    ``None`` when there were no credit sales (the ratio is undefined).
    """
    if credit_sales <= 0:
        return None
    return Decimal(receivables) * days / Decimal(credit_sales)


def dso_best_possible(current_receivables: int, credit_sales: int, days: int) -> Decimal | None:
    """(Current receivables / credit sales) x days: the DSO if nobody paid late.

    Source: apruve.com, "Best days sales outstanding (DSO) = Current accounts
    receivable / Total credit sales x Number of days".
    """
    return dso_standard(current_receivables, credit_sales, days)


@dataclass(frozen=True, slots=True)
class MonthSales:
    """Net credit sales of one calendar month (``month`` is its first day)."""

    month: date
    credit_sales: int

    @property
    def days(self) -> int:
        return calendar.monthrange(self.month.year, self.month.month)[1]


@dataclass(frozen=True, slots=True)
class Countback:
    days: Decimal | None     # None when there is nothing to count back (no receivables or no sales)
    months_used: int
    exhausted: bool          # receivables exceed all the sales given: ``days`` is a lower bound


def dso_countback(receivables: int, months: Sequence[MonthSales]) -> Countback:
    """Countback DSO: walk back month by month, most recent first.

    Method (Credit Today ListServ, quoted by academy.highako.com; also
    calculator7 "Debtor days count back"): take the period-end receivables,
    remove the latest month's credit sales and count that month's calendar days;
    repeat for earlier months while the remainder covers a whole month's sales;
    the last month counts ``remaining / its sales x its days``.

    ``months`` must be most recent first and contiguous. A month with no (or
    negative) net sales is counted in full: none of the balance can come from it.
    """
    for earlier, later in zip(months[1:], months):
        if add_months(earlier.month, 1) != later.month:
            raise ValueError("countback months must be contiguous, most recent first")
    if receivables <= 0:
        return Countback(Decimal(0), 0, False)
    remaining = Decimal(receivables)
    days = Decimal(0)
    for used, m in enumerate(months, start=1):
        if m.credit_sales <= 0:
            days += m.days
            continue
        if remaining <= m.credit_sales:
            days += remaining * m.days / Decimal(m.credit_sales)
            return Countback(days, used, False)
        remaining -= m.credit_sales
        days += m.days
    if not months:
        return Countback(None, 0, True)
    return Countback(days, len(months), True)


def cei(beginning: int, credit_sales: int, ending_total: int, ending_current: int) -> Decimal | None:
    """Collection effectiveness index, in percent.

    (Beginning receivables + credit sales - ending total receivables) /
    (beginning receivables + credit sales - ending current receivables) x 100
    (creditguru.com; the same figures give 79.63 % in wizedu's worked example).
    ``None`` when the denominator is 0 (nothing was collectable).
    """
    return _ratio(beginning + credit_sales - ending_total, beginning + credit_sales - ending_current, 100)


def collection_rate(collected: int, beginning: int, credit_sales: int) -> Decimal | None:
    """Cash collected / (beginning receivables + credit sales) x 100 (see the module docstring)."""
    return _ratio(collected, beginning + credit_sales, 100)


@dataclass(frozen=True, slots=True)
class DsoReport:
    currency: str
    start: date
    end: date
    days: int
    receivables: int
    current_receivables: int
    credit_sales: int
    standard: Decimal | None
    countback: Decimal | None
    countback_exhausted: bool
    best_possible: Decimal | None
    written_off: int = 0               # bad debt written off in the period (the aggregates' write-off flow)

    @property
    def average_days_delinquent(self) -> Decimal | None:
        if self.standard is None or self.best_possible is None:
            return None
        return self.standard - self.best_possible

    def to_dict(self) -> dict[str, Any]:
        money = lambda minor: str(Money(minor, self.currency))  # noqa: E731
        return {"currency": self.currency, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "days": self.days, "receivables": money(self.receivables),
                "current_receivables": money(self.current_receivables), "credit_sales": money(self.credit_sales),
                "standard": _dec(rounded(self.standard)), "countback": _dec(rounded(self.countback)),
                "countback_exhausted": self.countback_exhausted,
                "best_possible": _dec(rounded(self.best_possible)),
                "average_days_delinquent": _dec(rounded(self.average_days_delinquent)),
                "written_off": money(self.written_off)}


def dso_report(figures: PeriodFigures, months: Sequence[MonthSales]) -> DsoReport:
    """DSO of a period by the three methods.

    ``months``: net credit sales per calendar month, most recent first, starting
    with the month that contains ``figures.end`` (for the countback; a period that
    ends mid-month should pass that month's sales up to ``end`` only).
    """
    back = dso_countback(figures.ending_receivables, months)
    return DsoReport(
        currency=figures.currency, start=figures.start, end=figures.end, days=figures.days,
        receivables=figures.ending_receivables, current_receivables=figures.ending_current_receivables,
        credit_sales=figures.credit_sales,
        standard=dso_standard(figures.ending_receivables, figures.credit_sales, figures.days),
        countback=back.days, countback_exhausted=back.exhausted,
        best_possible=dso_best_possible(figures.ending_current_receivables, figures.credit_sales, figures.days),
        written_off=figures.written_off)


@dataclass(frozen=True, slots=True)
class MonthFigures:
    """Month-end balances and the month's net credit sales (``month`` is its first day)."""

    month: date
    receivables_end: int
    current_end: int
    credit_sales: int
    written_off: int = 0


def dso_series(months: Sequence[MonthFigures], *, points: int = 12, currency: str) -> tuple[DsoReport, ...]:
    """Monthly DSO for the last ``points`` months of ``months`` (chronological, contiguous).

    Each point's period is its calendar month. The months before the last
    ``points`` serve the countback only: pass 12 to 24 more than ``points`` so
    that slow payers do not exhaust it.
    """
    for earlier, later in zip(months, months[1:]):
        if add_months(earlier.month, 1) != later.month:
            raise ValueError("monthly figures must be contiguous and chronological")
    out = []
    for i in range(max(0, len(months) - points), len(months)):
        m = months[i]
        start, end = m.month, month_end(m.month)
        history = [MonthSales(x.month, x.credit_sales) for x in reversed(months[: i + 1])]
        fig = PeriodFigures(currency=currency, start=start, end=end, beginning_receivables=0,
                            ending_receivables=m.receivables_end, ending_current_receivables=m.current_end,
                            invoiced=m.credit_sales, written_off=m.written_off)
        out.append(dso_report(fig, history))
    return tuple(out)


# -- collection report ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PaymentPart:
    """Cash allocated to an invoice: when, how much (minor units) and by which method."""

    on: date
    amount: int
    method: str


@dataclass(frozen=True, slots=True)
class PaidInvoice:
    """An invoice fully settled on ``paid_on``, with the cash that settled it.

    ``dunning_step``: the last reminder sent before ``paid_on`` (``None`` if the
    customer paid before any reminder).
    """

    invoice_id: str
    customer_id: str
    currency: str
    issue_date: date
    due_date: date
    paid_on: date
    amount: int
    payments: tuple[PaymentPart, ...] = ()
    dunning_step: str | None = None

    @property
    def days_to_pay(self) -> int:
        return (self.paid_on - self.issue_date).days

    @property
    def days_late(self) -> int:
        return max(0, (self.paid_on - self.due_date).days)

    @property
    def on_time(self) -> bool:
        return self.paid_on <= self.due_date


@dataclass(frozen=True, slots=True)
class MethodBreakdown:
    method: str
    amount: int          # cash by this method that settled the invoices paid in the period
    invoices: int        # invoices paid in the period with some cash by this method


@dataclass(frozen=True, slots=True)
class DunningStepBreakdown:
    step: str                      # "none" when paid before any reminder
    invoices: int
    amount: int
    average_days_late: Decimal | None
    share_of_invoices: Decimal | None   # percent of the invoices paid in the period


@dataclass(frozen=True, slots=True)
class CollectionReport:
    currency: str
    start: date
    end: date
    cei: Decimal | None
    collection_rate: Decimal | None
    amount_collected: int              # cash received in the period (all invoices), refunds not deducted
    amount_refunded: int
    invoices_paid: int
    average_days_to_pay: Decimal | None
    average_days_late: Decimal | None
    on_time_share: Decimal | None      # percent of invoices paid on or before their due date
    by_method: tuple[MethodBreakdown, ...]
    by_dunning_step: tuple[DunningStepBreakdown, ...]
    # Bad debt written off in the period (uncollectible invoices: the loss), from the aggregates' flows.
    amount_written_off: int = 0

    def to_dict(self) -> dict[str, Any]:
        money = lambda minor: str(Money(minor, self.currency))  # noqa: E731
        r = lambda v: _dec(rounded(v))  # noqa: E731
        return {
            "currency": self.currency, "start": self.start.isoformat(), "end": self.end.isoformat(),
            "cei": r(self.cei), "collection_rate": r(self.collection_rate),
            "amount_collected": money(self.amount_collected), "amount_refunded": money(self.amount_refunded),
            "amount_written_off": money(self.amount_written_off),
            "invoices_paid": self.invoices_paid, "average_days_to_pay": r(self.average_days_to_pay),
            "average_days_late": r(self.average_days_late), "on_time_share": r(self.on_time_share),
            "by_method": [{"method": m.method, "amount": money(m.amount), "invoices": m.invoices}
                          for m in self.by_method],
            "by_dunning_step": [{"step": s.step, "invoices": s.invoices, "amount": money(s.amount),
                                 "average_days_late": r(s.average_days_late),
                                 "share_of_invoices": r(s.share_of_invoices)} for s in self.by_dunning_step],
        }


def collection_report(figures: PeriodFigures, paid: Iterable[PaidInvoice]) -> CollectionReport:
    """Collection KPIs of ``figures``' period.

    CEI, collection rate and amounts come from the period's balances and flows;
    the payment-behaviour figures from ``paid``: the invoices of that currency
    *fully paid* during the period (others are ignored), whatever their issue
    date. Averages are plain means per invoice.
    """
    invoices = [p for p in paid if p.currency == figures.currency and figures.start <= p.paid_on <= figures.end]
    n = len(invoices)
    by_method_amount: dict[str, int] = defaultdict(int)
    by_method_invoices: dict[str, int] = defaultdict(int)
    for inv in invoices:
        for method in {part.method for part in inv.payments}:
            by_method_invoices[method] += 1
        for part in inv.payments:
            by_method_amount[part.method] += part.amount
    steps: dict[str, list[PaidInvoice]] = defaultdict(list)
    for inv in invoices:
        steps[inv.dunning_step or NO_DUNNING].append(inv)
    step_rows = tuple(
        DunningStepBreakdown(step=step, invoices=len(rows), amount=sum(r.amount for r in rows),
                             average_days_late=_ratio(sum(r.days_late for r in rows), len(rows)),
                             share_of_invoices=_ratio(len(rows), n, 100))
        for step, rows in sorted(steps.items(), key=lambda kv: (kv[0] != NO_DUNNING, kv[0])))
    return CollectionReport(
        currency=figures.currency, start=figures.start, end=figures.end,
        cei=cei(figures.beginning_receivables, figures.credit_sales, figures.ending_receivables,
                figures.ending_current_receivables),
        collection_rate=collection_rate(figures.collected, figures.beginning_receivables, figures.credit_sales),
        amount_collected=figures.collected, amount_refunded=figures.refunded, invoices_paid=n,
        average_days_to_pay=_ratio(sum(i.days_to_pay for i in invoices), n),
        average_days_late=_ratio(sum(i.days_late for i in invoices), n),
        on_time_share=_ratio(sum(1 for i in invoices if i.on_time), n, 100),
        by_method=tuple(MethodBreakdown(m, by_method_amount[m], by_method_invoices[m])
                        for m in sorted(by_method_amount, key=lambda m: (-by_method_amount[m], m))),
        by_dunning_step=step_rows, amount_written_off=figures.written_off)
