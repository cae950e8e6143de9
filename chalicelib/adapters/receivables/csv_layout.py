"""The documented CSV layout for importing open receivables issued elsewhere.

One header row, then one row per open invoice. Columns are found by their header
name (case-insensitive, any order; unknown columns are ignored):

===================== ======== ================================================================
column                required content
===================== ======== ================================================================
number                yes      the invoice number as issued (an external series, kept as is)
customer_ref          yes      the customer's reference in your books (matched against
                               customers' ``external_ref``; a new customer gets it)
customer_name         new      the customer's legal name (required to create the customer)
customer_email        new      where reminders go (required to create the customer)
customer_country      no       ISO 3166 code, default ``FR``
customer_vat_number   no       checked when present
customer_siren        no       checked when present
issue_date            yes      ``2026-01-31`` or ``31/01/2026``
due_date              yes      same formats
currency              yes      ISO 4217 (``EUR``)
amount_excl_vat       yes      the total without VAT: ``1200.00`` or ``1 200,00``
vat_amount            yes      the VAT total
amount_incl_vat       yes      the total with VAT; must equal the two above
amount_due            no       what is still owed (default: the total with VAT), if part was paid
vat_rate              no       one rate for the whole invoice (``20``); inferred from the amounts
                               when they give a rate exactly, required otherwise
vat_category          no       when the VAT is 0: Z, E, AE, K, G or O (default E)
purchase_order        no       the buyer's order reference
description           no       what was sold (one line; default "Facture <number>")
===================== ======== ================================================================

Separator ``;``, ``,`` or tab (detected from the header); UTF-8 (with or without BOM),
Windows-1252 accepted. Every row is read; a row that cannot be read is reported
with its number (the header is row 1) and the reason; the service refuses the
whole import if any row is refused, so nothing is half-imported.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
from typing import Any

from ...domain.errors import ValidationError
from ...domain.invoice import STANDARD, VAT_CATEGORIES, VatBreakdown, canonical_rate
from ...domain.money import Money, check_currency
from ...domain.receivable_import import ImportedInvoice, ImportedLine, ImportedParty, Problem

COLUMNS = ("number", "customer_ref", "customer_name", "customer_email", "customer_country", "customer_vat_number",
           "customer_siren", "issue_date", "due_date", "currency", "amount_excl_vat", "vat_amount",
           "amount_incl_vat", "amount_due", "vat_rate", "vat_category", "purchase_order", "description")
REQUIRED = ("number", "customer_ref", "issue_date", "due_date", "currency", "amount_excl_vat", "vat_amount",
            "amount_incl_vat")
MAX_ROWS = 20_000
_FR_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
_AMOUNT = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _date(value: str) -> date:
    m = _FR_DATE.match(value)
    if m:
        return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    if len(value) != 10:
        raise ValueError(value)
    return date.fromisoformat(value)


def _money(value: str, currency: str, name: str) -> Money:
    text = re.sub(r"[ \u00a0\u202f]", "", value)
    if not _AMOUNT.match(text):
        raise ValidationError(f"{name} {value!r} is not a decimal such as 1200.00 or 1 200,00", field=name)
    return Money.parse(text.replace(",", "."), currency, field=name)


def read_csv(data: bytes, source: str) -> tuple[list[ImportedInvoice], list[Problem]]:
    """The invoices of a CSV file and the problems of the rows that could not be read."""
    text = _decode(data)
    if not text.strip():
        raise ValidationError(f"{source}: the CSV file is empty", field="file", code="invalid_import_file")
    first = text.splitlines()[0]
    delimiter = max((";", ",", "\t"), key=first.count)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise ValidationError(f"{source}: the CSV file cannot be read: {exc}", field="file",
                              code="invalid_import_file") from None
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValidationError(f"{source}: row 1 (header) lacks column(s) {', '.join(missing)}: see the documented "
                              f"layout ({', '.join(COLUMNS)})", field="file", code="invalid_import_file")
    if len(rows) - 1 > MAX_ROWS:
        raise ValidationError(f"{source}: more than {MAX_ROWS} rows: split the file", field="file",
                              code="invalid_import_file")
    index = {name: header.index(name) for name in COLUMNS if name in header}
    invoices: list[ImportedInvoice] = []
    problems: list[Problem] = []
    for row_number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"{source} row {row_number}"

        def cell(name: str) -> str | None:
            i = index.get(name)
            if i is None or i >= len(row):
                return None
            return " ".join(row[i].split()) or None

        number = cell("number")
        found: list[Problem] = []

        def bad(name: str, message: str) -> None:
            found.append(Problem(where, number, name, message))

        for name in REQUIRED:
            if cell(name) is None:
                bad(name, f"{name} is empty")
        if len(row) > len(header):
            bad("row", f"{len(row)} fields but the header has {len(header)} (an unquoted separator?)")
        values: dict[str, Any] = {}
        currency = None
        if cell("currency"):
            try:
                currency = check_currency(cell("currency"))
            except ValidationError as exc:
                bad("currency", exc.message)
        for name in ("issue_date", "due_date"):
            raw = cell(name)
            if raw:
                try:
                    values[name] = _date(raw)
                except ValueError:
                    bad(name, f"{name} {raw!r} is not a date such as 2026-01-31 or 31/01/2026")
        if currency:
            for name in ("amount_excl_vat", "vat_amount", "amount_incl_vat", "amount_due"):
                raw = cell(name)
                if raw:
                    try:
                        values[name] = _money(raw, currency, name)
                    except ValidationError as exc:
                        bad(name, exc.message)
        rate = None
        if cell("vat_rate"):
            try:
                rate = canonical_rate(Decimal(cell("vat_rate").replace(",", ".").rstrip("%").strip()))  # type: ignore[union-attr]
                if not Decimal(0) <= rate < Decimal(100):
                    raise ValueError
            except (ArithmeticError, ValueError):
                bad("vat_rate", f"vat_rate {cell('vat_rate')!r} is not a percentage such as 20 or 5,5")
        category = (cell("vat_category") or "").upper() or None
        if category and category not in VAT_CATEGORIES:
            bad("vat_category", f"vat_category must be one of {', '.join(VAT_CATEGORIES)}")
        if found:
            problems.extend(found)
            continue
        net, vat, total = values["amount_excl_vat"], values["vat_amount"], values["amount_incl_vat"]
        if net + vat != total:
            problems.append(Problem(where, number, "amount_incl_vat",
                                    f"amount_incl_vat {total} is not amount_excl_vat {net} + vat_amount {vat}"))
            continue
        if vat.is_zero:
            category, rate = category or "E", Decimal(0)
        else:
            category = category or STANDARD
            if category != STANDARD:
                problems.append(Problem(where, number, "vat_category", f"vat_category {category} has no VAT, but "
                                        f"vat_amount is {vat}"))
                continue
            if rate is None:
                rate = _inferred_rate(net, vat)
                if rate is None:
                    problems.append(Problem(where, number, "vat_rate", f"vat_amount {vat} on {net} is not one rate "
                                            "exactly: give vat_rate (invoices with several rates: import the "
                                            "Factur-X file instead)"))
                    continue
            elif net.multiply(rate / Decimal(100)) != vat:
                problems.append(Problem(where, number, "vat_amount", f"vat_amount {vat} is not {rate} % of {net} "
                                        f"({net.multiply(rate / Decimal(100))})"))
                continue
        buyer = ImportedParty(name=cell("customer_name"), reference=cell("customer_ref"), email=cell("customer_email"),
                              country=(cell("customer_country") or "FR").upper(),
                              vat_number=cell("customer_vat_number"), siren=cell("customer_siren"))
        description = cell("description") or f"Facture {number}"
        invoices.append(ImportedInvoice(
            source=where, number=number or "", type_code="380", issue_date=values.get("issue_date"),
            due_date=values.get("due_date"), currency=currency or "EUR", buyer=buyer,
            lines=(ImportedLine(description=description, quantity=Decimal(1), unit_price=net.to_decimal(), net=net,
                                vat_category=category, vat_rate=rate),),
            line_total=net, allowance_total=Money.zero(net.currency), charge_total=Money.zero(net.currency),
            tax_exclusive=net, vat_total=vat, total=total, prepaid=Money.zero(net.currency),
            rounding=Money.zero(net.currency), payable=total,
            vat_breakdown=(VatBreakdown(category=category, rate=rate, taxable_amount=net, tax_amount=vat),),
            amount_due=values.get("amount_due") or total, purchase_order=cell("purchase_order")))
    return invoices, problems


def _inferred_rate(net: Money, vat: Money) -> Decimal | None:
    if not net.is_positive:
        return None
    for candidate in ("20", "10", "5.5", "2.1", "8.5", "13", "0.9", "19", "21", "25", "7", "9", "6"):
        rate = Decimal(candidate)
        if net.multiply(rate / Decimal(100)) == vat:
            return canonical_rate(rate)
    exact = (vat.to_decimal() * 100 / net.to_decimal()).quantize(Decimal("0.01"))
    if net.multiply(exact / Decimal(100)) == vat:
        return canonical_rate(exact)
    return None
