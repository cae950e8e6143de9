from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.errors import InvalidTransition, ValidationError
from chalicelib.domain.invoice import (DRAFT, OPEN, PAID, VOID, compute_totals, format_number, new_draft,
                                       patched_draft)
from chalicelib.domain.money import Money
from chalicelib.domain.terms import PaymentTerms

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)


def draft(lines, **extra):
    return new_draft("inv_1", {"customer_id": "cus_1", "lines": lines, **extra}, customer_currency="EUR", now=NOW)


def issued(lines, **extra):
    return draft(lines, **extra).issue(number="F2026-000001", series="F#2026", issue_date=date(2026, 3, 10),
                                       terms=PaymentTerms("net", 30), eom_mode="days_then_end_of_month",
                                       jurisdiction="FR", seller={}, buyer={}, now=NOW)


def L(q="1", p="100.00", rate="20", **extra):
    return {"description": "x", "quantity": q, "unit_price": p, "vat_rate": rate, **extra}


def test_en16931_rounding_line_then_vat_per_rate():
    # Given three lines at two rates, with prices that do not round evenly
    inv = draft([L("3", "33.3333"), L("1", "0.005"), L("2.5", "10.1", rate="5.5")])
    t = inv.totals
    # line nets: 99.9999 -> 100.00 ; 0.005 -> 0.01 ; 25.25
    assert [str(line.net_amount("EUR")) for line in inv.lines] == ["100.00", "0.01", "25.25"]
    # VAT per rate on the sum of nets: 20% of 100.01 = 20.002 -> 20.00 ; 5.5% of 25.25 = 1.38875 -> 1.39
    assert {(b.category, str(b.rate)): str(b.tax_amount) for b in t.vat_breakdown} == {
        ("S", "20"): "20.00", ("S", "5.5"): "1.39"}
    assert (str(t.tax_exclusive), str(t.vat_total), str(t.total)) == ("125.26", "21.39", "146.65")


def test_allowances_and_charges_change_the_vat_base():
    inv = draft([L("1", "1000.00")], allowances_charges=[
        {"type": "allowance", "amount": "100.00", "reason": "Remise fidélité", "vat_rate": "20"},
        {"type": "charge", "amount": "15.00", "reason": "Frais de port", "vat_rate": "20"}])
    t = inv.totals
    assert (str(t.allowance_total), str(t.charge_total), str(t.tax_exclusive)) == ("100.00", "15.00", "915.00")
    assert str(t.vat_total) == "183.00" and str(t.total) == "1098.00"


decimals = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("10000"), places=6)
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("100000"), places=4)
rates = st.sampled_from(["20", "10", "5.5", "2.1", "8.5"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(decimals, prices, rates), min_size=1, max_size=25))
def test_totals_add_up_exactly(rows):
    lines = [L(str(q), str(p), r) for q, p, r in rows]
    t = draft(lines).totals
    nets = [Money.of_decimal(q * p, "EUR") for q, p, _ in rows]
    assert t.line_total.amount == sum(n.amount for n in nets)
    assert t.tax_exclusive.amount == sum(b.taxable_amount.amount for b in t.vat_breakdown)
    assert t.vat_total.amount == sum(b.tax_amount.amount for b in t.vat_breakdown)
    assert t.total.amount == t.tax_exclusive.amount + t.vat_total.amount
    for b in t.vat_breakdown:  # BR-CO-17: tax = basis x rate, rounded once
        expected = (b.taxable_amount.to_decimal() * b.rate / 100).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert b.tax_amount.to_decimal() == expected
    # no drift: the order of lines does not change anything
    assert draft(list(reversed(lines))).totals.total == t.total


@pytest.mark.parametrize("bad,field", [
    (L(q="-1"), "lines[0].quantity"),
    (L(q="0"), "lines[0].quantity"),
    (L(p="-5"), "lines[0].unit_price"),
    (L(q="1.1234567"), "lines[0].quantity"),
    (L(p="1.12345"), "lines[0].unit_price"),
    (L(q=1.5), "lines[0].quantity"),
    (L(rate="0"), "lines[0].vat_category"),
    (L(rate="0", vat_category="E"), "lines[0].exemption_reason"),
    (L(rate="20", vat_category="Z"), "lines[0].vat_rate"),
    ({**L(), "colour": "red"}, "lines[0].colour"),
    ({"quantity": "1", "unit_price": "1", "vat_rate": "20"}, "lines[0].description"),
])
def test_bad_lines_name_the_field(bad, field):
    with pytest.raises(ValidationError) as err:
        draft([bad])
    assert err.value.field == field


