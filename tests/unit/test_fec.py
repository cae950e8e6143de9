import csv
import io
import re
from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.fec import (ALLOWANCE, CREDIT_NOTE, CSV_COLUMNS, DEPOSIT, DEPOSIT_INVOICE, FEC_COLUMNS, GOODS,
                                   INVOICE, Adjustment, AccountPlan, CustomerAccount, PaymentAllocation,
                                   ReceivedPayment, SalesDocument, SalesLine, StripePayout, UnbalancedEntry,
                                   VatAmount, build_entries, check_balanced, fec_filename, parse_fec, to_csv, to_fec,
                                   vat_share)
from chalicelib.domain.invoice import new_draft
from chalicelib.domain.money import Money
from chalicelib.domain.terms import PaymentTerms

MARTIN = CustomerAccount("C00001", "Boulangerie Martin SARL")
DUPONT = CustomerAccount("C00002", "Transports Dupont SAS")


def EUR(value: str) -> Money:
    return Money.parse(value, "EUR")


def sale(number, customer, net, vat, *, kind=INVOICE, day=date(2026, 3, 2), lines=None, settles=None, **kw):
    lines = lines or (SalesLine(EUR(net)),)
    vat_lines = (VatAmount(Decimal("20"), EUR(vat)),) if vat != "0.00" else ()
    total = sum((ln.net if ln.kind != ALLOWANCE else -ln.net for ln in lines), Money.zero("EUR")) + EUR(vat)
    return SalesDocument(id="inv_" + number, number=number, kind=kind, issue_date=day, customer=customer,
                         lines=tuple(lines), vat=vat_lines, total=total, settles=settles, **kw)


def a_month():
    """March 2026 of a small seller: invoices, a credit note, payments, a discount, a write-off, a payout."""
    f1 = sale("F2026-000001", MARTIN, "1200.00", "240.00")
    f2 = sale("F2026-000002", MARTIN, "250.00", "50.00", day=date(2026, 3, 3))
    f3 = sale("F2026-000003", DUPONT, "1000.00", "200.00", day=date(2026, 3, 4))
    f4 = sale("F2026-000004", DUPONT, "500.00", "100.00", day=date(2026, 3, 5))
    av1 = sale("AV2026-000001", MARTIN, "50.00", "10.00", kind=CREDIT_NOTE, day=date(2026, 3, 6),
               settles="inv_F2026-000002")
    sales = [f1, f2, f3, f4, av1]
    payments = [
        ReceivedPayment("pay_1", date(2026, 3, 12), MARTIN, EUR("1450.00"),
                        (PaymentAllocation("inv_F2026-000001", "F2026-000001", EUR("1440.00")),),
                        reference="2026031200001"),
        ReceivedPayment("pay_2", date(2026, 3, 13), MARTIN, EUR("240.00"),
                        (PaymentAllocation("inv_F2026-000002", "F2026-000002", EUR("240.00")),),
                        reference="2026031300002"),
        ReceivedPayment("pay_3", date(2026, 3, 10), DUPONT, EUR("1176.00"),
                        (PaymentAllocation("inv_F2026-000003", "F2026-000003", EUR("1176.00")),), via_stripe=True),
    ]
    discounts = [Adjustment("disc_1", date(2026, 3, 10), DUPONT, "inv_F2026-000003", "F2026-000003", EUR("24.00"),
                            (VatAmount(Decimal("20"), EUR("4.00")),))]
    write_offs = [Adjustment("wo_1", date(2026, 3, 31), DUPONT, "inv_F2026-000004", "F2026-000004", EUR("600.00"),
                             (VatAmount(Decimal("20"), EUR("100.00")),))]
    payouts = [StripePayout("po_1OxYz2AbCdEfGhIj", date(2026, 3, 14), EUR("1159.18"), EUR("16.82"))]
    return build_entries(sales=sales, payments=payments, discounts=discounts, write_offs=write_offs, payouts=payouts)


def lines_of(entries, **where):
    return [(e, ln) for e in entries for ln in e.lines
            if all(getattr(ln, k, None) == v or getattr(e, k, None) == v for k, v in where.items())]


