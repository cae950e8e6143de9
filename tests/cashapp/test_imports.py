"""Existing receivables imported: the CSV layout, CII XML, Factur-X PDF; dry runs, refusals, retries."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from chalicelib.domain.errors import BadRequest, ValidationError
from chalicelib.domain.invoice import OPEN
from chalicelib.domain.receivable_import import IMPORTED_SERIES
from chalicelib.services.imports import ImportFile, parse_request
from tests.cashapp.world import CLERK_ACTOR, EUR, World

EXAMPLES = Path(os.environ.get("EINVOICE_EXAMPLES", Path(__file__).resolve().parents[3] / "shared" / "einvoice"
                               / "examples"))
needs_examples = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"official CII examples not found in {EXAMPLES} "
                                    "(set EINVOICE_EXAMPLES)")
HEADER = ("number;customer_ref;customer_name;customer_email;customer_country;issue_date;due_date;currency;"
          "amount_excl_vat;vat_amount;amount_incl_vat;amount_due;vat_rate\n")


@pytest.fixture
def world() -> World:
    return World()


def csv(*rows: str, name: str = "legacy.csv") -> ImportFile:
    return ImportFile(name, (HEADER + "".join(r + "\n" for r in rows)).encode("utf-8"))


GOOD = [
    "FA-2025-0101;C001;Boulangerie Martin SARL;compta@martin.example;FR;2025-11-15;2025-12-15;EUR;1000,00;200,00;"
    "1200,00;;20",
    "FA-2025-0102;C001;Boulangerie Martin SARL;compta@martin.example;FR;2025-12-01;2026-01-31;EUR;500.00;100.00;"
    "600.00;250.00;",
    "FA-2026-0007;C002;Transports Dupont SAS;ap@dupont.example;FR;01/02/2026;03/03/2026;EUR;1 000,00;55,00;"
    "1 055,00;;5,5",
]


def test_a_dry_run_reports_what_would_be_created_and_writes_nothing(world):
    commits = world.ledger.commits
    report = world.imports.run([csv(*GOOD)], CLERK_ACTOR, dry_run=True)
    body = report.to_dict()
    assert body["summary"] == {"invoices_to_create": 3, "already_imported": 0, "duplicates": 0,
                               "customers_to_create": 2, "rejected": 0}
    assert body["totals"] == {"EUR": "2505.00"}  # 1200 + 250 still due + 1055
    assert world.ledger.commits == commits


def test_an_import_creates_open_invoices_with_their_numbers_customers_and_aggregates(world):
    report = world.imports.run([csv(*GOOD)], CLERK_ACTOR)
    assert report.status == "completed" and report.record.invoices_created == 3
    invoices = {r.inv.number: world.invoice(r.invoice_id) for r in report.rows}
    partly = invoices["FA-2025-0102"]
    assert (partly.status, partly.series, partly.amount_due, partly.totals.total) == (OPEN, IMPORTED_SERIES,
                                                                                   EUR("250.00"), EUR("600.00"))
    assert invoices["FA-2026-0007"].issue_date == date(2026, 2, 1)
    customer = world.ledger.get_customer(invoices["FA-2025-0101"].customer_id)
    assert (customer.external_ref, customer.email) == ("C001", "compta@martin.example")
    assert invoices["FA-2025-0102"].customer_id == customer.id
    # the number index finds them, and the report aggregates include them
    assert world.ledger.get_ref("number", "FA20250101").target == invoices["FA-2025-0101"].id
    assert world.ledger.aggregates  # built by save_invoice in the same transactions
    assert {a.action for a in world.ledger.audit} >= {"invoice.import", "customer.import", "import.complete"}


def test_every_refused_row_is_reported_and_nothing_is_half_imported(world):
    rows = GOOD + [
        "F2026-000001;C003;Own Series SARL;x@y.example;FR;2026-01-01;2026-02-01;EUR;10;2;12;;",
        ";C003;No Number;x@y.example;FR;2026-01-01;2026-02-01;EUR;10;2;12;;",
        "PAID-1;C003;Paid SARL;x@y.example;FR;2026-01-01;2026-02-01;EUR;10;2;12;0;",
        "BAD-SUM;C003;Bad Sum SARL;x@y.example;FR;2026-01-01;2026-02-01;EUR;10;2;13;;",
        "NOMAIL-1;C004;Sans Mail SARL;;FR;2026-01-01;2026-02-01;EUR;10;2;12;;",
        "FUTURE-1;C003;Future SARL;x@y.example;FR;2027-01-01;2027-02-01;EUR;10;2;12;;",
    ]
    commits = world.ledger.commits
    with pytest.raises(ValidationError) as refused:
        world.imports.run([csv(*rows)], CLERK_ACTOR)
    rejected = refused.value.details["rejected"]
    reasons = {r["number"]: r["reason"] for r in rejected}
    assert set(reasons) == {"F2026-000001", None, "PAID-1", "BAD-SUM", "NOMAIL-1", "FUTURE-1"}
    assert "own series" in reasons["F2026-000001"] and "nothing is left to collect" in reasons["PAID-1"]
    assert "contacts" in reasons["NOMAIL-1"] and "in the future" in reasons["FUTURE-1"]
    assert all(r["source"].startswith("legacy.csv row ") for r in rejected)
    assert world.ledger.commits == commits  # nothing written


def test_the_same_request_twice_imports_once_and_a_taken_number_is_refused(world):
    first = world.imports.run([csv(*GOOD)], CLERK_ACTOR)
    again = world.imports.run([csv(*GOOD)], CLERK_ACTOR)
    assert again.id == first.id and {r.status for r in again.rows} == {"already_imported"}
    assert len(world.ledger._all("invoice")) == 3
    other = GOOD[0].replace("1200,00;;20", "1200,00;100,00;20")  # same number, another open amount
    with pytest.raises(ValidationError) as refused:
        world.imports.run([csv(other)], CLERK_ACTOR)
    assert "already used by invoice" in refused.value.details["rejected"][0]["reason"]


FORTY = [f"EXT-{n:04d};C{n % 7:03d};Client {n % 7} SARL;c{n % 7}@example.com;FR;2026-01-10;2026-02-10;EUR;"
         f"100,00;20,00;120,00;;20" for n in range(40)]


def _crash(world, when):
    """Make the ledger's commit raise (a Lambda timing out) on the first unit of work ``when`` accepts."""
    inner = world.ledger.commit

    def commit(uow):
        if when(uow):
            world.ledger.commit = inner
            raise RuntimeError("Lambda timed out")
        inner(uow)

    world.ledger.commit = commit
    return inner