def test_zero_lines_and_unknown_currency_are_refused():
    with pytest.raises(ValidationError, match="at least one line"):
        draft([])
    with pytest.raises(ValidationError, match="unknown currency"):
        draft([L()], currency="ABC")


def test_exempt_categories_get_a_default_reason_where_the_law_gives_one():
    inv = draft([L(rate="0", vat_category="AE"), L(rate="0", vat_category="K")])
    codes = {b.category: b.exemption_code for b in inv.totals.vat_breakdown}
    assert codes == {"AE": "VATEX-EU-AE", "K": "VATEX-EU-IC"}


def test_status_machine():
    inv = issued([L("1", "100.00")])
    assert inv.status == OPEN and str(inv.amount_due) == "120.00" and inv.due_date == date(2026, 4, 9)
    with pytest.raises(InvalidTransition):
        inv.issue(number="F2026-000002", series="F#2026", issue_date=date(2026, 3, 10), terms=PaymentTerms(),
                  eom_mode="days_then_end_of_month", jurisdiction="FR", seller={}, buyer={}, now=NOW)
    with pytest.raises(InvalidTransition, match="never edited"):
        patched_draft(inv, {"note": "x"}, now=NOW)
    partly = inv.apply_payment(Money(5000, "EUR"), NOW)
    assert partly.status == OPEN and str(partly.amount_due) == "70.00"
    with pytest.raises(ValidationError, match="exceeds"):
        partly.apply_payment(Money(7001, "EUR"), NOW)
    with pytest.raises(ValidationError, match="in USD but"):
        partly.apply_payment(Money(100, "USD"), NOW)
    paid = partly.apply_payment(Money(7000, "EUR"), NOW)
    assert paid.status == PAID and paid.amount_due.is_zero and paid.paid_at == NOW
    reopened = paid.reverse_payment(Money(2000, "EUR"), NOW)  # a refund reopens it
    assert reopened.status == OPEN and str(reopened.amount_due) == "20.00" and reopened.paid_at is None
    with pytest.raises(ValidationError):
        reopened.reverse_payment(Money(10001, "EUR"), NOW)


def test_full_credit_note_voids_an_unpaid_invoice():
    inv = issued([L("1", "100.00")])
    voided = inv.apply_credit(Money(12000, "EUR"), NOW)
    assert voided.status == VOID and voided.amount_due.is_zero
    with pytest.raises(InvalidTransition):
        voided.apply_payment(Money(1, "EUR"), NOW)


def test_overdue_is_a_calendar_comparison():
    inv = issued([L()])
    assert not inv.is_overdue(date(2026, 4, 9))
    assert inv.is_overdue(date(2026, 4, 10)) and inv.days_overdue(date(2026, 4, 12)) == 3
    assert draft([L()]).status == DRAFT and not draft([L()]).is_overdue(date(2030, 1, 1))


def test_explicit_due_date_beyond_the_legal_cap_is_refused():
    late = draft([L()], due_date="2026-06-30")
    with pytest.raises(ValidationError, match="legal maximum"):
        late.issue(number="F2026-000001", series="F#2026", issue_date=date(2026, 3, 10), terms=PaymentTerms(),
                   eom_mode="days_then_end_of_month", jurisdiction="FR", seller={}, buyer={}, now=NOW)


def test_number_format():
    assert format_number("F", 2026, 1) == "F2026-000001"
    assert format_number("AV", 2027, 123456) == "AV2027-123456"


def test_totals_of_zero_decimal_currency():
    t = compute_totals(draft([L("3", "333")], currency="JPY").lines, (), "JPY")
    assert str(t.total) == "1199"  # 999 + 199.8 -> 200 VAT
