"""Use cases on invoices: drafts, issuing with gapless numbers, queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Mapping

from ..domain.auth import Actor
from ..domain.errors import InvalidTransition, ValidationError
from ..domain.ids import new_id
from ..domain.invoice import CREDIT_NOTE, DRAFT, Invoice, format_number, new_draft, patched_draft
from ..domain.parties import Customer, SellerProfile
from .common import IdempotencyRequest, idempotent, with_retries
from .events import invoice_event
from .ports import Clock, InvoiceQuery, Ledger, Page, UnitOfWork
from .settings import SettingsService

# A hook run while issuing, after the number is known and before the commit:
# it may return a changed invoice (e.g. with a document hash) and add
# operations to the unit of work (e.g. an outbox message to store the files).
# Raising ValidationError refuses the issue and leaves no gap in the numbering.
IssueHook = Callable[[Invoice, Customer, SellerProfile, UnitOfWork], Invoice]
# A guard run before a draft is created (credit limits, holds...). It raises to refuse; it may
# return a function that adds writes to the draft's unit of work (e.g. the audit of an override).
DraftGuard = Callable[[Invoice, Customer, Mapping[str, Any], Actor], "Callable[[UnitOfWork], None] | None"]
# The same, run when a draft is changed (PATCH), with the draft before and after the change.
UpdateGuard = Callable[[Invoice, Invoice, Customer, Mapping[str, Any], Actor], "Callable[[UnitOfWork], None] | None"]
# Body fields the guards read, not part of the invoice (``credit_override``: services/credit.py).
GUARD_FIELDS = ("credit_override",)


def counter_key(series: str, year: int) -> str:
    return f"{series}#{year}"


@dataclass
class InvoiceHooks:
    on_issue: list[IssueHook] = field(default_factory=list)
    draft_guards: list[DraftGuard] = field(default_factory=list)
    update_guards: list[UpdateGuard] = field(default_factory=list)
    # Run by :meth:`InvoiceService.issue` (a saved draft) before a number is taken: raising refuses the
    # issue, nothing written, no gap. Not run by ``issue_new`` (credit notes, recurring and penalty
    # invoices, which have their own checks).
    issue_guards: list[DraftGuard] = field(default_factory=list)


class InvoiceService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService,
                 hooks: InvoiceHooks | None = None) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self.hooks = hooks or InvoiceHooks()

    def today(self) -> date:
        return self._clock.today(self._settings.timezone())

    # -- drafts -------------------------------------------------------------------------------
    def create_draft(self, data: Mapping[str, Any], actor: Actor,
                     idempotency: IdempotencyRequest | None = None) -> tuple[Invoice, bool]:
        """Create a draft (no number yet); raises ``ValidationError`` / ``NotFound`` for the customer."""
        invoice_id = new_id("inv")

        def run() -> Invoice:
            customer_id = data.get("customer_id")
            if not isinstance(customer_id, str) or not customer_id:
                raise ValidationError("customer_id is required", field="customer_id")
            customer = self._ledger.get_customer(customer_id)
            now = self._clock.now()
            draft = new_draft(invoice_id, data, customer_currency=customer.currency, now=now)
            records = [guard(draft, customer, data, actor) for guard in self.hooks.draft_guards]
            uow = UnitOfWork(actor=actor, now=now)
            draft = uow.create(draft)
            for record in records:
                if record is not None:
                    record(uow)
            uow.audit("invoice.create", "invoice", draft.id, None, draft.to_dict())
            if idempotency:
                uow.claim_idempotency(idempotency.record("invoice", draft.id, now))
            self._ledger.commit(uow)
            return draft

        return idempotent(self._ledger, idempotency, "invoice", run, self._ledger.get_invoice)

    def update_draft(self, invoice_id: str, patch: Mapping[str, Any], actor: Actor) -> Invoice:
        """Change a draft; the update guards (credit holds) may refuse it. Raises ``InvalidTransition``
        (not a draft), ``ValidationError``."""
        fields = {k: v for k, v in patch.items() if k not in GUARD_FIELDS}

        def run() -> Invoice:
            current = self._ledger.get_invoice(invoice_id)
            now = self._clock.now()
            updated = patched_draft(current, fields, now=now)
            records = []
            if self.hooks.update_guards:
                customer = self._ledger.get_customer(current.customer_id)
                records = [guard(current, updated, customer, patch, actor) for guard in self.hooks.update_guards]
            uow = UnitOfWork(actor=actor, now=now)
            saved = uow.save_invoice(current, updated, action="invoice.update")
            for record in records:
                if record is not None:
                    record(uow)
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    # -- issuing ------------------------------------------------------------------------------
    def issue(self, invoice_id: str, actor: Actor, idempotency: IdempotencyRequest | None = None,
              data: Mapping[str, Any] | None = None) -> Invoice:
        """Number and issue a draft; ``data`` is the request body the issue guards read (``credit_override``).

        The counter increment, the status change and every hook's writes commit
        in one transaction conditioned on the counter value read: concurrent
        issues retry with the next number, so numbers are unique and gapless.
        Reads: invoice, customer, counter (the seller profile is cached).
        """

        def run() -> Invoice:
            seller = self._settings.seller()
            draft = self._ledger.get_invoice(invoice_id)
            if draft.status != DRAFT:
                raise InvalidTransition(
                    f"invoice {invoice_id} is already {draft.status}"
                    + (f" as {draft.number}" if draft.number else "") + ": only drafts can be issued",
                    code="already_issued")
            customer = self._ledger.get_customer(draft.customer_id)
            # before a number is taken: a refusal leaves no gap
            records = [guard(draft, customer, data or {}, actor) for guard in self.hooks.issue_guards]
            # Only the counter moves under contention: when it alone made the
            # commit fail, re-read it and try the next number without
            # re-reading the draft and the customer.
            return with_retries(lambda: self._number_and_commit(draft, customer, seller, actor, idempotency,
                                                                records=records),
                                only=("counter",))

        invoice, _ = idempotent(self._ledger, idempotency, "invoice.issue", run, self._ledger.get_invoice)
        return invoice

    def issue_new(self, draft: Invoice, actor: Actor, *, prepare: IssueHook | None = None,
                  idempotency: IdempotencyRequest | None = None) -> Invoice:
        """Create and issue, in one transaction, a document never saved as a draft (a credit note
        built from its invoice, a recurring invoice): same numbering, hooks and event as :meth:`issue`.

        ``prepare`` runs before the issue hooks, with their arguments: it may change the invoice and
        add writes to the unit of work (the credited invoice, a period marker...). Each retry runs it
        again on fresh reads. Raises what ``prepare`` or the hooks raise, nothing written.
        """

        def run() -> Invoice:
            seller = self._settings.seller()
            customer = self._ledger.get_customer(draft.customer_id)
            return with_retries(lambda: self._number_and_commit(draft, customer, seller, actor, idempotency,
                                                                 new=True, prepare=prepare), only=("counter",))

        invoice, _ = idempotent(self._ledger, idempotency, "invoice.issue", run, self._ledger.get_invoice)
        return invoice

    def _number_and_commit(self, draft: Invoice, customer: Customer, seller: SellerProfile, actor: Actor,
                           idempotency: IdempotencyRequest | None, *, new: bool = False,
                           prepare: IssueHook | None = None,
                           records: list[Callable[[UnitOfWork], None] | None] | None = None) -> Invoice:
        now = self._clock.now()
        issue_date = self._clock.today(seller.timezone)
        series = seller.credit_note_prefix if draft.kind == CREDIT_NOTE else seller.invoice_prefix
        key = counter_key(series, issue_date.year)
        last = self._ledger.get_counter(key)
        number = format_number(series, issue_date.year, last + 1)
        issued = draft.issue(number=number, series=key, issue_date=issue_date,
                             terms=draft.payment_terms or customer.payment_terms, eom_mode=seller.eom_mode,
                             jurisdiction=seller.jurisdiction, seller=seller.identity(),
                             buyer=customer.identity(), now=now)
        uow = UnitOfWork(actor=actor, now=now)
        for record in records or ():
            if record is not None:
                record(uow)
        if prepare is not None:
            issued = prepare(issued, customer, seller, uow)
        for hook in self.hooks.on_issue:
            issued = hook(issued, customer, seller, uow)
        uow.advance_counter(key, expected=last, value=last + 1)
        saved = uow.save_invoice(None if new else draft, issued, on=issue_date, action="invoice.issue")
        uow.emit("event", invoice_event("invoice.issued", saved, now))
        if idempotency:
            uow.claim_idempotency(idempotency.record("invoice.issue", saved.id, now))
        self._ledger.commit(uow)
        return saved

    # -- reads --------------------------------------------------------------------------------
    def get(self, invoice_id: str) -> Invoice:
        return self._ledger.get_invoice(invoice_id)

    def list(self, query: InvoiceQuery) -> Page[Invoice]:
        return self._ledger.query_invoices(query, self.today())
