"""Receivables aggregates maintained on write: aging as of any date without reading invoices.

The problem
-----------
"What was open on date D, bucketed by days past due *as of D*" needs, for every
due date X, the sum of every balance movement of the invoices due on X that
happened on or before D: a two-dimensional (event date e, due date X) prefix sum.
Reading it per invoice costs O(invoices); the aggregates below answer it from a
bounded number of small items, whatever the number of invoices.

The decomposition
-----------------
Every movement of an invoice's open balance (issue, payment, credit note,
discount, write-off, refund that reopens it...) is a delta ``(e, X, amount,
count)``: ``amount`` in minor units, ``count`` the change of "this invoice has a
positive balance" (so invoice counts per bucket come out of the same sums). A
delta is **pre-due** when ``e <= X`` and **late** when ``e > X``. For an as-of
date D:

- a pre-due delta at due date X < D happened on or before X, hence before D:
  it counts in full towards X's balance as of D;
- a late delta happened after its due date: it counts when ``e <= D``, and it
  then necessarily has ``X < e <= D``: it is past due as of D.

So, with cumulative sums over dates (``cum_f(t)`` = sum of family f up to t)::

    not yet due(D)        = cum_pre_by_event(D) - cum_pre_by_due(D - 1)
    past due(D)           = cum_pre_by_due(D - 1) + cum_late_by_event(D)
    bucket [lo, hi] (<=90) = sum over X in [D-hi, D-lo] of pre_by_due(X)
                            + sum of late deltas with D-hi <= X <= D-lo, e <= D
    over 90               = past due - the buckets up to 90 days

The late deltas of the 1-90 day buckets have ``e`` in ``[D-89, D]`` and a
lateness ``e - X`` between 1 and 90 days: they are kept in a small
two-dimensional *late detail* keyed by (event day, lateness) for lateness up to
:data:`DETAIL_DAYS` (90, the last finite bucket edge).

The items
---------
One DynamoDB item per :class:`AggregateKey` ``(currency, scope, grain,
period)``; ``scope`` is ``"*"`` (portfolio) or a customer id, and every delta is
written to both. Cells are plain integer counters (``ADD``-able attributes):

====== ========== ====================================================== =========
grain  period     cells                                                   max cells
====== ========== ====================================================== =========
``m``  2026-03    ``pea:15`` ``pen:15`` pre-due by event day (amount,     403
                  count); ``pxa:`` ``pxn:`` pre-due by *due* day;
                  ``lta:`` ``ltn:`` late by event day; flows by event
                  day ``inv: col: ref: cre: dis: wof: adj:``
``y``  2026       the same families, indexed by month (the sum of the     156
                  twelve ``m`` items): the prefix sums' fast path
``l``  2026-03    late detail ``lda:15:42`` ``ldn:15:42`` (event day,     5,580
                  lateness in days 1..90)
====== ========== ====================================================== =========

Items stay small whatever the volume (the late detail, the largest, is under
~90 KB at its theoretical maximum). ``pk = AGG#{currency}#{scope}`` and
``sk = {grain}#{period}``, so one Query ``sk BETWEEN y#0000 AND y#YYYY`` also
fetches the year items.

Read bound
----------
Aging of one (currency, scope) as of any D reads the year items from the
first year of the ledger to D's year, plus at most 4 month items and 4 late
items covering ``[D-90, D]``: **years + 8 items** (:func:`aging_read_keys`).
Ten years of history in 3 currencies: 54 items, well under the 2,000 of the
issue, with 100 or 10 million invoices alike. Month-end receivables and monthly
flows (the DSO series) come from the year items alone.

Write side
----------
A change produces :class:`AggregateDelta` s (one per cell), which
:func:`merge_deltas` folds into one :class:`AggregateUpdate` per item, because a
DynamoDB transaction allows one action per item. A change touches 2 to 5 items
per scope (month and year of the event; for a pre-due delta also month and year
of the due date when they differ; for a late one the late detail), so 4 to 10
updates for the portfolio and the customer together; see
:func:`updates_for_invoice_change`. A payment allocated to many invoices of one
customer shares most of them (same event date): budget about
``6 + 4 x distinct due months`` updates.

Counts and back-dated events
----------------------------
Amounts are order-independent sums. Counts are not: "positive balance on day t"
depends on every event dated up to t, and a payment recorded today may be dated
last week (``received_on``). The count deltas are therefore computed from the
invoice's dated history (:class:`ReceivableHistory`, a short list of
:class:`LedgerEntry` that the service keeps on the invoice record): the
indicator before and after the new entries is compared day by day. With this,
aggregates equal a brute-force recomputation from the histories exactly
(:func:`aging_from_invoices`), which the property tests check.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Iterable, Iterator, Mapping, MutableMapping, Sequence

from .invoice import CREDIT_NOTE, DRAFT, OPEN, PAID, Invoice
from .kpis import (AGING_BUCKETS, Aging, AgingBucket, BucketSpec, MonthFigures, PeriodFigures, aging_of,
                   check_buckets)

PORTFOLIO = "*"
DETAIL_DAYS = 90

YEAR, MONTH, LATE = "y", "m", "l"

# -- ledger entries: the dated movements of one invoice's open balance ---------------------------------

ISSUE, PAYMENT, REFUND, CREDIT, DISCOUNT, WRITE_OFF, ADJUST = (
    "issue", "payment", "refund", "credit", "discount", "write_off", "adjust")
ENTRY_KINDS = (ISSUE, PAYMENT, REFUND, CREDIT, DISCOUNT, WRITE_OFF, ADJUST)
# Sign of each kind's effect on the balance (ADJUST carries its own sign).
_SIGN = {ISSUE: 1, PAYMENT: -1, REFUND: 1, CREDIT: -1, DISCOUNT: -1, WRITE_OFF: -1}
# Flow cell family of each kind.
FLOW_OF = {ISSUE: "inv", PAYMENT: "col", REFUND: "ref", CREDIT: "cre", DISCOUNT: "dis", WRITE_OFF: "wof",
           ADJUST: "adj"}
FLOWS = tuple(FLOW_OF.values())

# Balance families: pre-due by event date / by due date, late by event date.
PRE_BY_EVENT, PRE_BY_DUE, LATE_BY_EVENT = "pe", "px", "lt"
AMOUNT, COUNT = "a", "n"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One dated movement of an invoice's open balance.

    ``amount`` is positive and the kind gives the direction (a payment lowers the
    balance, a refund raises it), except for ``adjust`` whose signed amount is
    whatever reconciles the balance (a void or an uncollectible status).
    """

    on: date
    kind: str
    amount: int

    def __post_init__(self) -> None:
        if self.kind not in ENTRY_KINDS:
            raise ValueError(f"ledger entry kind must be one of {', '.join(ENTRY_KINDS)}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError("ledger entry amount must be an int of minor units")
        if self.kind != ADJUST and self.amount < 0:
            raise ValueError(f"a {self.kind} entry has a positive amount (its kind gives the direction)")

    @property
    def balance_effect(self) -> int:
        return self.amount if self.kind == ADJUST else _SIGN[self.kind] * self.amount

    def to_dict(self) -> dict[str, Any]:
        return {"on": self.on.isoformat(), "kind": self.kind, "amount": self.amount}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        return cls(on=date.fromisoformat(data["on"]), kind=data["kind"], amount=int(data["amount"]))


@dataclass(frozen=True, slots=True)
class ReceivableHistory:
    """What the aggregates need to know about one issued invoice: its header and entries."""

    invoice_id: str
    customer_id: str
    currency: str
    issue_date: date
    due_date: date
    entries: tuple[LedgerEntry, ...] = ()

    def balance_as_of(self, day: date) -> int:
        return sum(e.balance_effect for e in self.entries if e.on <= day)

    def flow(self, kind: str, start: date, end: date) -> int:
        return sum(e.amount for e in self.entries if e.kind == kind and start <= e.on <= end)

    def with_entries(self, new: Iterable[LedgerEntry]) -> ReceivableHistory:
        return replace(self, entries=self.entries + tuple(new))

    def to_dict(self) -> dict[str, Any]:
        return {"invoice_id": self.invoice_id, "customer_id": self.customer_id, "currency": self.currency,
                "issue_date": self.issue_date.isoformat(), "due_date": self.due_date.isoformat(),
                "entries": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReceivableHistory:
        return cls(invoice_id=data["invoice_id"], customer_id=data["customer_id"], currency=data["currency"],
                   issue_date=date.fromisoformat(data["issue_date"]), due_date=date.fromisoformat(data["due_date"]),
                   entries=tuple(LedgerEntry.from_dict(e) for e in data.get("entries", ())))


def receivable_balance(invoice: Invoice | None) -> int:
    """The invoice's contribution to receivables: its amount due while open or paid, else 0.

    Drafts, voided and uncollectible invoices and credit notes (documents whose
    effect shows on the invoice they credit) are not receivables.
    """
    if invoice is None or invoice.kind == CREDIT_NOTE or invoice.status not in (OPEN, PAID):
        return 0
    return invoice.amount_due.amount


def is_receivable(invoice: Invoice | None) -> bool:
    return (invoice is not None and invoice.kind != CREDIT_NOTE and invoice.status != DRAFT
            and invoice.issue_date is not None and invoice.due_date is not None)


def history_header(invoice: Invoice) -> ReceivableHistory:
    """An empty history for an issued invoice (entries are added by each change)."""
    if invoice.issue_date is None or invoice.due_date is None:
        raise ValueError(f"invoice {invoice.id} is not issued: it has no receivable history")
    return ReceivableHistory(invoice_id=invoice.id, customer_id=invoice.customer_id, currency=invoice.currency,
                             issue_date=invoice.issue_date, due_date=invoice.due_date)


def entries_for_change(before: Invoice | None, after: Invoice, *, on: date) -> tuple[LedgerEntry, ...]:
    """The ledger entries of one change of an invoice, from its before/after snapshots.

    ``on`` is the business date of the change: the payment's ``received_on`` for
    an allocation, the credit note's issue date, the refund's date. The issue
    itself is dated ``issue_date``; every other entry is dated no earlier than
    the issue date (cash received before the invoice existed was customer
    credit, and settles the invoice only from its issue). Whatever the field
    diffs do not explain (a void, an uncollectible status) is one ``adjust``
    entry, so the entries always sum to the change of :func:`receivable_balance`.
    """
    if not is_receivable(after):
        return ()
    assert after.issue_date is not None
    day = max(on, after.issue_date)
    entries: list[LedgerEntry] = []
    issued_before = is_receivable(before)
    explained = 0
    if not issued_before:
        entries.append(LedgerEntry(after.issue_date, ISSUE, after.totals.payable.amount))
        explained += after.totals.payable.amount
    base = before if issued_before and before is not None else None

    def diff(attr: str) -> int:
        return getattr(after, attr) - (getattr(base, attr) if base is not None else 0)

    for attr, kind in (("amount_paid", PAYMENT), ("amount_reversed", REFUND), ("amount_credited", CREDIT),
                       ("amount_discounted", DISCOUNT), ("amount_written_off", WRITE_OFF)):
        delta = diff(attr)
        if delta > 0:
            entries.append(LedgerEntry(day, kind, delta))
        elif delta < 0:  # a correction of an earlier entry: shows as an adjustment
            entries.append(LedgerEntry(day, ADJUST, _SIGN[kind] * delta))
        explained += _SIGN[kind] * delta
    rest = (receivable_balance(after) - (receivable_balance(before) if issued_before else 0)) - explained
    if rest:
        entries.append(LedgerEntry(day, ADJUST, rest))
    return tuple(entries)


# -- keys, cells, deltas ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, order=True)
class AggregateKey:
    currency: str
    scope: str
    grain: str
    period: str

    @property
    def pk(self) -> str:
        return f"AGG#{self.currency}#{self.scope}"

    @property
    def sk(self) -> str:
        return f"{self.grain}#{self.period}"


def year_key(currency: str, scope: str, year: int) -> AggregateKey:
    return AggregateKey(currency, scope, YEAR, f"{year:04d}")


def month_key(currency: str, scope: str, d: date) -> AggregateKey:
    return AggregateKey(currency, scope, MONTH, f"{d.year:04d}-{d.month:02d}")


def late_key(currency: str, scope: str, d: date) -> AggregateKey:
    return AggregateKey(currency, scope, LATE, f"{d.year:04d}-{d.month:02d}")


def day_cell(family: str, index: int) -> str:
    return f"{family}:{index}"


def detail_cell(measure: str, day: int, lateness: int) -> str:
    return f"ld{measure}:{day}:{lateness}"


@dataclass(frozen=True, slots=True)
class AggregateDelta:
    """Add ``value`` to counter ``cell`` of item ``key``."""

    key: AggregateKey
    cell: str
    value: int


@dataclass(frozen=True, slots=True)
class AggregateUpdate:
    """All the increments of one item: one ``UpdateItem ... ADD`` in the transaction."""

    key: AggregateKey
    increments: Mapping[str, int]


def _dated(currency: str, scope: str, family: str, d: date, value: int) -> Iterator[AggregateDelta]:
    """A value indexed by a date goes to its month item (by day) and year item (by month)."""
    yield AggregateDelta(month_key(currency, scope, d), day_cell(family, d.day), value)
    yield AggregateDelta(year_key(currency, scope, d.year), day_cell(family, d.month), value)


def _balance_deltas(currency: str, scopes: Sequence[str], on: date, due: date, amount: int,
                    count: int) -> Iterator[AggregateDelta]:
    for scope in scopes:
        for measure, value in ((AMOUNT, amount), (COUNT, count)):
            if not value:
                continue
            if on <= due:
                yield from _dated(currency, scope, PRE_BY_EVENT + measure, on, value)
                yield from _dated(currency, scope, PRE_BY_DUE + measure, due, value)
            else:
                yield from _dated(currency, scope, LATE_BY_EVENT + measure, on, value)
                lateness = (on - due).days
                if lateness <= DETAIL_DAYS:
                    yield AggregateDelta(late_key(currency, scope, on), detail_cell(measure, on.day, lateness), value)


def _indicator_by_date(entries: Iterable[LedgerEntry]) -> dict[date, int]:
    out: dict[date, int] = defaultdict(int)
    for e in entries:
        out[e.on] += e.balance_effect
    return out


def deltas_for_entries(history: ReceivableHistory, new: Sequence[LedgerEntry]) -> list[AggregateDelta]:
    """Deltas of adding ``new`` entries to an invoice whose entries so far are ``history.entries``.

    Amount deltas are the new entries themselves; count deltas compare "balance
    > 0" day by day before and after, so a back-dated payment moves counts on the
    right days.
    """
    if not new:
        return []
    scopes = (PORTFOLIO, history.customer_id)
    before = _indicator_by_date(history.entries)
    added = _indicator_by_date(new)
    amounts: dict[date, int] = defaultdict(int)
    for e in new:
        amounts[e.on] += e.balance_effect
    counts: dict[date, int] = {}
    bal_before = bal_after = 0
    previous = 0
    for day in sorted(set(before) | set(added)):
        bal_before += before.get(day, 0)
        bal_after += before.get(day, 0) + added.get(day, 0)
        diff = int(bal_after > 0) - int(bal_before > 0)
        if diff != previous:
            counts[day] = diff - previous
            previous = diff
    out: list[AggregateDelta] = []
    for day in sorted(set(amounts) | set(counts)):
        out.extend(_balance_deltas(history.currency, scopes, day, history.due_date, amounts.get(day, 0),
                                   counts.get(day, 0)))
    for e in new:
        value = e.amount
        if value:
            for scope in scopes:
                out.extend(_dated(history.currency, scope, FLOW_OF[e.kind], e.on, value))
    return out


def deltas_for_history(history: ReceivableHistory) -> list[AggregateDelta]:
    """Every delta of an invoice from scratch (rebuild and reconciliation)."""
    return deltas_for_entries(replace(history, entries=()), history.entries)


def deltas_for_invoice_change(before: Invoice | None, after: Invoice, *, on: date,
                              history: ReceivableHistory | None = None,
                              ) -> tuple[list[AggregateDelta], ReceivableHistory | None]:
    """Deltas of one invoice change, and the invoice's history to store with it.

    ``history`` is the invoice's stored history (``None`` for an invoice being
    issued). Returns ``([], history)`` for drafts and credit notes. Raises
    ``ValueError`` when an issued invoice changes without its history: its counts
    would be wrong (backfill histories with the ledger first, see :func:`rebuild`).
    """
    new = entries_for_change(before, after, on=on)
    if not new:
        return [], history
    if history is None and is_receivable(before):
        raise ValueError(f"invoice {after.id} is already issued: pass its stored receivable history")
    base = history if history is not None else history_header(after)
    return deltas_for_entries(base, new), base.with_entries(new)


def merge_deltas(deltas: Iterable[AggregateDelta]) -> list[AggregateUpdate]:
    """Fold deltas into one update per item (zero increments dropped), sorted by key."""
    per_item: dict[AggregateKey, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for d in deltas:
        per_item[d.key][d.cell] += d.value
    out = []
    for key in sorted(per_item):
        increments = {cell: v for cell, v in sorted(per_item[key].items()) if v}
        if increments:
            out.append(AggregateUpdate(key, increments))
    return out


def updates_for_invoice_change(before: Invoice | None, after: Invoice, *, on: date,
                               history: ReceivableHistory | None = None,
                               ) -> tuple[list[AggregateUpdate], ReceivableHistory | None]:
    """:func:`deltas_for_invoice_change` then :func:`merge_deltas`: what a service adds to its transaction."""
    deltas, new_history = deltas_for_invoice_change(before, after, on=on, history=history)
    return merge_deltas(deltas), new_history


Items = Mapping[AggregateKey, Mapping[str, int]]


def apply_updates(items: MutableMapping[AggregateKey, dict[str, int]], updates: Iterable[AggregateUpdate]) -> None:
    """Apply updates to an in-memory table (what ``ADD`` does in DynamoDB); for fakes and rebuilds."""
    for u in updates:
        cells = items.setdefault(u.key, {})
        for cell, v in u.increments.items():
            cells[cell] = cells.get(cell, 0) + v


def rebuild(histories: Iterable[ReceivableHistory]) -> dict[AggregateKey, dict[str, int]]:
    """Aggregates recomputed from scratch from every invoice's history (the daily reconciliation)."""
    items: dict[AggregateKey, dict[str, int]] = {}
    for h in histories:
        apply_updates(items, merge_deltas(deltas_for_history(h)))
    return items


@dataclass(frozen=True, slots=True)
class Drift:
    key: AggregateKey
    cell: str
    expected: int
    actual: int


def drift(expected: Items, actual: Items) -> list[Drift]:
    """Cells whose stored value differs from the rebuilt one (zero and absent are equal)."""
    out = []
    for key in sorted(set(expected) | set(actual)):
        e, a = expected.get(key, {}), actual.get(key, {})
        for cell in sorted(set(e) | set(a)):
            if e.get(cell, 0) != a.get(cell, 0):
                out.append(Drift(key, cell, e.get(cell, 0), a.get(cell, 0)))
    return out


# -- read side ---------------------------------------------------------------------------------------

def _months_between(start: date, end: date) -> list[date]:
    out = []
    d = start.replace(day=1)
    while d <= end:
        out.append(d)
        d = (d + timedelta(days=32)).replace(day=1)
    return out


def aging_read_keys(currency: str, scope: str, as_of: date, first_year: int,
                    detail_days: int = DETAIL_DAYS) -> list[AggregateKey]:
    """Every item :func:`aging_from_aggregates` reads: years + at most 8."""
    keys = [year_key(currency, scope, y) for y in range(first_year, as_of.year + 1)]
    keys += [month_key(currency, scope, m) for m in _months_between(as_of - timedelta(days=detail_days), as_of)]
    keys += [late_key(currency, scope, m)
             for m in _months_between(as_of - timedelta(days=detail_days - 1), as_of)]
    return keys


def aging_read_keys_many(currency: str, scope: str, dates: Iterable[date], first_year: int) -> list[AggregateKey]:
    """The union of :func:`aging_read_keys` for several dates (e.g. the last 12 month ends)."""
    keys: set[AggregateKey] = set()
    for d in dates:
        keys.update(aging_read_keys(currency, scope, d, first_year))
    return sorted(keys)


def period_read_keys(currency: str, scope: str, start: date, end: date, first_year: int) -> list[AggregateKey]:
    """Items for :meth:`AggregateView.period_figures` over ``[start, end]``: years + at most 3."""
    keys = {year_key(currency, scope, y) for y in range(first_year, end.year + 1)}
    for d in (start - timedelta(days=1), end):
        keys.add(month_key(currency, scope, d))
    return sorted(keys)


def monthly_read_keys(currency: str, scope: str, last_month: date, months: int,
                      first_year: int) -> list[AggregateKey]:
    """Items for :meth:`AggregateView.monthly_figures`: years + one month item per month."""
    keys = {year_key(currency, scope, y) for y in range(first_year, last_month.year + 1)}
    first = _add_months(last_month.replace(day=1), -(months - 1))
    keys.update(month_key(currency, scope, m) for m in _months_between(first, last_month))
    return sorted(keys)


def _add_months(d: date, n: int) -> date:
    i = d.year * 12 + d.month - 1 + n
    return date(i // 12, i % 12 + 1, 1)


def _last_day(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


class UnplannedRead(LookupError):
    """A computation needed an item that its read plan did not list (a bug in the plan)."""


@dataclass
class AggregateView:
    """Computations over the items of one (currency, scope), restricted to a read plan.

    ``items`` holds what was fetched (absent items are zeros); ``planned`` the
    keys that were asked for: touching any other key raises
    :class:`UnplannedRead`, so a test that passes proves the plan sufficient.
    """

    currency: str
    scope: str
    first_year: int
    items: Items
    planned: frozenset[AggregateKey] = field(default_factory=frozenset)
    # late-detail items parsed once per view: (event day ordinal, lateness, value) per measure
    _late_cells: dict[tuple[date, str], list[tuple[int, int, int]]] = field(
        default_factory=dict, compare=False, repr=False)

    def _item(self, key: AggregateKey) -> Mapping[str, int]:
        if self.planned and key not in self.planned:
            raise UnplannedRead(f"{key} is not in the read plan")
        return self.items.get(key, {})

    def _year(self, year: int) -> Mapping[str, int]:
        return self._item(year_key(self.currency, self.scope, year))

    def _month(self, d: date) -> Mapping[str, int]:
        return self._item(month_key(self.currency, self.scope, d))

    def on_day(self, family: str, d: date) -> int:
        return self._month(d).get(day_cell(family, d.day), 0)

    def cumulative(self, family: str, upto: date) -> int:
        """Sum of ``family`` over every date up to ``upto`` included."""
        total = 0
        for y in range(self.first_year, upto.year):
            item = self._year(y)
            total += sum(item.get(day_cell(family, m), 0) for m in range(1, 13))
        if upto.year < self.first_year:
            return 0
        item = self._year(upto.year)
        if upto.day == _last_day(upto):  # month end: the year item alone answers
            return total + sum(item.get(day_cell(family, m), 0) for m in range(1, upto.month + 1))
        total += sum(item.get(day_cell(family, m), 0) for m in range(1, upto.month))
        month = self._month(upto)
        return total + sum(month.get(day_cell(family, d), 0) for d in range(1, upto.day + 1))

    def between(self, family: str, start: date, end: date) -> int:
        return self.cumulative(family, end) - self.cumulative(family, start - timedelta(days=1))

    def in_month(self, family: str, month: date) -> int:
        return self._year(month.year).get(day_cell(family, month.month), 0)

    # -- balances -------------------------------------------------------------------------------
    def receivables(self, as_of: date, measure: str = AMOUNT) -> int:
        """Total open at the end of ``as_of``."""
        return self.cumulative(PRE_BY_EVENT + measure, as_of) + self.cumulative(LATE_BY_EVENT + measure, as_of)

    def not_yet_due(self, as_of: date, measure: str = AMOUNT) -> int:
        # cum_px(D-1) = cum_px(D) - px(D): the month-end fast path then serves month ends too
        return (self.cumulative(PRE_BY_EVENT + measure, as_of) - self.cumulative(PRE_BY_DUE + measure, as_of)
                + self.on_day(PRE_BY_DUE + measure, as_of))

    def aging(self, as_of: date, buckets: Sequence[BucketSpec] = AGING_BUCKETS) -> Aging:
        check_buckets(buckets)
        if buckets[-2].max_days is None or buckets[-2].max_days > DETAIL_DAYS:
            raise ValueError(f"aggregates keep day detail up to {DETAIL_DAYS} days past due only")
        result: dict[str, list[int]] = {}
        for measure in (AMOUNT, COUNT):
            total = self.receivables(as_of, measure)
            current = self.not_yet_due(as_of, measure)
            values = [current]
            detail = self._late_detail(as_of, measure)
            for spec in buckets[1:-1]:
                assert spec.min_days is not None and spec.max_days is not None
                pre = sum(self.on_day(PRE_BY_DUE + measure, as_of - timedelta(days=k))
                          for k in range(spec.min_days, spec.max_days + 1))
                late = sum(v for past_due, v in detail.items() if spec.min_days <= past_due <= spec.max_days)
                values.append(pre + late)
            values.append(total - sum(values))
            result[measure] = values
        return Aging(currency=self.currency, as_of=as_of, scope=self.scope,
                     buckets=tuple(AgingBucket(spec.name, a, n)
                                   for spec, a, n in zip(buckets, result[AMOUNT], result[COUNT])))

    def _late_detail(self, as_of: date, measure: str) -> dict[int, int]:
        """Late deltas dated in ``[as_of - 89, as_of]`` by days past due *as of* ``as_of``."""
        out: dict[int, int] = defaultdict(int)
        first = as_of - timedelta(days=DETAIL_DAYS - 1)
        lo, hi = first.toordinal(), as_of.toordinal()
        for m in _months_between(first, as_of):
            for e, lateness, v in self._late_item_cells(m, measure):
                if lo <= e <= hi:
                    past_due = hi - e + lateness
                    if past_due <= DETAIL_DAYS:
                        out[past_due] += v
        return out

    def _late_item_cells(self, month: date, measure: str) -> list[tuple[int, int, int]]:
        cached = self._late_cells.get((month, measure))
        if cached is None:
            prefix = f"ld{measure}:"
            start = month.replace(day=1).toordinal() - 1
            cached = []
            for cell, v in self._item(late_key(self.currency, self.scope, month)).items():
                if v and cell.startswith(prefix):
                    day, lateness = cell[len(prefix):].split(":")
                    cached.append((start + int(day), int(lateness), v))
            self._late_cells[(month, measure)] = cached
        return cached

    # -- flows and period figures -----------------------------------------------------------------
    def period_figures(self, start: date, end: date) -> PeriodFigures:
        f = {flow: self.between(flow, start, end) for flow in FLOWS}
        return PeriodFigures(currency=self.currency, start=start, end=end,
                             beginning_receivables=self.receivables(start - timedelta(days=1)),
                             ending_receivables=self.receivables(end),
                             ending_current_receivables=self.not_yet_due(end),
                             invoiced=f["inv"], credited=f["cre"], collected=f["col"], refunded=f["ref"],
                             discounted=f["dis"], written_off=f["wof"], adjusted=f["adj"])

    def monthly_figures(self, last_month: date, months: int) -> list[MonthFigures]:
        """Month-end balances and net credit sales for ``months`` months ending with ``last_month``."""
        out = []
        for i in range(months - 1, -1, -1):
            m = _add_months(last_month.replace(day=1), -i)
            end = m.replace(day=_last_day(m))
            out.append(MonthFigures(month=m, receivables_end=self.receivables(end),
                                    current_end=self.not_yet_due(end),
                                    credit_sales=self.in_month("inv", m) - self.in_month("cre", m)))
        return out


def aging_from_aggregates(items: Items, *, currency: str, as_of: date, first_year: int, scope: str = PORTFOLIO,
                          buckets: Sequence[BucketSpec] = AGING_BUCKETS) -> Aging:
    """Aging of ``scope`` in ``currency`` as of ``as_of``, reading only :func:`aging_read_keys`."""
    planned = frozenset(aging_read_keys(currency, scope, as_of, first_year))
    view = AggregateView(currency, scope, first_year, {k: v for k, v in items.items() if k in planned}, planned)
    return view.aging(as_of, buckets)


# -- brute force (tests, reconciliation, the benchmark's comparison) -------------------------------------

def _select(histories: Iterable[ReceivableHistory], currency: str,
            customer_id: str | None) -> Iterator[ReceivableHistory]:
    for h in histories:
        if h.currency == currency and (customer_id is None or h.customer_id == customer_id):
            yield h


def aging_from_invoices(histories: Iterable[ReceivableHistory], *, currency: str, as_of: date,
                        customer_id: str | None = None,
                        buckets: Sequence[BucketSpec] = AGING_BUCKETS) -> Aging:
    """Aging recomputed from every invoice's dated history: O(invoices), the reference."""
    items = ((h.due_date, h.balance_as_of(as_of)) for h in _select(histories, currency, customer_id))
    return aging_of(items, currency=currency, as_of=as_of, scope=customer_id or PORTFOLIO, buckets=buckets)


def period_figures_from_invoices(histories: Iterable[ReceivableHistory], *, currency: str, start: date, end: date,
                                 customer_id: str | None = None) -> PeriodFigures:
    hs = list(_select(histories, currency, customer_id))
    before = start - timedelta(days=1)
    flows = {kind: sum(h.flow(kind, start, end) for h in hs) for kind in ENTRY_KINDS}
    return PeriodFigures(
        currency=currency, start=start, end=end,
        beginning_receivables=sum(h.balance_as_of(before) for h in hs),
        ending_receivables=sum(h.balance_as_of(end) for h in hs),
        ending_current_receivables=sum(h.balance_as_of(end) for h in hs if h.due_date >= end),
        invoiced=flows[ISSUE], credited=flows[CREDIT], collected=flows[PAYMENT], refunded=flows[REFUND],
        discounted=flows[DISCOUNT], written_off=flows[WRITE_OFF], adjusted=flows[ADJUST])
