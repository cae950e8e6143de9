from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.errors import CurrencyError, ValidationError
from chalicelib.domain.money import Money, check_currency, minor_units, money_sum

amounts = st.integers(min_value=-10**12, max_value=10**12)


def test_parse_exact_minor_units():
    assert Money.parse("1234.50", "EUR") == Money(123450, "EUR")
    assert Money.parse("1234.5", "EUR") == Money(123450, "EUR")
    assert Money.parse("1200", "JPY") == Money(1200, "JPY")
    assert str(Money(123450, "EUR")) == "1234.50"
    assert str(Money(-5, "EUR")) == "-0.05"
    assert str(Money(1200, "JPY")) == "1200"


@pytest.mark.parametrize("value", ["10.005", "1.999"])
def test_parse_refuses_more_decimals_than_the_currency(value):
    with pytest.raises(ValidationError, match="more than 2 decimals"):
        Money.parse(value, "EUR")


@pytest.mark.parametrize("value", [1.5, None, True, "abc", "NaN", "Infinity", [1]])
def test_parse_refuses_floats_and_junk(value):
    with pytest.raises(ValidationError):
        Money.parse(value, "EUR")


def test_three_decimal_currencies_are_refused_clearly():
    with pytest.raises(CurrencyError, match="KWD has 3 decimals"):
        minor_units("KWD")
    with pytest.raises(CurrencyError, match="unknown currency"):
        check_currency("XYZ")
    assert check_currency("eur") == "EUR"


def test_mixing_currencies_is_refused():
    with pytest.raises(CurrencyError):
        Money(100, "EUR") + Money(100, "USD")
    with pytest.raises(CurrencyError):
        Money(100, "EUR") < Money(100, "USD")


def test_float_amount_is_a_type_error():
    with pytest.raises(TypeError):
        Money(1.5, "EUR")  # type: ignore[arg-type]


@given(st.lists(amounts, max_size=50))
def test_sum_is_exact(values):
    total = money_sum((Money(v, "EUR") for v in values), "EUR")
    assert total.amount == sum(values)


@given(amounts)
def test_decimal_round_trip(value):
    m = Money(value, "EUR")
    assert Money.parse(str(m), "EUR") == m
    assert m.to_decimal() == Decimal(value) / 100


@given(amounts, st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=20).filter(any))
def test_allocate_loses_no_cent(value, weights):
    parts = Money(value, "EUR").allocate(weights)
    assert sum(p.amount for p in parts) == value
    assert len(parts) == len(weights)
    for part, weight in zip(parts, weights):
        if weight == 0:
            assert part.amount == 0


def test_multiply_rounds_half_up_once():
    assert Money(1000, "EUR").multiply(Decimal("0.055")) == Money(55, "EUR")
    assert Money(1, "EUR").multiply(Decimal("0.5")) == Money(1, "EUR")  # 0.005 -> 0.01
    assert Money(-1, "EUR").multiply(Decimal("0.5")) == Money(-1, "EUR")  # half away from zero
