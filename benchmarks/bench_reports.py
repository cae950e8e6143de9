"""Finance reports at volume: 100,000 invoices of 2,000 customers on the local stack.

    python -m benchmarks.bench_reports                          # the full size
    BENCH_REPORTS_SCALE=0.1 python -m benchmarks.bench_reports   # a tenth, for a quick look

Seeds 2,000 customers and 50 invoices each over the last two years (BatchWriteItem), each
issued, then paid on a date drawn from its customer's habit (some early, most a few days
late, a few customers very late), or still open; partial payments too. Each invoice's
history and the report aggregates are built by the app's own code, change by change
(``deltas_for_invoice_change`` + ``merge_deltas``, as ``bulk_put_invoices`` does for
issue-only seeds), so the reports read exactly what they would after the same changes
through the API. Payment records are not seeded: the scorecard's unapplied-cash read finds
none (its cost is one Query of the customer's payments either way).

Figures, through the API (chalice's test client, API key checked):
- p50/p95 of GET /reports/aging (today and random past dates), /reports/dso, a customer
  scorecard, and a page of the aging by customer; DynamoDB requests and items read each;
- the same aging brute force: every invoice read (the by-kind index) and aged in Python.
Goal (issue 6): portfolio aging as of any date reads at most 2,000 items whatever the
number of invoices and answers in under 1 s at p95 locally.

The server is benchmarks/moto_indexed.py (moto sorts the whole table on every Query; that
server hands Query the queried partition only, like DynamoDB). Aggregates are read with
BatchGetItem, which moto answers by key anyway.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any


from benchmarks.common import local_stack, meter_app_client, ms, percentile

SCALE = float(os.environ.get("BENCH_REPORTS_SCALE", "1"))
CUSTOMERS = max(10, int(2000 * SCALE))
PER_CUSTOMER = 50
DAYS = 730
RUNS = int(os.environ.get("BENCH_REPORTS_RUNS", "30"))
GC_THRESHOLD = int(os.environ.get("BENCH_REPORTS_MOTO_GC", "200000"))   # Python's default is 700


def seed(ledger: Any, today: date) -> dict[str, Any]:
    """Customers and their invoices (issued, then paid or not), histories and aggregates by the app's code."""
    from chalicelib.adapters.dynamodb.ledger import customer_item, invoice_item
    from chalicelib.adapters.dynamodb.models import CustomerItem, InvoiceItem
    from chalicelib.domain.aggregates import AggregateKey, apply_updates, deltas_for_invoice_change, merge_deltas
    from chalicelib.domain.invoice import new_draft
    from chalicelib.domain.money import Money
    from chalicelib.domain.parties import new_customer

    rnd = random.Random(6)
    now = datetime.now(timezone.utc)
    aggregates: dict[AggregateKey, dict[str, int]] = {}
    customers = []
    with CustomerItem.batch_write() as batch:
        for n in range(CUSTOMERS):
            c = replace(new_customer(f"cus_rep{n:06d}", {
                "name": f"Client {n:05d} SAS", "email": f"c{n}@bench.example", "country": "FR",
                "credit_limit": "50000.00", "payment_terms": {"kind": "net", "days": rnd.choice((30, 45, 60))}},
                now=now), version=1)
            batch.save(customer_item(c))
            customers.append(c)
    invoices = 0
    open_count = 0
    with InvoiceItem.batch_write() as batch:
        for c in customers:
            habit = rnd.choice((-3, 0, 0, 2, 5, 10, 20, 45, 90))   # typical days late of this payer
            for k in range(PER_CUSTOMER):
                issue = today - timedelta(days=rnd.randint(1, DAYS))
                invoices += 1
                draft = new_draft(f"inv_rep{invoices:07d}", {"customer_id": c.id, "lines": [
                    {"description": "Prestation", "quantity": "1", "unit_price": f"{rnd.randint(2, 400) * 25}.00",
                     "vat_rate": "20"}]}, customer_currency="EUR", now=now)
                issued = draft.issue(number=f"R{issue.year}-{invoices:07d}", series=f"R#{issue.year}",
                                     issue_date=issue, terms=c.payment_terms, eom_mode="days_then_end_of_month",
                                     jurisdiction="FR", seller={}, buyer=c.identity(), now=now)
                deltas, history = deltas_for_invoice_change(draft, issued, on=issue)
                apply_updates(aggregates, merge_deltas(deltas))
                current = replace(issued, ledger_history=history.to_dict() if history else None, version=2)
                assert issued.due_date is not None
                paid_on = issued.due_date + timedelta(days=max(-20, int(rnd.gauss(habit, 4 + abs(habit) / 3))))
                if rnd.random() < 0.08:   # a partial payment first
                    part_on = max(issue, paid_on - timedelta(days=rnd.randint(5, 40)))
                    if part_on < today:
                        part = Money(current.amount_due.amount // 2, "EUR")
                        after = current.apply_payment(part, now)
                        deltas, history = deltas_for_invoice_change(current, after, on=part_on, history=history)
                        apply_updates(aggregates, merge_deltas(deltas))
                        current = replace(after, ledger_history=history.to_dict() if history else None)
                if paid_on < today:
                    after = current.apply_payment(current.amount_due, now)
                    deltas, history = deltas_for_invoice_change(current, after, on=max(issue, paid_on),
                                                                history=history)
                    apply_updates(aggregates, merge_deltas(deltas))
                    current = replace(after, ledger_history=history.to_dict() if history else None)
                else:
                    open_count += 1
                batch.save(invoice_item(current))
    ledger.put_aggregates(aggregates)
    return {"customers": customers, "invoices": invoices, "open": open_count, "aggregate_items": len(aggregates)}


def reports_stack() -> Any:
    """benchmarks/moto_indexed.py (Query served from the queried partition) with Python's cyclic garbage
    collector made rare in the server process: with ~100,000 items (millions of objects) each full
    collection walks them all, and the default thresholds run one every few requests, which makes every
    request cost in proportion to the table (seeding 100,000 invoices then takes over half an hour)."""
    def server(port: int) -> list[str]:
        code = (f"import gc, sys, runpy; gc.set_threshold({GC_THRESHOLD}, 50, 1000); "
                f"sys.argv = ['moto_indexed', '--port', '{port}']; "
                "runpy.run_module('benchmarks.moto_indexed', run_name='__main__')")
        return [sys.executable, "-c", code]

    return local_stack(server)


def _stats(samples: list[float]) -> str:
    return f"p50 {ms(percentile(samples, 50))}, p95 {ms(percentile(samples, 95))} ({len(samples)} requests)"


def run() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []

    def row(label: str, figure: str) -> None:
        rows.append((label, figure))
        print(f"  .. {label}: {figure}", file=sys.stderr, flush=True)   # progress: the run takes a while

    row("local stack", "serialized moto, Query served from the queried partition (benchmarks/moto_indexed.py, "
                       "garbage collector made rare); API through chalice's test client")
    with reports_stack():
        from chalice.test import Client

        from app import app as chalice_app
        from chalicelib import wiring
        from chalicelib.domain.aggregates import aging_from_invoices, ReceivableHistory
        from chalicelib.domain.auth import ADMIN, Actor
        from chalicelib.services.ports import InvoiceQuery
        from infra.local.seed import SELLER

        wiring.reset()
        actor = Actor.system("bench")
        wiring.settings().put_seller(SELLER, actor)
        _, key = wiring.access().create_key("bench", ADMIN, actor)
        today = wiring.reports().today()
        started = time.perf_counter()
        seeded = seed(wiring.ledger(), today)
        row(f"seed: {CUSTOMERS:,} customers, {seeded['invoices']:,} invoices over {DAYS} days",
            f"{time.perf_counter() - started:.0f} s ({seeded['open']:,} open; {seeded['aggregate_items']:,} "
            "aggregate items)")
        meter = meter_app_client()
        headers = {"Authorization": f"Bearer {key}"}
        rnd = random.Random(7)
        with Client(chalice_app, stage_name="local") as client:
            def measure(label: str, paths: list[str], goal: str = "") -> Any:
                client.http.get(paths[0], headers=headers)  # warm: imports, authorizer cache
                samples, items, calls, last = [], [], [], None
                for path in paths:
                    meter.reset()
                    t = time.perf_counter()
                    resp = client.http.get(path, headers=headers)
                    samples.append(time.perf_counter() - t)
                    assert resp.status_code == 200, (path, resp.body[:300])
                    items.append(meter.items_read)
                    calls.append(meter.describe())
                    last = resp
                row(f"{label}: latency", _stats(samples))
                row(f"{label}: DynamoDB items read", f"max {max(items):,}, median {sorted(items)[len(items) // 2]:,}"
                                                     f"{goal}")
                row(f"{label}: requests (last)", calls[-1])
                return last

            dates = [today] + [today - timedelta(days=rnd.randint(1, DAYS)) for _ in range(RUNS - 1)]
            measure("GET /reports/aging (portfolio, today and random past dates)",
                    [f"/reports/aging?as_of={d.isoformat()}" for d in dates],
                    f" (goal: <= 2,000 whatever the number of invoices; {seeded['invoices']:,} here)")
            measure("GET /reports/aging?month_ends=12 (with 12 month-end snapshots)",
                    ["/reports/aging?month_ends=12"] * max(5, RUNS // 4))
            measure("GET /reports/dso (90 days + 12-month series)",
                    [f"/reports/dso?as_of={d.isoformat()}" for d in dates])
            customers = seeded["customers"]
            measure("GET /customers/{id}/scorecard",
                    [f"/customers/{rnd.choice(customers).id}/scorecard" for _ in range(RUNS)],
                    f" (the customer's {PER_CUSTOMER} invoices, payments, promises, tasks)")
            measure("GET /reports/aging?by=customer&limit=50 (one page)",
                    ["/reports/aging?by=customer&limit=50"] * max(5, RUNS // 4))
            aging = client.http.get("/reports/aging", headers=headers)
        # brute force: every invoice read (the by-kind index, 1 MB pages) and aged in Python, as a report
        # without aggregates would; once (moto sorts the whole 100,000-item partition for every page)
        ledger = wiring.ledger()
        meter.reset()
        t = time.perf_counter()
        histories, cursor, pages = [], None, 0
        while True:
            page = ledger.query_invoices(InvoiceQuery(limit=1000, cursor=cursor), today)
            histories += [ReceivableHistory.from_dict(i.ledger_history) for i in page.items if i.ledger_history]
            cursor, pages = page.next_cursor, pages + 1
            if not cursor:
                break
        brute = aging_from_invoices(histories, currency="EUR", as_of=today)
        elapsed = time.perf_counter() - t
        row("brute-force aging (every invoice read and aged in Python): latency",
            f"{elapsed * 1000:,.0f} ms (one run; {meter.calls['Query']:,} Query pages of up to 1 MB)")
        row("brute-force aging: DynamoDB items read", f"{meter.items_read:,}")
        import json

        same = json.loads(aging.body)["buckets"] == brute.to_dict()["buckets"]
        row("aggregates == brute force (today's buckets)", f"{same} (total {brute.to_dict()['total']} EUR)")
    return rows


if __name__ == "__main__":
    for label, figure in run():
        print(f"{label:<70} {figure}")
