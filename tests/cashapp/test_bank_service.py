"""Bank statements through the services on the in-memory ledger: every matching rule, idempotency,
chunks, conflicts, returns, payouts, the review list and the clerk's allocation."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from chalicelib.domain import creditor_reference
from chalicelib.domain.bank_transaction import transaction_id
from chalicelib.domain.errors import InvalidTransition, ValidationError
from chalicelib.domain.invoice import OPEN, PAID
from chalicelib.services.ports import UnitOfWork
from tests.cashapp.world import CLERK_ACTOR, EUR, World
from tests.unit.bank_samples import (CUSTOMER2_IBAN, CUSTOMER_IBAN, OTHER_IBAN, camt053, camt054, ntry, tx)

DAY = date(2026, 3, 12)


@pytest.fixture
def world() -> World:
    return World()


def statement(*entries, day: date = DAY, message_id: str | None = None, **kw):
    return camt053(list(entries), day=day, message_id=message_id or f"STMT-{day.isoformat()}", **kw)


def credit(amount: str, *, booking: date = DAY, **detail):
    return ntry(amount, booking=booking, details=[tx(**detail)])


def by_status(report):
    out: dict[str, list] = {}
    for e in report.entries:
        out.setdefault(e.status, []).append(e)
    return out


# -- the rules, in order ------------------------------------------------------------------------

def test_rf_reference_in_the_structured_reference_pays_the_invoice(world):
    # Given an invoice whose RF reference the customer copied into the transfer
    c = world.customer()
    inv = world.issued(c.id, "1200.00", on=date(2026, 3, 2))
    rf = creditor_reference.for_invoice(inv.number, inv.id)
    # When the statement arrives
    report = world.import_statement(statement(credit("1440.00", debtor="BOULANGERIE MARTIN", strd_ref=rf)))
    # Then the invoice is paid by a bank payment, rule and confidence recorded
    [entry] = report.entries
    assert (entry.status, entry.rule, entry.confidence) == ("matched", "rf_reference", 0.99)
    assert world.invoice(inv.id).status == PAID
    payment = world.ledger.get_payment(entry.payment_id)
    assert (payment.source, payment.method, payment.received_on, payment.customer_id) == ("bank", "bank_transfer",
                                                                                          DAY, c.id)
    txn = world.bank.get(entry.id)
    assert txn.rule == "rf_reference" and txn.confidence == Decimal("0.99") and txn.payment_id == payment.id


def test_invoice_numbers_in_the_remittance_pay_several_invoices_in_due_date_order(world):
    c = world.customer()
    a = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    b = world.issued(c.id, "200.00", on=date(2026, 3, 2))
    # one transfer for both, typed loosely, and short of 20.00
    report = world.import_statement(statement(credit(
        "340.00", debtor="MARTIN", ustrd=f"reglement fact {b.number.lower().replace('-', ' ')} et {a.number}")))
    [entry] = report.entries
    assert entry.rule == "invoice_number" and entry.status == "matched"
    assert [x["invoice_number"] for x in entry.allocations] == [a.number, b.number]
    assert world.invoice(a.id).status == PAID
    assert world.invoice(b.id).amount_due == EUR("20.00")  # a partial payment is normal


def test_customer_by_known_iban_and_oldest_invoice_of_exactly_that_amount(world):
    c = world.customer()
    older = world.issued(c.id, "500.00", on=date(2026, 2, 1))
    newer = world.issued(c.id, "500.00", on=date(2026, 3, 1))
    world.ledger.refs[("iban", CUSTOMER_IBAN)] = _ref("iban", CUSTOMER_IBAN, c.id)
    report = world.import_statement(statement(credit("600.00", debtor="SOMEONE ELSE", debtor_iban=CUSTOMER_IBAN,
                                                     ustrd="PAIEMENT")))
    [entry] = report.entries
    assert (entry.rule, entry.customer_id) == ("customer_exact_amount", c.id)
    assert world.invoice(older.id).status == PAID and world.invoice(newer.id).status == OPEN


def test_customer_by_name_then_the_smallest_combination_of_open_invoices(world):
    c = world.customer("Transports Dupont SAS")
    world.customer("Transports Durand SARL")
    a = world.issued(c.id, "100.00", on=date(2026, 2, 1))
    b = world.issued(c.id, "250.00", on=date(2026, 2, 2))
    d = world.issued(c.id, "400.00", on=date(2026, 2, 3))
    report = world.import_statement(statement(credit("600.00", debtor="TRANSPORTS DUPONT", ustrd="VIREMENT")))
    [entry] = report.entries
    assert entry.rule == "customer_combination" and entry.customer_id == c.id
    assert {x["invoice_id"] for x in entry.allocations} == {a.id, d.id}  # 120 + 480, two invoices
    assert world.invoice(b.id).status == OPEN


def test_early_payment_discounted_amount_inside_the_window_settles_the_invoice(world):
    # The seller offers 2 % within 10 days (SELLER_INPUT)
    c = world.customer()
    inv = world.issued(c.id, "1000.00", on=date(2026, 3, 5))  # 1200.00 with VAT
    report = world.import_statement(statement(credit("1176.00", debtor="BOULANGERIE MARTIN SARL", ustrd="VIR")))
    [entry] = report.entries
    assert entry.rule == "early_payment_discount"
    after = world.invoice(inv.id)
    assert after.status == PAID and after.amount_discounted == 2400
    assert world.bank.get(entry.id).discounts[0]["amount"] == "24.00"


def test_a_common_first_word_is_narrowed_to_find_the_debtor_by_name(world):
    # 60 bakeries: the first word alone fills a page of the name index
    bakeries = [world.customer(f"Boulangerie {n:03d} SARL") for n in range(60)]
    target = bakeries[57]
    inv = world.issued(target.id, "80.00", on=date(2026, 3, 1))
    [entry] = world.import_statement(statement(credit("96.00", debtor="BOULANGERIE 057", ustrd="VIR"))).entries
    assert (entry.rule, entry.customer_id) == ("customer_exact_amount", target.id)
    assert world.invoice(inv.id).status == PAID


def test_an_overpayment_leaves_the_excess_as_the_customers_credit(world):
    c = world.customer()
    inv = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    [entry] = world.import_statement(statement(credit("150.00", debtor="X", ustrd=inv.number))).entries
    payment = world.ledger.get_payment(entry.payment_id)
    assert entry.status == "matched" and payment.unapplied == EUR("30.00") and payment.customer_id == c.id
    assert world.invoice(inv.id).status == PAID


def test_what_matches_nothing_goes_to_the_review_list_as_unapplied_cash(world):
    c = world.customer()
    world.issued(c.id, "100.00", on=date(2026, 3, 1))
    report = world.import_statement(statement(credit("77.00", debtor="PERSONNE", ustrd="DON")))
    [entry] = report.entries
    assert entry.status == "unmatched" and entry.customer_id is None
    payment = world.ledger.get_payment(entry.payment_id)
    assert payment.unapplied == EUR("77.00") and payment.customer_id is None
    queue = world.bank.list(status="unmatched")
    assert [t.id for t in queue.items] == [entry.id]


def test_a_number_of_another_customer_than_the_known_account_is_not_trusted(world):
    payer = world.customer("Cafe de la Gare")
    other = world.customer("Transports Dupont SAS")
    world.issued(payer.id, "100.00", on=date(2026, 3, 1))
    foreign = world.issued(other.id, "100.00", on=date(2026, 3, 1))
    world.ledger.refs[("iban", CUSTOMER_IBAN)] = _ref("iban", CUSTOMER_IBAN, payer.id)
    [entry] = world.import_statement(statement(credit("120.00", debtor="CAFE", debtor_iban=CUSTOMER_IBAN,
                                                      ustrd=f"FACTURE {foreign.number}"))).entries
    assert entry.status == "unmatched" and world.invoice(foreign.id).status == OPEN


def test_an_imported_invoice_is_found_by_its_external_number(world):
    c = world.customer()
    report = world.imports.run([_csv_file(number="EXT/2025/0042", customer_ref=c.external_ref or "C1", total="240.00",
                                          name=c.name, email=c.email)], CLERK_ACTOR,
                               contacts={})
    inv_id = report.rows[0].invoice_id
    [entry] = world.import_statement(statement(credit("240.00", debtor="???", ustrd="REGLT EXT/2025/0042"))).entries
    assert entry.rule == "invoice_number" and entry.allocations[0]["invoice_id"] == inv_id


# -- learning the payer's account --------------------------------------------------------------

def test_a_confident_match_teaches_the_debtor_iban_for_the_next_transfers(world):
    c = world.customer()
    first = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    second = world.issued(c.id, "300.00", on=date(2026, 3, 2))
    world.import_statement(statement(credit("120.00", debtor="BOULANGERIE MARTIN", debtor_iban=CUSTOMER2_IBAN,
                                            ustrd=first.number)))
    assert world.ledger.get_ref("iban", CUSTOMER2_IBAN).target == c.id
    # the next transfer has no reference and a name the bank shortened beyond recognition
    [entry] = world.import_statement(statement(credit("360.00", debtor="BM SARL", debtor_iban=CUSTOMER2_IBAN,
                                                      ustrd="VIR"), day=date(2026, 3, 13))).entries
    assert (entry.rule, entry.customer_id) == ("customer_exact_amount", c.id)
    assert world.invoice(second.id).status == PAID


# -- idempotency, statements, entries ------------------------------------------------------------

def test_reimporting_the_same_or_an_overlapping_statement_never_pays_twice(world):
    c = world.customer()
    a = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    b = world.issued(c.id, "200.00", on=date(2026, 3, 2))
    first_entry = credit("120.00", debtor="M", ustrd=a.number)
    second_entry = credit("240.00", debtor="M", ustrd=b.number, booking=date(2026, 3, 13))
    world.import_statement(statement(first_entry))
    payments_before = len(world.ledger._all("payment"))
    again = world.import_statement(statement(first_entry))
    assert [e.status for e in again.entries] == ["already_imported"]
    overlapping = world.import_statement(statement(first_entry, second_entry, day=date(2026, 3, 13),
                                                   message_id="STMT-OTHER"))
    assert [e.status for e in overlapping.entries] == ["already_imported", "matched"]
    assert len(world.ledger._all("payment")) == payments_before + 1
    assert world.invoice(a.id).amount_paid == 12000  # paid once


def test_a_file_listing_the_same_transaction_twice_imports_it_once(world):
    c = world.customer()
    inv = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    report = world.import_statement(statement(credit("120.00", debtor="M", ustrd=inv.number), statements=2))
    assert [e.status for e in report.entries] == ["matched", "duplicate_in_file"]


def test_batch_bookings_returns_debits_and_pending_entries(world):
    c = world.customer("Cafe de la Gare")
    d = world.customer("Transports Dupont SAS")
    inv_c = world.issued(c.id, "800.00", on=date(2026, 3, 1))
    inv_d = world.issued(d.id, "1000.00", on=date(2026, 3, 1))
    report = world.import_statement(statement(
        ntry("2160.00", batch=True, details=[
            tx("1200.00", debtor="TRANSPORTS DUPONT SAS", debtor_iban=CUSTOMER2_IBAN,
               strd_ref=creditor_reference.for_invoice(inv_d.number, inv_d.id)),
            tx("960.00", debtor="CAFE DE LA GARE", ustrd=["REGLEMENT FACT", inv_c.number.replace("-", " ")])]),
        ntry("350.00", reversal=True, btc=("PMNT", "RCDT", "RRTN"),
             details=[tx(debtor="SARL INCONNUE", return_reason="AC04", ustrd="RETOUR VIREMENT")]),
        ntry("89.90", credit=False, btc=("PMNT", "ICDT", "ESCT"),
             details=[tx(creditor="OVH SAS", creditor_iban=OTHER_IBAN, ustrd="FACTURE OVH")]),
        ntry("75.00", status="PDNG", booking=None, details=[tx(debtor="PENDING SARL", ustrd="F2026-000009")])))
    assert [e.status for e in report.entries] == ["matched", "matched", "ignored", "debit", "pending"]
    assert world.invoice(inv_c.id).status == PAID and world.invoice(inv_d.id).status == PAID
    ignored = world.bank.get(report.entries[2].id)
    assert ignored.kind == "own_return" and "not customer money" in ignored.reason
    # a pending entry is imported once booked: nothing of it is stored yet
    assert report.entries[4].id is None


def test_a_returned_customer_payment_reverses_its_payment_and_reopens_the_invoice(world):
    c = world.customer()
    inv = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    [paid] = world.import_statement(statement(credit("120.00", debtor="M", ustrd=inv.number,
                                                     end_to_end_id="E2E-42"))).entries
    assert world.invoice(inv.id).status == PAID
    report = world.import_statement(statement(
        ntry("120.00", credit=False, btc=("PMNT", "RCDT", "RRTN"), booking=date(2026, 3, 14),
             details=[tx(end_to_end_id="E2E-42", creditor="M", return_reason="AC04", ustrd="RETOUR")]),
        day=date(2026, 3, 14)))
    [entry] = report.entries
    assert entry.status == "reversed" and entry.payment_id == paid.payment_id
    assert world.invoice(inv.id).status == OPEN and world.invoice(inv.id).amount_due == EUR("120.00")
    payment = world.ledger.get_payment(paid.payment_id)
    assert payment.refunded == 12000 and payment.unapplied.is_zero


def test_camt054_notifications_and_the_csv_layout_import_too(world):
    c = world.customer()
    a = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    b = world.issued(c.id, "50.00", on=date(2026, 3, 1))
    report = world.import_statement(camt054([credit("120.00", debtor="M", ustrd=a.number)]))
    assert report.entries[0].status == "matched"
    csv = ("booking_date;amount;currency;label;debtor_name;debtor_iban;reference;bank_entry_id\n"
           f"13/03/2026;60,00;EUR;VIR {b.number};BOULANGERIE MARTIN;;;BQ-1\n"
           "13/03/2026;-12,50;EUR;FRAIS;BANQUE;;;BQ-2\n").encode()
    report = world.import_statement(csv, content_type="text/csv")
    assert [e.status for e in report.entries] == ["matched", "debit"]
    assert world.invoice(b.id).status == PAID


def test_a_malformed_or_foreign_statement_changes_nothing(world):
    c = world.customer()
    world.issued(c.id, "100.00", on=date(2026, 3, 1))
    commits = world.ledger.commits
    with pytest.raises(ValidationError) as foreign:
        world.import_statement(statement(credit("120.00", debtor="M", ustrd="F2026-000001"), iban=OTHER_IBAN))
    assert foreign.value.code == "foreign_account"
    with pytest.raises(ValidationError) as broken:
        world.import_statement(statement(credit("120.00", debtor="M"))[:-40])
    assert broken.value.code == "invalid_bank_statement"
    assert world.ledger.commits == commits


def test_a_dry_run_reports_without_writing(world):
    c = world.customer()
    inv = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    commits = world.ledger.commits
    report = world.import_statement(statement(credit("120.00", debtor="M", ustrd=inv.number)), dry_run=True)
    assert report.dry_run and report.entries[0].status == "matched"
    assert world.ledger.commits == commits and world.invoice(inv.id).status == OPEN


# -- Stripe payouts -------------------------------------------------------------------------------

def test_a_stripe_payout_is_reconciled_with_its_balance_transactions_not_taken_for_customer_money(world):
    net = world.gateway.add("po_1OxYz2AbCdEfGhIj", ("charge", 120000, 1825), ("charge", 36000, 565),
                            ("refund", -12000, 0))
    assert net == 141610
    report = world.import_statement(statement(credit("1416.10", debtor="STRIPE TECHNOLOGY EUROPE LTD",
                                                     ustrd="STRIPE PAYOUT po_1OxYz2AbCdEfGhIj")))
    [entry] = report.entries
    assert entry.status == "reconciled" and entry.payment_id is None
    txn = world.bank.get(entry.id)
    assert txn.payout["fees"] == 2390 and txn.payout["difference"] == 0 and txn.kind == "stripe_payout"
    assert not world.ledger._all("payment")


def test_a_payout_that_does_not_add_up_or_cannot_be_read_waits_for_a_person(world):
    world.gateway.add("po_1AAAAAAAAAAAAAAA", ("charge", 10000, 300))
    report = world.import_statement(statement(
        credit("90.00", debtor="STRIPE", ustrd="STRIPE po_1AAAAAAAAAAAAAAA"),
        credit("55.00", debtor="STRIPE", ustrd="STRIPE po_1BBBBBBBBBBBBBBB")))
    assert [e.status for e in report.entries] == ["unreconciled", "unreconciled"]
    assert "difference" in report.entries[0].reason and "could not be reconciled" in report.entries[1].reason
    assert {t.id for t in world.bank.list(status="unreconciled").items} == {e.id for e in report.entries}


# -- big statements: chunks, conflicts, time budget --------------------------------------------------

class RecordingLedger:
    """Wraps a ledger to record each commit's size and allocations (and optionally make one fail)."""

    def __init__(self, inner, fail_first_with=None):
        self.inner = inner
        self.sizes: list[tuple[int, int, int]] = []
        self.fail_first_with = fail_first_with

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def commit(self, uow: UnitOfWork) -> None:
        from chalicelib.domain.aggregates import merge_deltas

        if self.fail_first_with is not None:
            hook, self.fail_first_with = self.fail_first_with, None
            hook()
        payments = sum(1 for op in uow.operations if type(getattr(op, "entity", None)).__name__ == "Invoice")
        self.sizes.append((len(uow.operations) + len(merge_deltas(uow.aggregate_deltas)), payments,
                           len(uow.operations)))
        self.inner.commit(uow)


