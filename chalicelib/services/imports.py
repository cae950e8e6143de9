"""Import existing open receivables (CSV layout, CII XML, Factur-X PDF) so they are collected from day one.

How an import runs, and why it is never half-done:

1. **Read and check everything first.** Every file is read, every row checked (an
   open receivable: number, buyer, dates, totals that add up, something left to
   collect, a number that is neither one of our own series nor already used by
   another invoice), every new customer validated. A dry run stops here and reports
   what would be created and each refused row with its reason. A real run with any
   refused row is refused as a whole (422, the same report): nothing is written.
2. **Plan with stable ids.** The import's id is a digest of the request (files and
   contacts); each new customer's and invoice's id derives from it. Sending the same
   request again therefore plans exactly the same records.
3. **Stage, then activate: all or nothing from the outside.** An import record
   (``in_progress``) is written first, then every row is *staged*: written aside as an
   ``import_row`` ref (``<import id>:<index>`` -> the planned invoice, customer and
   numbers), with its ``number`` refs reserved (``staged``, "must not exist"), in chunks
   under 95 items. A staged row is not an invoice: not open, not in the report
   aggregates, not in dunning, not in any list; a transfer naming its number matches
   nothing yet. A crash or a spent time budget while staging leaves nothing visible;
   sending the same request again stages what is missing (staged rows and reserved
   numbers expire after ``STAGED_TTL_DAYS`` if it never is). Once every row is staged,
   one transaction turns the record ``activating`` and queues an ``import.activate``
   outbox message (due two minutes later). Activation then writes the invoices in
   chunks (invoice, number refs without the mark, audit, report aggregates, dunning
   record, the customer with its first invoice) and the record ends ``completed``. If
   the request dies or runs out of time while activating, the outbox finishes it without
   the client (``resume``; it queues itself again when its own budget is spent).
   Invoices that exist already are skipped and ids are planned, so neither a retry, nor
   the outbox, nor both at once create anything twice.

Imported invoices keep their numbers (``series = "external"``), are never renumbered
nor re-rendered (their totals are the document's own), and are written with
``save_invoice(None, invoice, on=issue_date, action="invoice.import")`` so the report
aggregates include them. Customers are matched by ``external_ref`` (the ``customer_ref``
index, then the name index with an equal ``external_ref``, VAT number or SIREN) or
created.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Mapping, Sequence

from ..domain.aggregates import merge_deltas
from ..domain.auth import Actor
from ..domain.bank_transaction import IMPORT_ACTIVATING, IMPORT_COMPLETED, IMPORT_RUNNING, ImportRecord
from ..domain.errors import BadRequest, Conflict, NotFound, ValidationError
from ..domain.invoice import Invoice
from ..domain.money import Money
from ..domain.parties import Customer, new_customer
from ..domain.receivable_import import (ImportedInvoice, Problem, check_imported, normalized, own_series_pattern,
                                        to_invoice)
from ..observability import count, logger
from .invoice_numbers import NUMBER_REF, number_key, number_refs
from .common import with_retries
from .ports import Clock, CommitConflict, Ledger, RefRecord, UnitOfWork
from .settings import SettingsService

CUSTOMER_REF = "customer_ref"  # a customer's external_ref -> customer id
MAX_FILES = 50
MAX_TRANSACTION_ITEMS = 95
MAX_TRANSACTION_BYTES = 3_000_000  # DynamoDB allows 4 MB per transaction
ROW_REF = "import_row"             # a staged row: "<import id>:<index>" -> planned invoice id, with the invoice
STAGED_TTL_DAYS = 30               # an import left unfinished (staging) frees its rows and numbers after this
ACTIVATE_TOPIC = "import.activate"
ACTIVATION_DELAY_S = 120           # the outbox takes over if the request has not finished by then
RESUME_BUDGET_S = 45.0             # per outbox run (the drain's Lambda has 90 s, its lease 2 minutes)
DEFAULT_TIME_BUDGET_S = 20.0


@dataclass(frozen=True)
class ImportFile:
    name: str
    content: bytes
    kind: str | None = None  # csv, cii, facturx; None: from the content


@dataclass
class _Row:
    inv: ImportedInvoice
    key: str                     # number key
    ref: str                     # customer reference (external_ref, or "name:<name>")
    status: str = "create"       # create / already_imported / duplicate / created
    invoice_id: str | None = None
    customer_id: str | None = None


@dataclass
class _NewCustomer:
    ref: str
    customer: Customer
    status: str = "create"       # create / created


@dataclass
class ImportReport:
    id: str
    dry_run: bool
    status: str
    rows: list[_Row] = field(default_factory=list)
    customers: dict[str, _NewCustomer] = field(default_factory=dict)
    existing_customers: dict[str, str] = field(default_factory=dict)  # ref -> customer id
    rejected: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    record: ImportRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        totals: dict[str, Money] = {}
        for r in self.rows:
            if r.status in ("create", "created"):
                totals[r.inv.currency] = totals.get(r.inv.currency, Money.zero(r.inv.currency)) + r.inv.amount_due
        return {
            "object": "import", "id": self.id, "dry_run": self.dry_run, "status": self.status,
            "invoices": [{"source": r.inv.source, "number": r.inv.number, "id": r.invoice_id, "status": r.status,
                          "customer_ref": r.inv.buyer.reference, "customer_id": r.customer_id,
                          "issue_date": r.inv.issue_date.isoformat() if r.inv.issue_date else None,
                          "due_date": r.inv.due_date.isoformat() if r.inv.due_date else None,
                          "currency": r.inv.currency, "total": str(r.inv.total),
                          "amount_due": str(r.inv.amount_due)} for r in self.rows],
            "customers": ([{"reference": c.ref, "id": c.customer.id, "name": c.customer.name, "status": c.status}
                           for c in self.customers.values()]
                          + [{"reference": ref, "id": cid, "status": "existing"}
                             for ref, cid in self.existing_customers.items()]),
            "rejected": [p.to_dict() for p in self.rejected],
            "warnings": [p.to_dict() for p in self.warnings],
            "totals": {ccy: str(m) for ccy, m in sorted(totals.items())},
            "summary": {"invoices_to_create" if self.dry_run else "invoices_created":
                        sum(1 for r in self.rows if r.status in ("create", "created")),
                        "already_imported": sum(1 for r in self.rows if r.status == "already_imported"),
                        "duplicates": sum(1 for r in self.rows if r.status == "duplicate"),
                        "customers_to_create" if self.dry_run else "customers_created": len(self.customers),
                        "rejected": len(self.rejected)},
            "record": self.record.to_dict() if self.record else None,
        }


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


class ImportService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService, *,
                 time_budget_s: float = DEFAULT_TIME_BUDGET_S) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self._time_budget_s = time_budget_s

    def get(self, import_id: str) -> ImportRecord:
        record = self._ledger.get_import(import_id)
        if record is None:
            raise NotFound(f"import {import_id} does not exist", code="import_not_found")
        return record

    def run(self, files: Sequence[ImportFile], actor: Actor, *, dry_run: bool = False,
            contacts: Mapping[str, str] | None = None) -> ImportReport:
        """Check, then (unless ``dry_run``) write an import; see the module docstring.

        Raises ``BadRequest`` for an empty request and ``ValidationError`` (422, the report
        in ``details``) when a real run has refused rows; nothing is written then.
        """
        started = time.monotonic()
        if not files:
            raise BadRequest("send at least one file (CSV, CII XML or Factur-X PDF)", field="files")
        if len(files) > MAX_FILES:
            raise BadRequest(f"at most {MAX_FILES} files per import", field="files")
        contacts = dict(contacts or {})
        import_id = "imp_" + _digest(*(f.content for f in files), json.dumps(contacts, sort_keys=True))[:26]
        report = self._check(import_id, files, contacts, dry_run)
        if dry_run:
            return report
        if report.rejected:
            raise ValidationError(f"nothing was imported: {len(report.rejected)} row(s) refused (the first: "
                                  f"{report.rejected[0].source}: {report.rejected[0].message}); fix them, or run "
                                  "with dry_run to review", field="files", code="import_refused",
                                  details=report.to_dict())
        self._write(report, actor, started)
        return report

    # -- checks -----------------------------------------------------------------------------------------
    def _check(self, import_id: str, files: Sequence[ImportFile], contacts: dict[str, str],
               dry_run: bool) -> ImportReport:
        from ..adapters.receivables import KINDS, read_file

        seller = self._settings.seller()
        today = self._clock.today(seller.timezone)
        own = own_series_pattern((seller.invoice_prefix, seller.credit_note_prefix))
        report = ImportReport(id=import_id, dry_run=dry_run, status="dry_run" if dry_run else IMPORT_RUNNING)
        read: list[ImportedInvoice] = []
        for f in files:
            if f.kind is not None and f.kind not in KINDS:
                raise BadRequest(f"file kind must be one of {', '.join(KINDS)}", field="files")
            invoices, problems = read_file(f.name, f.content, f.kind)
            report.rejected.extend(problems)
            for inv in invoices:
                inv, warnings = normalized(inv)
                report.warnings.extend(warnings)
                found = check_imported(inv, today=today, own_series=own)
                if found:
                    report.rejected.extend(found)
                else:
                    read.append(inv)
        # One number, one receivable: the same invoice twice is imported once; two different ones are refused.
        by_key: dict[str, list[ImportedInvoice]] = {}
        for inv in read:
            by_key.setdefault(number_key(inv.number), []).append(inv)
        rows: list[_Row] = []
        for key, same in by_key.items():
            if len({inv.content_hash() for inv in same}) > 1:
                for inv in same:
                    others = ", ".join(o.source for o in same if o.content_hash() != inv.content_hash())
                    report.rejected.append(Problem(inv.source, inv.number, "number",
                                                   f"number {inv.number} is also used, with other content, by "
                                                   f"{others}: two receivables with one number cannot be told apart "
                                                   "when paid"))
                continue
            for i, inv in enumerate(same):
                rows.append(_Row(inv=inv, key=key, ref=_customer_ref(inv),
                                 status="duplicate" if i else "create",
                                 invoice_id="inv_" + _digest(import_id, key)[:26]))
        existing = self._ledger.get_refs(NUMBER_REF, [r.key for r in rows])
        for row in rows:
            ref = existing.get(row.key)
            if ref is None:
                continue
            if ref.data.get("staged"):  # reserved by an import not activated yet
                if ref.target == row.invoice_id:
                    continue            # by this one: still to import
                report.rejected.append(Problem(row.inv.source, row.inv.number, "number",
                                               f"number {row.inv.number} is being imported by import "
                                               f"{ref.data.get('import_id')}, not finished: finish that one (send "
                                               "its request again) or leave this row out"))
                row.status = "refused"
                continue
            if ref.target == row.invoice_id or ref.data.get("content") == row.inv.content_hash():
                row.status, row.invoice_id = "already_imported", ref.target
                row.customer_id = ref.data.get("customer_id")
            else:
                report.rejected.append(Problem(row.inv.source, row.inv.number, "number",
                                               f"number {row.inv.number} is already used by invoice {ref.target}: "
                                               "two receivables with one number cannot be told apart when paid"))
                row.status = "refused"
        rows = [r for r in rows if r.status != "refused"]
        self._customers(import_id, rows, contacts, report, seller.jurisdiction)
        report.rows = [r for r in rows if r.status != "refused"]
        return report

    def _customers(self, import_id: str, rows: list[_Row], contacts: dict[str, str], report: ImportReport,
                   jurisdiction: str) -> None:
        pending = [r for r in rows if r.status in ("create", "duplicate")]
        refs = sorted({r.ref for r in pending})
        known = {ref: rec.target for ref, rec in self._ledger.get_refs(CUSTOMER_REF, refs).items()}
        first_row = {}
        for r in pending:
            first_row.setdefault(r.ref, r)
        now = self._clock.now()
        for ref in refs:
            inv = first_row[ref].inv
            customer_id = known.get(ref) or self._by_name(inv)
            if customer_id:
                report.existing_customers[ref] = customer_id
                continue
            planned_id = "cus_" + _digest(import_id, "customer", ref)[:26]
            customer, problem = self._new_customer(planned_id, inv, contacts, now, jurisdiction, report)
            if customer is None:
                for r in pending:
                    if r.ref == ref:
                        r.status = "refused"
                        report.rejected.append(Problem(r.inv.source, r.inv.number, "buyer", problem or ""))
                continue
            report.customers[ref] = _NewCustomer(ref, customer)
        for r in rows:
            if r.status == "refused":
                continue
            if r.ref in report.existing_customers:
                r.customer_id = report.existing_customers[r.ref]
            elif r.ref in report.customers:
                r.customer_id = report.customers[r.ref].customer.id

    def _by_name(self, inv: ImportedInvoice) -> str | None:
        """A customer created through the API with the same external_ref, VAT number or SIREN (by name)."""
        buyer = inv.buyer
        if not buyer.name:
            return None
        for customer in self._ledger.find_customers_by_name(buyer.name, limit=20):
            if customer.name.casefold() != buyer.name.casefold():
                continue
            if (buyer.reference and customer.external_ref == buyer.reference) or (
                    buyer.vat_number and customer.vat_number == "".join(buyer.vat_number.split()).upper()) or (
                    buyer.siren and customer.siren == "".join(buyer.siren.split())):
                return customer.id
        return None

    def _new_customer(self, customer_id: str, inv: ImportedInvoice, contacts: dict[str, str], now: datetime,
                      jurisdiction: str, report: ImportReport) -> tuple[Customer | None, str | None]:
        buyer = inv.buyer
        ref = buyer.reference
        email = buyer.email or (contacts.get(ref) if ref else None) or contacts.get(buyer.name or "")
        if not buyer.name:
            return None, "the buyer has no name: a new customer needs one (customer_name / BT-44)"
        if not email:
            key = ref or buyer.name
            return None, (f"the buyer {buyer.name!r} ({key}) is a new customer without an email address in the file: "
                          f"add it to contacts ({{\"{key}\": \"ap@example.com\"}}) or create the customer first "
                          f"with external_ref {key!r}")
        if ref and len(ref) > 64:
            return None, f"the buyer reference {ref!r} is longer than 64 characters"
        data: dict[str, Any] = {"name": buyer.name[:200], "email": email, "country": buyer.country or "FR",
                                "currency": inv.currency, "external_ref": ref}
        optional = {"vat_number": buyer.vat_number, "siren": buyer.siren}
        if buyer.line1 and buyer.city and buyer.postal_code:
            optional["address"] = {"line1": buyer.line1, "postal_code": buyer.postal_code, "city": buyer.city,
                                   "country": buyer.country or "FR"}
        data.update({k: v for k, v in optional.items() if v})
        while True:
            try:
                return new_customer(customer_id, data, now=now, jurisdiction=jurisdiction), None
            except ValidationError as exc:
                name = (exc.field or "").split(".")[0]
                if name in optional and name in data:
                    # A foreign VAT number or an odd address must not block the receivable: dropped, said so.
                    report.warnings.append(Problem(inv.source, inv.number, f"buyer.{name}",
                                                   f"{exc.message}: the customer is created without it"))
                    del data[name]
                    continue
                return None, f"the buyer cannot become a customer: {exc.message}"

    # -- writes -----------------------------------------------------------------------------------------
    def _write(self, report: ImportReport, actor: Actor, started: float) -> None:
        """Stage every row, then activate them (see the module docstring). Raises ``Conflict`` when a number
        was taken between the checks and the staging (nothing is live then)."""
        now = self._clock.now()
        to_create = [r for r in report.rows if r.status == "create"]
        record = self._ledger.get_import(report.id)
        if record is None:
            record = ImportRecord(
                id=report.id, status=IMPORT_RUNNING, created_at=now, updated_at=now, created_by=actor.name,
                sources=tuple(dict.fromkeys(r.inv.source.split(" row ")[0] for r in report.rows)),
                invoices_planned=len(to_create), customers_planned=len(report.customers))
            uow = UnitOfWork(actor=actor, now=now)
            record = uow.create(record)
            uow.audit("import.start", "import", report.id, None, record.to_dict())
            try:
                self._ledger.commit(uow)
            except CommitConflict:
                record = self.get(report.id)
        if record.status == IMPORT_RUNNING:
            if not self._stage(report, record, to_create, actor, started):
                report.status = IMPORT_RUNNING
                report.record = self.get(report.id)
                return
        deadline = started + self._time_budget_s
        report.record = self.activate(report.id, actor=actor, deadline=deadline, rows=report.rows)
        report.status = report.record.status

    def _stage(self, report: ImportReport, record: ImportRecord, to_create: list[_Row], actor: Actor,
               started: float) -> bool:
        """Write the rows aside (``import_row`` refs) with their numbers reserved; True when every row is
        staged and the import turned ``activating`` (with its outbox message) in the same transaction."""
        if len(to_create) != record.invoices_planned:  # the ledger changed since this import was planned
            raise Conflict(f"import {report.id} was planned with {record.invoices_planned} invoices but "
                           f"{len(to_create)} remain to import: another import or invoice took some of its numbers; "
                           "nothing of it is live: check it with a dry run, fix the file and send it again",
                           code="import_changed")
        now = self._clock.now()
        seller = self._settings.seller()
        keys = [_row_key(report.id, i) for i in range(len(to_create))]
        staged = self._ledger.get_refs(ROW_REF, keys)
        uow, size = UnitOfWork(actor=actor, now=now), 0
        pending: list[_Row] = []
        new_customers = {ref: c for ref, c in report.customers.items()}
        first_of: dict[str, int] = {}
        for i, row in enumerate(to_create):
            first_of.setdefault(row.ref, i)
        done = len(staged)
        out_of_time = False
        for i, row in enumerate(to_create):
            if keys[i] in staged:
                continue
            payload = self._row_payload(row, report.id, seller, now,
                                        new_customers.get(row.ref) if first_of[row.ref] == i else None)
            invoice = payload.pop("_invoice")
            row_ops = 1 + len(number_refs(invoice))
            row_size = len(json.dumps(payload, default=str))
            if pending and (len(uow.operations) + row_ops > MAX_TRANSACTION_ITEMS
                            or size + row_size > MAX_TRANSACTION_BYTES):
                done += self._commit_stage(uow, pending, report)
                uow, size, pending = UnitOfWork(actor=actor, now=now), 0, []
                if time.monotonic() - started > self._time_budget_s:
                    out_of_time = True  # checked at a chunk's end: a spent budget still stages one chunk
                    break
            uow.put_ref(ROW_REF, keys[i], row.invoice_id or "", payload, ttl_days=STAGED_TTL_DAYS)
            for key, data in number_refs(invoice):
                uow.put_ref(NUMBER_REF, key, invoice.id, {**data, "import_id": report.id,
                                                          "content": row.inv.content_hash(), "staged": True},
                            must_not_exist=True, ttl_days=STAGED_TTL_DAYS)
            pending.append(row)
            size += row_size
        if pending:
            done += self._commit_stage(uow, pending, report)

        def mark() -> bool:
            current = self.get(report.id)
            if current.status != IMPORT_RUNNING:
                return True
            all_staged = not out_of_time and done >= len(to_create)
            u = UnitOfWork(actor=actor, now=self._clock.now())
            saved = u.save(replace(current, invoices_staged=done, updated_at=self._clock.now(),
                                   status=IMPORT_ACTIVATING if all_staged else IMPORT_RUNNING))
            if all_staged:
                # If this request dies while activating, the outbox finishes it (no client needed).
                u.emit(ACTIVATE_TOPIC, {"import_id": report.id},
                       not_before=self._clock.now() + timedelta(seconds=ACTIVATION_DELAY_S))
                u.audit("import.staged", "import", report.id, {"status": current.status}, saved.to_dict())
            self._ledger.commit(u)
            return all_staged

        return with_retries(mark)

    def _commit_stage(self, uow: UnitOfWork, rows: list[_Row], report: ImportReport) -> int:
        try:
            self._ledger.commit(uow)
            return len(rows)
        except CommitConflict:
            pass
        # A row of the chunk is there already (a concurrent retry) or its number was taken meanwhile.
        taken = []
        for row in rows:
            ref = self._ledger.get_ref(NUMBER_REF, row.key)
            if ref is not None and ref.target != row.invoice_id:
                taken.append(f"{row.inv.number} (invoice {ref.target})")
        if taken:
            raise Conflict(f"number(s) {', '.join(taken[:5])} were taken while import {report.id} was being written: "
                           "nothing of it is live; check it with a dry run, fix the file and send it again",
                           code="import_changed")
        return 0  # a concurrent request staged them: counted when this one re-reads the record

    def _row_payload(self, row: _Row, import_id: str, seller: Any, now: datetime,
                     new: _NewCustomer | None) -> dict[str, Any]:
        from ..adapters.codec import encode

        inv = row.inv
        if row.customer_id is None or row.invoice_id is None:  # pragma: no cover - planned before writing
            raise RuntimeError("an import row is written before it is planned")
        buyer = {"id": row.customer_id, "name": inv.buyer.name, "email": inv.buyer.email,
                 "country": inv.buyer.country, "vat_number": inv.buyer.vat_number, "siren": inv.buyer.siren,
                 "reference": inv.buyer.reference}
        invoice = to_invoice(inv, invoice_id=row.invoice_id, customer_id=row.customer_id, now=now,
                             seller=inv.seller.to_dict() or None, buyer=buyer)
        return {"_invoice": invoice, "invoice": encode(invoice), "on": inv.issue_date.isoformat(),
                "source": inv.source, "content": inv.content_hash(),
                "customer": encode(new.customer) if new is not None else None,
                "customer_ref": new.ref if new is not None else None}

    def resume(self, import_id: str) -> None:
        """Outbox handler of ``import.activate``: finish an import's activation within a time budget, and
        queue itself again if that was not enough. Idempotent."""
        record = self.activate(import_id, actor=Actor.system("imports"),
                               deadline=time.monotonic() + RESUME_BUDGET_S)
        if record.status == IMPORT_ACTIVATING:
            u = UnitOfWork(actor=Actor.system("imports"), now=self._clock.now())
            u.emit(ACTIVATE_TOPIC, {"import_id": import_id},
                   not_before=self._clock.now() + timedelta(seconds=5))
            self._ledger.commit(u)

    def activate(self, import_id: str, *, actor: Actor, deadline: float,
                 rows: Sequence[_Row] = ()) -> ImportRecord:
        """Make a staged import's invoices live, in chunks, until ``deadline`` (``time.monotonic()``); the
        record ends ``completed`` with the last one. Each chunk is one transaction per group of whole rows
        (invoice + its number refs without the staging mark + audit + report aggregates + dunning record +
        its customer the first time); invoices that exist already are skipped, so a retry never duplicates."""
        from ..adapters.codec import decode

        record = self.get(import_id)
        if record.status != IMPORT_ACTIVATING:
            return record
        keys = [_row_key(import_id, i) for i in range(record.invoices_planned)]
        staged: dict[str, RefRecord] = {}
        for start in range(0, len(keys), 100):
            staged.update(self._ledger.get_refs(ROW_REF, keys[start:start + 100]))
        if len(staged) != len(keys):  # pragma: no cover - staged rows outlive an import by STAGED_TTL_DAYS
            raise RuntimeError(f"import {import_id}: {len(keys) - len(staged)} staged rows are missing")
        ordered = [staged[k] for k in keys]
        live: set[str] = set()
        for start in range(0, len(ordered), 100):
            live.update(self._ledger.get_invoices(r.target for r in ordered[start:start + 100]))
        by_invoice = {r.invoice_id: r for r in rows}
        now = self._clock.now()
        created, customers_created = 0, 0
        activated: set[str] = set()
        chunk: list[tuple[RefRecord, UnitOfWork]] = []
        ops, deltas = 0, []

        def flush() -> None:
            nonlocal chunk, ops, deltas, created, customers_created
            if not chunk:
                return
            merged = UnitOfWork(actor=actor, now=now)
            for _, u in chunk:
                merged.operations.extend(u.operations)
                merged.aggregate_deltas.extend(u.aggregate_deltas)
            try:
                self._ledger.commit(merged)
                created += len(chunk)
                activated.update(r.target for r, _ in chunk)
                customers_created += sum(1 for r, _ in chunk if r.data.get("customer"))
            except CommitConflict:  # someone activated some meanwhile (the outbox, a retry): one by one
                for staged_row, _ in chunk:
                    c, k = self._activate_alone(staged_row, import_id, actor, decode)
                    created, customers_created = created + c, customers_created + k
                    activated.add(staged_row.target)
            for staged_row, _ in chunk:
                if staged_row.target in by_invoice:
                    by_invoice[staged_row.target].status = "created"
            chunk, ops, deltas = [], 0, []

        finished = True
        for staged_row in ordered:
            if staged_row.target in live:
                if staged_row.target in by_invoice:
                    by_invoice[staged_row.target].status = "created"
                continue
            uow = UnitOfWork(actor=actor, now=now)
            self._activation_ops(uow, staged_row, import_id, decode, customer_exists=False)
            size = ops + len(uow.operations) + len(merge_deltas(deltas + uow.aggregate_deltas))
            if chunk and size > MAX_TRANSACTION_ITEMS:
                flush()
                if time.monotonic() > deadline:  # at a chunk's end: a spent budget still activates one chunk
                    finished = False
                    break
            chunk.append((staged_row, uow))
            ops += len(uow.operations)
            deltas = deltas + uow.aggregate_deltas
        flush()

        def finish() -> ImportRecord:
            current = self.get(import_id)
            if current.status != IMPORT_ACTIVATING:
                return current
            # Counted from what is live (a crashed call's chunks included), not from this call's work.
            now_live = live | activated
            updated = replace(current, updated_at=self._clock.now(), invoices_created=len(now_live),
                              customers_created=sum(1 for r in ordered
                                                    if r.data.get("customer") and r.target in now_live))
            if finished:
                totals: dict[str, Money] = {}
                for r in ordered:
                    inv = decode(Invoice, r.data["invoice"])
                    totals[inv.currency] = totals.get(inv.currency, Money.zero(inv.currency)) + inv.amount_due
                updated = replace(updated, status=IMPORT_COMPLETED, completed_at=self._clock.now(),
                                  already_imported=sum(1 for r in rows if r.status == "already_imported"),
                                  totals={**current.totals, **{c: str(m) for c, m in totals.items()}})
            u = UnitOfWork(actor=actor, now=self._clock.now())
            saved = u.save(updated)
            if finished:
                u.audit("import.complete", "import", import_id, {"status": current.status}, saved.to_dict())
            self._ledger.commit(u)
            return saved

        saved = with_retries(finish)
        count("ReceivablesImported", created)
        logger.info("receivables imported", extra={"import_id": import_id, "status": saved.status,
                                                   "invoices": created})
        return saved

    def _activation_ops(self, uow: UnitOfWork, staged_row: RefRecord, import_id: str, decode: Any, *,
                        customer_exists: bool) -> None:
        data = staged_row.data
        if data.get("customer") and not customer_exists:
            self._add_customer(uow, decode(Customer, data["customer"]), data["customer_ref"], import_id)
        invoice = decode(Invoice, data["invoice"])
        saved = uow.save_invoice(None, invoice, on=date.fromisoformat(data["on"]), action="invoice.import",
                                 note={"import_id": import_id, "source": data["source"]})
        for key, ref_data in number_refs(saved):  # the reservation becomes the number's index entry
            uow.put_ref(NUMBER_REF, key, saved.id, {**ref_data, "import_id": import_id, "content": data["content"]},
                        must_not_exist=False)

    def _activate_alone(self, staged_row: RefRecord, import_id: str, actor: Actor, decode: Any) -> tuple[int, int]:
        """One row in its own transaction (after a chunk's conflict): (invoices, customers) created."""
        def attempt() -> tuple[int, int]:
            if self._ledger.get_invoices([staged_row.target]):
                return 0, 0
            customer = staged_row.data.get("customer")
            exists = bool(customer) and bool(self._ledger.get_customers([customer["id"]]))
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            self._activation_ops(uow, staged_row, import_id, decode, customer_exists=exists)
            self._ledger.commit(uow)
            return 1, int(bool(customer) and not exists)

        return with_retries(attempt)

    def _add_customer(self, uow: UnitOfWork, customer: Customer, ref: str, import_id: str) -> None:
        created = uow.create(customer)
        uow.audit("customer.import", "customer", created.id, None, {**created.to_dict(), "import_id": import_id})
        if not ref.startswith("name:"):
            uow.put_ref(CUSTOMER_REF, ref, created.id, {"import_id": import_id}, must_not_exist=False)


def _row_key(import_id: str, index: int) -> str:
    return f"{import_id}:{index:06d}"


def _customer_ref(inv: ImportedInvoice) -> str:
    return inv.buyer.reference or f"name:{(inv.buyer.name or '').casefold()}"


def parse_request(body: Mapping[str, Any]) -> tuple[list[ImportFile], bool, dict[str, str]]:
    """The JSON form of POST /imports: ``{"files": [{"name", "content" | "content_base64", "kind"?}],
    "dry_run": false, "contacts": {"<customer ref>": "<email>"}}``."""
    import base64
    import binascii

    raw_files = body.get("files")
    if not isinstance(raw_files, list) or not raw_files:
        raise BadRequest("files must be a non-empty list of {\"name\", \"content\" or \"content_base64\"}",
                         field="files")
    files = []
    for i, f in enumerate(raw_files):
        if not isinstance(f, Mapping):
            raise BadRequest(f"files[{i}] must be an object", field=f"files[{i}]")
        name = f.get("name") or f"file{i + 1}"
        if not isinstance(name, str) or len(name) > 200:
            raise BadRequest(f"files[{i}].name must be a short string", field=f"files[{i}].name")
        if isinstance(f.get("content_base64"), str):
            try:
                content = base64.b64decode(f["content_base64"], validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"files[{i}].content_base64 is not base64", field=f"files[{i}].content_base64") \
                    from None
        elif isinstance(f.get("content"), str):
            content = f["content"].encode("utf-8")
        else:
            raise BadRequest(f"files[{i}] needs content (text) or content_base64 (PDF)", field=f"files[{i}]")
        kind = f.get("kind")
        if kind is not None and not isinstance(kind, str):
            raise BadRequest(f"files[{i}].kind must be csv, cii or facturx", field=f"files[{i}].kind")
        files.append(ImportFile(name=name, content=content, kind=kind))
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BadRequest("dry_run must be true or false", field="dry_run")
    contacts = body.get("contacts") or {}
    if not isinstance(contacts, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in contacts.items()):
        raise BadRequest("contacts must map a customer reference to an email address", field="contacts")
    return files, dry_run, dict(contacts)
