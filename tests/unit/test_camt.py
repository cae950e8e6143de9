import random
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from chalicelib.adapters.bank import (CUSTOMER_CREDIT, DEBIT_ENTRY, NOT_BOOKED, RETURN, check_account,
                                      classify_entry, credits_to_match, parse_camt, parse_csv)
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.money import Money
from tests.unit.bank_samples import (CUSTOMER2_IBAN, CUSTOMER_IBAN, OTHER_IBAN, SELLER_IBAN, camt053, camt054,
                                     ntry, realistic_day, tx)

VERSIONS = range(2, 9)
EUR = lambda s: Money.parse(s, "EUR")  # noqa: E731


def summary(statement):
    return [(e.direction, str(e.amount), e.status, e.reversal, e.booking_date,
             [(d.key, str(d.amount), d.debtor_name, d.debtor_iban, d.remittance_unstructured, d.creditor_reference,
               d.return_reason, d.end_to_end_id) for d in e.details]) for e in statement.entries]


# -- reading ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_every_camt053_version_reads_the_same_day(version):
    # Given the same day of bank movements written in each schema version
    (statement,) = parse_camt(realistic_day(version))
    # Then the statement says the same thing whatever the version
    assert statement.format == "camt.053" and statement.message_id == "STMT-20260312-0001"
    assert statement.account_iban == SELLER_IBAN and statement.currency == "EUR"
    assert statement.opening_balance == EUR("15000.00")
    assert statement.closing_balance == EUR("22981.47")
    assert statement.balances_reconcile is True
    assert summary(statement) == summary(parse_camt(realistic_day(8))[0])


def test_entry_fields_are_read_with_their_meaning():
    (statement,) = parse_camt(realistic_day())
    transfer, batch, returned, debit, payout, pending = statement.entries
    # a plain transfer with unstructured remittance information
    assert transfer.is_credit and transfer.amount == EUR("1440.00") and transfer.booking_date == date(2026, 3, 12)
    assert str(transfer.bank_transaction_code) == "PMNT/RCDT/ESCT"
    (d,) = transfer.details
    assert (d.debtor_name, d.debtor_iban, d.remittance_unstructured, d.end_to_end_id) == (
        "BOULANGERIE MARTIN", CUSTOMER_IBAN, "VIR FACTURE F2026-000001", "E2E-BM-0001")
    # a batch booking: one entry, two transactions, each with its own amount and payer
    assert [str(x.amount) for x in batch.details] == ["1200.00", "960.00"]
    assert batch.details[0].creditor_reference == "RF82F2026000001"
    assert batch.details[0].debtor_iban == CUSTOMER2_IBAN
    assert batch.details[1].remittance_unstructured == "REGLEMENT FACT F2026 000003 MERCI"
    assert batch.details[1].end_to_end_id is None  # NOTPROVIDED
    # a returned payment
    assert returned.reversal and returned.is_return and returned.details[0].return_reason == "AC04"
    # a debit, a Stripe payout, a pending entry
    assert not debit.is_credit and debit.details[0].creditor_iban == OTHER_IBAN
    assert "po_1OxYz2AbCdEfGhIj" in payout.details[0].remittance_text
    assert pending.status == "PDNG" and pending.booking_date is None
    assert [classify_entry(e) for e in statement.entries] == [
        CUSTOMER_CREDIT, CUSTOMER_CREDIT, RETURN, DEBIT_ENTRY, CUSTOMER_CREDIT, NOT_BOOKED]


def test_credits_to_match_are_the_booked_customer_credits_one_per_transaction():
    (statement,) = parse_camt(realistic_day())
    credits = credits_to_match(statement)
    assert [str(c.amount) for c in credits] == ["1440.00", "1200.00", "960.00", "4821.37"]
    assert credits[1].structured_reference == "RF82F2026000001"
    assert len({c.key for c in credits}) == 4


@pytest.mark.parametrize("version", VERSIONS)
def test_camt054_notification_reads_without_balances(version):
    doc = camt054([ntry("250.00", details=[tx(debtor="CAFE DE LA GARE", ustrd="F2026-000004")])], version=version)
    (notification,) = parse_camt(doc)
    assert notification.format == "camt.054" and notification.opening_balance is None
    assert notification.balances_reconcile is None
    assert notification.entries[0].details[0].remittance_unstructured == "F2026-000004"


def test_a_file_with_several_statements_gives_several_statements():
    statements = parse_camt(camt053([ntry("10.00")], statements=2))
    assert [s.statement_id for s in statements] == ["STMT-20260312-0001-1", "STMT-20260312-0001-2"]


