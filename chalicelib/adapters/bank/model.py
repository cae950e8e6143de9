"""What a bank statement says, whatever its format (camt.053, camt.054, CSV).

Plain frozen dataclasses with :class:`~chalicelib.domain.money.Money` amounts.
Each transaction detail carries a :attr:`TransactionDetail.key` that is the same
every time the same bank transaction is imported, from the same file or from an
overlapping one, so a service can make the import idempotent (a conditional put
on the key) and never create a payment twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Iterator

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.money import Money

CREDIT, DEBIT = "CRDT", "DBIT"
BOOKED, PENDING, INFORMATION, FUTURE = "BOOK", "PDNG", "INFO", "FUTR"
STATUSES = (BOOKED, PENDING, INFORMATION, FUTURE)

# ISO 20022 bank transaction sub-families that are returns / reversals of a transfer or debit.
RETURN_SUBFAMILIES = frozenset({"RRTN", "RPCR", "ARET", "UPDD", "PRDD", "RRCT"})


@dataclass(frozen=True, slots=True)
class BankTransactionCode:
    """ISO 20022 BkTxCd: domain / family / sub-family (e.g. PMNT / RCDT / ESCT), or a proprietary code."""

    domain: str | None = None
    family: str | None = None
    subfamily: str | None = None
    proprietary: str | None = None

    def __str__(self) -> str:
        parts = [p for p in (self.domain, self.family, self.subfamily) if p]
        return "/".join(parts) or (self.proprietary or "")


@dataclass(frozen=True, slots=True)
class TransactionDetail:
    """One underlying transaction of an entry (a batch booking has several)."""

    index: int
    key: str
    amount: Money
    end_to_end_id: str | None = None
    account_servicer_ref: str | None = None
    debtor_name: str | None = None
    debtor_iban: str | None = None
    ultimate_debtor_name: str | None = None
    creditor_name: str | None = None
    creditor_iban: str | None = None
    remittance_unstructured: str | None = None
    creditor_reference: str | None = None
    return_reason: str | None = None
    additional_info: str | None = None

    @property
    def remittance_text(self) -> str:
        """Everything a payer may have written, for reference matching."""
        return " ".join(p for p in (self.creditor_reference, self.remittance_unstructured, self.additional_info)
                        if p)


@dataclass(frozen=True, slots=True)
class BankEntry:
    entry_ref: str | None  # AcctSvcrRef, else NtryRef: the bank's own id of the booking
    amount: Money
    direction: str  # CRDT / DBIT
    status: str  # BOOK / PDNG / INFO / FUTR
    booking_date: date | None
    value_date: date | None
    details: tuple[TransactionDetail, ...]
    reversal: bool = False
    bank_transaction_code: BankTransactionCode | None = None
    account_servicer_ref: str | None = None
    entry_reference: str | None = None
    additional_info: str | None = None

    @property
    def is_credit(self) -> bool:
        return self.direction == CREDIT

    @property
    def is_booked(self) -> bool:
        return self.status == BOOKED

    @property
    def is_return(self) -> bool:
        """A reversal (RvslInd), a return transaction code, or a detail with a return reason."""
        code = self.bank_transaction_code
        return (self.reversal or bool(code and code.subfamily in RETURN_SUBFAMILIES)
                or any(d.return_reason for d in self.details))

    @property
    def signed_amount(self) -> Money:
        return self.amount if self.is_credit else -self.amount


@dataclass(frozen=True, slots=True)
class Statement:
    """One account statement (camt.053 Stmt), notification (camt.054 Ntfctn) or CSV file."""

    message_id: str
    statement_id: str | None
    account_iban: str
    currency: str
    entries: tuple[BankEntry, ...]
    opening_balance: Money | None = None  # signed: negative when overdrawn
    closing_balance: Money | None = None
    format: str = "camt.053"

    def transactions(self) -> Iterator[tuple[BankEntry, TransactionDetail]]:
        for entry in self.entries:
            for detail in entry.details:
                yield entry, detail

    @property
    def booked_movement(self) -> Money:
        """Sum of booked credits minus booked debits in the statement currency."""
        total = Money.zero(self.currency)
        for e in self.entries:
            if e.is_booked and e.amount.currency == self.currency:
                total = total + e.signed_amount
        return total

    @property
    def balances_reconcile(self) -> bool | None:
        """opening + booked movement == closing (None when the format has no balances)."""
        if self.opening_balance is None or self.closing_balance is None:
            return None
        return self.opening_balance + self.booked_movement == self.closing_balance


def compact_iban(value: str | None) -> str | None:
    if not value:
        return None
    compacted = "".join(value.split()).upper()
    return compacted or None


def transaction_key(account_iban: str, entry_ref: str | None, index: int, amount: Money, *,
                    fallback: tuple[object, ...] = ()) -> str:
    """The idempotency key of one bank transaction.

    ``<IBAN>:<entry ref>:<detail index>:<amount in minor units><currency>``, with the
    bank's entry reference (AcctSvcrRef, else NtryRef). Without any reference (some
    CSV exports), a digest of ``fallback`` (date, amount, counterparty, text) stands
    in: two identical transfers on the same day from the same payer with the same
    text then share a key, which is why the CSV layout requires a bank entry id.
    """
    iban = compact_iban(account_iban) or "?"
    if entry_ref:
        ref = entry_ref.strip()
    else:
        ref = "h" + hashlib.sha256(repr(fallback).encode("utf-8")).hexdigest()[:24]
    return f"{iban}:{ref}:{index}:{amount.amount}{amount.currency}"


def check_account(statement: Statement, expected_iban: str) -> None:
    """Refuse a statement of another account than the seller's (raises :class:`ValidationError`)."""
    expected = compact_iban(expected_iban)
    if not expected:
        raise ValidationError("the seller has no IBAN in its settings: set it before importing statements",
                              field="iban")
    if compact_iban(statement.account_iban) != expected:
        masked = statement.account_iban[:4] + "…" + statement.account_iban[-4:]
        raise ValidationError(
            f"this statement is for account {masked}, not the seller's account ending in {expected[-4:]}: "
            "import the statement of the account set in the seller settings", field="file",
            code="foreign_account")
