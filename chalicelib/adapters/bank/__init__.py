"""Bank statement import: camt.053 / camt.054 XML and a documented CSV layout.

Typical use by a service (nothing here touches storage)::

    statements = parse_camt(body)            # or (parse_csv(body, account_iban=seller.iban),)
    for statement in statements:
        check_account(statement, seller.iban)  # refuse a foreign account before changing anything
    for entry, detail in ...:                # classify_entry() says what each entry is
        ...
    credits = credits_to_match(statement)    # booked customer credits, one per transaction detail
    # skip credits whose key was imported before, then domain.matching.match_statement(credits, view)
"""

from __future__ import annotations

from datetime import date

from chalicelib.domain.matching import BankCredit

from .camt import parse_camt
from .csv_layout import parse_csv
from .model import (BankEntry, BankTransactionCode, Statement, TransactionDetail, check_account, compact_iban,
                    transaction_key)

CUSTOMER_CREDIT, RETURN, DEBIT_ENTRY, NOT_BOOKED = "customer_credit", "return", "debit", "not_booked"


def classify_entry(entry: BankEntry) -> str:
    """What an entry means for receivables.

    - ``not_booked``: PDNG / INFO / FUTR, wait for the booked entry (its key is the same);
    - ``return``: a reversal (RvslInd) or a return transaction code / reason: for a
      debit, a customer payment coming back (reverse the payment it matched); for a
      credit, one of the seller's own transfers coming back (not customer money);
    - ``debit``: money out, ignored by cash application;
    - ``customer_credit``: money in, to be matched.
    """
    if not entry.is_booked:
        return NOT_BOOKED
    if entry.is_return:
        return RETURN
    return CUSTOMER_CREDIT if entry.is_credit else DEBIT_ENTRY


def credits_to_match(statement: Statement) -> tuple[BankCredit, ...]:
    """The booked customer credits of a statement, one per transaction detail, by booking date."""
    out: list[tuple[date, int, int, BankCredit]] = []
    for position, entry in enumerate(statement.entries):
        if classify_entry(entry) != CUSTOMER_CREDIT or entry.booking_date is None:
            continue
        for detail in entry.details:
            if not detail.amount.is_positive:
                continue
            credit = BankCredit(key=detail.key, amount=detail.amount, booking_date=entry.booking_date,
                                debtor_name=detail.debtor_name or detail.ultimate_debtor_name,
                                debtor_iban=detail.debtor_iban,
                                remittance=" ".join(p for p in (detail.remittance_unstructured,
                                                                detail.additional_info) if p),
                                structured_reference=detail.creditor_reference)
            out.append((entry.booking_date, position, detail.index, credit))
    out.sort(key=lambda x: (x[0], x[1], x[2]))
    return tuple(c for *_, c in out)


__all__ = ["parse_camt", "parse_csv", "Statement", "BankEntry", "TransactionDetail", "BankTransactionCode",
           "check_account", "compact_iban", "transaction_key", "classify_entry", "credits_to_match",
           "CUSTOMER_CREDIT", "RETURN", "DEBIT_ENTRY", "NOT_BOOKED"]
