"""Factur-X documents of issued invoices: rendered while issuing, stored through the outbox, served as stored.

While an invoice is issued (:meth:`DocumentService.issue_hook`, after the number
is known and before the one commit), its document is rendered and checked
against the Factur-X XSD: an invoice that cannot become a compliant e-invoice is
refused (422 ``invalid_einvoice``) and the number is not used. The render spec
(everything the document needs beyond the invoice: payment means, pay link, RF
reference, credited invoice, deposits, EUR rate, the seller's terms at issue)
and both SHA-256 are recorded on the invoice in that transaction, with an
outbox message ``documents.store``.

The store handler re-renders (rendering is deterministic), checks both hashes
against the recorded ones, and writes the PDF and the XML to the document store
under the invoice id. Reads come from the store; if the handler has not run
yet, the read does its work first (render, check, store), so the bytes served
are always the recorded ones.

Deposits: a final invoice lists the paid deposit invoices it deducts
(``deposit_invoice_ids``); :meth:`DocumentService.deposits_hook` runs first
among the issue hooks, deducts what was paid on them (BT-113) and marks each
deposit as deducted, once.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Callable, Mapping, Protocol

from ..domain import creditor_reference
from ..domain.errors import NotFound, ValidationError
from ..domain.invoice import CREDIT_NOTE, DEPOSIT, INTRA_COMMUNITY, INVOICE, PAID, Invoice
from ..domain.money import money_sum
from ..domain.parties import Customer, SellerProfile
from .einvoicing import EInvoicingSettingsService
from .ports import DocumentStore, Ledger, UnitOfWork

STORE_TOPIC = "documents.store"
DEPOSIT_REF = "deposit"
PDF, XML = "pdf", "xml"
CONTENT_TYPES = {PDF: "application/pdf", XML: "application/xml"}
logger = logging.getLogger(__name__)


class Rendered(Protocol):
    pdf: bytes
    xml: bytes
    sha256_pdf: str
    sha256_xml: str


Renderer = Callable[[Invoice, Mapping[str, Any]], Rendered]


class DocumentMismatch(RuntimeError):
    """Re-rendering did not give the recorded bytes: nothing is stored (the outbox retries, then dead-letters)."""


def document_keys(invoice_id: str) -> dict[str, str]:
    return {PDF: f"invoices/{invoice_id}/factur-x.pdf", XML: f"invoices/{invoice_id}/factur-x.xml"}


def filename(invoice: Invoice, kind: str) -> str:
    return f"{invoice.number or invoice.id}.{kind}"


class DocumentService:
    def __init__(self, ledger: Ledger, settings: Any, einvoicing: EInvoicingSettingsService,
                 store: Callable[[], DocumentStore], render: Renderer,
                 pay_url: Callable[[Invoice], str | None]) -> None:
        self._ledger = ledger
        self._settings = settings           # SettingsService (the seller profile)
        self._einvoicing = einvoicing
        self._store = store                 # built lazily (S3 client)
        self._render = render
        self._pay_url = pay_url

    # -- issue hooks --------------------------------------------------------------------------------
    def deposits_hook(self, invoice: Invoice, customer: Customer, seller: SellerProfile,
                      uow: UnitOfWork) -> Invoice:
        """Deduct the paid deposits a final invoice lists (BT-113); each deposit is deducted once.
        Raises ``ValidationError`` (field deposit_invoice_ids) naming the deposit that cannot be."""
        if not invoice.deposit_invoice_ids:
            return invoice
        if invoice.kind != INVOICE:
            raise ValidationError("only a final invoice (kind invoice) deducts deposits", field="deposit_invoice_ids")
        found = self._ledger.get_invoices(invoice.deposit_invoice_ids)
        paid = []
        for deposit_id in invoice.deposit_invoice_ids:
            deposit = found.get(deposit_id)
            if deposit is None or deposit.customer_id != invoice.customer_id or deposit.kind != DEPOSIT:
                raise ValidationError(f"{deposit_id} is not a deposit invoice of this customer",
                                      field="deposit_invoice_ids")
            if deposit.status != PAID or deposit.currency != invoice.currency:
                raise ValidationError(f"deposit {deposit.number or deposit_id} is {deposit.status}"
                                      f"{'' if deposit.currency == invoice.currency else ' in ' + deposit.currency}: a "
                                      "final invoice deducts deposits already paid, in its currency",
                                      field="deposit_invoice_ids")
            used = self._ledger.get_ref(DEPOSIT_REF, deposit.id)
            if used is not None and used.target != invoice.id:
                raise ValidationError(f"deposit {deposit.number} is already deducted by another invoice "
                                      f"({used.data.get('number') or used.target})", field="deposit_invoice_ids",
                                      code="deposit_already_deducted")
            uow.put_ref(DEPOSIT_REF, deposit.id, invoice.id, {"number": invoice.number})
            paid.append(deposit.money(deposit.amount_paid - deposit.amount_reversed))
        return invoice.with_prepaid(money_sum(paid, invoice.currency), uow.now)

    def issue_hook(self, invoice: Invoice, customer: Customer, seller: SellerProfile, uow: UnitOfWork) -> Invoice:
        """Render and check the document with its number; record spec, keys and hashes; queue the store."""
        spec = self.spec_for(invoice, customer, seller)
        rendered = self._render(invoice, spec)
        keys = document_keys(invoice.id)
        uow.emit(STORE_TOPIC, {"invoice_id": invoice.id})
        return replace(invoice, documents={"pdf_key": keys[PDF], "xml_key": keys[XML],
                                           "sha256_pdf": rendered.sha256_pdf, "sha256_xml": rendered.sha256_xml,
                                           "spec": spec})

    def spec_for(self, invoice: Invoice, customer: Customer, seller: SellerProfile) -> dict[str, Any]:
        """The render spec of an invoice being issued (plain JSON; see adapters/documents/spec.py)."""
        settings = self._einvoicing.get()
        spec: dict[str, Any] = {
            "operation_category": invoice.operation_category or settings.default_operation_category,
            "payment_reference": creditor_reference.for_invoice(invoice.number, invoice.id),
            "late_penalty_rate": str(seller.late_penalty_rate) if seller.late_penalty_rate is not None else None,
            "early_payment_discount": ({"rate": str(seller.early_payment_discount.rate),
                                        "days": seller.early_payment_discount.days}
                                       if seller.early_payment_discount else None),
            "recovery_indemnity": {"amount": str(seller.recovery_indemnity),
                                   "currency": seller.recovery_indemnity.currency},
            "vat_on_debits": seller.vat_on_debits,
        }
        if invoice.kind == CREDIT_NOTE:
            if not invoice.related_invoice_id:
                raise ValidationError("a credit note must reference the invoice it corrects",
                                      field="related_invoice_id", code="invalid_einvoice")
            original = self._ledger.get_invoice(invoice.related_invoice_id)
            spec["preceding_invoice"] = {"number": original.number,
                                         "issue_date": original.issue_date.isoformat() if original.issue_date else None}
        else:
            spec["pay_url"] = self._pay_url(invoice)
            mandate = customer.mandate
            if invoice.collection_status == "scheduled" and mandate and mandate.active and mandate.reference:
                spec.update(payment_means="59", mandate_reference=mandate.reference,
                            creditor_id=seller.sepa_creditor_id)
            else:
                spec["payment_means"] = "58"
        if invoice.deposit_invoice_ids:
            deposits = self._ledger.get_invoices(invoice.deposit_invoice_ids)
            spec["deposits"] = [
                {"invoice_id": d.id, "number": d.number, "issue_date": d.issue_date.isoformat() if d.issue_date else None,
                 "amount": d.amount_paid - d.amount_reversed, "currency": d.currency}
                for d in (deposits[i] for i in invoice.deposit_invoice_ids)]
        if invoice.currency != "EUR":
            rate, when = invoice.eur_exchange_rate, None
            if rate is None and settings.rate_for(invoice.currency):
                rate, when = settings.rate_for(invoice.currency)  # type: ignore[misc]
            if rate is None and (invoice.seller or {}).get("address", {}).get("country") == "FR":
                raise ValidationError(
                    f"a French seller invoicing in {invoice.currency} states the VAT total in EUR (VAT directive "
                    "art. 230): set eur_exchange_rate on the draft, or exchange_rates."
                    f"{invoice.currency} in PUT /settings/einvoicing", field="eur_exchange_rate",
                    code="invalid_einvoice")
            if rate is not None:
                spec["eur_exchange_rate"] = str(rate)
                spec["exchange_rate_date"] = when.isoformat() if when else (
                    invoice.issue_date.isoformat() if invoice.issue_date else None)
        deliver_to = invoice.deliver_to
        if deliver_to is None and any(line.vat_category == INTRA_COMMUNITY for line in invoice.lines):
            # An intra-community supply names the country of arrival (BR-IC-12): the buyer's, unless said.
            country = (invoice.buyer or {}).get("country") or customer.country
            deliver_to = {"country": country}
        if deliver_to is not None:
            spec["deliver_to"] = deliver_to
        return spec

    # -- storing and reading ----------------------------------------------------------------------
    def store_handler(self, payload: Mapping[str, Any]) -> None:
        """Outbox ``documents.store``: render again, check the hashes, write both files."""
        invoice = self._ledger.get_invoice(payload["invoice_id"])
        if not invoice.documents:
            return  # issued before documents existed (or imported): nothing to store
        store = self._store()
        if all(store.exists(invoice.documents[f"{k}_key"]) for k in (PDF, XML)):
            return
        self._store_files(invoice)

    def _store_files(self, invoice: Invoice) -> Rendered:
        docs = invoice.documents or {}
        rendered = self._render(invoice, docs["spec"])
        if rendered.sha256_pdf != docs["sha256_pdf"] or rendered.sha256_xml != docs["sha256_xml"]:
            logger.error("re-rendered document differs from the one recorded at issue",
                         extra={"invoice_id": invoice.id})
            raise DocumentMismatch(f"invoice {invoice.id}: the document rendered now differs from the one recorded "
                                   "at issue (was the renderer or a font changed?); nothing was stored")
        store = self._store()
        store.put(docs["xml_key"], rendered.xml, CONTENT_TYPES[XML])
        store.put(docs["pdf_key"], rendered.pdf, CONTENT_TYPES[PDF])
        return rendered

    def file(self, invoice: Invoice | str, kind: str) -> bytes:
        """The stored PDF or XML of an issued invoice (stored now if the outbox has not done it yet).
        Raises ``NotFound`` for drafts and invoices issued without documents."""
        if isinstance(invoice, str):
            invoice = self._ledger.get_invoice(invoice)
        docs = invoice.documents
        if not docs:
            raise NotFound(f"invoice {invoice.number or invoice.id} has no Factur-X document"
                           + (": drafts get theirs when issued" if invoice.status == "draft" else
                              " (it was not issued here)"), code="document_not_found")
        try:
            return self._store().get(docs[f"{kind}_key"])
        except NotFound:
            rendered = self._store_files(invoice)
            return rendered.pdf if kind == PDF else rendered.xml

    def files(self, invoice: Invoice) -> tuple[bytes, bytes]:
        """(PDF, XML) as stored."""
        return self.file(invoice, PDF), self.file(invoice, XML)
