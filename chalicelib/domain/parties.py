"""Customers (buyers) and the seller profile.

Both are plain frozen dataclasses built through ``from_input`` / ``patched``
functions that validate every field and say which one is wrong and how to fix
it. Legal identifiers are checked with python-stdnum (check digits, SIREN/VAT
consistency), IBAN/BIC too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import identifiers
from .errors import ValidationError
from .fields import check_chars, reject_unknown
from .money import Money, check_currency
from .provider import Mandate
from .terms import EOM_DAYS_THEN_END, EOM_MODES, PaymentTerms

LANGUAGES = ("fr", "en")


def _text(data: Mapping[str, Any], key: str, *, required: bool = False, max_len: int = 200,
          prefix: str = "") -> str | None:
    value = data.get(key)
    name = prefix + key
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{name} is required", field=name)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    value = value.strip()
    if len(value) > max_len:
        raise ValidationError(f"{name} must be at most {max_len} characters", field=name)
    return check_chars(value, name)


def check_timezone(value: str, field_name: str = "timezone") -> str:
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a name too long for a file
        raise ValidationError(f"{field_name} {str(value)[:64]!r} is not an IANA time zone such as 'Europe/Paris'",
                              field=field_name) from None
    return value


def check_language(value: str, field_name: str = "language") -> str:
    if value not in LANGUAGES:
        raise ValidationError(f"{field_name} must be one of {', '.join(LANGUAGES)}", field=field_name)
    return value


@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None

    @classmethod
    def from_input(cls, data: Mapping[str, Any], prefix: str = "address.") -> Address:
        if not isinstance(data, Mapping):
            raise ValidationError(f"{prefix.rstrip('.')} must be an object", field=prefix.rstrip("."))
        reject_unknown(data, ("line1", "line2", "postal_code", "city", "country"), prefix)
        return cls(
            line1=_text(data, "line1", required=True, prefix=prefix) or "",
            line2=_text(data, "line2", prefix=prefix),
            postal_code=_text(data, "postal_code", required=True, max_len=20, prefix=prefix) or "",
            city=_text(data, "city", required=True, max_len=100, prefix=prefix) or "",
            country=identifiers.country(data.get("country") or "", prefix + "country"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"line1": self.line1, "line2": self.line2, "postal_code": self.postal_code,
                "city": self.city, "country": self.country}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Address | None:
        if not data:
            return None
        return cls(line1=data["line1"], line2=data.get("line2"), postal_code=data["postal_code"],
                   city=data["city"], country=data["country"])


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    email: str
    country: str
    language: str
    currency: str
    timezone: str
    payment_terms: PaymentTerms
    created_at: datetime
    updated_at: datetime
    phone: str | None = None
    address: Address | None = None
    vat_number: str | None = None
    siren: str | None = None
    siret: str | None = None
    credit_limit: Money | None = None
    external_ref: str | None = None
    # Set by the system, never by a client:
    stripe_customer_id: str | None = None
    mandate: Mandate | None = None
    portal_token: str | None = None
    # Credit hold set by hand (POST /customers/{id}/hold): who, when and why.
    on_hold: bool = False
    hold_reason: str | None = None
    hold_by: str | None = None
    hold_since: datetime | None = None
    version: int = 0

    # Fields a client may send on create / patch (everything else is derived).
    EDITABLE = ("name", "email", "phone", "language", "country", "address", "vat_number", "siren", "siret",
                "payment_terms", "credit_limit", "currency", "timezone", "external_ref")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "email": self.email, "phone": self.phone,
            "language": self.language, "country": self.country,
            "address": self.address.to_dict() if self.address else None,
            "vat_number": self.vat_number, "siren": self.siren, "siret": self.siret,
            "payment_terms": self.payment_terms.to_dict(),
            "credit_limit": str(self.credit_limit) if self.credit_limit is not None else None,
            "currency": self.currency, "timezone": self.timezone, "external_ref": self.external_ref,
            "stripe_customer_id": self.stripe_customer_id,
            "mandate": self.mandate.to_dict() if self.mandate else None,
            "on_hold": self.on_hold, "hold_reason": self.hold_reason, "hold_by": self.hold_by,
            "hold_since": self.hold_since.isoformat() if self.hold_since else None,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "version": self.version,
        }

    def identity(self) -> dict[str, Any]:
        """The buyer's identity as copied onto an issued invoice (never changes afterwards)."""
        return {"id": self.id, "name": self.name, "email": self.email, "country": self.country,
                "address": self.address.to_dict() if self.address else None,
                "vat_number": self.vat_number, "siren": self.siren, "siret": self.siret,
                "language": self.language}


