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
