"""Each EN 16931 term listed in terms.py appears in the XML of a representative invoice of its scenario."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from chalicelib.adapters.documents.cii import NSMAP, build_cii
from chalicelib.adapters.documents.context import DeliverTo, DepositDeduction, DocumentContext
from chalicelib.adapters.documents.terms import DIRECT_DEBIT, FOREIGN_CURRENCY, MAIN, TERMS, markdown
from chalicelib.domain.money import Money
from chalicelib.domain.parties import Address

from .builders import CUSTOMER, PROJECT_ROOT, context, customer, issued, line, seller
from .en16931 import Validator


def representative(scenario: str) -> tuple[bytes, DocumentContext]:
    """A domestic invoice using every optional field we support, varied per scenario."""
    profile = seller(trade_name="Atelier Lumière", vat_on_debits=True)
    buyer = customer(CUSTOMER, siret="90187654010004",
                     address={**CUSTOMER["address"], "line2": "Bâtiment B"},
                     currency="USD" if scenario == FOREIGN_CURRENCY else "EUR")
    invoice = issued(
        [line("Étude d'éclairage", "1.5", "640.1234", "20", unit_code="DAY", item_id="ETU-01",
              period_start="2026-02-02", period_end="2026-02-13"),
         line("Formation des équipes", "1", "800", "0", vat_category="E",
              exemption_reason="Exonération de TVA, article 261 4 4° a du CGI", exemption_code="VATEX-FR-CGI261-4")],
        buyer=buyer, seller_profile=profile, purchase_order="PO-2026-17", buyer_reference="DEP-ACHATS",
        note="Projet atelier Croix-Rousse", delivery_date="2026-02-13",
        allowances_charges=[{"type": "allowance", "amount": "25.00", "reason": "Remise commerciale",
                             "reason_code": "95", "vat_rate": "20"},
                            {"type": "charge", "amount": "30.00", "reason": "Déplacement", "reason_code": "FC",
                             "vat_rate": "20"}])
    values: dict = {"contract_reference": "CT-2025-09",
                    "deliver_to": DeliverTo(country="FR", name="Atelier Croix-Rousse",
                                            address=Address(line1="8 rue d'Austerlitz", city="Lyon",
                                                            postal_code="69004", country="FR"))}
    if scenario == MAIN:
        values["deposits"] = (DepositDeduction("F2026-000011", date(2026, 1, 20), Money(30000, "EUR")),)
    if scenario == DIRECT_DEBIT:
        values.update(payment_means="59", mandate_reference="MNDT-77", debtor_iban="FR7610107001011234567890129")
    if scenario == FOREIGN_CURRENCY:
        values.update(eur_exchange_rate=Decimal("0.9100"))
    ctx = context(profile, **values)
    return build_cii(invoice, ctx), ctx


@pytest.mark.parametrize("scenario", [MAIN, DIRECT_DEBIT, FOREIGN_CURRENCY])
def test_every_listed_term_is_in_the_xml(scenario: str, official_rules: Validator) -> None:
    xml, _ = representative(scenario)
    assert official_rules.fatal(xml) == []
    root = etree.fromstring(xml)
    missing = []
    for term in TERMS:
        if term.scenario != scenario:
            continue
        found = root.xpath(term.xpath, namespaces=NSMAP)
        if not found or all(not (n if isinstance(n, str) else (n.text or "").strip()) for n in found):
            missing.append(f"{term.bt} {term.xpath}")
    assert missing == []


def test_terms_are_unique_and_documented() -> None:
    ids = [t.bt for t in TERMS]
    assert len(ids) == len(set(ids))
    doc = (PROJECT_ROOT / "docs" / "en16931-terms.md").read_text(encoding="utf-8")
    assert doc == markdown(), "regenerate: python -m chalicelib.adapters.documents.terms > docs/en16931-terms.md"


def test_importing_the_adapter_loads_no_rendering_library() -> None:
    code = ("import sys, chalicelib.adapters.documents as d; "
            "print(sorted(m for m in ('fpdf', 'facturx', 'lxml', 'segno', 'babel', 'pypdf', 'fontTools') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(PROJECT_ROOT), capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
