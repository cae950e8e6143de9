"""Aggregates maintained on write == brute force over every invoice's history.

Given a ledger built with the real invoice transitions (issue, partial payments,
credit notes, refunds that reopen, back-dated events), when each change's deltas
are merged and applied like DynamoDB ``ADD`` would, then aging as of any date,
per currency and per customer, with counts, and the period figures behind DSO
and CEI equal a recomputation from all invoices; and reading them takes
years + 8 items.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.aggregates import (
    ADJUST, CREDIT, DETAIL_DAYS, ISSUE, LATE, MONTH, PAYMENT, PORTFOLIO, REFUND, YEAR, AggregateDelta,
    AggregateKey, AggregateView, LedgerEntry, ReceivableHistory, UnplannedRead, aging_from_aggregates,
    aging_from_invoices, aging_read_keys, aging_read_keys_many, deltas_for_invoice_change, apply_updates, deltas_for_history, drift, entries_for_change,
    merge_deltas, month_key, monthly_read_keys, period_figures_from_invoices, period_read_keys, rebuild,
    updates_for_invoice_change, year_key)
from chalicelib.domain.errors import DomainError
from chalicelib.domain.invoice import VOID, Invoice, new_draft
from chalicelib.domain.kpis import D1_30, D31_60, D61_90, NOT_DUE, OVER_90
from chalicelib.domain.money import Money
from chalicelib.domain.terms import EOM_DAYS_THEN_END, PaymentTerms

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


# -- builders ------------------------------------------------------------------------------------

def issued(invoice_id: str, customer: str, currency: str, issue_date: date, due_date: date,
           amount: int) -> Invoice:
    """An issued invoice of ``amount`` minor units (one zero-rated line)."""
    draft = new_draft(invoice_id, {
        "customer_id": customer, "currency": currency, "due_date": due_date.isoformat(),
        "lines": [{"description": "Service", "quantity": "1", "unit_price": str(Money(amount, currency)),
                   "vat_rate": "0", "vat_category": "Z"}]}, customer_currency=currency, now=NOW)
    return draft.issue(number=f"F-{invoice_id}", series="F", issue_date=issue_date, terms=PaymentTerms(),
                       eom_mode=EOM_DAYS_THEN_END, jurisdiction="XX", seller={}, buyer={}, now=NOW)


@dataclass
class Ledger:
    """Applies invoice changes like a service would: snapshot, change, deltas, merged updates."""

    invoices: dict[str, Invoice] = field(default_factory=dict)
    histories: dict[str, ReceivableHistory] = field(default_factory=dict)
    items: dict[AggregateKey, dict[str, int]] = field(default_factory=dict)
    transactions: list[int] = field(default_factory=list)

    def _commit(self, before: Invoice | None, after: Invoice, on: date) -> None:
        updates, history = updates_for_invoice_change(before, after, on=on,
                                                      history=self.histories.get(after.id))
        keys = [u.key for u in updates]
        assert len(keys) == len(set(keys)), "one action per item and transaction"
        apply_updates(self.items, updates)
        self.transactions.append(len(updates))
        self.invoices[after.id] = after
        if history is not None:
            self.histories[after.id] = history

    def issue(self, invoice_id: str, customer: str, currency: str, issue_date: date, due_date: date,
              amount: int) -> None:
        self._commit(None, issued(invoice_id, customer, currency, issue_date, due_date, amount), issue_date)

    def pay(self, invoice_id: str, amount: int, on: date) -> None:
        inv = self.invoices[invoice_id]
        self._commit(inv, inv.apply_payment(Money(amount, inv.currency), NOW), on)

    def credit(self, invoice_id: str, amount: int, on: date) -> None:
        inv = self.invoices[invoice_id]
        self._commit(inv, inv.apply_credit(Money(amount, inv.currency), NOW), on)

    def refund(self, invoice_id: str, amount: int, on: date) -> None:
        inv = self.invoices[invoice_id]
        self._commit(inv, inv.reverse_payment(Money(amount, inv.currency), NOW), on)

    def aging(self, currency: str, as_of: date, scope: str = PORTFOLIO, first_year: int = 2024):
        return aging_from_aggregates(self.items, currency=currency, as_of=as_of, first_year=first_year,
                                     scope=scope)

    def brute(self, currency: str, as_of: date, customer: str | None = None):
        return aging_from_invoices(self.histories.values(), currency=currency, as_of=as_of, customer_id=customer)


def amounts(aging) -> dict[str, tuple[int, int]]:
    return {b.name: (b.amount, b.count) for b in aging.buckets if b.amount or b.count}


# -- hand-checked scenarios ----------------------------------------------------------------------

def test_partial_payment_then_aging_moves_through_buckets() -> None:
    # Given 1,000.00 EUR issued on 1 Jan 2025, due 31 Jan; 400.00 paid on 10 Feb
    ledger = Ledger()
    ledger.issue("i1", "c1", "EUR", date(2025, 1, 1), date(2025, 1, 31), 100_000)
    ledger.pay("i1", 40_000, date(2025, 2, 10))
    # Then on 15 Jan it is not yet due; on 5 Feb (5 days late) all 1,000 is 1-30
    assert amounts(ledger.aging("EUR", date(2025, 1, 15))) == {NOT_DUE: (100_000, 1)}
    assert amounts(ledger.aging("EUR", date(2025, 2, 5))) == {D1_30: (100_000, 1)}
    # on 15 Feb (15 days late) 600 is left; on 5 Mar (33 days) it is 31-60; on 15 May (104 days) over 90
    assert amounts(ledger.aging("EUR", date(2025, 2, 15))) == {D1_30: (60_000, 1)}
    assert amounts(ledger.aging("EUR", date(2025, 3, 5))) == {D31_60: (60_000, 1)}
    assert amounts(ledger.aging("EUR", date(2025, 5, 15))) == {OVER_90: (60_000, 1)}
    # and before its issue date it did not exist
    assert amounts(ledger.aging("EUR", date(2024, 12, 31))) == {}
    # the customer's own aging says the same
    assert ledger.aging("EUR", date(2025, 3, 5), scope="c1") == ledger.brute("EUR", date(2025, 3, 5), "c1")


def test_payments_exactly_on_bucket_edges() -> None:
    # Given 1,000.00 due 1 Jan 2025 (issued 1 Dec), 400.00 paid on 1 Apr (90 days late)
    # and 100.00 on 31 Jan (30 days late)
    ledger = Ledger()
    ledger.issue("i1", "c1", "EUR", date(2024, 12, 1), date(2025, 1, 1), 100_000)
    ledger.pay("i1", 10_000, date(2025, 1, 31))
    ledger.pay("i1", 40_000, date(2025, 4, 1))
    # Then on 31 Jan (30 days past due) 900 is 1-30; on 1 Feb (31 days) 31-60
    assert amounts(ledger.aging("EUR", date(2025, 1, 31))) == {D1_30: (90_000, 1)}
    assert amounts(ledger.aging("EUR", date(2025, 2, 1))) == {D31_60: (90_000, 1)}
    # on 1 Apr (90 days) 1,000 - 100 - 400 = 500 is 61-90; on 2 Apr (91 days) over 90
    assert amounts(ledger.aging("EUR", date(2025, 4, 1))) == {D61_90: (50_000, 1)}
    assert amounts(ledger.aging("EUR", date(2025, 4, 2))) == {OVER_90: (50_000, 1)}
    # and on the due date itself it is not yet due
    assert amounts(ledger.aging("EUR", date(2025, 1, 1))) == {NOT_DUE: (100_000, 1)}


def test_refund_reopens_a_paid_invoice_and_count_follows() -> None:
    # Given 500.00 issued 1 Mar, due 31 Mar, paid in full 20 Mar, 200.00 refunded 10 Apr
    ledger = Ledger()
    ledger.issue("i1", "c1", "EUR", date(2025, 3, 1), date(2025, 3, 31), 50_000)
    ledger.pay("i1", 50_000, date(2025, 3, 20))
    ledger.refund("i1", 20_000, date(2025, 4, 10))
    # Then on 25 Mar nothing is open (and no invoice is counted), on 12 Apr 200 is 12 days late
    assert amounts(ledger.aging("EUR", date(2025, 3, 25))) == {}
    assert amounts(ledger.aging("EUR", date(2025, 4, 12))) == {D1_30: (20_000, 1)}


def test_backdated_payment_counts_from_its_own_date() -> None:
    # Given 300.00 issued 1 Jun, due 1 Jul; a refund-free ledger where a payment received on
    # 5 Jul is recorded after a credit note dated 20 Jul
    ledger = Ledger()
    ledger.issue("i1", "c1", "EUR", date(2025, 6, 1), date(2025, 7, 1), 30_000)
    ledger.credit("i1", 10_000, date(2025, 7, 20))
    ledger.pay("i1", 20_000, date(2025, 7, 5))
    # Then as of 10 Jul: 300 - 200 = 100 open (count 1); as of 25 Jul: nothing, count 0
    assert amounts(ledger.aging("EUR", date(2025, 7, 10))) == {D1_30: (10_000, 1)}
    assert amounts(ledger.aging("EUR", date(2025, 7, 25))) == {}
    # And the entries carry the business dates
    kinds = [(e.kind, e.on, e.amount) for e in ledger.histories["i1"].entries]
    assert kinds == [(ISSUE, date(2025, 6, 1), 30_000), (CREDIT, date(2025, 7, 20), 10_000),
                     (PAYMENT, date(2025, 7, 5), 20_000)]


def test_full_credit_voids_and_settlement_before_issue_is_dated_at_issue() -> None:
    ledger = Ledger()
    ledger.issue("i1", "c1", "EUR", date(2025, 6, 1), date(2025, 7, 1), 30_000)
    # a payment received before the invoice existed settles it from its issue date only
    ledger.pay("i1", 10_000, date(2025, 5, 20))
    assert ledger.histories["i1"].entries[-1] == LedgerEntry(date(2025, 6, 1), PAYMENT, 10_000)
    ledger.credit("i1", 20_000, date(2025, 6, 10))
    assert ledger.invoices["i1"].status != VOID  # it was partly paid: paid, not void
    ledger.issue("i2", "c1", "EUR", date(2025, 6, 1), date(2025, 7, 1), 5_000)
    ledger.credit("i2", 5_000, date(2025, 6, 2))
    assert ledger.invoices["i2"].status == VOID
    # 1 Jun: i1 300 - 100 paid = 200, i2 50: 250 open on 2 invoices; 3 Jun: i2 voided on the 2nd;
    # 11 Jun: i1's 200 credited on the 10th
    assert amounts(ledger.aging("EUR", date(2025, 6, 1))) == {NOT_DUE: (25_000, 2)}
    assert amounts(ledger.aging("EUR", date(2025, 6, 3))) == {NOT_DUE: (20_000, 1)}
    assert amounts(ledger.aging("EUR", date(2025, 6, 11))) == {}


def test_entries_explain_the_whole_balance_change_with_an_adjustment_for_voids() -> None:
    inv = issued("i1", "c1", "EUR", date(2025, 1, 1), date(2025, 1, 31), 10_000)
    voided = Invoice(**{**{f: getattr(inv, f) for f in inv.__slots__}, "status": VOID})  # type: ignore[attr-defined]
    entries = entries_for_change(inv, voided, on=date(2025, 1, 5))
    assert entries == (LedgerEntry(date(2025, 1, 5), ADJUST, -10_000),)


def test_merge_deltas_gives_one_update_per_item_and_drops_zeros() -> None:
    k1 = AggregateKey("EUR", "*", MONTH, "2025-01")
    k2 = AggregateKey("EUR", "*", YEAR, "2025")
    merged = merge_deltas([AggregateDelta(k1, "pea:3", 5), AggregateDelta(k2, "pea:1", 5),
                           AggregateDelta(k1, "pea:3", -5), AggregateDelta(k1, "col:3", 7),
                           AggregateDelta(k1, "col:3", 1)])
    assert [(u.key, dict(u.increments)) for u in merged] == [(k1, {"col:3": 8}), (k2, {"pea:1": 5})]


def test_a_payment_on_a_late_invoice_touches_few_items() -> None:
    ledger = Ledger()
    ledger.issue("i1", "c1", "EUR", date(2025, 1, 1), date(2025, 1, 31), 10_000)
    ledger.pay("i1", 4_000, date(2025, 2, 10))
    # issue: month+year of the event (=due month) x 2 scopes = 4 items
    # late payment: month, year and late detail of the event x 2 scopes = 6 items
    assert ledger.transactions == [4, 6]


def test_read_plan_is_years_plus_eight_and_suffices() -> None:
    keys = aging_read_keys("EUR", PORTFOLIO, date(2026, 3, 15), first_year=2016)
    assert len(keys) == 11 + 4 + 4  # 2016..2026, Dec..Mar month items, Dec..Mar late items
    view = AggregateView("EUR", PORTFOLIO, 2016, {}, frozenset(keys))
    assert view.aging(date(2026, 3, 15)).total == 0
    try:
        view.aging(date(2026, 7, 15))
    except UnplannedRead:
        pass
    else:  # pragma: no cover
        raise AssertionError("a read outside the plan must be refused")


# -- random ledgers: aggregates == brute force ----------------------------------------------------

BASE = date(2024, 11, 1)
CUSTOMERS = ("c1", "c2", "c3")
CURRENCIES = ("EUR", "USD")

op_strategy = st.tuples(st.sampled_from(("pay", "pay", "pay", "credit", "refund")),
                        st.integers(-20, 300), st.integers(1, 100))
invoice_strategy = st.tuples(st.sampled_from(CUSTOMERS), st.sampled_from(CURRENCIES), st.integers(0, 500),
                             st.integers(0, 120), st.integers(1, 500_000), st.lists(op_strategy, max_size=4))


def build(specs, rng_ops_order: random.Random | None = None) -> Ledger:
    """Issue every invoice, then apply the operations in a shuffled order (back-dated events)."""
    ledger = Ledger()
    ops = []
    for i, (customer, currency, issue_off, terms, amount, inv_ops) in enumerate(specs):
        issue_date = BASE + timedelta(days=issue_off)
        ledger.issue(f"i{i}", customer, currency, issue_date, issue_date + timedelta(days=terms), amount)
        ops += [(f"i{i}", kind, issue_date + timedelta(days=off), pct) for kind, off, pct in inv_ops]
    if rng_ops_order is not None:
        rng_ops_order.shuffle(ops)
    for invoice_id, kind, on, pct in ops:
        inv = ledger.invoices[invoice_id]
        try:
            if kind == "pay" and inv.amount_due.is_positive:
                ledger.pay(invoice_id, max(1, inv.amount_due.amount * pct // 100), on)
            elif kind == "credit" and inv.amount_due.is_positive:
                ledger.credit(invoice_id, max(1, inv.amount_due.amount * pct // 100), on)
            elif kind == "refund" and inv.amount_paid - inv.amount_reversed > 0:
                ledger.refund(invoice_id, max(1, (inv.amount_paid - inv.amount_reversed) * pct // 100), on)
        except DomainError:
            pass  # e.g. a voided invoice: the ledger refuses, nothing changes
    return ledger


def edge_dates(ledger: Ledger, rng: random.Random, n: int = 8) -> list[int]:
    """As-of dates on the bucket edges of some invoices and on their events' dates."""
    out = []
    for h in ledger.histories.values():
        out += [(h.due_date + timedelta(days=k) - BASE).days for k in (0, 1, 30, 31, 60, 61, 90, 91)]
        out += [(e.on - BASE).days for e in h.entries]
        out += [(e.on + timedelta(days=k) - BASE).days for e in h.entries for k in (29, 30, 89, 90)]
    return rng.sample(out, min(n, len(out)))


