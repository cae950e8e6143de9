"""French late-payment penalties: hand-computed figures, then properties.

Convention under test (chalicelib/domain/penalties.py): days from due_date + 1 to
``until`` included; a day's interest is principal x annual rate / 365 (366 in a leap
year); the exact sum is rounded half-up once; period lines add up to the total.
"""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.money import Money
from chalicelib.domain.penalties import (DEFAULT_REFERENCE_RATES, ECB_PLUS_MARGIN, LEGAL_FLOOR, SELLER_RATE,
                                         PenaltyRateUnavailable, ReferenceRates, accrue_interest,
                                         compute_late_penalties, half_year)


def eur(value: str) -> Money:
    return Money.parse(value, "EUR")


def test_10000_eur_45_days_late_across_the_july_2025_boundary():
    # Given 10,000.00 EUR due on 15 June 2025, paid on 30 July 2025: 45 days late
    # When penalties are computed at the legal default (ECB MRO + 10 points)
    b = compute_late_penalties(eur("10000.00"), date(2025, 6, 15), date(2025, 7, 30))
    # Then 16-30 June: 15 days at 3.15 + 10 = 13.15 %: 10000 x 0.1315 x 15 / 365 = 54.0410958...
    #      1-30 July:  30 days at 2.15 + 10 = 12.15 %: 10000 x 0.1215 x 30 / 365 = 99.8630137...
    #      total exact 153.9041095... -> 153.90; lines 54.04 and 153.90 - 54.04 = 99.86
    assert b.days_late == 45
    assert [(p.start, p.end, p.days, p.annual_rate, p.rate_source) for p in b.periods] == [
        (date(2025, 6, 16), date(2025, 6, 30), 15, Decimal("13.15"), ECB_PLUS_MARGIN),
        (date(2025, 7, 1), date(2025, 7, 30), 30, Decimal("12.15"), ECB_PLUS_MARGIN),
    ]
    assert [p.amount for p in b.periods] == [eur("54.04"), eur("99.86")]
    assert b.interest == eur("153.90")
    # And the 40 EUR indemnity per invoice (D441-5)
    assert b.indemnity == eur("40.00")
    assert b.total == eur("193.90")


def test_leap_year_days_use_366():
    # Given 1,000.00 EUR due 28 Feb 2024, until 31 March 2024: 29 Feb + 31 March = 32 days
    b = compute_late_penalties(eur("1000.00"), date(2024, 2, 28), date(2024, 3, 31))
    # Then 2024-H1 rate = 4.50 + 10 = 14.5 %; 1000 x 0.145 x 32 / 366 = 12.6775956... -> 12.68
    assert b.days_late == 32
    assert b.periods[0].year_basis == 366
    assert b.interest == eur("12.68")


def test_year_end_splits_rate_and_year_length():
    # Given 5,000.00 EUR due 20 Dec 2024, until 10 Jan 2025
    b = compute_late_penalties(eur("5000.00"), date(2024, 12, 20), date(2025, 1, 10))
    # Then 21-31 Dec 2024: 11 days at 14.25 % / 366 = 5000 x 0.1425 x 11 / 366 = 21.4139344...
    #      1-10 Jan 2025:  10 days at 13.15 % / 365 = 5000 x 0.1315 x 10 / 365 = 18.0136986...
    #      total 39.4276330... -> 39.43 (lines 21.41 + 18.02)
    assert [(p.days, p.annual_rate, p.year_basis) for p in b.periods] == [
        (11, Decimal("14.25"), 366), (10, Decimal("13.15"), 365)]
    assert b.interest == eur("39.43")
    assert [p.amount for p in b.periods] == [eur("21.41"), eur("18.02")]


def test_seller_rate_is_floored_at_three_times_the_legal_rate():
    # Given an agreed rate of 5 % in 2024, when the legal rate (professionals) was 5.07 then 4.92
    b = compute_late_penalties(eur("10000.00"), date(2024, 6, 15), date(2024, 7, 30), seller_rate=Decimal("5"))
    # Then the floor applies: 15.21 % for 16-30 June, 14.76 % in July
    #      10000 x 0.1521 x 15 / 366 = 62.3360655...; 10000 x 0.1476 x 30 / 366 = 120.9836065...
    #      total 183.3196721... -> 183.32
    assert [(p.annual_rate, p.rate_source, p.reference_rate) for p in b.periods] == [
        (Decimal("15.21"), LEGAL_FLOOR, Decimal("5.07")), (Decimal("14.76"), LEGAL_FLOOR, Decimal("4.92"))]
    assert b.interest == eur("183.32")
    assert "legal floor applied" in " ".join(b.explanation)


