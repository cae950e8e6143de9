"""The accounting export: the French FEC (and the same entries as CSV) for a period.

What is read, all through bounded queries (no Scan), and what it costs:

- **sales documents** issued in ``[from, to]``: the invoices *created* between
  ``from - DRAFT_HORIZON_DAYS`` and ``to + 2 days`` (the by-kind index, ordered by
  creation; a draft is issued after it is created), kept when their issue date is in
  the period. A draft older than the horizon and issued in the period is found by
  number continuity: our numbers are gapless per series and year, so each gap
  between the numbers found, and the numbers just before the first and after the last,
  are read by number (the ``number`` refs) until the issue date leaves the period.
  Cost: the invoices created in that window (drafts included) + 2 reads per series
  and year + 2 reads per missing number;
- **customer payments** received in the period (the by-kind index by received date):
  one item per payment; the invoices they are allocated to that were not issued in the
  period (one batch read each, for their VAT and discounts); the customers named (one
  batch read each, for the auxiliary accounts);
- **early-payment discounts and write-offs** dated in the period, from the history of
  the invoices read above (discounts always come with a payment; a write-off of an
  invoice with neither an issue nor a payment in the period is not seen: the credit
  note that usually goes with it is);
- **Stripe payouts** booked in the period (their own partition of bank transactions):
  net to the bank, fees to 627.

Imported invoices (an external series) are not in the sales journal: their sale is in
the books of the system that issued them; the payments that settle them are.

The period queries run page by page from a :class:`ReadPosition` (:meth:`BooksService.read_period`),
then :meth:`BooksService.finish` builds the entries: ``GET /exports/fec`` runs both at once within
:class:`SyncLimits`, the background export (``services/fec_exports.py``) runs the pages over as
many steps as it needs and the same ``finish`` at the end, hence the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Callable, Iterable, Mapping

from ..domain.aggregates import DISCOUNT, WRITE_OFF, ReceivableHistory
from ..domain.bank_transaction import BankTransaction
from ..domain.errors import ValidationError
from ..domain.fec import (DEPOSIT, AccountPlan, Adjustment, CustomerAccount, JournalEntry, PaymentAllocation,
                          ReceivedPayment, SalesDocument, SalesLine, StripePayout, VatAmount, build_entries,
                          check_balanced, fec_filename, to_csv, to_fec, vat_share)
from ..domain.invoice import DRAFT, Invoice
from ..domain.money import Money, money_sum
from ..domain.payment import Payment
from ..domain.receivable_import import is_imported
from .invoice_numbers import NUMBER_REF, number_key
from .ports import Clock, Ledger, PaymentQuery
from .settings import SettingsService

DRAFT_HORIZON_DAYS = 92
WRITE_OFF_REF = "write_off"  # services/penalty.py: invoice id -> the credit note of its write-off
MAX_PERIOD_DAYS = 400  # a fiscal year may run 12 to 23 months in France, exports are per year at most here
UNIDENTIFIED = CustomerAccount("ATTENTE", "Encaissements non identifiés")
_NUMBER = re.compile(r"^(?P<prefix>.*?)(?P<year>\d{4})-(?P<seq>\d{6})$")


@dataclass
class BooksExport:
    entries: tuple[JournalEntry, ...]
    filename: str
    reads: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def fec(self) -> str:
        return to_fec(self.entries)

    def csv(self) -> str:
        return to_csv(self.entries)

    def totals(self) -> dict[str, dict[str, str]]:
        return {code: {"debit": str(d), "credit": str(c)} for code, (d, c) in check_balanced(self.entries).items()}

    @property
    def line_count(self) -> int:
        """Lines of the file, header excluded (one per entry line)."""
        return sum(len(e.lines) for e in self.entries)

    def render(self, fmt: str = "fec") -> ExportFile:
        """The FEC (``fmt`` fec: tab-separated, CRLF, ``<SIREN>FEC<to>.txt``) or the same lines as CSV."""
        if fmt == "csv":
            return ExportFile(self.csv(), "text/csv; charset=utf-8", self.filename.replace(".txt", ".csv"),
                              self.line_count)
        if fmt != "fec":
            raise ValidationError("format must be fec or csv", field="format")
        return ExportFile(self.fec(), "text/plain; charset=utf-8", self.filename, self.line_count)


def parse_rates(raw: str | None) -> dict[str, Decimal]:
    """``USD:0.92,NOK:0.085`` -> {currency: EUR per unit}."""
    out: dict[str, Decimal] = {}
    if not raw:
        return out
    for part in raw.split(","):
        ccy, _, value = part.partition(":")
        try:
            rate = Decimal(value.strip())
        except ArithmeticError:
            rate = Decimal(0)
        if len(ccy.strip()) != 3 or not rate.is_finite() or rate <= 0:
            raise ValidationError(f"rates must look like USD:0.92,NOK:0.085 (EUR per unit), not {part!r}",
                                  field="rates")
        out[ccy.strip().upper()] = rate
    return out


# Phases of an export's period reads, in order (``read_period``); continuity probes follow them (``finish``).
SALES, PAYMENTS, PAYOUTS, READ_DONE = "sales", "payments", "payouts", "done"
PAGE_SIZES = {SALES: 500, PAYMENTS: 200, PAYOUTS: 200}


@dataclass(frozen=True)
class SyncLimits:
    """What ``GET /exports/fec`` builds inside one API request (29 s, a 6 MB response): beyond, the
    caller is sent to ``POST /exports/fec``. Measured in docs/cash-application.md (the books)."""

    max_reads: int = 20_000           # items read by the period queries (the creation window holds drafts too)
    max_lines: int = 20_000           # FEC lines (~150 bytes each: ~3 MB)
    max_bytes: int = 5 * 1024 * 1024  # the body, with room under the 6 MB Lambda proxy response


class ExportTooLarge(ValidationError):
    code = "export_too_large"


@dataclass
class PeriodReads:
    """What the period queries returned, in the order read: the order of the sales documents and of the
    payouts sets the order of same-day entries (their numbers), so a resumed export must rebuild it as is."""

    sales: dict[str, Invoice] = field(default_factory=dict)
    payments: list[Payment] = field(default_factory=list)
    payouts: list[BankTransaction] = field(default_factory=list)
    reads: dict[str, int] = field(default_factory=dict)

    @property
    def items_read(self) -> int:
        return sum(self.reads.values())

    def extend(self, other: PeriodReads) -> None:
        for inv_id, inv in other.sales.items():
            self.sales.setdefault(inv_id, inv)
        self.payments.extend(other.payments)
        self.payouts.extend(other.payouts)


@dataclass(frozen=True)
class ReadPosition:
    """Where the period reads stand: the phase and the cursor of its next page."""

    phase: str = SALES
    cursor: str | None = None

    @property
    def done(self) -> bool:
        return self.phase == READ_DONE


@dataclass(frozen=True)
class ExportFile:
    """A rendered export: the file's text and how to serve it."""

    text: str
    content_type: str
    filename: str
    lines: int

    @property
    def content(self) -> bytes:
        return self.text.encode("utf-8")


