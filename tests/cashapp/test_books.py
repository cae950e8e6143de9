"""The accounting export of a period built from the ledger: every journal balanced, each kind of movement booked."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from chalicelib.domain import creditor_reference
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.fec import FEC_COLUMNS, parse_fec
from chalicelib.domain.payment import Payment
from chalicelib.services.books import parse_rates
from chalicelib.services.ports import UnitOfWork
from tests.cashapp.test_bank_service import credit, statement
from tests.cashapp.test_imports import GOOD, csv
from tests.cashapp.world import CLERK_ACTOR, EUR, World

MARCH = (date(2026, 3, 1), date(2026, 3, 31))


def amount(text: str) -> Decimal:
    return Decimal(text.replace(",", ".")) if text else Decimal(0)


def sides(r) -> tuple[str, str, str]:
    """(account, debit, credit) with "-" for the empty side."""
    return r["CompteNum"], r["Debit"] if amount(r["Debit"]) else "-", r["Credit"] if amount(r["Credit"]) else "-"


def journals(rows) -> dict[str, tuple[Decimal, Decimal]]:
    out: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in rows:
        out[r["JournalCode"]][0] += amount(r["Debit"])
        out[r["JournalCode"]][1] += amount(r["Credit"])
    return {k: (d, c) for k, (d, c) in out.items()}


@pytest.fixture
def month() -> tuple[World, dict]:
    """March 2026: sales, a credit note, transfers matched from the bank, a discount, a write-off, a Stripe
    payment and its payout, unidentified cash, an imported invoice paid, an invoice of February paid."""
    w = World(now=datetime(2026, 4, 2, 9, tzinfo=timezone.utc))
    martin, dupont, gare = w.customer("Boulangerie Martin SARL", external_ref="C001"), \
        w.customer("Transports Dupont SAS"), w.customer("Cafe de la Gare")
    february = w.issued(martin.id, "300.00", on=date(2026, 2, 20))
    # a draft written in November, issued in March: older than the export's creation window
    w.clock.set(datetime(2025, 11, 3, 9, tzinfo=timezone.utc))
    old_draft, _ = w.invoices.create_draft({"customer_id": gare.id, "lines": [
        {"description": "Ancien devis", "quantity": "1", "unit_price": "50.00", "vat_rate": "20"}]}, CLERK_ACTOR)
    w.clock.set(datetime(2026, 3, 2, 9, tzinfo=timezone.utc))
    first = w.invoices.issue(old_draft.id, CLERK_ACTOR)            # F2026-000002, the period's first number
    a = w.issued(martin.id, "1000.00", on=date(2026, 3, 3))        # paid by RF reference
    b = w.issued(dupont.id, "1000.00", on=date(2026, 3, 5))        # paid with the early-payment discount
    c = w.issued(gare.id, "200.00", on=date(2026, 3, 6), vat="10")  # credited in part, written off in part
    w.clock.set(datetime(2026, 3, 20, 9, tzinfo=timezone.utc))
    note = w.credit_note(c, "50.00")
    w.clock.set(datetime(2026, 4, 2, 9, tzinfo=timezone.utc))
    current = w.invoice(c.id)
    uow = UnitOfWork(actor=CLERK_ACTOR, now=w.clock.now())
    uow.save_invoice(current, replace(current, amount_written_off=current.amount_due.amount // 2),
                     on=date(2026, 3, 25), action="invoice.write_off")
    w.ledger.commit(uow)
    imported = w.imports.run([csv(GOOD[0])], CLERK_ACTOR).rows[0]
    # a card payment received on the Stripe balance
    uow = UnitOfWork(actor=CLERK_ACTOR, now=w.clock.now())
    uow.create(Payment(id="pay_stripe1", customer_id=martin.id, amount=EUR("100.00"), method="card",
                       received_on=date(2026, 3, 9), created_at=w.clock.now(), updated_at=w.clock.now(),
                       source="stripe", provider_ref="pi_1"))
    w.ledger.commit(uow)
    w.gateway.add("po_1MarchPayout0001", ("charge", 10000, 175))
    rf = creditor_reference.for_invoice(a.number, a.id)
    w.import_statement(statement(
        credit("1200.00", debtor="BOULANGERIE MARTIN", strd_ref=rf),
        credit("1176.00", debtor="TRANSPORTS DUPONT SAS", ustrd="VIR"),
        credit("360.00", debtor="MARTIN", ustrd=f"{february.number}"),
        credit("1200.00", debtor="MARTIN", ustrd="FA-2025-0101"),
        credit("98.25", debtor="STRIPE TECHNOLOGY EUROPE", ustrd="STRIPE PAYOUT po_1MarchPayout0001"),
        credit("42.00", debtor="INCONNU", ustrd="?"), day=date(2026, 3, 12)))
    return w, {"first": first, "a": a, "b": b, "c": c, "note": note, "february": february,
               "imported": imported.invoice_id}


def test_the_fec_of_a_month_has_18_columns_and_every_journal_balances(month):
    w, docs = month
    export = w.books.export(*MARCH)
    text = export.fec()
    assert text.splitlines()[0].split("\t") == list(FEC_COLUMNS)
    rows = parse_fec(text)
    assert all(len(r) == 18 for r in rows)
    totals = journals(rows)
    assert set(totals) == {"VE", "BQ", "OD"}
    assert all(d == c and d > 0 for d, c in totals.values())
    assert export.filename == "812345676FEC20260331.txt"
    assert len(export.csv().splitlines()) == len(rows) + 1


def test_sales_journal_holds_the_periods_documents_only(month):
    w, docs = month
    rows = parse_fec(w.books.export(*MARCH).fec())
    pieces = {r["PieceRef"] for r in rows if r["JournalCode"] == "VE"}
    assert pieces == {docs["first"].number, docs["a"].number, docs["b"].number, docs["c"].number,
                      docs["note"].number}
    assert docs["february"].number not in pieces and "FA-2025-0101" not in pieces  # another period, imported
    # the credit note is the mirror of a sale: 411 credited
    note_411 = [r for r in rows if r["PieceRef"] == docs["note"].number and r["CompteNum"] == "411"]
    assert amount(note_411[0]["Credit"]) == Decimal("60.00")


def test_bank_journal_books_payments_their_vat_on_receipt_and_the_stripe_payout(month):
    w, docs = month
    rows = parse_fec(w.books.export(*MARCH).fec())
    bq = [r for r in rows if r["JournalCode"] == "BQ"]
    bank_debits = sum(amount(r["Debit"]) for r in bq if r["CompteNum"] == "512")
    assert bank_debits == Decimal("1200.00") + Decimal("1176.00") + Decimal("360.00") + Decimal("1200.00") \
        + Decimal("42.00") + Decimal("98.25")
    payout = [r for r in bq if r["PieceRef"] == "po_1MarchPayout0001"]
    assert {sides(r) for r in payout} == {
        ("512", "98,25", "-"), ("627", "1,75", "-"), ("5122", "-", "100,00")}
    stripe = [r for r in bq if r["PieceRef"] == "pay_stripe1"]
    assert ("5122", "100,00", "-") in {sides(r) for r in stripe}
    # VAT on receipts (services, no option for VAT on debits): 44574 -> 44571 when paid
    a_lines = [r for r in bq if docs["a"].number in r["EcritureLib"] and r["CompteNum"].startswith("4457")]
    assert {sides(r) for r in a_lines} == {("44574", "200,00", "-"), ("44571", "-", "200,00")}
    unidentified = [r for r in bq if r["CompAuxNum"] == "ATTENTE"]
    assert amount(unidentified[0]["Credit"]) == Decimal("42.00")
    martin = [r for r in bq if r["CompAuxNum"] == "C001"]
    assert martin  # the customer's own reference is its auxiliary account


def test_discount_and_write_off_are_in_the_misc_journal_and_lettering_pairs_settled_invoices(month):
    w, docs = month
    rows = parse_fec(w.books.export(*MARCH).fec())
    od = [r for r in rows if r["JournalCode"] == "OD"]
    discount = [r for r in od if r["PieceRef"] == docs["b"].number]
    assert {sides(r) for r in discount} == {
        ("665", "20,00", "-"), ("44571", "4,00", "-"), ("411", "-", "24,00")}
    assert any(r["CompteNum"] == "654" for r in od if r["PieceRef"] == docs["c"].number)
    lettered = {r["EcritureLet"] for r in rows if r["CompteNum"] == "411" and docs["a"].number in
                (r["PieceRef"] + r["EcritureLib"])}
    assert len(lettered) == 1 and lettered != {""}


def test_reads_are_bounded_and_reported(month):
    w, docs = month
    export = w.books.export(*MARCH)
    assert export.reads["payments"] == 6  # five bank credits (a payout is not customer money) + one card payment
    # the November draft issued in March is outside the creation window: found by number continuity (F2026-000002,
    # then F2026-000001, issued in February, ends the walk)
    # F2026: 000002 (found) and 000001 below, 000006 above; AV2026: 000002 above
    assert export.reads["invoices_by_number"] == 4
    assert docs["first"].number in {e.piece_ref for e in export.entries}
    assert export.reads["invoices_created_in_window"] < len(w.ledger._all("invoice"))


def test_a_foreign_currency_needs_its_rate_and_periods_are_checked():
    w = World()
    c = w.customer(currency="USD")
    w.issued(c.id, "100.00", on=date(2026, 3, 3), currency="USD")
    with pytest.raises(ValidationError) as missing:
        w.books.export(*MARCH)
    assert "exchange rate" in missing.value.message
    export = w.books.export(*MARCH, rates=parse_rates("USD:0.9"))
    ve = [line for e in export.entries for line in e.lines if line.account == "411"]
    assert ve[0].debit == EUR("108.00") and ve[0].currency_amount.currency == "USD"
    for bad in ("USD", "USD:x", "EURO:1", "USD:-1"):
        with pytest.raises(ValidationError):
            parse_rates(bad)
    with pytest.raises(ValidationError):
        w.books.export(date(2026, 3, 31), date(2026, 3, 1))


def test_a_final_invoice_deducting_a_paid_deposit_debits_the_advances_and_the_deposits_vat():
    w = World(now=datetime(2026, 4, 2, 9, tzinfo=timezone.utc))
    c = w.customer()
    deposit = w.issued(c.id, "300.00", on=date(2026, 3, 2), kind="deposit")  # 360.00: 4191 credited 300
    w.payments.record({"customer_id": c.id, "amount": "360.00", "method": "bank_transfer",
                       "received_on": "2026-03-03", "allocations": [{"invoice_id": deposit.id, "amount": "360.00"}]},
                      CLERK_ACTOR)
    final = w.issued(c.id, "1000.00", on=date(2026, 3, 20))                  # 1200.00, of which 360.00 prepaid
    uow = UnitOfWork(actor=CLERK_ACTOR, now=w.clock.now())
    deducted = replace(final.with_prepaid(EUR("360.00"), w.clock.now()), deposit_invoice_ids=(deposit.id,))
    uow.save_invoice(final, deducted, on=date(2026, 3, 20))
    w.ledger.commit(uow)
    rows = parse_fec(w.books.export(*MARCH).fec())
    lines = {sides(r) for r in rows if r["PieceRef"] == final.number}
    assert lines == {("411", "840,00", "-"), ("4191", "300,00", "-"), ("706", "-", "1000,00"),
                     ("44574", "-", "140,00")}
    assert all(d == c for d, c in journals(rows).values())


def test_a_write_off_with_its_credit_note_is_booked_once_by_the_credit_note(month):
    w, docs = month
    uow = UnitOfWork(actor=CLERK_ACTOR, now=w.clock.now())
    uow.put_ref("write_off", docs["c"].id, docs["note"].id)  # as dunning's write-off records it
    w.ledger.commit(uow)
    rows = parse_fec(w.books.export(*MARCH).fec())
    assert not [r for r in rows if r["CompteNum"] == "654"]