def _validated_customer_fields(merged: Mapping[str, Any], *, jurisdiction: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["name"] = _text(merged, "name", required=True)
    out["email"] = identifiers.email(_text(merged, "email", required=True, max_len=254) or "")
    out["country"] = identifiers.country(merged.get("country") or "", "country")
    out["language"] = check_language(merged.get("language") or ("fr" if out["country"] == "FR" else "en"))
    out["currency"] = check_currency(merged.get("currency") or "EUR", "currency")
    out["timezone"] = check_timezone(merged.get("timezone") or "Europe/Paris")
    phone = _text(merged, "phone", max_len=40)
    out["phone"] = identifiers.phone(phone, out["country"]) if phone else None
    address = merged.get("address")
    out["address"] = (address if isinstance(address, Address)
                      else Address.from_input(address) if address is not None else None)
    vat = _text(merged, "vat_number", max_len=20)
    out["vat_number"] = identifiers.vat_number(vat) if vat else None
    siren = _text(merged, "siren", max_len=11)
    siret = _text(merged, "siret", max_len=17)
    out["siren"] = identifiers.siren(siren) if siren else None
    out["siret"] = identifiers.siret(siret) if siret else None
    if out["siret"] and out["siren"] and not out["siret"].startswith(out["siren"]):
        raise ValidationError("siret must start with the customer's siren (SIRET = SIREN + NIC)", field="siret")
    if out["siret"] and not out["siren"]:
        out["siren"] = out["siret"][:9]
    if out["vat_number"] and out["siren"] and not identifiers.french_vat_matches_siren(out["vat_number"],
                                                                                         out["siren"]):
        raise ValidationError("vat_number does not belong to this siren (FR VAT = FR + key + SIREN)",
                              field="vat_number")
    terms = merged.get("payment_terms")
    if isinstance(terms, PaymentTerms):
        out["payment_terms"] = terms
    elif terms is None:
        out["payment_terms"] = PaymentTerms()
    elif isinstance(terms, Mapping):
        reject_unknown(terms, ("kind", "days"), "payment_terms.")
        out["payment_terms"] = PaymentTerms(kind=terms.get("kind", "net"), days=terms.get("days", 30))
    else:
        raise ValidationError("payment_terms must be an object like {\"kind\": \"net\", \"days\": 30}",
                              field="payment_terms")
    out["payment_terms"].check_legal(jurisdiction)
    limit = merged.get("credit_limit")
    if isinstance(limit, Money):
        out["credit_limit"] = limit
    elif limit is None:
        out["credit_limit"] = None
    else:
        money = Money.parse(limit, out["currency"], field="credit_limit")
        if money.is_negative:
            raise ValidationError("credit_limit must be zero or positive", field="credit_limit")
        out["credit_limit"] = money
    if out["credit_limit"] is not None and out["credit_limit"].currency != out["currency"]:
        out["credit_limit"] = Money.parse(str(out["credit_limit"]), out["currency"], field="credit_limit")
    out["external_ref"] = _text(merged, "external_ref", max_len=64)
    return out


def new_customer(customer_id: str, data: Mapping[str, Any], *, now: datetime, jurisdiction: str = "FR") -> Customer:
    """Validate client input and build a new customer."""
    values = _validated_customer_fields(data, jurisdiction=jurisdiction)
    return Customer(id=customer_id, created_at=now, updated_at=now, version=0, **values)


def patched_customer(customer: Customer, patch: Mapping[str, Any], *, now: datetime,
                     jurisdiction: str = "FR") -> Customer:
    """Apply a partial update (JSON merge-patch semantics: null clears an optional field)."""
    current = {f: getattr(customer, f) for f in Customer.EDITABLE}
    merged = {**current, **patch}
    values = _validated_customer_fields(merged, jurisdiction=jurisdiction)
    return replace(customer, updated_at=now, **values)


# -- seller ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EarlyPaymentDiscount:
    """Escompte: ``rate`` percent off if paid within ``days`` of the issue date."""

    rate: Decimal
    days: int

    def to_dict(self) -> dict[str, Any]:
        return {"rate": str(self.rate), "days": self.days}


def _decimal(value: Any, name: str, *, places: int, minimum: Decimal, maximum: Decimal) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError(f"{name} must be a decimal string such as \"12.5\"", field=name)
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError(f"{name} {value!r} is not a decimal number", field=name) from None
    if not dec.is_finite() or dec.as_tuple().exponent < -places:  # type: ignore[operator]
        raise ValidationError(f"{name} must have at most {places} decimals", field=name)
    if not minimum <= dec <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}", field=name)
    return dec


