"""Payments: cash received from a customer, allocated to one or more invoices.

What is not allocated stays on the payment as *unapplied cash* (customer credit)
until a clerk or a matching rule allocates it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Mapping, Sequence

from .errors import ValidationError
from .money import Money, money_sum

METHODS = ("bank_transfer", "cheque", "card", "sepa_debit", "cash", "other")
SOURCES = ("manual", "stripe", "bank", "import")
MAX_ALLOCATIONS = 12  # payment + invoices + audit entries + events + report aggregates stay under 100 items


@dataclass(frozen=True, slots=True)
class Allocation:
    invoice_id: str
    amount: Money
    allocated_at: datetime
    invoice_number: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"invoice_id": self.invoice_id, "invoice_number": self.invoice_number,
                "amount": str(self.amount), "allocated_at": self.allocated_at.isoformat()}


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    customer_id: str | None  # None: cash from a payer we could not identify (on the review list)
    amount: Money
    method: str
    received_on: date
    created_at: datetime
    updated_at: datetime
    reference: str | None = None
    provider_ref: str | None = None
    source: str = "manual"
    note: str | None = None
    allocations: tuple[Allocation, ...] = ()
    refunded: int = 0            # minor units given back to the payer (provider refunds), in total
    refunded_unapplied: int = 0  # the part of ``refunded`` taken from unapplied cash (the rest reopened invoices)
    version: int = 0

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def allocated(self) -> Money:
        return money_sum((a.amount for a in self.allocations), self.currency)

    @property
    def unapplied(self) -> Money:
        return self.amount - self.allocated - Money(self.refunded_unapplied, self.currency)

    def allocate(self, invoice_id: str, amount: Money, *, now: datetime, invoice_number: str | None = None) -> Payment:
        if amount.currency != self.currency:
            raise ValidationError(f"allocation in {amount.currency} on a {self.currency} payment",
                                  field="allocations", code="currency_mismatch")
        if not amount.is_positive:
            raise ValidationError("allocation amount must be greater than 0", field="allocations")
        if amount > self.unapplied:
            raise ValidationError(
                f"allocations exceed the payment: only {self.unapplied} {self.currency} is unapplied",
                field="allocations", code="overallocation")
        merged = list(self.allocations)
        for i, existing in enumerate(merged):
            if existing.invoice_id == invoice_id:
                merged[i] = replace(existing, amount=existing.amount + amount)
                break
        else:
            merged.append(Allocation(invoice_id=invoice_id, amount=amount, allocated_at=now,
                                     invoice_number=invoice_number))
        return replace(self, allocations=tuple(merged), updated_at=now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "payment", "customer_id": self.customer_id, "amount": str(self.amount),
            "currency": self.currency, "method": self.method, "received_on": self.received_on.isoformat(),
            "reference": self.reference, "provider_ref": self.provider_ref, "source": self.source,
            "note": self.note, "allocations": [a.to_dict() for a in self.allocations],
            "allocated": str(self.allocated), "unapplied": str(self.unapplied),
            "refunded": str(Money(self.refunded, self.currency)),
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "version": self.version,
        }


def parse_allocations(raw: Any, currency: str) -> list[tuple[str, Money]]:
    """Parse ``[{"invoice_id": ..., "amount": "100.00"}]``; one invoice may appear once."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationError("allocations must be a list of {\"invoice_id\", \"amount\"}", field="allocations")
    if len(raw) > MAX_ALLOCATIONS:
        raise ValidationError(f"at most {MAX_ALLOCATIONS} allocations per request", field="allocations")
    out: list[tuple[str, Money]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("invoice_id"), str):
            raise ValidationError(f"allocations[{i}] must be an object with invoice_id and amount",
                                  field=f"allocations[{i}]")
        if item["invoice_id"] in seen:
            raise ValidationError(f"allocations[{i}]: invoice {item['invoice_id']} is listed twice",
                                  field=f"allocations[{i}].invoice_id")
        seen.add(item["invoice_id"])
        amount = Money.parse(item.get("amount"), currency, field=f"allocations[{i}].amount")
        if not amount.is_positive:
            raise ValidationError(f"allocations[{i}].amount must be greater than 0", field=f"allocations[{i}].amount")
        out.append((item["invoice_id"], amount))
    return out


def reversal_plan(allocations: Sequence[Allocation], returnable: Mapping[str, int], amount: int) -> list[tuple[str, int]]:
    """How a refund, a returned transfer or a chargeback of ``amount`` (minor units) comes back out of a
    payment's invoices: allocation by allocation in the order given, each giving back at most what it
    brought and what its invoice still has to give (``returnable``: invoice id -> amount paid minus
    already reversed; absent = not found, skipped). One entry per invoice, even when several
    allocations name it. What the plan leaves of ``amount`` is for the caller (unapplied cash)."""
    left = dict(returnable)
    totals: dict[str, int] = {}
    remaining = amount
    for allocation in allocations:
        if remaining <= 0:
            break
        invoice_id = allocation.invoice_id
        if invoice_id not in left:
            continue
        back = min(remaining, allocation.amount.amount, left[invoice_id])
        if back <= 0:
            continue
        left[invoice_id] -= back
        totals[invoice_id] = totals.get(invoice_id, 0) + back
        remaining -= back
    return list(totals.items())