def test_sales_invoice_entry_411_debit_706_credit_vat_credit():
    entries = a_month()
    (f1,) = [e for e in entries if e.piece_ref == "F2026-000001" and e.journal.code == "VE"]
    assert f1.number == "VE000001" and f1.date == date(2026, 3, 2)
    assert [(ln.account, str(ln.debit), str(ln.credit), ln.aux_code) for ln in f1.lines] == [
        ("411", "1440.00", "0.00", "C00001"), ("706", "0.00", "1200.00", None), ("44571", "0.00", "240.00", None)]


def test_credit_note_is_the_reverse_and_settles_its_invoice():
    entries = a_month()
    (av,) = [e for e in entries if e.piece_ref == "AV2026-000001"]
    assert [(ln.account, str(ln.debit), str(ln.credit)) for ln in av.lines] == [
        ("411", "0.00", "60.00"), ("706", "50.00", "0.00"), ("44571", "10.00", "0.00")]
    # F2026-000002 (300.00) = credit note 60.00 + payment 240.00: all three 411 lines lettered together
    f2 = [ln for e in entries for ln in e.lines if ln.letter_key == "inv_F2026-000002"]
    assert len(f2) == 3 and len({ln.lettering for ln in f2}) == 1 and f2[0].lettering
    assert {ln.lettering_date for ln in f2} == {date(2026, 3, 13)}


def test_bank_journal_payment_with_unapplied_cash_and_lettering():
    entries = a_month()
    (p1,) = [e for e in entries if e.piece_ref == "2026031200001"]
    assert p1.journal.code == "BQ"
    assert [(ln.account, str(ln.debit), str(ln.credit), ln.letter_key) for ln in p1.lines] == [
        ("512", "1450.00", "0.00", None), ("411", "0.00", "1440.00", "inv_F2026-000001"),
        ("411", "0.00", "10.00", None)]
    (f1,) = [e for e in entries if e.piece_ref == "F2026-000001"]
    assert f1.lines[0].lettering == p1.lines[1].lettering is not None
    assert p1.lines[2].lettering is None  # unapplied cash stays open on the customer's account


def test_discount_write_off_and_stripe_entries():
    entries = a_month()
    (disc,) = [e for e in entries if e.label.startswith("Escompte")]
    assert disc.journal.code == "OD"
    assert [(ln.account, str(ln.debit), str(ln.credit)) for ln in disc.lines] == [
        ("665", "20.00", "0.00"), ("44571", "4.00", "0.00"), ("411", "0.00", "24.00")]
    (wo,) = [e for e in entries if e.label.startswith("Perte")]
    assert [(ln.account, str(ln.debit), str(ln.credit)) for ln in wo.lines] == [
        ("654", "500.00", "0.00"), ("44571", "100.00", "0.00"), ("411", "0.00", "600.00")]
    (po,) = [e for e in entries if e.piece_ref.startswith("po_")]
    assert [(ln.account, str(ln.debit), str(ln.credit)) for ln in po.lines] == [
        ("512", "1159.18", "0.00"), ("627", "16.82", "0.00"), ("5122", "0.00", "1176.00")]
    (stripe_payment,) = [e for e in entries if e.piece_ref == "pay_3"]
    assert stripe_payment.lines[0].account == "5122"
    # F2026-000003: 1200 = 1176 paid through Stripe + 24 discount -> lettered; F2026-000004 written off -> lettered
    for key in ("inv_F2026-000003", "inv_F2026-000004"):
        group = [ln for e in entries for ln in e.lines if ln.letter_key == key]
        assert len({ln.lettering for ln in group}) == 1 and group[0].lettering is not None


def test_entries_are_numbered_per_journal_in_date_order_and_every_journal_balances():
    entries = a_month()
    assert [e.date for e in entries] == sorted(e.date for e in entries)
    for code in ("VE", "BQ", "OD"):
        numbers = [e.number for e in entries if e.journal.code == code]
        assert numbers == [f"{code}{i:06d}" for i in range(1, len(numbers) + 1)]
    totals = check_balanced(entries)
    assert all(d == c for d, c in totals.values())
    assert totals["VE"][0] == EUR("3540.00") + EUR("60.00")  # invoices incl. VAT + the credit note's debits


