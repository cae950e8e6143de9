"""The ledger's cash-application and import items on DynamoDB: bank transactions, import
records, batch reads of refs and customers, the name index, invoices by creation date.

Mixed into :class:`~chalicelib.adapters.dynamodb.ledger.DynamoLedger` (which provides
``_page`` and the shared connection). Keys are documented in ``models.py``:

- bank transaction ``BTX#<id>`` / ``BANKTX``; ``gsi1`` ``CUS#<cid>`` / ``BTX#<booked>#<id>``
  once a customer is known; ``gsi2`` ``BANKTX#<status>`` / ``<booked>#<id>`` only while a
  person must act (unmatched, review, unreconciled: a sparse queue, no Scan); ``gsi3``
  ``BANKTX`` (``PAYOUT`` for Stripe payouts) / ``<booked>#<id>`` for listing by date and
  for the accounting export's payouts of a period.
- import ``IMP#<id>`` / ``IMPORT``; ``gsi3`` ``IMPORT`` / ``<created>#<id>``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable, Iterable

from ...domain.bank_transaction import KIND_PAYOUT, QUEUED, BankTransaction, ImportRecord
from ...domain.errors import NotFound, ValidationError
from ...domain.invoice import Invoice
from ...domain.parties import Customer
from ...services.ports import Page, RefRecord
from ..codec import decode, encode
from .models import BankTransactionItem, CustomerItem, ImportItem, InvoiceItem, RefItem

BATCH_GET = 100  # BatchGetItem keys per request


def bank_transaction_item(t: BankTransaction) -> BankTransactionItem:
    booked = t.booking_date.isoformat()
    item = BankTransactionItem(
        pk=f"BTX#{t.id}", sk="BANKTX", kind="bank_transaction", status=t.status, customer_id=t.customer_id,
        booking_date=booked, gsi3pk="PAYOUT" if t.kind == KIND_PAYOUT else "BANKTX", gsi3sk=f"{booked}#{t.id}",
        data=encode(t), version=t.version)
    if t.customer_id:
        item.gsi1pk, item.gsi1sk = f"CUS#{t.customer_id}", f"BTX#{booked}#{t.id}"
    if t.status in QUEUED:
        item.gsi2pk, item.gsi2sk = f"BANKTX#{t.status}", f"{booked}#{t.id}"
    return item


def import_item(r: ImportRecord) -> ImportItem:
    return ImportItem(pk=f"IMP#{r.id}", sk="IMPORT", kind="import", status=r.status, gsi3pk="IMPORT",
                      gsi3sk=f"{r.created_at.isoformat()}#{r.id}", data=encode(r), version=r.version)


def cashapp_item(entity: Any) -> Any:
    """The item of a cash-application entity (None when ``entity`` is not one)."""
    if isinstance(entity, BankTransaction):
        return bank_transaction_item(entity)
    if isinstance(entity, ImportRecord):
        return import_item(entity)
    return None


def _to_bank_transaction(item: BankTransactionItem) -> BankTransaction:
    return decode(BankTransaction, item.data)


class CashAppLedger:
    """Ledger methods of issue 8 (see :class:`chalicelib.services.ports.Ledger`)."""

    _page: Callable[..., Page[Any]]

    # -- batch reads ------------------------------------------------------------------------------
    def get_refs(self, kind: str, values: Iterable[str]) -> dict[str, RefRecord]:
        wanted = list(dict.fromkeys(v for v in values if v))
        out: dict[str, RefRecord] = {}
        prefix = f"REF#{kind}#"
        for start in range(0, len(wanted), BATCH_GET):
            keys = [(prefix + v, "REF") for v in wanted[start:start + BATCH_GET]]
            for item in RefItem.batch_get(keys, consistent_read=True):
                value = item.pk[len(prefix):]
                out[value] = RefRecord(kind=kind, value=value, target=item.target, data=item.data or {},
                                       created_at=item.created_at)
        return out

    def get_customers(self, customer_ids: Iterable[str]) -> dict[str, Customer]:
        wanted = list(dict.fromkeys(c for c in customer_ids if c))
        out: dict[str, Customer] = {}
        for start in range(0, len(wanted), BATCH_GET):
            keys = [(f"CUS#{c}", "CUSTOMER") for c in wanted[start:start + BATCH_GET]]
            for item in CustomerItem.batch_get(keys):
                customer = decode(Customer, item.data)
                out[customer.id] = customer
        return out

    def find_customers_by_name(self, prefix: str, *, limit: int = 50) -> list[Customer]:
        folded = prefix.casefold()[:80]
        if not folded.strip():
            return []
        page = self._page(CustomerItem, CustomerItem.by_kind, ("pk", "sk", "gsi3pk", "gsi3sk"), "CUSTOMER",
                          CustomerItem.gsi3sk.startswith(folded), None, True, limit, None,
                          lambda i: decode(Customer, i.data))
        return list(page.items)

    def list_invoices_created(self, start: datetime, end: datetime, *, limit: int = 200,
                              cursor: str | None = None) -> Page[Invoice]:
        # gsi3sk is "<created_at isoformat>#<id>"; "~" sorts after every id character.
        rng = InvoiceItem.gsi3sk.between(start.isoformat(), f"{end.isoformat()}")
        page = self._page(InvoiceItem, InvoiceItem.by_kind, ("pk", "sk", "gsi3pk", "gsi3sk"), "INVOICE", rng, None,
                          True, limit, cursor, lambda i: decode(Invoice, i.data))
        return page

    # -- bank transactions ------------------------------------------------------------------------
    def get_bank_transaction(self, transaction_id: str) -> BankTransaction:
        try:
            item = BankTransactionItem.get(f"BTX#{transaction_id}", "BANKTX", consistent_read=True)
        except BankTransactionItem.DoesNotExist:
            raise NotFound(f"bank transaction {transaction_id} does not exist",
                           code="bank_transaction_not_found") from None
        return _to_bank_transaction(item)

    def get_bank_transactions(self, transaction_ids: Iterable[str]) -> dict[str, BankTransaction]:
        wanted = list(dict.fromkeys(transaction_ids))
        out: dict[str, BankTransaction] = {}
        for start in range(0, len(wanted), BATCH_GET):
            keys = [(f"BTX#{t}", "BANKTX") for t in wanted[start:start + BATCH_GET]]
            for item in BankTransactionItem.batch_get(keys, consistent_read=True):
                t = _to_bank_transaction(item)
                out[t.id] = t
        return out

    def list_bank_transactions(self, *, status: str | None = None, customer_id: str | None = None,
                               booked_from: date | None = None, booked_to: date | None = None,
                               limit: int = 50, cursor: str | None = None) -> Page[BankTransaction]:
        m = BankTransactionItem
        lo = booked_from.isoformat() if booked_from else None
        hi = f"{booked_to.isoformat()}#~" if booked_to else None
        if customer_id:
            low = f"BTX#{lo}" if lo else "BTX#"
            high = f"BTX#{hi}" if hi else "BTX#~"
            return self._page(m, m.by_customer, ("pk", "sk", "gsi1pk", "gsi1sk"), f"CUS#{customer_id}",
                              m.gsi1sk.between(low, high), m.status == status if status else None, False, limit,
                              cursor, _to_bank_transaction)
        if status in QUEUED:
            return self._page(m, m.queue, ("pk", "sk", "gsi2pk", "gsi2sk"), f"BANKTX#{status}",
                              _between(m.gsi2sk, lo, hi), None, True, limit, cursor, _to_bank_transaction)
        partition = "PAYOUT" if status in ("reconciled", "unreconciled") else "BANKTX"
        return self._page(m, m.by_kind, ("pk", "sk", "gsi3pk", "gsi3sk"), partition, _between(m.gsi3sk, lo, hi),
                          m.status == status if status else None, False, limit, cursor, _to_bank_transaction)

    def list_payouts(self, booked_from: date, booked_to: date, *, limit: int = 200,
                     cursor: str | None = None) -> Page[BankTransaction]:
        """Stripe payouts booked in ``[booked_from, booked_to]``, oldest first (their own partition)."""
        m = BankTransactionItem
        return self._page(m, m.by_kind, ("pk", "sk", "gsi3pk", "gsi3sk"), "PAYOUT",
                          m.gsi3sk.between(booked_from.isoformat(), f"{booked_to.isoformat()}#~"), None, True, limit,
                          cursor, _to_bank_transaction)

    # -- imports ----------------------------------------------------------------------------------
    def get_import(self, import_id: str) -> ImportRecord | None:
        try:
            item = ImportItem.get(f"IMP#{import_id}", "IMPORT", consistent_read=True)
        except ImportItem.DoesNotExist:
            return None
        return decode(ImportRecord, item.data)


def _between(attr: Any, low: str | None, high: str | None) -> Any:
    if low and high:
        if low > high:
            raise ValidationError("the date range is empty: booked_from is after booked_to", field="booked_from")
        return attr.between(low, high)
    if low:
        return attr >= low
    if high:
        return attr <= high
    return None
