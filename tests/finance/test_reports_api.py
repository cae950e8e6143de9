"""Reports through the API on a small ledger, against figures computed by hand.

The ledger (seller in Europe/Paris, customers on net 30, VAT 20 %):

=========  ==========  ===========  ==========  ==========================================
invoice    customer    issued       due         what happens
=========  ==========  ===========  ==========  ==========================================
A1         A           2026-01-05   2026-02-04  1,200.00; paid in full 2026-02-14 (transfer)
B1         B           2026-01-20   2026-02-19  600.00; 200.00 paid 2026-03-05 (cheque)
A2         A           2026-02-10   2026-03-12  2,400.00; open
B2         B           2026-03-01   2026-03-31  300.00; disputed on 2026-03-20 (price)
=========  ==========  ===========  ==========  ==========================================

Today is 2026-03-31.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.conftest import CUSTOMER_INPUT, line

pytestmark = pytest.mark.usefixtures("fapi")


def _customer(api: Any, name: str, **extra: Any) -> str:
    r = api.post("/customers", {**CUSTOMER_INPUT, "name": name, **extra})
    assert r.status_code == 201, r.data
    return r.data["id"]


def _issue(api: Any, calendar: Any, day: str, customer_id: str, net: str) -> str:
    calendar.on(day)
    r = api.post("/invoices", {"customer_id": customer_id, "lines": [line(unit_price=net)]})
    assert r.status_code == 201, r.data
    r = api.post(f"/invoices/{r.data['id']}/issue")
    assert r.status_code == 200, r.data
    return r.data["id"]


def _pay(api: Any, calendar: Any, day: str, invoice_id: str, amount: str, method: str) -> None:
    calendar.on(day)
    r = api.post(f"/invoices/{invoice_id}/payments", {"amount": amount, "method": method, "received_on": day})
    assert r.status_code == 201, r.data


@pytest.fixture
def ledger(fapi: Any, calendar: Any) -> dict[str, str]:
    api = fapi
    calendar.on("2026-01-02")
    a = _customer(api, "Alpha SARL", credit_limit="5000.00")
    b = _customer(api, "Beta SAS")
    ids = {"A": a, "B": b}
    ids["A1"] = _issue(api, calendar, "2026-01-05", a, "1000.00")
    ids["B1"] = _issue(api, calendar, "2026-01-20", b, "500.00")
    ids["A2"] = _issue(api, calendar, "2026-02-10", a, "2000.00")
    _pay(api, calendar, "2026-02-14", ids["A1"], "1200.00", "bank_transfer")
    ids["B2"] = _issue(api, calendar, "2026-03-01", b, "250.00")
    _pay(api, calendar, "2026-03-05", ids["B1"], "200.00", "cheque")
    calendar.on("2026-03-20")
    r = api.post(f"/invoices/{ids['B2']}/disputes", {"reason": "price", "message": "Le tarif convenu était 200"})
    assert r.status_code == 201, r.data
    calendar.on("2026-03-31")
    return ids


def _buckets(body: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {b["name"]: (b["amount"], b["count"]) for b in body["buckets"]}


def test_aging_now_and_at_past_month_ends(fapi, ledger):
    r = fapi.get("/reports/aging?month_ends=2")
    assert r.status_code == 200, r.data
    # A2 19 days past due, B1 400.00 left 40 days past due, B2 due today (not yet due)
    assert _buckets(r.data) == {"not_due": ("300.00", 1), "1_30": ("2400.00", 1), "31_60": ("400.00", 1),
                                "61_90": ("0.00", 0), "over_90": ("0.00", 0)}
    assert (r.data["total"], r.data["count"], r.data["past_due"]) == ("3100.00", 3, "2800.00")
    feb, jan = r.data["snapshots"]
    assert feb["as_of"] == "2026-02-28" and _buckets(feb)["1_30"] == ("600.00", 1)       # B1, 9 days late
    assert _buckets(feb)["not_due"] == ("2400.00", 1) and feb["total"] == "3000.00"      # A2; A1 paid
    assert jan["as_of"] == "2026-01-31" and _buckets(jan)["not_due"] == ("1800.00", 2)   # A1 + B1
    assert r.data["items_read"] <= 1 + 8 + 8  # the year item + month and late items of three windows


def test_aging_of_any_past_date_and_of_one_customer(fapi, ledger):
    r = fapi.get("/reports/aging?as_of=2026-03-04")  # before B1's partial payment
    assert _buckets(r.data)["1_30"] == ("600.00", 1) and _buckets(r.data)["not_due"] == ("2700.00", 2)
    r = fapi.get(f"/reports/aging?customer_id={ledger['B']}")
    assert r.data["scope"] == ledger["B"] and r.data["total"] == "700.00"
    assert _buckets(r.data)["31_60"] == ("400.00", 1)


def test_aging_by_customer_pages_and_csv(fapi, ledger):
    r = fapi.get("/reports/aging?by=customer&limit=1")
    assert r.status_code == 200, r.data
    assert [row["name"] for row in r.data["data"]] == ["Alpha SARL"] and r.data["has_more"]
    assert r.data["data"][0]["total"] == "2400.00" and r.data["portfolio"]["total"] == "3100.00"
    r2 = fapi.get(f"/reports/aging?by=customer&limit=1&cursor={r.data['next_cursor']}")
    assert [row["total"] for row in r2.data["data"]] == ["700.00"]
    r = fapi.get("/reports/aging?by=customer", headers={"Accept": "text/csv"})
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.body.decode())))
    assert [(x["name"], x["total"], x["31_60_amount"]) for x in rows] == [("Alpha SARL", "2400.00", "0.00"),
                                                                        ("Beta SAS", "700.00", "400.00")]


def test_dso_three_methods_and_series(fapi, ledger):
    r = fapi.get("/reports/dso?days=90")
    assert r.status_code == 200, r.data
    p = r.data["period"]
    assert (p["start"], p["end"], p["days"]) == ("2026-01-01", "2026-03-31", 90)
    assert (p["receivables"], p["credit_sales"], p["current_receivables"]) == ("3100.00", "4500.00", "300.00")
    assert p["standard"] == "62.0"            # 3100 / 4500 x 90
    assert p["best_possible"] == "6.0"        # 300 / 4500 x 90
    assert p["average_days_delinquent"] == "56.0"
    assert p["countback"] == "65.9"           # March 300 (31 d) + February 2400 (28 d) + 400/1800 x 31 d
    series = {s["month"]: s for s in r.data["series"]}
    assert len(r.data["series"]) == 12 and r.data["series"][-1]["month"] == "2026-03"
    assert series["2026-02"]["standard"] == "35.0"  # 3000 / 2400 x 28
    assert series["2025-12"]["standard"] is None    # no credit sales: undefined, not zero


def test_collection_kpis(fapi, ledger):
    r = fapi.get("/reports/collection?start=2026-02-01&as_of=2026-02-28")
    assert r.status_code == 200, r.data
    d = r.data
    assert (d["beginning_receivables"], d["credit_sales"], d["ending_receivables"]) == ("1800.00", "2400.00",
                                                                                      "3000.00")
    assert d["cei"] == "66.7"                 # (1800 + 2400 - 3000) / (1800 + 2400 - 2400)
    assert d["collection_rate"] == "28.6"     # 1200 / (1800 + 2400)
    assert (d["amount_collected"], d["invoices_paid"]) == ("1200.00", 1)
    assert (d["average_days_to_pay"], d["average_days_late"], d["on_time_share"]) == ("40.0", "10.0", "0.0")
    assert d["by_method"] == [{"method": "bank_transfer", "amount": "1200.00", "invoices": 1}]
    assert [(s["step"], s["invoices"]) for s in d["by_dunning_step"]] == [("none", 1)]
    march = fapi.get("/reports/collection?start=2026-03-01&as_of=2026-03-31").data
    assert (march["cei"], march["collection_rate"], march["amount_collected"], march["invoices_paid"]) == (
        "6.7", "6.1", "200.00", 0)            # 200 / 3000 and 200 / 3300; B1 only partly paid


def test_disputes_report(fapi, ledger):
    d = fapi.get("/reports/disputes").data
    assert (d["open_disputes"], d["amount_blocked"]) == (1, "300.00")
    assert d["by_reason"] == [{"reason": "price", "count": 1, "amount_blocked": "300.00"}]
    assert [(b["bucket"], b["count"]) for b in d["by_age"] if b["count"]] == [("8_30", 1)]  # 11 days
    assert d["disputes"][0]["age_days"] == 11
    assert fapi.get("/reports/disputes?as_of=2026-03-19").data["open_disputes"] == 0


def test_statement_json_csv_pdf(fapi, ledger):
    r = fapi.get(f"/customers/{ledger['B']}/statement?start=2026-02-01&end=2026-03-31")
    assert r.status_code == 200, r.data
    s = r.data
    assert (s["opening_balance"], s["closing_balance"], s["language"]) == ("600.00", "700.00", "fr")
    assert [(x["date"], x["kind"], x["debit"], x["credit"], x["balance"]) for x in s["rows"]] == [
        ("2026-03-01", "invoice", "300.00", None, "900.00"),
        ("2026-03-05", "payment", None, "200.00", "700.00")]
    r = fapi.get(f"/customers/{ledger['B']}/statement?start=2026-01-01&language=en",
                 headers={"Accept": "text/csv"})
    rows = list(csv.reader(io.StringIO(r.body.decode())))
    assert rows[0][:3] == ["Date", "Entry", "Reference"] and rows[-1][5] == "700.00"
    assert [row[1] for row in rows[1:-1]] == ["Opening balance on 2026-01-01", "Invoice", "Invoice",
                                              "Payment (cheque)"]
    r = fapi.get(f"/customers/{ledger['B']}/statement", headers={"Accept": "application/pdf"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/pdf" and r.body[:5] == b"%PDF-"


def test_scorecard_factors(fapi, ledger):
    r = fapi.get(f"/customers/{ledger['A']}/scorecard")
    assert r.status_code == 200, r.data
    c = r.data
    assert (c["open_balance"], c["exposure"], c["overdue"], c["oldest_overdue_days"]) == ("2400.00", "2400.00",
                                                                                          "2400.00", 19)
    assert (c["credit_limit"], c["headroom"], c["utilization"]) == ("5000.00", "2600.00", "48.0")
    assert (c["avg_days_to_pay_90"], c["avg_days_late_365"], c["late_share"], c["trend"]) == ("40.0", "10.0",
                                                                                               "100.0", "stable")
    factors = {f["name"]: f for f in c["risk"]["factors"]}
    assert factors["days_late"]["contribution"] == "4.17"      # 25 x 10/60
    assert factors["late_share"]["contribution"] == "15.00"    # 15 x 100 %
    assert factors["overdue_ratio"]["contribution"] == "15.00"
    assert factors["oldest_overdue"]["contribution"] == "4.22"  # 20 x 19/90
    assert factors["credit_utilization"]["contribution"] == "4.80"
    assert c["risk"]["score"] == 43 and c["risk"]["band"] == "medium"
    assert c["payer_profile"]["profile"] == "new"


def test_scorecard_weights_are_settings(fapi, ledger):
    r = fapi.put("/settings/finance", {"risk": {"weights": {"days_late": 0, "late_share": 0, "overdue_ratio": 0,
                                                             "oldest_overdue": 0, "broken_promises": 0,
                                                             "credit_utilization": 1, "trend": 0}}})
    assert r.status_code == 200, r.data
    from chalicelib import wiring

    wiring.finance_settings()._cached = None  # the 30 s cache of other processes
    assert fapi.get(f"/customers/{ledger['A']}/scorecard").data["risk"]["score"] == 48  # utilization alone
    bad = fapi.put("/settings/finance", {"risk": {"weights": {"luck": 3}}})
    assert bad.status_code == 422 and bad.data["field"] == "risk.weights.luck"


def test_forecast_and_predicted_payment_date(fapi, ledger):
    f = fapi.get("/reports/forecast").data
    # A2: A paid 10 days late once ("new" profile, 5 days): 7 days; already 19 days late -> today + 7
    # B1: no history -> 5 days -> already late -> today + 7; B2 disputed -> excluded
    assert [(w["start"], w["amount"]) for w in f["weeks"][:2]] == [("2026-03-31", "0.00"), ("2026-04-07", "2800.00")]
    assert (f["excluded_disputed"], f["total"]) == ("300.00", "2800.00")
    preds = {p["invoice_id"]: p for p in f["invoices"]}
    assert preds[ledger["A2"]]["predicted_payment_date"] == "2026-04-07"
    assert preds[ledger["B2"]]["rule"] == "open_dispute" and preds[ledger["B2"]]["excluded"]
    inv = fapi.get(f"/invoices/{ledger['A2']}").data
    assert inv["predicted_payment_date"] == "2026-04-07" and inv["prediction"]["rule"] == "payer_history"
    assert fapi.get(f"/invoices/{ledger['A1']}").data["predicted_payment_date"] is None  # paid
    plain = fapi.get(f"/invoices/{ledger['A2']}?prediction=false")  # the invoice alone, one read
    assert plain.status_code == 200 and "predicted_payment_date" not in plain.data
    assert plain.data["id"] == ledger["A2"]
    assert fapi.get(f"/invoices/{ledger['A2']}?prediction=maybe").status_code == 400
    assert "predicted_payment_date" not in fapi.get("/invoices").data["data"][0]


def test_report_parameters_are_checked(fapi, ledger):
    for path, field in (("/reports/aging?as_of=2099-01-01", "as_of"), ("/reports/aging?currency=EURO", "currency"),
                        ("/reports/dso?days=0", "days"), ("/reports/aging?by=customer&month_ends=2", "by"),
                        ("/reports/collection?start=2026-04-01&as_of=2026-03-31", "start"),
                        ("/reports/aging?colour=blue", "colour")):
        r = fapi.get(path)
        assert r.status_code == 400 and r.data["field"] == field, (path, r.data)
    assert fapi.get("/reports/aging?customer_id=cus_nope").status_code == 404
