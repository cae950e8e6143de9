"""The by-number lookup of invoices: a ``number`` ref per issued or imported invoice.

Bank transfers name invoices by number or by RF creditor reference; matching them
must not read the ledger, so each invoice number gets a keyed fact
``REF#number#<canonical number>`` -> invoice id, written in the same transaction as
the issue (``number_ref_hook``, an ``InvoiceHooks.on_issue`` hook) or the import.
The canonical form forgives spacing, case, dashes and O/0, I/1, L/1. When the RF
reference of an invoice had to be derived from its id (a number longer than ISO
11649 allows), the reference's body is indexed too.
"""

from __future__ import annotations

from typing import Any

from ..domain import creditor_reference
from ..domain.invoice import Invoice
from ..domain.matching import canonical_number
from ..domain.parties import Customer, SellerProfile
from .ports import UnitOfWork

NUMBER_REF = "number"


def number_key(number: str) -> str:
    """The key of an invoice number in the ``number`` ref index."""
    return canonical_number(number)


def number_refs(invoice: Invoice) -> list[tuple[str, dict[str, Any]]]:
    """The ``number`` refs of an issued invoice: its number, and the body of its RF reference when
    that reference was derived from the id."""
    if not invoice.number:
        return []
    data = {"number": invoice.number, "customer_id": invoice.customer_id,
            "issue_date": invoice.issue_date.isoformat() if invoice.issue_date else None}
    keys = [number_key(invoice.number)]
    rf = creditor_reference.for_invoice(invoice.number, invoice.id)
    body = number_key(rf[4:])
    if body not in keys:
        keys.append(body)
    return [(k, data) for k in keys if k]


def number_ref_hook(invoice: Invoice, customer: Customer, seller: SellerProfile, uow: UnitOfWork) -> Invoice:
    """InvoiceHooks.on_issue: the by-number lookup commits with the issue itself.

    Our own numbers win the index (``must_not_exist=False``): imports refuse a number
    that is already there or that belongs to one of our own series.
    """
    for key, data in number_refs(invoice):
        uow.put_ref(NUMBER_REF, key, invoice.id, data, must_not_exist=False)
    return invoice


def payment_reference(invoice: Invoice) -> str | None:
    """The ISO 11649 RF reference a payer should give for this invoice (None before it is issued)."""
    return creditor_reference.for_invoice(invoice.number, invoice.id) if invoice.number else None
