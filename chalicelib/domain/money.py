"""Money: an integer count of minor units plus an ISO 4217 currency.

Floats never touch money. ``Decimal`` appears only at the edges (parsing a JSON
string such as ``"1234.50"``, writing XML or PDF), through :meth:`Money.parse`
and :meth:`Money.to_decimal`. Arithmetic between different currencies raises
:class:`CurrencyError` instead of silently producing nonsense.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, Sequence

from .errors import CurrencyError, ValidationError

# ISO 4217 active codes and their number of minor units (2026 list; BGN and HRK
# were replaced by EUR). Codes with more than two decimals are listed so that we
# can refuse them with a precise message rather than "unknown currency".
_MINOR_UNITS: dict[str, int] = {
    **{c: 2 for c in (
        "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP "
        "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR "
        "FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR "
        "KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV "
        "MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR "
        "SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH "
        "USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
    ).split()},
    **{c: 0 for c in "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()},
    **{c: 3 for c in "BHD IQD JOD KWD LYD OMR TND".split()},
    **{c: 4 for c in "CLF UYW".split()},
}

MAX_SUPPORTED_DECIMALS = 2
# The largest amount the ledger holds: |minor units| < 10**15 (10 000 000 000 000.00 EUR). Parsed amounts,
# invoice line nets and totals are all bounded by it, so every stored amount fits the documents and the
# DynamoDB number type, and no arithmetic on them ever leaves Decimal's default precision.
MAX_MINOR_DIGITS = 15
MAX_MINOR = 10 ** MAX_MINOR_DIGITS

# ASCII digits only: Decimal() would also take "1_000", "١٢" or " NaN", none of which is an amount.
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
MAX_DECIMAL_TEXT = 64


def parse_decimal_text(value: object, field: str, *, places: int, int_digits: int,
                       example: str = "1234.50") -> Decimal:
    """An exact decimal from client input, checked *before* any arithmetic.

    ``value`` must be a string (or an int) of ASCII digits, optionally signed and with an exponent;
    at most ``places`` significant decimals and at most ``int_digits`` digits before the point
    (``abs(value) < 10 ** int_digits``). Exponents are checked on the digits themselves, never by
    scaling or normalising (which overflow or underflow on "1e999999" or "1E-9999999"). The result
    is in plain notation (never ``1E+3``), with at most ``places`` decimals; zero is always ``0``
    (no "-0"). Raises :class:`ValidationError` naming ``field``.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError(
            f"{field} must be a decimal string such as \"{example}\" (numbers in JSON are refused "
            "to avoid binary rounding)", field=field)
    text = (value if isinstance(value, str) else str(value) if abs(value) < 10 ** 40 else "x" * 99).strip()
    if len(text) > MAX_DECIMAL_TEXT:
        raise ValidationError(f"{field} is too long for a number: send at most {MAX_DECIMAL_TEXT} characters "
                              f"such as \"{example}\"", field=field)
    if not _DECIMAL_TEXT.fullmatch(text):
        raise ValidationError(f"{field} {text!r} is not a decimal number such as \"{example}\"", field=field)
    if abs(int(text.lower().partition("e")[2] or "0")) > 1000:
        # Astronomically large or small, or zero written absurdly: none of them is an amount.
        raise ValidationError(f"{field} {text} has an out-of-range exponent: write the number plainly, "
                              f"such as \"{example}\"", field=field)
    sign, digits, exponent = Decimal(text).as_tuple()  # exact: no context, no rounding
    assert isinstance(exponent, int)
    digits = tuple(digits)
    while len(digits) > 1 and digits[0] == 0:
        digits = digits[1:]
    if digits == (0,):
        return Decimal(0)
    stripped, exp = digits, exponent
    while stripped[-1] == 0:
        stripped, exp = stripped[:-1], exp + 1
    if -exp > places:
        raise ValidationError(f"{field} {text} has more than {places} decimals" if places else
                              f"{field} {text} must be a whole number", field=field)
    if len(stripped) + exp > int_digits:
        raise ValidationError(f"{field} {text} is too large: at most {int_digits} digits before the "
                              "decimal point", field=field)
    target = min(max(exponent, -places), 0)
    return Decimal((sign, stripped + (0,) * (exp - target), target))


