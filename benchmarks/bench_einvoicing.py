"""Electronic invoices: a monthly run of 1,000 recurring invoices through the real issue path.

    python -m benchmarks.bench_einvoicing

Figures (printed, not asserted), on the local stack (moto in server mode, serialized):

- the document libraries (fpdf2, factur-x, lxml, babel, segno) are not imported by ``import app``; they load
  on the first issue, once (their import time is shown);
- the monthly run: 1,000 schedules due the same day, issued by ``RecurringService.run`` (what the daily job
  and ``POST /recurring/run`` call): each invoice numbered, rendered to Factur-X (PDF + XML, XSD check),
  its hashes recorded, pay link, outbox messages, period marker and schedule update in one transaction.
  Invoices per second (wall and CPU), DynamoDB requests per invoice, the run's RSS growth and peak traced
  Python allocations (over a 100-invoice sample, tracemalloc slows everything down);
- the outbox work that follows (store both files in S3 after re-rendering and checking the hashes; email
  with the PDF through SES): messages per second over a 300-message sample;
- the floor: a raw GetItem on the same moto server at that moment (moto is the wall-time bottleneck
  here: the CPU figures are this code's own cost);
- next to it, the same issue without documents (the renderer replaced by a no-op), to show what the
  documents cost in the issue path.
"""

from __future__ import annotations

import gc
from dataclasses import replace
import resource
import subprocess
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks.common import PROJECT_DIR, local_stack, meter_app_client, ms

HEAVY = ("fpdf", "facturx", "lxml", "babel", "segno", "jinja2", "pypdf")
LINES = [{"description": f"Prestation mensuelle {i + 1} : maintenance et support", "quantity": f"{1 + i % 3}",
          "unit_price": f"{120 + 7 * i}.50", "vat_rate": ("20", "10", "5.5")[i % 3]} for i in range(10)]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _heavy_after_import_app() -> str:
    code = f"import sys, app; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "eu-west-3"}).stdout.strip()
    return out or "none"


def _seed_schedules(customers: list[Any], count: int, day: int, start: Any, prefix: str) -> None:
    """``count`` active schedules due on ``day`` (BatchWriteItem: seeding is not what is measured)."""
    from chalicelib.adapters.dynamodb.ledger import schedule_item
    from chalicelib.adapters.dynamodb.models import ScheduleItem
    from chalicelib.domain.recurring import new_schedule

    now = datetime.now(timezone.utc)
    with ScheduleItem.batch_write() as batch:
        for n in range(count):
            customer = customers[n % len(customers)]
            schedule = new_schedule(f"rsc_{prefix}{n:05d}", {"customer_id": customer.id, "lines": LINES,
                                                          "day_of_month": day, "start": start.isoformat()},
                                    customer_currency="EUR", today=start, now=now)
            batch.save(schedule_item(replace(schedule, version=1)))


def _seed_customers(templates: list[dict[str, Any]], count: int) -> list[Any]:
    """``count`` customers written with BatchWriteItem (seeding is not what is measured)."""
    from chalicelib.adapters.dynamodb.ledger import customer_item
    from chalicelib.adapters.dynamodb.models import CustomerItem
    from chalicelib.domain.parties import new_customer

    now = datetime.now(timezone.utc)
    customers = [replace(new_customer(f"cus_bench{n:05d}", {**templates[n % len(templates)],
                                                             "email": f"client{n}@bench.example"}, now=now), version=1)
                 for n in range(count)]
    with CustomerItem.batch_write() as batch:
        for customer in customers:
            batch.save(customer_item(customer))
    return customers