def check_period(start: date, end: date) -> None:
    """Raises ``ValidationError`` for a period that cannot be exported."""
    if end < start:
        raise ValidationError("to must not be before from", field="to")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise ValidationError(f"export at most {MAX_PERIOD_DAYS} days at a time (a fiscal year)", field="to")


def _too_large(what: str, limit: int) -> ExportTooLarge:
    return ExportTooLarge(
        f"this period is too large to export in one request ({what} more than {limit:,}): it would not finish "
        "within the API's 29 s or fit its 6 MB response. Use POST /exports/fec with the same parameters: the "
        "export is built in the background, GET /exports/fec/{id} then gives a download link",
        field="to", details={"use": "POST /exports/fec", "limit": limit})


class BooksService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService,
                 plan: AccountPlan | None = None, sync_limits: SyncLimits | None = None) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self._plan = plan or AccountPlan()
        self.sync_limits = sync_limits or SyncLimits()

    def export(self, start: date, end: date, *, rates: Mapping[str, Decimal] | None = None,
               limits: SyncLimits | None = None) -> BooksExport:
        """Balanced journal entries of ``[start, end]`` (see the module docstring for what is read).

        Raises ``ValidationError`` for a bad period, or an amount in a currency without a rate;
        ``ExportTooLarge`` (a ``ValidationError``) when ``limits`` are given and the period exceeds them:
        the reads stop as soon as they pass ``limits.max_reads``.
        """
        check_period(start, end)
        data = PeriodReads()

        def over_budget() -> bool:
            if limits is not None and data.items_read > limits.max_reads:
                raise _too_large("items to read", limits.max_reads)
            return False

        self.read_period(start, end, ReadPosition(), data, stop=over_budget)
        export = self.finish(start, end, data, rates=rates)
        if limits is not None and export.line_count > limits.max_lines:
            raise _too_large("FEC lines", limits.max_lines)
        return export

    def export_file(self, start: date, end: date, *, fmt: str = "fec", rates: Mapping[str, Decimal] | None = None,
                    limits: SyncLimits | None = None) -> tuple[BooksExport, ExportFile]:
        """The export and its file (``fmt`` fec or csv); with ``limits``, refused beyond them (``ExportTooLarge``)."""
        export = self.export(start, end, rates=rates, limits=limits)
        file = export.render(fmt)
        if limits is not None and len(file.content) > limits.max_bytes:
            raise _too_large("bytes", limits.max_bytes)
        return export, file

    def read_period(self, start: date, end: date, position: ReadPosition, into: PeriodReads, *,
                    stop: Callable[[], bool] = lambda: False,
                    page_sizes: Mapping[str, int] | None = None) -> ReadPosition:
        """Read the period's pages from ``position`` into ``into`` until every phase is read or ``stop()``
        (asked before each page) says to stop; returns where the reads stand. The queries of the export,
        page by page: invoices created in the window, payments received, Stripe payouts booked (no Scan)."""
        sizes = {**PAGE_SIZES, **(page_sizes or {})}
        while not position.done:
            if stop():
                return position
            position = self._read_page(start, end, position, into, sizes[position.phase])
        return position

    def _read_page(self, start: date, end: date, position: ReadPosition, into: PeriodReads,
                   limit: int) -> ReadPosition:
        reads = into.reads
        if position.phase == SALES:
            low = datetime.combine(start - timedelta(days=DRAFT_HORIZON_DAYS), time(0), tzinfo=timezone.utc)
            high = datetime.combine(end + timedelta(days=2), time(0), tzinfo=timezone.utc)
            page = self._ledger.list_invoices_created(low, high, limit=limit, cursor=position.cursor)
            reads["invoices_created_in_window"] = reads.get("invoices_created_in_window", 0) + (
                page.scanned or len(page.items))
            for inv in page.items:
                if inv.status != DRAFT and inv.issue_date and start <= inv.issue_date <= end:
                    into.sales[inv.id] = inv
            return ReadPosition(SALES, page.next_cursor) if page.next_cursor else ReadPosition(PAYMENTS)
        if position.phase == PAYMENTS:
            pays = self._ledger.query_payments(PaymentQuery(received_from=start, received_to=end, limit=limit,
                                                            cursor=position.cursor))
            into.payments.extend(pays.items)
            reads["payments"] = reads.get("payments", 0) + len(pays.items)
            return ReadPosition(PAYMENTS, pays.next_cursor) if pays.next_cursor else ReadPosition(PAYOUTS)
        if position.phase == PAYOUTS:
            payouts = self._ledger.list_payouts(start, end, limit=limit, cursor=position.cursor)
            into.payouts.extend(payouts.items)
            reads["payouts"] = reads.get("payouts", 0) + len(payouts.items)
            return ReadPosition(PAYOUTS, payouts.next_cursor) if payouts.next_cursor else ReadPosition(READ_DONE)
        raise ValueError(f"unknown export phase {position.phase!r}")

    def finish(self, start: date, end: date, data: PeriodReads, *,
               rates: Mapping[str, Decimal] | None = None) -> BooksExport:
        """The entries of a period whose pages were all read (``read_period``): the documents the creation
        window missed (numbering continuity), then one batch read of the invoices settled and of the
        customers named, and the entries. Raises ``ValidationError`` (a currency without its rate)."""
        seller = self._settings.seller()
        rates = dict(rates or {})
        reads = data.reads
        warnings: list[str] = []
        sales = data.sales
        reads["invoices_by_number"] = self._by_continuity(sales, start, end)
        payments = data.payments
        allocated_ids = {a.invoice_id for p in payments for a in p.allocations} - set(sales)
        others = self._ledger.get_invoices(allocated_ids) if allocated_ids else {}
        others = {k: others[k] for k in sorted(others)}  # a batch read comes back in any order: fix it
        reads["allocated_invoices"] = len(others)
        invoices = {**others, **sales}
        customer_ids = {i.customer_id for i in invoices.values()} | {p.customer_id for p in payments if p.customer_id}
        customers = self._ledger.get_customers(customer_ids) if customer_ids else {}
        reads["customers"] = len(customers)

        def account(customer_id: str | None) -> CustomerAccount:
            if customer_id is None:
                return UNIDENTIFIED
            c = customers.get(customer_id)
            if c is None:
                return CustomerAccount(customer_id, customer_id)
            return CustomerAccount(c.external_ref or c.id, c.name)

        def rate(currency: str) -> Decimal | None:
            return None if currency == "EUR" else rates.get(currency)

        on_receipts = not seller.vat_on_debits
        documents: dict[str, SalesDocument] = {}
        deposit_ids = {d for inv in invoices.values() for d in getattr(inv, "deposit_invoice_ids", ())} - set(invoices)
        deposits = {**self._ledger.get_invoices(deposit_ids), **invoices} if deposit_ids else invoices
        for inv in invoices.values():
            if inv.status == DRAFT or inv.number is None or inv.issue_date is None:
                continue
            documents[inv.id] = _sales_document(inv, account(inv.customer_id), deposits, on_receipts,
                                                rate(inv.currency))
        sales_docs = [documents[i] for i in sorted(sales, key=lambda i: (sales[i].issue_date, sales[i].number or ""))
                      if i in documents and not is_imported(sales[i])]
        received = []
        for p in sorted(payments, key=lambda p: (p.received_on, p.id)):
            net = p.amount.amount - p.refunded
            if p.refunded:
                warnings.append(f"payment {p.id} was partly given back ({Money(p.refunded, p.currency)} "
                                f"{p.currency}): the return is not in this export, book it by hand")
            allocations = []
            for a in p.allocations:
                doc = documents.get(a.invoice_id)
                vat = vat_share(doc, a.amount) if doc is not None and doc.vat_on_receipts else ()
                allocations.append(PaymentAllocation(a.invoice_id, a.invoice_number or a.invoice_id, a.amount, vat))
            if net <= 0 and not allocations:
                continue
            received.append(ReceivedPayment(id=p.id, date=p.received_on, customer=account(p.customer_id),
                                            amount=p.amount, allocations=tuple(allocations), reference=p.id,
                                            via_stripe=p.source == "stripe", exchange_rate=rate(p.currency)))
        discounts, write_offs = [], []
        # A write-off that comes with a credit note (dunning's write_off: the VAT is recovered through it) is
        # booked by that credit note in the sales journal; only a bare write-off goes to 654 here.
        written_off = [i.id for i in invoices.values() if i.amount_written_off]
        with_credit_note = set(self._ledger.get_refs(WRITE_OFF_REF, written_off)) if written_off else set()
        for inv in invoices.values():
            if not inv.ledger_history:
                continue
            history = ReceivableHistory.from_dict(inv.ledger_history)
            doc = documents.get(inv.id)
            for n, e in enumerate(history.entries):
                if e.kind not in (DISCOUNT, WRITE_OFF) or not start <= e.on <= end:
                    continue
                if e.kind == WRITE_OFF and inv.id in with_credit_note:
                    continue
                amount = Money(e.amount, inv.currency)
                adj = Adjustment(id=f"{inv.id}:{e.kind}:{n}", date=e.on, customer=account(inv.customer_id),
                                 invoice_id=inv.id, invoice_number=inv.number or inv.id, amount=amount,
                                 vat=vat_share(doc, amount) if doc is not None else (),
                                 exchange_rate=rate(inv.currency))
                (discounts if e.kind == DISCOUNT else write_offs).append(adj)
        payouts = []
        for t in data.payouts:
            fees = Money(int((t.payout or {}).get("fees", 0)), t.currency)
            if t.payout is None:
                warnings.append(f"Stripe payout of {t.booking_date} ({t.id}) was not reconciled: its fees are not "
                                "booked")
            payouts.append(StripePayout(id=(t.payout or {}).get("payout_id") or t.id, date=t.booking_date,
                                        net=t.amount, fees=fees))
        entries = build_entries(sales=sales_docs, payments=received, discounts=discounts, write_offs=write_offs,
                                payouts=payouts, plan=self._plan, book_currency="EUR")
        return BooksExport(entries=entries, filename=fec_filename(seller.siren, end), reads=reads, warnings=warnings)

    # -- reads --------------------------------------------------------------------------------------
    def _by_continuity(self, found: dict[str, Invoice], start: date, end: date) -> int:
        """Add the period's invoices the creation window missed, from the gapless numbering."""
        series: dict[tuple[str, int], set[int]] = {}
        for inv in found.values():
            m = _NUMBER.match(inv.number or "")
            if m and not is_imported(inv):
                series.setdefault((m["prefix"], int(m["year"])), set()).add(int(m["seq"]))
        reads = 0
        for (prefix, year), seqs in series.items():
            lo, hi = min(seqs), max(seqs)
            missing = [s for s in range(lo, hi + 1) if s not in seqs]
            reads += len(missing)
            self._fetch_numbers(prefix, year, missing, found, start, end)
            for step, edge in ((-1, lo), (1, hi)):
                seq = edge + step
                while seq >= 1:
                    reads += 1
                    if not self._fetch_numbers(prefix, year, [seq], found, start, end):
                        break
                    seq += step
        return reads

    def _fetch_numbers(self, prefix: str, year: int, seqs: Iterable[int], found: dict[str, Invoice], start: date,
                       end: date) -> int:
        keys = [number_key(f"{prefix}{year}-{seq:06d}") for seq in seqs]
        if not keys:
            return 0
        refs = self._ledger.get_refs(NUMBER_REF, keys)
        invoices = self._ledger.get_invoices(r.target for r in refs.values())
        added = 0
        for inv in invoices.values():
            if inv.issue_date and start <= inv.issue_date <= end and inv.status != DRAFT:
                found.setdefault(inv.id, inv)
                added += 1
        return added


