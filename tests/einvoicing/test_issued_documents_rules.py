"""Every XML the issue path generates passes the official EN 16931 rules (no fatal assertion): each VAT
category, several rates with allowances and charges, foreign currency, direct debit, a credit note, and a
deposit then the final invoice deducting it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from chalicelib.domain.provider import Mandate
from chalicelib.services.ports import UnitOfWork
from tests.conftest import line

from .harness import CLERK_ACTOR, build

EU = {"name": "Müller Maschinenbau GmbH", "email": "buchhaltung@mueller.example", "country": "DE", "language": "en",
      "vat_number": "DE136695976", "siren": None,
      "address": {"line1": "Hauptstraße 5", "postal_code": "10115", "city": "Berlin", "country": "DE"}}
US = {"name": "Acme Corporation", "email": "ap@acme.example", "country": "US", "language": "en", "siren": None,
      "vat_number": None, "address": {"line1": "1 Market Street", "postal_code": "94105", "city": "San Francisco",
                                      "country": "US"}}


def s_multi_rate(h):
    c = h.customer()
    return [h.issue(c.id, [line("Conseil stratégique", "2.5", "850.00", "20", unit_code="HUR"),
                           line("Repas", "1", "30", "10"), line("Livres", "3.125", "42.1234", "5.5"),
                           line("Presse", "4.000001", "2.1599", "2.1")],
                    allowances_charges=[{"type": "allowance", "amount": "50.00", "reason": "Remise fidélité",
                                         "reason_code": "95", "vat_rate": "20"},
                                        {"type": "charge", "amount": "15.00", "reason": "Frais de port",
                                         "reason_code": "FC", "vat_rate": "20"}],
                    purchase_order="PO-778", buyer_reference="SERV-COMPTA")]


def s_zero_and_exempt(h):
    c = h.customer()
    return [h.issue(c.id, [line("Maintenance", "1", "200"), line("Taux zéro", "2", "50", "0", vat_category="Z")]),
            h.issue(c.id, [line("Formation", "1", "1200", "0", vat_category="E",
                                exemption_reason="Exonération de TVA, article 261 4 4° a du CGI")])]


def s_reverse_charge_and_intra_community(h):
    c = h.customer(**EU)
    return [h.issue(c.id, [line("Développement", "10", "650", "0", vat_category="AE")]),
            h.issue(c.id, [line("Luminaire LX-2", "12", "189.90", "0", vat_category="K")],
                    delivery_date="2026-02-26", operation_category="goods")]


def s_export_and_out_of_scope(h):
    c = h.customer(**US)
    return [h.issue(c.id, [line("Lampe de bureau", "50", "45", "0", vat_category="G")], delivery_date="2026-02-20",
                    operation_category="goods"),
            h.issue(h.customer().id, [line("Indemnité forfaitaire de recouvrement", "1", "40", "0",
                                           vat_category="O")])]


def s_foreign_currency(h):
    h.einvoicing_settings.put({"exchange_rates": {"USD": {"rate": "0.9234", "date": "2026-03-01"}}}, CLERK_ACTOR)
    c = h.customer(currency="USD")
    return [h.issue(c.id, [line("Consulting", "3", "1000.00")])]


def s_direct_debit(h):
    c = h.customer()
    uow = UnitOfWork(actor=CLERK_ACTOR, now=h.clock.now())
    uow.save(replace(c, mandate=Mandate(id="mandate_1", status="active", reference="MD-4242", payment_method="pm",
                                        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))))
    h.ledger.commit(uow)
    invoice = h.issue(c.id, [line()])
    assert invoice.documents["spec"]["payment_means"] == "59"
    return [invoice]


def s_credit_notes(h):
    c = h.customer()
    invoice = h.issue(c.id, [line("Lustre", "2", "500.00"), line("Pose", "4", "50.00", "10")])
    partial = h.credit_notes.create(invoice.id, {"lines": [{"index": 1, "quantity": "1.5"}]}, CLERK_ACTOR)
    rest = h.credit_notes.create(invoice.id, {}, CLERK_ACTOR)
    return [invoice, partial, rest]


def s_deposit_then_final(h):
    c = h.customer()
    deposit = h.issue(c.id, [line("Acompte 30 % sur commande PO-9", "1", "300.00")], kind="deposit",
                      purchase_order="PO-9")
    h.payments.record_for_invoice(deposit.id, {"method": "bank_transfer", "received_on": "2026-03-02"}, CLERK_ACTOR)
    final = h.issue(c.id, [line("Lustre", "1", "1000.00")], deposit_invoice_ids=[deposit.id], purchase_order="PO-9",
                    operation_category="goods")
    return [deposit, final]


SCENARIOS = {f.__name__[2:]: f for f in (s_multi_rate, s_zero_and_exempt, s_reverse_charge_and_intra_community,
                                          s_export_and_out_of_scope, s_foreign_currency, s_direct_debit,
                                          s_credit_notes, s_deposit_then_final)}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_issued_documents_pass_the_official_rules(scenario, official_rules):
    h = build()
    for invoice in SCENARIOS[scenario](h):
        xml = h.documents.file(h.ledger.get_invoice(invoice.id), "xml")
        fatal = official_rules.fatal(xml)
        assert fatal == [], f"{invoice.number}:\n" + "\n".join(str(f) for f in fatal)
