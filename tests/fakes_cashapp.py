"""In-memory cash-application ledger methods, mixed into ``tests.fakes.FakeLedger``.

Same contract as ``chalicelib/adapters/dynamodb/cashapp.py`` (checked by
tests/cashapp/test_ledger_contract.py against both): the same orderings, the same
sparse queues, the same prefixes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable, Iterable

from chalicelib.domain.bank_transaction import KIND_PAYOUT, QUEUED, BankTransaction, ImportRecord
from chalicelib.domain.errors import NotFound, ValidationError
from chalicelib.domain.invoice import Invoice
from chalicelib.domain.parties import Customer
from chalicelib.services.ports import Page, RefRecord


class FakeCashAppLedger:
    entities: dict[tuple[str, str], Any]
    refs: dict[tuple[str, str], RefRecord]
    _all: Callable[[str], list[Any]]
    _paginate: Callable[..., Page[Any]]

    def get_refs(self, kind: str, values: Iterable[str]) -> dict[str, RefRecord]:
        return {v: self.refs[(kind, v)] for v in values if (kind, v) in self.refs}

    def get_customers(self, customer_ids: Iterable[str]) -> dict[str, Customer]:
        return {c: self.entities[("customer", c)] for c in customer_ids if ("customer", c) in self.entities}

    def find_customers_by_name(self, prefix: str, *, limit: int = 50) -> list[Customer]:
        folded = prefix.casefold()[:80]
        if not folded.strip():
            return []
        found = [c for c in self._all("customer") if f"{c.name.casefold()[:80]}#{c.id}".startswith(folded)]
        return sorted(found, key=lambda c: (c.name.casefold()[:80], c.id))[:limit]

    def list_invoices_created(self, start: datetime, end: datetime, *, limit: int = 200,
                              cursor: str | None = None) -> Page[Invoice]:
        items = [i for i in self._all("invoice") if start <= i.created_at < end]
        return self._paginate(items, lambda i: (i.created_at, i.id), limit, cursor)

    def get_bank_transaction(self, transaction_id: str) -> BankTransaction:
        found = self.entities.get(("bank_transaction", transaction_id))
        if found is None:
            raise NotFound(f"bank transaction {transaction_id} does not exist", code="bank_transaction_not_found")
        return found

    def get_bank_transactions(self, transaction_ids: Iterable[str]) -> dict[str, BankTransaction]:
        return {t: self.entities[("bank_transaction", t)] for t in transaction_ids
                if ("bank_transaction", t) in self.entities}

    def list_bank_transactions(self, *, status: str | None = None, customer_id: str | None = None,
                               booked_from: date | None = None, booked_to: date | None = None,
                               limit: int = 50, cursor: str | None = None) -> Page[BankTransaction]:
        if booked_from and booked_to and booked_from > booked_to:
            raise ValidationError("the date range is empty: booked_from is after booked_to", field="booked_from")
        items = [t for t in self._all("bank_transaction")
                 if (booked_from is None or t.booking_date >= booked_from)
                 and (booked_to is None or t.booking_date <= booked_to)]
        if customer_id:
            items = [t for t in items if t.customer_id == customer_id and (status is None or t.status == status)]
            return self._paginate(items, lambda t: (t.booking_date, t.id), limit, cursor, reverse=True)
        if status in QUEUED:
            items = [t for t in items if t.status == status]
            return self._paginate(items, lambda t: (t.booking_date, t.id), limit, cursor)
        payouts = status in ("reconciled", "unreconciled")
        items = [t for t in items if (t.kind == KIND_PAYOUT) == payouts and (status is None or t.status == status)]
        return self._paginate(items, lambda t: (t.booking_date, t.id), limit, cursor, reverse=True)

    def list_payouts(self, booked_from: date, booked_to: date, *, limit: int = 200,
                     cursor: str | None = None) -> Page[BankTransaction]:
        items = [t for t in self._all("bank_transaction")
                 if t.kind == KIND_PAYOUT and booked_from <= t.booking_date <= booked_to]
        return self._paginate(items, lambda t: (t.booking_date, t.id), limit, cursor)

    def get_import(self, import_id: str) -> ImportRecord | None:
        return self.entities.get(("import", import_id))


def cashapp_entity_key(entity: Any) -> tuple[str, str] | None:
    if isinstance(entity, BankTransaction):
        return "bank_transaction", entity.id
    if isinstance(entity, ImportRecord):
        return "import", entity.id
    return None
