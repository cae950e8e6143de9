"""KPIs on a small ledger whose figures are computed by hand in the comments.

The ledger (EUR, amounts in euros; the test uses cents), first quarter 2025:

    inv  customer  issued      due         total   what happens
    I1   A         2024-12-01  2024-12-31  1,000   paid 2025-01-20 by transfer (20 days late, after reminder_2)
    I2   A         2025-01-10  2025-02-09  2,000   paid 2025-02-09 by SEPA debit (on time, no reminder)
    I3   A         2025-02-15  2025-03-17  3,000   1,000 paid 2025-03-30, 2,000 still open
    I4   B         2024-11-15  2024-12-15    500   never paid
    I5   B         2025-03-10  2025-04-09  4,000   open, not yet due on 31 March
    I6   B         2025-01-05  2025-02-04  1,500   credit note 500 on 2025-01-25; 1,000 paid 2025-02-20
                                                   by transfer (16 days late, after reminder_1)
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from chalicelib.domain.aggregates import (CREDIT, ISSUE, PAYMENT, PORTFOLIO, AggregateView, LedgerEntry,
                                          ReceivableHistory, aging_from_aggregates, rebuild)
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.kpis import (AGING_BUCKETS, D1_30, NOT_DUE, OVER_90, BucketSpec, MonthSales, PaidInvoice,
                                    PaymentPart, PeriodFigures, aging_of, bucket_of, cei, check_buckets,
                                    collection_rate, collection_report, dso_countback, dso_report, dso_series,
                                    dso_standard, rounded)

E = 100  # cents per euro


def history(inv: str, customer: str, issued: date, due: date, total: int,
            *events: tuple[str, date, int]) -> ReceivableHistory:
    entries = (LedgerEntry(issued, ISSUE, total * E),) + tuple(LedgerEntry(on, kind, amount * E)
                                                                for kind, on, amount in events)
    return ReceivableHistory(inv, customer, "EUR", issued, due, entries)


LEDGER = [
    history("I1", "A", date(2024, 12, 1), date(2024, 12, 31), 1_000, (PAYMENT, date(2025, 1, 20), 1_000)),
    history("I2", "A", date(2025, 1, 10), date(2025, 2, 9), 2_000, (PAYMENT, date(2025, 2, 9), 2_000)),
    history("I3", "A", date(2025, 2, 15), date(2025, 3, 17), 3_000, (PAYMENT, date(2025, 3, 30), 1_000)),
    history("I4", "B", date(2024, 11, 15), date(2024, 12, 15), 500),
    history("I5", "B", date(2025, 3, 10), date(2025, 4, 9), 4_000),
    history("I6", "B", date(2025, 1, 5), date(2025, 2, 4), 1_500, (CREDIT, date(2025, 1, 25), 500),
            (PAYMENT, date(2025, 2, 20), 1_000)),
]
PAID = [
    PaidInvoice("I1", "A", "EUR", date(2024, 12, 1), date(2024, 12, 31), date(2025, 1, 20), 1_000 * E,
                (PaymentPart(date(2025, 1, 20), 1_000 * E, "bank_transfer"),), "reminder_2"),
    PaidInvoice("I2", "A", "EUR", date(2025, 1, 10), date(2025, 2, 9), date(2025, 2, 9), 2_000 * E,
                (PaymentPart(date(2025, 2, 9), 2_000 * E, "sepa_debit"),), None),
    PaidInvoice("I6", "B", "EUR", date(2025, 1, 5), date(2025, 2, 4), date(2025, 2, 20), 1_000 * E,
                (PaymentPart(date(2025, 2, 20), 1_000 * E, "bank_transfer"),), "reminder_1"),
    # paid after the period: ignored by the Q1 report
    PaidInvoice("I9", "B", "EUR", date(2025, 3, 1), date(2025, 3, 31), date(2025, 4, 2), 700 * E, (), None),
]
Q1 = (date(2025, 1, 1), date(2025, 3, 31))


@pytest.fixture(scope="module")
def view() -> AggregateView:
    return AggregateView("EUR", PORTFOLIO, 2024, rebuild(LEDGER))


def test_period_figures_of_the_quarter(view: AggregateView) -> None:
    fig = view.period_figures(*Q1)
    # beginning (31 Dec 2024): I1 1,000 + I4 500 = 1,500
    assert fig.beginning_receivables == 1_500 * E
    # invoiced I2 2,000 + I3 3,000 + I5 4,000 + I6 1,500 = 10,500; credited 500 -> net sales 10,000
    assert (fig.invoiced, fig.credited, fig.credit_sales) == (10_500 * E, 500 * E, 10_000 * E)
    # collected I1 1,000 + I2 2,000 + I3 1,000 + I6 1,000 = 5,000
    assert fig.collected == 5_000 * E
    # ending: I3 2,000 + I4 500 + I5 4,000 = 6,500 (= 1,500 + 10,500 - 500 - 5,000); current: I5 4,000
    assert (fig.ending_receivables, fig.ending_current_receivables) == (6_500 * E, 4_000 * E)
    assert fig.days == 90 and fig.reconciles()


def test_aging_on_31_march() -> None:
    aging = aging_from_aggregates(rebuild(LEDGER), currency="EUR", as_of=date(2025, 3, 31), first_year=2024)
    # not yet due: I5 4,000; 1-30: I3 2,000 (17 Mar -> 31 Mar = 14 days);
    # over 90: I4 500 (15 Dec -> 31 Mar = 16 + 31 + 28 + 31 = 106 days)
    assert [(b.name, b.amount, b.count) for b in aging.buckets] == [
        (NOT_DUE, 4_000 * E, 1), (D1_30, 2_000 * E, 1), ("31_60", 0, 0), ("61_90", 0, 0), (OVER_90, 500 * E, 1)]
    assert (aging.total, aging.count, aging.past_due) == (6_500 * E, 3, 2_500 * E)
    assert aging.oldest_bucket() == OVER_90
    customer_b = aging_from_aggregates(rebuild(LEDGER), currency="EUR", as_of=date(2025, 3, 31), first_year=2024,
                                       scope="B")
    assert (customer_b.current, customer_b.past_due) == (4_000 * E, 500 * E)
    assert aging.to_dict()["buckets"][0] == {"name": NOT_DUE, "amount": "4000.00", "count": 1}


def test_dso_of_the_quarter_by_three_methods(view: AggregateView) -> None:
    fig = view.period_figures(*Q1)
    months = [MonthSales(m.month, m.credit_sales) for m in reversed(view.monthly_figures(date(2025, 3, 1), 5))]
    # monthly net sales: Mar 4,000 (I5); Feb 3,000 (I3); Jan 2,000 + 1,500 - 500 = 3,000; Dec 1,000; Nov 500
    assert [m.credit_sales for m in months] == [4_000 * E, 3_000 * E, 3_000 * E, 1_000 * E, 500 * E]
    report = dso_report(fig, months)
    # standard: 6,500 / 10,000 x 90 = 58.5
    assert report.standard == Decimal("58.5")
    # best possible: 4,000 / 10,000 x 90 = 36
    assert report.best_possible == Decimal(36)
    # average days delinquent: 58.5 - 36 = 22.5
    assert report.average_days_delinquent == Decimal("22.5")
    # countback: 6,500 - Mar 4,000 = 2,500 left after 31 days; Feb 3,000 covers it: 2,500 / 3,000 x 28
    # = 23.33; 31 + 23.33 = 54.33
    assert rounded(report.countback) == Decimal("54.3") and not report.countback_exhausted
    assert report.to_dict()["countback"] == "54.3"


def test_monthly_dso_series(view: AggregateView) -> None:
    series = dso_series(view.monthly_figures(date(2025, 3, 1), 5), points=3, currency="EUR")
    assert [p.start for p in series] == [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]
    # Jan 31: open I2 2,000 + I4 500 + I6 1,000 = 3,500, current I2 + I6 = 3,000, sales 3,000
    #   standard 3,500 / 3,000 x 31 = 36.17; best 3,000 / 3,000 x 31 = 31;
    #   countback 31 (Jan) + 500 / 1,000 (Dec) x 31 = 15.5 -> 46.5
    # Feb 28: open I3 3,000 + I4 500 = 3,500, current I3 3,000, sales 3,000
    #   standard 3,500 / 3,000 x 28 = 32.67; best 28; countback 28 + 500 / 3,000 x 31 = 5.17 -> 33.17
    # Mar 31: 6,500, current 4,000, sales 4,000: standard 6,500 / 4,000 x 31 = 50.375 -> 50.4; best 31;
    #   countback 54.33
    assert [(rounded(p.standard), rounded(p.best_possible), rounded(p.countback)) for p in series] == [
        (Decimal("36.2"), Decimal("31.0"), Decimal("46.5")),
        (Decimal("32.7"), Decimal("28.0"), Decimal("33.2")),
        (Decimal("50.4"), Decimal("31.0"), Decimal("54.3"))]


def test_collection_report_of_the_quarter(view: AggregateView) -> None:
    report = collection_report(view.period_figures(*Q1), PAID)
    # CEI: (1,500 + 10,000 - 6,500) / (1,500 + 10,000 - 4,000) x 100 = 5,000 / 7,500 = 66.67 %
    assert rounded(report.cei) == Decimal("66.7")
    # collection rate: 5,000 / (1,500 + 10,000) x 100 = 43.48 %
    assert rounded(report.collection_rate) == Decimal("43.5")
    assert report.amount_collected == 5_000 * E
    # paid in Q1: I1 (issued 1 Dec, paid 20 Jan: 50 days, 20 late), I2 (30 days, on time),
    # I6 (5 Jan -> 20 Feb: 46 days, 16 late); I9 was paid in April
    assert report.invoices_paid == 3
    # average days to pay (50 + 30 + 46) / 3 = 42; days late (20 + 0 + 16) / 3 = 12; on time 1 / 3 = 33.3 %
    assert report.average_days_to_pay == Decimal(42)
    assert report.average_days_late == Decimal(12)
    assert rounded(report.on_time_share) == Decimal("33.3")
    # by method: transfer I1 1,000 + I6 1,000 = 2,000 on 2 invoices; SEPA I2 2,000 on 1
    assert [(m.method, m.amount, m.invoices) for m in report.by_method] == [
        ("bank_transfer", 2_000 * E, 2), ("sepa_debit", 2_000 * E, 1)]
    # by dunning step: none first (I2), then reminder_1 (I6, 16 days late), reminder_2 (I1, 20 days late)
    assert [(s.step, s.invoices, s.amount, s.average_days_late, rounded(s.share_of_invoices))
            for s in report.by_dunning_step] == [
        ("none", 1, 2_000 * E, Decimal(0), Decimal("33.3")),
        ("reminder_1", 1, 1_000 * E, Decimal(16), Decimal("33.3")),
        ("reminder_2", 1, 1_000 * E, Decimal(20), Decimal("33.3"))]
    body = report.to_dict()
    assert body["cei"] == "66.7" and body["by_method"][0] == {"method": "bank_transfer", "amount": "2000.00",
                                                             "invoices": 2}


# -- the formulas against the worked examples of their sources -------------------------------------

def test_cei_worked_example() -> None:
    # wizedu / creditguru: (6,200 + 10,890 - 6,340) / (6,200 + 10,890 - 3,590) = 10,750 / 13,500 = 79.63 %
    assert rounded(cei(6_200, 10_890, 6_340, 3_590), Decimal("0.01")) == Decimal("79.63")
    assert cei(0, 0, 0, 0) is None


def test_countback_worked_example() -> None:
    # AR 2,100,000; Mar 900,000 (31 d), Feb 800,000 (28 d), Jan 700,000 (31 d):
    # 31 + 28 + 400,000 / 700,000 x 31 = 59 + 17.71 = 76.71
    months = [MonthSales(date(2025, 3, 1), 900_000), MonthSales(date(2025, 2, 1), 800_000),
              MonthSales(date(2025, 1, 1), 700_000)]
    result = dso_countback(2_100_000, months)
    assert rounded(result.days, Decimal("0.01")) == Decimal("76.71") and result.months_used == 3
    # more receivables than all the sales given: a lower bound, flagged
    assert dso_countback(3_000_000, months).exhausted and dso_countback(3_000_000, months).days == 90
    # a month without sales is counted in full
    assert dso_countback(100, [MonthSales(date(2025, 3, 1), 0), MonthSales(date(2025, 2, 1), 200)]).days == Decimal(
        31 + 14)
    assert dso_countback(0, months).days == 0
    with pytest.raises(ValueError):
        dso_countback(1, [months[0], months[2]])


def test_standard_dso_and_collection_rate_edge_cases() -> None:
    # creditguru: 15,000 / 10,000 x 30 = 45
    assert dso_standard(15_000, 10_000, 30) == 45
    assert dso_standard(15_000, 0, 30) is None
    assert collection_rate(0, 0, 0) is None


def test_aging_buckets_edges_and_validation() -> None:
    assert [bucket_of(d) for d in (-5, 0, 1, 30, 31, 60, 61, 90, 91)] == [
        NOT_DUE, NOT_DUE, D1_30, D1_30, "31_60", "31_60", "61_90", "61_90", OVER_90]
    aging = aging_of([(date(2025, 1, 1), 100), (date(2025, 1, 1), 0), (date(2024, 1, 1), -5)],
                     currency="EUR", as_of=date(2025, 1, 2))
    assert (aging.bucket(D1_30).amount, aging.bucket(D1_30).count) == (100, 1)
    assert (aging.bucket(OVER_90).amount, aging.bucket(OVER_90).count) == (-5, 0)
    check_buckets(AGING_BUCKETS)
    for bad in ([BucketSpec("a", None, 0)], [BucketSpec("a", None, 0), BucketSpec("b", 2, None)],
                [BucketSpec("a", 0, 0), BucketSpec("b", 1, None)], [BucketSpec("a", None, 0), BucketSpec("b", 1, 5)]):
        with pytest.raises(ValidationError):
            check_buckets(bad)


def test_period_figures_reject_a_reversed_period() -> None:
    fig = PeriodFigures("EUR", date(2025, 2, 1), date(2025, 1, 1), 0, 0, 0)
    with pytest.raises(ValidationError):
        _ = fig.days
