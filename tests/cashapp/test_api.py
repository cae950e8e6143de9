"""Cash application, imports and books through the HTTP API on the local stack (moto): real-shaped camt.053
files with several entries, batch bookings and returns; every matching rule end to end; the review list;
re-import idempotency; the FEC; imports of CSV and Factur-X; Stripe payouts against the emulator."""

from __future__ import annotations

import base64
import time
from datetime import date, timedelta

import requests

from chalicelib.domain.fec import FEC_COLUMNS, parse_fec
from tests.cashapp.test_imports import EXAMPLES, GOOD, HEADER, needs_examples
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line
from tests.unit.bank_samples import CUSTOMER2_IBAN, CUSTOMER_IBAN, OTHER_IBAN, camt053, ntry, tx

XML = {"Content-Type": "application/xml"}


def today() -> date:
    from chalicelib import wiring

    return wiring.invoices().today()


def customer(api, name: str, email: str) -> dict:
    data = {**CUSTOMER_INPUT, "name": name, "email": email}
    data.pop("siren")
    data.pop("vat_number")
    resp = api.post("/customers", data)
    assert resp.status_code == 201, resp.data
    return resp.data


def invoice(api, customer_id: str, net: str, vat: str = "20") -> dict:
    draft = api.post("/invoices", {"customer_id": customer_id, "lines": [line(unit_price=net, vat_rate=vat)]})
    issued = api.post(f"/invoices/{draft.data['id']}/issue")
    assert issued.status_code == 200, issued.data
    return issued.data


def post_statement(api, body: bytes, **query) -> object:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return api.request("POST", "/bank-statements" + (f"?{qs}" if qs else ""), headers=XML, raw=body)