def _sales_document(inv: Invoice, customer: CustomerAccount, known: Mapping[str, Invoice], vat_on_receipts: bool,
                    exchange_rate: Decimal | None) -> SalesDocument:
    """The sales document of an issued invoice; a final invoice deducting paid deposits (BT-113) debits the
    deposits' net to the advances account (4191) and their VAT back, so the customer is debited what is payable
    and the VAT of the deposits is not collected twice."""
    prepaid = inv.totals.prepaid
    if prepaid.is_zero:
        return SalesDocument.from_invoice(inv, customer, vat_on_receipts=vat_on_receipts, exchange_rate=exchange_rate)
    whole = replace(inv, totals=replace(inv.totals, prepaid=Money.zero(inv.currency), payable=inv.totals.total))
    doc = SalesDocument.from_invoice(whole, customer, vat_on_receipts=vat_on_receipts, exchange_rate=exchange_rate)
    deposits = [known[d] for d in getattr(inv, "deposit_invoice_ids", ()) if d in known]
    vat_by_rate: dict[Decimal, Money] = {}
    if deposits and sum(d.totals.payable.amount for d in deposits) == prepaid.amount:
        net = Money(sum(d.totals.tax_exclusive.amount for d in deposits), inv.currency)
        for d in deposits:
            for b in d.totals.vat_breakdown:
                vat_by_rate[b.rate] = vat_by_rate.get(b.rate, Money.zero(inv.currency)) + b.tax_amount
    else:  # deposits unknown here: split the prepaid amount like the invoice's own total
        shares = vat_share(doc, prepaid)
        for v in shares:
            vat_by_rate[v.rate] = v.amount
        net = prepaid - money_sum((v.amount for v in shares), inv.currency)
    vat = tuple(VatAmount(v.rate, v.amount - vat_by_rate.get(v.rate, Money.zero(inv.currency))) for v in doc.vat)
    return replace(doc, lines=doc.lines + (SalesLine(net=-net, kind=DEPOSIT, label=f"Acomptes déduits {inv.number}"),),
                   vat=tuple(v for v in vat if not v.amount.is_zero), total=inv.totals.payable)