class DynamoTimer:
    """Wall time spent waiting for DynamoDB (moto here), through botocore's event hooks."""

    def __init__(self, client: Any) -> None:
        self.total = 0.0
        self._started = 0.0
        client.meta.events.register("before-call.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, **_: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, **_: Any) -> None:
        self.total += time.perf_counter() - self._started


def _timed_get(client: Any, table: str) -> float:
    t = time.perf_counter()
    client.get_item(TableName=table, Key={"pk": {"S": "SET#seller"}, "sk": {"S": "SETTINGS"}})
    return time.perf_counter() - t


def run() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [("heavy modules imported by `import app`", _heavy_after_import_app())]
    with local_stack():
        from chalicelib import wiring
        from chalicelib.domain.auth import Actor
        from infra.local.seed import CUSTOMERS, SELLER

        actor = Actor.system("bench")
        wiring.settings().put_seller(SELLER, actor)
        customers = _seed_customers(CUSTOMERS[:2], 1100)   # one subscription per customer, as in real life
        today = wiring.invoices().today()
        count = 1000

        # documents libraries: not loaded yet; the first issue loads them once
        before = set(sys.modules)
        t = time.perf_counter()
        import facturx  # noqa: F401
        import fpdf  # noqa: F401
        from chalicelib.adapters.documents import spec  # noqa: F401
        first_import = time.perf_counter() - t
        loaded = sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(HEAVY))
        rows.append(("document libraries loaded on the first issue", f"{', '.join(loaded)} in {ms(first_import)} "
                                                                     "(once per process)"))

        _seed_schedules(customers, count, today.day, today, "month")
        meter = meter_app_client()
        meter.reset()
        waited = DynamoTimer(wiring.dynamodb_connection().client)
        gc.collect()
        rss0 = _rss_mb()
        t, c = time.perf_counter(), time.process_time()
        report = wiring.recurring().run(today, max_invoices=count)
        elapsed, cpu = time.perf_counter() - t, time.process_time() - c
        issued = max(len(report.issued), 1)
        print(f"  ... monthly run done: {len(report.issued)} in {elapsed:.1f} s", file=sys.stderr, flush=True)
        rows += [
            ("monthly run: 1,000 recurring invoices issued (10 lines, Factur-X)",
             f"{issued} issued, {len(report.failed)} failed, in {elapsed:.1f} s"),
            ("  invoices per second", f"{issued / elapsed:.1f}/s wall, {issued / cpu:.1f}/s of CPU "
                                      f"({ms(elapsed / issued)} per invoice)"),
            ("  DynamoDB requests per invoice", f"{meter.total / issued:.1f} ({meter.describe()})"),
            ("  of which waiting for DynamoDB (moto)", f"{ms(waited.total / issued)} per invoice "
                                                       f"({waited.total / elapsed * 100:.0f}% of the wall time)"),
            ("  max RSS of this process during the run", f"{rss0:.0f} -> {_rss_mb():.0f} MiB"),
        ]

        # the floor at this moment: a raw GetItem on the same (now larger) table, the same moto server
        raw = wiring.dynamodb_connection().client
        table = wiring.get_config().table_name
        floor = sorted(_timed_get(raw, table) for _ in range(40))[20]
        rows.append(("  floor: raw GetItem p50 on the same table now", f"{ms(floor)} (x {meter.total / issued:.0f} "
                                                                        f"requests = {ms(floor * meter.total / issued)} "
                                                                        "of each invoice's wall time)"))

        # the outbox that follows: store files (re-render + hash check + 2 S3 puts), email, events (a sample)
        t, c = time.perf_counter(), time.process_time()
        done = wiring.outbox().run(limit=300).to_dict()
        drain, drain_cpu = time.perf_counter() - t, time.process_time() - c
        rows.append(("outbox after the run: 300 messages (store files, email, event)",
                     f"{done['processed'] / drain:.0f}/s wall, {done['processed'] / drain_cpu:.0f}/s of CPU "
                     f"({done['processed']} processed, {done['failed']} failed)"))

        # peak traced allocations over a 100-invoice sample (next day: a second batch of schedules)
        more = 100
        tomorrow = today + timedelta(days=1)
        _seed_schedules(customers, more, tomorrow.day, tomorrow, "sample")
        gc.collect()
        tracemalloc.start()
        sample = wiring.recurring().run(tomorrow, max_invoices=more)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append(("peak traced Python memory while issuing 100 invoices",
                     f"{peak / 1024 / 1024:.1f} MiB ({len(sample.issued)} issued; the run holds one invoice's "
                     "documents at a time)"))

        # the same issue path without documents, for comparison
        documents = wiring.documents()
        real = documents._render

        class _NoDocs:
            pdf, xml, sha256_pdf, sha256_xml = b"", b"", "-", "-"

        documents._render = lambda invoice, spec_: _NoDocs()
        after = tomorrow + timedelta(days=1)
        _seed_schedules(customers, 200, after.day, after, "nodocs")
        t, c = time.perf_counter(), time.process_time()
        plain = wiring.recurring().run(after, max_invoices=200)
        elapsed_plain, cpu_plain = time.perf_counter() - t, time.process_time() - c
        plain_count = max(len(plain.issued), 1)
        documents._render = real
        rows.append(("same issue path without rendering (200 invoices)",
                     f"{len(plain.issued) / elapsed_plain:.1f}/s wall, {len(plain.issued) / cpu_plain:.1f}/s of CPU: "
                     f"documents cost {ms(cpu / issued - cpu_plain / plain_count)} of CPU per invoice"))
    return rows


if __name__ == "__main__":
    for label, figure in run():
        print(f"{label:<66} {figure}")