def test_a_days_camt053_is_matched_rule_by_rule_and_reimporting_it_changes_nothing(api):
    day = today()
    martin = customer(api, "Boulangerie Martin SARL", "compta@martin.example")
    dupont = customer(api, "Transports Dupont SAS", "ap@dupont.example")
    gare = customer(api, "Cafe de la Gare", "gare@example.com")
    moreau = customer(api, "Pharmacie Moreau", "moreau@example.com")
    rf_inv = invoice(api, martin["id"], "1000.00")     # 1200.00, paid by RF reference
    num_a = invoice(api, martin["id"], "100.00")       # 120.00 } one transfer naming both numbers
    num_b = invoice(api, martin["id"], "50.00")        # 60.00  }
    exact = invoice(api, dupont["id"], "400.00")       # 480.00, by name and exact amount
    combo_a = invoice(api, gare["id"], "100.00")       # 120.00 } by name, a combination
    combo_b = invoice(api, gare["id"], "250.00")       # 300.00 }
    invoice(api, gare["id"], "700.00")                 # 840.00, left open
    disc = invoice(api, moreau["id"], "1000.00")       # 1200.00, escompte 2 %: 1176.00 settles it
    assert rf_inv["payment_reference"].startswith("RF") and rf_inv["payment_reference"].endswith(
        rf_inv["number"].replace("-", ""))
    body = camt053([
        ntry("1200.00", booking=day, details=[tx(debtor="BOULANGERIE MARTIN", debtor_iban=CUSTOMER_IBAN,
                                                 strd_ref=rf_inv["payment_reference"], end_to_end_id="E2E-1")]),
        ntry("1140.00", booking=day, batch=True, details=[   # a batch booking of two transfers
            tx("180.00", debtor="BOULANGERIE MARTIN SARL", ustrd=f"FACT {num_a['number']} {num_b['number']}"),
            tx("960.00", debtor="INCONNU SA", ustrd="AVANCE")]),
        ntry("480.00", booking=day, details=[tx(debtor="TRANSPORTS DUPONT", debtor_iban=CUSTOMER2_IBAN,
                                                ustrd="VIREMENT")]),
        ntry("420.00", booking=day, details=[tx(debtor="CAFE DE LA GARE", ustrd="REGLEMENT")]),
        ntry("1176.00", booking=day, details=[tx(debtor="PHARMACIE MOREAU", ustrd="ESCOMPTE")]),
        ntry("350.00", booking=day, reversal=True, btc=("PMNT", "RCDT", "RRTN"),
             details=[tx(debtor="FOURNISSEUR", return_reason="AC04", ustrd="RETOUR DE VOTRE VIREMENT")]),
        ntry("89.90", booking=day, credit=False, btc=("PMNT", "ICDT", "ESCT"),
             details=[tx(creditor="OVH SAS", creditor_iban=OTHER_IBAN, ustrd="FACTURE OVH")]),
    ], day=day, message_id="STMT-API-1")
    resp = post_statement(api, body)
    assert resp.status_code == 201, resp.data
    report = resp.data
    rules = [(e["status"], e["rule"]) for e in report["entries"]]
    assert rules == [("matched", "rf_reference"), ("matched", "invoice_number"), ("unmatched", None),
                     ("matched", "customer_exact_amount"), ("matched", "customer_combination"),
                     ("matched", "early_payment_discount"), ("ignored", None), ("debit", None)]
    assert report["complete"] and report["statements"][0]["balances_reconcile"] is True
    for inv in (rf_inv, num_a, num_b, exact, combo_a, combo_b, disc):
        assert api.get(f"/invoices/{inv['id']}").data["status"] == "paid", inv["number"]
    assert api.get(f"/invoices/{disc['id']}").data["amount_discounted"] == "24.00"
    payments = api.get("/payments?limit=200").data["data"]
    assert len(payments) == 6 and all(p["source"] == "bank" for p in payments)
    # the same file again, and an overlapping one: nothing is paid twice
    again = post_statement(api, body)
    assert again.status_code == 201 and {e["status"] for e in again.data["entries"]} == {
        "already_imported", "debit"}
    assert len(api.get("/payments?limit=200").data["data"]) == 6
    # the unmatched credit waits on the review list; a clerk allocates it in one call
    queue = api.get("/bank-transactions?status=unmatched").data
    assert [t["amount"] for t in queue["data"]] == ["960.00"] and queue["data"][0]["needs_review"]
    txn = queue["data"][0]
    open_one = api.get(f"/invoices?customer_id={gare['id']}&status=open").data["data"][0]
    done = api.post(f"/bank-transactions/{txn['id']}/allocate",
                    {"allocations": [{"invoice_id": open_one["id"], "amount": "840.00"}]})
    assert done.status_code == 200, done.data
    assert done.data["status"] == "allocated" and done.data["customer_id"] == gare["id"]
    payment = api.get(f"/payments/{txn['payment_id']}").data
    assert payment["unapplied"] == "120.00" and payment["customer_id"] == gare["id"]  # the rest: Gare's credit
    assert api.get("/bank-transactions?status=unmatched").data["data"] == []
    assert api.get(f"/bank-transactions/{txn['id']}").data["resolved_by"] == "test-admin"


def test_known_accounts_and_a_returned_payment(api):
    day = today()
    martin = customer(api, "Boulangerie Martin SARL", "compta@martin.example")
    first = invoice(api, martin["id"], "100.00")
    second = invoice(api, martin["id"], "300.00")
    post_statement(api, camt053([ntry("120.00", booking=day - timedelta(days=1), details=[
        tx(debtor="BOULANGERIE MARTIN", debtor_iban=CUSTOMER_IBAN, ustrd=first["number"], end_to_end_id="E2E-7")])],
        day=day - timedelta(days=1), message_id="D1"))
    # the next transfer names nothing and comes under another name: the account seen before identifies it
    resp = post_statement(api, camt053([
        ntry("360.00", booking=day, details=[tx(debtor="BM", debtor_iban=CUSTOMER_IBAN, ustrd="VIR")]),
        ntry("120.00", booking=day, credit=False, btc=("PMNT", "RCDT", "RRTN"),
             details=[tx(end_to_end_id="E2E-7", creditor="BOULANGERIE MARTIN", return_reason="AC04")])],
        day=day, message_id="D2"))
    assert [(e["status"], e["rule"]) for e in resp.data["entries"]] == [("matched", "customer_exact_amount"),
                                                                        ("reversed", None)]
    assert api.get(f"/invoices/{second['id']}").data["status"] == "paid"
    reopened = api.get(f"/invoices/{first['id']}").data
    assert reopened["status"] == "open" and reopened["amount_due"] == "120.00"