@dataclass(frozen=True, slots=True)
class SellerProfile:
    legal_name: str
    siren: str
    vat_number: str | None
    address: Address
    iban: str
    bic: str
    email: str
    legal_form: str | None = None
    share_capital: Money | None = None
    trade_name: str | None = None
    siret: str | None = None
    rcs: str | None = None
    phone: str | None = None
    website: str | None = None
    sepa_creditor_id: str | None = None
    # Late-payment penalty rate in percent per year; None = the legal default
    # (ECB main refinancing rate + 10 points).
    late_penalty_rate: Decimal | None = None
    recovery_indemnity: Money = field(default_factory=lambda: Money(4000, "EUR"))
    early_payment_discount: EarlyPaymentDiscount | None = None
    default_payment_terms: PaymentTerms = field(default_factory=PaymentTerms)
    timezone: str = "Europe/Paris"
    jurisdiction: str = "FR"
    eom_mode: str = EOM_DAYS_THEN_END
    invoice_prefix: str = "F"
    credit_note_prefix: str = "AV"
    vat_on_debits: bool = False
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "legal_name": self.legal_name, "trade_name": self.trade_name, "legal_form": self.legal_form,
            "share_capital": str(self.share_capital) if self.share_capital else None,
            "share_capital_currency": self.share_capital.currency if self.share_capital else None,
            "siren": self.siren, "siret": self.siret, "rcs": self.rcs, "vat_number": self.vat_number,
            "address": self.address.to_dict(), "email": self.email, "phone": self.phone,
            "website": self.website, "iban": self.iban, "bic": self.bic,
            "sepa_creditor_id": self.sepa_creditor_id,
            "late_penalty_rate": str(self.late_penalty_rate) if self.late_penalty_rate is not None else None,
            "recovery_indemnity": str(self.recovery_indemnity),
            "early_payment_discount": (self.early_payment_discount.to_dict()
                                       if self.early_payment_discount else None),
            "default_payment_terms": self.default_payment_terms.to_dict(),
            "timezone": self.timezone, "jurisdiction": self.jurisdiction, "eom_mode": self.eom_mode,
            "invoice_prefix": self.invoice_prefix, "credit_note_prefix": self.credit_note_prefix,
            "vat_on_debits": self.vat_on_debits, "version": self.version,
        }

    def identity(self) -> dict[str, Any]:
        """The seller's identity as copied onto an issued invoice."""
        d = self.to_dict()
        keep = ("legal_name", "trade_name", "legal_form", "share_capital", "share_capital_currency", "siren",
                "siret", "rcs", "vat_number", "address", "email", "phone", "website", "iban", "bic",
                "sepa_creditor_id")
        return {k: d[k] for k in keep}

    SETTABLE = ("legal_name", "trade_name", "legal_form", "share_capital", "siren", "siret", "rcs", "vat_number",
                "address", "email", "phone", "website", "iban", "bic", "sepa_creditor_id", "late_penalty_rate",
                "recovery_indemnity", "early_payment_discount", "default_payment_terms", "timezone",
                "jurisdiction", "eom_mode", "invoice_prefix", "credit_note_prefix", "vat_on_debits")


