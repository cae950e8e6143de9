"""Cash application at volume: a 5,000-entry camt.053 against 50,000 open invoices on the local stack.

    python -m benchmarks.bench_bank            # the full size
    BENCH_BANK_SCALE=0.1 python -m benchmarks.bench_bank   # a tenth, for a quick look

Seeds 2,000 customers with 25 open invoices each (BatchWriteItem; the report aggregates
built by the app's code), their ``number`` refs, and the debtor IBANs of 60 % of them.
The statement mixes what banks deliver: RF references (35 %), invoice numbers (20 %),
no reference from an account seen before (20 %) or a name (10 %), two invoices in one
transfer without reference (5 %), strangers (10 %). Figures: matching alone (a dry run:
every read, no write), the full import (every transaction), the same file again (nothing
to do), each with its DynamoDB requests and items read, next to the ledger's size.
"""

from __future__ import annotations

import os
import random
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any


from benchmarks.common import local_stack, meter_app_client

SCALE = float(os.environ.get("BENCH_BANK_SCALE", "1"))
CUSTOMERS = int(2000 * SCALE)
PER_CUSTOMER = 25
ENTRIES = int(5000 * SCALE)
KNOWN_IBAN_SHARE = 0.6
WORDS = ("Boulangerie", "Transports", "Garage", "Pharmacie", "Atelier", "Imprimerie", "Fromagerie", "Menuiserie",
         "Librairie", "Cabinet", "Plomberie", "Traiteur")


def _iban(n: int) -> str:
    return f"FR76BENCH{n:018d}"


def seed(ledger: Any, today: date) -> tuple[list[Any], dict[str, list[Any]], dict[str, str]]:
    """Customers, their open invoices and number refs, and known IBANs, written in batches."""
    from dataclasses import replace

    from chalicelib.adapters.codec import encode
    from chalicelib.adapters.dynamodb.bulk import bulk_put_invoices
    from chalicelib.adapters.dynamodb.ledger import customer_item
    from chalicelib.adapters.dynamodb.models import CustomerItem, RefItem
    from chalicelib.domain.invoice import new_draft
    from chalicelib.domain.parties import new_customer
    from chalicelib.domain.terms import PaymentTerms
    from chalicelib.services.invoice_numbers import number_refs

    now = datetime.now(timezone.utc)
    rnd = random.Random(8)
    customers = []
    with CustomerItem.batch_write() as batch:
        for n in range(CUSTOMERS):
            name = f"{WORDS[n % len(WORDS)]} {n:05d} SARL"
            c = replace(new_customer(f"cus_bench{n:06d}", {"name": name, "email": f"c{n}@bench.example",
                                                          "country": "FR"}, now=now), version=1)
            batch.save(customer_item(c))
            customers.append(c)
    pairs = []
    seq = 0
    for c in customers:
        for k in range(PER_CUSTOMER):
            seq += 1
            net = rnd.choice(("80.00", "125.00", "240.00", "310.50", "999.00", "1450.00")) if k % 5 else f"{seq}.00"
            draft = new_draft(f"inv_bench{seq:07d}", {"customer_id": c.id, "lines": [
                {"description": "Prestation", "quantity": "1", "unit_price": net, "vat_rate": "20"}]},
                customer_currency="EUR", now=now)
            issued = draft.issue(number=f"F{today.year}-{seq:06d}", series=f"F#{today.year}",
                                 issue_date=today - timedelta(days=rnd.randint(20, 200)), terms=PaymentTerms(),
                                 eom_mode="days_then_end_of_month", jurisdiction="FR", seller={},
                                 buyer=c.identity(), now=now)
            pairs.append((draft, issued))
    written = bulk_put_invoices(ledger, pairs)
    by_customer: dict[str, list[Any]] = {}
    known: dict[str, str] = {}
    with RefItem.batch_write() as batch:
        for inv in written:
            by_customer.setdefault(inv.customer_id, []).append(inv)
            for key, data in number_refs(inv):
                batch.save(RefItem(pk=f"REF#number#{key}", sk="REF", kind="ref", target=inv.id, data=data,
                                   created_at=now))
        for n, c in enumerate(customers):
            if rnd.random() < KNOWN_IBAN_SHARE:
                known[c.id] = _iban(n)
                batch.save(RefItem(pk=f"REF#iban#{_iban(n)}", sk="REF", kind="ref", target=c.id, created_at=now))
    del encode
    return customers, by_customer, known


