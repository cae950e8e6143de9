"""Deterministic fuzz over real resources, next to the schemathesis fuzz of test_openapi.py (whose random
path ids mostly meet 404s): a customer, a draft, an issued invoice, a payment, a dispute and a promise are
seeded, then every authenticated operation of the OpenAPI document is called with those real ids and, one
field or query parameter at a time, hostile values: huge exponents, wrong JSON types (null, list, object,
boolean, number where a string is expected and the reverse), very long strings, control characters, lone
surrogates, broken or deeply nested JSON. No answer may be a 5xx, and every error is our JSON error shape.

Public HTML routes (/pay/{token}, /portal/{token}) and the Stripe webhook are left out: they answer HTML
or refuse unsigned bodies first (tests/integration/test_pages.py, test_webhooks.py).
"""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from chalicelib.api import openapi_spec
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, Api, line

HUGE_NUMBER = "__raw_1e999999__"  # replaced by a bare JSON number 1e999999 in the raw body
HOSTILE_TYPES: list[Any] = [None, [1], {"a": 1}, True, 10 ** 30, HUGE_NUMBER]
HOSTILE_STRINGS: list[Any] = ["1e999999", "-1E-9999999", "NaN", "a\x00\x07\x0bb", "a\ud800b", "x" * 20_000, "",
                              "-0", 1.5, -1]
HOSTILE_QUERY = ["1e999999", "NaN", "%00%07", "%ED%A0%80", "x" * 3000, "-1", "[]"]
RAW_BODIES = [b"[]", b"null", b'"\\ud800"', b'{"a": ', b"1e999999", b"\xff\xfe", b"[" * 5000 + b"]" * 5000,
              b'{"a": "\\ud800"}']
SKIP_PATHS = ("/webhooks/stripe", "/pay/", "/portal/", "/openapi.json", "/health")
TIME_BUDGET_S = 180  # a guard against growth: the whole test takes ~25 s on one core


def _raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).replace(json.dumps(HUGE_NUMBER), "1e999999").encode()


def _seed(api: Api) -> dict[str, str]:
    today = date.today()
    cid = api.post("/customers", CUSTOMER_INPUT).data["id"]
    draft = api.post("/invoices", {"customer_id": cid, "lines": [line()]}).data["id"]
    ids = []
    for _ in range(3):
        inv = api.post("/invoices", {"customer_id": cid, "lines": [line()]}).data["id"]
        assert api.post(f"/invoices/{inv}/issue").status_code == 200
        ids.append(inv)
    payment = api.post(f"/invoices/{ids[0]}/payments", {"amount": "50.00", "method": "bank_transfer",
                                                        "received_on": today.isoformat()}).data["id"]
    dispute = api.post(f"/invoices/{ids[1]}/disputes", {"reason": "other", "message": "prix"}).data["id"]
    promise = api.post("/promises", {"invoice_ids": [ids[2]],
                                     "promised_on": (today + timedelta(days=10)).isoformat()}).data["id"]
    tasks = api.get("/tasks").data["data"]
    return {"customer_id": cid, "draft": draft, "invoice_id": ids[0], "payment_id": payment, "dispute_id": dispute,
            "promise_id": promise, "task_id": tasks[0]["id"] if tasks else "tsk_nope", "policy_id": "default",
            "today": today.isoformat(), "later": (today + timedelta(days=10)).isoformat()}


def _baseline(method: str, path: str, ids: dict[str, str]) -> dict[str, Any]:
    """A valid body for the routes that need one, so a hostile field is what gets judged."""
    pay = {"amount": "1.00", "method": "bank_transfer", "received_on": ids["today"]}
    return {
        "POST /customers": dict(CUSTOMER_INPUT),
        "POST /invoices": {"customer_id": ids["customer_id"], "lines": [line()]},
        "PATCH /invoices/{invoice_id}": {"lines": [line()]},
        "POST /payments": {**pay, "customer_id": ids["customer_id"], "keep_excess_as_credit": True},
        "POST /invoices/{invoice_id}/payments": pay,
        "POST /promises": {"invoice_ids": [ids["invoice_id"]], "promised_on": ids["later"]},
        "POST /payments/{payment_id}/allocations": {"allocations": [{"invoice_id": ids["invoice_id"],
                                                                     "amount": "1.00"}]},
        "PUT /settings/seller": dict(SELLER_INPUT),
        "PUT /customers/{customer_id}/hold": {"on_hold": False},
        "POST /customers/{customer_id}/notes": {"text": "appel"},
    }.get(f"{method} {path}", {})