def test_an_entry_without_details_becomes_one_transaction_with_the_entry_information():
    (statement,) = parse_camt(camt053([ntry("99.00", additional="VIR SEPA RECU /DE MARTIN /MOTIF F2026-000002")]))
    (d,) = statement.entries[0].details
    assert d.amount == EUR("99.00") and "F2026-000002" in d.remittance_text


def test_referred_document_numbers_are_part_of_the_remittance_text():
    (statement,) = parse_camt(camt053([ntry("99.00", details=[tx(referred_doc="F2026-000042")])]))
    assert "F2026-000042" in statement.entries[0].details[0].remittance_text


def test_a_single_detail_takes_the_booked_amount():
    # the detail shows the instructed amount, the bank deducted charges: the cash is the entry amount
    (statement,) = parse_camt(camt053([ntry("98.50", details=[tx("100.00", debtor="ACME")])]))
    assert statement.entries[0].details[0].amount == EUR("98.50")


# -- idempotency keys -----------------------------------------------------------------------------

def test_reimporting_the_same_or_an_overlapping_statement_gives_the_same_keys():
    monday = [ntry("100.00", acct_svcr_ref="A1", details=[tx(debtor="X", ustrd="F2026-000001")]),
              ntry("200.00", acct_svcr_ref="A2", batch=True, details=[tx("150.00"), tx("50.00")])]
    tuesday = [ntry("300.00", acct_svcr_ref="A3")]
    first = {d.key for _, d in parse_camt(camt053(monday))[0].transactions()}
    again = {d.key for _, d in parse_camt(camt053(monday))[0].transactions()}
    overlapping = {d.key for _, d in parse_camt(camt053(monday + tuesday, message_id="OTHER"))[0].transactions()}
    assert first == again and first < overlapping and len(first) == 3
    # and the notification of the same entry, earlier in the day, has the same key too
    notified = {d.key for _, d in parse_camt(camt054(monday[:1]))[0].transactions()}
    assert notified < first


def test_keys_differ_between_accounts_and_fall_back_to_the_entry_reference():
    entry = [ntry("100.00", acct_svcr_ref=None, ntry_ref="N-7")]
    a = parse_camt(camt053(entry))[0].entries[0].details[0].key
    b = parse_camt(camt053(entry, iban=OTHER_IBAN))[0].entries[0].details[0].key
    assert a != b and ":N-7:0:10000EUR" in a


def test_check_account_refuses_a_foreign_account():
    (statement,) = parse_camt(camt053([ntry("10.00")], iban=OTHER_IBAN))
    with pytest.raises(ValidationError) as exc:
        check_account(statement, SELLER_IBAN)
    assert exc.value.code == "foreign_account" and "0189" in exc.value.message
    check_account(parse_camt(camt053([ntry("10.00")]))[0], "FR76 3000 6000 0112 3456 7890 189")


# -- refusing bad files -----------------------------------------------------------------------------

def replace(doc: bytes, old: str, new: str, count: int = 1) -> bytes:
    text = doc.decode()
    assert old in text, old
    return text.replace(old, new, count).encode()


GOOD = camt053([ntry("1440.00", details=[tx(debtor="MARTIN", ustrd="F2026-000001")])], version=8)
GOOD_V2 = camt053([ntry("1440.00", details=[tx(debtor="MARTIN", ustrd="F2026-000001")])], version=2)


