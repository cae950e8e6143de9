"""Payment terms and due dates.

French law (Code de commerce L441-10) caps B2B payment terms at 60 days from the
invoice date, or 45 days end of month. "45 days end of month" is read by default
as *45 days from the issue date, then the end of that month*; the other common
reading (*end of the issue month, then 45 days*) is a seller setting.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from .errors import ValidationError

NET = "net"
END_OF_MONTH = "end_of_month"
TERM_KINDS = (NET, END_OF_MONTH)

# Seller settings for the end-of-month reading.
EOM_DAYS_THEN_END = "days_then_end_of_month"
EOM_END_THEN_DAYS = "end_of_month_then_days"
EOM_MODES = (EOM_DAYS_THEN_END, EOM_END_THEN_DAYS)

# Legal caps per jurisdiction: (max net days, max end-of-month days).
_LEGAL_CAPS: dict[str, tuple[int, int]] = {"FR": (60, 45)}
_ABSOLUTE_MAX_DAYS = 365


def end_of_month(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


@dataclass(frozen=True, slots=True)
class PaymentTerms:
    kind: str = NET
    days: int = 30

    def __post_init__(self) -> None:
        if self.kind not in TERM_KINDS:
            raise ValidationError(
                f"payment_terms.kind must be one of {', '.join(TERM_KINDS)}", field="payment_terms.kind")
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 0:
            raise ValidationError("payment_terms.days must be a whole number of days >= 0",
                                  field="payment_terms.days")
        if self.days > _ABSOLUTE_MAX_DAYS:
            raise ValidationError(f"payment_terms.days must be at most {_ABSOLUTE_MAX_DAYS}",
                                  field="payment_terms.days")

    def check_legal(self, jurisdiction: str) -> None:
        """Refuse terms longer than the law of ``jurisdiction`` allows."""
        caps = _LEGAL_CAPS.get(jurisdiction.upper())
        if caps is None:
            return
        net_cap, eom_cap = caps
        if self.kind == NET and self.days > net_cap:
            raise ValidationError(
                f"payment terms of {self.days} days exceed the legal maximum of {net_cap} days from the "
                f"invoice date in {jurisdiction} (Code de commerce L441-10): use at most {net_cap} days net "
                f"or {eom_cap} days end of month",
                field="payment_terms.days", code="payment_terms_too_long")
        if self.kind == END_OF_MONTH and self.days > eom_cap:
            raise ValidationError(
                f"payment terms of {self.days} days end of month exceed the legal maximum of {eom_cap} days "
                f"end of month in {jurisdiction} (Code de commerce L441-10)",
                field="payment_terms.days", code="payment_terms_too_long")

    def due_date(self, issue_date: date, eom_mode: str = EOM_DAYS_THEN_END) -> date:
        if self.kind == NET:
            return issue_date + timedelta(days=self.days)
        if eom_mode == EOM_END_THEN_DAYS:
            return end_of_month(issue_date) + timedelta(days=self.days)
        return end_of_month(issue_date + timedelta(days=self.days))

    def describe(self, language: str = "fr") -> str:
        if language == "fr":
            if self.kind == NET:
                return "Paiement à réception" if self.days == 0 else f"{self.days} jours net"
            return f"{self.days} jours fin de mois"
        if self.kind == NET:
            return "Due on receipt" if self.days == 0 else f"Net {self.days} days"
        return f"{self.days} days end of month"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "days": self.days}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaymentTerms:
        return cls(kind=data.get("kind", NET), days=data.get("days", 30))


def check_due_date_legal(issue_date: date, due: date, jurisdiction: str) -> None:
    """An explicit due date must not be later than the longest legal term."""
    caps = _LEGAL_CAPS.get(jurisdiction.upper())
    if due < issue_date:
        raise ValidationError("due_date must not be before the issue date", field="due_date")
    if caps is None:
        return
    net_cap, eom_cap = caps
    latest = max(issue_date + timedelta(days=net_cap), end_of_month(issue_date + timedelta(days=eom_cap)))
    if due > latest:
        raise ValidationError(
            f"due_date {due.isoformat()} is beyond the legal maximum for an invoice issued on "
            f"{issue_date.isoformat()} in {jurisdiction} ({latest.isoformat()}: 60 days, or 45 days end of month)",
            field="due_date", code="payment_terms_too_long")
