"""Foundation benchmarks: cold start, DynamoDB requests per API call, API latency vs raw floors.

    python -m benchmarks.bench_foundation
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import PROJECT_DIR, local_stack, meter_app_client, ms, percentile, timed

LIBS = "import chalice, boto3, pynamodb.models, stripe, aws_lambda_powertools"
HEAVY = ("fpdf", "facturx", "lxml", "jinja2", "babel", "segno", "weasyprint", "pypdf", "aws_xray_sdk")


FIRST_REQUEST = ("from chalicelib import wiring; import chalicelib.services.access, chalicelib.services.invoices, "
                 "chalicelib.services.pay, chalicelib.adapters.dynamodb.ledger")


def _paired(extra: str, runs: int) -> list[tuple[float, float, float]]:
    """Fresh interpreters (bytecode compiled beforehand, as a deployed package would ship it): the
    libraries' import time, then ``import app`` on top of them, then ``extra`` on top of that, each
    measured in the same process so that a busy machine slows both sides of a ratio alike."""
    code = ("import time; t0=time.perf_counter(); " + LIBS + "; t1=time.perf_counter(); import app; "
            "t2=time.perf_counter(); " + extra + "; t3=time.perf_counter(); print(t1-t0, t2-t1, t3-t2)")
    out = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "eu-west-3",
                                  "PYTHONDONTWRITEBYTECODE": "1"}, check=True)
        libs, app, rest = (float(x) for x in res.stdout.split()[-3:])
        out.append((libs, app, rest))
    return out


def cold_start(runs: int = 15) -> list[tuple[str, str]]:
    subprocess.run([sys.executable, "-m", "compileall", "-q", "app.py", "chalicelib"], cwd=PROJECT_DIR,
                   capture_output=True, check=True)
    samples = _paired(FIRST_REQUEST, runs)
    libs = statistics.median(s[0] for s in samples)
    app = statistics.median(s[1] for s in samples)
    first = statistics.median(s[2] for s in samples)
    ratio = statistics.median(s[1] / s[0] for s in samples)
    ratio_first = statistics.median((s[1] + s[2]) / s[0] for s in samples)
    heavy = subprocess.run([sys.executable, "-c", "import sys, app; print(','.join(m for m in "
                            f"{HEAVY!r} if m in sys.modules))"], cwd=PROJECT_DIR, capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "eu-west-3"}).stdout.strip()
    return [
        (f"cold start: import chalice+boto3+pynamodb+stripe+powertools alone (median of {runs})", ms(libs)),
        (f"cold start: import app on top of them (median of {runs})", ms(app)),
        ("cold start: app's own cost over those libraries",
         f"{ratio * 100:+.1f}% (goal <= +15%; median of per-process ratios)"),
        ("cold start: + the modules a first GET /invoices/{id} loads (services, ports, DynamoDB adapter)",
         f"{ms(first)} more, app total {ratio_first * 100:+.1f}% over the libraries"),
        ("cold start: heavy modules imported by `import app`", heavy or "none"),
    ]


def api_costs(n: int = 60) -> list[tuple[str, str]]:
    from chalice.test import Client

    from app import app as chalice_app
    from chalicelib import wiring
    from chalicelib.adapters.dynamodb.models import CounterItem
    from chalicelib.domain.auth import ADMIN, Actor
    from infra.local.seed import CUSTOMERS, SELLER

    _, key = wiring.access().create_key("bench", ADMIN, Actor.system("bench"))
    wiring.settings().put_seller(SELLER, Actor.system("bench"))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    meter = meter_app_client()
    rows: list[tuple[str, str]] = []
    with Client(chalice_app, stage_name="local") as client:
        def call(method: str, path: str, body: Any = None) -> Any:
            resp = client.http.request(method, path, headers=headers,
                                       body=json.dumps(body).encode() if body is not None else b"")
            assert resp.status_code < 300, resp.body
            return json.loads(resp.body)

        # no credit limit: the issue's own reads (a limit adds the exposure reads of the
        # customer.credit_limit_exceeded alert, measured apart below)
        customer = call("POST", "/customers", {k: v for k, v in CUSTOMERS[0].items() if k != "credit_limit"})
        limited = call("POST", "/customers", {**CUSTOMERS[1], "credit_limit": "1000000.00"})
        lines = [{"description": f"Line {i}", "quantity": "2", "unit_price": "49.90", "vat_rate": "20"}
                 for i in range(10)]
        drafts = [call("POST", "/invoices", {"customer_id": customer["id"], "lines": lines})["id"]
                  for _ in range(n + 3)]
        invoice_id = drafts[0]
        call("POST", f"/invoices/{invoice_id}/issue")

        meter.reset()
        call("GET", f"/invoices/{invoice_id}?prediction=false")
        rows.append(("DynamoDB requests: GET /invoices/{id}?prediction=false", f"{meter.describe()} + "
                     f"{meter.auth_calls} API-key lookup (cached 60 s: 0 when warm) (goal: 1 read)"))
        meter.reset()
        call("GET", f"/invoices/{invoice_id}")
        rows.append(("DynamoDB requests: GET /invoices/{id} of an open invoice, with its predicted payment date",
                     f"{meter.describe()} (the customer's payment history, promises and plans: issue 6)"))
        meter.reset()
        call("POST", f"/invoices/{drafts[1]}/issue")
        rows.append(("DynamoDB requests: POST /invoices/{id}/issue", f"{meter.describe()} "
                     "(goal: 1 transaction + at most 3 reads)"))
        other = call("POST", "/invoices", {"customer_id": limited["id"], "lines": lines})["id"]
        meter.reset()
        call("POST", f"/invoices/{other}/issue")
        rows.append(("DynamoDB requests: POST /invoices/{id}/issue, customer with a credit limit",
                     f"{meter.describe()} (+ its exposure, for the customer.credit_limit_exceeded alert: issue 6)"))

        get_times = timed(lambda: call("GET", f"/invoices/{invoice_id}"), n)
        queue = iter(drafts[3:])
        issue_times = timed(lambda: call("POST", f"/invoices/{next(queue)}/issue"), n - 3, warmup=0)

    # floors on the same server: one raw PutItem, one raw 4-item TransactWriteItems
    conn = wiring.dynamodb_connection()
    raw = conn.client
    table = wiring.get_config().table_name
    counter = iter(range(10**6))

    def put() -> None:
        CounterItem(pk=f"BENCH#{next(counter)}", sk="COUNTER", kind="bench", value=1).save()

    def txn() -> None:
        i = next(counter)
        raw.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": f"BENCH#{i}#{j}"}, "sk": {"S": "X"},
                                                  "kind": {"S": "bench"}}}} for j in range(4)])

    put_times = timed(put, n)
    txn_times = timed(txn, n)
    rows += [
        ("latency GET /invoices/{id} p50 / p95 (chalice test client -> moto)",
         f"{ms(percentile(get_times, 50))} / {ms(percentile(get_times, 95))}"),
        ("latency POST /invoices/{id}/issue p50 / p95 (10 lines)",
         f"{ms(percentile(issue_times, 50))} / {ms(percentile(issue_times, 95))}"),
        ("floor: raw PutItem p50 (same server)", ms(percentile(put_times, 50))),
        ("floor: raw 4-item TransactWriteItems p50 (same server)", ms(percentile(txn_times, 50))),
    ]
    return rows


def run() -> list[tuple[str, str]]:
    rows = cold_start()
    with local_stack():
        rows += api_costs()
    return rows


if __name__ == "__main__":
    started = time.perf_counter()
    for label, figure in run():
        print(f"{label:<78} {figure}")
    print(f"({time.perf_counter() - started:.0f} s)")
