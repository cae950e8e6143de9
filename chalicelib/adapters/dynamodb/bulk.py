"""Bulk loading for seeds and benchmarks: BatchWriteItem instead of one transaction per invoice.

Aggregates are built by the same domain code the app uses on every change
(``deltas_for_invoice_change`` + ``merge_deltas``), so reports on bulk-loaded
data are exactly what they would be had each invoice gone through the API.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from ...domain.aggregates import AggregateKey, apply_updates, deltas_for_invoice_change, merge_deltas
from ...domain.invoice import Invoice
from .ledger import DynamoLedger, invoice_item
from .models import InvoiceItem


def bulk_put_invoices(ledger: DynamoLedger, pairs: Iterable[tuple[Invoice | None, Invoice]]) -> list[Invoice]:
    """Write ``after`` invoices (``before`` is the draft they came from, or None) with their
    histories, and add their aggregate deltas. Not transactional: for empty or seeded tables."""
    items: dict[AggregateKey, dict[str, int]] = {}
    written = []
    with InvoiceItem.batch_write() as batch:
        for before, after in pairs:
            on = after.issue_date or after.created_at.date()
            deltas, history = deltas_for_invoice_change(before, after, on=on)
            if history is not None:
                after = replace(after, ledger_history=history.to_dict())
            apply_updates(items, merge_deltas(deltas))
            after = replace(after, version=max(after.version, 1))
            batch.save(invoice_item(after))
            written.append(after)
    existing = ledger.get_aggregates(list(items))
    for key, cells in existing.items():
        for cell, value in cells.items():
            items[key][cell] = items[key].get(cell, 0) + value
    ledger.put_aggregates(items)
    return written
