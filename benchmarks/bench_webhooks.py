"""Webhook handling: DynamoDB requests per payment event, latency next to raw floors, a burst.

    python -m benchmarks.bench_webhooks
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.common import PROJECT_DIR, local_stack, meter_app_client, ms, percentile, timed

SECRET = "whsec_bench"
HEAVY = ("fpdf", "facturx", "lxml", "jinja2", "babel", "segno", "weasyprint", "pypdf")


def _event(pi: str, invoice_id: str, customer_id: str, amount: int, n: int) -> dict[str, Any]:
    return {"id": f"evt_bench_{n}", "object": "event", "type": "payment_intent.succeeded", "api_version":
            "2026-10-28.endive", "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": {"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
                                "currency": "eur", "status": "succeeded", "created": int(time.time()),
                                "payment_method_types": ["card"], "latest_charge": f"ch_{pi}",
                                "metadata": {"invoice_id": invoice_id, "customer_id": customer_id}}}}


def _signed(event: dict[str, Any]) -> tuple[bytes, str]:
    import stripe

    body = json.dumps(event).encode()
    return body, stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, timestamp=int(time.time()))


def seed_invoices(customer: Any, count: int) -> list[str]:
    """Issued invoices written with BatchWriteItem, aggregates built by the app's own code."""
    from datetime import date, datetime, timezone

    from chalicelib import wiring
    from chalicelib.adapters.dynamodb.bulk import bulk_put_invoices
    from chalicelib.domain.invoice import new_draft
    from chalicelib.domain.terms import PaymentTerms

    now = datetime.now(timezone.utc)
    pairs = []
    for n in range(count):
        draft = new_draft(f"inv_bench{n:06d}", {"customer_id": customer.id, "lines": [
            {"description": "Service", "quantity": "1", "unit_price": "1000.00", "vat_rate": "20"}]},
            customer_currency="EUR", now=now)
        issued = draft.issue(number=f"B{now.year}-{n + 1:06d}", series="B", issue_date=date.today(),
                             terms=PaymentTerms(), eom_mode="days_then_end_of_month", jurisdiction="FR",
                             seller={}, buyer=customer.identity(), now=now)
        pairs.append((draft, issued))
    return [i.id for i in bulk_put_invoices(wiring.ledger(), pairs)]


def cold_start() -> list[tuple[str, str]]:
    code = ("import time, sys; t=time.perf_counter(); import app; from chalicelib import wiring; "
            "wiring.payment_gateway(); wiring.provider_events(); import stripe; "
            "el=time.perf_counter()-t; "
            f"print(el); print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "eu-west-3"}).stdout.splitlines()
    return [("webhook path cold start: import app + stripe + services", ms(float(out[0]))),
            ("webhook path: PDF / XML / template modules imported", out[1] if len(out) > 1 and out[1] else "none")]


def run() -> list[tuple[str, str]]:
    rows = cold_start()
    import os

    with local_stack():
        os.environ["STRIPE_WEBHOOK_SECRET"] = SECRET
        os.environ["STRIPE_SECRET_KEY"] = "sk_test_bench"
        from chalicelib import wiring
        from chalicelib.domain.auth import Actor
        from infra.local.seed import CUSTOMERS, SELLER

        wiring.reset()
        actor = Actor.system("bench")
        wiring.settings().put_seller({**SELLER, "early_payment_discount": None}, actor)
        customer, _ = wiring.customers().create(CUSTOMERS[0], actor)
        invoices = seed_invoices(customer, 1000)
        gateway, service = wiring.payment_gateway(), wiring.provider_events()

        def deliver(event: dict[str, Any]) -> str:
            body, header = _signed(event)
            return str(service.handle(gateway.verify_webhook(body, header)))

        meter = meter_app_client()
        meter.reset()
        txn_sizes: list[int] = []
        client = wiring.dynamodb_connection().client
        client.meta.events.register("provide-client-params.dynamodb.TransactWriteItems",
                                    lambda params, **_: txn_sizes.append(len(params.get("TransactItems", []))))
        deliver(_event("pi_probe", invoices[0], customer.id, 100, 0))
        rows.append(("DynamoDB requests per payment event", f"{meter.describe()} (goal: at most 3, one the "
                                                           "transaction)"))
        counter = iter(range(1, 10**6))
        def one() -> None:
            i = next(counter)
            deliver(_event(f"pi_lat_{i}", invoices[i], customer.id, 100, 10_000 + i))

        latencies = timed(one, 80)
        # floors on the same table: a raw PutItem, a raw transaction of as many items as the webhook writes
        raw = wiring.dynamodb_connection().client
        table = wiring.get_config().table_name
        # as many items as the event's transaction had: intent, payment, invoice, refs, audit, outbox,
        # dunning record and the report aggregates' cell updates (ADD on the month/year/late items)
        items_per_txn = txn_sizes[0] if txn_sizes else 9
        n = iter(range(10**6))

        def put() -> None:
            raw.put_item(TableName=table, Item={"pk": {"S": f"FLOOR#{next(n)}"}, "sk": {"S": "X"},
                                                "kind": {"S": "bench"}})

        def txn() -> None:
            i = next(n)
            raw.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": {
                "pk": {"S": f"FLOOR#{i}#{j}"}, "sk": {"S": "X"}, "kind": {"S": "bench"},
                "data": {"S": "x" * 600}}, "ConditionExpression": "attribute_not_exists(pk)"}}
                for j in range(items_per_txn)])

        put_t, txn_t = timed(put, 60), timed(txn, 60)
        rows += [
            ("payment event p50 / p95 (signature check + apply)",
             f"{ms(percentile(latencies, 50))} / {ms(percentile(latencies, 95))}"),
            ("floor: raw PutItem p50", ms(percentile(put_t, 50))),
            (f"floor: raw TransactWriteItems of {items_per_txn} items p50", ms(percentile(txn_t, 50))),
            ("payment event p50 / raw transaction p50", f"{percentile(latencies, 50) / percentile(txn_t, 50):.2f}x "
                                                       "(goal <= 2x)"),
        ]
        # burst: 1,000 events, 20 % of them duplicates, 8 concurrent deliveries
        targets = invoices[100:900]
        unique = [_event(f"pi_burst_{i}", inv, customer.id, 100, 50_000 + i) for i, inv in enumerate(targets)]
        burst = unique + random.Random(7).sample(unique, 200)
        random.Random(8).shuffle(burst)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = Counter(pool.map(deliver, burst))
        elapsed = time.perf_counter() - started
        ledger = wiring.ledger()
        paid = ledger.get_invoices(targets)
        applied = sum(inv.amount_paid for inv in paid.values())
        payments = sum(1 for i in range(len(targets)) if ledger.get_ref("cash", f"pi_burst_{i}") is not None)
        rows += [
            ("burst: 1,000 events (200 duplicates), 8 concurrent", f"{len(burst) / elapsed:.1f} events/s "
                                                                    f"({elapsed:.1f} s; {dict(outcomes)})"),
            ("burst: payments in the ledger / unique payments", f"{payments} / {len(unique)}; money applied "
                                                                f"{applied / 100:.2f} EUR for {len(unique)} x 1.00; "
                                                                f"double-applied: {applied // 100 - len(unique)}"),
        ]
    return rows


if __name__ == "__main__":
    for label, figure in run():
        print(f"{label:<60} {figure}")
