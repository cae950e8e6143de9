"""Dunning sweep: DynamoDB items read and requests per due step, wall time, on a 100,000-invoice ledger.

    python -m benchmarks.bench_dunning            (DUNNING_BENCH_INVOICES=20000 for a quicker run)

The ledger is seeded with BatchWriteItem (issued invoices with their aggregates through
``bulk_put_invoices``, and their dunning records in the state the sweep leaves them: customer
snapshot copied, earlier steps sent, next action scheduled). Then:

1. a sweep at ``now`` where 1,000 records have a step due (friendly, firm with SMS, call task,
   formal notice with its PDF letter, in a realistic mix, over ~900 customers);
2. a sweep a day later where 10,000 others are due.

The goal is at most 1.2 items read per due step, and a cost that follows the due steps, not the
ledger. Wall time is moto's: one request at a time, on benchmarks/moto_indexed.py (moto grouped by
hash key for Query; within a partition moto still sorts every item of the partition, where DynamoDB
reads only the key range asked for), SES / SNS / S3 calls included.
"""

from __future__ import annotations

import os
import random
import time
from datetime import date, datetime, timedelta
from typing import Any

from benchmarks.common import meter_app_client

TODAY = date(2026, 11, 25)      # a Wednesday: SMS go out at noon
CUSTOMERS = 5_000
STEPS = (("friendly_reminder", 1, 0.60), ("firm_reminder", 10, 0.25), ("call_task", 20, 0.10),
         ("formal_notice", 30, 0.05))
EARLIER = {"friendly_reminder": ("courtesy_notice",), "firm_reminder": ("courtesy_notice", "friendly_reminder"),
           "call_task": ("courtesy_notice", "friendly_reminder", "firm_reminder"),
           "formal_notice": ("courtesy_notice", "friendly_reminder", "firm_reminder", "call_task")}
OFFSETS = {"courtesy_notice": -5, "friendly_reminder": 1, "firm_reminder": 10, "call_task": 20, "formal_notice": 30}


def _snapshot(n: int) -> dict[str, Any]:
    cid = f"cus_bench{n:05d}"
    return {"settings": {"customer_id": cid, "policy_id": "default",
                         "channels_allowed": ["email", "sms", "call_task", "letter"], "timezone": "Europe/Paris",
                         "language": "fr" if n % 4 else "en", "contact_name": f"Client {n}",
                         "contact_email": f"ap{n}@client.example", "contact_phone": "+33612345678",
                         "quiet_start": "20:00", "quiet_end": "08:00", "sms_on_weekends": False, "opt_out": False},
            "profile": "occasional_late", "profile_reasons": ["bench"], "profile_on": TODAY.isoformat(),
            "customer_name": f"Client {n} SAS", "policy_id": "default"}


def _pick_step(rng: random.Random) -> tuple[str, int]:
    r = rng.random()
    acc = 0.0
    for key, offset, share in STEPS:
        acc += share
        if r <= acc:
            return key, offset
    return STEPS[0][0], STEPS[0][1]


