"""The stream handler the stack wires to the table: it drains what the ledger writes, once.

Runs against the local stack (moto): the record is built from the item as stored, the
way DynamoDB Streams would deliver it (NEW_IMAGE).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from infra.local.bootstrap import read_tapped_events

pytestmark = pytest.mark.usefixtures("stack")


def _emit(payload: dict[str, Any], not_before: datetime | None = None) -> None:
    from chalicelib import wiring
    from chalicelib.domain.auth import Actor
    from chalicelib.services.ports import UnitOfWork

    uow = UnitOfWork(actor=Actor.system("tests"), now=datetime.now(timezone.utc))
    uow.emit("event", payload, not_before=not_before)
    wiring.ledger().commit(uow)


def _stored_outbox_items(endpoint: str) -> list[dict[str, Any]]:
    import os

    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="eu-west-3")
    items = client.scan(TableName=os.environ["TABLE_NAME"])["Items"]  # test-only scan
    return [i for i in items if i["pk"]["S"].startswith("OUTBOX#")]


def _record(image: dict[str, Any], seq: str = "1", event_name: str = "INSERT") -> dict[str, Any]:
    return {"eventName": event_name, "eventSource": "aws:dynamodb",
            "dynamodb": {"Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image,
                         "SequenceNumber": seq, "StreamViewType": "NEW_IMAGE"}}


def test_stream_record_of_a_new_outbox_item_is_processed_once(stack: str) -> None:
    from chalicelib.jobs import outbox_stream

    # Given an event committed through the outbox
    _emit({"type": "invoice.issued", "id": "evt_1", "data": {"invoice_id": "inv_1"}})
    (item,) = _stored_outbox_items(stack)
    read_tapped_events(stack)  # drop anything published before
    # When the stream delivers its INSERT (twice, as streams may)
    first = outbox_stream({"Records": [_record(item)]}, None)
    second = outbox_stream({"Records": [_record(item, seq="2")]}, None)
    # Then the event is on the bus once and the outbox item is gone
    assert first == second == {"batchItemFailures": []}
    events = read_tapped_events(stack)
    assert [e["detail"]["id"] for e in events] == ["evt_1"]
    assert _stored_outbox_items(stack) == []


def test_dead_letters_and_updates_are_ignored(stack: str) -> None:
    from chalicelib.jobs import outbox_stream

    _emit({"type": "invoice.paid", "id": "evt_2"})
    (item,) = _stored_outbox_items(stack)
    dead = {**item, "pk": {"S": "OUTBOX#DEAD"}, "dead": {"BOOL": True}}
    result = outbox_stream({"Records": [_record(dead), _record(item, event_name="MODIFY")]}, None)
    assert result == {"batchItemFailures": []}
    assert len(_stored_outbox_items(stack)) == 1   # left for the scheduled drain


def test_a_delayed_message_waits_for_the_scheduled_drain(stack: str) -> None:
    from chalicelib.jobs import outbox_stream

    _emit({"type": "invoice.overdue", "id": "evt_4"}, not_before=datetime.now(timezone.utc) + timedelta(hours=1))
    (item,) = _stored_outbox_items(stack)
    assert outbox_stream({"Records": [_record(item)]}, None) == {"batchItemFailures": []}
    assert len(_stored_outbox_items(stack)) == 1


def test_a_failing_record_is_reported_for_retry(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib import jobs, wiring

    def unavailable(message: Any, report: Any = None) -> None:
        raise ConnectionError("DynamoDB unreachable")

    _emit({"type": "invoice.paid", "id": "evt_3"})
    (item,) = _stored_outbox_items(stack)
    monkeypatch.setattr(wiring.outbox(), "process", unavailable)  # the cached drain; reset() forgets it
    result = jobs.outbox_stream({"Records": [_record(item, seq="7"), _record(item, seq="8")]}, None)
    # Lambda retries from the first failure (streams are ordered), then dead-letters the batch
    assert result == {"batchItemFailures": [{"itemIdentifier": "7"}]}
