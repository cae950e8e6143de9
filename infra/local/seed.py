"""Demo data for ``make run``: a seller, customers, drafts, issued, paid and overdue invoices.

History is created through the real services with a clock set in the past, so
the overdue invoices are genuinely issued weeks ago, with gapless numbers.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

from chalicelib.domain.auth import Actor
from chalicelib.services.customers import CustomerService
from chalicelib.services.invoices import InvoiceService
from chalicelib.services.payments import PaymentService
from chalicelib.services.ports import FixedClock, Ledger
from chalicelib.services.settings import SettingsService

SELLER = {
    "legal_name": "Atelier Lumière SAS", "trade_name": "Atelier Lumière", "legal_form": "SAS",
    "share_capital": "50000.00", "siren": "812345676", "siret": "81234567600017", "rcs": "RCS Lyon 812 345 676",
    "vat_number": "FR19812345676",
    "address": {"line1": "12 rue de la République", "postal_code": "69002", "city": "Lyon", "country": "FR"},
    "email": "factures@demo-seller.example", "phone": "+33 4 72 00 00 00", "iban": "FR7630006000011234567890189",
    "bic": "AGRIFRPP882", "sepa_creditor_id": "FR12ZZZ123456", "late_penalty_rate": None,
    "early_payment_discount": {"rate": "2", "days": 10},
    "default_payment_terms": {"kind": "net", "days": 30}, "timezone": "Europe/Paris",
}

CUSTOMERS = [
    {"name": "Boulangerie Martin SARL", "email": "compta@boulangerie-martin.example", "phone": "+33 6 12 34 56 78",
     "country": "FR", "language": "fr", "siren": "901876540", "vat_number": "FR96901876540",
     "address": {"line1": "3 place Bellecour", "postal_code": "69002", "city": "Lyon", "country": "FR"},
     "payment_terms": {"kind": "net", "days": 30}, "credit_limit": "20000.00"},
    {"name": "Garage du Centre", "email": "gestion@garage-centre.example", "phone": "+33 6 98 76 54 32",
     "country": "FR", "language": "fr", "siren": "443056783", "vat_number": "FR22443056783",
     "address": {"line1": "45 avenue Jean Jaurès", "postal_code": "69007", "city": "Lyon", "country": "FR"},
     "payment_terms": {"kind": "end_of_month", "days": 45}, "credit_limit": "15000.00"},
    {"name": "Nordwind GmbH", "email": "ap@nordwind.example", "country": "DE", "language": "en",
     "vat_number": "DE136695976", "timezone": "Europe/Berlin",
     "address": {"line1": "Hafenstraße 8", "postal_code": "20457", "city": "Hamburg", "country": "DE"},
     "payment_terms": {"kind": "net", "days": 30}, "credit_limit": "50000.00"},
    {"name": "Studio Pixel", "email": "hello@studio-pixel.example", "country": "FR", "language": "fr",
     "siren": "552109878", "vat_number": "FR35552109878",
     "address": {"line1": "8 rue Mercière", "postal_code": "69002", "city": "Lyon", "country": "FR"},
     "payment_terms": {"kind": "net", "days": 60}},
]


# The demo history has overdue invoices on purpose; the credit hold they trigger is overridden
# (audited like any override) so the seed can write the later invoices.
DEMO_OVERRIDE = {"credit_override": {"reason": "demo data loaded by make run"}}


def _line(description: str, quantity: str, price: str, rate: str = "20", **extra: Any) -> dict[str, Any]:
    return {"description": description, "quantity": quantity, "unit_price": price, "vat_rate": rate, **extra}


def seed(ledger: Ledger, today: datetime | None = None) -> dict[str, Any]:
    """Create the demo ledger; returns ids worth printing."""
    now = today or datetime.now(timezone.utc)
    clock = FixedClock(now)
    actor = Actor.system("seed")
    settings = SettingsService(ledger, clock, ttl_s=0)
    settings.put_seller(SELLER, actor)
    customers = CustomerService(ledger, clock, settings)
    from chalicelib import wiring

    # the same issue hooks as the running app (pay links, documents, delivery...), with a clock in the past
    invoices = InvoiceService(ledger, clock, settings, wiring.invoices().hooks)
    payments = PaymentService(ledger, clock, settings)

    clock.set(now - timedelta(days=120))
    ids = [customers.create(c, actor)[0].id for c in CUSTOMERS]
    martin, garage, nordwind, pixel = ids

    plan = [  # (days ago, customer, lines, paid fraction)
        (95, martin, [_line("Lustre sur mesure", "1", "2400.00"), _line("Pose", "6", "65.00")], "all"),
        (75, garage, [_line("Éclairage atelier LED", "12", "189.90"), _line("Câblage", "30.5", "4.20")], None),
        (62, nordwind, [_line("Design consultancy", "3", "850.00", "0", vat_category="AE")], "part"),
        (50, martin, [_line("Appliques murales", "4", "310.00"), _line("Livraison", "1", "45.00", "20")], None),
        (40, pixel, [_line("Spots encastrés", "20", "39.99"), _line("Livre technique", "2", "29.00", "5.5")],
         None),
        (20, garage, [_line("Maintenance trimestrielle", "1", "480.00")], None),
        (8, nordwind, [_line("Prototype luminaire", "1", "3200.00", "0", vat_category="AE")], None),
        (3, pixel, [_line("Étude d'éclairage", "2.5", "95.00")], None),
    ]
    issued = []
    for days_ago, customer_id, lines, paid in plan:
        clock.set(datetime.combine((now - timedelta(days=days_ago)).date(), time(9, 30), tzinfo=timezone.utc))
        draft, _ = invoices.create_draft({"customer_id": customer_id, "lines": lines, **DEMO_OVERRIDE}, actor)
        invoice = invoices.issue(draft.id, actor)
        issued.append(invoice)
        if paid:
            clock.advance(days=25)
            amount = invoice.amount_due if paid == "all" else invoice.money(invoice.amount_due.amount // 2)
            payments.record_for_invoice(invoice.id, {"amount": str(amount), "method": "bank_transfer",
                                                     "received_on": clock.now().date().isoformat(),
                                                     "reference": f"VIR {invoice.number}"}, actor)
    clock.set(now)
    drafts = [invoices.create_draft({"customer_id": martin, "lines": [
        _line("Suspension laiton", "2", "520.00"), _line("Ampoules filament", "10", "8.50")], **DEMO_OVERRIDE},
        actor)[0].id,
        invoices.create_draft({"customer_id": pixel, "lines": [_line("Conseil", "1.5", "120.00")], **DEMO_OVERRIDE},
                              actor)[0].id]
    return {"customers": ids, "issued": [i.id for i in issued], "drafts": drafts}
