"""The customer's pages over real HTTP: /pay/{token} and /portal/{token}, against the Stripe emulator.

The customer has no API key: every page request here goes out without one. Expected
texts come from the page's own formatter (Babel puts no-break spaces in French
amounts), so the assertions say what a reader sees, not how we spell it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from html import unescape
from typing import Any

import requests

from chalicelib.adapters.html import Formatter, epc_payload
from chalicelib.domain.creditor_reference import format_reference
from chalicelib.domain.money import Money
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line

FR, EN = Formatter("fr"), Formatter("en")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# -- builders -------------------------------------------------------------------------------------

def new_customer(ps: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    resp = ps["http"].post(f"{ps['api_url']}/customers", json={**CUSTOMER_INPUT, **overrides})
    assert resp.status_code == 201, resp.text
    return resp.json()


def issued(ps: dict[str, Any], customer_id: str, **line_kw: Any) -> dict[str, Any]:
    http, url = ps["http"], ps["api_url"]
    draft = http.post(f"{url}/invoices", json={"customer_id": customer_id, "lines": [line(**line_kw)]}).json()
    invoice = http.post(f"{url}/invoices/{draft['id']}/issue").json()
    assert invoice["status"] == "open", invoice
    return invoice


def token(invoice: dict[str, Any]) -> str:
    return str(invoice["pay_url"]).rsplit("/", 1)[1]


def page(ps: dict[str, Any], path: str, **kw: Any) -> requests.Response:
    """A customer's request: no API key, no redirects followed."""
    return requests.get(f"{ps['api_url']}{path}", allow_redirects=False, timeout=10, **kw)


def post_form(ps: dict[str, Any], path: str, data: Any = None, **kw: Any) -> requests.Response:
    return requests.post(f"{ps['api_url']}{path}", data=data or {}, headers=FORM, allow_redirects=False, timeout=10,
                         **kw)


def text(resp: requests.Response) -> str:
    """The page's visible text, whitespace collapsed (tags dropped, entities decoded)."""
    body = re.sub(r"<(style|svg)[^>]*>.*?</\1>", " ", resp.text, flags=re.S)
    return re.sub(r"[ \t\r\n]+", " ", unescape(re.sub(r"<[^>]+>", " ", body)))


