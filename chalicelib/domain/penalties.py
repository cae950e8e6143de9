"""French late-payment penalties (Code de commerce L441-10 II, D441-5).

What the law says, and how it is computed here:

- Penalties are due, without any reminder, from the day after the due date shown on
  the invoice. They accrue here on ``principal`` (the invoice's amount due, VAT
  included) for every calendar day from ``due_date + 1`` to ``until`` included: an
  invoice due on 15 June and paid on 30 July is 45 days late.
- Default rate (no rate agreed): the ECB main refinancing operations (MRO) rate
  + 10 percentage points, where the MRO rate is the one *in force on 1 January* for
  days in January-June and the one *in force on 1 July* for days in July-December.
- An agreed rate (``SellerProfile.late_penalty_rate``) may be lower or higher, but
  never below three times the legal interest rate (taux de l'intérêt légal, "tous les
  autres cas" i.e. professional creditors), which changes every half-year. When the
  agreed rate is below that floor in some half-year, the floor applies to the days of
  that half-year (the period says so).
- Day count: actual/actual by calendar year. A day's interest is
  ``principal x rate / 365``, or ``/ 366`` when the day falls in a leap year. Days are
  grouped into periods (one per half-year, so each period has one rate and one year
  length); the exact decimal interest of all periods is summed and rounded half-up
  **once** to the currency's minor unit. The amount shown per period is the
  difference of the rounded running totals, so the period lines always add up to
  the total exactly, and each line is within one minor unit of its own exact value.
- Plus a fixed recovery indemnity per late invoice (D441-5: 40 EUR; a seller may set
  more). It is not interest: it is shown apart and not multiplied by anything.

Reference rates are data (:class:`ReferenceRates`, JSON via ``to_dict``/``from_dict``)
so that an admin adds each new half-year without a deploy. A half-year missing from
the table raises :class:`PenaltyRateUnavailable` naming it, unless the timeline is
configured with ``carry_forward=True``, in which case the latest known rate is used
and the period is flagged ``provisional``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Mapping

from .errors import ValidationError
from .fields import reject_unknown
from .money import Money, minor_units, round_to_minor

# -- reference data -----------------------------------------------------------------------------
# ECB main refinancing operations rate (percent) in force on 1 January (H1) and 1 July (H2).
# Source: ECB key interest rates, changes effective 10 Sep 2014 0.05; 16 Mar 2016 0.00;
# 27 Jul 2022 0.50; 14 Sep 2022 1.25; 2 Nov 2022 2.00; 21 Dec 2022 2.50; 8 Feb 2023 3.00;
# 22 Mar 2023 3.50; 10 May 2023 3.75; 21 Jun 2023 4.00; 2 Aug 2023 4.25; 20 Sep 2023 4.50;
# 12 Jun 2024 4.25; 18 Sep 2024 3.65; 23 Oct 2024 3.40; 18 Dec 2024 3.15; 5 Feb 2025 2.90;
# 12 Mar 2025 2.65; 23 Apr 2025 2.40; 11 Jun 2025 2.15; unchanged at 2.15 at the 5 Feb 2026
# meeting (ECB press releases, as relayed by Les Echos Publishing's "taux refi" table updated
# 10/03/2025 and press coverage of the 5 Feb 2026 decision). Compiled 2026-11-25.
# 2026-H2 is deliberately absent: the rate in force on 1 July 2026 could not be confirmed
# from the sources available when this table was compiled; add it by configuration.
ECB_MRO_BY_HALF_YEAR: dict[str, Decimal] = {
    "2015-H1": Decimal("0.05"), "2015-H2": Decimal("0.05"),
    "2016-H1": Decimal("0.05"), "2016-H2": Decimal("0.00"),
    "2017-H1": Decimal("0.00"), "2017-H2": Decimal("0.00"),
    "2018-H1": Decimal("0.00"), "2018-H2": Decimal("0.00"),
    "2019-H1": Decimal("0.00"), "2019-H2": Decimal("0.00"),
    "2020-H1": Decimal("0.00"), "2020-H2": Decimal("0.00"),
    "2021-H1": Decimal("0.00"), "2021-H2": Decimal("0.00"),
    "2022-H1": Decimal("0.00"), "2022-H2": Decimal("0.00"),
    "2023-H1": Decimal("2.50"), "2023-H2": Decimal("4.00"),
    "2024-H1": Decimal("4.50"), "2024-H2": Decimal("4.25"),
    "2025-H1": Decimal("3.15"), "2025-H2": Decimal("2.15"),
    "2026-H1": Decimal("2.15"),
}

# Taux de l'intérêt légal, "pour tous les autres cas" (creditors acting for professional
# needs), percent, per half-year, fixed by arrêté under Code monétaire et financier
# L313-2 / D313-1-A. Source: the half-yearly arrêtés as published in the Journal officiel
# (e.g. arrêté du 23 déc. 2014: 0.93; 24 juin 2015: 0.99; 28 déc. 2017: 0.89; 27 juin 2018:
# 0.88; 21 déc. 2018: 0.86; 26 juin 2019: 0.87; 19 juin 2025: 2.76; 15 déc. 2025: 2.62).
# Compiled 2026-11-25; 2026-H2 absent for the same reason as above.
LEGAL_RATE_PROFESSIONAL_BY_HALF_YEAR: dict[str, Decimal] = {
    "2015-H1": Decimal("0.93"), "2015-H2": Decimal("0.99"),
    "2016-H1": Decimal("1.01"), "2016-H2": Decimal("0.93"),
    "2017-H1": Decimal("0.90"), "2017-H2": Decimal("0.90"),
    "2018-H1": Decimal("0.89"), "2018-H2": Decimal("0.88"),
    "2019-H1": Decimal("0.86"), "2019-H2": Decimal("0.87"),
    "2020-H1": Decimal("0.87"), "2020-H2": Decimal("0.84"),
    "2021-H1": Decimal("0.79"), "2021-H2": Decimal("0.76"),
    "2022-H1": Decimal("0.76"), "2022-H2": Decimal("0.77"),
    "2023-H1": Decimal("2.06"), "2023-H2": Decimal("4.22"),
    "2024-H1": Decimal("5.07"), "2024-H2": Decimal("4.92"),
    "2025-H1": Decimal("3.71"), "2025-H2": Decimal("2.76"),
    "2026-H1": Decimal("2.62"),
}

DEFAULT_RATES_SOURCE = ("ECB main refinancing operations rate in force on 1 January / 1 July; taux de "
                        "l'intérêt légal (professionnels) per half-yearly arrêté")
DEFAULT_RATES_AS_OF = date(2026, 11, 25)

# Rate sources written on each period.
ECB_PLUS_MARGIN, SELLER_RATE, LEGAL_FLOOR = "ecb_mro_plus_margin", "seller_rate", "legal_floor"
DAY_COUNT = "actual/actual (365, or 366 for days in a leap year)"
LEGAL_BASIS = ("Code de commerce L441-10 II (penalties from the day after the due date) and D441-5 "
               "(fixed recovery indemnity)")


class PenaltyRateUnavailable(ValidationError):
    """A day to charge falls in a half-year the reference table does not cover."""

    code = "penalty_rate_unavailable"


def half_year(d: date) -> str:
    """``2026-H1`` for January-June, ``2026-H2`` for July-December."""
    return f"{d.year}-H{1 if d.month <= 6 else 2}"


def half_year_bounds(key: str) -> tuple[date, date]:
    year, h = _parse_half_year(key, "half_year")
    return (date(year, 1, 1), date(year, 6, 30)) if h == 1 else (date(year, 7, 1), date(year, 12, 31))


def _parse_half_year(key: Any, name: str) -> tuple[int, int]:
    if (not isinstance(key, str) or len(key) != 7 or key[4:6] != "-H" or key[6] not in "12"
            or not key[:4].isdigit()):
        raise ValidationError(f"{name} {key!r} must be a half-year such as \"2026-H1\" or \"2026-H2\"", field=name)
    year = int(key[:4])
    if not 1999 <= year <= 2100:
        raise ValidationError(f"{name} {key!r} is out of range", field=name)
    return year, int(key[6])


def _next_half_year(key: str) -> str:
    year, h = _parse_half_year(key, "half_year")
    return f"{year}-H2" if h == 1 else f"{year + 1}-H1"


def _rate(value: Any, name: str) -> Decimal:
    if isinstance(value, Decimal):
        dec = value
    elif isinstance(value, str):
        try:
            dec = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(f"{name} {value!r} is not a decimal number such as \"2.15\"", field=name) from None
    else:
        raise ValidationError(f"{name} must be a decimal string such as \"2.15\" (percent per year)", field=name)
    if not dec.is_finite() or not Decimal(-5) <= dec <= Decimal(100):
        raise ValidationError(f"{name} must be a percentage between -5 and 100", field=name)
    exponent = dec.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise ValidationError(f"{name} must have at most 4 decimals", field=name)
    return dec


def _rate_table(raw: Any, name: str) -> tuple[tuple[str, Decimal], ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ValidationError(f"{name} must be a non-empty object {{\"2026-H1\": \"2.15\", ...}}", field=name)
    out = []
    for key, value in raw.items():
        _parse_half_year(key, f"{name}.{key}")
        out.append((key, _rate(value, f"{name}.{key}")))
    out.sort()
    # A gap would make a period silently fall back on a neighbour's rate: refuse it.
    for (a, _), (b, _) in zip(out, out[1:]):
        if _next_half_year(a) != b:
            raise ValidationError(f"{name} has a gap between {a} and {b}: every half-year in between needs a rate",
                                  field=f"{name}.{_next_half_year(a)}")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ReferenceRates:
    """Timeline of reference rates, per half-year (percent per year)."""

    ecb_mro: tuple[tuple[str, Decimal], ...]
    legal_rate: tuple[tuple[str, Decimal], ...]
    margin_points: Decimal = Decimal(10)
    floor_multiplier: Decimal = Decimal(3)
    carry_forward: bool = False
    source: str = DEFAULT_RATES_SOURCE
    as_of: date | None = None

    FIELDS = ("ecb_mro", "legal_rate", "margin_points", "floor_multiplier", "carry_forward", "source", "as_of")

    def _lookup(self, table: tuple[tuple[str, Decimal], ...], key: str, what: str, name: str) -> tuple[Decimal, bool]:
        for k, v in table:
            if k == key:
                return v, False
        last_key, last = table[-1]
        if self.carry_forward and key > last_key:
            return last, True
        raise PenaltyRateUnavailable(
            f"no {what} configured for {key} (the table covers {table[0][0]} to {last_key}): add it to the "
            f"reference rates ({name}.{key}) before computing penalties for days in {key}",
            field=f"reference_rates.{name}.{key}", details={"half_year": key})

    def ecb_rate(self, key: str) -> tuple[Decimal, bool]:
        """(MRO rate of the half-year, provisional?)."""
        return self._lookup(self.ecb_mro, key, "ECB main refinancing rate", "ecb_mro")

    def legal_rate_for(self, key: str) -> tuple[Decimal, bool]:
        return self._lookup(self.legal_rate, key, "legal interest rate (professionals)", "legal_rate")

    def to_dict(self) -> dict[str, Any]:
        return {"ecb_mro": {k: str(v) for k, v in self.ecb_mro}, "legal_rate": {k: str(v) for k, v in self.legal_rate},
                "margin_points": str(self.margin_points), "floor_multiplier": str(self.floor_multiplier),
                "carry_forward": self.carry_forward, "source": self.source,
                "as_of": self.as_of.isoformat() if self.as_of else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "reference_rates.") -> ReferenceRates:
        if not isinstance(data, Mapping):
            raise ValidationError(f"{prefix.rstrip('.')} must be an object", field=prefix.rstrip("."))
        reject_unknown(data, cls.FIELDS, prefix)
        carry = data.get("carry_forward", False)
        if not isinstance(carry, bool):
            raise ValidationError(f"{prefix}carry_forward must be true or false", field=prefix + "carry_forward")
        source = data.get("source") or DEFAULT_RATES_SOURCE
        if not isinstance(source, str) or len(source) > 500:
            raise ValidationError(f"{prefix}source must be a text of at most 500 characters", field=prefix + "source")
        as_of = data.get("as_of")
        if as_of is not None:
            try:
                as_of = date.fromisoformat(as_of) if isinstance(as_of, str) else None
            except ValueError:
                as_of = None
            if as_of is None:
                raise ValidationError(f"{prefix}as_of must be an ISO date such as \"2026-07-01\"",
                                      field=prefix + "as_of")
        margin = _rate(data.get("margin_points", "10"), prefix + "margin_points")
        multiplier = _rate(data.get("floor_multiplier", "3"), prefix + "floor_multiplier")
        if margin < 0 or multiplier < 0:
            raise ValidationError(f"{prefix}margin_points and floor_multiplier must not be negative",
                                  field=prefix + ("margin_points" if margin < 0 else "floor_multiplier"))
        return cls(ecb_mro=_rate_table(data.get("ecb_mro"), prefix + "ecb_mro"),
                   legal_rate=_rate_table(data.get("legal_rate"), prefix + "legal_rate"),
                   margin_points=margin, floor_multiplier=multiplier, carry_forward=carry, source=source,
                   as_of=as_of)


DEFAULT_REFERENCE_RATES = ReferenceRates(
    ecb_mro=tuple(sorted(ECB_MRO_BY_HALF_YEAR.items())),
    legal_rate=tuple(sorted(LEGAL_RATE_PROFESSIONAL_BY_HALF_YEAR.items())),
    as_of=DEFAULT_RATES_AS_OF,
)


# -- results ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PenaltyPeriod:
    """Consecutive late days sharing one rate and one year length."""

    start: date                 # first day charged (included)
    end: date                   # last day charged (included)
    days: int
    half_year: str
    annual_rate: Decimal        # percent per year actually applied
    rate_source: str            # ecb_mro_plus_margin | seller_rate | legal_floor
    reference_rate: Decimal     # the ECB MRO rate, or the legal rate when the floor applied / was checked
    year_basis: int             # 365 or 366
    exact_amount: Decimal       # in currency units, unrounded
    amount: Money               # rounded share of the total (see module doc)
    provisional: bool = False   # rate carried forward from the last known half-year

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "days": self.days,
                "half_year": self.half_year, "rate": str(self.annual_rate), "rate_source": self.rate_source,
                "reference_rate": str(self.reference_rate), "year_basis": self.year_basis,
                "exact_amount": str(self.exact_amount), "amount": str(self.amount), "provisional": self.provisional}


@dataclass(frozen=True, slots=True)
class PenaltyBreakdown:
    principal: Money
    due_date: date
    until: date
    days_late: int
    periods: tuple[PenaltyPeriod, ...]
    interest: Money
    indemnity: Money | None          # None when not late
    explanation: tuple[str, ...] = field(default=())

    @property
    def total(self) -> Money | None:
        """Interest + indemnity when both are in the same currency, else None (show them apart)."""
        if self.indemnity is None:
            return self.interest
        if self.indemnity.currency != self.interest.currency:
            return None
        return self.interest + self.indemnity

    @property
    def provisional(self) -> bool:
        return any(p.provisional for p in self.periods)

    def to_dict(self) -> dict[str, Any]:
        total = self.total
        return {"principal": str(self.principal), "currency": self.principal.currency,
                "due_date": self.due_date.isoformat(), "until": self.until.isoformat(), "days_late": self.days_late,
                "periods": [p.to_dict() for p in self.periods], "interest": str(self.interest),
                "indemnity": str(self.indemnity) if self.indemnity is not None else None,
                "indemnity_currency": self.indemnity.currency if self.indemnity is not None else None,
                "total": str(total) if total is not None else None, "day_count": DAY_COUNT,
                "legal_basis": LEGAL_BASIS, "provisional": self.provisional,
                "explanation": list(self.explanation)}


# -- computation --------------------------------------------------------------------------------

def _segments(start: date, end: date) -> list[tuple[date, date, str]]:
    """Split [start, end] (both included) at half-year boundaries."""
    out = []
    cursor = start
    while cursor <= end:
        key = half_year(cursor)
        seg_end = min(end, half_year_bounds(key)[1])
        out.append((cursor, seg_end, key))
        cursor = seg_end + timedelta(days=1)
    return out


def _period_rate(key: str, rates: ReferenceRates, seller_rate: Decimal | None) -> tuple[Decimal, str, Decimal, bool]:
    if seller_rate is None:
        ecb, provisional = rates.ecb_rate(key)
        return ecb + rates.margin_points, ECB_PLUS_MARGIN, ecb, provisional
    legal, provisional = rates.legal_rate_for(key)
    floor = legal * rates.floor_multiplier
    if seller_rate < floor:
        return floor, LEGAL_FLOOR, legal, provisional
    return seller_rate, SELLER_RATE, legal, provisional


def accrue_interest(principal: Money, start: date, end: date, *, rates: ReferenceRates = DEFAULT_REFERENCE_RATES,
                    seller_rate: Decimal | None = None) -> tuple[tuple[PenaltyPeriod, ...], Money]:
    """Interest on ``principal`` for each day from ``start`` to ``end`` (both included).

    Returns the periods and the total rounded once. An empty window (end < start) gives
    no period and zero. Raises :class:`PenaltyRateUnavailable` for an uncovered half-year.
    """
    currency = principal.currency
    if end < start:
        return (), Money.zero(currency)
    base = principal.to_decimal()
    raw: list[tuple[date, date, str, int, Decimal, str, Decimal, int, Decimal, bool]] = []
    with localcontext() as ctx:
        ctx.prec = 50
        for seg_start, seg_end, key in _segments(start, end):
            rate, source, reference, provisional = _period_rate(key, rates, seller_rate)
            basis = 366 if calendar.isleap(seg_start.year) else 365
            days = (seg_end - seg_start).days + 1
            exact = base * rate * days / (Decimal(100) * basis)
            raw.append((seg_start, seg_end, key, days, rate, source, reference, basis, exact, provisional))
        periods = []
        running = Decimal(0)
        shown = 0
        for seg_start, seg_end, key, days, rate, source, reference, basis, exact, provisional in raw:
            running += exact
            cumulative = round_to_minor(running, currency)
            places = Decimal(1).scaleb(-(minor_units(currency) + 8))
            periods.append(PenaltyPeriod(start=seg_start, end=seg_end, days=days, half_year=key, annual_rate=rate,
                                         rate_source=source, reference_rate=reference, year_basis=basis,
                                         exact_amount=exact.quantize(places),
                                         amount=Money(cumulative - shown, currency), provisional=provisional))
            shown = cumulative
    return tuple(periods), Money(shown, currency)


def compute_late_penalties(principal: Money, due_date: date, until: date, *,
                           rates: ReferenceRates = DEFAULT_REFERENCE_RATES, seller_rate: Decimal | None = None,
                           indemnity: Money | None = None) -> PenaltyBreakdown:
    """Penalties accrued on ``principal`` from the day after ``due_date`` to ``until`` included,
    plus the recovery indemnity (``indemnity``, default 40.00 EUR) when at least one day late.

    ``seller_rate``: the agreed annual rate in percent (``SellerProfile.late_penalty_rate``),
    or None for the legal default (ECB MRO + 10 points). ``until`` is typically the payment
    date, or today for an unpaid invoice (dates in the seller's time zone).
    """
    if seller_rate is not None and (not isinstance(seller_rate, Decimal) or seller_rate < 0):
        raise ValidationError("late_penalty_rate must be a non-negative Decimal percentage", field="late_penalty_rate")
    if principal.amount < 0:
        raise ValidationError("the principal of late-payment penalties must not be negative", field="principal")
    indemnity = indemnity if indemnity is not None else Money(4000, "EUR")
    days_late = max(0, (until - due_date).days)
    periods, interest = accrue_interest(principal, due_date + timedelta(days=1), until, rates=rates,
                                        seller_rate=seller_rate)
    late = days_late > 0 and principal.amount > 0
    lines = []
    if days_late == 0:
        lines.append(f"not late on {until.isoformat()} (due {due_date.isoformat()}): no penalty, no indemnity")
    elif not late:
        lines.append("nothing due on the invoice: no penalty, no indemnity")
    else:
        how = ("legal default: ECB main refinancing rate in force on 1 January / 1 July + "
               f"{rates.margin_points.normalize():f} points" if seller_rate is None
               else f"agreed rate {seller_rate.normalize():f}% per year, never below "
                    f"{rates.floor_multiplier.normalize():f} x the legal interest rate")
        lines.append(f"{days_late} day(s) late from {(due_date + timedelta(days=1)).isoformat()} to "
                     f"{until.isoformat()} on {principal} {principal.currency} ({how}; {DAY_COUNT}; "
                     "rounded once, half-up)")
        for p in periods:
            ref = ("ECB MRO" if p.rate_source == ECB_PLUS_MARGIN else "legal rate")
            note = (" (legal floor applied)" if p.rate_source == LEGAL_FLOOR else "")
            lines.append(f"{p.start.isoformat()} to {p.end.isoformat()}: {p.days} day(s) at "
                         f"{p.annual_rate.normalize():f}%{note} ({ref} {p.half_year} {p.reference_rate}%), "
                         f"/{p.year_basis} = {p.amount}" + (" [provisional rate]" if p.provisional else ""))
        lines.append(f"fixed recovery indemnity: {indemnity} {indemnity.currency} (D441-5)")
    return PenaltyBreakdown(principal=principal, due_date=due_date, until=until, days_late=days_late,
                            periods=periods, interest=interest, indemnity=indemnity if late else None,
                            explanation=tuple(lines))