# -- the FEC file -------------------------------------------------------------------------------------------

AMOUNT = re.compile(r"^\d+,\d{2}$")


def test_fec_file_layout_18_columns_tab_separated_dates_and_comma_amounts():
    entries = a_month()
    text = to_fec(entries)
    raw_lines = text.split("\r\n")
    assert raw_lines[0] == "\t".join(FEC_COLUMNS) and raw_lines[-1] == ""
    assert all(len(line.split("\t")) == 18 for line in raw_lines[:-1])
    rows = parse_fec(text)
    assert len(rows) == sum(len(e.lines) for e in entries)
    for row in rows:
        for col in ("EcritureDate", "PieceDate", "ValidDate"):
            assert re.fullmatch(r"2026\d{4}", row[col])
        assert AMOUNT.match(row["Debit"]) and AMOUNT.match(row["Credit"])
        assert (row["Debit"] == "0,00") != (row["Credit"] == "0,00")
        assert row["CompteLib"] and row["JournalLib"] and row["EcritureLib"]
        assert bool(row["CompAuxNum"]) == row["CompteNum"].startswith("411")
        assert row["DateLet"] == "" or re.fullmatch(r"\d{8}", row["DateLet"])
        assert row["Montantdevise"] == row["Idevise"] == ""
    first = rows[0]
    assert (first["JournalCode"], first["EcritureNum"], first["EcritureDate"], first["CompteNum"], first["Debit"],
            first["CompAuxLib"]) == ("VE", "VE000001", "20260302", "411", "1440,00", "Boulangerie Martin SARL")


def fec_balances(text):
    per_entry, per_journal = defaultdict(int), defaultdict(int)
    for row in parse_fec(text):
        delta = int(row["Debit"].replace(",", "")) - int(row["Credit"].replace(",", ""))
        per_entry[row["EcritureNum"]] += delta
        per_journal[row["JournalCode"]] += delta
    return per_entry, per_journal


def test_fec_file_is_balanced_per_entry_and_per_journal_when_read_back():
    per_entry, per_journal = fec_balances(to_fec(a_month()))
    assert set(per_journal) == {"VE", "BQ", "OD"}
    assert all(v == 0 for v in per_entry.values()) and all(v == 0 for v in per_journal.values())


def test_lettering_pairs_invoice_and_payment_lines_in_the_fec():
    rows = parse_fec(to_fec(a_month()))
    by_code = defaultdict(list)
    for row in rows:
        if row["EcritureLet"]:
            assert row["CompteNum"] == "411" and row["DateLet"]
            by_code[row["EcritureLet"]].append(row)
    assert len(by_code) == 4  # F1, F2, F3, F4 fully settled within the month
    for group in by_code.values():
        debit = sum(int(r["Debit"].replace(",", "")) for r in group)
        credit = sum(int(r["Credit"].replace(",", "")) for r in group)
        assert debit == credit > 0 and len({r["CompAuxNum"] for r in group}) == 1


def test_plain_csv_has_the_same_lines():
    entries = a_month()
    rows = list(csv.reader(io.StringIO(to_csv(entries))))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) - 1 == len(parse_fec(to_fec(entries)))
    assert rows[1][:5] == ["VE", "Journal des ventes", "VE000001", "2026-03-02", "411"] and rows[1][11] == "1440.00"


def test_fec_file_name():
    assert fec_filename("812345676", date(2026, 12, 31)) == "812345676FEC20261231.txt"
    with pytest.raises(ValidationError):
        fec_filename("8123", date(2026, 12, 31))


# -- from domain invoices, options, refusals -------------------------------------------------------------------

