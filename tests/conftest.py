"""Shared fixtures.

- unit tests use ``tests/fakes.py`` and need nothing here;
- integration / e2e tests use ``moto_endpoint`` (one serialized moto server per
  test session, on a free port, stopped at the end) and ``stack`` (a fresh,
  empty set of AWS resources per test, the app's wiring pointed at it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

from infra.local.bootstrap import create_resources, local_env  # noqa: E402
from infra.local.run import free_port, wait_for_http  # noqa: E402

SELLER_INPUT: dict[str, Any] = {
    "legal_name": "Atelier Lumière SAS", "legal_form": "SAS", "share_capital": "50000.00",
    "siren": "812345676", "siret": "81234567600017", "rcs": "RCS Lyon 812 345 676", "vat_number": "FR19812345676",
    "address": {"line1": "12 rue de la République", "postal_code": "69002", "city": "Lyon", "country": "FR"},
    "email": "factures@demo-seller.example", "iban": "FR7630006000011234567890189", "bic": "AGRIFRPP882",
    "sepa_creditor_id": "FR12ZZZ123456", "early_payment_discount": {"rate": "2", "days": 10},
}

CUSTOMER_INPUT: dict[str, Any] = {
    "name": "Boulangerie Martin SARL", "email": "compta@boulangerie-martin.example", "country": "FR",
    "language": "fr", "siren": "901876540", "vat_number": "FR96901876540", "phone": "+33 6 12 34 56 78",
    "address": {"line1": "3 place Bellecour", "postal_code": "69002", "city": "Lyon", "country": "FR"},
    "payment_terms": {"kind": "net", "days": 30},
}


def line(description: str = "Conseil", quantity: str = "1", unit_price: str = "100.00", vat_rate: str = "20",
         **extra: Any) -> dict[str, Any]:
    return {"description": description, "quantity": quantity, "unit_price": unit_price, "vat_rate": vat_rate,
            **extra}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "infra.local.moto_serial", "--port", str(port)],
                            cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"{endpoint}/moto-api/data.json", proc=proc)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def stack(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Empty AWS resources for this test; the app's wiring points at them."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).read()
    env = local_env(moto_endpoint, "http://127.0.0.1:8000")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    create_resources(moto_endpoint, env)
    from chalicelib import wiring

    wiring.reset()
    yield moto_endpoint
    wiring.reset()


def moto_data(endpoint: str) -> dict[str, Any]:
    """moto's record of what was sent (ses.Message, ses.RawMessage, sns.SMS...)."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json") as resp:
        return json.loads(resp.read())


class Api:
    """chalice.test.Client with JSON helpers and a default API key."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key

    def request(self, method: str, path: str, body: Any = None, key: str | None = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None) -> Any:
        h = {"Content-Type": "application/json"}
        token = self.key if key is None else key
        if token:
            h["Authorization"] = f"Bearer {token}"
        h.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        resp = self.client.http.request(method, path, headers=h, body=payload)
        resp.data = json.loads(resp.body) if resp.body and resp.headers.get(
            "Content-Type", "application/json").startswith("application/json") else None
        return resp

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("PATCH", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def api(stack: str) -> Iterator[Api]:
    """The app behind chalice's test client (authorizer included), an admin key and a seller profile."""
    from chalice.test import Client

    from app import app as chalice_app
    from chalicelib import wiring
    from chalicelib.domain.auth import ADMIN, Actor

    _, secret = wiring.access().create_key("test-admin", ADMIN, Actor.system("tests"))
    wiring.settings().put_seller(SELLER_INPUT, Actor.system("tests"))
    with Client(chalice_app, stage_name="local") as client:
        yield Api(client, secret)


WEBHOOK_SECRET = "whsec_test_local_secret"


@pytest.fixture
def payments_stack(stack: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The app served over real HTTP (chalice's local server, as `make run` runs it) plus the
    Stripe emulator sending signed webhooks to it; the app's Stripe client points at the emulator.

    Yields {"api_url", "api": Api-like requests session with an admin key, "emulator", "key"}.
    """
    import threading

    import requests

    from infra.local.api_server import create_server
    from infra.local.stripe_emulator import start_emulator

    api_port = free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    emulator = start_emulator(port=0, webhook_url=f"{api_url}/webhooks/stripe", webhook_secret=WEBHOOK_SECRET,
                              retry_delays=(0.2, 0.5, 1.0))
    for name, value in {"STRIPE_API_BASE": emulator.url, "STRIPE_SECRET_KEY": "sk_test_local",
                        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "PUBLIC_BASE_URL": api_url}.items():
        monkeypatch.setenv(name, value)
    from chalicelib import wiring
    from chalicelib.domain.auth import ADMIN, Actor

    wiring.reset()
    _, key = wiring.access().create_key("test-admin", ADMIN, Actor.system("tests"))
    wiring.settings().put_seller(SELLER_INPUT, Actor.system("tests"))
    server = create_server("127.0.0.1", api_port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {key}"})
    try:
        wait_for_http(f"{api_url}/health")
        yield {"api_url": api_url, "http": session, "emulator": emulator, "key": key}
    finally:
        server.shutdown()
        emulator.stop()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-3")