@pytest.mark.parametrize("doc, message", [
    (b"", "empty"),
    (b"not xml at all", "not well-formed XML"),
    (GOOD[:-40], "not well-formed XML"),
    (replace(GOOD, "camt.053.001.08", "camt.053.001.11"), "camt.053.001.11 is not a supported version"),
    (replace(GOOD, "camt.053.001.08", "pain.001.001.03"), "pain.001 message, not a bank statement"),
    (replace(GOOD, "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08", "http://example.com/x"), "unknown namespace"),
    (b'<?xml version="1.0"?><Statement/>', "root element is <Statement>"),
    (replace(GOOD, "<MsgId>STMT-20260312-0001</MsgId>", ""), "GrpHdr/MsgId is missing"),
    (replace(GOOD, "<IBAN>FR7630006000011234567890189</IBAN>", "<Othr><Id>123</Id></Othr>"), "Acct/Id/IBAN is missing"),
    (replace(GOOD, "FR7630006000011234567890189", "FR7630006000011234567890188"), "not a valid IBAN"),
    (replace(GOOD, "<Cd>OPBD</Cd>", "<Cd>ITBD</Cd>"), "opening balance"),
    (replace(GOOD, "<Cd>CLBD</Cd>", "<Cd>CLAV</Cd>"), "closing balance"),
    (replace(GOOD, '<Amt Ccy="EUR">1440.00</Amt>', "<Amt>1440.00</Amt>"), "Stmt[1]/Ntry[1]/Amt: the Ccy attribute"),
    (replace(GOOD, '<Amt Ccy="EUR">1440.00</Amt>', '<Amt Ccy="EUR">14,40</Amt>'), "not a decimal number"),
    (replace(GOOD, '<Amt Ccy="EUR">1440.00</Amt>', '<Amt Ccy="EUR">1440.001</Amt>'), "more than 2 decimals"),
    (replace(GOOD, '<Amt Ccy="EUR">1440.00</Amt>', '<Amt Ccy="EUR">-1440.00</Amt>'), "negative"),
    (replace(GOOD, '<Amt Ccy="EUR">1440.00</Amt>', '<Amt Ccy="XYZ">1440.00</Amt>'), "unknown currency"),
    (replace(GOOD, "<CdtDbtInd>CRDT</CdtDbtInd><Sts>", "<CdtDbtInd>CREDIT</CdtDbtInd><Sts>"), "expected CRDT or DBIT"),
    (replace(GOOD, "<Sts><Cd>BOOK</Cd></Sts>", ""), "Sts (entry status) is missing"),
    (replace(GOOD, "<Sts><Cd>BOOK</Cd></Sts>", "<Sts><Cd>DONE</Cd></Sts>"), "entry status 'DONE'"),
    (replace(GOOD, "<BookgDt><Dt>2026-03-12</Dt></BookgDt>", ""), "BookgDt (booking date) is missing"),
    (replace(GOOD, "<BookgDt><Dt>2026-03-12</Dt></BookgDt>", "<BookgDt><Dt>2026-13-12</Dt></BookgDt>"),
     "not an ISO 8601 date"),
    (replace(GOOD_V2, "<Sts>BOOK</Sts>", "<Sts>BOOKED</Sts>"), "entry status 'BOOKED'"),
])
def test_a_malformed_or_unknown_file_is_refused_naming_the_problem(doc, message):
    with pytest.raises(ValidationError) as exc:
        parse_camt(doc)
    assert message in exc.value.message and exc.value.code == "invalid_bank_statement"


def test_a_batch_whose_details_do_not_add_up_is_refused():
    doc = camt053([ntry("200.00", batch=True, details=[tx("150.00"), tx("40.00")])])
    with pytest.raises(ValidationError, match=r"Ntry\[1\]: the 2 transaction details add up to 190.00"):
        parse_camt(doc)
    doc = camt053([ntry("200.00", batch=True, details=[tx("150.00"), tx(None)])])
    with pytest.raises(ValidationError, match="detail 2 has no amount"):
        parse_camt(doc)


def test_xml_attacks_are_refused_without_expanding_anything():
    billion_laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
                      b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&lol2;</Document>')
    xxe = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><GrpHdr>'
           b'<MsgId>&x;</MsgId></GrpHdr></BkToCstmrStmt></Document>')
    for doc in (billion_laughs, xxe):
        with pytest.raises(ValidationError, match="DTD"):
            parse_camt(doc)


# -- fuzzing: whatever the damage, only ValidationError comes out -------------------------------------

SEEDS = [realistic_day(v) for v in (2, 5, 8)] + [camt054([ntry("1.00", details=[tx(debtor="A")])])]


def mutate(doc: bytes, rnd: random.Random, how: int) -> bytes:
    if how == 0:  # truncate
        return doc[: rnd.randrange(len(doc))]
    if how == 1:  # flip bytes
        data = bytearray(doc)
        for _ in range(rnd.randint(1, 8)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        return bytes(data)
    root = etree.fromstring(doc)
    elements = list(root.iter())
    target = rnd.choice(elements[1:])
    if how == 2:  # drop an element
        target.getparent().remove(target)
    elif how == 3:  # replace a text
        target.text = rnd.choice(["", " ", "-1", "1e9", "NaN", "2026-02-30", "CRDT", "BOOK", "x" * 2000, "0.001",
                                  "99999999999999999999", "RF00", "\u00e9\u00e8"])
    elif how == 4:  # duplicate an element
        target.addnext(etree.fromstring(etree.tostring(target)))
    else:  # change an attribute
        target.set("Ccy", rnd.choice(["", "EURO", "JPY", "BHD", "eur"]))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(SEEDS) - 1), st.integers(0, 5), st.integers(0, 2**32 - 1))