def issued_invoice(**extra):
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)
    draft = new_draft("inv_9", {"customer_id": "cus_1", "lines": [
        {"description": "Conseil", "quantity": "3", "unit_price": "33.3333", "vat_rate": "20"},
        {"description": "Livre", "quantity": "2", "unit_price": "10.10", "vat_rate": "5.5", "unit_code": "H87"}],
        "allowances_charges": [
            {"type": "allowance", "amount": "10.00", "reason": "Remise", "vat_rate": "20"},
            {"type": "charge", "amount": "5.00", "reason": "Port", "vat_rate": "20"}], **extra},
        customer_currency="EUR", now=now)
    return draft.issue(number="F2026-000009", series="F#2026", issue_date=date(2026, 3, 1),
                       terms=PaymentTerms("net", 30), eom_mode="days_then_end_of_month", jurisdiction="FR",
                       seller={}, buyer={}, now=now)


def test_sales_document_from_a_domain_invoice_books_goods_services_allowances_charges_and_each_vat_rate():
    invoice = issued_invoice()
    doc = SalesDocument.from_invoice(invoice, MARTIN, line_kind=lambda ln: GOODS if ln.unit_code == "H87" else "services")
    (entry,) = build_entries(sales=[doc])
    got = {(ln.account, str(ln.debit), str(ln.credit)) for ln in entry.lines}
    t = invoice.totals
    assert ("411", str(t.total), "0.00") in got
    assert {("706", "0.00", "100.00"), ("707", "0.00", "20.20"), ("708", "0.00", "5.00"),
            ("709", "10.00", "0.00")} <= got
    assert {ln.account for ln in entry.lines if ln.account.startswith("4457")} == {"44571"}
    assert len([ln for ln in entry.lines if ln.account == "44571"]) == 2  # 20 % and 5.5 %


def test_vat_accounts_per_rate_and_vat_on_receipts():
    plan = AccountPlan(vat_by_rate=(("20", "445711"), ("5.5", "445713")))
    doc = sale("F2026-000010", MARTIN, "1000.00", "200.00", vat_on_receipts=True)
    share = vat_share(doc, EUR("600.00"))
    assert share == (VatAmount(Decimal("20"), EUR("100.00")),)
    pay = ReceivedPayment("pay_9", date(2026, 3, 20), MARTIN, EUR("600.00"),
                          (PaymentAllocation(doc.id, doc.number, EUR("600.00"), share),))
    sale_entry, pay_entry = build_entries(sales=[doc], payments=[pay], plan=plan)
    assert ("44574", "200.00") in {(ln.account, str(ln.credit)) for ln in sale_entry.lines}
    assert {(ln.account, str(ln.debit), str(ln.credit)) for ln in pay_entry.lines} >= {
        ("44574", "100.00", "0.00"), ("445711", "0.00", "100.00")}
    assert plan.label("445711") == "TVA collectée 20 %"


def test_deposit_invoice_credits_customer_advances():
    doc = sale("F2026-000011", MARTIN, "500.00", "100.00", kind=DEPOSIT_INVOICE,
               lines=(SalesLine(EUR("500.00"), kind=DEPOSIT),))
    (entry,) = build_entries(sales=[doc])
    assert [(ln.account, str(ln.credit)) for ln in entry.lines][1] == ("4191", "500.00")


def test_a_document_in_another_currency_is_converted_with_its_rate_and_shows_the_original_amount():
    usd = SalesDocument(id="inv_usd", number="F2026-000012", kind=INVOICE, issue_date=date(2026, 3, 2),
                        customer=DUPONT, lines=(SalesLine(Money(33333, "USD")),),
                        vat=(VatAmount(Decimal("20"), Money(6667, "USD")),), total=Money(40000, "USD"),
                        exchange_rate=Decimal("0.9137"))
    (entry,) = build_entries(sales=[usd])
    assert entry.total_debit == entry.total_credit and entry.total_debit.currency == "EUR"
    rows = parse_fec(to_fec([entry]))
    assert [(r["Montantdevise"], r["Idevise"]) for r in rows] == [("400,00", "USD"), ("333,33", "USD"),
                                                                   ("66,67", "USD")]
    with pytest.raises(ValidationError, match="exchange rate"):
        build_entries(sales=[replace(usd, exchange_rate=None)])