def test_refusals_change_nothing_and_say_why(api):
    day = today()
    good = camt053([ntry("10.00", booking=day, details=[tx(debtor="X", ustrd="Y")])], day=day)
    foreign = post_statement(api, camt053([ntry("10.00", booking=day, details=[tx(debtor="X")])], day=day,
                                          iban=OTHER_IBAN))
    assert foreign.status_code == 422 and foreign.data["code"] == "foreign_account"
    broken = post_statement(api, good[:-30])
    assert broken.status_code == 422 and broken.data["code"] == "invalid_bank_statement"
    assert api.request("POST", "/bank-statements", headers=XML, raw=b"").status_code == 400
    big = api.request("POST", "/bank-statements", headers=XML, raw=b"<" + b" " * (5 * 1024 * 1024 + 10))
    assert big.status_code == 413
    assert post_statement(api, good, format="ofx").status_code == 400
    assert api.get("/bank-transactions?limit=200").data["data"] == []
    reader = api.post("/api-keys", {"name": "reader", "role": "reader"}).data["secret"]
    assert api.request("POST", "/bank-statements", headers=XML, raw=good, key=reader).status_code == 403
    dry = post_statement(api, good, dry_run="true")
    assert dry.status_code == 200 and dry.data["dry_run"]
    assert api.get("/bank-transactions?limit=200").data["data"] == []


def test_the_csv_layout_through_the_api(api):
    martin = customer(api, "Boulangerie Martin SARL", "compta@martin.example")
    inv = invoice(api, martin["id"], "100.00")
    csv = ("booking_date;amount;currency;label;debtor_name;debtor_iban;reference;bank_entry_id\n"
           f"{today().isoformat()};120,00;EUR;VIR {inv['number']};BOULANGERIE MARTIN;;;BQ-1\n").encode()
    resp = api.request("POST", "/bank-statements", headers={"Content-Type": "text/csv"}, raw=csv)
    assert resp.status_code == 201 and resp.data["entries"][0]["status"] == "matched"


def test_imports_through_the_api(api):
    csv_body = (HEADER + "\n".join(GOOD) + "\n").encode()
    dry = api.request("POST", "/imports?dry_run=true&name=legacy.csv", headers={"Content-Type": "text/csv"},
                      raw=csv_body)
    assert dry.status_code == 200 and dry.data["summary"]["invoices_to_create"] == 3
    done = api.request("POST", "/imports?name=legacy.csv", headers={"Content-Type": "text/csv"}, raw=csv_body)
    assert done.status_code == 201 and done.data["status"] == "completed"
    record = api.get(f"/imports/{done.data['id']}").data
    assert record["invoices_created"] == 3 and record["status"] == "completed"
    listed = api.get("/invoices?status=open&limit=200").data["data"]
    assert {i["number"] for i in listed} >= {"FA-2025-0101", "FA-2025-0102", "FA-2026-0007"}
    refused = api.post("/imports", {"files": [{"name": "bad.csv", "content": HEADER + "X;C9;;;;2026-01-01;"
                                               "2026-02-01;EUR;10;2;12;;20\n"}]})
    assert refused.status_code == 422 and refused.data["code"] == "import_refused"
    assert refused.data["details"]["rejected"][0]["field"] == "buyer"
    assert api.post("/imports", {"files": [], "extra": 1}).status_code == 400
    assert api.get("/imports/imp_nope").status_code == 404


