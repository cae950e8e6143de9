"""Validation of legal and banking identifiers (python-stdnum, phonenumbers).

The checking libraries are imported inside the functions: they cost ~70 ms to
import and only the write paths that create or edit parties need them.
"""

from __future__ import annotations

import re

from .errors import ValidationError

# ISO 3166-1 alpha-2 codes.
COUNTRIES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW
BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI
FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN
IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF
PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE
YT ZA ZM ZW
""".split())

# EU member states (VAT area); Greece uses the EL prefix for VAT numbers.
EU_COUNTRIES = frozenset("AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split())

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def country(value: str, field: str = "country") -> str:
    code = value.strip().upper() if isinstance(value, str) else ""
    if code not in COUNTRIES:
        raise ValidationError(f"{field} must be an ISO 3166 alpha-2 country code such as 'FR'", field=field)
    return code


def email(value: str, field: str = "email") -> str:
    value = value.strip()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValidationError(f"{field} is not a valid email address (expected name@example.com)", field=field)
    return value


def phone(value: str, default_country: str, field: str = "phone") -> str:
    """Normalise to E.164 (+33612345678) so SMS providers accept it."""
    import phonenumbers

    try:
        parsed = phonenumbers.parse(value, default_country or None)
    except phonenumbers.NumberParseException:
        raise ValidationError(
            f"{field} {value!r} is not a phone number: use the international format, e.g. +33 6 12 34 56 78",
            field=field) from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(
            f"{field} {value!r} is not a valid phone number for its country: use the international format, "
            "e.g. +33 6 12 34 56 78", field=field)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def siren(value: str, field: str = "siren") -> str:
    from stdnum.fr import siren as _siren

    try:
        return str(_siren.validate(value))
    except Exception:
        raise ValidationError(f"{field} {value!r} is not a valid SIREN (9 digits with a Luhn check digit)",
                              field=field) from None


def siret(value: str, field: str = "siret") -> str:
    from stdnum.fr import siret as _siret

    try:
        return str(_siret.validate(value))
    except Exception:
        raise ValidationError(f"{field} {value!r} is not a valid SIRET (14 digits: SIREN + NIC, Luhn checked)",
                              field=field) from None


def vat_number(value: str, field: str = "vat_number") -> str:
    """Validate a VAT identifier with its country prefix (FR, DE, EL, GB, CH...)."""
    from stdnum.eu import vat as eu_vat
    from stdnum.util import get_cc_module

    compact = re.sub(r"[\s.\-]", "", value or "").upper()
    if len(compact) < 4 or not compact[:2].isalpha():
        raise ValidationError(f"{field} must start with its 2-letter country prefix, e.g. FR40303265045",
                              field=field)
    prefix = compact[:2]
    try:
        if prefix in EU_COUNTRIES | {"EL", "XI"}:
            return str(eu_vat.validate(compact))
        module = get_cc_module(prefix.lower(), "vat")
        if module is None:
            raise ValueError(prefix)
        number = module.validate(compact[2:] if not compact[2:3].isalpha() else compact)
        return prefix + str(number).removeprefix(prefix)
    except Exception:
        raise ValidationError(f"{field} {value!r} is not a valid VAT number (its check digits do not match)",
                              field=field) from None


def vat_country(vat: str) -> str:
    prefix = vat[:2].upper()
    return "GR" if prefix == "EL" else "GB" if prefix == "XI" else prefix


def french_vat_matches_siren(vat: str, siren_value: str) -> bool:
    """A French VAT number is FR + 2-digit key + SIREN."""
    return not vat.upper().startswith("FR") or vat[4:] == siren_value


def iban(value: str, field: str = "iban") -> str:
    from stdnum import iban as _iban

    try:
        return str(_iban.validate(value))
    except Exception:
        raise ValidationError(f"{field} is not a valid IBAN (country, check digits and length are verified)",
                              field=field) from None


def bic(value: str, field: str = "bic") -> str:
    from stdnum import bic as _bic

    try:
        return str(_bic.validate(value))
    except Exception:
        raise ValidationError(f"{field} {value!r} is not a valid BIC (8 or 11 characters, e.g. BNPAFRPPXXX)",
                              field=field) from None