def test_a_large_statement_commits_in_chunks_under_dynamodb_limits(world):
    customers = [world.customer(f"Client {i:03d} SARL") for i in range(10)]
    invoices = [world.issued(c.id, "100.00", on=date(2026, 3, 1)) for c in customers for _ in range(4)]
    entries = [credit("120.00", debtor=f"CLIENT {i // 4:03d}", ustrd=inv.number)
               for i, inv in enumerate(invoices)]
    recorder = RecordingLedger(world.ledger)
    world.bank._ledger = recorder
    report = world.import_statement(statement(*entries))
    assert {e.status for e in report.entries} == {"matched"}
    assert all(world.invoice(i.id).status == PAID for i in invoices)
    assert 1 < len(recorder.sizes) < len(entries)
    assert all(items <= 100 and invoices_touched <= 12 for items, invoices_touched, _ in recorder.sizes)


def test_twelve_allocations_of_one_transfer_fit_one_transaction_and_more_wait_for_a_clerk(world):
    c = world.customer()
    invs = [world.issued(c.id, "10.00", on=date(2026, 3, 1)) for _ in range(14)]
    recorder = RecordingLedger(world.ledger)
    world.bank._ledger = recorder
    [entry] = world.import_statement(statement(credit("168.00", debtor="M",
                                                      ustrd=" ".join(i.number for i in invs)))).entries
    assert entry.status == "review" and len(entry.allocations) == 12 and entry.unapplied == EUR("24.00")
    assert recorder.sizes[0][0] <= 100
    assert [t.id for t in world.bank.list(status="review").items] == [entry.id]