def test_fuzzed_files_raise_only_validation_errors(seed_index, how, seed):
    doc = mutate(SEEDS[seed_index], random.Random(seed), how)
    try:
        statements = parse_camt(doc)
    except ValidationError as exc:
        assert exc.message.startswith("invalid bank statement")
        return
    for statement in statements:  # what is accepted is consistent
        for entry in statement.entries:
            assert sum(d.amount.amount for d in entry.details) == entry.amount.amount


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_validation_errors(data):
    with pytest.raises(ValidationError):
        parse_camt(data)


# -- CSV layout ------------------------------------------------------------------------------------

CSV = (
    "booking_date;amount;currency;label;debtor_name;debtor_iban;reference;bank_entry_id\n"
    "12/03/2026;1 440,00;EUR;VIR SEPA BOULANGERIE MARTIN;BOULANGERIE MARTIN;FR14 2004 1010 0505 0001 3M02 606;"
    "F2026-000001;BQ-0001\n"
    "2026-03-12;-89,90;EUR;PRLV OVH;OVH SAS;;;BQ-0002\n"
    '2026-03-13;960.00;EUR;"REGLEMENT; FACT F2026-000003";CAFE DE LA GARE;;RF82 F202 6000 001;BQ-0003\n'
)


def test_csv_layout_reads_french_spreadsheet_exports():
    statement = parse_csv(CSV.encode("utf-8-sig"), account_iban=SELLER_IBAN)
    assert statement.format == "csv" and statement.currency == "EUR" and len(statement.entries) == 3
    first, debit, third = statement.entries
    assert first.is_credit and first.amount == EUR("1440.00") and first.booking_date == date(2026, 3, 12)
    assert first.details[0].debtor_iban == CUSTOMER_IBAN and first.details[0].creditor_reference == "F2026-000001"
    assert not debit.is_credit and debit.amount == EUR("89.90") and debit.details[0].creditor_name == "OVH SAS"
    assert third.details[0].remittance_unstructured == "REGLEMENT; FACT F2026-000003"
    assert [str(c.amount) for c in credits_to_match(statement)] == ["1440.00", "960.00"]
    # the same rows give the same keys on a re-import (also with a comma separator)
    again = parse_csv(CSV.replace(";", ",").replace("1 440,00", '"1 440,00"').replace("-89,90", '"-89,90"')
                      .replace('"REGLEMENT, FACT F2026-000003"', '"REGLEMENT; FACT F2026-000003"'),
                      account_iban=SELLER_IBAN)
    assert [d.key for _, d in again.transactions()] == [d.key for _, d in statement.transactions()]


def test_csv_layout_refuses_bad_rows_with_their_row_numbers():
    bad = CSV + ("2026-03-14;abc;EUR;X;;;;BQ-0004\n"
                 "2026-03-14;10,00;USD;X;;;;BQ-0005\n"
                 "31/02/2026;10,00;EUR;X;;;;BQ-0006\n"
                 "2026-03-14;10,00;EUR;X;;FR00 1234;;BQ-0007\n"
                 "2026-03-14;10,00;EUR;X;;;;BQ-0001\n"
                 "2026-03-14;0;EUR;X;;;;\n")
    with pytest.raises(ValidationError) as exc:
        parse_csv(bad, account_iban=SELLER_IBAN)
    rows = exc.value.details["rows"]
    assert exc.value.message.startswith("row 5: amount 'abc'") and "nothing was imported" in exc.value.message
    assert {r["row"] for r in rows} == {5, 6, 7, 8, 9, 10}
    messages = " | ".join(r["message"] for r in rows)
    for part in ("differs from EUR", "is not a date", "not a valid IBAN", "already used on row 2", "amount is zero",
                 "bank_entry_id is empty"):
        assert part in messages


@pytest.mark.parametrize("content, message", [
    ("", "empty"),
    ("date;amount\n2026-01-01;1\n", "missing column(s) booking_date, currency, label, bank_entry_id"),
    ("booking_date;amount;currency;label;bank_entry_id\n", "no movement"),
    ("booking_date;amount;currency;label;bank_entry_id;amount\n2026-01-01;1;EUR;x;1;1\n", "appear twice"),
])
def test_csv_layout_refuses_unusable_files(content, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_csv(content, account_iban=SELLER_IBAN)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_csv_garbage_raises_only_validation_errors(text):
    try:
        parse_csv("booking_date;amount;currency;label;bank_entry_id\n" + text, account_iban=SELLER_IBAN)
    except ValidationError:
        pass