def check(ledger: Ledger, as_of_offsets: list[int]) -> None:
    for off in as_of_offsets:
        as_of = BASE + timedelta(days=off)
        for currency in CURRENCIES:
            assert ledger.aging(currency, as_of) == ledger.brute(currency, as_of)
            for customer in CUSTOMERS:
                assert ledger.aging(currency, as_of, customer) == ledger.brute(currency, as_of, customer)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(invoice_strategy, min_size=1, max_size=25), seed=st.integers(0, 10**6),
       as_of=st.lists(st.integers(-10, 1000), min_size=1, max_size=6))
def test_random_ledgers_aging_equals_brute_force(specs, seed, as_of) -> None:
    rng = random.Random(seed)
    ledger = build(specs, rng)
    check(ledger, as_of + edge_dates(ledger, rng))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(invoice_strategy, min_size=1, max_size=20), seed=st.integers(0, 10**6),
       start=st.integers(-10, 800), length=st.integers(0, 200), last_month=st.integers(0, 30))
def test_random_ledgers_period_and_monthly_figures_equal_brute_force(specs, seed, start, length,
                                                                     last_month) -> None:
    ledger = build(specs, random.Random(seed))
    s = BASE + timedelta(days=start)
    e = s + timedelta(days=length)
    for currency in CURRENCIES:
        for scope in (PORTFOLIO, "c2"):
            plan = frozenset(period_read_keys(currency, scope, s, e, 2024))
            view = AggregateView(currency, scope, 2024, ledger.items, plan)
            expected = period_figures_from_invoices(ledger.histories.values(), currency=currency, start=s, end=e,
                                                    customer_id=None if scope == PORTFOLIO else scope)
            got = view.period_figures(s, e)
            assert got == expected
            assert got.reconciles()
            # month ends over 6 months, from year items and one month item per month
            last = date(2024, 11, 1) + timedelta(days=31 * last_month)
            plan = frozenset(monthly_read_keys(currency, scope, last, 6, 2024))
            view = AggregateView(currency, scope, 2024, ledger.items, plan)
            for m in view.monthly_figures(last, 6):
                end = (m.month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
                fig = period_figures_from_invoices(ledger.histories.values(), currency=currency, start=m.month,
                                                   end=end, customer_id=None if scope == PORTFOLIO else scope)
                assert (m.receivables_end, m.current_end, m.credit_sales) == (
                    fig.ending_receivables, fig.ending_current_receivables, fig.credit_sales)


@settings(max_examples=40, deadline=None)
@given(specs=st.lists(invoice_strategy, min_size=1, max_size=15), seed=st.integers(0, 10**6))
def test_incremental_aggregates_equal_a_rebuild_from_histories(specs, seed) -> None:
    ledger = build(specs, random.Random(seed))
    assert drift(rebuild(ledger.histories.values()), ledger.items) == []


def test_drift_is_reported_cell_by_cell() -> None:
    ledger = build([("c1", "EUR", 0, 30, 10_000, [("pay", 40, 50)])])
    tampered = {k: dict(v) for k, v in ledger.items.items()}
    key = year_key("EUR", PORTFOLIO, 2024)
    tampered[key]["inv:11"] += 1
    (d,) = drift(rebuild(ledger.histories.values()), tampered)
    assert (d.key, d.cell, d.actual - d.expected) == (key, "inv:11", 1)


def test_a_few_thousand_invoices_aggregates_equal_brute_force_with_bounded_items() -> None:
    # Given 3,000 invoices of 40 customers over two years, with payments (on time or late),
    # partial payments, credit notes and refunds, applied in shuffled order
    rng = random.Random(20260101)
    specs = []
    for _ in range(3000):
        ops = [("pay", rng.randint(0, 150), rng.choice((100, 100, 60)))]
        if rng.random() < 0.2:
            ops.append(("credit", rng.randint(0, 60), rng.randint(5, 100)))
        if rng.random() < 0.1:
            ops.append(("refund", rng.randint(30, 200), rng.randint(10, 100)))
        if rng.random() < 0.5:
            ops.append(("pay", rng.randint(60, 300), 100))
        specs.append((f"c{rng.randint(1, 40)}", "EUR", rng.randint(0, 700), rng.choice((0, 30, 45, 60)),
                      rng.randint(1_000, 2_000_000), ops))
    ledger = build(specs, rng)
    customers = sorted({s[0] for s in specs})
    # Then aging as of 25 dates equals the brute force, for the portfolio and 5 customers
    for off in sorted(rng.sample(range(-5, 1000), 25)):
        as_of = BASE + timedelta(days=off)
        assert ledger.aging("EUR", as_of) == ledger.brute("EUR", as_of)
        for customer in customers[:5]:
            assert ledger.aging("EUR", as_of, customer) == ledger.brute("EUR", as_of, customer)
    # And the items stay small: at most 403 cells per month item, 156 per year, 2 x 31 x 90 per late detail
    for key, cells in ledger.items.items():
        limit = {MONTH: 403, YEAR: 156, LATE: 2 * 31 * DETAIL_DAYS}[key.grain]
        assert len(cells) <= limit, (key, len(cells))
    # And every transaction stays far below DynamoDB's 100 actions
    assert max(ledger.transactions) <= 12
    assert len(aging_read_keys("EUR", PORTFOLIO, BASE + timedelta(days=900), 2024)) <= 4 + 8  # 2024..2027


def test_history_round_trips_through_dicts() -> None:
    h = ReceivableHistory("i1", "c1", "EUR", date(2025, 1, 1), date(2025, 1, 31),
                          (LedgerEntry(date(2025, 1, 1), ISSUE, 100), LedgerEntry(date(2025, 2, 1), REFUND, 5),
                           LedgerEntry(date(2025, 2, 2), ADJUST, -3)))
    assert ReceivableHistory.from_dict(h.to_dict()) == h
    assert merge_deltas(deltas_for_history(h))  # a history rebuilds to something
    assert month_key("EUR", "*", date(2025, 2, 3)).sk == "m#2025-02"
    assert year_key("EUR", "c1", 2025).pk == "AGG#EUR#c1"


def test_one_payment_over_thirty_invoices_stays_within_the_budget() -> None:
    # Given 30 invoices of one customer due over three months (Jan, Feb, Mar 2025)
    invoices = [issued(f"i{n}", "c1", "EUR", date(2024, 12, 1), date(2025, 1 + n % 3, 10 + n % 15), 10_000)
                for n in range(30)]
    # When one payment received on 15 Feb settles all of them (January's late, the others early)
    histories = {inv.id: updates_for_invoice_change(None, inv, on=inv.issue_date)[1] for inv in invoices}
    all_deltas = []
    for inv in invoices:
        paid = inv.apply_payment(inv.amount_due, NOW)
        d, _ = deltas_for_invoice_change(inv, paid, on=date(2025, 2, 15), history=histories[inv.id])
        all_deltas += d
    updates = merge_deltas(all_deltas)
    # Then the transaction carries one update per item, at most 6 + 4 x 3 due months = 18
    assert len(updates) == len({u.key for u in updates}) <= 6 + 4 * 3


def test_an_issued_invoice_without_its_history_is_refused() -> None:
    inv = issued("i1", "c1", "EUR", date(2025, 1, 1), date(2025, 1, 31), 10_000)
    try:
        updates_for_invoice_change(inv, inv.apply_payment(Money(1_000, "EUR"), NOW), on=date(2025, 1, 5))
    except ValueError as exc:
        assert "history" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("counts would silently drift")


def test_read_plan_for_twelve_month_ends() -> None:
    ends = [(date(2025, m, 1) + timedelta(days=31)).replace(day=1) - timedelta(days=1) for m in range(1, 13)]
    keys = aging_read_keys_many("EUR", "c1", ends, first_year=2024)
    # 2 year items + month and late items from Nov 2024 (31 Jan - 90 days = 2 Nov) to Dec 2025 (14 each)
    assert len(keys) == 2 + 14 + 14