def _nothing_live(world):
    """No invoice, customer, report aggregate or dunning record: what reports, dunning and lists read."""
    assert world.ledger._all("invoice") == [] and world.ledger._all("customer") == []
    assert not world.ledger.aggregates and world.ledger._all("dunning") == []


def _reconciles(world):
    from chalicelib.services.reconcile import ReconcileService

    report = ReconcileService(world.ledger, world.clock, world.settings).run()
    assert report.ok and report.histories == len(world.ledger._all("invoice")), report.to_dict()


def _is_invoice(op):
    from chalicelib.domain.invoice import Invoice

    return isinstance(getattr(op, "entity", None), Invoice)


def test_a_crash_between_staged_chunks_leaves_nothing_live_and_the_same_request_completes(world, monkeypatch):
    from chalicelib.services import imports

    monkeypatch.setattr(imports, "MAX_TRANSACTION_ITEMS", 10)   # 5 rows per staged chunk
    chunks = {"n": 0}

    def second_staged_chunk(uow):
        if any(getattr(getattr(op, "record", None), "kind", None) == imports.ROW_REF for op in uow.operations):
            chunks["n"] += 1
        return chunks["n"] == 2

    _crash(world, second_staged_chunk)
    with pytest.raises(RuntimeError):
        world.imports.run([csv(*FORTY)], CLERK_ACTOR)
    record = world.ledger._all("import")[0]
    assert (record.status, record.invoices_staged, record.invoices_created) == ("in_progress", 0, 0)
    assert len([k for k in world.ledger.refs if k[0] == imports.ROW_REF]) == 5   # the first chunk, aside
    _nothing_live(world)
    assert all(v["message"].topic != imports.ACTIVATE_TOPIC for v in world.ledger.outbox.values())
    # another import cannot take a number this one reserved
    with pytest.raises(ValidationError) as refused:
        world.imports.run([csv(FORTY[0].replace("120,00;;20", "120,00;60,00;20"))], CLERK_ACTOR)
    assert "being imported by import " + record.id in refused.value.details["rejected"][0]["reason"]
    done = world.imports.run([csv(*FORTY)], CLERK_ACTOR)
    assert done.status == "completed" and done.id == record.id and done.record.invoices_created == 40
    assert len(world.ledger._all("invoice")) == 40 and len(world.ledger._all("customer")) == 7
    assert all(not ref.data.get("staged") for (kind, _), ref in world.ledger.refs.items() if kind == "number")
    again = world.imports.run([csv(*FORTY)], CLERK_ACTOR)
    assert {r.status for r in again.rows} == {"already_imported"} and len(world.ledger._all("invoice")) == 40
    _reconciles(world)


