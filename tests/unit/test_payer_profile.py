"""Payer profiles from payment history, and promise-to-pay status."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.money import Money
from chalicelib.domain.payer_profile import (ACTIVE, BROKEN, CHRONIC_LATE, KEPT, NEW, OCCASIONAL_LATE, PROFILES,
                                             RELIABLE, PaidInvoiceRecord, PromiseRecord, PromiseToPay, ProfileRule,
                                             derive_profile, ladder_profile, promise_status)

TODAY = date(2026, 6, 30)


def paid(days_late: int, *, due: date = date(2026, 3, 1), amount: str = "1000.00") -> PaidInvoiceRecord:
    return PaidInvoiceRecord(due_date=due, paid_on=due + timedelta(days=days_late),
                             amount=Money.parse(amount, "EUR"))


def history(*days_late: int) -> list[PaidInvoiceRecord]:
    # Invoices due on consecutive weeks, so each one is a distinct record.
    return [paid(d, due=date(2026, 1, 5) + timedelta(weeks=i)) for i, d in enumerate(days_late)]


def test_reliable_payer():
    # Given 10 invoices, one paid 2 days late (10 % late, on average 0.2 days)
    p = derive_profile(history(0, 0, 0, 2, 0, 0, 0, 0, 0, 0), today=TODAY)
    # Then reliable: <= 3 days on average and <= 10 % late
    assert p.profile == RELIABLE
    assert p.metrics.invoices_paid == 10 and p.metrics.invoices_paid_late == 1
    assert p.metrics.late_percent == Decimal("10.00") and p.metrics.avg_days_late == Decimal("0.20")
    assert "reliable: average 0.20 days late <= 3 and 10.00% paid late <= 10%" in p.explanation


def test_one_more_late_invoice_makes_an_occasional_late_payer():
    p = derive_profile(history(0, 0, 0, 2, 0, 0, 0, 0, 0, 1), today=TODAY)
    assert p.profile == OCCASIONAL_LATE
    assert "20.00% paid late > 10%" in p.explanation


def test_chronic_by_average_delay():
    # 5 invoices 16 days late on average (0, 0, 0, 40, 40 -> 16.00), 40 % late
    p = derive_profile(history(0, 0, 0, 40, 40), today=TODAY)
    assert p.profile == CHRONIC_LATE
    assert "average 16.00 days late > 15" in p.explanation


def test_exactly_fifteen_days_on_average_is_not_chronic():
    p = derive_profile(history(0, 0, 0, 35, 40), today=TODAY)   # 75 / 5 = 15.00, 40 % late
    assert p.profile == OCCASIONAL_LATE


def test_chronic_by_share_paid_late():
    p = derive_profile(history(1, 1, 1, 0, 0), today=TODAY)    # 60 % late, 0.6 days on average
    assert p.profile == CHRONIC_LATE
    assert "60.00% paid late > 50%" in p.explanation


def test_two_broken_promises_make_an_otherwise_reliable_payer_chronic():
    promises = [PromiseRecord(date(2026, 4, 1), BROKEN), PromiseRecord(date(2026, 5, 1), BROKEN),
                PromiseRecord(date(2026, 5, 15), KEPT)]
    p = derive_profile(history(0, 0, 0, 0, 0), promises, today=TODAY)
    assert p.profile == CHRONIC_LATE
    assert p.metrics.broken_promises == 2 and p.metrics.kept_promises == 1
    assert "2 broken promises >= 2" in p.explanation


def test_fewer_than_five_paid_invoices_is_new_and_uses_the_occasional_ladder():
    p = derive_profile(history(60, 60, 60, 60), today=TODAY)
    assert p.profile == NEW and p.ladder_profile == OCCASIONAL_LATE
    assert "fewer than 5 invoices" in p.explanation


def test_only_the_last_365_days_count():
    old = [paid(90, due=date(2025, 1, 1)) for _ in range(5)]      # paid 1 April 2025: outside the window
    p = derive_profile(old + history(0, 0, 0, 0, 0), today=TODAY)
    assert p.profile == RELIABLE and p.metrics.invoices_paid == 5
    assert p.metrics.window_start == date(2025, 7, 1)


def test_grace_days_and_amount_weighting_are_rule_parameters():
    records = [paid(2, amount="100.00"), paid(0, amount="10000.00"), paid(0), paid(0), paid(2, amount="100.00")]
    assert derive_profile(records, today=TODAY).profile == OCCASIONAL_LATE        # 40 % late
    graced = ProfileRule.from_dict({"late_grace_days": 2})
    assert derive_profile(records, today=TODAY, rule=graced).profile == RELIABLE
    by_amount = derive_profile(records, today=TODAY, rule=ProfileRule.from_dict({"weighting": "amount"}))
    assert by_amount.metrics.avg_days_late == Decimal("0.03")   # 2x200 / 12200 = 0.0327...


def test_rule_round_trips_and_defaults_are_the_issue_s():
    rule = ProfileRule()
    assert ProfileRule.from_dict(rule.to_dict()) == rule
    assert rule.to_dict() == {"min_invoices": 5, "window_days": 365, "reliable_max_avg_days_late": "3",
                              "reliable_max_late_percent": "10", "chronic_min_avg_days_late": "15",
                              "chronic_min_late_percent": "50", "chronic_min_broken_promises": 2,
                              "late_grace_days": 0, "weighting": "count"}


@pytest.mark.parametrize("data, field", [
    ({"min_invoices": 0}, "profile_rule.min_invoices"),
    ({"reliable_max_late_percent": "120"}, "profile_rule.reliable_max_late_percent"),
    ({"chronic_min_avg_days_late": 15.5}, "profile_rule.chronic_min_avg_days_late"),
    ({"reliable_max_avg_days_late": "20"}, "profile_rule.reliable_max_avg_days_late"),
    ({"weighting": "vibes"}, "profile_rule.weighting"),
    ({"typo": 1}, "profile_rule.typo"),
])
def test_rule_validation_names_the_field(data, field):
    with pytest.raises(ValidationError) as err:
        ProfileRule.from_dict(data)
    assert err.value.field == field


def test_to_dict_carries_metrics_rule_and_explanation():
    d = derive_profile(history(0, 0, 0, 0, 0), today=TODAY).to_dict()
    assert d["profile"] == RELIABLE and d["ladder_profile"] == RELIABLE
    assert d["metrics"]["invoices_paid"] == 5 and d["rule"]["min_invoices"] == 5 and d["explanation"]


@given(st.lists(st.integers(min_value=0, max_value=120), max_size=30),
       st.lists(st.sampled_from([KEPT, BROKEN]), max_size=5))
def test_always_one_known_profile_and_never_reliable_with_chronic_signs(delays, outcomes):
    promises = [PromiseRecord(date(2026, 6, 1) - timedelta(days=i), o) for i, o in enumerate(outcomes)]
    p = derive_profile(history(*delays), promises, today=TODAY)
    assert p.profile in PROFILES
    if p.profile == RELIABLE:
        assert p.metrics.avg_days_late <= 3 and p.metrics.late_percent <= 10 and p.metrics.broken_promises < 2


def test_ladder_profile_maps_new_to_occasional():
    assert ladder_profile(NEW) == OCCASIONAL_LATE and ladder_profile(CHRONIC_LATE) == CHRONIC_LATE
    with pytest.raises(ValidationError):
        ladder_profile("vip")


# -- promises to pay ----------------------------------------------------------------------------

def promise(amount: str = "500.00") -> PromiseToPay:
    return PromiseToPay(amount=Money.parse(amount, "EUR"), promised_date=date(2026, 4, 20), made_on=date(2026, 4, 10))


def eur(v: str) -> Money:
    return Money.parse(v, "EUR")


def test_promise_active_until_its_date_then_broken_if_unpaid():
    assert promise_status(promise(), [], today=date(2026, 4, 20)) == ACTIVE
    assert promise_status(promise(), [], today=date(2026, 4, 21)) == BROKEN


def test_promise_kept_when_paid_in_full_by_the_date_even_in_instalments():
    payments = [(date(2026, 4, 12), eur("200.00")), (date(2026, 4, 20), eur("300.00"))]
    assert promise_status(promise(), payments, today=date(2026, 4, 15)) == ACTIVE
    assert promise_status(promise(), payments, today=date(2026, 4, 30)) == KEPT


def test_payments_outside_the_promise_window_do_not_keep_it():
    payments = [(date(2026, 4, 9), eur("500.00")), (date(2026, 4, 21), eur("500.00")),
                (date(2026, 4, 15), Money(50000, "USD"))]
    assert promise_status(promise(), payments, today=date(2026, 4, 22)) == BROKEN


def test_partial_payment_by_the_date_breaks_the_promise():
    assert promise_status(promise(), [(date(2026, 4, 19), eur("499.99"))], today=date(2026, 4, 21)) == BROKEN


def test_promise_validation():
    with pytest.raises(ValidationError):
        PromiseToPay(amount=eur("0.00"), promised_date=date(2026, 4, 20), made_on=date(2026, 4, 10))
    with pytest.raises(ValidationError) as err:
        PromiseToPay.from_dict({"amount": "10.00", "promised_date": "2026-04-01", "made_on": "2026-04-10"})
    assert err.value.field == "promised_date"
    p = PromiseToPay.from_dict({"amount": "500.00", "currency": "EUR", "promised_date": "2026-04-20",
                                "made_on": "2026-04-10"})
    assert PromiseToPay.from_dict(p.to_dict()) == p
