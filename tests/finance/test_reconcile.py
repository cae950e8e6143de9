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


# -- incremental and resumable (a run spread over several calls) ------------------------------------------

@pytest.fixture
def wider_ledger(fapi: Any, calendar: Any, small_ledger: str) -> list[str]:
    """The small ledger plus four customers with an invoice each (six customers, seven invoices)."""
    calendar.on("2026-01-20")
    ids = [small_ledger]
    for n in range(4):
        cid = fapi.post("/customers", {**CUSTOMER_INPUT, "name": f"Client {n}"}).data["id"]
        draft = fapi.post("/invoices", {"customer_id": cid, "lines": [line(unit_price=f"{10 + n}.00")]}).data
        fapi.post(f"/invoices/{draft['id']}/issue")
        ids.append(cid)
    calendar.on("2026-03-02")
    return ids


def _in_slices(monkeypatch: Any, as_of: Any = None) -> list[Any]:
    """Given pages of two customers and no time budget to speak of, when the run is called until it is
    complete: the report of each call (one customer each)."""
    from chalicelib import wiring
    from chalicelib.services import reconcile

    monkeypatch.setattr(reconcile, "CUSTOMER_PAGE", 2)
    reports = []
    for _ in range(20):
        reports.append(wiring.reconcile().run(as_of, budget_s=0))
        if reports[-1].complete:
            return reports
    raise AssertionError("the run never completed")


def test_a_run_in_slices_resumes_from_its_recorded_cursor_and_matches_a_run_in_one_go(fapi, wider_ledger,
                                                                                     monkeypatch):
    from datetime import date

    from chalicelib import wiring

    whole = wiring.reconcile().run(date(2026, 2, 28)).to_dict()
    reports = _in_slices(monkeypatch, date(2026, 2, 28))
    assert len(reports) == 6 and [r.slice_customers for r in reports] == [1] * 6
    assert [r.status for r in reports] == ["running"] * 5 + ["completed"]
    assert all(r.ok is None for r in reports[:-1]) and reports[-1].slices == 6
    sliced = reports[-1].to_dict()
    for key in ("ok", "customers", "invoices", "histories", "items_checked", "cells_checked", "drift_count",
                "aging"):
        assert sliced[key] == whole[key], key
    assert sliced["ok"] and sliced["customers"] == 6 and sliced["histories"] == 7
    assert wiring.reconcile().latest().to_dict()["status"] == "completed"


def test_drift_is_found_by_a_run_in_slices_per_customer_and_in_the_portfolio(fapi, wider_ledger, monkeypatch):
    from chalicelib import wiring

    ledger = wiring.ledger()
    items = ledger.query_aggregates("EUR", wider_ledger[2])
    key = next(k for k in items if k.grain == "y")
    cell = next(iter(items[key]))
    portfolio = ledger.query_aggregates("EUR", PORTFOLIO)
    pkey = next(k for k in portfolio if k.grain == "m")
    pcell = next(iter(portfolio[pkey]))
    ledger.put_aggregates({key: {**items[key], cell: items[key][cell] - 7},          # a customer's cell
                           pkey: {**portfolio[pkey], pcell: portfolio[pkey][pcell] + 3},  # a portfolio cell
                           AggregateKey("EUR", PORTFOLIO, "y", "2019"): {"inv:1": 5}})  # an item nobody makes
    reports = _in_slices(monkeypatch)
    first_seen = next(i for i, r in enumerate(reports) if r.drift_count)
    assert reports[first_seen].ok is False and not reports[first_seen].complete  # said as soon as found
    report = reports[-1].to_dict()
    assert not report["ok"] and report["drift_count"] == 3
    found = {(d.get("scope"), d.get("item"), d.get("cell")) for d in report["drift"]}
    assert (wider_ledger[2], key.sk, cell) in found and (PORTFOLIO, "y#2019", "inv:1") in found
    (item,) = [d for d in report["drift"] if d.get("item") == pkey.sk]
    assert item["scope"] == PORTFOLIO and item["stored_sum"] - item["expected_sum"] == 3


def test_a_slice_that_raced_another_is_dropped_not_counted_twice(fapi, wider_ledger):
    from datetime import date

    from chalicelib import wiring
    from chalicelib.services.reconcile import RUN_DOC

    service = wiring.reconcile()
    service.run(date(2026, 2, 28), budget_s=0)
    ledger = wiring.ledger()
    stale = ledger.get_settings(RUN_DOC)
    service.run(date(2026, 2, 28), budget_s=0)            # another call advances the run
    real_get = ledger.get_settings
    ledger.get_settings = lambda name: stale if name == RUN_DOC else real_get(name)  # type: ignore[method-assign]
    try:
        service.run(date(2026, 2, 28), budget_s=0)        # works from the stale copy: its commit must fail
    finally:
        ledger.get_settings = real_get                    # type: ignore[method-assign]
    assert service.latest().customers == 2
    final = service.run(date(2026, 2, 28))
    assert final.ok and final.customers == 6 and final.histories == 7


def test_the_admin_route_answers_a_slice_202_until_complete_then_200(fapi, wider_ledger, monkeypatch):
    from chalicelib.api import reports as reports_api

    assert fapi.get("/admin/reconcile").status_code == 404
    monkeypatch.setattr(reports_api, "ADMIN_RECONCILE_BUDGET_S", 0)
    statuses = []
    for _ in range(10):
        r = fapi.post("/admin/reconcile?as_of=2026-02-28")
        statuses.append(r.status_code)
        if r.status_code == 200:
            break
        assert r.data["status"] == "running" and r.data["ok"] is None and r.data["slice"]["customers"] == 1
    assert statuses == [202] * 5 + [200] and r.data["ok"] and r.data["customers"] == 6
    recorded = fapi.get("/admin/reconcile").data   # the same report, read without running anything
    assert {k: v for k, v in recorded.items() if k != "slice"} == {k: v for k, v in r.data.items() if k != "slice"}
    again = fapi.post("/admin/reconcile?as_of=2026-02-28")   # a finished run: a new one starts
    assert again.status_code == 202 and again.data["customers"] == 1


def test_the_scheduled_job_continues_a_run_and_does_not_redo_a_finished_one(fapi, wider_ledger, monkeypatch):
    from chalice.test import Client

    from app import app as chalice_app
    from chalicelib import wiring

    wiring.reconcile().run(budget_s=0)          # a run of today, left unfinished (one customer done)
    with Client(chalice_app, stage_name="local") as client:
        event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                resources=[])
        first = client.lambda_.invoke("reconcile_aggregates", event).payload
        second = client.lambda_.invoke("reconcile_aggregates", event).payload
    assert first["status"] == "completed" and first["ok"] and first["slices"] == 2 and first["customers"] == 6
    # already done today: the next invocations only read the record (this call did nothing)
    assert second["slices"] == 2 and second["slice"]["customers"] == 0 and second["completed_at"] == first["completed_at"]
