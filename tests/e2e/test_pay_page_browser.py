"""The hosted invoice page in a real browser: Debian's Chromium driven by Playwright, axe-core checks.

- a payer opens the pay link of an issued invoice, pays by card on the provider's page (the Stripe
  emulator), comes back and sees the invoice paid; the ledger has the payment;
- a payer sets up a SEPA mandate from the page; the next invoice is debited on its due date;
- axe-core finds no serious or critical violation on the pay page (fr, en, phone, form errors)
  nor on the portal. Screenshots of the pay page land in pytest's tmp dir.

axe-core comes from npm (tests/e2e/package.json, installed into tests/e2e/node_modules on first
run). The pages' CSP forbids scripts, so the browser context bypasses CSP to inject axe.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import CUSTOMER_INPUT, line

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
E2E_DIR = Path(__file__).resolve().parent
AXE_JS = E2E_DIR / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 375, "height": 812}
TIMEOUT_MS = 10_000


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def axe_js() -> Path:
    """axe-core from the npm registry, pinned by tests/e2e/package-lock.json."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is missing: cannot install axe-core for the accessibility checks")
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=E2E_DIR, capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0 or not AXE_JS.exists():
            pytest.fail(f"npm ci in tests/e2e failed:\n{done.stdout}\n{done.stderr}")
    return AXE_JS


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed (/usr/bin/chromium): `apt-get install -y chromium` "
                    "(make test does it when run as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Pages in fresh contexts; CSP bypassed so that axe can be injected."""
    contexts = []

    def make(**options: Any) -> Any:
        context = browser.new_context(bypass_csp=True, **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


# -- helpers --------------------------------------------------------------------------------------

def axe_violations(page: Any, axe_js: Path) -> list[dict[str, Any]]:
    """All axe-core violations of the current page (every impact)."""
    page.add_script_tag(path=str(axe_js))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return list(result["violations"])


def assert_accessible(page: Any, axe_js: Path, what: str) -> None:
    violations = axe_violations(page, axe_js)
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    summary = "\n".join(f"- [{v['impact']}] {v['id']}: {v['help']} ({len(v['nodes'])}x: "
                        f"{', '.join(str(n['target']) for n in v['nodes'][:3])})" for v in violations)
    assert not serious, f"axe-core on {what}:\n{summary}"
    if violations:  # moderate / minor: shown in the test output, not failing
        print(f"axe-core on {what} (moderate/minor):\n{summary}")


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def new_customer(ps: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    resp = ps["http"].post(f"{ps['api_url']}/customers", json={**CUSTOMER_INPUT, **overrides})
    assert resp.status_code == 201, resp.text
    return resp.json()


def issue(ps: dict[str, Any], customer_id: str, **line_kw: Any) -> dict[str, Any]:
    http, url = ps["http"], ps["api_url"]
    draft = http.post(f"{url}/invoices", json={"customer_id": customer_id, "lines": [line(**line_kw)]}).json()
    invoice = http.post(f"{url}/invoices/{draft['id']}/issue").json()
    assert invoice["status"] == "open", invoice
    return invoice


def api_invoice(ps: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    return ps["http"].get(f"{ps['api_url']}/invoices/{invoice_id}").json()


def settle_webhooks(ps: dict[str, Any]) -> None:
    """Wait until the emulator has delivered every webhook (the app applies them before answering)."""
    assert ps["emulator"].wait_for_deliveries(timeout_s=10), "webhooks still in flight after 10 s"


def back_on_pay_page(page: Any, pay_url: str) -> None:
    """After the provider's page: its own confirmation page, or a redirect to ours with ?done=1.
    From the confirmation page the payer comes back through the link in the invoice email."""
    page.wait_for_url(re.compile(r"/checkout/[^/]+/complete|/pay/[^/?]+\?done=(?:1|pay|mandate)"))
    if "/complete" in page.url:
        page.goto(pay_url)
    else:
        page.reload()


# -- tests ----------------------------------------------------------------------------------------

def test_pay_by_card_from_the_pay_page(payments_stack, new_page, axe_js, tmp_path):
    from playwright.sync_api import expect

    ps = payments_stack
    customer = new_customer(ps)
    invoice = issue(ps, customer["id"])
    pay_url = invoice["pay_url"]

    # Given the pay link of an issued invoice, in French, on a desktop screen
    page = new_page(viewport={"width": 1280, "height": 900})
    page.goto(pay_url)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Facture {invoice['number']}")
    expect(page.get_by_role("button", name=re.compile(r"^Payer 117,60"))).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("QR code de virement SEPA"))).to_be_visible()
    assert_accessible(page, axe_js, "the pay page (fr)")
    page.screenshot(path=str(tmp_path / "pay-fr.png"), full_page=True)
    # in English
    page.goto(pay_url + "?lang=en")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invoice {invoice['number']}")
    assert_accessible(page, axe_js, "the pay page (en)")
    page.screenshot(path=str(tmp_path / "pay-en.png"), full_page=True)
    # on a phone
    phone = new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone.goto(pay_url)
    expect(phone.get_by_role("button", name=re.compile(r"^Payer 117,60"))).to_be_visible()
    assert fits_the_screen(phone), "the pay page scrolls sideways on a 375 px wide screen"
    assert_accessible(phone, axe_js, "the pay page on a phone")
    phone.screenshot(path=str(tmp_path / "pay-phone.png"), full_page=True)
    # a contest form sent empty comes back with its errors, still accessible
    page.goto(pay_url)
    page.get_by_role("button", name="Envoyer la contestation").click()
    expect(page.get_by_role("alert")).to_contain_text("Choisissez un motif")
    expect(page.get_by_label("Motif")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page, axe_js, "the pay page with form errors")

    # When the payer clicks Pay and pays by card on the provider's page
    page.get_by_role("button", name=re.compile(r"^Payer 117,60")).click()
    page.get_by_role("button", name="Pay by card (succeeds)").click()
    back_on_pay_page(page, pay_url)
    settle_webhooks(ps)
    page.reload()

    # Then the page says paid, without a Pay button, and the ledger has the payment
    expect(page.locator(".badge")).to_contain_text("Payée le")
    expect(page.get_by_role("button", name=re.compile("^Payer"))).to_have_count(0)
    assert_accessible(page, axe_js, "the pay page of a paid invoice")
    payments = ps["http"].get(f"{ps['api_url']}/payments", params={"customer_id": customer["id"]}).json()["data"]
    assert [(p["method"], p["amount"], p["allocations"][0]["invoice_id"]) for p in payments] == [
        ("card", "117.60", invoice["id"])]
    assert api_invoice(ps, invoice["id"])["amount_discounted"] == "2.40"


# StripeGateway.setup_intent_details does dict(intent["metadata"]) on a StripeObject, which stripe 16
# refuses (TypeError): the setup webhooks answer 500 and the mandate is never stored. strict: this
# starts failing (XPASS) once the gateway is fixed; then drop the mark.
def test_sepa_mandate_from_the_pay_page_then_the_next_invoice_is_debited(payments_stack, new_page, axe_js):
    from playwright.sync_api import expect

    ps = payments_stack
    http, url = ps["http"], ps["api_url"]
    customer = new_customer(ps)
    first = issue(ps, customer["id"])

    # Given a payer who sets up automatic debit from an invoice's page
    page = new_page(viewport=PHONE, is_mobile=True)
    page.goto(first["pay_url"])
    page.get_by_role("button", name="Mettre en place le prélèvement automatique").click()
    page.get_by_role("button", name="Set up SEPA mandate").click()
    page.wait_for_url(re.compile(r"/pay/[^/?]+\?done=(?:1|pay|mandate)"))
    settle_webhooks(ps)
    page.reload()
    expect(page.get_by_role("status")).to_contain_text("mandat de prélèvement SEPA est enregistré")
    expect(page.get_by_text(re.compile(r"Prélèvement automatique actif \(mandat "))).to_be_visible()
    assert_accessible(page, axe_js, "the pay page after the mandate")

    # When the next invoice is issued, it is scheduled for debit and says so
    second = issue(ps, customer["id"], unit_price="80.00")
    assert second["collection_status"] == "scheduled"
    page.goto(second["pay_url"])
    expect(page.locator(".badge")).to_contain_text("Sera prélevée par prélèvement SEPA le")

    # and on its due date the collections job debits it, and the bank settles the debit
    run = http.post(f"{url}/collections/run", params={"as_of": second["due_date"]})
    assert run.status_code == 200, run.text
    assert http.post(f"{url}/admin/outbox/drain").status_code == 200
    settle_webhooks(ps)
    processing = [e for e in ps["emulator"].events(type="payment_intent.processing")
                  if e["data"]["object"]["metadata"].get("invoice_id") == second["id"]]
    assert len(processing) == 1, processing
    page.reload()
    expect(page.locator(".badge")).to_contain_text("Prélèvement SEPA en cours")
    ps["emulator"].settle(processing[0]["data"]["object"]["id"], "succeed")
    settle_webhooks(ps)

    # Then the invoice is paid by SEPA debit
    assert api_invoice(ps, second["id"])["status"] == "paid"
    page.reload()
    expect(page.locator(".badge")).to_contain_text("Payée le")
    payments = http.get(f"{url}/payments", params={"customer_id": customer["id"]}).json()["data"]
    assert [(p["method"], p["amount"]) for p in payments] == [("sepa_debit", "96.00")]


def test_portal_is_accessible_on_desktop_and_phone(payments_stack, new_page, axe_js, tmp_path):
    from playwright.sync_api import expect

    ps = payments_stack
    http, url = ps["http"], ps["api_url"]
    customer = new_customer(ps)
    paid = issue(ps, customer["id"], unit_price="40.00")
    http.post(f"{url}/invoices/{paid['id']}/payments", json={
        "amount": "48.00", "method": "bank_transfer", "received_on": date.today().isoformat()}).raise_for_status()
    contested = issue(ps, customer["id"])
    http.post(f"{url}/invoices/{contested['id']}/disputes",
              json={"reason": "quality", "message": "Finitions à reprendre"}).raise_for_status()
    issue(ps, customer["id"], unit_price="250.00")
    portal_url = http.post(f"{url}/customers/{customer['id']}/portal-link").json()["portal_url"]

    page = new_page(viewport={"width": 1280, "height": 900})
    page.goto(portal_url)
    expect(page.get_by_role("heading", level=1)).to_contain_text(CUSTOMER_INPUT["name"])
    expect(page.get_by_role("checkbox")).to_have_count(2)
    assert_accessible(page, axe_js, "the portal (fr)")
    page.screenshot(path=str(tmp_path / "portal-fr.png"), full_page=True)
    # nothing ticked: the error is announced
    page.get_by_role("button", name="Payer les factures sélectionnées").click()
    expect(page.get_by_role("alert")).to_contain_text("Cochez au moins une facture")
    assert_accessible(page, axe_js, "the portal with an error")

    phone = new_page(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    phone.goto(portal_url + "?lang=en")
    expect(phone.get_by_role("heading", name="Account statement")).to_be_visible()
    assert fits_the_screen(phone), "the portal scrolls sideways on a 375 px wide screen"
    assert_accessible(phone, axe_js, "the portal on a phone (en)")
    phone.screenshot(path=str(tmp_path / "portal-phone.png"), full_page=True)
    # and the bare 404 page
    assert phone.goto(f"{url}/portal/not-a-token").status == 404
    assert_accessible(phone, axe_js, "the 404 page")
