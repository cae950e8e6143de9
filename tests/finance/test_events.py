"""The business events the application emits match the JSON Schemas published in docs/events.md.

The schemas are read from the document itself (each ```json block after a ``<!-- schema: TYPE -->``
marker), so the documentation cannot drift from what subscribers receive.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from tests.conftest import CUSTOMER_INPUT, line

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
DOCUMENTED = ("invoice.issued", "invoice.paid", "invoice.overdue", "customer.credit_limit_exceeded",
              "dispute.opened", "promise.broken")


def schemas() -> dict[str, dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- schema: ([\w.]+) -->\s*```json\n(.*?)```", text, flags=re.S)
    return {name: json.loads(body) for name, body in found}


def test_the_document_publishes_a_valid_schema_for_each_event():
    from jsonschema import Draft202012Validator

    published = schemas()
    assert set(DOCUMENTED) | {"envelope"} <= set(published)
    for schema in published.values():
        Draft202012Validator.check_schema(schema)


def _emitted() -> list[dict[str, Any]]:
    from chalicelib import wiring

    return [m.payload for m in wiring.ledger().pending_outbox(datetime(2100, 1, 1, tzinfo=timezone.utc), limit=1000)
            if m.topic == "event"]


def test_emitted_events_match_their_published_schemas(fapi, calendar):
    from jsonschema import Draft202012Validator, FormatChecker

    api = fapi
    calendar.on("2026-01-05")
    cid = api.post("/customers", {**CUSTOMER_INPUT, "credit_limit": "500.00"}).data["id"]
    ids = []
    for price in ("300.00", "100.00", "50.00"):
        draft = api.post("/invoices", {"customer_id": cid, "lines": [line(unit_price=price)],
                                       "credit_override": {"reason": "events test"}})
        assert draft.status_code == 201, draft.data
        ids.append(api.post(f"/invoices/{draft.data['id']}/issue").data["id"])
    calendar.on("2026-01-10")
    assert api.post(f"/invoices/{ids[0]}/payments", {"method": "cheque", "received_on": "2026-01-10"}).status_code == 201
    assert api.post(f"/invoices/{ids[1]}/disputes", {"reason": "price", "message": "Trop cher"}).status_code == 201
    promise = api.post("/promises", {"invoice_ids": [ids[2]], "amount": "60.00", "promised_on": "2026-02-10"})
    assert promise.status_code == 201, promise.data
    calendar.on("2026-02-20")  # past due, past the promised date
    assert api.post("/dunning/run?as_of=2026-02-20").status_code == 200

    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in _emitted():
        by_type.setdefault(event["type"], []).append(event)
    published = schemas()
    envelope = Draft202012Validator(published["envelope"], format_checker=FormatChecker())
    for name in DOCUMENTED:
        assert by_type.get(name), f"no {name} event emitted by this scenario (got {sorted(by_type)})"
        validator = Draft202012Validator(published[name], format_checker=FormatChecker())
        for event in by_type[name]:
            envelope.validate(event)
            assert event["type"] == name
            validator.validate(event["data"])
    exceeded = by_type["customer.credit_limit_exceeded"][0]["data"]   # 360 + 120, then + 60 > 500
    assert (exceeded["exposure_before"], exceeded["exposure"], exceeded["excess"]) == ("480.00", "540.00", "40.00")