def test_inconsistent_inputs_are_refused():
    bad = SalesDocument(id="x", number="F2026-000013", kind=INVOICE, issue_date=date(2026, 3, 2), customer=MARTIN,
                        lines=(SalesLine(EUR("100.00")),), vat=(VatAmount(Decimal("20"), EUR("20.00")),),
                        total=EUR("121.00"))
    with pytest.raises(UnbalancedEntry, match="do not add up"):
        build_entries(sales=[bad])
    over = ReceivedPayment("p", date(2026, 3, 2), MARTIN, EUR("10.00"),
                           (PaymentAllocation("i", "F1", EUR("11.00")),))
    with pytest.raises(UnbalancedEntry, match="exceed"):
        build_entries(payments=[over])


# -- property: whatever the inputs, every entry and journal balances and lettering is consistent ------------------

@st.composite
def months(draw):
    customers = [CustomerAccount(f"C{i:05d}", f"Client {i}") for i in range(draw(st.integers(1, 4)))]
    sales, payments, adjustments = [], [], []
    for n in range(draw(st.integers(1, 8))):
        customer = draw(st.sampled_from(customers))
        rates = draw(st.lists(st.sampled_from(["20", "10", "5.5", "2.1"]), min_size=1, max_size=3, unique=True))
        lines, vat = [], []
        for rate in rates:
            net = draw(st.integers(1, 1_000_000))
            lines.append(SalesLine(Money(net, "EUR"), kind=draw(st.sampled_from(["services", "goods"]))))
            vat.append(VatAmount(Decimal(rate), Money.of_decimal(Decimal(net) / 100 * Decimal(rate) / 100, "EUR")))
        total = sum((ln.net for ln in lines), Money.zero("EUR")) + sum((v.amount for v in vat), Money.zero("EUR"))
        doc = SalesDocument(f"inv_{n}", f"F2026-{n:06d}", INVOICE, date(2026, 3, draw(st.integers(1, 28))),
                            customer, tuple(lines), tuple(vat), total)
        sales.append(doc)
        paid = draw(st.sampled_from(["full", "part", "over", "none", "discount"]))
        day = date(2026, 3, draw(st.integers(1, 31)))
        if paid in ("full", "part", "over"):
            alloc = total if paid != "part" else Money(draw(st.integers(1, total.amount)), "EUR")
            amount = alloc + Money(draw(st.integers(1, 5000)), "EUR") if paid == "over" else alloc
            payments.append(ReceivedPayment(f"pay_{n}", day, customer, amount,
                                            (PaymentAllocation(doc.id, doc.number, alloc),)))
        elif paid == "discount" and total.amount >= 100:
            disc = Money(max(1, total.amount // 50), "EUR")
            payments.append(ReceivedPayment(f"pay_{n}", day, customer, total - disc,
                                            (PaymentAllocation(doc.id, doc.number, total - disc),)))
            adjustments.append(Adjustment(f"d_{n}", day, customer, doc.id, doc.number, disc, vat_share(doc, disc)))
    return sales, payments, adjustments


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(months())
def test_property_every_entry_and_journal_balances_and_lettered_groups_net_to_zero(month):
    sales, payments, adjustments = month
    entries = build_entries(sales=sales, payments=payments, discounts=adjustments)
    per_entry, per_journal = fec_balances(to_fec(entries))
    assert all(v == 0 for v in per_entry.values()) and all(v == 0 for v in per_journal.values())
    groups = defaultdict(int)
    for e in entries:
        for ln in e.lines:
            if ln.lettering:
                groups[ln.lettering] += ln.debit.amount - ln.credit.amount
    assert all(v == 0 for v in groups.values())
    # an invoice is lettered exactly when what settles it in the month equals its total
    settled = defaultdict(int)
    for p in payments:
        for a in p.allocations:
            settled[a.invoice_id] += a.amount.amount
    for adj in adjustments:
        settled[adj.invoice_id] += adj.amount.amount
    for doc in sales:
        (line,) = [ln for e in entries for ln in e.lines if ln.letter_key == doc.id and ln.debit.is_positive]
        assert (line.lettering is not None) == (settled[doc.id] == doc.total.amount)
