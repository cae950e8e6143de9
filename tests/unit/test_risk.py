"""Payer scorecard, configurable risk score and credit check, with hand-computed figures."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from chalicelib.domain.errors import CurrencyError, ValidationError
from chalicelib.domain.money import Money
from chalicelib.domain.risk import (BROKEN, CREDIT_HOLD, KEPT, LIMIT_EXCEEDED, MANUAL_HOLD, MEDIUM, OVERDUE,
                                    WORSENING, CreditHold, CreditPolicy, OpenItem, Override, PaidItem,
                                    PayerActivity, PromiseOutcome, RiskConfig, RiskWeights, credit_check,
                                    oldest_overdue_days, scorecard)

AS_OF = date(2025, 6, 30)
E = 100  # cents per euro

ACTIVITY = PayerActivity(
    customer_id="cus_1", currency="EUR", credit_limit=10_000 * E, unapplied_cash=500 * E, profile="occasional_late",
    last_contact=date(2025, 6, 12),
    open_items=(OpenItem("O1", date(2025, 5, 1), 2_000 * E),    # 60 days overdue (30 in May + 30 in June)
                OpenItem("O2", date(2025, 6, 20), 1_000 * E),   # 10 days overdue
                OpenItem("O3", date(2025, 7, 15), 3_000 * E)),  # not yet due
    paid=(PaidItem(date(2025, 4, 1), date(2025, 5, 1), date(2025, 5, 21)),      # 50 days to pay, 20 late
          PaidItem(date(2025, 4, 15), date(2025, 5, 15), date(2025, 6, 14)),    # 60 days, 30 late
          PaidItem(date(2024, 10, 1), date(2024, 10, 31), date(2024, 10, 31)),  # 30 days, on time
          PaidItem(date(2024, 11, 1), date(2024, 12, 1), date(2024, 12, 6)),    # 35 days, 5 late
          PaidItem(date(2024, 1, 1), date(2024, 1, 31), date(2024, 2, 10))),    # older than 365 days
    promises=(PromiseOutcome(date(2025, 3, 1), BROKEN), PromiseOutcome(date(2025, 2, 1), KEPT),
              PromiseOutcome(date(2024, 5, 1), BROKEN)))                        # the last one is too old


def test_scorecard_figures() -> None:
    card = scorecard(ACTIVITY, as_of=AS_OF)
    # open 2,000 + 1,000 + 3,000 = 6,000; exposure 6,000 - 500 unapplied = 5,500; overdue 3,000, oldest 60 days
    assert (card.open_balance, card.exposure, card.overdue, card.oldest_overdue_days) == (
        6_000 * E, 5_500 * E, 3_000 * E, 60)
    # headroom 10,000 - 5,500 = 4,500; utilization 55 %
    assert (card.headroom, card.utilization) == (4_500 * E, Decimal(55))
    # 90 days (from 2 Apr): P1, P2 -> days to pay (50 + 60) / 2 = 55, late (20 + 30) / 2 = 25
    assert (card.avg_days_to_pay_90, card.avg_days_late_90) == (Decimal(55), Decimal(25))
    # 365 days: P1-P4 -> to pay (50 + 60 + 30 + 35) / 4 = 43.75, late (20 + 30 + 0 + 5) / 4 = 13.75
    assert (card.avg_days_to_pay_365, card.avg_days_late_365) == (Decimal("43.75"), Decimal("13.75"))
    # trend 25 - 13.75 = 11.25 days more late recently: worsening; 3 of 4 paid late: 75 %
    assert (card.trend_days, card.trend, card.late_share) == (Decimal("11.25"), WORSENING, Decimal(75))
    assert (card.broken_promises, card.kept_promises, card.invoices_paid_365) == (1, 1, 4)
    body = card.to_dict()
    assert body["exposure"] == "5500.00" and body["avg_days_to_pay_365"] == "43.8" and body["trend"] == WORSENING


def test_risk_score_lists_each_factor_and_its_contribution() -> None:
    risk = scorecard(ACTIVITY, as_of=AS_OF).risk
    # factor            value   normalised         weight  points (weights add up to 100)
    # days_late         13.75   13.75 / 60 = 0.229  25      5.73
    # late_share        75 %    0.75                15     11.25
    # overdue_ratio     0.5     3,000 / 6,000       15      7.50
    # oldest_overdue    60      60 / 90 = 0.667     20     13.33
    # broken_promises   1       1 / 3 = 0.333       10      3.33
    # credit_utilization 55 %   0.55                10      5.50
    # trend             11.25   11.25 / 30 = 0.375   5      1.88 (1.875)
    # total 48.52 -> 49, medium (34..66)
    assert [(f.name, f.value, f.weight, f.contribution) for f in risk.factors] == [
        ("days_late", Decimal("13.75"), 25, Decimal("5.73")),
        ("late_share", Decimal("75.00"), 15, Decimal("11.25")),
        ("overdue_ratio", Decimal("0.50"), 15, Decimal("7.50")),
        ("oldest_overdue", Decimal("60.00"), 20, Decimal("13.33")),
        ("broken_promises", Decimal("1.00"), 10, Decimal("3.33")),
        ("credit_utilization", Decimal("55.00"), 10, Decimal("5.50")),
        ("trend", Decimal("11.25"), 5, Decimal("1.88"))]
    assert risk.factors[3].normalized == Decimal("0.667")
    assert (risk.score, risk.band) == (49, MEDIUM)


def test_a_factor_without_data_is_left_out_and_the_others_reweighted() -> None:
    # without a credit limit: 48.52 - 5.50 = 43.02 points over 90 weight -> 43.02 x 100 / 90 = 47.8 -> 48
    no_limit = PayerActivity(**{**{f: getattr(ACTIVITY, f) for f in ACTIVITY.__slots__}, "credit_limit": None})
    card = scorecard(no_limit, as_of=AS_OF)
    assert card.headroom is None and card.risk.score == 48
    utilization = next(f for f in card.risk.factors if f.name == "credit_utilization")
    assert not utilization.applicable and utilization.to_dict()["value"] is None
    # a customer with nothing open and nothing paid: every applicable factor is 0
    assert scorecard(PayerActivity("cus_2", "EUR"), as_of=AS_OF).risk.score == 0


def test_weights_are_configuration() -> None:
    # only the oldest overdue invoice counts: 60 / 90 = 66.7 -> 67, high
    config = RiskConfig.from_dict({"weights": {"days_late": 0, "late_share": 0, "overdue_ratio": 0,
                                               "oldest_overdue": 1, "broken_promises": 0, "credit_utilization": 0,
                                               "trend": 0}})
    risk = scorecard(ACTIVITY, as_of=AS_OF, config=config).risk
    assert (risk.score, risk.band) == (67, "high")
    # only days late, for a customer who never paid: nothing applies -> the configured no-data score
    only_days_late = RiskConfig(weights=RiskWeights(days_late=1, late_share=0, overdue_ratio=0, oldest_overdue=0,
                                                    broken_promises=0, credit_utilization=0, trend=0),
                                no_data_score=50)
    assert scorecard(PayerActivity("cus_2", "EUR"), as_of=AS_OF, config=only_days_late).risk.score == 50
    assert RiskConfig.from_dict(RiskConfig().to_dict()) == RiskConfig()


@pytest.mark.parametrize("bad", [
    {"weights": {"days_late": -1}}, {"weights": {"speed": 3}}, {"colour": "red"},
    {"weights": dict.fromkeys(RiskWeights().as_dict(), 0)}, {"days_late_cap": 0}, {"medium_from": 80},
    {"weights": {"trend": True}}])
def test_invalid_configuration_is_refused(bad) -> None:
    with pytest.raises(ValidationError):
        RiskConfig.from_dict(bad)


# -- credit check ---------------------------------------------------------------------------------

def eur(euros: int) -> Money:
    return Money(euros * E, "EUR")


def test_order_over_the_limit_is_held_with_the_figures() -> None:
    # exposure 9,500 + order 1,000 = 10,500 > limit 10,000 by 500
    decision = credit_check(exposure=eur(9_500), credit_limit=eur(10_000), amount=eur(1_000),
                            oldest_overdue_days=0)
    assert (decision.allowed, decision.code, [r.code for r in decision.reasons]) == (
        False, CREDIT_HOLD, [LIMIT_EXCEEDED])
    assert (decision.headroom, decision.headroom_after) == (eur(500), eur(-500))
    assert "by 500.00 EUR" in decision.reasons[0].message
    with pytest.raises(CreditHold) as err:
        decision.raise_if_refused()
    assert err.value.code == "credit_hold" and err.value.details["headroom"] == "500.00"


def test_override_lets_it_through_flagged_and_recorded() -> None:
    override = Override(by="clerk@seller.example", reason="signed bank guarantee")
    decision = credit_check(exposure=eur(9_500), credit_limit=eur(10_000), amount=eur(1_000), oldest_overdue_days=45,
                            override=override)
    assert decision.allowed and decision.flagged and decision.hold
    assert [r.code for r in decision.reasons] == [LIMIT_EXCEEDED, OVERDUE]
    assert decision.to_dict()["override"] == {"by": "clerk@seller.example", "reason": "signed bank guarantee"}
    decision.raise_if_refused()  # does not raise
    with pytest.raises(ValidationError):
        Override(by="clerk", reason=" ")


def test_overdue_manual_hold_and_delivered_work() -> None:
    # oldest overdue 31 days > 30 allowed: held, even far below the limit
    held = credit_check(exposure=eur(100), credit_limit=eur(10_000), amount=eur(100), oldest_overdue_days=31)
    assert [r.code for r in held.reasons] == [OVERDUE] and not held.allowed
    # exactly at the threshold is fine; a stricter policy holds
    assert credit_check(exposure=eur(0), credit_limit=None, amount=eur(1), oldest_overdue_days=30).allowed
    assert not credit_check(exposure=eur(0), credit_limit=None, amount=eur(1), oldest_overdue_days=30,
                            policy=CreditPolicy(max_overdue_days=15)).allowed
    # a hand-set hold, and delivered work that must be invoiced anyway (flagged, not blocked)
    manual = credit_check(exposure=eur(0), credit_limit=None, amount=eur(1), oldest_overdue_days=0, on_hold=True)
    assert [r.code for r in manual.reasons] == [MANUAL_HOLD] and not manual.allowed
    delivered = credit_check(exposure=eur(0), credit_limit=None, amount=eur(1), oldest_overdue_days=0, on_hold=True,
                             delivered_work=True)
    assert delivered.allowed and delivered.flagged


def test_within_limit_is_ok_and_an_unneeded_override_is_not_recorded() -> None:
    decision = credit_check(exposure=eur(1_000), credit_limit=eur(10_000), amount=eur(9_000), oldest_overdue_days=0,
                            override=Override("clerk", "just in case"))
    assert (decision.allowed, decision.code, decision.flagged, decision.override) == (True, "ok", False, None)
    assert decision.headroom_after == eur(0)


def test_amounts_in_another_currency_are_refused() -> None:
    with pytest.raises(CurrencyError):
        credit_check(exposure=eur(1), credit_limit=eur(10), amount=Money(100, "USD"), oldest_overdue_days=0)
    with pytest.raises(ValidationError):
        credit_check(exposure=eur(1), credit_limit=Money(100, "USD"), amount=eur(1), oldest_overdue_days=0)


def test_oldest_overdue_days_of_open_items() -> None:
    assert oldest_overdue_days(ACTIVITY.open_items, AS_OF) == 60
    assert oldest_overdue_days([], AS_OF) == 0
