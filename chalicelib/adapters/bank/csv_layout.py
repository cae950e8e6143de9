"""A documented CSV layout for bank movements, for banks that do not export camt.053.

Layout
------
One header row, then one row per bank movement. Columns are found by their
header name (case-insensitive, any order; unknown columns are ignored):

=============== ======== ===================================================================
column          required content
=============== ======== ===================================================================
booking_date    yes      ``2026-03-12`` or ``12/03/2026``
amount          yes      signed decimal, ``-`` for a debit: ``1200.00``, ``1 200,00``, ``-35,90``
                         (``.`` or ``,`` as decimal separator, spaces allowed between thousands)
currency        yes      ISO 4217 code, the same on every row (``EUR``)
label           yes      the bank's label / remittance information as printed
debtor_name     no       who paid (a credit) or was paid (a debit)
debtor_iban     no       that party's IBAN, checked when present
reference       no       the reference the payer gave (RF creditor reference or invoice number)
bank_entry_id   yes      the bank's unique id of the movement, unique in the file; it makes
                         re-imports idempotent, so it must be the same in every export
value_date      no       same formats as booking_date
=============== ======== ===================================================================

Separator: ``;`` (French spreadsheets), ``,`` or tab, detected from the header row.
Encoding: UTF-8 (with or without BOM); Windows-1252 is accepted as a fallback.
Fields follow RFC 4180 quoting (``"MARTIN; SARL"``).

Every row is checked; a file with bad rows is refused as a whole with each bad
row's number (the header is row 1) and what is wrong, so nothing is half-imported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date
from typing import Any

from chalicelib.domain import identifiers
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.money import Money, check_currency

from .model import BOOKED, CREDIT, DEBIT, BankEntry, Statement, TransactionDetail, compact_iban, transaction_key

COLUMNS = ("booking_date", "amount", "currency", "label", "debtor_name", "debtor_iban", "reference",
           "bank_entry_id", "value_date")
REQUIRED = ("booking_date", "amount", "currency", "label", "bank_entry_id")
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
MAX_REPORTED_ERRORS = 50
MAX_TEXT = 1000
_FR_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
_AMOUNT = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    if not isinstance(data, (bytes, bytearray)):
        raise ValidationError("expected the CSV file content", field="file", code="invalid_bank_statement")
    try:
        return bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError:
        return bytes(data).decode("cp1252", errors="replace")


def _parse_date(value: str) -> date:
    m = _FR_DATE.match(value)
    if m:
        return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    if len(value) != 10:
        raise ValueError(value)
    return date.fromisoformat(value)


def _parse_amount(value: str, currency: str) -> Money:
    text = re.sub(r"[ \u00a0\u202f]", "", value)
    if not _AMOUNT.match(text):
        raise ValidationError(f"amount {value!r} is not a signed decimal such as -35,90 or 1200.00")
    return Money.parse(text.replace(",", "."), currency)


def _error(message: str, errors: list[dict[str, Any]]) -> ValidationError:
    return ValidationError(message, field="file", code="invalid_bank_statement",
                           details={"rows": errors[:MAX_REPORTED_ERRORS], "error_count": len(errors)})


def parse_csv(data: bytes | str, *, account_iban: str) -> Statement:
    """Parse a CSV file of the documented layout for the account ``account_iban``.

    The CSV carries no account number: the caller states which account it is
    (normally the seller's). Raises :class:`ValidationError` listing the bad rows.
    """
    iban = identifiers.iban(account_iban or "", field="account_iban")
    size = len(data) if isinstance(data, (bytes, bytearray, str)) else 0
    if size > MAX_BYTES:
        raise ValidationError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB", field="file",
                              code="invalid_bank_statement")
    text = _decode(data)
    if not text.strip():
        raise ValidationError("the CSV file is empty: it needs a header row and at least one movement",
                              field="file", code="invalid_bank_statement")
    first_line = text.splitlines()[0]
    delimiter = max((";", ",", "\t"), key=first_line.count)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise ValidationError(f"the CSV file cannot be read: {exc}", field="file",
                              code="invalid_bank_statement") from None
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValidationError(
            f"row 1 (header): missing column(s) {', '.join(missing)}; the header must name the columns "
            f"{', '.join(COLUMNS[:8])} (see the documented CSV layout)", field="file", code="invalid_bank_statement")
    duplicates = sorted({h for h in header if h in COLUMNS and header.count(h) > 1})
    if duplicates:
        raise ValidationError(f"row 1 (header): column(s) {', '.join(duplicates)} appear twice", field="file",
                              code="invalid_bank_statement")
    if len(rows) - 1 > MAX_ROWS:
        raise ValidationError(f"the file has more than {MAX_ROWS} rows: split it", field="file",
                              code="invalid_bank_statement")
    index = {name: header.index(name) for name in COLUMNS if name in header}
    errors: list[dict[str, Any]] = []
    entries: list[BankEntry] = []
    seen_ids: dict[str, int] = {}
    currency: str | None = None
    for row_number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        problems: list[str] = []

        def cell(name: str) -> str | None:
            i = index.get(name)
            if i is None or i >= len(row):
                return None
            value = " ".join(row[i].split())
            return value[:MAX_TEXT] or None

        if len(row) > len(header):
            problems.append(f"{len(row)} fields but the header has {len(header)} (an unquoted separator?)")
        values: dict[str, Any] = {}
        for name in REQUIRED:
            if cell(name) is None:
                problems.append(f"{name} is empty")
        raw_ccy = cell("currency")
        row_ccy = None
        if raw_ccy:
            try:
                row_ccy = check_currency(raw_ccy)
            except ValidationError as exc:
                problems.append(exc.message)
        if row_ccy and currency and row_ccy != currency:
            problems.append(f"currency {row_ccy} differs from {currency} on the first row: one file, one account "
                            "currency")
        for name in ("booking_date", "value_date"):
            raw = cell(name)
            if raw:
                try:
                    values[name] = _parse_date(raw)
                except ValueError:
                    problems.append(f"{name} {raw!r} is not a date such as 2026-03-12 or 12/03/2026")
        raw_amount = cell("amount")
        if raw_amount and row_ccy:
            try:
                amount = _parse_amount(raw_amount, row_ccy)
                if amount.is_zero:
                    problems.append("amount is zero")
                values["amount"] = amount
            except ValidationError as exc:
                problems.append(exc.message)
        raw_iban = cell("debtor_iban")
        if raw_iban:
            try:
                values["debtor_iban"] = identifiers.iban(raw_iban, field="debtor_iban")
            except ValidationError as exc:
                problems.append(exc.message)
        entry_id = cell("bank_entry_id")
        if entry_id:
            if entry_id in seen_ids:
                problems.append(f"bank_entry_id {entry_id!r} is already used on row {seen_ids[entry_id]}")
            else:
                seen_ids[entry_id] = row_number
        if problems:
            errors.extend({"row": row_number, "message": p} for p in problems)
            continue
        currency = currency or row_ccy
        signed: Money = values["amount"]
        amount = signed if signed.is_positive else -signed
        direction = CREDIT if signed.is_positive else DEBIT
        label = cell("label")
        detail = TransactionDetail(
            index=0, key=transaction_key(iban, entry_id, 0, amount), amount=amount,
            debtor_name=cell("debtor_name") if direction == CREDIT else None,
            debtor_iban=compact_iban(values.get("debtor_iban")) if direction == CREDIT else None,
            creditor_name=cell("debtor_name") if direction == DEBIT else None,
            creditor_iban=compact_iban(values.get("debtor_iban")) if direction == DEBIT else None,
            remittance_unstructured=label, creditor_reference=cell("reference"))
        entries.append(BankEntry(entry_ref=entry_id, amount=amount, direction=direction, status=BOOKED,
                                 booking_date=values["booking_date"], value_date=values.get("value_date"),
                                 details=(detail,), account_servicer_ref=entry_id, additional_info=label))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem(s), listed in details)" if len(errors) > 1 else ""
        raise _error(f"row {first['row']}: {first['message']}{more}; nothing was imported", errors)
    if not entries:
        raise ValidationError("the CSV file has a header but no movement", field="file",
                              code="invalid_bank_statement")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return Statement(message_id=f"csv-{digest}", statement_id=None, account_iban=iban, currency=currency or "EUR",
                     entries=tuple(entries), format="csv")