def seed(total: int, groups: dict[str, tuple[int, datetime]], rng: random.Random) -> dict[str, int]:
    """``total`` issued invoices and their dunning records; ``groups`` name how many are due at which instant."""
    from zoneinfo import ZoneInfo

    from chalicelib import wiring
    from chalicelib.adapters.dynamodb.bulk import bulk_put_invoices
    from chalicelib.adapters.dynamodb.dunning_items import dunning_item
    from chalicelib.adapters.dynamodb.models import DunningItem
    from chalicelib.domain.dunning_record import DunningRecord, SentEntry, invoice_projection
    from chalicelib.domain.invoice import new_draft
    from chalicelib.domain.terms import PaymentTerms

    paris = ZoneInfo("Europe/Paris")
    created = datetime(2026, 9, 1, 8, tzinfo=paris)
    plan: list[tuple[str | None, datetime | None]] = []
    for name, (count, when) in groups.items():
        plan += [(name, when)] * count
    plan += [(None, None)] * (total - len(plan))
    rng.shuffle(plan)
    counts = {name: 0 for name in groups}
    batch: list[tuple[Any, Any]] = []
    records: list[Any] = []

    def flush() -> None:
        written = bulk_put_invoices(wiring.ledger(), batch)
        with DunningItem.batch_write() as writer:
            for inv, (group, when, step) in zip(written, records):
                snap_n = int(inv.customer_id.removeprefix("cus_bench"))
                sent = ()
                if step is not None:
                    sent = tuple(SentEntry(step_key=s, channel="call_task" if s == "call_task" else "email",
                                           sent_at=datetime.combine(inv.due_date + timedelta(days=OFFSETS[s]),
                                                                    datetime.min.time(), tzinfo=paris).replace(hour=9),
                                           message_id=f"m-{inv.id}-{s}", template=s)
                                 for s in EARLIER[step])
                    nxt = when - timedelta(hours=2)
                else:
                    nxt = datetime.combine(TODAY + timedelta(days=rng.randint(2, 40)), datetime.min.time(),
                                           tzinfo=paris).replace(hour=9)
                writer.save(dunning_item(DunningRecord(
                    invoice_id=inv.id, customer_id=inv.customer_id, invoice=invoice_projection(inv),
                    customer=_snapshot(snap_n), sent=sent, overdue_event_emitted=inv.due_date < TODAY,
                    next_action_at=nxt, version=3)))
        batch.clear()
        records.clear()

    for n, (group, when) in enumerate(plan):
        customer = rng.randrange(CUSTOMERS)
        step = None
        if group is not None:
            step, offset = _pick_step(rng)
            due = when.astimezone(paris).date() - timedelta(days=offset)
            counts[group] += 1
        else:
            due = TODAY + timedelta(days=rng.randint(-60, 45))
        draft = new_draft(f"inv_b{n:07d}", {"customer_id": f"cus_bench{customer:05d}", "lines": [
            {"description": "Prestation", "quantity": "1", "unit_price": f"{rng.randint(100, 5000)}.00",
             "vat_rate": "20"}]}, customer_currency="EUR", now=created)
        issued = draft.issue(number=f"B2026-{n + 1:07d}", series="B#2026", issue_date=due - timedelta(days=30),
                             terms=PaymentTerms(), eom_mode="days_then_end_of_month", jurisdiction="FR",
                             seller={}, buyer={"name": f"Client {customer} SAS", "address": None}, now=created)
        batch.append((draft, issued))
        records.append((group, when, step))
        if len(batch) == 2_000:
            flush()
    if batch:
        flush()
    return counts


def run() -> list[tuple[str, str]]:
    from chalicelib.domain.auth import Actor
    from infra.local.seed import SELLER

    total = int(os.environ.get("DUNNING_BENCH_INVOICES", "100000"))
    rows: list[tuple[str, str]] = []
    from benchmarks.bench_bank import indexed_stack  # moto with a hash-key index for Query (its docstring)

    with indexed_stack():
        os.environ.setdefault("PUBLIC_BASE_URL", "http://127.0.0.1:8000")
        from chalicelib import wiring
        from chalicelib.services.dunning import as_of_instant

        wiring.reset()
        wiring.settings().put_seller({**SELLER, "early_payment_discount": None}, Actor.system("bench"))
        now1 = as_of_instant(TODAY, "Europe/Paris")
        now2 = as_of_instant(TODAY + timedelta(days=1), "Europe/Paris")
        started = time.perf_counter()
        counts = seed(total, {"first": (1_000, now1), "second": (10_000, now2)}, random.Random(5))
        rows.append(("seed (BatchWriteItem): invoices + dunning records",
                     f"{total:,} open invoices, {counts['first']:,} due at T, {counts['second']:,} due at T+1 day "
                     f"({time.perf_counter() - started:.0f} s)"))
        service = wiring.dunning()
        meter = meter_app_client()
        for label, now, due in (("1,000 due", now1, counts["first"]), ("10,000 due", now2, counts["second"])):
            service.config.policies()  # warm nothing: the sweep reads its settings itself
            meter.reset()
            t = time.perf_counter()
            report = service.run(now)
            wall = time.perf_counter() - t
            steps = report.decided.get("send", 0)
            rows += [
                (f"sweep, {label}: items read", f"{meter.items_read:,} = {meter.items_read / max(steps, 1):.3f} per "
                                                f"due step (goal <= 1.2); due records {report.due:,}, steps sent "
                                                f"{steps:,}"),
                (f"sweep, {label}: DynamoDB requests", meter.describe()),
                (f"sweep, {label}: messages", f"{report.messages:,} grouped messages; sent {dict(report.sent)}; "
                                              f"failed {dict(report.failed)}; overdue events {report.overdue_events}"),
                (f"sweep, {label}: wall time", f"{wall:.1f} s ({wall / max(steps, 1) * 1000:.1f} ms per due step, "
                                               "moto, SES/SNS/S3 calls included)"),
            ]
        meter.reset()
        t = time.perf_counter()
        report = service.run(now2 + timedelta(minutes=5))
        rows.append(("sweep again, nothing due: items read / requests",
                     f"{meter.items_read} / {meter.describe()} ({time.perf_counter() - t:.2f} s; due {report.due})"))
    return rows


if __name__ == "__main__":
    for label, figure in run():
        print(f"{label:<60} {figure}")
