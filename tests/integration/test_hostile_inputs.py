"""Hostile input through the HTTP edge (chalice test client, moto): every request below is refused with
400 (cannot be parsed) or 422 (breaks a rule) naming the field, and nothing at all is written.

Each table is one review finding that used to end in a 500 or in stored data that could not be issued.
"""

from __future__ import annotations

import json
import os
from datetime import date
from typing import Any, Iterator

import boto3
import pytest

from tests.conftest import CUSTOMER_INPUT, Api, line

TODAY = date.today().isoformat()
HUGE = ["1e999999", "-1e999999", "1E-9999999", "9" * 80, "1e16", "NaN", "Infinity", "-Infinity", "sNaN",
        "12.345", "1_000", "١٢", "0x10", " ", "1e-99999999999999999999", "0e-999999"]


def snapshot(endpoint: str) -> list[dict[str, Any]]:
    """Every item of the ledger table (a test-only scan): equal before and after means nothing was written."""
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="eu-west-3")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": os.environ["TABLE_NAME"], "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(items, key=lambda i: json.dumps(i, sort_keys=True))


@pytest.fixture
def world(api: Api, stack: str) -> Iterator[dict[str, Any]]:
    """A customer, a draft, an issued invoice (100.00 + 20% VAT) and a payment of 50.00 on it."""
    customer = api.post("/customers", CUSTOMER_INPUT).data
    draft = api.post("/invoices", {"customer_id": customer["id"], "lines": [line()]}).data
    issued = api.post("/invoices", {"customer_id": customer["id"], "lines": [line()]}).data
    issued = api.post(f"/invoices/{issued['id']}/issue").data
    assert issued["status"] == "open", issued
    payment = api.post(f"/invoices/{issued['id']}/payments", {"amount": "50.00", "method": "bank_transfer",
                                                              "received_on": TODAY}).data
    assert payment["id"], payment
    yield {"customer": customer, "draft": draft, "invoice": issued, "payment": payment, "endpoint": stack}