def minor_units(currency: str) -> int:
    """Number of decimals of ``currency``; raises if unknown or not supported yet."""
    code = currency.upper() if isinstance(currency, str) else None
    if code not in _MINOR_UNITS:
        raise CurrencyError(
            f"unknown currency {currency!r}: use an ISO 4217 code such as 'EUR' or 'USD'",
            field="currency",
        )
    units = _MINOR_UNITS[code]
    if units > MAX_SUPPORTED_DECIMALS:
        raise CurrencyError(
            f"currency {code} has {units} decimals, which is not supported yet: "
            "invoice in a currency with at most 2 decimals (e.g. EUR, USD)",
            field="currency",
        )
    return units


def check_currency(currency: object, field: str = "currency") -> str:
    """Validate a currency code from input and return it upper-cased."""
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise CurrencyError(f"{field} must be a 3-letter ISO 4217 code such as 'EUR'", field=field)
    code = currency.upper()
    try:
        minor_units(code)
    except CurrencyError as exc:
        raise CurrencyError(exc.message, field=field) from None
    return code


def round_to_minor(value: Decimal, currency: str) -> int:
    """Round a decimal amount half-up (EN 16931 / commercial rounding) to minor units."""
    exponent = minor_units(currency)
    scaled = (value * (Decimal(10) ** exponent)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)


@dataclass(frozen=True, slots=True, order=False)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"Money.amount must be an int of minor units, got {type(self.amount).__name__}")
        minor_units(self.currency)

    # -- construction -------------------------------------------------------------
    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, value: object, currency: str, *, field: str = "amount") -> Money:
        """Parse a decimal string ("1234.50") into exact minor units.

        More decimals than the currency allows is an error, not a silent rounding:
        a payment of "10.005" EUR is a typo someone must fix.
        """
        exponent = minor_units(currency)
        dec = parse_decimal_text(value, field, places=exponent, int_digits=MAX_MINOR_DIGITS - exponent)
        # Exact: at most MAX_MINOR_DIGITS significant digits, well within Decimal's precision.
        scaled = dec.scaleb(exponent)
        return cls(int(scaled), currency.upper())

    @classmethod
    def of_decimal(cls, value: Decimal, currency: str) -> Money:
        """Money from a computed decimal, rounded half-up to the currency's minor unit."""
        return cls(round_to_minor(value, currency), currency)

    # -- arithmetic ---------------------------------------------------------------
    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyError(
                f"cannot combine {self.currency} and {other.currency} amounts: convert one first")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def multiply(self, factor: Decimal) -> Money:
        """Multiply by a decimal factor (a rate, a ratio), rounding half-up once."""
        return Money.of_decimal(self.to_decimal() * factor, self.currency)

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        """Split into parts proportional to integer ``weights`` that add up exactly.

        Largest-remainder method: no cent is created or lost.
        """
        total_weight = sum(weights)
        if total_weight <= 0 or any(w < 0 for w in weights):
            raise ValueError("weights must be non-negative and not all zero")
        sign = -1 if self.amount < 0 else 1
        amount = abs(self.amount)
        shares = [amount * w // total_weight for w in weights]
        remainders = sorted(range(len(weights)),
                            key=lambda i: (amount * weights[i]) % total_weight, reverse=True)
        for i in remainders[: amount - sum(shares)]:
            shares[i] += 1
        return [Money(sign * s, self.currency) for s in shares]

    # -- predicates & output ------------------------------------------------------
    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    def to_decimal(self) -> Decimal:
        exponent = minor_units(self.currency)
        return Decimal(self.amount).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))

    def __str__(self) -> str:
        return str(self.to_decimal())

    def __repr__(self) -> str:
        return f"Money({self} {self.currency})"


def money_sum(amounts: Iterable[Money], currency: str) -> Money:
    """Sum Money values of one currency; an empty iterable gives zero."""
    total = Money.zero(currency)
    for m in amounts:
        total = total + m
    return total
