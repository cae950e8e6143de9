"""Fixtures of the finance tests: the app on moto with a clock the test moves."""

from __future__ import annotations

import functools
from datetime import date, datetime, timezone
from typing import Any, Iterator

import pytest

from tests.conftest import SELLER_INPUT, Api


class Calendar:
    """The app's clock, set to 10:00 UTC (11:00 or 12:00 in Paris) of the day a test needs."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def on(self, day: str | date) -> None:
        d = date.fromisoformat(day) if isinstance(day, str) else day
        self.clock.set(datetime(d.year, d.month, d.day, 10, 0, tzinfo=timezone.utc))


@pytest.fixture
def calendar(stack: str, monkeypatch: pytest.MonkeyPatch) -> Calendar:
    from chalicelib import wiring
    from chalicelib.services.ports import FixedClock

    fixed = FixedClock(datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc))
    monkeypatch.setattr(wiring, "clock", functools.lru_cache(maxsize=1)(lambda: fixed))
    wiring.reset()
    return Calendar(fixed)


@pytest.fixture
def fapi(calendar: Calendar) -> Iterator[Api]:
    """The app behind chalice's test client with an admin key, a seller profile and the test's clock."""
    from chalice.test import Client

    from app import app as chalice_app
    from chalicelib import wiring
    from chalicelib.domain.auth import ADMIN, Actor

    _, secret = wiring.access().create_key("test-admin", ADMIN, Actor.system("tests"))
    wiring.settings().put_seller(SELLER_INPUT, Actor.system("tests"))
    with Client(chalice_app, stage_name="local") as client:
        yield Api(client, secret)


@pytest.fixture
def indexed_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Like ``stack``, on a moto server of its own that answers Query from the queried partition
    (benchmarks/moto_indexed.py): moto sorts the whole table for every Query, which would make a test
    over thousands of invoices measure the emulator. Same results, same pagination."""
    import subprocess
    import sys

    from infra.local.bootstrap import create_resources, local_env
    from infra.local.run import free_port, wait_for_http
    from tests.conftest import PROJECT_DIR

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.moto_indexed", "--port", str(port)], cwd=PROJECT_DIR,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"{endpoint}/moto-api/data.json", proc=proc)
        env = local_env(endpoint, "http://127.0.0.1:8000")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        create_resources(endpoint, env)
        from chalicelib import wiring

        wiring.reset()
        yield endpoint
        wiring.reset()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
