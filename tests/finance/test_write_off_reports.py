"""Write-offs (issue 5: "the loss visible in reports") in the collection and DSO reports, JSON and CSV.

The ledger of test_reports_api (today 2026-03-31), then B1's 400.00 left due is written off today:
B1 (600.00, 200.00 paid on 2026-03-05) becomes uncollectible and a credit note recovers the VAT.
"""

from __future__ import annotations

import csv
import io

import pytest

from tests.finance.test_reports_api import ledger  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("fapi")


@pytest.fixture
def written_off(fapi, ledger):  # noqa: F811
    r = fapi.post(f"/invoices/{ledger['B1']}/write-off", {"reason": "Liquidation judiciaire"})
    assert r.status_code in (200, 201), r.data
    assert r.data["amount"] == "400.00"
    return ledger


def test_collection_report_shows_the_amount_written_off_from_the_aggregates(fapi, written_off):
    march = fapi.get("/reports/collection?start=2026-03-01&as_of=2026-03-31")
    assert march.status_code == 200, march.data
    assert march.data["amount_written_off"] == "400.00"
    assert march.data["ending_receivables"] == "2700.00"   # 3,100.00 - the 400.00 lost
    feb = fapi.get("/reports/collection?start=2026-02-01&as_of=2026-02-28").data
    assert feb["amount_written_off"] == "0.00"
    # read from the aggregates: no invoice is read for it (no payment in the period, no invoice read)
    late_march = fapi.get("/reports/collection?start=2026-03-10&as_of=2026-03-31").data
    assert (late_march["amount_written_off"], late_march["payments_read"]) == ("400.00", 0)
    r = fapi.get("/reports/collection?start=2026-03-01&as_of=2026-03-31&format=csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    assert [(x["row"], x["amount"]) for x in rows if x["row"] == "written_off"] == [("written_off", "400.00")]


def test_dso_report_shows_the_written_off_amount_of_the_period_and_of_each_month(fapi, written_off):
    r = fapi.get("/reports/dso?days=90")
    assert r.status_code == 200, r.data
    assert r.data["period"]["written_off"] == "400.00"
    series = {s["month"]: s["written_off"] for s in r.data["series"]}
    assert (series["2026-03"], series["2026-02"]) == ("400.00", "0.00")
    r = fapi.get("/reports/dso?days=90", headers={"Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    assert [x["written_off"] for x in rows if x["row"] == "period"] == ["400.00"]
    assert [x["written_off"] for x in rows if x["row"] == "month" and x["start"] == "2026-03-01"] == ["400.00"]