def test_seller_rate_above_the_floor_is_used_as_is():
    # Given 12 % agreed in 2022-H1 (floor 3 x 0.76 = 2.28 %), 1,000.00 EUR 10 days late
    b = compute_late_penalties(eur("1000.00"), date(2022, 3, 1), date(2022, 3, 11), seller_rate=Decimal("12"))
    # Then 1000 x 0.12 x 10 / 365 = 3.2876712... -> 3.29
    assert b.periods[0].rate_source == SELLER_RATE
    assert b.interest == eur("3.29")


def test_zero_rate_years_still_charge_the_ten_points():
    # 2020: ECB MRO 0 %, so 10 %; 3,650.00 EUR for 30 days: 3650 x 0.10 x 30 / 366 = 29.9180327... -> 29.92
    b = compute_late_penalties(eur("3650.00"), date(2020, 3, 1), date(2020, 3, 31))
    assert b.periods[0].annual_rate == Decimal("10.00")
    assert b.interest == eur("29.92")


def test_not_late_means_no_penalty_and_no_indemnity():
    b = compute_late_penalties(eur("1000.00"), date(2025, 6, 15), date(2025, 6, 15))
    assert b.days_late == 0 and b.periods == () and b.interest == eur("0.00") and b.indemnity is None
    assert b.total == eur("0.00")
    early = compute_late_penalties(eur("1000.00"), date(2025, 6, 15), date(2025, 6, 1))
    assert early.days_late == 0 and early.interest.is_zero


def test_indemnity_in_another_currency_is_shown_apart():
    b = compute_late_penalties(Money(100000, "USD"), date(2025, 2, 1), date(2025, 2, 11))
    assert b.interest.currency == "USD" and b.indemnity == eur("40.00") and b.total is None
    assert b.to_dict()["total"] is None


def test_seller_indemnity_above_40_is_used():
    b = compute_late_penalties(eur("100.00"), date(2025, 2, 1), date(2025, 2, 2), indemnity=eur("60.00"))
    assert b.indemnity == eur("60.00")


def test_missing_half_year_is_a_clear_error_naming_it():
    # The shipped table stops at 2026-H1 (2026-H2 not confirmed when compiled).
    with pytest.raises(PenaltyRateUnavailable) as err:
        compute_late_penalties(eur("1000.00"), date(2026, 6, 20), date(2026, 7, 5))
    assert err.value.field == "reference_rates.ecb_mro.2026-H2"
    assert "2026-H2" in err.value.message


def test_carry_forward_marks_periods_provisional():
    rates = ReferenceRates.from_dict({**DEFAULT_REFERENCE_RATES.to_dict(), "carry_forward": True})
    b = compute_late_penalties(eur("1000.00"), date(2026, 6, 20), date(2026, 7, 5), rates=rates)
    assert [p.provisional for p in b.periods] == [False, True]
    assert b.provisional and b.to_dict()["provisional"] is True


def test_reference_rates_round_trip_and_can_be_extended_by_configuration():
    data = DEFAULT_REFERENCE_RATES.to_dict()
    assert ReferenceRates.from_dict(data) == DEFAULT_REFERENCE_RATES
    data["ecb_mro"]["2026-H2"] = "2.15"
    data["legal_rate"]["2026-H2"] = "2.60"
    rates = ReferenceRates.from_dict(data)
    b = compute_late_penalties(eur("1000.00"), date(2026, 6, 30), date(2026, 7, 1), rates=rates)
    assert b.periods[0].half_year == "2026-H2" and b.periods[0].annual_rate == Decimal("12.15")


@pytest.mark.parametrize("patch, field", [
    ({"ecb_mro": {"2025-H1": "3.15", "2026-H1": "2.15"}}, "reference_rates.ecb_mro.2025-H2"),
    ({"ecb_mro": {"2025-H3": "1"}}, "reference_rates.ecb_mro.2025-H3"),
    ({"ecb_mro": {"2025-H1": 3.15}}, "reference_rates.ecb_mro.2025-H1"),
    ({"legal_rate": {}}, "reference_rates.legal_rate"),
    ({"margin_points": "ten"}, "reference_rates.margin_points"),
    ({"carry_forward": "yes"}, "reference_rates.carry_forward"),
    ({"surprise": 1}, "reference_rates.surprise"),
])
def test_reference_rate_validation_names_the_field(patch, field):
    with pytest.raises(ValidationError) as err:
        ReferenceRates.from_dict({**DEFAULT_REFERENCE_RATES.to_dict(), **patch})
    assert err.value.field == field