def test_an_invoice_changed_during_the_import_is_reread_and_nothing_is_lost(world):
    c = world.customer()
    inv = world.issued(c.id, "100.00", on=date(2026, 3, 1))

    def someone_pays_half() -> None:
        world.payments.record({"customer_id": c.id, "amount": "60.00", "method": "cheque",
                               "received_on": "2026-03-11", "allocations": [{"invoice_id": inv.id, "amount": "60.00"}]},
                              CLERK_ACTOR)

    world.bank._ledger = RecordingLedger(world.ledger, fail_first_with=someone_pays_half)
    [entry] = world.import_statement(statement(credit("120.00", debtor="M", ustrd=inv.number))).entries
    payment = world.ledger.get_payment(entry.payment_id)
    assert world.invoice(inv.id).status == PAID
    assert payment.allocated == EUR("60.00") and payment.unapplied == EUR("60.00")  # the rest is the customer's credit
    assert entry.status == "review" and "re-read" in entry.reason


def test_what_the_time_budget_leaves_is_reported_and_resent_safely(world):
    c = world.customer()
    invs = [world.issued(c.id, "10.00", on=date(2026, 3, 1)) for _ in range(6)]
    body = statement(*[credit("12.00", debtor="M", ustrd=i.number) for i in invs])
    world.bank._time_budget_s = -1  # nothing fits
    first = world.import_statement(body)
    assert not first.complete and {e.status for e in first.entries} == {"not_processed"}
    world.bank._time_budget_s = 60
    second = world.import_statement(body)
    assert second.complete and all(world.invoice(i.id).status == PAID for i in invs)


