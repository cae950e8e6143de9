"""Bank transactions as the ledger keeps them, and the records of receivable imports.

A :class:`BankTransaction` is one movement read from a bank statement (a camt.053 /
camt.054 transaction detail or a CSV row) that matters to receivables: a customer
credit, a Stripe payout, a customer payment coming back, or one of the seller's own
transfers coming back. Its id is derived from the statement's stable per-transaction
key (:func:`transaction_id`), so importing the same or an overlapping statement again
finds it instead of creating it twice: the service writes it with a "must not exist"
condition in the same transaction as the payment it creates.

An :class:`ImportRecord` follows one import of existing receivables (CSV or
Factur-X / CII files) from its plan to its completion.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .money import Money

# What a transaction is.
KIND_CREDIT, KIND_PAYOUT, KIND_RETURN, KIND_OWN_RETURN = "customer_credit", "stripe_payout", "return", "own_return"
KINDS = (KIND_CREDIT, KIND_PAYOUT, KIND_RETURN, KIND_OWN_RETURN)

# Where it stands.
MATCHED = "matched"            # allocated automatically (any excess is the customer's credit)
REVIEW = "review"              # allocated automatically, but a clerk should confirm (low confidence, capped)
UNMATCHED = "unmatched"        # nothing allocated: unapplied cash waiting for a clerk
ALLOCATED = "allocated"        # a clerk allocated or confirmed it
RECONCILED = "reconciled"      # a Stripe payout that adds up with its balance transactions
UNRECONCILED = "unreconciled"  # a Stripe payout that does not (or could not be read)
REVERSED = "reversed"          # a return whose original payment was reversed
IGNORED = "ignored"            # not customer money (one of the seller's own transfers coming back)
STATUSES = (MATCHED, REVIEW, UNMATCHED, ALLOCATED, RECONCILED, UNRECONCILED, REVERSED, IGNORED)
# Statuses that wait for a person: each has its own sparse queue.
QUEUED = (UNMATCHED, REVIEW, UNRECONCILED)


def transaction_id(key: str) -> str:
    """The id of the bank transaction with statement key ``key`` (stable, URL-safe)."""
    return "btx_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:26]


@dataclass(frozen=True, slots=True)
class BankTransaction:
    id: str
    key: str                      # the statement's per-transaction key (IBAN:entry ref:index:amount)
    kind: str
    status: str
    amount: Money                 # positive; ``kind`` says which way it went
    booking_date: date
    account_iban: str
    imported_at: datetime
    updated_at: datetime
    statement_id: str | None = None
    value_date: date | None = None
    entry_ref: str | None = None
    end_to_end_id: str | None = None
    debtor_name: str | None = None
    debtor_iban: str | None = None
    remittance: str | None = None
    structured_reference: str | None = None
    customer_id: str | None = None
    payment_id: str | None = None
    rule: str | None = None
    confidence: Decimal | None = None  # 0 to 1, two decimals (Decimal: the codec stores no floats)
    reason: str = ""
    identified_by: str | None = None
    # What matching proposed, as plain dicts: {"invoice_id", "invoice_number", "amount"}.
    allocations: tuple[dict[str, Any], ...] = ()
    discounts: tuple[dict[str, Any], ...] = ()
    candidates: tuple[dict[str, Any], ...] = ()
    # A Stripe payout's reconciliation: {"payout_id", "charges", "refunds", "fees", "other", "expected",
    # "difference", "balance_transactions"} (amounts in minor units).
    payout: dict[str, Any] | None = None
    original_id: str | None = None  # a return: the bank transaction it returns
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    version: int = 0

    @property
    def currency(self) -> str:
        return self.amount.currency

    @property
    def queued(self) -> bool:
        return self.status in QUEUED

    def to_dict(self) -> dict[str, Any]:
        def money(minor: Any) -> str:
            return str(Money(int(minor), self.currency))

        payout = None
        if self.payout:
            payout = {k: (money(v) if k in ("charges", "refunds", "fees", "other", "expected", "difference")
                          else v) for k, v in self.payout.items() if k != "balance_transactions"}
            payout["balance_transactions"] = len(self.payout.get("balance_transactions") or ())
        return {
            "id": self.id, "object": "bank_transaction", "key": self.key, "kind": self.kind, "status": self.status,
            "needs_review": self.queued, "amount": str(self.amount), "currency": self.currency,
            "booking_date": self.booking_date.isoformat(),
            "value_date": self.value_date.isoformat() if self.value_date else None,
            "statement_id": self.statement_id, "entry_ref": self.entry_ref, "end_to_end_id": self.end_to_end_id,
            "debtor_name": self.debtor_name, "debtor_iban": self.debtor_iban, "remittance": self.remittance,
            "structured_reference": self.structured_reference, "customer_id": self.customer_id,
            "payment_id": self.payment_id, "rule": self.rule,
            "confidence": float(self.confidence) if self.confidence is not None else None,
            "identified_by": self.identified_by, "reason": self.reason,
            "allocations": [dict(a) for a in self.allocations], "discounts": [dict(d) for d in self.discounts],
            "candidates": [dict(c) for c in self.candidates], "payout": payout, "original_id": self.original_id,
            "resolved_by": self.resolved_by,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "imported_at": self.imported_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "version": self.version,
        }


# -- imports of existing receivables ---------------------------------------------------------------

# in_progress: rows being staged (nothing visible yet); activating: every row staged, the invoices being
# made live (finished by the outbox without the client); completed.
IMPORT_RUNNING, IMPORT_ACTIVATING, IMPORT_COMPLETED = "in_progress", "activating", "completed"


@dataclass(frozen=True, slots=True)
class ImportRecord:
    """One import of existing receivables: its plan, then its progress.

    The plan (which customers and invoices to create, with their ids decided when
    the import was validated) is stored beside it (``plan_key`` in the document
    store), so a retry or the outbox's resume writes exactly the same records.
    """

    id: str
    status: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    sources: tuple[str, ...] = ()        # file names
    invoices_planned: int = 0
    customers_planned: int = 0
    invoices_created: int = 0
    customers_created: int = 0
    already_imported: int = 0
    invoices_staged: int = 0             # rows written aside, not yet live (not open, not in reports or dunning)
    failed: tuple[dict[str, Any], ...] = ()  # rows that could not be written after validation (a race)
    totals: dict[str, str] = field(default_factory=dict)  # currency -> open amount imported
    plan_key: str | None = None
    completed_at: datetime | None = None
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": "import", "status": self.status, "sources": list(self.sources),
                "invoices_planned": self.invoices_planned, "customers_planned": self.customers_planned,
                "invoices_staged": self.invoices_staged,
                "invoices_created": self.invoices_created, "customers_created": self.customers_created,
                "already_imported": self.already_imported, "failed": [dict(f) for f in self.failed],
                "totals": dict(self.totals), "created_by": self.created_by,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                "completed_at": self.completed_at.isoformat() if self.completed_at else None,
                "version": self.version}
