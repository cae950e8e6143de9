"""Cash-in forecast: each rule with its basis, the weekly sums, and the backtest against naive."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.forecast import (DISPUTE, HISTORY, PLAN, PROFILE, PROMISE, SEPA, Commitments, Dispute,
                                        ForecastConfig, Installment, OpenInvoice, PaymentObservation, Promise,
                                        SepaCollection, add_business_days, backtest, forecast, generate_history,
                                        naive_forecast, payer_lateness, predict, weighted_median)

AS_OF = date(2025, 6, 2)  # a Monday


def paid(days_late: int, *, ago: int = 10, amount: int = 100_00) -> PaymentObservation:
    """An invoice paid ``ago`` days before AS_OF, ``days_late`` days after its due date."""
    paid_on = AS_OF - timedelta(days=ago)
    return PaymentObservation(paid_on - timedelta(days=days_late), paid_on, amount)


def invoice(due_in: int, amount: int = 1_000_00, invoice_id: str = "i1", customer: str = "c1") -> OpenInvoice:
    due = AS_OF + timedelta(days=due_in)
    return OpenInvoice(invoice_id, customer, "EUR", due - timedelta(days=30), due, amount)


# -- the payer's typical lateness -----------------------------------------------------------------

def test_weighted_median_is_robust_to_an_outlier() -> None:
    # sorted 10, 11, 12, 12, 14, 200 with equal weights: the lower median is the 3rd value, 12
    history = [paid(d) for d in (10, 12, 12, 14, 200, 11)]
    lateness = payer_lateness(history, as_of=AS_OF)
    assert (lateness.days, lateness.median, lateness.payments, lateness.credibility) == (12, 12, 6, Decimal("1.00"))
    assert weighted_median([]) is None


def test_short_history_is_shrunk_toward_the_profile() -> None:
    # one payment 20 days late, profile reliable (0 days): Z = sqrt(1 / 6) = 0.408; 0.408 x 20 = 8.2 -> 8
    lateness = payer_lateness([paid(20)], as_of=AS_OF, profile="reliable")
    assert (lateness.days, lateness.prior, lateness.credibility) == (8, 0, Decimal("0.41"))
    # no history at all: the profile's typical lateness (chronic_late: 30); an unknown profile: "new" (5)
    assert payer_lateness([], as_of=AS_OF, profile="chronic_late").days == 30
    assert payer_lateness([], as_of=AS_OF, profile="???").days == 5


def test_recent_payments_weigh_more() -> None:
    # three payments a year ago 40 days late (weight 0.5 ** (360 / 180) = 0.25 each, 0.75 in all) and
    # three last week 5 days late (about 0.97 each): the weighted median is 5, not 40 or 22.5
    history = [paid(40, ago=360)] * 3 + [paid(5, ago=7)] * 3
    assert payer_lateness(history, as_of=AS_OF).days == 5
    # payments made after the as-of date are not known yet; those older than the window are forgotten
    assert payer_lateness([paid(5, ago=-3), paid(5, ago=800)], as_of=AS_OF).payments == 0


# -- the rules ------------------------------------------------------------------------------------

LATE_PAYER = [paid(d) for d in (40, 42, 44, 45, 48, 50)]  # lower weighted median 44


def test_payer_history_rule_with_its_basis() -> None:
    p = predict(invoice(due_in=-20), as_of=AS_OF, history=LATE_PAYER)
    # due 20 days ago + 44 days late = 24 days from now
    assert p.predicted_payment_date == AS_OF + timedelta(days=24)
    assert p.rule == HISTORY
    assert p.basis["lateness"] == {"days_late": 44, "payments": 6, "weighted_median_days_late": 44,
                                   "profile": "new", "profile_days_late": 5, "credibility": "1.00"}
    assert p.to_dict()["predicted_payment_date"] == "2025-06-26"


def test_an_invoice_later_than_usual_uses_the_conditional_history() -> None:
    # 46 days late now: the payments later than 46 days were 48 and 50 -> lower median 48 -> in 2 days
    p = predict(invoice(due_in=-46), as_of=AS_OF, history=LATE_PAYER)
    assert p.predicted_payment_date == AS_OF + timedelta(days=2)
    assert p.basis["lateness"]["conditional_median_days_late"] == 48
    # 60 days late: later than every payment so far -> today + 7 days
    p = predict(invoice(due_in=-60), as_of=AS_OF, history=LATE_PAYER)
    assert p.predicted_payment_date == AS_OF + timedelta(days=7)


def test_no_history_uses_the_profile() -> None:
    p = predict(invoice(due_in=10), as_of=AS_OF, profile="occasional_late")
    assert (p.rule, p.predicted_payment_date) == (PROFILE, AS_OF + timedelta(days=17))


def test_open_dispute_is_excluded_by_default_or_pushed_out() -> None:
    c = Commitments(dispute=Dispute(date(2025, 5, 20), "quantity"), promise=Promise(AS_OF))
    p = predict(invoice(due_in=-5), as_of=AS_OF, history=LATE_PAYER, commitments=c)
    assert (p.rule, p.excluded, p.predicted_payment_date, p.cash_ins) == (DISPUTE, True, None, ())
    pushed = predict(invoice(due_in=-5), as_of=AS_OF, commitments=c, config=ForecastConfig(dispute_delay_days=30))
    assert (pushed.excluded, pushed.predicted_payment_date) == (False, AS_OF + timedelta(days=30))


def test_pending_sepa_collection_settles_business_days_after_collection() -> None:
    # collected on Friday 6 June + 1 business day = Monday 9 June, whatever the payer's habits
    c = Commitments(sepa=SepaCollection(date(2025, 6, 6)))
    p = predict(invoice(due_in=4), as_of=AS_OF, history=LATE_PAYER, commitments=c)
    assert (p.rule, p.predicted_payment_date) == (SEPA, date(2025, 6, 9))
    assert add_business_days(date(2025, 6, 7), 0) == date(2025, 6, 9)  # a Saturday rolls to Monday


def test_payment_plan_installments_then_promise_then_history_for_the_rest() -> None:
    # 1,000 due: installments of 300 (overdue since 1 June -> today) and 300 on 1 July;
    # a promise of 100 on 15 June; the remaining 300 from history (due 10 days ago + 44 days)
    c = Commitments(installments=(Installment(date(2025, 7, 1), 300_00), Installment(date(2025, 6, 1), 300_00)),
                    promise=Promise(date(2025, 6, 15), 100_00))
    p = predict(invoice(due_in=-10), as_of=AS_OF, history=LATE_PAYER, commitments=c)
    assert [(x.on, x.amount, x.rule) for x in p.cash_ins] == [
        (AS_OF, 300_00, PLAN), (date(2025, 7, 1), 300_00, PLAN), (date(2025, 6, 15), 100_00, PROMISE),
        (AS_OF + timedelta(days=34), 300_00, HISTORY)]
    assert p.rule == PLAN and p.predicted_payment_date == AS_OF + timedelta(days=34)


def test_a_broken_promise_is_ignored_and_said_so() -> None:
    c = Commitments(promise=Promise(AS_OF - timedelta(days=1)))
    p = predict(invoice(due_in=5), as_of=AS_OF, history=LATE_PAYER, commitments=c)
    assert p.rule == HISTORY and p.basis["promise"]["status"] == "broken, ignored"


# -- weekly sums ------------------------------------------------------------------------------------

def test_weekly_forecast_sums_cash_ins_per_week() -> None:
    invoices = [invoice(due_in=1, amount=100_00, invoice_id="a"),       # reliable: due in 1 day -> week 0
                invoice(due_in=8, amount=200_00, invoice_id="b"),       # due in 8 days -> week 1
                invoice(due_in=200, amount=50_00, invoice_id="c"),      # beyond 13 weeks
                invoice(due_in=0, amount=70_00, invoice_id="d"),        # disputed: excluded
                OpenInvoice("e", "c1", "USD", AS_OF, AS_OF, 999)]         # other currency
    result = forecast(invoices, as_of=AS_OF, currency="EUR", profiles={"c1": "reliable"},
                      commitments={"d": Commitments(dispute=Dispute(AS_OF))})
    assert [w.amount for w in result.weeks[:3]] == [100_00, 200_00, 0]
    assert (len(result.weeks), result.total, result.beyond_horizon, result.excluded) == (13, 300_00, 50_00, 70_00)
    assert result.weeks[1].start == AS_OF + timedelta(days=7) and result.weeks[1].invoices == 1
    body = result.to_dict()
    assert body["weeks"][0]["amount"] == "100.00" and len(body["invoices"]) == 4
    naive = naive_forecast(invoices, as_of=AS_OF, currency="EUR")
    assert naive.total == 370_00  # the naive one counts the disputed invoice on its due date


def test_config_is_validated() -> None:
    for bad in ({"horizon_weeks": 0}, {"sepa_settlement_days": -1}, {"dispute_delay_days": 1000},
                {"default_profile": "vip"}):
        with pytest.raises(ValidationError):
            ForecastConfig(**bad)  # type: ignore[arg-type]


# -- backtest -------------------------------------------------------------------------------------

START = date(2025, 1, 1)
CUTOFF = date(2025, 11, 3)


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_backtest_beats_naive_when_customers_have_their_own_lateness(seed: int, record_property) -> None:
    # Given a year of invoices of 40 customers who each pay with their own lateness
    history = generate_history(seed, start=START)
    # When the invoices open on 3 November are forecast from what was known then
    result = backtest(history, cutoff=CUTOFF, weeks=8)
    record_property("weekly_mae", result.mae)
    record_property("naive_weekly_mae", result.naive_mae)
    print(f"seed {seed}: weekly MAE {result.mae / 100:.2f} EUR vs naive {result.naive_mae / 100:.2f} EUR")
    # Then the weekly mean absolute error over 8 weeks is well below the naive forecast's
    assert result.mae < result.naive_mae * 0.6
    assert sum(result.actual) > 0 and len(result.actual) == 8


def test_backtest_no_worse_than_naive_when_everyone_pays_on_time() -> None:
    history = generate_history(3, start=START, on_time=True)
    result = backtest(history, cutoff=CUTOFF, weeks=8)
    assert result.mae <= result.naive_mae
    assert result.predicted == result.actual  # on-time payers are predicted on their due date
