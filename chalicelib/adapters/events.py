"""Business events to the application's EventBridge bus."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from ..services.ports import EventPublisher

SOURCE = "ar-backend"


class EventBridgePublisher(EventPublisher):
    """Puts events on ``bus_name``; ``detail-type`` is the event type (invoice.issued...)."""

    def __init__(self, client_factory: Callable[[], Any], bus_name: str) -> None:
        self._client = client_factory
        self._bus = bus_name

    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(events), 10):  # PutEvents takes at most 10 entries
            batch = events[start:start + 10]
            response = self._client().put_events(Entries=[{
                "Source": SOURCE, "DetailType": e["type"], "Detail": json.dumps(e), "EventBusName": self._bus,
            } for e in batch])
            if response.get("FailedEntryCount"):
                errors = {entry.get("ErrorCode") for entry in response["Entries"] if entry.get("ErrorCode")}
                raise RuntimeError(f"EventBridge refused {response['FailedEntryCount']} events: {sorted(errors)}")
