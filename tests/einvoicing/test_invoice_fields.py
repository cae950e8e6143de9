"""The e-invoicing draft fields of the invoice domain: parsed, kept across patches, refused with the field named."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from chalicelib.domain.errors import InvalidTransition, ValidationError
from chalicelib.domain.invoice import CREDIT_NOTE, PAID, VOID, new_draft, patched_draft
from chalicelib.domain.money import Money
from chalicelib.domain.terms import PaymentTerms

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
LINE = {"description": "Conseil", "quantity": "2", "unit_price": "100.00", "vat_rate": "20"}


def draft(**extra):
    return new_draft("inv_1", {"customer_id": "cus_1", "lines": [LINE], **extra}, customer_currency="EUR", now=NOW)


def issue(invoice):
    return invoice.issue(number="F2026-000001", series="F#2026", issue_date=NOW.date(), terms=PaymentTerms(),
                         eom_mode="days_then_end_of_month", jurisdiction="FR", seller={}, buyer={}, now=NOW)


def test_reform_fields_are_parsed_and_survive_a_patch():
    d = draft(operation_category="goods", currency="USD", eur_exchange_rate="0.92",
              deliver_to={"name": "Entrepôt", "address": {"line1": "1 Hafenstraße", "postal_code": "20457",
                                                          "city": "Hamburg", "country": "de"}},
              deposit_invoice_ids=["inv_dep1"])
    assert d.operation_category == "goods"
    assert d.eur_exchange_rate == Decimal("0.92")
    assert d.deliver_to["country"] == "DE" and d.deliver_to["address"]["city"] == "Hamburg"
    assert d.deposit_invoice_ids == ("inv_dep1",)
    # a patch of something else keeps them
    patched = patched_draft(d, {"note": "Merci"}, now=NOW)
    assert (patched.operation_category, patched.eur_exchange_rate, patched.deliver_to, patched.deposit_invoice_ids) \
        == (d.operation_category, d.eur_exchange_rate, d.deliver_to, d.deposit_invoice_ids)
    body = patched.to_dict()
    assert body["eur_exchange_rate"] == "0.92" and body["deposit_invoice_ids"] == ["inv_dep1"]


@pytest.mark.parametrize("extra, field", [
    ({"operation_category": "food"}, "operation_category"),
    ({"eur_exchange_rate": "0.9"}, "eur_exchange_rate"),                  # the invoice is in EUR
    ({"currency": "USD", "eur_exchange_rate": "-1"}, "eur_exchange_rate"),
    ({"currency": "USD", "eur_exchange_rate": 0.9}, "eur_exchange_rate"),  # a JSON number
    ({"deliver_to": {"name": "X"}}, "deliver_to.country"),
    ({"deliver_to": {"country": "ZZ"}}, "deliver_to.country"),
    ({"deliver_to": "Hamburg"}, "deliver_to"),
    ({"deposit_invoice_ids": ["inv_a", "inv_a"]}, "deposit_invoice_ids"),
    ({"deposit_invoice_ids": "inv_a"}, "deposit_invoice_ids"),
])
def test_bad_reform_fields_name_the_field(extra, field):
    with pytest.raises(ValidationError) as err:
        draft(**extra)
    assert err.value.field == field


def test_a_final_invoice_deducts_paid_deposits():
    invoice = issue(draft())                                   # 240.00 with VAT
    final = invoice.with_prepaid(Money(10000, "EUR"), NOW)
    assert final.totals.prepaid == Money(10000, "EUR") and str(final.amount_due) == "140.00"
    assert invoice.with_prepaid(Money(24000, "EUR"), NOW).status == PAID
    with pytest.raises(ValidationError):
        invoice.with_prepaid(Money(24001, "EUR"), NOW)


def test_an_applied_credit_note_has_nothing_due():
    from dataclasses import replace

    credit = issue(replace(draft(), kind=CREDIT_NOTE)).as_applied_credit_note(NOW)
    assert credit.status == PAID and credit.due_date is None and credit.amount_due.is_zero
    with pytest.raises(InvalidTransition):
        issue(draft()).as_applied_credit_note(NOW)
    # and the credited invoice is void when nothing was paid on it
    invoice = issue(draft())
    assert invoice.apply_credit(invoice.amount_due, NOW).status == VOID