def test_a_crash_while_activating_is_finished_by_the_outbox_without_the_client(world, monkeypatch):
    from chalicelib.services import imports
    from chalicelib.services.outbox import OutboxDrain

    monkeypatch.setattr(imports, "MAX_TRANSACTION_ITEMS", 30)
    activations = {"n": 0}

    def second_activation_chunk(uow):
        if any(_is_invoice(op) for op in uow.operations):
            activations["n"] += 1
        return activations["n"] == 2

    _crash(world, second_activation_chunk)
    with pytest.raises(RuntimeError):
        world.imports.run([csv(*FORTY)], CLERK_ACTOR)
    record = world.ledger._all("import")[0]
    live = len(world.ledger._all("invoice"))
    assert record.status == "activating" and record.invoices_staged == 40 and 0 < live < 40
    drain = OutboxDrain(world.ledger, world.clock, {imports.ACTIVATE_TOPIC: lambda p: world.imports.resume(
        p["import_id"])})
    assert drain.run().processed == 0                      # the request had two minutes to finish it
    world.clock.advance(minutes=3)
    assert drain.run().processed == 1
    done = world.imports.get(record.id)
    assert (done.status, done.invoices_created, done.customers_created) == ("completed", 40, 7)
    assert done.totals == {"EUR": "4800.00"}
    assert len(world.ledger._all("invoice")) == 40 and len(world.ledger._all("customer")) == 7
    assert {a.action for a in world.ledger.audit} >= {"import.staged", "import.complete"}
    assert drain.run().processed == 0 and world.imports.get(record.id).version == done.version
    again = world.imports.run([csv(*FORTY)], CLERK_ACTOR)   # and a client retry changes nothing
    assert {r.status for r in again.rows} == {"already_imported"} and len(world.ledger._all("invoice")) == 40
    _reconciles(world)


def test_an_import_out_of_time_while_staging_is_not_live_and_resumes_when_sent_again(monkeypatch):
    from chalicelib.services import imports
    from chalicelib.services.imports import ImportService

    world = World()
    monkeypatch.setattr(imports, "MAX_TRANSACTION_ITEMS", 20)   # 10 rows per staged chunk
    world.imports = ImportService(world.ledger, world.clock, world.settings, time_budget_s=0)
    first = world.imports.run([csv(*FORTY)], CLERK_ACTOR)
    assert first.status == "in_progress" and first.record.invoices_staged == 10
    _nothing_live(world)
    statuses = [first.status]
    for _ in range(60):  # activation: one row per chunk at 20 items (invoice, refs, audit, aggregates...)
        report = world.imports.run([csv(*FORTY)], CLERK_ACTOR)
        statuses.append(report.status)
        if report.status == "in_progress":
            _nothing_live(world)
        if report.status == "completed":
            break
    # a chunk of ten staged per call; the fourth stages the last and starts activating (a chunk per call)
    assert statuses[:4] == ["in_progress"] * 3 + ["activating"] and statuses[-1] == "completed"
    assert len(world.ledger._all("invoice")) == 40 and len(world.ledger._all("customer")) == 7
    _reconciles(world)


def test_customers_are_matched_by_external_ref_including_ones_created_through_the_api(world):
    existing = world.customer("Boulangerie Martin SARL", external_ref="C001")
    report = world.imports.run([csv(*GOOD)], CLERK_ACTOR)
    assert report.existing_customers == {"C001": existing.id}
    assert world.invoice(report.rows[0].invoice_id).customer_id == existing.id
    assert len(world.ledger._all("customer")) == 2  # only C002 was created


