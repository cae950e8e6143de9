"""The nightly reconciliation: no drift on a ledger written by the app, every corrupted cell found."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.aggregates import PORTFOLIO, AggregateKey
from tests.conftest import CUSTOMER_INPUT, line

pytestmark = pytest.mark.usefixtures("fapi")


@pytest.fixture
def small_ledger(fapi: Any, calendar: Any) -> str:
    calendar.on("2026-01-05")
    cid = fapi.post("/customers", CUSTOMER_INPUT).data["id"]
    ids = []
    for price in ("100.00", "250.00", "80.00"):
        draft = fapi.post("/invoices", {"customer_id": cid, "lines": [line(unit_price=price)]}).data
        ids.append(fapi.post(f"/invoices/{draft['id']}/issue").data["id"])
    calendar.on("2026-03-02")
    fapi.post(f"/invoices/{ids[0]}/payments", {"method": "cheque", "received_on": "2026-02-20"})
    fapi.post(f"/invoices/{ids[1]}/payments", {"amount": "100.00", "method": "cheque", "received_on": "2026-03-01"})
    fapi.post("/customers", {**CUSTOMER_INPUT, "name": "Sans factures"})
    return cid


def test_no_drift_on_what_the_app_wrote(fapi, small_ledger):
    r = fapi.post("/admin/reconcile?as_of=2026-02-28")
    assert r.status_code == 200, r.data
    report = r.data
    assert report["ok"] and report["drift_count"] == 0 and report["missing_history"] == []
    assert (report["customers"], report["invoices"], report["histories"]) == (2, 3, 3)
    (eur,) = report["aging"]
    assert eur["equal"] and eur["from_aggregates"]["total"] == "396.00"   # 300.00 + 96.00 open on Feb 28


def test_every_corrupted_cell_is_reported(fapi, small_ledger):
    from chalicelib import wiring

    ledger = wiring.ledger()
    items = ledger.query_aggregates("EUR", small_ledger)
    key = next(k for k in items if k.grain == "m")
    cell = next(iter(items[key]))
    ledger.put_aggregates({key: {**items[key], cell: items[key][cell] + 1},
                           AggregateKey("EUR", PORTFOLIO, "y", "2019"): {"inv:1": 5}})
    report = fapi.post("/admin/reconcile").data
    assert not report["ok"]
    found = {(d.get("scope"), d.get("item"), d.get("cell")) for d in report["drift"]}
    assert (small_ledger, key.sk, cell) in found and (PORTFOLIO, "y#2019", "inv:1") in found
    assert report["drift_count"] == 2


def test_the_scheduled_job_runs_it(fapi, small_ledger):
    from chalice.test import Client

    from app import app as chalice_app

    with Client(chalice_app, stage_name="local") as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                resources=[])
        result = client.lambda_.invoke("reconcile_aggregates", event)
    assert result.payload["ok"] is True and result.payload["histories"] == 3