@needs_examples
def test_a_factur_x_pdf_and_a_cii_file_through_the_api(api):
    import facturx
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="Facture")
    document = facturx.generate_from_binary(bytes(pdf.output()), (EXAMPLES / "CII_example5.xml").read_bytes(),
                                            flavor="factur-x", level="en16931")
    resp = api.request("POST", "/imports?name=TOSL110.pdf", headers={"Content-Type": "application/pdf"},
                       raw=document)
    assert resp.status_code == 201, resp.data
    cii = (EXAMPLES / "CII_business_example_02.xml").read_bytes()
    json_form = api.post("/imports", {"files": [{"name": "ex2.xml", "content_base64": base64.b64encode(cii).decode()}],
                                      "contacts": {"1111111111": "ap@buyer.example"}})
    assert json_form.status_code == 201, json_form.data
    numbers = {i["number"] for i in api.get("/invoices?status=open&limit=200").data["data"]}
    assert {"TOSL110", "INV000013"} <= numbers


def test_the_fec_export_through_the_api(api):
    day = today()
    martin = customer(api, "Boulangerie Martin SARL", "compta@martin.example")
    inv = invoice(api, martin["id"], "1000.00")
    post_statement(api, camt053([ntry("1200.00", booking=day, details=[
        tx(debtor="BOULANGERIE MARTIN", strd_ref=inv["payment_reference"])])], day=day))
    first = day.replace(day=1)
    resp = api.get(f"/exports/fec?from={first.isoformat()}&to={day.isoformat()}")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert f'filename="{SELLER_INPUT["siren"]}FEC{day:%Y%m%d}.txt"' in resp.headers["Content-Disposition"]
    rows = parse_fec(resp.body.decode("utf-8"))
    assert rows and all(len(r) == len(FEC_COLUMNS) for r in rows)
    assert {r["JournalCode"] for r in rows} == {"VE", "BQ"}
    csv = api.get(f"/exports/fec?from={first.isoformat()}&to={day.isoformat()}&format=csv")
    assert csv.headers["Content-Type"].startswith("text/csv") and len(csv.body.decode().splitlines()) == len(rows) + 1
    assert api.get("/exports/fec?from=2026-01-01").status_code == 400
    assert api.get("/exports/fec?from=2026-02-01&to=2026-01-01").status_code == 422


def test_a_stripe_payout_is_reconciled_against_the_emulator(payments_stack):
    ps = payments_stack
    http, url = ps["http"], ps["api_url"]
    cust = http.post(f"{url}/customers", json=CUSTOMER_INPUT).json()
    draft = http.post(f"{url}/invoices", json={"customer_id": cust["id"], "lines": [line()]}).json()
    inv = http.post(f"{url}/invoices/{draft['id']}/issue").json()
    from chalicelib import wiring

    token = inv["pay_url"].rsplit("/", 1)[1]
    redirect = requests.get(wiring.pay().checkout_url(token), allow_redirects=False)
    ps["emulator"].checkout(redirect.headers["Location"].rstrip("/").split("/")[-1], "card_success")
    deadline = time.monotonic() + 10
    while http.get(f"{url}/invoices/{inv['id']}").json()["status"] != "paid":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    payout = requests.post(f"{ps['emulator'].url}/_emulator/payouts", json={"currency": "eur"}).json()
    day = today()
    body = camt053([ntry(f"{payout['amount'] / 100:.2f}", booking=day, details=[
        tx(debtor="STRIPE TECHNOLOGY EUROPE LTD", ustrd=f"STRIPE PAYOUT {payout['id']}")])], day=day)
    resp = http.post(f"{url}/bank-statements", data=body, headers=XML)
    assert resp.status_code == 201, resp.text
    [entry] = resp.json()["entries"]
    assert entry["status"] == "reconciled" and entry["kind"] == "stripe_payout"
    txn = http.get(f"{url}/bank-transactions/{entry['id']}").json()
    assert txn["payout"]["difference"] == "0.00" and txn["payout"]["fees"] != "0.00"
    fec = http.get(f"{url}/exports/fec", params={"from": day.replace(day=1).isoformat(), "to": day.isoformat()})
    fees = [r for r in parse_fec(fec.text) if r["CompteNum"] == "627"]
    assert fees and fees[0]["Debit"].replace(",", ".") == txn["payout"]["fees"]