def api_invoice(ps: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    return ps["http"].get(f"{ps['api_url']}/invoices/{invoice_id}").json()


def pay_manually(ps: dict[str, Any], invoice_id: str, amount: str) -> None:
    resp = ps["http"].post(f"{ps['api_url']}/invoices/{invoice_id}/payments",
                           json={"amount": amount, "method": "bank_transfer", "reference": "VIR TEST",
                                 "received_on": date.today().isoformat()})
    assert resp.status_code == 201, resp.text


def eur(minor: int) -> Money:
    return Money(minor, "EUR")


# -- the hosted invoice page ----------------------------------------------------------------------

def test_pay_page_in_french_shows_the_invoice_the_escompte_and_every_way_to_pay(payments_stack):
    ps = payments_stack
    customer = new_customer(ps)
    invoice = issued(ps, customer["id"])  # 100.00 + 20 % VAT, issued today, seller gives 2 % within 10 days
    resp = page(ps, f"/pay/{token(invoice)}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<html lang="fr">' in resp.text and 'name="viewport"' in resp.text
    seen = text(resp)
    issue_date = date.fromisoformat(invoice["issue_date"])
    assert f"Facture {invoice['number']}" in seen
    assert SELLER_INPUT["legal_name"] in seen and CUSTOMER_INPUT["name"] in seen
    assert FR.money(eur(12000)) in seen                                  # amount due, total
    assert FR.date(date.fromisoformat(invoice["due_date"])) in seen      # due date
    assert FR.t("discount_offer", amount=FR.money(eur(11760)), date=FR.date(issue_date + timedelta(days=10)),
                rate=FR.percent(Decimal("2"))) in seen
    assert FR.t("pay_button", amount=FR.money(eur(11760))) in seen
    # every action is a real button in a form posting to our routes
    base = f"/pay/{token(invoice)}"
    for action in ("checkout", "mandate", "dispute"):
        assert f'<form method="post" action="{base}/{action}"' in resp.text
    assert f'href="{base}/pdf"' in resp.text
    assert f'href="{base}/promise"' in resp.text and FR.t("promise_link") in seen  # a promise pauses reminders
    # bank transfer: IBAN, BIC, reference = the invoice's RF creditor reference, and the EPC QR code inline
    assert "FR76 3000 6000 0112 3456 7890 189" in seen and SELLER_INPUT["bic"] in seen
    rf = format_reference(invoice["payment_reference"])
    assert rf in seen and invoice["payment_reference"].endswith(invoice["number"].replace("-", ""))
    assert re.search(r'<svg role="img" aria-label="[^"]*' + re.escape(rf), resp.text)
    for reason in ("price", "quantity", "quality", "not_received", "already_paid", "other"):
        assert f'<option value="{reason}">' in resp.text
    # legal mentions in the footer
    assert "SIREN 812345676" in seen and "RCS Lyon 812 345 676" in seen


def test_pay_page_security_headers(payments_stack):
    ps = payments_stack
    invoice = issued(ps, new_customer(ps)["id"])
    headers = page(ps, f"/pay/{token(invoice)}").headers
    assert headers["Cache-Control"].startswith("no-store")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert re.search(r"style-src 'sha256-[A-Za-z0-9+/=]+'", csp)


def test_pay_page_speaks_english_for_english_customers_and_on_request(payments_stack):
    ps = payments_stack
    english = issued(ps, new_customer(ps, language="en", email="ap@example.co.uk")["id"])
    resp = page(ps, f"/pay/{token(english)}")
    seen = text(resp)
    assert '<html lang="en">' in resp.text
    assert f"Invoice {english['number']}" in seen and EN.t("pay_button", amount=EN.money(eur(11760))) in seen
    assert "early-payment discount" in seen and "Contest this invoice" in seen
    french = issued(ps, new_customer(ps)["id"])
    resp = page(ps, f"/pay/{token(french)}", params={"lang": "en"})
    assert '<html lang="en">' in resp.text and "Pay by bank transfer" in text(resp)
    # the override follows the forms
    assert f'action="/pay/{token(french)}/checkout?lang=en"' in resp.text
    assert '<html lang="fr">' in page(ps, f"/pay/{token(french)}", params={"lang": "de"}).text


def test_partially_paid_invoice_offers_the_remaining_amount(payments_stack):
    ps = payments_stack
    invoice = issued(ps, new_customer(ps)["id"])
    pay_manually(ps, invoice["id"], "50.00")
    seen = text(page(ps, f"/pay/{token(invoice)}"))
    assert FR.t("status_partial", amount=FR.money(eur(7000))) in seen
    assert FR.t("pay_button", amount=FR.money(eur(7000))) in seen       # no escompte once partly paid
    assert FR.t("already_paid") in seen and FR.money(eur(5000)) in seen


def test_paid_invoice_says_paid_and_has_no_pay_button(payments_stack):
    ps = payments_stack
    invoice = issued(ps, new_customer(ps)["id"])
    pay_manually(ps, invoice["id"], "120.00")
    resp = page(ps, f"/pay/{token(invoice)}")
    seen = text(resp)
    assert "Payée le" in seen
    assert "/checkout" not in resp.text and "Payer " not in seen and "/dispute" not in resp.text
    assert "/promise" not in resp.text
    assert "<svg" not in resp.text                                      # no transfer details either
    again = post_form(ps, f"/pay/{token(invoice)}/checkout")
    assert again.status_code == 409 and FR.t("error_nothing_to_pay") in text(again)


def test_unknown_and_revoked_tokens_are_a_bare_404(payments_stack):
    ps = payments_stack
    invoice = issued(ps, new_customer(ps)["id"])
    unknown = page(ps, "/pay/" + "A" * 32)
    assert unknown.status_code == 404 and unknown.headers["Content-Type"].startswith("text/html")
    ps["http"].post(f"{ps['api_url']}/invoices/{invoice['id']}/pay-link/revoke").raise_for_status()
    revoked = page(ps, f"/pay/{token(invoice)}")
    assert revoked.status_code == 404
    assert revoked.text == unknown.text                                 # nothing tells them apart
    for secret in (invoice["number"], SELLER_INPUT["legal_name"], CUSTOMER_INPUT["name"], "120"):
        assert secret not in revoked.text
    for path in ("checkout", "mandate", "dispute"):
        assert post_form(ps, f"/pay/{token(invoice)}/{path}").status_code == 404
    assert page(ps, "/portal/nope").status_code == 404


def test_rotated_token_answers_410_and_points_to_the_new_link(payments_stack):
    ps = payments_stack
    invoice = issued(ps, new_customer(ps)["id"])
    rotated = ps["http"].post(f"{ps['api_url']}/invoices/{invoice['id']}/pay-link/rotate").json()
    old = page(ps, f"/pay/{token(invoice)}")
    assert old.status_code == 410
    assert "remplacé" in old.text and "replaced" in old.text and "portal" in old.text
    assert invoice["number"] not in old.text
    assert post_form(ps, f"/pay/{token(invoice)}/checkout").status_code == 410
    assert page(ps, f"/pay/{token(rotated)}").status_code == 200


def test_contest_form_validates_then_creates_a_dispute(payments_stack):
    ps = payments_stack
    invoice = issued(ps, new_customer(ps)["id"])
    path = f"/pay/{token(invoice)}/dispute"
    # When the form is sent empty, it comes back with both errors, linked to their fields
    bad = post_form(ps, path, {"reason": "", "message": "  "})
    assert bad.status_code == 422
    assert FR.t("error_reason") in text(bad) and FR.t("error_message") in text(bad)
    assert 'aria-invalid="true"' in bad.text and 'role="alert"' in bad.text
    # an unknown reason is refused the same way, and what was typed is kept
    kept = post_form(ps, path, {"reason": "bored", "message": "Livraison <b>incomplète</b>"})
    assert kept.status_code == 422 and "Livraison &lt;b&gt;incomplète&lt;/b&gt;" in kept.text  # escaped
    # When it is valid, a dispute exists and the invoice is contested
    ok = post_form(ps, path, {"reason": "quantity", "message": "Livré 8 au lieu de 10"})
    assert ok.status_code == 200, ok.text
    assert FR.t("contest_sent", number=invoice["number"]) in text(ok)
    disputes = ps["http"].get(f"{ps['api_url']}/disputes", params={"customer_id": invoice["customer_id"]}).json()
    assert [(d["reason"], d["message"], d["source"]) for d in disputes["data"]] == [
        ("quantity", "Livré 8 au lieu de 10", "hosted_page")]
    assert api_invoice(ps, invoice["id"])["dispute_status"] == "open"
    after = page(ps, f"/pay/{token(invoice)}")
    assert FR.t("status_disputed") in text(after) and "/dispute" not in after.text
    assert post_form(ps, path, {"reason": "price", "message": "encore"}).status_code == 409


def test_pay_button_redirects_to_the_payment_link_without_leaking_the_token(payments_stack):
    ps = payments_stack
    invoice = issued(ps, new_customer(ps)["id"])
    resp = post_form(ps, f"/pay/{token(invoice)}/checkout")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith(ps["emulator"].url)
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Set-Cookie"].startswith("ar_return=pay; Path=/pay/")
    link = requests.get(resp.headers["Location"], allow_redirects=False, timeout=10)
    session_id = link.headers["Location"].rstrip("/").split("/")[-1]
    ps["emulator"].checkout(session_id, "card_success")
    ps["emulator"].wait_for_deliveries(timeout_s=10)
    assert api_invoice(ps, invoice["id"])["status"] == "paid"
    # back from the provider, the page thanks the payer
    back = page(ps, f"/pay/{token(invoice)}", params={"done": "1"}, cookies={"ar_return": "pay"})
    assert FR.t("done_paid") in text(back)


def test_back_from_the_provider_before_the_webhook_says_processing(payments_stack):
    ps = payments_stack
    invoice = issued(ps, new_customer(ps)["id"])
    seen = text(page(ps, f"/pay/{token(invoice)}", params={"done": "1"}))
    assert FR.t("done_processing") in seen


def test_epc_qr_payload_is_segnos_bcd_payload_with_iban_amount_and_reference(payments_stack):
    import segno
    import segno.helpers

    payload = epc_payload(name=SELLER_INPUT["legal_name"], iban=SELLER_INPUT["iban"], amount=eur(11760),
                          reference="F2026-000001", bic=SELLER_INPUT["bic"])
    assert payload is not None
    lines = payload.decode("iso-8859-1").split("\n")
    assert lines[:4] == ["BCD", "002", "2", "SCT"]
    assert lines[4:8] == [SELLER_INPUT["bic"], SELLER_INPUT["legal_name"], SELLER_INPUT["iban"], "EUR117.6"]
    assert lines[-1] == "F2026-000001"
    # the very code segno's EPC helper makes
    helper = segno.helpers.make_epc_qr(name=SELLER_INPUT["legal_name"], iban=SELLER_INPUT["iban"],
                                       amount="117.60", text="F2026-000001", bic=SELLER_INPUT["bic"])
    assert segno.make_qr(payload, error="m", boost_error=False).matrix == helper.matrix
    assert epc_payload(name="X", iban=SELLER_INPUT["iban"], amount=Money(100, "USD"), reference="F1") is None
    assert epc_payload(name="X", iban=SELLER_INPUT["iban"], amount=eur(0), reference="F1") is None
    # and the page draws it for the amount to pay now
    ps = payments_stack
    invoice = issued(ps, new_customer(ps)["id"])
    resp = page(ps, f"/pay/{token(invoice)}")
    assert resp.text.count("<svg") == 1 and 'class="qr"' in resp.text
    # a French seller's USD invoice states its VAT in EUR too (docs/einvoicing.md): the rate comes from settings
    ps["http"].put(f"{ps['api_url']}/settings/einvoicing", json={"exchange_rates": {"USD": {"rate": "0.92"}}})
    usd = issued(ps, new_customer(ps, currency="USD", email="us@example.com")["id"])
    usd_page = page(ps, f"/pay/{token(usd)}")
    assert usd_page.status_code == 200 and "<svg" not in usd_page.text and "IBAN" in usd_page.text


# -- the portal -----------------------------------------------------------------------------------

def portal_token(ps: dict[str, Any], customer_id: str) -> str:
    resp = ps["http"].post(f"{ps['api_url']}/customers/{customer_id}/portal-link")
    assert resp.status_code in (200, 201), resp.text
    return str(resp.json()["portal_url"]).rsplit("/", 1)[1]


def test_portal_lists_invoices_statement_and_pays_two_invoices_at_once(payments_stack):
    ps = payments_stack
    customer = new_customer(ps)
    first = issued(ps, customer["id"])
    second = issued(ps, customer["id"], unit_price="50.00")
    third = issued(ps, customer["id"], unit_price="10.00")
    pay_manually(ps, third["id"], "12.00")
    portal = portal_token(ps, customer["id"])
    resp = page(ps, f"/portal/{portal}")
    assert resp.status_code == 200 and resp.headers["Referrer-Policy"] == "no-referrer"
    seen = text(resp)
    for invoice in (first, second, third):
        assert invoice["number"] in seen
        assert f'href="/pay/{token(invoice)}/pdf"' in resp.text
    assert FR.t("portal_balance", amount=FR.money(eur(18000))) in seen
    # the statement: three invoices, one payment, running balance ending on what is due
    assert FR.t("entry_payment", method=FR.t("method_bank_transfer")) in seen
    assert re.search(re.escape(FR.t("statement_total")) + r"\s*" + re.escape(FR.money(eur(18000))), seen)
    # only open invoices can be ticked
    assert f'value="{first["id"]}" form="pay-several"' in resp.text
    assert f'value="{third["id"]}" form="pay-several"' not in resp.text
    # When nothing is ticked, the form says so
    none = post_form(ps, f"/portal/{portal}/checkout")
    assert none.status_code == 422 and FR.t("error_select") in text(none)
    paid_one = post_form(ps, f"/portal/{portal}/checkout", {"invoice_ids": third["id"]})
    assert paid_one.status_code == 422 and FR.t("error_select_invalid") in text(paid_one)
    # When two invoices are paid at once, by card
    go = post_form(ps, f"/portal/{portal}/checkout", [("invoice_ids", first["id"]), ("invoice_ids", second["id"])])
    assert go.status_code == 303, go.text
    session_id = go.headers["Location"].rstrip("/").split("/")[-1]
    assert session_id.startswith("cs_")
    ps["emulator"].checkout(session_id, "card_success")
    ps["emulator"].wait_for_deliveries(timeout_s=10)
    # Then both are paid, and the portal shows a zero balance
    assert api_invoice(ps, first["id"])["status"] == "paid" and api_invoice(ps, second["id"])["status"] == "paid"
    after = text(page(ps, f"/portal/{portal}", params={"lang": "en"}))
    assert after.count(EN.t("short_paid")) == 3 and "Balance due" not in after
    assert re.search(r"Balance\s*" + re.escape(EN.money(eur(0))), after)


def test_portal_copy_and_disputes(payments_stack):
    ps = payments_stack
    customer = new_customer(ps)
    invoice = issued(ps, customer["id"])
    other = issued(ps, new_customer(ps, email="other@example.com")["id"])
    portal = portal_token(ps, customer["id"])
    # a copy of one's own invoice; someone else's invoice is not found
    copy = post_form(ps, f"/portal/{portal}/copy", {"invoice_id": invoice["id"]})
    assert copy.status_code == 200 and FR.t("copy_sent", number=invoice["number"]) in text(copy)
    assert post_form(ps, f"/portal/{portal}/copy", {"invoice_id": other["id"]}).status_code == 404
    # contest from the portal
    bad = post_form(ps, f"/portal/{portal}/dispute", {"invoice_id": "", "reason": "", "message": ""})
    assert bad.status_code == 422 and FR.t("error_invoice") in text(bad)
    ok = post_form(ps, f"/portal/{portal}/dispute",
                   {"invoice_id": invoice["id"], "reason": "price", "message": "Tarif 2025 appliqué"})
    assert ok.status_code == 200, ok.text
    seen = text(page(ps, f"/portal/{portal}"))
    assert "Tarif 2025 appliqué" in seen and FR.t("reason_price") in seen
    assert api_invoice(ps, invoice["id"])["dispute_status"] == "open"


# StripeGateway.setup_intent_details does dict(intent["metadata"]) on a StripeObject, which stripe 16
# refuses (TypeError): setup_intent.succeeded / checkout.session.completed (setup) answer 500 and the
# mandate is never stored. strict: this starts failing (XPASS) once the gateway is fixed: drop the mark.


def test_portal_sets_up_a_sepa_mandate(payments_stack):
    ps = payments_stack
    customer = new_customer(ps)
    issued(ps, customer["id"])
    portal = portal_token(ps, customer["id"])
    assert FR.t("mandate_none") in text(page(ps, f"/portal/{portal}"))
    go = post_form(ps, f"/portal/{portal}/mandate")
    assert go.status_code == 303 and go.headers["Set-Cookie"].startswith("ar_return=mandate")
    ps["emulator"].checkout(go.headers["Location"].rstrip("/").split("/")[-1], "setup_sepa")
    ps["emulator"].wait_for_deliveries(timeout_s=10)
    back = page(ps, f"/portal/{portal}", params={"done": "1"}, cookies={"ar_return": "mandate"})
    mandate = ps["http"].get(f"{ps['api_url']}/customers/{customer['id']}").json()["mandate"]
    assert mandate["status"] == "active"
    assert FR.t("done_mandate") in text(back)
    assert FR.t("mandate_active", reference=mandate["reference"] or mandate["id"]) in text(back)


# -- small pure parts -----------------------------------------------------------------------------

def test_links_keep_the_api_gateway_stage_prefix():
    from types import SimpleNamespace

    from chalicelib.api.pages import Page

    on_aws = Page(SimpleNamespace(context={"path": "/api/pay/tok", "resourcePath": "/pay/{token}"},
                                  uri_params={"token": "tok"}, query_params={"lang": "en"}))
    assert on_aws.url("/pay/tok/checkout") == "/api/pay/tok/checkout?lang=en"
    local = Page(SimpleNamespace(context={"path": "/pay/tok", "resourcePath": "/pay/{token}"},
                                 uri_params={"token": "tok"}, query_params=None))
    assert local.url("/pay/tok/pdf") == "/pay/tok/pdf"
    assert local.return_cookie("pay", "/pay/tok").startswith("ar_return=pay; Path=/pay/tok; Max-Age=3600; HttpOnly")


def test_importing_the_app_loads_no_template_locale_or_qr_library():
    import subprocess
    import sys

    from tests.conftest import PROJECT_DIR

    code = ("import sys, app; heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('jinja2', 'babel', 'segno', 'markupsafe')]; print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
