"""The accounting export of a large period, built in the background (``POST /exports/fec``).

One API request cannot build a real company's FEC: API Gateway gives up after 29 s and a Lambda
response stops at 6 MB, and a month of 10,000 invoices is ~9 MB. So a request records an export
job (a ``fec_export`` ref in the ledger, status ``queued``) and queues its first step through the
outbox; the step handler reads the period with the very queries of the synchronous export
(:meth:`BooksService.read_period`: invoices created in the window, payments received, Stripe
payouts, page by page, no Scan) for at most ``step_budget_s``. When the reads do not end within
it, what the step read is written to the documents bucket (``exports/fec/<job>/work/``, one part
per step) and the job records where the reads stand; the step queues the next one. The last step
reads the parts back in order, builds the entries with :meth:`BooksService.finish` (the same code
as the synchronous export, hence the same bytes), writes ``exports/fec/<job>/<SIREN>FEC<to>.txt``
and marks the job done with its size, line count and SHA-256. ``GET /exports/fec/{id}`` then
gives a short-lived pre-signed URL to download it.

At least once, never twice: a step runs only if the job is at that step, and its commit claims
the step (a ``fec_export_step`` ref that must not exist), so a message delivered twice, or two
drains racing on one message, advance the job once; a losing run's work part is never listed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Callable, Mapping

from ..domain.auth import Actor
from ..domain.bank_transaction import BankTransaction
from ..domain.errors import NotFound, ValidationError
from ..domain.ids import new_id
from ..domain.invoice import Invoice
from ..domain.payment import Payment
from .books import BooksService, PeriodReads, ReadPosition, check_period
from .common import IdempotencyRequest, idempotent
from .ports import Clock, CommitConflict, DocumentStore, Ledger, UnitOfWork

log = logging.getLogger(__name__)

TOPIC = "books.fec_export"
JOB_REF = "fec_export"
STEP_REF = "fec_export_step"
JOB_TTL_DAYS = 30
PREFIX = "exports/fec"
DOWNLOAD_TTL_S = 300
# The outbox functions run at most 90 s and hold a message's lease 2 minutes (infra/cdk/stack.py,
# services/outbox.py); a drain handles other messages too: a step reads for 30 s at most.
STEP_BUDGET_S = 30.0

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"

Encode = Callable[[Any], Any]
Decode = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class FecExportJob:
    """An export job: its request, where its reads stand, and its file once built."""

    id: str
    start: date
    end: date
    format: str
    rates: dict[str, str]
    requested_by: str
    created_at: datetime
    updated_at: datetime
    status: str = QUEUED
    step: int = 0
    phase: str = "sales"
    cursor: str | None = None
    parts: tuple[str, ...] = ()
    reads: dict[str, int] = field(default_factory=dict)
    file: dict[str, Any] | None = None       # key, filename, content_type, size, lines, sha256
    totals: dict[str, Any] | None = None     # debits and credits per journal
    warnings: tuple[str, ...] = ()
    error: dict[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "format": self.format,
                "rates": self.rates, "requested_by": self.requested_by, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat(), "status": self.status, "step": self.step,
                "phase": self.phase, "cursor": self.cursor, "parts": list(self.parts), "reads": self.reads,
                "file": self.file, "totals": self.totals, "warnings": list(self.warnings), "error": self.error}

    @classmethod
    def from_record(cls, job_id: str, d: Mapping[str, Any]) -> FecExportJob:
        return cls(id=job_id, start=date.fromisoformat(d["start"]), end=date.fromisoformat(d["end"]),
                   format=d["format"], rates=dict(d.get("rates") or {}), requested_by=d["requested_by"],
                   created_at=datetime.fromisoformat(d["created_at"]),
                   updated_at=datetime.fromisoformat(d["updated_at"]), status=d["status"], step=int(d["step"]),
                   phase=d["phase"], cursor=d.get("cursor"), parts=tuple(d.get("parts") or ()),
                   reads={k: int(v) for k, v in (d.get("reads") or {}).items()}, file=d.get("file"),
                   totals=d.get("totals"), warnings=tuple(d.get("warnings") or ()), error=d.get("error"))

    def to_dict(self) -> dict[str, Any]:
        """The API's view (no cursor, no work parts)."""
        body: dict[str, Any] = {
            "object": "fec_export", "id": self.id, "status": self.status,
            "period": {"from": self.start.isoformat(), "to": self.end.isoformat()}, "format": self.format,
            "rates": self.rates, "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "steps": self.step, "items_read": self.reads, "links": {"self": f"/exports/fec/{self.id}"}}
        if self.file is not None:
            body["file"] = {k: self.file[k] for k in ("filename", "content_type", "size", "lines", "sha256")}
            body["journal_totals"] = self.totals
            body["warnings"] = list(self.warnings)
        if self.error is not None:
            body["error"] = self.error
        return body


class FecExportService:
    """Export jobs: ``request`` (the API), ``handler`` (the outbox topic ``books.fec_export``), ``get``."""

    def __init__(self, ledger: Ledger, clock: Clock, books: BooksService, store: Callable[[], DocumentStore], *,
                 encode: Encode, decode: Decode, step_budget_s: float = STEP_BUDGET_S,
                 page_sizes: Mapping[str, int] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ledger = ledger
        self._clock = clock
        self._books = books
        self._store = store
        self._encode = encode  # adapters/codec.py, as the ledger stores entities: parts decode exactly
        self._decode = decode
        self.step_budget_s = step_budget_s
        self.page_sizes = dict(page_sizes or {})
        self._monotonic = monotonic

    # -- the API -----------------------------------------------------------------------------------
    def request(self, start: date, end: date, *, fmt: str, rates: Mapping[str, Decimal], actor: Actor,
                idempotency: IdempotencyRequest | None = None) -> tuple[FecExportJob, bool]:
        """Record a queued export job and queue its first step; a repeated ``Idempotency-Key`` returns
        the first job. Raises ``ValidationError`` for a bad period or format."""
        check_period(start, end)
        if fmt not in ("fec", "csv"):
            raise ValidationError("format must be fec or csv", field="format")

        def run() -> FecExportJob:
            now = self._clock.now()
            job = FecExportJob(id=new_id("fecx"), start=start, end=end, format=fmt,
                               rates={k: str(v) for k, v in sorted(rates.items())}, requested_by=actor.name,
                               created_at=now, updated_at=now)
            uow = UnitOfWork(actor=actor, now=now)
            uow.put_ref(JOB_REF, job.id, job.id, job.to_record(), ttl_days=JOB_TTL_DAYS)
            uow.emit(TOPIC, {"job_id": job.id, "step": 0})
            if idempotency:
                uow.claim_idempotency(idempotency.record("fec_export", job.id, now))
            self._ledger.commit(uow)
            return job

        return idempotent(self._ledger, idempotency, "fec_export", run, self.get)

    def get(self, job_id: str) -> FecExportJob:
        """Raises ``NotFound`` (unknown, or older than ``JOB_TTL_DAYS``)."""
        ref = self._ledger.get_ref(JOB_REF, job_id) if job_id.startswith("fecx_") else None
        if ref is None:
            raise NotFound(f"export {job_id} does not exist (jobs are kept {JOB_TTL_DAYS} days)",
                           code="export_not_found")
        return FecExportJob.from_record(job_id, ref.data)

    def status(self, job_id: str) -> dict[str, Any]:
        """The job; once done, a pre-signed URL valid ``DOWNLOAD_TTL_S`` seconds to download its file."""
        job = self.get(job_id)
        body = job.to_dict()
        if job.status == DONE and job.file is not None:
            url = self._store().presigned_url(job.file["key"], DOWNLOAD_TTL_S)
            expires = self._clock.now() + timedelta(seconds=DOWNLOAD_TTL_S)
            body["links"]["download"] = url
            body["download"] = {"url": url, "expires_at": expires.isoformat(), "expires_in": DOWNLOAD_TTL_S}
        return body

    # -- the outbox --------------------------------------------------------------------------------
    def handler(self, payload: dict[str, Any]) -> None:
        """One step of a job (topic ``books.fec_export``, payload ``{job_id, step}``). Idempotent: a step
        the job has passed does nothing. A ``ValidationError`` (a currency without its rate) fails the
        job with that error; anything else is raised for the outbox to retry."""
        try:
            job = self.get(str(payload["job_id"]))
        except NotFound:
            log.warning("export job gone", extra={"job_id": payload.get("job_id")})
            return
        step = int(payload.get("step", 0))
        if job.status in (DONE, FAILED) or job.step != step:
            return
        try:
            self._run(job, step)
        except ValidationError as exc:
            self._commit(replace(job, status=FAILED, step=step + 1, error=exc.to_dict()), step)

    def _run(self, job: FecExportJob, step: int) -> None:
        deadline = self._monotonic() + self.step_budget_s
        new = PeriodReads(reads=dict(job.reads))
        position = ReadPosition(job.phase, job.cursor)
        read_here = not position.done
        pages = 0

        def stop() -> bool:  # a step reads at least one page: the job always moves on
            nonlocal pages
            pages += 1
            return pages > 1 and self._monotonic() >= deadline

        position = self._books.read_period(job.start, job.end, position, new, stop=stop, page_sizes=self.page_sizes)
        # The build reads the parts back and batch-reads the invoices settled and the customers: it gets a
        # step of its own unless the reads took less than half of this one.
        if not position.done or (read_here and self._monotonic() >= deadline - self.step_budget_s / 2):
            parts = job.parts
            if new.sales or new.payments or new.payouts:
                parts = (*parts, self._write_part(job, step, new))
            self._commit(replace(job, status=RUNNING, step=step + 1, phase=position.phase, cursor=position.cursor,
                                 parts=parts, reads=new.reads), step, follow=True)
            log.info("export step done, continued", extra={"job_id": job.id, "step": step, "phase": position.phase})
            return
        data = PeriodReads(reads=new.reads)
        for key in job.parts:
            data.extend(self._read_part(key))
        data.extend(new)
        rates = {k: Decimal(v) for k, v in job.rates.items()}
        export = self._books.finish(job.start, job.end, data, rates=rates)
        file = export.render(job.format)
        content = file.content
        key = f"{PREFIX}/{job.id}/{file.filename}"
        self._store().put(key, content, file.content_type)
        info = {"key": key, "filename": file.filename, "content_type": file.content_type, "size": len(content),
                "lines": file.lines, "sha256": hashlib.sha256(content).hexdigest()}
        self._commit(replace(job, status=DONE, step=step + 1, phase=position.phase, cursor=None, reads=data.reads,
                             file=info, totals=export.totals(), warnings=tuple(export.warnings[:100])), step)
        log.info("export done", extra={"job_id": job.id, "steps": step + 1, "lines": file.lines,
                                       "bytes": len(content)})

    def _commit(self, job: FecExportJob, step: int, *, follow: bool = False) -> None:
        now = self._clock.now()
        job = replace(job, updated_at=now)
        uow = UnitOfWork(actor=Actor.system("fec_export"), now=now)
        uow.put_ref(STEP_REF, f"{job.id}#{step}", job.id, ttl_days=JOB_TTL_DAYS)  # once per step
        uow.put_ref(JOB_REF, job.id, job.id, job.to_record(), must_not_exist=False, ttl_days=JOB_TTL_DAYS)
        if follow:
            uow.emit(TOPIC, {"job_id": job.id, "step": job.step})
        try:
            self._ledger.commit(uow)
        except CommitConflict as exc:
            if f"ref:{STEP_REF}" not in exc.failed:
                raise
            log.info("export step already done by another run", extra={"job_id": job.id, "step": step})

    # -- work parts ---------------------------------------------------------------------------------
    def _write_part(self, job: FecExportJob, step: int, new: PeriodReads) -> str:
        body = {"sales": [self._encode(inv) for inv in new.sales.values()],
                "payments": [self._encode(p) for p in new.payments],
                "payouts": [self._encode(t) for t in new.payouts]}
        # A unique name: a run that loses the race for its step never overwrites the winner's part.
        key = f"{PREFIX}/{job.id}/work/{step:04d}-{new_id('part')}.json.gz"
        self._store().put(key, gzip.compress(json.dumps(body, separators=(",", ":")).encode(), mtime=0),
                          "application/gzip")
        return key

    def _read_part(self, key: str) -> PeriodReads:
        body = json.loads(gzip.decompress(self._store().get(key)))
        part = PeriodReads()
        for raw in body["sales"]:
            inv = self._decode(Invoice, raw)
            part.sales[inv.id] = inv
        part.payments.extend(self._decode(Payment, raw) for raw in body["payments"])
        part.payouts.extend(self._decode(BankTransaction, raw) for raw in body["payouts"])
        return part