def refused(api: Api, world: dict[str, Any], method: str, path: str, body: Any = None, *, status: int | tuple,
            field: str | None, raw: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    """Send one hostile request; it must be refused with ``status`` naming ``field``, writing nothing."""
    before = snapshot(world["endpoint"]) if method != "GET" else None
    resp = api.request(method, path, body, raw=raw, headers=headers)
    statuses = status if isinstance(status, tuple) else (status,)
    where = f"{method} {path} {str(body)[:200]!r}"
    assert resp.status_code in statuses, (where, resp.status_code, resp.body[:500])
    assert resp.data and resp.data["code"] and resp.data["message"], (where, resp.body[:500])
    if field is not None:
        assert resp.data.get("field") == field, (where, resp.data)
    if before is not None:
        assert snapshot(world["endpoint"]) == before, f"{where} wrote something"
    return resp


# -- 1. amounts: the size is checked before any arithmetic ------------------------------------------------

def test_hostile_amounts_in_queries_are_400(api, world):
    from urllib.parse import quote

    cid = world["customer"]["id"]
    for value, path, field in ((v, p.format(cid=cid, q=quote(v)), f) for v in HUGE for p, f in (
            ("/invoices?amount_min={q}", "amount_min"), ("/invoices?amount_max={q}", "amount_max"),
            ("/payments?amount_min={q}", "amount_min"), ("/payments?amount_max={q}", "amount_max"),
            ("/customers/{cid}/credit-check?amount={q}", "amount"))):
        if not value.strip():
            continue  # an empty filter is no filter
        refused(api, world, "GET", path, status=400, field=field)


def test_hostile_amounts_in_bodies_are_422(api, world):
    for value in HUGE + [12.5, None, [], {}, True, 10 ** 30]:
        _hostile_amount_in_bodies(api, world, value)


def _hostile_amount_in_bodies(api: Api, world: dict[str, Any], value: Any) -> None:
    cid, inv, pay = world["customer"]["id"], world["invoice"]["id"], world["payment"]["id"]
    cases = [
        ("/payments", {"customer_id": cid, "amount": value, "currency": "EUR", "method": "bank_transfer",
                       "received_on": TODAY}, "amount"),
        (f"/invoices/{inv}/payments", {"amount": value, "method": "bank_transfer", "received_on": TODAY}, "amount"),
        ("/promises", {"invoice_ids": [inv], "amount": value, "promised_on": "2099-01-01"}, "amount"),
        (f"/invoices/{inv}/refunds", {"amount": value}, "amount"),
        (f"/payments/{pay}/allocations", {"allocations": [{"invoice_id": inv, "amount": value}]},
         "allocations[0].amount"),
        ("/invoices", {"customer_id": cid, "lines": [line()],
                       "allowances_charges": [{"type": "allowance", "amount": value, "reason": "x",
                                               "vat_rate": "20"}]}, "allowances_charges[0].amount"),
        (f"/customers/{cid}", {"credit_limit": value}, "credit_limit"),
    ]
    for path, body, field in cases:
        if value is None and path in ("/promises", f"/invoices/{inv}/refunds", f"/customers/{cid}"):
            continue  # null means "the amount due" / "everything paid" / "no limit" there
        method = "PATCH" if path.startswith("/customers/") else "POST"
        refused(api, world, method, path, body, status=(422, 409) if "refunds" in path else 422,
                field=None if "refunds" in path else field)


def test_minus_zero_is_zero_and_plain_amounts_still_work(api, world):
    from chalicelib.domain.money import Money

    assert Money.parse("-0", "EUR") == Money(0, "EUR") and str(Money.parse("1e3", "EUR")) == "1000.00"
    assert str(Money.parse("9999999999999.99", "EUR")) == "9999999999999.99"
    inv = world["invoice"]["id"]
    refused(api, world, "POST", f"/invoices/{inv}/payments", {"amount": "-0", "method": "bank_transfer",
                                                             "received_on": TODAY}, status=422,
            field="amount")
    assert api.get("/invoices?amount_min=0.00&amount_max=1e3").status_code == 200


# -- 2. quantities, prices, line nets and totals are bounded at draft time ----------------------------------

def test_hostile_quantities_prices_and_totals_are_422_on_create_and_patch(api, world):
    cid, draft = world["customer"]["id"], world["draft"]["id"]
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([line(unit_price="1E-9999999")], "lines[0].unit_price"),
        ([line(unit_price="1E-7")], "lines[0].unit_price"),
        ([line(quantity="1e999999")], "lines[0].quantity"),
        ([line(quantity="1E-9999999")], "lines[0].quantity"),
        ([line(quantity="1e12")], "lines[0].quantity"),
        ([line(quantity="NaN")], "lines[0].quantity"),
        ([line(unit_price="-Infinity")], "lines[0].unit_price"),
        ([line(vat_rate="2E-999999")], "lines[0].vat_rate"),
        ([line(vat_rate="1e999999")], "lines[0].vat_rate"),
        ([line(quantity="999999999999", unit_price="999999999999")], "lines[0]"),
        ([line(quantity="100000", unit_price="100000000")], "lines[0]"),   # 1e13 EUR: one cent over the cap
        ([line(quantity="1", unit_price="999999999999")] * 20, "lines"),  # each fits, the sum does not
        ([line(quantity="1", unit_price="9000000000000")], "lines[0].unit_price"),
        ([line(quantity="9", unit_price="999999999999")], "lines"),        # 8999999999991 + 20% VAT
        ([line(quantity=[1])], "lines[0].quantity"),
        ([line(unit_price={"v": 1})], "lines[0].unit_price"),
        ([line(unit_price=1.5)], "lines[0].unit_price"),
    ]
    for lines, field in cases:
        refused(api, world, "POST", "/invoices", {"customer_id": cid, "lines": lines}, status=422, field=field)
        refused(api, world, "PATCH", f"/invoices/{draft}", {"lines": lines}, status=422, field=field)


def test_the_largest_invoice_is_stored_canonically_and_issues(api, world):
    cid = world["customer"]["id"]
    big = api.post("/invoices", {"customer_id": cid, "lines": [line(quantity="1e3", unit_price="8333333333.3300",
                                                                    vat_rate="20")]})
    assert big.status_code == 201, big.data
    assert big.data["lines"][0]["quantity"] == "1000" and big.data["lines"][0]["unit_price"] == "8333333333.3300"
    assert big.data["total"] == "9999999999996.00"
    issued = api.post(f"/invoices/{big.data['id']}/issue")
    assert issued.status_code == 200 and issued.data["status"] == "open", issued.data


# -- 3. control characters never reach the invoice XML ------------------------------------------------------

CONTROL = ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x9b", "\ufffe"]