def test_an_imported_invoice_is_paid_by_a_transfer_naming_its_rf_reference(world):
    from chalicelib.domain import creditor_reference
    from tests.cashapp.test_bank_service import credit, statement

    report = world.imports.run([csv(GOOD[0])], CLERK_ACTOR)
    inv = world.invoice(report.rows[0].invoice_id)
    rf = creditor_reference.for_invoice(inv.number, inv.id)
    [entry] = world.import_statement(statement(credit("1200.00", debtor="MARTIN", strd_ref=rf))).entries
    assert entry.rule == "rf_reference" and world.invoice(inv.id).status == "paid"


# -- CII and Factur-X ----------------------------------------------------------------------------

CONTACTS = {"10202": "ap@odin59.example", "1111111111": "ap@buyer.example", "5790000435975": "ap@buyer.example",
            "5790000436057": "ap@buyer.example"}


@needs_examples
@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.xml")) if EXAMPLES.is_dir() else [])
def test_each_official_cii_example_imports(world, name):
    content = (EXAMPLES / name).read_bytes()
    dry = world.imports.run([ImportFile(name, content)], CLERK_ACTOR, dry_run=True, contacts=CONTACTS)
    assert dry.rejected == [] and len(dry.rows) == 1
    report = world.imports.run([ImportFile(name, content)], CLERK_ACTOR, contacts=CONTACTS)
    [row] = report.rows
    inv = world.invoice(row.invoice_id)
    assert inv.number == row.inv.number and inv.status == OPEN and inv.series == IMPORTED_SERIES
    assert inv.totals.payable == row.inv.payable and inv.amount_due == row.inv.payable  # the document's own totals
    assert inv.currency in ("EUR", "NOK", "DKK")


@needs_examples
def test_the_official_examples_together_report_their_clashing_numbers(world):
    files = [ImportFile(p.name, p.read_bytes()) for p in sorted(EXAMPLES.glob("*.xml"))]
    report = world.imports.run(files, CLERK_ACTOR, dry_run=True, contacts=CONTACTS)
    clashes = {r.source for r in report.rejected}
    # TOSL108 is three documents (two identical), TOSL110 two: one number, one receivable
    assert clashes == {"CII_business_example_01.xml", "CII_example2.xml", "CII_example3.xml", "CII_example4.xml",
                       "CII_example5.xml"}
    assert {r.inv.number for r in report.rows} == {"INV000013", "12115118"}
    assert any("due on its issue date" in w.message for w in report.warnings)


@needs_examples
def test_a_factur_x_pdf_imports_from_its_embedded_xml(world):
    import facturx
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="Invoice TOSL110")
    xml = (EXAMPLES / "CII_example5.xml").read_bytes()
    document = facturx.generate_from_binary(bytes(pdf.output()), xml, flavor="factur-x", level="en16931")
    report = world.imports.run([ImportFile("TOSL110.pdf", document)], CLERK_ACTOR)
    inv = world.invoice(report.rows[0].invoice_id)
    assert (inv.number, inv.currency, inv.totals.prepaid, inv.amount_due) == (
        "TOSL110", "DKK", inv.totals.total - inv.amount_due, inv.totals.payable)
    plain = world.imports.run([ImportFile("not-facturx.pdf", bytes(pdf.output()))], CLERK_ACTOR, dry_run=True)
    assert "no Factur-X" in plain.rejected[0].message


def test_a_file_that_is_not_an_invoice_is_reported(world):
    report = world.imports.run([ImportFile("camt.xml", b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053."
                                                       b"001.08'/>"),
                                ImportFile("broken.xml", b"<rsm:CrossIndustryInvoice")], CLERK_ACTOR, dry_run=True)
    assert [r.source for r in report.rejected] == ["camt.xml", "broken.xml"]
    assert "not a CII" in report.rejected[0].message and "well-formed" in report.rejected[1].message


def test_the_json_request_form_is_checked(world):
    files, dry, contacts = parse_request({"files": [{"name": "a.csv", "content": HEADER}], "dry_run": True,
                                          "contacts": {"C1": "a@b.example"}})
    assert (files[0].name, dry, contacts) == ("a.csv", True, {"C1": "a@b.example"})
    for bad in ({}, {"files": []}, {"files": [{"name": "x"}]}, {"files": [{"content_base64": "%%%"}]},
                {"files": [{"content": "x"}], "dry_run": "yes"}, {"files": [{"content": "x"}], "contacts": [1]}):
        with pytest.raises(BadRequest):
            parse_request(bad)
