"""Cash application: bank statements in, payments allocated to invoices, a review list for the rest.

``BankService.import_statement`` reads a camt.053 / camt.054 file or the documented
CSV layout, refuses a malformed or foreign-account file before changing anything,
then for each bank transaction:

- a customer credit is matched (``domain.matching``: RF reference / invoice number,
  then the customer by debtor IBAN seen before or by name with the oldest open invoice
  of exactly that amount, the smallest combination of up to 5 open invoices, the
  early-payment discounted amount) and becomes a ``source="bank"`` payment with its
  allocations; what matches nothing, or ambiguously, stays unapplied cash on the
  review list (``GET /bank-transactions?status=unmatched``); an overpayment leaves its
  excess as the customer's credit;
- a Stripe payout is reconciled with its balance transactions through the gateway
  (charges - refunds - fees = the amount received): not customer money, and its fees
  are booked by the accounting export;
- a returned customer payment reverses the payment it returns (found by end-to-end id);
- one of the seller's own transfers coming back is recorded and ignored.

Idempotency: every bank transaction is stored under an id derived from the statement's
stable per-transaction key, written with a "must not exist" condition in the same
DynamoDB transaction as its payment, allocations, audit entries, events and report
aggregates. Re-importing the same or an overlapping statement skips what is known.
Large statements are read and matched by slices of ``MATCH_SLICE`` transfers, each
written before the next is read, in chunks (at most ``MAX_ALLOCATIONS`` allocations and
100 items per transaction): a crash or a timeout leaves whole transactions only, and
sending the same file again resumes where it stopped.

Reads are proportional to the statement and to the customers it names, never to the
ledger: invoices by number (the ``number`` refs written at issue / import), debtor
IBANs seen before (``iban`` refs), customers by name (the name-ordered index, a few
prefixes per debtor name), then the open invoices of the customers identified that way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..domain.aggregates import merge_deltas
from ..domain.auth import Actor
from ..domain.bank_transaction import (ALLOCATED, IGNORED, KIND_CREDIT, KIND_OWN_RETURN, KIND_PAYOUT, KIND_RETURN,
                                       MATCHED, RECONCILED, REVERSED, REVIEW, UNMATCHED, UNRECONCILED,
                                       BankTransaction, transaction_id)
from ..domain.errors import BadRequest, InvalidTransition, PaymentGatewayError, ValidationError
from ..domain.invoice import OPEN, PAID, Invoice
from ..domain.matching import (LEGAL_FORMS, REVIEW_BELOW, BalanceTransaction, BankCredit, MatchingView, MatchResult,
                               OpenInvoice, canonical_iban, identify_customer, lookup_keys,
                               match_statement, reconcile_payout, stripe_payout_id)
from ..domain.money import Money
from ..domain.parties import Customer, SellerProfile
from ..domain.payment import MAX_ALLOCATIONS, Payment, parse_allocations, reversal_plan
from ..observability import count, logger
from .common import diff, with_retries
from .events import invoice_event, payment_event
from .invoice_numbers import NUMBER_REF, number_key
from .ports import CommitConflict, Clock, InvoiceQuery, Ledger, Page, PaymentGateway, UnitOfWork
from .settings import SettingsService

# Ref kinds this service reads and writes (NUMBER_REF: see invoice_numbers).
IBAN_REF = "iban"       # debtor IBAN -> customer id (learned from confident matches and clerk allocations)
E2E_REF = "e2e"         # end-to-end id + amount of a credit -> bank transaction id (to reverse a return)

MAX_TRANSACTION_ITEMS = 95  # DynamoDB allows 100 items per transaction; keep a margin
MAX_PROBES_PER_CREDIT = 12
NAME_PAGE = 50
DEFAULT_TIME_BUDGET_S = 20.0
MATCH_SLICE = 500  # transfers read and matched together before their writes  # API Gateway gives a request 29 s; what is left is reported "not_processed"
FORMATS = ("camt", "csv")


# -- reports ------------------------------------------------------------------------------------------

@dataclass
class EntryReport:
    """What happened to one bank transaction of the file."""

    status: str  # matched, review, unmatched, reconciled, unreconciled, reversed, ignored, already_imported,
    #              duplicate_in_file, pending, debit, not_processed
    amount: Money
    booking_date: date | None
    key: str | None = None
    id: str | None = None
    kind: str | None = None
    reason: str = ""
    rule: str | None = None
    confidence: float | None = None
    customer_id: str | None = None
    payment_id: str | None = None
    allocations: list[dict[str, Any]] = field(default_factory=list)
    unapplied: Money | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "kind": self.kind, "status": self.status,
                "amount": str(self.amount), "currency": self.amount.currency,
                "booking_date": self.booking_date.isoformat() if self.booking_date else None,
                "rule": self.rule, "confidence": self.confidence, "customer_id": self.customer_id,
                "payment_id": self.payment_id, "allocations": self.allocations,
                "unapplied": str(self.unapplied) if self.unapplied is not None else None, "reason": self.reason}


@dataclass
class StatementReport:
    dry_run: bool
    statements: list[dict[str, Any]] = field(default_factory=list)
    entries: list[EntryReport] = field(default_factory=list)
    commits: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # parse, match (reads included), write

    @property
    def complete(self) -> bool:
        return not any(e.status == "not_processed" for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for e in self.entries:
            counts[e.status] = counts.get(e.status, 0) + 1
        return {"object": "bank_statement_import", "dry_run": self.dry_run, "complete": self.complete,
                "transactions_committed": self.commits,
                "statements": self.statements, "summary": dict(sorted(counts.items())),
                "entries": [e.to_dict() for e in self.entries]}


# -- internal plan -------------------------------------------------------------------------------------

@dataclass
class _Credit:
    credit: BankCredit
    txn: BankTransaction  # what will be stored (status set after matching)
    result: MatchResult | None = None


@dataclass
class _Plan:
    """The writes of one bank transaction, ready to join a chunk."""

    txn: BankTransaction
    report: EntryReport
    uow: UnitOfWork
    invoices: set[str]
    refs: set[tuple[str, str]]
    allocations: int
    # Builds the plan again from fresh reads (after a conflict); None: the plan reads nothing that moves.
    remake: Callable[[], _Plan] | None = None


@dataclass
class _Context:
    """What one import reads once and every plan shares."""

    actor: Actor
    now: datetime
    invoices: dict[str, Invoice] = field(default_factory=dict)  # latest state, including planned changes
    known_ibans: dict[str, str] = field(default_factory=dict)   # debtor IBAN -> customer (read or learned)


def _mask_iban(iban: str | None) -> str | None:
    return f"{iban[:4]}…{iban[-4:]}" if iban else None


def _text(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


class BankService:
    """Statement import, the review list and the clerk's one-call allocation.

    ``gateway`` is a zero-argument callable returning the payment gateway (Stripe),
    called only when a statement contains a Stripe payout.
    """

    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService,
                 gateway: Callable[[], PaymentGateway] | None = None, *,
                 time_budget_s: float = DEFAULT_TIME_BUDGET_S, max_allocations: int = MAX_ALLOCATIONS) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self._gateway = gateway
        self._time_budget_s = time_budget_s
        self._max_allocations = max_allocations

    # == import ===========================================================================================
    def parse(self, body: bytes, *, fmt: str | None = None, content_type: str | None = None) -> tuple[Any, ...]:
        """Parse and check a statement file: camt (XML) or the documented CSV layout.

        Raises ``ValidationError`` (422) for a malformed file or a statement of another account
        than the seller's; nothing is read from or written to the ledger before that.
        """
        from ..adapters.bank import check_account, parse_camt, parse_csv

        if not body or not body.strip():
            raise BadRequest("the request body is empty: send the statement file (camt.053 / camt.054 XML or the "
                             "documented CSV layout)", field="file", code="empty_file")
        if fmt is not None and fmt not in FORMATS:
            raise BadRequest(f"format must be one of {', '.join(FORMATS)}", field="format")
        kind = fmt or _sniff(body, content_type)
        seller = self._settings.seller()
        statements = parse_camt(body) if kind == "camt" else (parse_csv(body, account_iban=seller.iban),)
        for statement in statements:
            check_account(statement, seller.iban)
        return statements

    def import_statement(self, body: bytes, actor: Actor, *, fmt: str | None = None, content_type: str | None = None,
                         dry_run: bool = False) -> StatementReport:
        """Import a bank statement (see the module docstring); returns what happened to each transaction.

        With ``dry_run`` nothing is written: the report says what would happen. Raises
        ``ValidationError`` for a bad or foreign file (nothing changed).
        """
        started = time.monotonic()
        statements = self.parse(body, fmt=fmt, content_type=content_type)
        parsed = time.monotonic()
        seller = self._settings.seller()
        report = StatementReport(dry_run=dry_run)
        now = self._clock.now()
        credits: list[_Credit] = []
        payouts: list[_Credit] = []
        returns: list[BankTransaction] = []
        others: list[BankTransaction] = []
        seen: set[str] = set()
        order: list[tuple[str, Any]] = []  # report order: ("txn", id) or ("report", EntryReport)
        for statement in statements:
            report.statements.append({
                "message_id": statement.message_id, "statement_id": statement.statement_id,
                "format": statement.format, "account": _mask_iban(statement.account_iban),
                "currency": statement.currency, "entries": len(statement.entries),
                "opening_balance": str(statement.opening_balance) if statement.opening_balance else None,
                "closing_balance": str(statement.closing_balance) if statement.closing_balance else None,
                "balances_reconcile": statement.balances_reconcile})
            for position, entry in enumerate(statement.entries):
                for detail in entry.details:
                    row = self._classify(statement, entry, detail, now)
                    if isinstance(row, EntryReport):
                        order.append(("report", row))
                        continue
                    if row.id in seen:
                        order.append(("report", EntryReport(
                            "duplicate_in_file", row.amount, row.booking_date, key=row.key, id=row.id, kind=row.kind,
                            reason="the same bank transaction appears earlier in this file: imported once")))
                        continue
                    seen.add(row.id)
                    order.append(("txn", row.id))
                    if row.kind == KIND_CREDIT:
                        credit = BankCredit(key=row.key, amount=row.amount, booking_date=row.booking_date,
                                            debtor_name=row.debtor_name, debtor_iban=row.debtor_iban,
                                            remittance=row.remittance or "",
                                            structured_reference=row.structured_reference)
                        target = payouts if stripe_payout_id(credit.text, credit.debtor_name) else credits
                        target.append(_Credit(credit, replace(row, kind=KIND_PAYOUT) if target is payouts else row))
                    elif row.kind == KIND_RETURN:
                        returns.append(row)
                    else:
                        others.append(row)
        all_ids = [t for kind, t in order if kind == "txn"]
        existing = self._ledger.get_bank_transactions(all_ids)
        done: dict[str, EntryReport] = {}
        for tid, known in existing.items():
            done[tid] = EntryReport("already_imported", known.amount, known.booking_date, key=known.key, id=tid,
                                    kind=known.kind, customer_id=known.customer_id, payment_id=known.payment_id,
                                    rule=known.rule, reason=f"imported before ({known.status}); nothing changed")
        credits = [c for c in credits if c.txn.id not in existing]
        payouts = [p for p in payouts if p.txn.id not in existing]
        returns = [r for r in returns if r.id not in existing]
        others = [o for o in others if o.id not in existing]

        position = {tid: i for i, tid in enumerate(all_ids)}
        credits.sort(key=lambda c: (c.credit.booking_date, position[c.txn.id]))
        ctx = _Context(actor=actor, now=now)
        report.seconds["parse"] = round(parsed - started, 3)
        report.seconds["match"] = report.seconds["write"] = 0.0
        # Slices: each reads what its transfers name, matches, then commits, so a statement too big for one
        # request's time budget still progresses by whole slices (the next request skips what is done).
        for first in range(0, len(credits), MATCH_SLICE):
            if not dry_run and time.monotonic() - started > self._time_budget_s:
                break
            part = credits[first:first + MATCH_SLICE]
            t0 = time.monotonic()
            self._match(part, seller, ctx)
            t1 = time.monotonic()
            done.update(self._run([lambda c=c: self._plan_credit(c, ctx) for c in part], report, dry_run, started))
            report.seconds["match"] += round(t1 - t0, 3)  # with its reads: refs, invoices, names
            report.seconds["write"] += round(time.monotonic() - t1, 3)
        plans: list[Callable[[], _Plan]] = []
        for p in payouts:
            plans.append(lambda p=p: self._plan_payout(p, ctx))
        for r in returns:
            plans.append(lambda r=r: self._plan_return(r, ctx))
        for o in others:
            plans.append(lambda o=o: self._plan_plain(o, ctx))
        t1 = time.monotonic()
        done.update(self._run(plans, report, dry_run, started))
        report.seconds["write"] += round(time.monotonic() - t1, 3)
        rows = {c.txn.id: c.txn for c in (*credits, *payouts)} | {t.id: t for t in (*returns, *others)}
        for kind, value in order:
            if kind == "report":
                report.entries.append(value)
            elif value in done:
                report.entries.append(done[value])
            else:
                row = rows[value]
                report.entries.append(EntryReport(
                    "not_processed", row.amount, row.booking_date, key=row.key, id=row.id, kind=row.kind,
                    reason="not processed within this request's time budget: send the same file again to continue "
                    "(what was imported is skipped)"))
        if not dry_run:
            count("BankStatementImported")
            count("BankTransactionsImported", sum(1 for e in report.entries if e.status in (
                MATCHED, REVIEW, UNMATCHED, RECONCILED, UNRECONCILED, REVERSED, IGNORED)))
            logger.info("bank statement imported", extra={"summary": report.to_dict()["summary"]})
        return report

    # -- classification -------------------------------------------------------------------------------------
    def _classify(self, statement: Any, entry: Any, detail: Any, now: datetime) -> BankTransaction | EntryReport:
        from ..adapters.bank import CUSTOMER_CREDIT, DEBIT_ENTRY, NOT_BOOKED, RETURN, classify_entry

        category = classify_entry(entry)
        if category == NOT_BOOKED:
            return EntryReport("pending", detail.amount, entry.booking_date, key=detail.key,
                               reason=f"entry status {entry.status}: imported once the bank books it (same key)")
        if category == DEBIT_ENTRY:
            return EntryReport("debit", detail.amount, entry.booking_date, key=detail.key,
                               reason="money out: not part of cash application")
        if entry.booking_date is None or not detail.amount.is_positive:
            return EntryReport("ignored", detail.amount, entry.booking_date, key=detail.key,
                               reason="no booking date or a zero amount")
        kind = KIND_CREDIT if category == CUSTOMER_CREDIT else (
            KIND_OWN_RETURN if category == RETURN and entry.is_credit else KIND_RETURN)
        return BankTransaction(
            id=transaction_id(detail.key), key=detail.key, kind=kind, status=UNMATCHED, amount=detail.amount,
            booking_date=entry.booking_date, account_iban=statement.account_iban, imported_at=now, updated_at=now,
            statement_id=statement.statement_id or statement.message_id, value_date=entry.value_date,
            entry_ref=entry.entry_ref, end_to_end_id=detail.end_to_end_id,
            debtor_name=(detail.debtor_name or detail.ultimate_debtor_name) if entry.is_credit else detail.creditor_name,
            debtor_iban=detail.debtor_iban if entry.is_credit else detail.creditor_iban,
            remittance=_text(detail.remittance_unstructured, detail.additional_info)[:1000] or None,
            structured_reference=detail.creditor_reference)

    # -- matching -------------------------------------------------------------------------------------------
    def _match(self, credits: Sequence[_Credit], seller: SellerProfile, ctx: _Context) -> None:
        """Load what the credits name, build the view and match (results on each credit, reads in ``ctx``)."""
        if not credits:
            return
        prefixes = tuple(dict.fromkeys((seller.invoice_prefix, seller.credit_note_prefix)))
        probes: dict[str, list[str]] = {}
        for c in credits:
            probes[c.credit.key] = _number_probes(c.credit, prefixes)
        refs = self._ledger.get_refs(NUMBER_REF, {k for keys in probes.values() for k in keys})
        invoices = self._ledger.get_invoices({r.target for r in refs.values()})
        invoices.update({i: ctx.invoices[i] for i in invoices if i in ctx.invoices})  # an earlier slice's changes
        ibans = {canonical_iban(c.credit.debtor_iban) for c in credits} - {None}
        known_ibans = {iban: ref.target for iban, ref in self._ledger.get_refs(IBAN_REF, ibans).items()}  # type: ignore[arg-type]
        names: dict[str, str] = {}
        name_cache: dict[str, list[Customer]] = {}
        for c in credits:
            iban = canonical_iban(c.credit.debtor_iban)
            if iban in known_ibans or not c.credit.debtor_name:
                continue
            for prefix, longer in _name_prefixes(c.credit.debtor_name):
                while True:
                    if prefix not in name_cache:
                        name_cache[prefix] = self._ledger.find_customers_by_name(prefix, limit=NAME_PAGE)
                    for customer in name_cache[prefix]:
                        names[customer.id] = customer.name
                    # A common first word ("boulangerie") fills the page: narrow with the next words.
                    if len(name_cache[prefix]) < NAME_PAGE or not longer:
                        break
                    prefix, longer = f"{prefix} {longer[0]}", longer[1:]
        discount = seller.early_payment_discount
        rate, days = (discount.rate, discount.days) if discount else (None, None)

        def open_view(invs: Iterable[Invoice]) -> list[OpenInvoice]:
            out = []
            for inv in invs:
                if inv.status == OPEN and inv.number and inv.issue_date and inv.amount_due.is_positive:
                    out.append(OpenInvoice.from_invoice(inv, discount_rate=rate, discount_days=days))
            return out

        identity_view = MatchingView(invoices=(), known_ibans=known_ibans, customer_names=names)
        wanted: set[str] = set()
        referenced = {inv.id for inv in invoices.values() if inv.status == OPEN}
        for c in credits:
            named = [refs[k].target for k in probes[c.credit.key] if k in refs]
            usable = [i for i in named if i in referenced and invoices[i].currency == c.credit.amount.currency]
            if usable:
                continue
            customer_id, _, ambiguous = identify_customer(c.credit, identity_view)
            if customer_id:
                wanted.add(customer_id)
        for customer_id in sorted(wanted):
            for inv in self._open_invoices(customer_id):
                invoices.setdefault(inv.id, ctx.invoices.get(inv.id, inv))
        view = MatchingView(invoices=tuple(open_view(invoices.values())), known_ibans=known_ibans,
                            customer_names=names)
        results = match_statement([c.credit for c in credits], view)
        for c, result in zip(credits, results):
            c.result = result
        ctx.invoices.update(invoices)
        ctx.known_ibans.update(known_ibans)

    def _open_invoices(self, customer_id: str) -> list[Invoice]:
        out: list[Invoice] = []
        cursor = None
        while True:
            page = self._ledger.query_invoices(InvoiceQuery(customer_id=customer_id, status=OPEN, limit=200,
                                                            cursor=cursor), self._clock.now().date())
            out.extend(page.items)
            cursor = page.next_cursor
            if not cursor:
                return out

    # -- plans ------------------------------------------------------------------------------------------
    def _plan_credit(self, c: _Credit, ctx: _Context, note: str | None = None) -> _Plan:
        result = c.result
        if result is None:  # pragma: no cover - every credit is matched before planning
            raise RuntimeError("credit planned before matching")
        txn = c.txn
        now = ctx.now
        invoices = ctx.invoices
        uow = UnitOfWork(actor=ctx.actor, now=now)
        currency = txn.currency
        status = MATCHED if result.status == "matched" else UNMATCHED
        reason = result.reason + (f"; {note}" if note else "")
        allocations = list(result.allocations)
        discounts = {d.invoice_id: d.amount for d in result.discounts}
        if len(allocations) > self._max_allocations:
            dropped = allocations[self._max_allocations:]
            allocations = allocations[:self._max_allocations]
            reason += (f"; only the first {self._max_allocations} invoices are allocated automatically, the rest "
                       f"({', '.join(a.invoice_number for a in dropped)}) stays unapplied for a clerk")
            status = REVIEW
        if status == MATCHED and result.confidence < REVIEW_BELOW:
            status = REVIEW
        payment = Payment(id=f"pay_{txn.id[4:]}", customer_id=result.customer_id, amount=txn.amount,
                          method="bank_transfer", received_on=txn.booking_date, created_at=now, updated_at=now,
                          reference=(txn.structured_reference or txn.remittance or "")[:140] or None,
                          provider_ref=txn.key[:255], source="bank",
                          note=f"bank transaction {txn.id}: {result.rule or 'unmatched'}")
        saved_invoices: dict[str, Invoice] = {}
        applied = []
        for proposed in allocations:
            invoice = invoices.get(proposed.invoice_id)
            if invoice is None or invoice.status != OPEN or invoice.currency != currency \
                    or invoice.customer_id != payment.customer_id:
                reason += f"; {proposed.invoice_number} is no longer open: its share stays unapplied"
                status = REVIEW if status == MATCHED else status
                continue
            amount = proposed.amount
            discount = discounts.get(invoice.id)
            if discount is not None and amount.amount + discount.amount == invoice.amount_due.amount:
                updated = invoice.settle_with_discount(amount, discount, now)
            else:
                if amount > invoice.amount_due:
                    amount = invoice.amount_due
                    reason += f"; {invoice.number} had less due than planned: the rest stays unapplied"
                    status = REVIEW if status == MATCHED else status
                if not amount.is_positive:
                    continue
                updated = invoice.apply_payment(amount, now)
            payment = payment.allocate(invoice.id, amount, now=now, invoice_number=invoice.number)
            saved = uow.save_invoice(invoice, updated, on=txn.booking_date, action="invoice.payment_allocated",
                                     note={"payment_id": payment.id, "bank_transaction_id": txn.id})
            saved_invoices[invoice.id] = saved
            if saved.status == PAID and invoice.status != PAID:
                uow.emit("event", invoice_event("invoice.paid", saved, now))
            applied.append({"invoice_id": invoice.id, "invoice_number": invoice.number, "amount": str(amount)})
        if not applied and status != UNMATCHED:
            status = UNMATCHED
        payment = uow.create(payment)
        uow.audit("payment.create", "payment", payment.id, None, payment.to_dict())
        uow.emit("event", payment_event("payment.recorded", payment, now))
        refs: set[tuple[str, str]] = set()
        iban = canonical_iban(txn.debtor_iban)
        if status == MATCHED and payment.customer_id and iban and iban not in ctx.known_ibans:
            # A confident match teaches who pays from this account (never overwrites what is known).
            uow.put_ref(IBAN_REF, iban, payment.customer_id, {"learned_from": txn.id}, must_not_exist=False)
            refs.add((IBAN_REF, iban))
            ctx.known_ibans[iban] = payment.customer_id
        if txn.end_to_end_id:
            key = f"{txn.end_to_end_id}:{txn.amount.amount}{currency}"
            uow.put_ref(E2E_REF, key, txn.id, must_not_exist=False)
            refs.add((E2E_REF, key))
        stored = replace(
            txn, status=status, customer_id=payment.customer_id, payment_id=payment.id, rule=result.rule,
            confidence=Decimal(str(round(result.confidence, 2))), reason=reason, identified_by=result.identified_by,
            allocations=tuple(applied),
            discounts=tuple({"invoice_id": d.invoice_id, "invoice_number": d.invoice_number, "amount": str(d.amount)}
                            for d in result.discounts if d.invoice_id in saved_invoices),
            candidates=tuple({"kind": k.kind, "id": k.id, "label": k.label, "customer_id": k.customer_id,
                              "amount_due": str(k.amount_due) if k.amount_due else None, "why": k.why}
                             for k in result.candidates))
        stored = uow.create(stored)
        uow.audit("bank_transaction.import", "bank_transaction", stored.id, None,
                  {"status": status, "rule": result.rule, "payment_id": payment.id, "amount": str(txn.amount)})
        entry = EntryReport(status, txn.amount, txn.booking_date, key=txn.key, id=txn.id, kind=txn.kind, reason=reason,
                            rule=result.rule, confidence=float(stored.confidence or 0), customer_id=payment.customer_id,
                            payment_id=payment.id, allocations=applied, unapplied=payment.unapplied)
        invoices.update(saved_invoices)  # later credits of this import see these allocations

        def remake() -> _Plan:
            fresh = _Context(actor=ctx.actor, now=self._clock.now(), known_ibans=ctx.known_ibans,
                             invoices=self._ledger.get_invoices(a.invoice_id for a in result.allocations))
            return self._plan_credit(c, fresh, note="invoices changed during the import: re-read and re-applied")

        return _Plan(stored, entry, uow, set(saved_invoices), refs, len(applied), remake)

    def _plan_payout(self, p: _Credit, ctx: _Context) -> _Plan:
        txn = p.txn
        payout_id = stripe_payout_id(p.credit.text, p.credit.debtor_name) or ""
        status, reason, payout = UNRECONCILED, "", None
        if self._gateway is None:
            reason = f"Stripe payout {payout_id}: the payment provider is not configured, reconcile it by hand"
        else:
            try:
                details = self._gateway().payout_details(payout_id)
                bts = [BalanceTransaction(id=b["id"], type=b["type"], amount=Money(int(b["amount"]), b["currency"]),
                                          fee=Money(int(b["fee"]), b["currency"]))
                       for b in details["balance_transactions"]]
                rec = reconcile_payout(txn.amount, bts, payout_id)
                payout = {"payout_id": payout_id, "charges": rec.charges.amount, "refunds": rec.refunds.amount,
                          "fees": rec.fees.amount, "other": rec.other.amount, "expected": rec.expected.amount,
                          "difference": rec.difference.amount, "provider_amount": int(details["amount"]),
                          "balance_transactions": [{"id": b.id, "type": b.type, "amount": b.amount.amount,
                                                    "fee": b.fee.amount} for b in bts]}
                status = RECONCILED if rec.balanced else UNRECONCILED
                reason = f"Stripe payout {payout_id}: {rec.reason}"
            except (PaymentGatewayError, ValidationError, NotImplementedError, KeyError, TypeError) as exc:
                message = getattr(exc, "message", None) or type(exc).__name__
                reason = f"Stripe payout {payout_id} could not be reconciled ({message}): check it by hand"
        uow = UnitOfWork(actor=ctx.actor, now=ctx.now)
        stored = uow.create(replace(txn, status=status, rule="stripe_payout", confidence=Decimal("0.99"),
                                    reason=reason, payout=payout))
        uow.audit("bank_transaction.import", "bank_transaction", stored.id, None, {"status": status, "payout": payout_id})
        entry = EntryReport(status, txn.amount, txn.booking_date, key=txn.key, id=txn.id, kind=KIND_PAYOUT,
                            reason=reason, rule="stripe_payout")
        return _Plan(stored, entry, uow, set(), set(), 0)

    def _plan_return(self, txn: BankTransaction, ctx: _Context) -> _Plan:
        uow = UnitOfWork(actor=ctx.actor, now=ctx.now)
        original = None
        if txn.end_to_end_id:
            ref = self._ledger.get_ref(E2E_REF, f"{txn.end_to_end_id}:{txn.amount.amount}{txn.currency}")
            if ref is not None:
                original = self._ledger.get_bank_transactions([ref.target]).get(ref.target)
        saved_invoices: dict[str, Invoice] = {}
        if original is None or original.payment_id is None:
            status = UNMATCHED
            reason = ("a customer payment coming back (return), but no imported credit has its end-to-end id and "
                      "amount: reverse the payment it returns by hand")
            stored = replace(txn, status=status, reason=reason)
        else:
            payment = self._ledger.get_payment(original.payment_id)
            saved_invoices = self._reverse(payment, txn.amount, txn.booking_date, uow)
            status = REVERSED
            reason = (f"the credit of {original.booking_date} ({original.id}) came back: its payment "
                      f"{payment.id} is reversed" + (f" and invoices {', '.join(i.number or i.id for i in saved_invoices.values())} reopened"
                                                      if saved_invoices else ""))
            stored = replace(txn, status=status, reason=reason, original_id=original.id,
                             customer_id=payment.customer_id, payment_id=payment.id)
        stored = uow.create(stored)
        uow.audit("bank_transaction.import", "bank_transaction", stored.id, None, {"status": status})
        entry = EntryReport(status, txn.amount, txn.booking_date, key=txn.key, id=txn.id, kind=txn.kind, reason=reason,
                            customer_id=stored.customer_id, payment_id=stored.payment_id)
        ctx.invoices.update(saved_invoices)
        fresh = _Context(actor=ctx.actor, now=ctx.now)
        return _Plan(stored, entry, uow, set(saved_invoices), set(), len(saved_invoices),
                     remake=lambda: self._plan_return(txn, fresh))

    def _reverse(self, payment: Payment, amount: Money, on: date, uow: UnitOfWork) -> dict[str, Invoice]:
        """Take ``amount`` back: first from unapplied cash, then from invoices, latest allocation first."""
        remaining = min(amount.amount, payment.amount.amount - payment.refunded)
        take = min(remaining, payment.unapplied.amount)
        refunded_unapplied = payment.refunded_unapplied + take
        remaining -= take
        invoices = self._ledger.get_invoices(a.invoice_id for a in payment.allocations)
        saved: dict[str, Invoice] = {}
        returnable = {i.id: i.amount_paid - i.amount_reversed for i in invoices.values()}
        for invoice_id, back in reversal_plan(list(reversed(payment.allocations)), returnable, remaining):
            invoice = invoices[invoice_id]
            updated = invoice.reverse_payment(Money(back, invoice.currency), uow.now)
            saved[invoice.id] = uow.save_invoice(invoice, updated, on=on, action="invoice.payment_returned",
                                                 note={"payment_id": payment.id})
            uow.emit("event", invoice_event("invoice.reopened", saved[invoice.id], uow.now))
            remaining -= back
        taken = min(amount.amount, payment.amount.amount - payment.refunded) - remaining
        uow.save(replace(payment, refunded=payment.refunded + taken, refunded_unapplied=refunded_unapplied,
                         updated_at=uow.now))
        return saved

    def _plan_plain(self, txn: BankTransaction, ctx: _Context) -> _Plan:
        uow = UnitOfWork(actor=ctx.actor, now=ctx.now)
        reason = "one of your own transfers coming back (a return credited to the account): not customer money"
        stored = uow.create(replace(txn, status=IGNORED, reason=reason))
        entry = EntryReport(IGNORED, txn.amount, txn.booking_date, key=txn.key, id=txn.id, kind=txn.kind,
                            reason=reason)
        return _Plan(stored, entry, uow, set(), set(), 0)

    # -- commits in chunks --------------------------------------------------------------------------------
    def _run(self, plans: Sequence[Callable[[], _Plan]], report: StatementReport, dry_run: bool,
             started: float) -> dict[str, EntryReport]:
        out: dict[str, EntryReport] = {}
        chunk: list[_Plan] = []
        touched: set[str] = set()
        refs: set[tuple[str, str]] = set()
        ops = 0
        allocations = 0
        deltas: list[Any] = []

        def flush() -> None:
            nonlocal chunk, touched, refs, ops, allocations, deltas
            if not chunk:
                return
            if dry_run:
                for plan in chunk:
                    out[plan.txn.id] = plan.report
            else:
                self._commit_chunk(chunk, out, report)
            chunk, touched, refs, ops, allocations, deltas = [], set(), set(), 0, 0, []

        for make in plans:
            if not dry_run and time.monotonic() - started > self._time_budget_s:
                break
            plan = make()
            plan_deltas = merge_deltas(deltas + plan.uow.aggregate_deltas)
            size = ops + len(plan.uow.operations) + len(plan_deltas)
            if chunk and (plan.invoices & touched or plan.refs & refs or allocations + plan.allocations >
                          self._max_allocations or size > MAX_TRANSACTION_ITEMS):
                flush()
                plan_deltas = merge_deltas(plan.uow.aggregate_deltas)
            chunk.append(plan)
            touched |= plan.invoices
            refs |= plan.refs
            ops += len(plan.uow.operations)
            allocations += plan.allocations
            deltas = deltas + plan.uow.aggregate_deltas
        flush()
        return out

    def _commit_chunk(self, chunk: list[_Plan], out: dict[str, EntryReport], report: StatementReport) -> None:
        uow = UnitOfWork(actor=chunk[0].uow.actor, now=chunk[0].uow.now)
        for plan in chunk:
            uow.operations.extend(plan.uow.operations)
            uow.aggregate_deltas.extend(plan.uow.aggregate_deltas)
        try:
            self._ledger.commit(uow)
        except CommitConflict:
            # Someone changed an invoice, or imported the same transactions, meanwhile: nothing of this
            # chunk was written; commit its transactions one by one, each re-read.
            for plan in chunk:
                out[plan.txn.id] = self._commit_alone(plan, report)
            return
        report.commits += 1
        for plan in chunk:
            out[plan.txn.id] = plan.report

    def _commit_alone(self, plan: _Plan, report: StatementReport) -> EntryReport:
        txn = plan.txn

        def attempt() -> EntryReport:
            known = self._ledger.get_bank_transactions([txn.id]).get(txn.id)
            if known is not None:
                return EntryReport("already_imported", known.amount, known.booking_date, key=known.key, id=known.id,
                                   kind=known.kind, customer_id=known.customer_id, payment_id=known.payment_id,
                                   reason=f"imported meanwhile by another request ({known.status}); nothing changed")
            current = plan if plan.remake is None else plan.remake()
            self._ledger.commit(current.uow)
            report.commits += 1
            return current.report

        return with_retries(attempt)

    # == the review list and the clerk ==================================================================
    def get(self, transaction_id: str) -> BankTransaction:
        return self._ledger.get_bank_transaction(transaction_id)

    def list(self, *, status: str | None = None, customer_id: str | None = None, booked_from: date | None = None,
             booked_to: date | None = None, limit: int = 50, cursor: str | None = None) -> Page[BankTransaction]:
        return self._ledger.list_bank_transactions(status=status, customer_id=customer_id, booked_from=booked_from,
                                                   booked_to=booked_to, limit=limit, cursor=cursor)

    def allocate(self, transaction_id: str, data: Mapping[str, Any], actor: Actor) -> BankTransaction:
        """A clerk settles a transaction of the review list in one call.

        ``customer_id`` names the payer when the bank could not (optional when the
        allocations name invoices of one customer); ``allocations`` lists
        ``{"invoice_id", "amount"}``; what is left stays the customer's credit. With no
        allocations, the cash is kept as the named customer's credit (or, for a
        ``review`` match, the match is confirmed as it is). Learns the debtor IBAN.
        Raises ``ValidationError`` / ``InvalidTransition`` and writes nothing on refusal.
        """

        def run() -> BankTransaction:
            txn = self._ledger.get_bank_transaction(transaction_id)
            if txn.kind != KIND_CREDIT or txn.payment_id is None:
                raise InvalidTransition(f"bank transaction {transaction_id} is a {txn.kind.replace('_', ' ')}: only "
                                        "customer credits are allocated", code="not_allocatable")
            if txn.status not in (UNMATCHED, REVIEW, MATCHED, ALLOCATED):
                raise InvalidTransition(f"bank transaction {transaction_id} is {txn.status}", code="not_allocatable")
            payment = self._ledger.get_payment(txn.payment_id)
            allocations = parse_allocations(data.get("allocations"), payment.currency)
            customer_id = data.get("customer_id")
            if customer_id is not None and (not isinstance(customer_id, str) or not customer_id):
                raise ValidationError("customer_id must be a customer id such as cus_...", field="customer_id")
            invoices = self._ledger.get_invoices(i for i, _ in allocations)
            missing = [i for i, _ in allocations if i not in invoices]
            if missing:
                raise ValidationError(f"invoice {missing[0]} does not exist", field="allocations",
                                      code="invoice_not_found")
            owners = {inv.customer_id for inv in invoices.values()}
            if customer_id is None:
                customer_id = payment.customer_id or (next(iter(owners)) if len(owners) == 1 else None)
            if customer_id is None:
                raise ValidationError("name the payer: customer_id is required when the bank transaction has no "
                                      "customer and no allocation names an invoice", field="customer_id")
            self._ledger.get_customer(customer_id)  # NotFound for a wrong id
            if payment.customer_id and customer_id != payment.customer_id:
                if payment.allocations:
                    raise ValidationError(
                        f"this cash is already allocated to invoices of customer {payment.customer_id}: it cannot "
                        "move to another customer", field="customer_id", code="customer_mismatch")
            if owners - {customer_id}:
                raise ValidationError("every allocated invoice must belong to the payer: allocate a payment to its "
                                      "payer's invoices only", field="allocations", code="customer_mismatch")
            if not allocations and txn.status == ALLOCATED and customer_id == payment.customer_id:
                raise InvalidTransition(f"bank transaction {transaction_id} is already allocated",
                                        code="already_allocated")
            now = self._clock.now()
            uow = UnitOfWork(actor=actor, now=now)
            updated = replace(payment, customer_id=customer_id, updated_at=now)
            applied = list(txn.allocations)
            for invoice_id, amount in allocations:
                invoice = invoices[invoice_id]
                after = invoice.apply_payment(amount, now)
                updated = updated.allocate(invoice_id, amount, now=now, invoice_number=invoice.number)
                saved = uow.save_invoice(invoice, after, on=payment.received_on, action="invoice.payment_allocated",
                                         note={"payment_id": payment.id, "bank_transaction_id": txn.id})
                if saved.status == PAID and invoice.status != PAID:
                    uow.emit("event", invoice_event("invoice.paid", saved, now))
                applied.append({"invoice_id": invoice_id, "invoice_number": invoice.number, "amount": str(amount)})
            saved_payment = uow.save(updated)
            before, after_ = diff(payment.to_dict(), saved_payment.to_dict())
            uow.audit("payment.allocate", "payment", payment.id, before, after_)
            iban = canonical_iban(txn.debtor_iban)
            if iban:
                known = self._ledger.get_ref(IBAN_REF, iban)
                if known is None:
                    uow.put_ref(IBAN_REF, iban, customer_id, {"learned_from": txn.id, "by": actor.name},
                                must_not_exist=False)
            what = (f"allocated by {actor.name}" if allocations else
                    f"confirmed by {actor.name}" if txn.status == REVIEW else f"kept as {customer_id}'s credit by {actor.name}")
            resolved = uow.save(replace(txn, status=ALLOCATED, customer_id=customer_id, allocations=tuple(applied),
                                        reason=f"{txn.reason}; {what}", resolved_by=actor.name, resolved_at=now,
                                        updated_at=now))
            uow.audit("bank_transaction.allocate", "bank_transaction", txn.id, {"status": txn.status},
                      {"status": ALLOCATED, "customer_id": customer_id,
                       "allocations": [{"invoice_id": i, "amount": str(a)} for i, a in allocations]})
            self._ledger.commit(uow)
            count("BankTransactionAllocated")
            return resolved

        return with_retries(run)


def _sniff(body: bytes, content_type: str | None) -> str:
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in ("application/xml", "text/xml") or ct.endswith("+xml"):
        return "camt"
    if ct in ("text/csv", "application/csv", "text/comma-separated-values"):
        return "csv"
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "camt" if head == b"<" else "csv"


# -- what to read for a credit ------------------------------------------------------------------------

_TOKEN_SPLIT = re.compile(r"[\s,;:()\[\]]+")


def _number_probes(credit: BankCredit, prefixes: Sequence[str]) -> list[str]:
    """Keys of the ``number`` index worth reading for this credit: numbers in the seller's own format,
    the bodies of RF references, and other tokens that look like a number (imported invoices keep
    their external numbers)."""
    keys = lookup_keys(credit, prefixes)
    out: list[str] = [number_key(n) for n in keys.invoice_numbers]  # bounded by the text (1000 characters)
    out.extend(number_key(ref[4:]) for ref in keys.rf_references)
    others: list[str] = []
    for token in _TOKEN_SPLIT.split(credit.text):
        key = number_key(token)
        if 5 <= len(key) <= 35 and any(ch.isdigit() for ch in key) and not key.startswith("RF"):
            others.append(key)
    return list(dict.fromkeys(k for k in [*out, *others[:MAX_PROBES_PER_CREDIT]] if k))


_ACCENTS = {"e": "éèê", "a": "àâ", "o": "ô", "i": "î", "u": "ùû", "c": "ç"}
_COMMON_FORMS = ("sarl", "sas", "ste", "ets")


def _name_prefixes(debtor_name: str) -> list[tuple[str, list[str]]]:
    """Prefixes of the name index (case-folded customer names) that may hold the debtor, each with the words
    that narrow it when it matches too many customers: the first significant word (accents on its first
    letter tried), and that word after a legal form (banks drop or move "SARL", "SAS"...)."""
    words = re.findall(r"\w+", debtor_name.casefold())
    if not words:
        return []
    forms = [w for w in words if w.upper() in LEGAL_FORMS]
    significant = [w for w in words if w.upper() not in LEGAL_FORMS and len(w) >= 2]
    if not significant:
        return [(words[0], words[1:3])]
    first, rest = significant[0], significant[1:3]
    out = [(first, rest)]
    if first[0] in _ACCENTS:
        out.extend((accent + first[1:], rest) for accent in _ACCENTS[first[0]])
    for form in dict.fromkeys([*forms, *_COMMON_FORMS]):
        out.append((f"{form} {first}", rest))
    return out