class RequestClock:
    """Time spent inside DynamoDB requests (botocore before/after hooks), to set the emulator's apart."""

    def __init__(self) -> None:
        import threading

        self.seconds = 0.0
        self.queries = 0
        self._local = threading.local()

    def install(self, client: Any) -> None:
        client.meta.events.register("before-call.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, model: Any, **_: Any) -> None:
        self._local.t = time.perf_counter()

    def _after(self, model: Any, **_: Any) -> None:
        self.seconds += time.perf_counter() - getattr(self._local, "t", time.perf_counter())
        self.queries += model.name == "Query"

    def reset(self) -> None:
        self.seconds, self.queries = 0.0, 0


def statement(customers: list[Any], by_customer: dict[str, list[Any]], known: dict[str, str], day: date) -> bytes:
    from chalicelib.domain import creditor_reference
    from tests.unit.bank_samples import camt053, ntry, tx

    rnd = random.Random(9)
    used: set[str] = set()
    entries = []
    for n in range(ENTRIES):
        c = rnd.choice(customers)
        invs = [i for i in by_customer[c.id] if i.id not in used]
        kind = rnd.random()
        iban = known.get(c.id)
        if kind > 0.9 or len(invs) < 2:
            entries.append(ntry(f"{rnd.randint(1, 99999) / 100:.2f}", booking=day, acct_svcr_ref=f"B{n:06d}",
                                details=[tx(debtor=f"PARTICULIER {n}", ustrd="VIREMENT")]))
            continue
        inv = invs[0]
        used.add(inv.id)
        amount = inv.amount_due
        if kind < 0.35:
            detail = tx(debtor=c.name.upper(), debtor_iban=iban,
                        strd_ref=creditor_reference.for_invoice(inv.number, inv.id))
        elif kind < 0.55:
            detail = tx(debtor=c.name.upper(), debtor_iban=iban, ustrd=f"REGLEMENT FACTURE {inv.number}")
        elif kind < 0.75 and iban:
            detail = tx(debtor="SOCIETE " + str(n), debtor_iban=iban, ustrd="VIREMENT")
        elif kind < 0.85:
            detail = tx(debtor=c.name.upper(), ustrd="VIREMENT")
        else:
            second = invs[1]
            used.add(second.id)
            amount = amount + second.amount_due
            detail = tx(debtor=c.name.upper(), debtor_iban=iban, ustrd="REGLEMENT")
        entries.append(ntry(str(amount), booking=day, acct_svcr_ref=f"B{n:06d}", details=[detail]))
    return camt053(entries, day=day, message_id="BENCH-STMT")


def indexed_stack() -> Any:
    """``benchmarks.common.local_stack`` with benchmarks/moto_indexed.py as the server (see its docstring)."""
    import sys

    return local_stack(lambda port: [sys.executable, "-m", "benchmarks.moto_indexed", "--port", str(port)])


def run() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [("local stack", "serialized moto with a hash-key index for Query "
                                    "(benchmarks/moto_indexed.py: moto itself sorts the whole table per Query)")]
    with indexed_stack():
        from chalicelib import wiring
        from chalicelib.domain.auth import Actor
        from infra.local.seed import SELLER

        wiring.reset()
        actor = Actor.system("bench")
        wiring.settings().put_seller({**SELLER, "early_payment_discount": None}, actor)
        today = wiring.invoices().today()
        started = time.perf_counter()
        customers, by_customer, known = seed(wiring.ledger(), today)
        rows.append((f"seed: {CUSTOMERS:,} customers, {CUSTOMERS * PER_CUSTOMER:,} open invoices + refs",
                     f"{time.perf_counter() - started:.0f} s"))
        body = statement(customers, by_customer, known, today)
        rows.append(("statement", f"{ENTRIES:,} entries, {len(body) / 1e6:.1f} MB camt.053"))
        bank = wiring.bank()
        bank._time_budget_s = 3600  # the benchmark measures the whole file in one call
        meter = meter_app_client()
        waited = RequestClock()
        waited.install(wiring.dynamodb_connection().client)

        def measure(label: str) -> Any:
            meter.reset()
            waited.reset()
            t = time.perf_counter()
            report = bank.import_statement(body, actor, fmt="camt")
            elapsed = time.perf_counter() - t
            summary = report.to_dict()["summary"]
            rows.append((f"{label}: wall time", f"{elapsed:.1f} s ({ENTRIES / elapsed:.0f} entries/s); parse "
                                                f"{report.seconds['parse']:.1f} s, read + match "
                                                f"{report.seconds['match']:.1f} s, write {report.seconds['write']:.1f} s"))
            rows.append((f"{label}: of which waiting for DynamoDB (moto)",
                         f"{waited.seconds:.1f} s; the application's own time {elapsed - waited.seconds:.1f} s"))
            rows.append((f"{label}: DynamoDB requests", meter.describe() + f"; Scan: {meter.calls.get('Scan', 0)}"))
            rows.append((f"{label}: items read", f"{meter.items_read:,} ({meter.items_read / ENTRIES:.1f} per entry; "
                                                 f"the ledger holds {CUSTOMERS * PER_CUSTOMER:,} open invoices)"))
            rows.append((f"{label}: outcome", ", ".join(f"{k} {v}" for k, v in summary.items())))
            return report

        report = measure("import (read + match + write)")
        rows.append(("import: DynamoDB transactions", f"{report.commits:,} ({ENTRIES / max(report.commits, 1):.1f} "
                                                      "entries each, at most 100 items and 12 allocations)"))
        named = len({e.customer_id for e in report.entries if e.rule and e.rule.startswith("customer")})
        rows.append(("import: customers whose open invoices were read", f"{waited.queries:,} Queries for "
                                                                         f"{named:,} customers identified without "
                                                                         "reference (+ name-index prefixes)"))
        measure("same file again (idempotent)")
        rows.append(("goal", "no Scan; reads proportional to the entries and the customers they name, not to the "
                             "ledger"))
    return rows


if __name__ == "__main__":
    for label, figure in run():
        print(f"{label:<60} {figure}")