def seller_from_input(data: Mapping[str, Any], *, version: int = 0) -> SellerProfile:
    """Validate a full seller profile (settings are replaced as a whole, with defaults)."""
    unknown = set(data) - set(SellerProfile.SETTABLE) - {"version", "share_capital_currency"}
    if unknown:
        raise ValidationError(f"unknown seller settings: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    jurisdiction = data.get("jurisdiction") or "FR"
    jurisdiction = jurisdiction.upper() if isinstance(jurisdiction, str) else ""
    if jurisdiction not in identifiers.COUNTRIES:
        raise ValidationError("jurisdiction must be a country code such as 'FR'", field="jurisdiction")
    siren = identifiers.siren(_text(data, "siren", required=True, max_len=11) or "")
    siret = _text(data, "siret", max_len=17)
    siret = identifiers.siret(siret) if siret else None
    if siret and not siret.startswith(siren):
        raise ValidationError("siret must start with the seller's siren", field="siret")
    vat = _text(data, "vat_number", max_len=20)
    vat = identifiers.vat_number(vat) if vat else None
    if vat and not identifiers.french_vat_matches_siren(vat, siren):
        raise ValidationError("vat_number does not belong to the seller's siren", field="vat_number")
    capital = data.get("share_capital")
    share_capital = None
    if capital is not None:
        share_capital = (capital if isinstance(capital, Money)
                         else Money.parse(capital, data.get("share_capital_currency") or "EUR",
                                          field="share_capital"))
    indemnity = data.get("recovery_indemnity", "40.00")
    indemnity_money = indemnity if isinstance(indemnity, Money) else Money.parse(indemnity, "EUR",
                                                                                 field="recovery_indemnity")
    if jurisdiction == "FR" and indemnity_money < Money(4000, "EUR"):
        raise ValidationError("recovery_indemnity cannot be below the legal 40.00 EUR in France (D441-5)",
                              field="recovery_indemnity")
    rate = data.get("late_penalty_rate")
    penalty = (rate if isinstance(rate, Decimal) or rate is None
               else _decimal(rate, "late_penalty_rate", places=4, minimum=Decimal(0), maximum=Decimal(100)))
    epd = data.get("early_payment_discount")
    discount = None
    if isinstance(epd, EarlyPaymentDiscount):
        discount = epd
    elif epd is not None:
        if not isinstance(epd, Mapping):
            raise ValidationError("early_payment_discount must be an object {\"rate\": \"2\", \"days\": 10} or null",
                                  field="early_payment_discount")
        days = epd.get("days")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 60:
            raise ValidationError("early_payment_discount.days must be a whole number between 1 and 60",
                                  field="early_payment_discount.days")
        discount = EarlyPaymentDiscount(
            rate=_decimal(epd.get("rate"), "early_payment_discount.rate", places=2, minimum=Decimal("0.01"),
                          maximum=Decimal(50)), days=days)
    terms = data.get("default_payment_terms")
    default_terms = (terms if isinstance(terms, PaymentTerms)
                     else PaymentTerms.from_dict(terms) if isinstance(terms, Mapping) else PaymentTerms())
    default_terms.check_legal(jurisdiction)
    eom_mode = data.get("eom_mode") or EOM_DAYS_THEN_END
    if eom_mode not in EOM_MODES:
        raise ValidationError(f"eom_mode must be one of {', '.join(EOM_MODES)}", field="eom_mode")
    prefixes = {}
    for key, default in (("invoice_prefix", "F"), ("credit_note_prefix", "AV")):
        value = data.get(key) or default
        if not isinstance(value, str) or not value.isalnum() or len(value) > 6:
            raise ValidationError(f"{key} must be 1 to 6 letters or digits", field=key)
        prefixes[key] = value.upper()
    if prefixes["invoice_prefix"] == prefixes["credit_note_prefix"]:
        raise ValidationError("credit_note_prefix must differ from invoice_prefix (separate gapless series)",
                              field="credit_note_prefix")
    vat_on_debits = data.get("vat_on_debits", False)
    if not isinstance(vat_on_debits, bool):
        raise ValidationError("vat_on_debits must be true or false", field="vat_on_debits")
    phone = _text(data, "phone", max_len=40)
    address = data.get("address")
    return SellerProfile(
        legal_name=_text(data, "legal_name", required=True) or "",
        trade_name=_text(data, "trade_name"),
        legal_form=_text(data, "legal_form", max_len=60),
        share_capital=share_capital,
        siren=siren, siret=siret, rcs=_text(data, "rcs", max_len=80), vat_number=vat,
        address=address if isinstance(address, Address) else Address.from_input(address or {}),
        email=identifiers.email(_text(data, "email", required=True, max_len=254) or ""),
        phone=identifiers.phone(phone, "FR") if phone else None,
        website=_text(data, "website"),
        iban=identifiers.iban(_text(data, "iban", required=True, max_len=42) or ""),
        bic=identifiers.bic(_text(data, "bic", required=True, max_len=11) or ""),
        sepa_creditor_id=_text(data, "sepa_creditor_id", max_len=35),
        late_penalty_rate=penalty,
        recovery_indemnity=indemnity_money,
        early_payment_discount=discount,
        default_payment_terms=default_terms,
        timezone=check_timezone(data.get("timezone") or "Europe/Paris"),
        jurisdiction=jurisdiction,
        eom_mode=eom_mode,
        invoice_prefix=prefixes["invoice_prefix"],
        credit_note_prefix=prefixes["credit_note_prefix"],
        vat_on_debits=vat_on_debits,
        version=version,
    )


def seller_field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(SellerProfile))