# -- the review list and the clerk --------------------------------------------------------------

def test_a_clerk_allocates_unapplied_cash_in_one_call_and_the_account_is_learned(world):
    c = world.customer()
    a = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    b = world.issued(c.id, "50.00", on=date(2026, 3, 1))
    [entry] = world.import_statement(statement(credit("200.00", debtor="M. DUPONT", debtor_iban=CUSTOMER_IBAN,
                                                      ustrd="VIR"))).entries
    assert entry.status == "unmatched"
    done = world.bank.allocate(entry.id, {"allocations": [{"invoice_id": a.id, "amount": "120.00"},
                                                          {"invoice_id": b.id, "amount": "60.00"}]}, CLERK_ACTOR)
    assert done.status == "allocated" and done.customer_id == c.id and done.resolved_by == "clara"
    payment = world.ledger.get_payment(entry.payment_id)
    assert payment.customer_id == c.id and payment.unapplied == EUR("20.00")
    assert world.invoice(a.id).status == PAID and world.invoice(b.id).status == PAID
    assert world.bank.list(status="unmatched").items == []
    assert world.ledger.get_ref("iban", CUSTOMER_IBAN).target == c.id


def test_the_clerk_keeps_cash_as_a_customers_credit_or_confirms_a_doubtful_match(world):
    c = world.customer()
    [entry] = world.import_statement(statement(credit("30.00", debtor="INCONNU", ustrd="AVANCE"))).entries
    with pytest.raises(ValidationError):
        world.bank.allocate(entry.id, {}, CLERK_ACTOR)  # whose credit?
    kept = world.bank.allocate(entry.id, {"customer_id": c.id}, CLERK_ACTOR)
    assert kept.status == "allocated" and world.ledger.get_payment(entry.payment_id).customer_id == c.id


