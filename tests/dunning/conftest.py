"""Fixtures of the dunning tests: the API on moto with a clock the test moves (replays)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from email import message_from_string, policy
from functools import lru_cache
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest

from chalicelib.services.ports import FixedClock
from tests.conftest import SELLER_INPUT, Api, moto_data

PARIS = ZoneInfo("Europe/Paris")


class ReplayApi(Api):
    def __init__(self, client: Any, key: str, clock: FixedClock, endpoint: str) -> None:
        super().__init__(client, key)
        self.clock = clock
        self.endpoint = endpoint

    def on(self, day: date, hour: int = 10) -> None:
        self.clock.set(datetime.combine(day, time(hour), tzinfo=PARIS).astimezone(timezone.utc))

    def run(self, day: date) -> dict[str, Any]:
        self.on(day, 12)
        resp = self.post(f"/dunning/run?as_of={day.isoformat()}")
        assert resp.status_code == 200, resp.data
        return resp.data

    def ok(self, resp: Any, status: int = 200) -> Any:
        assert resp.status_code == status, (resp.status_code, resp.data)
        return resp.data

    def emails(self) -> list[dict[str, Any]]:
        """Every email moto recorded, parsed: to, subject, text, attachments (filename -> bytes)."""
        out = []
        for raw in moto_data(self.endpoint)["ses"]["RawMessage"]:
            msg = message_from_string(raw["raw_data"], policy=policy.default)
            text = msg.get_body(preferencelist=("plain",))
            html = msg.get_body(preferencelist=("html",))
            attachments = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}
            out.append({"id": raw["id"], "to": str(msg["To"]), "subject": str(msg["Subject"]),
                        "text": text.get_content() if text else "", "html": html.get_content() if html else "",
                        "attachments": attachments})
        return out

    def sms(self) -> list[dict[str, Any]]:
        return moto_data(self.endpoint)["sns"]["SMS"]


@pytest.fixture
def replay(stack: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplayApi]:
    """The app (chalice test client) with an admin key, a seller, and ``wiring.clock`` fixed (the test moves it)."""
    from chalice.test import Client

    from chalicelib import wiring
    from chalicelib.domain.auth import ADMIN, Actor

    clock = FixedClock(datetime(2025, 1, 2, 9, tzinfo=timezone.utc))
    monkeypatch.setattr(wiring, "clock", lru_cache(maxsize=1)(lambda: clock))
    monkeypatch.setenv("PUBLIC_BASE_URL", "http://testserver")
    wiring.reset()
    from app import app as chalice_app

    _, secret = wiring.access().create_key("test-admin", ADMIN, Actor.system("tests"))
    wiring.settings().put_seller(SELLER_INPUT, Actor.system("tests"))
    with Client(chalice_app, stage_name="local") as client:
        yield ReplayApi(client, secret, clock, stack)