def test_control_characters_in_text_fields_are_422(api, world):
    cid, draft = world["customer"]["id"], world["draft"]["id"]
    for ch in CONTROL[1:]:  # every character on two fields, then \x00 on every field
        refused(api, world, "POST", "/invoices", {"customer_id": cid, "lines": [line(description=f"a{ch}b")]},
                status=422, field="lines[0].description")
        refused(api, world, "PATCH", f"/customers/{cid}", {"name": f"a{ch}b"}, status=422, field="name")
    for ch in CONTROL[:1]:
        bad = f"Bou{ch}langerie"
        invoice_cases: list[tuple[dict[str, Any], str]] = [
            ({"lines": [line(description=bad)]}, "lines[0].description"),
            ({"lines": [line(item_id=bad)]}, "lines[0].item_id"),
            ({"lines": [line(vat_rate="0", vat_category="E", exemption_reason=bad)]}, "lines[0].exemption_reason"),
            ({"lines": [line()], "note": bad}, "note"),
            ({"lines": [line()], "purchase_order": bad}, "purchase_order"),
            ({"lines": [line()], "buyer_reference": bad}, "buyer_reference"),
            ({"lines": [line()], "allowances_charges": [{"type": "allowance", "amount": "1.00", "reason": bad,
                                                         "vat_rate": "20"}]}, "allowances_charges[0].reason"),
            ({"lines": [line()], "deliver_to": {"country": "DE", "name": bad}}, "deliver_to.name"),
        ]
        for body, field in invoice_cases:
            refused(api, world, "POST", "/invoices", {"customer_id": cid, **body}, status=422, field=field)
            refused(api, world, "PATCH", f"/invoices/{draft}", body, status=422, field=field)
        address = {"line1": "3 place Bellecour", "postal_code": "69002", "city": "Lyon", "country": "FR"}
        customer_cases: list[tuple[dict[str, Any], str]] = [
            ({"name": bad}, "name"), ({"external_ref": bad}, "external_ref"),
            ({"address": {**address, "line1": bad}}, "address.line1"),
            ({"address": {**address, "line2": bad}}, "address.line2"),
            ({"address": {**address, "city": bad}}, "address.city"),
            ({"address": {**address, "postal_code": bad}}, "address.postal_code"),
        ]
        for body, field in customer_cases:
            refused(api, world, "POST", "/customers", {**CUSTOMER_INPUT, **body}, status=422, field=field)
            refused(api, world, "PATCH", f"/customers/{cid}", body, status=422, field=field)
    # single-line fields refuse line breaks and tabs too; a description or a note may keep them
    refused(api, world, "PATCH", f"/customers/{cid}", {"name": "Boulangerie\nMartin"}, status=422, field="name")
    refused(api, world, "PATCH", f"/invoices/{draft}", {"lines": [line()], "purchase_order": "PO\t1"}, status=422,
            field="purchase_order")
    ok = api.patch(f"/invoices/{draft}", {"lines": [line(description="Conseil\n\tjanvier")], "note": "Merci\r\n"})
    assert ok.status_code == 200, ok.data
    issued = api.post(f"/invoices/{draft}/issue")
    assert issued.status_code == 200 and issued.data["lines"][0]["description"] == "Conseil\n\tjanvier", issued.data


# -- 4. lone surrogates are refused at the edge ------------------------------------------------------------

def test_lone_surrogates_anywhere_in_a_body_are_400_naming_the_field(api, world):
    cid, inv, draft = world["customer"]["id"], world["invoice"]["id"], world["draft"]["id"]
    address = {"line1": "3 place Bellecour", "postal_code": "69002", "city": "Lyon", "country": "FR"}
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/customers", {**CUSTOMER_INPUT, "name": "Martin \ud800"}, "name"),
        ("POST", "/customers", {**CUSTOMER_INPUT, "address": {**address, "city": "\udfff"}}, "address.city"),
        ("PATCH", f"/customers/{cid}", {"external_ref": "\udc00x"}, "external_ref"),
        ("POST", "/invoices", {"customer_id": cid, "lines": [line(), line(description="a\ud800")]},
         "lines[1].description"),
        ("PATCH", f"/invoices/{draft}", {"note": "\ud83d"}, "note"),
        ("POST", f"/invoices/{inv}/disputes", {"reason": "other", "message": "\ud800"}, "message"),
        ("POST", "/promises", {"invoice_ids": [inv], "note": "\ud800"}, "note"),
        ("POST", "/api-keys", {"name": "k\ud800", "role": "reader"}, "name"),
        ("POST", "/customers", {**CUSTOMER_INPUT, "na\ud800me": "x"}, "na\\ud800me"),
    ]
    for method, path, body, field in cases:
        resp = refused(api, world, method, path, body, status=400, field=field)
        assert resp.data["code"] == "invalid_text"
    # a complete pair is a character like any other
    ok = api.patch(f"/customers/{cid}", {"external_ref": "ref-\ud83d\ude00"})
    assert ok.status_code == 200 and ok.data["external_ref"] == "ref-\U0001f600", ok.data


def test_deeply_nested_json_is_400(api, world):
    raw = b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    refused(api, world, "POST", "/customers", raw=raw, status=400, field=None)