def test_a_refused_allocation_changes_nothing(world):
    c = world.customer()
    other = world.customer("Autre SAS")
    mine = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    theirs = world.issued(other.id, "100.00", on=date(2026, 3, 1))
    [entry] = world.import_statement(statement(credit("500.00", debtor="INCONNU", ustrd="VIR"))).entries
    commits = world.ledger.commits
    for body in ({"allocations": [{"invoice_id": mine.id, "amount": "120.00"},
                                  {"invoice_id": theirs.id, "amount": "120.00"}]},
                 {"customer_id": c.id, "allocations": [{"invoice_id": mine.id, "amount": "130.00"}]},
                 {"allocations": [{"invoice_id": "inv_nope", "amount": "1.00"}]}):
        with pytest.raises(ValidationError):
            world.bank.allocate(entry.id, body, CLERK_ACTOR)
    assert world.ledger.commits == commits and world.invoice(mine.id).status == OPEN
    payout = world.import_statement(statement(credit("9.00", debtor="STRIPE", ustrd="STRIPE po_1CCCCCCCCCCCC"),
                                              day=date(2026, 3, 13))).entries[0]
    with pytest.raises(InvalidTransition):
        world.bank.allocate(payout.id, {"customer_id": c.id}, CLERK_ACTOR)


def test_transaction_ids_are_stable_per_statement_key(world):
    c = world.customer()
    inv = world.issued(c.id, "100.00", on=date(2026, 3, 1))
    [entry] = world.import_statement(statement(credit("120.00", debtor="M", ustrd=inv.number))).entries
    assert entry.id == transaction_id(entry.key)