def _url(path: str, ids: dict[str, str], method: str) -> str:
    def value(name: str) -> str:
        if name == "invoice_id" and (method == "PATCH" or path.endswith("/issue")):
            return ids["draft"]
        return ids.get(name, f"{name[:3]}_fuzz_unknown")

    for name in ("customer_id", "invoice_id", "payment_id", "dispute_id", "promise_id", "task_id", "policy_id",
                 "plan_id", "schedule_id", "import_id", "transaction_id", "export_id", "key_id"):
        path = path.replace("{" + name + "}", value(name))
    return path


def test_every_operation_with_real_ids_and_hostile_values_answers_a_json_4xx_never_a_5xx(api):
    ids = _seed(api)
    document = json.loads(openapi_spec.DOCUMENT.read_text(encoding="utf-8"))
    failures: list[str] = []
    start = time.monotonic()
    sent = 0

    def send(method: str, url: str, *, raw: bytes | None = None, what: str = "") -> None:
        nonlocal sent
        sent += 1
        resp = api.request(method, url, raw=raw if raw is not None else b"")
        where = f"{method} {url[:120]} {what[:160]}"
        if resp.status_code >= 500:
            failures.append(f"{where}: {resp.status_code} {resp.body[:300]!r}")
        elif resp.status_code >= 400:
            body = resp.data if isinstance(resp.data, dict) else None
            if not body or not body.get("code") or not body.get("message"):
                failures.append(f"{where}: {resp.status_code} without a JSON error body: {resp.body[:300]!r}")

    for path, operations in sorted(document["paths"].items()):
        if path.startswith(SKIP_PATHS) or any(s in path for s in SKIP_PATHS[1:3]):
            continue
        for method, op in sorted(operations.items()):
            method = method.upper()
            if method == "DELETE" and "{key_id}" in path:
                continue  # a real key id here would revoke the fuzzing key itself
            url = _url(path, ids, method)
            queries = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
            for i, name in enumerate(queries):
                for value in HOSTILE_QUERY[i % 2::2]:
                    q = value if value.startswith("%") else quote(value)
                    send(method, f"{url}?{name}={q}", what=f"query {name}={value[:20]}",
                         raw=b"{}" if method in ("POST", "PUT", "PATCH") else None)
            if method not in ("POST", "PUT", "PATCH"):
                continue
            for raw in RAW_BODIES:
                send(method, url, raw=raw, what=f"raw {raw[:30]!r}")
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            base = _baseline(method, path, ids)
            for j, name in enumerate(sorted(schema.get("properties", {}))):
                strings = HOSTILE_STRINGS[j % 2::2]
                for value in HOSTILE_TYPES + strings:
                    send(method, url, raw=_raw({**base, name: value}), what=f"{name}={str(value)[:30]!r}")
            if "lines" in base:
                for j, name in enumerate(("description", "quantity", "unit_price", "vat_rate", "vat_category",
                                          "exemption_reason", "unit_code", "item_id", "period_start")):
                    for value in HOSTILE_TYPES + HOSTILE_STRINGS[j % 3::3]:
                        send(method, url, raw=_raw({**base, "lines": [{**line(), name: value}]}),
                             what=f"lines[0].{name}={str(value)[:30]!r}")
            assert time.monotonic() - start < TIME_BUDGET_S, f"fuzz over budget after {sent} requests at {path}"
    assert not failures, f"{len(failures)} of {sent} requests failed:\n" + "\n".join(failures[:60])
