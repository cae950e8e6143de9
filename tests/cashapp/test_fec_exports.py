"""The FEC of a large period, built in the background: resumable page by page, byte-identical to the
synchronous export, idempotent steps; the synchronous export refuses what it cannot finish."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import date

import pytest

from chalicelib.adapters.codec import decode, encode
from chalicelib.domain.auth import READER, Actor
from chalicelib.domain.errors import NotFound, ValidationError
from chalicelib.services.books import ExportTooLarge, SyncLimits, parse_rates
from chalicelib.services.common import IdempotencyRequest
from chalicelib.services.fec_exports import DONE, FAILED, QUEUED, RUNNING, TOPIC, FecExportService
from chalicelib.services.outbox import OutboxDrain
from tests.cashapp.test_books import MARCH, month  # noqa: F401 - the fixture
from tests.cashapp.world import World
from tests.fakes import FakeDocumentStore

ACCOUNTANT = Actor("accountant", READER)


class Ticks:
    """A monotonic clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def exports(w: World, **kw) -> tuple[FecExportService, FakeDocumentStore, OutboxDrain]:
    store = FakeDocumentStore()
    service = FecExportService(w.ledger, w.clock, w.books, lambda: store, encode=encode, decode=decode, **kw)
    return service, store, OutboxDrain(w.ledger, w.clock, {TOPIC: service.handler})


def drain(outbox: OutboxDrain) -> int:
    runs = 0
    while outbox.run().processed:
        runs += 1
        assert runs < 200
    return runs


def test_a_tiny_budget_resumes_page_by_page_and_the_file_is_byte_identical(month):  # noqa: F811
    # Given a month of every kind of movement, and a step budget that stops after each page of one item
    w, _ = month
    service, store, outbox = exports(w, step_budget_s=0.5, page_sizes={"sales": 1, "payments": 1, "payouts": 1},
                                     monotonic=Ticks())
    # When the export is requested and the outbox drained
    job, replayed = service.request(*MARCH, fmt="fec", rates={}, actor=ACCOUNTANT)
    assert job.status == QUEUED and not replayed
    runs = drain(outbox)
    # Then it took one step per page, each step wrote its part, and the file is the synchronous export's bytes
    done = service.get(job.id)
    sync = w.books.export(*MARCH)
    expected = sync.fec().encode("utf-8")
    assert done.status == DONE and done.step == runs and runs > 10
    assert len(done.parts) >= runs - 2 and all(k.startswith(f"exports/fec/{job.id}/work/") for k in done.parts)
    content = store.objects[done.file["key"]]
    assert content == expected
    assert done.file == {"key": f"exports/fec/{job.id}/812345676FEC20260331.txt", "filename": "812345676FEC20260331.txt",
                         "content_type": "text/plain; charset=utf-8", "size": len(expected),
                         "lines": sync.line_count, "sha256": hashlib.sha256(expected).hexdigest()}
    assert done.reads == {**sync.reads} and done.totals == sync.totals()
    # a part holds what its step read, as the ledger stores it
    first = json.loads(gzip.decompress(store.objects[done.parts[0]]))
    assert len(first["sales"]) + len(first["payments"]) + len(first["payouts"]) <= 1
    # and the status gives a short-lived download link
    status = service.status(job.id)
    assert status["status"] == "done" and status["file"]["sha256"] == done.file["sha256"]
    assert FakeDocumentStore.url_key(status["links"]["download"]) == done.file["key"]
    assert store.urls[-1] == (done.file["key"], 300)


def test_one_step_when_the_budget_allows_and_csv_too(month):  # noqa: F811
    w, _ = month
    service, store, outbox = exports(w)
    job, _ = service.request(*MARCH, fmt="csv", rates={}, actor=ACCOUNTANT)
    assert drain(outbox) == 1
    done = service.get(job.id)
    assert done.step == 1 and done.parts == ()
    assert store.objects[done.file["key"]] == w.books.export(*MARCH).csv().encode()
    assert done.file["filename"] == "812345676FEC20260331.csv"