# -- helpers ------------------------------------------------------------------------------------------

def _ref(kind, value, target):
    from chalicelib.services.ports import RefRecord

    return RefRecord(kind=kind, value=value, target=target)


def _csv_file(*, number, customer_ref, total, name, email):
    from chalicelib.services.imports import ImportFile

    net = (Decimal(total) / Decimal("1.2")).quantize(Decimal("0.01"))
    vat = Decimal(total) - net
    text = ("number;customer_ref;customer_name;customer_email;issue_date;due_date;currency;amount_excl_vat;"
            "vat_amount;amount_incl_vat\n"
            f"{number};{customer_ref};{name};{email};2026-01-15;2026-02-14;EUR;{net};{vat};{total}\n")
    return ImportFile("legacy.csv", text.encode())


def test_a_statement_is_read_matched_and_written_slice_by_slice(world, monkeypatch):
    import chalicelib.services.bank as bank_module

    monkeypatch.setattr(bank_module, "MATCH_SLICE", 2)
    c = world.customer()
    inv = world.issued(c.id, "100.00", on=date(2026, 3, 1))           # 120.00
    others = [world.issued(c.id, "10.00", on=date(2026, 3, 1)) for _ in range(3)]
    entries = [credit("12.00", debtor="M", ustrd=o.number) for o in others]
    entries += [credit("50.00", debtor="M", ustrd=inv.number), credit("50.00", debtor="M", ustrd=inv.number,
                                                                      booking=date(2026, 3, 13)),
                credit("50.00", debtor="M", ustrd=inv.number, booking=date(2026, 3, 14))]
    dry = world.import_statement(statement(*entries, day=date(2026, 3, 14)), dry_run=True)
    # slices see what earlier slices took: 50 + 50 + 20 allocated, 30 left as credit, even in a dry run
    assert [e.allocations[0]["amount"] if e.allocations else None for e in dry.entries[3:]] == ["50.00", "50.00",
                                                                                               "20.00"]
    report = world.import_statement(statement(*entries, day=date(2026, 3, 14)))
    assert [e.unapplied for e in report.entries[3:]] == [EUR("0.00"), EUR("0.00"), EUR("30.00")]
    assert world.invoice(inv.id).status == PAID
