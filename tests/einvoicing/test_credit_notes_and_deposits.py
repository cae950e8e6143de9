"""Credit notes (381) correct issued invoices in one transaction; final invoices deduct paid deposits (386)."""

from __future__ import annotations

import pytest
from lxml import etree

from chalicelib.adapters.documents.cii import NSMAP
from chalicelib.domain.errors import Conflict, ValidationError
from chalicelib.domain.invoice import PAID, VOID
from tests.conftest import line

from .harness import CLERK_ACTOR, build


def xpath(xml: bytes, path: str) -> list[str]:
    return [n if isinstance(n, str) else (n.text or "") for n in etree.fromstring(xml).xpath(path, namespaces=NSMAP)]


def two_lines(h):
    c = h.customer()
    return h.issue(c.id, [line("Lustre", "2", "500.00"), line("Pose", "4", "50.00")])   # 1,440.00 with VAT


def test_a_full_credit_note_voids_an_unpaid_invoice():
    h = build()
    invoice = two_lines(h)
    credit = h.credit_notes.create(invoice.id, {"reason": "Commande annulée"}, CLERK_ACTOR)
    assert credit.kind == "credit_note" and credit.number == "AV2026-000001"      # its own series
    assert credit.related_invoice_id == invoice.id and str(credit.totals.total) == "1440.00"
    assert credit.status == PAID and credit.amount_due.is_zero and credit.due_date is None
    assert credit.pay_token is None                                                # never payable
    original = h.ledger.get_invoice(invoice.id)
    assert original.status == VOID and original.amount_due.is_zero
    assert original.credit_notes[0]["number"] == "AV2026-000001"
    assert h.ledger.get_counter("F#2026") == 1 and h.ledger.get_counter("AV#2026") == 1
    # the credit note's document: type 381, referencing the invoice (BT-25/26), no payment means
    xml = h.documents.file(credit, "xml")
    assert xpath(xml, "//rsm:ExchangedDocument/ram:TypeCode") == ["381"]
    assert xpath(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == [invoice.number]
    assert xpath(xml, "//ram:SpecifiedTradeSettlementPaymentMeans") == []
    with pytest.raises(Conflict):
        h.credit_notes.create(invoice.id, {}, CLERK_ACTOR)                        # void now


def test_partial_credit_notes_reduce_what_is_due_up_to_the_quantities_left():
    h = build()
    invoice = two_lines(h)
    first = h.credit_notes.create(invoice.id, {"lines": [{"index": 1, "quantity": "1"}]}, CLERK_ACTOR)
    assert str(first.totals.total) == "60.00"
    assert str(h.ledger.get_invoice(invoice.id).amount_due) == "1380.00"
    with pytest.raises(ValidationError) as err:
        h.credit_notes.create(invoice.id, {"lines": [{"index": 1, "quantity": "3.5"}]}, CLERK_ACTOR)
    assert err.value.field == "lines[0].quantity" and "at most 3" in err.value.message
    with pytest.raises(ValidationError) as err:
        h.credit_notes.create(invoice.id, {"lines": [{"index": 2}]}, CLERK_ACTOR)
    assert err.value.field == "lines[0].index"
    # "everything left" credits the rest: the invoice is void, what was credited adds up to its total
    rest = h.credit_notes.create(invoice.id, {}, CLERK_ACTOR)
    assert str(rest.totals.total) == "1380.00" and rest.number == "AV2026-000002"
    assert h.ledger.get_invoice(invoice.id).status == VOID


def test_a_credit_note_never_exceeds_what_is_still_due():
    h = build()
    invoice = two_lines(h)
    h.payments.record_for_invoice(invoice.id, {"amount": "1000.00", "method": "bank_transfer",
                                               "received_on": "2026-03-02"}, CLERK_ACTOR)
    with pytest.raises(ValidationError) as err:
        h.credit_notes.create(invoice.id, {}, CLERK_ACTOR)
    assert err.value.code == "credit_exceeds_due" and "440.00" in err.value.message
    assert h.ledger.get_counter("AV#2026") == 0                                    # no gap either
    assert str(h.credit_notes.create(invoice.id, {"lines": [{"index": 1, "quantity": "2"}]},
                                     CLERK_ACTOR).totals.total) == "120.00"


def test_a_partial_credit_of_an_invoice_with_allowances_states_its_own():
    h = build()
    c = h.customer()
    invoice = h.issue(c.id, [line("A", "1", "100"), line("B", "1", "100")], allowances_charges=[
        {"type": "allowance", "amount": "20.00", "reason": "Remise", "vat_rate": "20"}])
    with pytest.raises(ValidationError) as err:
        h.credit_notes.create(invoice.id, {"lines": [{"index": 0}]}, CLERK_ACTOR)
    assert err.value.field == "allowances_charges"
    credit = h.credit_notes.create(invoice.id, {"lines": [{"index": 0}], "allowances_charges": [
        {"type": "allowance", "amount": "10.00", "reason": "Remise", "vat_rate": "20"}]}, CLERK_ACTOR)
    assert str(credit.totals.total) == "108.00"
    full = h.issue(c.id, [line("A", "1", "100")], allowances_charges=[
        {"type": "allowance", "amount": "20.00", "reason": "Remise", "vat_rate": "20"}])
    assert str(h.credit_notes.create(full.id, {}, CLERK_ACTOR).totals.total) == "96.00"


def test_a_final_invoice_deducts_the_paid_deposits_once():
    h = build()
    c = h.customer()
    deposit = h.issue(c.id, [line("Acompte 30 % commande PO-9", "1", "300.00")], kind="deposit",
                      purchase_order="PO-9")
    assert deposit.documents and deposit.documents["spec"]["payment_means"] == "58"
    unpaid_final = h.draft(c.id, [line("Lustre", "1", "1000.00")], deposit_invoice_ids=[deposit.id])
    with pytest.raises(ValidationError) as err:
        h.invoices.issue(unpaid_final.id, CLERK_ACTOR)
    assert err.value.field == "deposit_invoice_ids" and "already paid" in err.value.message
    h.payments.record_for_invoice(deposit.id, {"method": "bank_transfer", "received_on": "2026-03-02"},
                                  CLERK_ACTOR)
    final = h.invoices.issue(unpaid_final.id, CLERK_ACTOR)
    assert str(final.totals.total) == "1200.00" and str(final.totals.prepaid) == "360.00"
    assert str(final.amount_due) == "840.00"
    xml = h.documents.file(final, "xml")
    assert xpath(xml, "//ram:TotalPrepaidAmount") == ["360.00"]
    assert xpath(xml, "//ram:DuePayableAmount") == ["840.00"]
    assert deposit.number in xpath(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID")
    assert xpath(xml, "//ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID") == ["S4"]
    again = h.draft(c.id, [line("Autre", "1", "10.00")], deposit_invoice_ids=[deposit.id])
    with pytest.raises(ValidationError) as err:
        h.invoices.issue(again.id, CLERK_ACTOR)
    assert err.value.code == "deposit_already_deducted"


def test_deposits_that_pay_everything_issue_the_final_invoice_paid():
    h = build()
    c = h.customer()
    deposit = h.issue(c.id, [line("Acompte", "1", "100.00")], kind="deposit")
    h.payments.record_for_invoice(deposit.id, {"method": "cheque", "received_on": "2026-03-02"}, CLERK_ACTOR)
    final = h.issue(c.id, [line("Solde", "1", "100.00")], deposit_invoice_ids=[deposit.id])
    assert final.status == PAID and final.amount_due.is_zero