def test_a_step_runs_once_however_often_its_message_comes(month):  # noqa: F811
    w, _ = month
    service, store, outbox = exports(w, step_budget_s=1.5, page_sizes={"sales": 2, "payments": 2, "payouts": 2},
                                     monotonic=Ticks())
    job, _ = service.request(*MARCH, fmt="fec", rates={}, actor=ACCOUNTANT)
    service.handler({"job_id": job.id, "step": 0})
    after_first = service.get(job.id)
    assert after_first.status == RUNNING and after_first.step == 1
    # the same message again (redelivered) does nothing
    service.handler({"job_id": job.id, "step": 0})
    assert service.get(job.id) == after_first
    # a run that lost the race for a step (it read the job before the winner committed) changes nothing
    service.handler({"job_id": job.id, "step": 1})
    winner = service.get(job.id)
    parts = len(store.objects)
    service._run(after_first, 1)
    assert service.get(job.id) == winner and len(store.objects) == parts + 1  # its part is never listed
    drain(outbox)  # the queued messages: step 0 (already done), step 1 (done), step 2 ...
    done = service.get(job.id)
    assert done.status == DONE
    assert store.objects[done.file["key"]] == w.books.export(*MARCH).fec().encode()
    service.handler({"job_id": job.id, "step": done.step - 1})
    service.handler({"job_id": "fecx_gone", "step": 0})
    assert service.get(job.id) == done


def test_a_currency_without_its_rate_fails_the_job_with_the_reason():
    w = World()
    c = w.customer(currency="USD")
    w.issued(c.id, "100.00", on=date(2026, 3, 3), currency="USD")
    service, store, outbox = exports(w)
    job, _ = service.request(*MARCH, fmt="fec", rates={}, actor=ACCOUNTANT)
    drain(outbox)
    failed = service.get(job.id)
    assert failed.status == FAILED and "exchange rate" in failed.error["message"] and failed.file is None
    assert "download" not in service.status(job.id)
    job, _ = service.request(*MARCH, fmt="fec", rates=parse_rates("USD:0.9"), actor=ACCOUNTANT)
    drain(outbox)
    assert service.get(job.id).status == DONE and service.get(job.id).rates == {"USD": "0.9"}


def test_requests_are_checked_and_replayed_by_idempotency_key(month):  # noqa: F811
    w, _ = month
    service, _, _ = exports(w)
    with pytest.raises(ValidationError):
        service.request(date(2026, 3, 31), date(2026, 3, 1), fmt="fec", rates={}, actor=ACCOUNTANT)
    with pytest.raises(ValidationError):
        service.request(date(2025, 1, 1), date(2026, 3, 1), fmt="fec", rates={}, actor=ACCOUNTANT)
    with pytest.raises(NotFound):
        service.get("fecx_unknown")
    key = IdempotencyRequest(scope="accountant", key="k-1", request_hash="h")
    first, replayed = service.request(*MARCH, fmt="fec", rates={}, actor=ACCOUNTANT, idempotency=key)
    again, replayed_again = service.request(*MARCH, fmt="fec", rates={}, actor=ACCOUNTANT, idempotency=key)
    assert not replayed and replayed_again and again.id == first.id
    assert sum(1 for v in w.ledger.outbox.values() if v["message"].topic == TOPIC) == 1


def test_the_synchronous_export_refuses_what_it_cannot_finish(month):  # noqa: F811
    w, _ = month
    export, file = w.books.export_file(*MARCH, limits=SyncLimits())
    assert file.content == export.fec().encode() and file.lines == export.line_count
    with pytest.raises(ExportTooLarge) as reads:
        w.books.export_file(*MARCH, limits=SyncLimits(max_reads=5))
    assert "POST /exports/fec" in reads.value.message and reads.value.details["limit"] == 5
    with pytest.raises(ExportTooLarge):
        w.books.export_file(*MARCH, limits=SyncLimits(max_lines=export.line_count - 1))
    with pytest.raises(ExportTooLarge):
        w.books.export_file(*MARCH, limits=SyncLimits(max_bytes=len(file.content) - 1))
    w.books.export_file(*MARCH, limits=SyncLimits(max_lines=export.line_count, max_bytes=len(file.content)))
