from datetime import date, datetime, timezone

import pytest

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.parties import new_customer, patched_customer, seller_from_input
from chalicelib.domain.terms import EOM_END_THEN_DAYS, PaymentTerms, check_due_date_legal
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT

NOW = datetime(2026, 1, 15, tzinfo=timezone.utc)


@pytest.mark.parametrize("kind,days,issue,mode,due", [
    ("net", 30, date(2026, 1, 15), None, date(2026, 2, 14)),
    ("net", 0, date(2026, 1, 15), None, date(2026, 1, 15)),
    ("end_of_month", 45, date(2026, 1, 15), None, date(2026, 3, 31)),      # 15 Jan + 45 d = 1 Mar -> 31 Mar
    ("end_of_month", 45, date(2026, 1, 15), EOM_END_THEN_DAYS, date(2026, 3, 17)),  # 31 Jan + 45 d
    ("end_of_month", 30, date(2026, 1, 31), None, date(2026, 3, 31)),      # 31 Jan + 30 = 2 Mar -> 31 Mar
    ("end_of_month", 0, date(2024, 2, 10), None, date(2024, 2, 29)),       # leap year
])
def test_due_dates(kind, days, issue, mode, due):
    terms = PaymentTerms(kind, days)
    assert (terms.due_date(issue, mode) if mode else terms.due_date(issue)) == due


def test_french_caps():
    PaymentTerms("net", 60).check_legal("FR")
    PaymentTerms("end_of_month", 45).check_legal("FR")
    with pytest.raises(ValidationError, match="legal maximum of 60 days"):
        PaymentTerms("net", 61).check_legal("FR")
    with pytest.raises(ValidationError, match="45 days end of month"):
        PaymentTerms("end_of_month", 46).check_legal("FR")
    PaymentTerms("net", 90).check_legal("DE")  # another jurisdiction set by the seller
    with pytest.raises(ValidationError):
        check_due_date_legal(date(2026, 1, 15), date(2026, 4, 15), "FR")


def test_customer_validation_and_normalisation():
    c = new_customer("cus_1", CUSTOMER_INPUT, now=NOW)
    assert c.phone == "+33612345678" and c.vat_number == "FR96901876540" and c.siren == "901876540"
    assert c.language == "fr" and c.timezone == "Europe/Paris"
    with_siret = new_customer("cus_2", {**CUSTOMER_INPUT, "siren": None, "siret": "81234567600017",
                                        "vat_number": "FR19812345676"}, now=NOW)
    assert with_siret.siren == "812345676"


@pytest.mark.parametrize("patch,field", [
    ({"vat_number": "FR00901876540"}, "vat_number"),
    ({"vat_number": "FR19812345676"}, "vat_number"),      # valid, but another company's SIREN
    ({"siren": "123456789"}, "siren"),
    ({"siret": "81234567600018"}, "siret"),
    ({"email": "not-an-email"}, "email"),
    ({"phone": "12"}, "phone"),
    ({"country": "XX"}, "country"),
    ({"language": "de"}, "language"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"payment_terms": {"kind": "net", "days": 90}}, "payment_terms.days"),
    ({"credit_limit": "-1.00"}, "credit_limit"),
    ({"address": {"line1": "x", "city": "y", "postal_code": "1", "country": "FR", "floor": 3}}, "address.floor"),
])
def test_customer_errors_name_the_field(patch, field):
    with pytest.raises(ValidationError) as err:
        new_customer("cus_1", {**CUSTOMER_INPUT, **patch}, now=NOW)
    assert err.value.field == field


def test_patch_clears_optional_fields_with_null():
    c = new_customer("cus_1", CUSTOMER_INPUT, now=NOW)
    patched = patched_customer(c, {"phone": None, "name": "Martin & Fils"}, now=NOW)
    assert patched.phone is None and patched.name == "Martin & Fils" and patched.email == c.email


def test_seller_profile():
    s = seller_from_input(SELLER_INPUT)
    assert s.iban == "FR7630006000011234567890189" and str(s.recovery_indemnity) == "40.00"
    assert s.early_payment_discount and s.early_payment_discount.days == 10
    with pytest.raises(ValidationError) as err:
        seller_from_input({**SELLER_INPUT, "iban": "FR7630006000011234567890188"})
    assert err.value.field == "iban"
    with pytest.raises(ValidationError, match="40.00 EUR"):
        seller_from_input({**SELLER_INPUT, "recovery_indemnity": "10.00"})
    with pytest.raises(ValidationError) as err:
        seller_from_input({**SELLER_INPUT, "bic": "NOTABIC"})
    assert err.value.field == "bic"