def test_shipped_tables_cover_2015_to_2026_h1_without_gaps():
    keys = [k for k, _ in DEFAULT_REFERENCE_RATES.ecb_mro]
    assert keys[0] == "2015-H1" and keys[-1] == "2026-H1" and len(keys) == 23
    assert [k for k, _ in DEFAULT_REFERENCE_RATES.legal_rate] == keys
    assert half_year(date(2026, 6, 30)) == "2026-H1" and half_year(date(2026, 7, 1)) == "2026-H2"


def test_breakdown_serialises_for_the_letter_and_the_api():
    d = compute_late_penalties(eur("10000.00"), date(2025, 6, 15), date(2025, 7, 30)).to_dict()
    assert d["periods"][0] == {"from": "2025-06-16", "to": "2025-06-30", "days": 15, "half_year": "2025-H1",
                               "rate": "13.15", "rate_source": "ecb_mro_plus_margin", "reference_rate": "3.15",
                               "year_basis": 365, "exact_amount": "54.0410958904", "amount": "54.04",
                               "provisional": False}
    assert d["interest"] == "153.90" and d["indemnity"] == "40.00" and d["total"] == "193.90"


# -- properties ---------------------------------------------------------------------------------

covered = st.dates(min_value=date(2015, 1, 1), max_value=date(2025, 12, 31))  # + 180 days stays in the table
principals = st.integers(min_value=0, max_value=10**11)  # up to 1 billion EUR in cents
spans = st.integers(min_value=0, max_value=90)
seller_rates = st.one_of(st.none(), st.decimals(min_value=0, max_value=30, places=2))


@given(principals, covered, spans, spans, seller_rates)
def test_monotone_in_days(amount, due, d1, d2, rate):
    lo, hi = sorted((d1, d2))
    a = compute_late_penalties(Money(amount, "EUR"), due, due + timedelta(days=lo), seller_rate=rate)
    b = compute_late_penalties(Money(amount, "EUR"), due, due + timedelta(days=hi), seller_rate=rate)
    assert a.interest <= b.interest


@given(principals, principals, covered, spans, seller_rates)
def test_monotone_in_amount(a1, a2, due, days, rate):
    lo, hi = sorted((a1, a2))
    until = due + timedelta(days=days)
    assert (compute_late_penalties(Money(lo, "EUR"), due, until, seller_rate=rate).interest
            <= compute_late_penalties(Money(hi, "EUR"), due, until, seller_rate=rate).interest)


@given(principals, covered, spans, spans, seller_rates)
def test_additive_over_consecutive_windows_up_to_rounding(amount, due, d1, d2, rate):
    m = Money(amount, "EUR")
    first_end = due + timedelta(days=d1)
    second_end = first_end + timedelta(days=d2)
    whole = compute_late_penalties(m, due, second_end, seller_rate=rate).interest
    _, part1 = accrue_interest(m, due + timedelta(days=1), first_end, seller_rate=rate)
    _, part2 = accrue_interest(m, first_end + timedelta(days=1), second_end, seller_rate=rate)
    assert abs(whole.amount - (part1.amount + part2.amount)) <= 1


@given(principals, covered, spans, seller_rates)
def test_period_lines_add_up_to_the_total_and_stay_near_their_exact_value(amount, due, days, rate):
    b = compute_late_penalties(Money(amount, "EUR"), due, due + timedelta(days=days), seller_rate=rate)
    assert sum(p.amount.amount for p in b.periods) == b.interest.amount
    assert sum(p.days for p in b.periods) == b.days_late
    for p in b.periods:
        assert abs(p.amount.to_decimal() - p.exact_amount) <= Decimal("0.01")


@given(principals, covered, st.integers(min_value=-90, max_value=0), seller_rates)
def test_zero_when_not_late(amount, due, back, rate):
    b = compute_late_penalties(Money(amount, "EUR"), due, due + timedelta(days=back), seller_rate=rate)
    assert b.interest.is_zero and b.indemnity is None and b.periods == ()