# -- 5. dunning settings: wrong JSON types are 422s -------------------------------------------------------

WRONG_TYPES: list[Any] = [None, "x", [], [1], {}, {"a": 1}, True, 1, -1, "1e999999", "\x00"]


def test_dunning_rates_policies_and_customer_settings_refuse_wrong_types(api, world):
    from chalicelib.domain.dunning import CustomerDunningSettings

    cid = world["customer"]["id"]
    rates = api.get("/dunning/rates").data
    update = {k: rates[k] for k in ("ecb_mro", "legal_rate", "margin_points", "floor_multiplier", "carry_forward")}
    for version in ("x", [1], {}, True, -1, 1.5, "1e3"):
        refused(api, world, "PUT", "/dunning/rates", {**update, "version": version}, status=422, field="version")
    policy = {k: v for k, v in api.get("/dunning/policies/default").data.items() if k != "id"}
    for version in ("x", [1], {}, True):
        refused(api, world, "PUT", "/dunning/policies/default", {**policy, "version": version}, status=422,
                field="version")
    for key in ("ecb_mro", "legal_rate", "margin_points", "floor_multiplier", "carry_forward"):
        for value in WRONG_TYPES:
            resp = api.put("/dunning/rates", {**update, key: value})
            assert resp.status_code == 200 or resp.status_code in (400, 422) and resp.data["field"], (
                key, value, resp.body[:300])
    for policy_id in ([], {}, [1], 1, True, "", "nope"):
        refused(api, world, "PATCH", f"/customers/{cid}/dunning", {"policy_id": policy_id}, status=422,
                field="policy_id")
    for key in CustomerDunningSettings.EDITABLE:
        for value in WRONG_TYPES:
            resp = api.patch(f"/customers/{cid}/dunning", {key: value})
            assert resp.status_code == 200 or resp.status_code in (400, 422) and resp.data["field"], (
                key, value, resp.body[:300])
    # a version that matches still works, as a number or as the digits of one
    version = api.get("/dunning/rates").data["version"]
    assert api.put("/dunning/rates", {**update, "version": str(version)}).status_code == 200


# -- 6. scorecard: CSV like the other reports; currency checked at the edge --------------------------------

def test_scorecard_serves_csv_and_currency_is_400_on_scorecard_and_statement(api, world):
    cid = world["customer"]["id"]
    for path in (f"/customers/{cid}/scorecard", f"/customers/{cid}/statement"):
        for currency in ("XYZ", "KWD", "EU", "E1R", "EURO", "%00%00%00"):
            refused(api, world, "GET", f"{path}?currency={currency}", status=400, field="currency")
        assert api.get(f"{path}?currency=eur").status_code == 200
    for resp in (api.get(f"/customers/{cid}/scorecard", headers={"Accept": "text/csv"}),
                 api.get(f"/customers/{cid}/scorecard?format=csv")):
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/csv"), resp.body[:300]
        text = resp.body.decode()
        assert text.startswith("row,key,value,normalized,weight,contribution\r\n")
        assert f"scorecard,customer_id,{cid}" in text and "risk,score," in text and "\r\nfactor," in text
    as_json = api.get(f"/customers/{cid}/scorecard", headers={"Accept": "application/json"})
    assert as_json.status_code == 200 and as_json.data["object"] == "scorecard"


# -- 7. Idempotency-Key on disputes and API keys (refunds: tests/unit/test_idempotent_creates.py) -----------

def test_idempotency_key_replays_disputes_and_api_keys_without_writing(api, world):
    inv = world["invoice"]["id"]
    for path, body in ((f"/invoices/{inv}/disputes", {"reason": "other", "message": "wrong price"}),
                       ("/api-keys", {"name": "erp", "role": "reader"})):
        headers = {"Idempotency-Key": f"idem-{path}"}
        first = api.post(path, body, headers=headers)
        assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers, first.data
        before = snapshot(world["endpoint"])
        again = api.post(path, body, headers=headers)
        assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true", again.data
        assert again.data["id"] == first.data["id"]
        assert snapshot(world["endpoint"]) == before, f"the replay of {path} wrote something"
        reused = api.post(path, {**body, "reason": "damaged"} if "disputes" in path else {**body, "role": "admin"},
                          headers=headers)
        assert reused.status_code == 422 and reused.data["code"] == "idempotency_key_reused"
    keys = api.post("/api-keys", {"name": "erp", "role": "reader"}, headers={"Idempotency-Key": "idem-/api-keys"})
    assert keys.data["secret"] is None and "shown once" in keys.data["note"] and keys.data["replayed"] is True
    assert [k["name"] for k in api.get("/api-keys").data["data"]].count("erp") == 1
