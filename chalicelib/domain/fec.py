"""Accounting export: balanced journal entries and the French FEC file.

The FEC (Fichier des Écritures Comptables, article A47 A-1 du Livre des
procédures fiscales) is a text file with one line per entry line and these 18
columns, in this order, separated by tabs:

    JournalCode JournalLib EcritureNum EcritureDate CompteNum CompteLib CompAuxNum
    CompAuxLib PieceRef PieceDate EcritureLib Debit Credit EcritureLet DateLet
    ValidDate Montantdevise Idevise

Dates are ``YYYYMMDD``, amounts use a comma as decimal separator and no
thousands separator (``1440,00``), in the book currency (EUR); a line of a
document in another currency also gives its amount and currency in the last two
columns. The file is named ``<SIREN>FEC<closing date YYYYMMDD>.txt``.

Entries are built from plain inputs the caller fills from its records (sales
documents, payments with their allocations, early-payment discounts, write-offs,
Stripe payouts), with the French chart of accounts (PCG) by default:

========================= ===================================================================
sales journal (VE)        411 customer (auxiliary account per customer) debit, incl. VAT /
                          706 services, 707 goods, 708 charges re-invoiced credit, excl. VAT /
                          709 allowances debit / 44571 VAT collected credit, per rate;
                          a deposit invoice credits 4191; a credit note is the reverse
bank journal (BQ)         512 bank (or the Stripe balance account) debit / 411 credit, one line
                          per invoice the payment settles plus one for what is unapplied;
                          Stripe payout: 512 debit net + 627 fees debit / Stripe balance credit
misc. journal (OD)        escompte accordé: 665 debit excl. VAT + 44571 debit VAT / 411 credit;
                          write-off: 654 debit excl. VAT + 44571 debit VAT / 411 credit
========================= ===================================================================

Every entry is balanced (checked when it is built), every journal too
(:func:`check_balanced`). The 411 lines of an invoice and of what settles it
(payments, credit notes, discounts, write-offs) get the same lettering code
(``EcritureLet``) and the date of the last of them (``DateLet``) when they
settle it exactly within the export.

With ``vat_on_receipts`` (services, without the option for VAT on debits), the
VAT of a sales document is credited to 44574 (VAT awaiting receipt) and moved
to 44571 by the payment, in proportion to what each allocation pays
(:func:`vat_share`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import ValidationError
from .money import Money, money_sum

FEC_COLUMNS = ("JournalCode", "JournalLib", "EcritureNum", "EcritureDate", "CompteNum", "CompteLib", "CompAuxNum",
               "CompAuxLib", "PieceRef", "PieceDate", "EcritureLib", "Debit", "Credit", "EcritureLet", "DateLet",
               "ValidDate", "Montantdevise", "Idevise")
CSV_COLUMNS = ("journal_code", "journal_label", "entry_number", "entry_date", "account", "account_label",
               "auxiliary_account", "auxiliary_label", "piece_ref", "piece_date", "label", "debit", "credit",
               "lettering", "lettering_date", "validation_date", "currency_amount", "currency")

SERVICES, GOODS, ANCILLARY, ALLOWANCE, DEPOSIT = "services", "goods", "ancillary", "allowance", "deposit"
LINE_KINDS = (SERVICES, GOODS, ANCILLARY, ALLOWANCE, DEPOSIT)
INVOICE, CREDIT_NOTE, DEPOSIT_INVOICE = "invoice", "credit_note", "deposit"


class UnbalancedEntry(ValidationError):
    code = "unbalanced_entry"


# -- configuration ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Journal:
    code: str
    label: str


@dataclass(frozen=True, slots=True)
class AccountPlan:
    """Account numbers and journals, French PCG defaults; override what the accountant uses."""

    customers: str = "411"
    services: str = "706"
    goods: str = "707"
    ancillary: str = "708"
    allowances: str = "709"
    deposits: str = "4191"
    vat_collected: str = "44571"
    vat_pending: str = "44574"
    vat_by_rate: tuple[tuple[str, str], ...] = ()  # e.g. (("20", "445711"), ("10", "445712"))
    bank: str = "512"
    stripe_balance: str = "5122"
    bank_fees: str = "627"
    discounts_granted: str = "665"
    bad_debts: str = "654"
    sales_journal: Journal = Journal("VE", "Journal des ventes")
    bank_journal: Journal = Journal("BQ", "Journal de banque")
    misc_journal: Journal = Journal("OD", "Opérations diverses")
    labels: tuple[tuple[str, str], ...] = ()  # extra or overriding account labels

    def vat_account(self, rate: Decimal, pending: bool = False) -> str:
        if pending:
            return self.vat_pending
        key = _rate_text(rate)
        return dict(self.vat_by_rate).get(key, self.vat_collected)

    def revenue_account(self, kind: str) -> str:
        return {SERVICES: self.services, GOODS: self.goods, ANCILLARY: self.ancillary, ALLOWANCE: self.allowances,
                DEPOSIT: self.deposits}[kind]

    def label(self, account: str) -> str:
        custom = dict(self.labels)
        if account in custom:
            return custom[account]
        defaults = {
            self.customers: "Clients", self.services: "Prestations de services",
            self.goods: "Ventes de marchandises", self.ancillary: "Produits des activités annexes",
            self.allowances: "Rabais, remises et ristournes accordés",
            self.deposits: "Clients - avances et acomptes reçus", self.vat_collected: "TVA collectée",
            self.vat_pending: "TVA collectée en attente d'encaissement", self.bank: "Banque",
            self.stripe_balance: "Stripe", self.bank_fees: "Services bancaires et assimilés",
            self.discounts_granted: "Escomptes accordés", self.bad_debts: "Pertes sur créances irrécouvrables",
        }
        for rate, acct in self.vat_by_rate:
            defaults.setdefault(acct, f"TVA collectée {rate} %")
        return defaults.get(account, account)


def _rate_text(rate: Decimal) -> str:
    r = Decimal(rate)
    return str(r.quantize(Decimal(1)) if r == r.to_integral_value() else r.normalize())


# -- inputs ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CustomerAccount:
    """The customer's auxiliary account (CompAuxNum / CompAuxLib)."""

    code: str
    name: str


@dataclass(frozen=True, slots=True)
class SalesLine:
    """An amount excluding VAT for one revenue account (allowances are positive and debited)."""

    net: Money
    kind: str = SERVICES
    account: str | None = None  # overrides the plan's account for the kind
    label: str | None = None


@dataclass(frozen=True, slots=True)
class VatAmount:
    rate: Decimal
    amount: Money


@dataclass(frozen=True, slots=True)
class SalesDocument:
    """An issued invoice, deposit invoice or credit note (amounts positive, the kind gives the sides)."""

    id: str
    number: str
    kind: str
    issue_date: date
    customer: CustomerAccount
    lines: tuple[SalesLine, ...]
    vat: tuple[VatAmount, ...]
    total: Money
    settles: str | None = None  # a credit note: id of the invoice it credits (for lettering)
    vat_on_receipts: bool = False
    exchange_rate: Decimal | None = None  # book currency per unit of the document currency

    @classmethod
    def from_invoice(cls, invoice: Any, customer: CustomerAccount, *,
                     line_kind: Callable[[Any], str] | None = None, vat_on_receipts: bool = False,
                     exchange_rate: Decimal | None = None) -> SalesDocument:
        """From a :class:`chalicelib.domain.invoice.Invoice` that was issued.

        ``line_kind(line)`` says whether a line is ``services`` (default) or
        ``goods``; document allowances go to 709, charges to 708, a deposit
        invoice to 4191. Invoices that deduct a prepaid deposit (BT-113) are
        refused: the deduction needs the deposit's VAT split, give it as lines.
        """
        from .invoice import CREDIT_NOTE as INV_CREDIT_NOTE, DEPOSIT as INV_DEPOSIT, Invoice

        if not isinstance(invoice, Invoice) or invoice.number is None or invoice.issue_date is None:
            raise ValidationError("only issued invoices are exported to the books", field="invoice")
        t = invoice.totals
        if not t.prepaid.is_zero:
            raise ValidationError(f"invoice {invoice.number} deducts a prepaid amount: build its SalesDocument "
                                  "with explicit deposit lines", field="invoice")
        kind_of = line_kind or (lambda _line: SERVICES)
        nets: dict[str, Money] = {}
        for line in invoice.lines:
            k = DEPOSIT if invoice.kind == INV_DEPOSIT else kind_of(line)
            nets[k] = nets.get(k, Money.zero(invoice.currency)) + line.net_amount(invoice.currency)
        lines = [SalesLine(net=v, kind=k) for k, v in nets.items()]
        if not t.charge_total.is_zero:
            lines.append(SalesLine(net=t.charge_total, kind=ANCILLARY))
        if not t.allowance_total.is_zero:
            lines.append(SalesLine(net=t.allowance_total, kind=ALLOWANCE))
        vat = tuple(VatAmount(b.rate, b.tax_amount) for b in t.vat_breakdown if not b.tax_amount.is_zero)
        kind = {INV_CREDIT_NOTE: CREDIT_NOTE, INV_DEPOSIT: DEPOSIT_INVOICE}.get(invoice.kind, INVOICE)
        return cls(id=invoice.id, number=invoice.number, kind=kind, issue_date=invoice.issue_date, customer=customer,
                   lines=tuple(lines), vat=vat, total=t.total,
                   settles=invoice.related_invoice_id if kind == CREDIT_NOTE else None,
                   vat_on_receipts=vat_on_receipts, exchange_rate=exchange_rate)


@dataclass(frozen=True, slots=True)
class PaymentAllocation:
    invoice_id: str
    invoice_number: str
    amount: Money
    vat: tuple[VatAmount, ...] = ()  # the VAT it pays, when that VAT is due on receipt


@dataclass(frozen=True, slots=True)
class ReceivedPayment:
    """Cash received from a customer and what it settles; the rest is unapplied (customer credit)."""

    id: str
    date: date
    customer: CustomerAccount
    amount: Money
    allocations: tuple[PaymentAllocation, ...] = ()
    reference: str | None = None  # the bank entry reference, shown as PieceRef
    via_stripe: bool = False  # received on the Stripe balance rather than the bank account
    exchange_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Adjustment:
    """An early-payment discount granted or a write-off, on one invoice (amount incl. VAT, and its VAT)."""

    id: str
    date: date
    customer: CustomerAccount
    invoice_id: str
    invoice_number: str
    amount: Money
    vat: tuple[VatAmount, ...] = ()
    exchange_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StripePayout:
    id: str
    date: date
    net: Money  # what reached the bank
    fees: Money  # Stripe fees of the payout (see matching.reconcile_payout)


def vat_share(document: SalesDocument, amount: Money) -> tuple[VatAmount, ...]:
    """The VAT included in ``amount`` paid on ``document``, per rate, in proportion to its total."""
    if document.total.is_zero or not document.vat:
        return ()
    ratio_total = money_sum((v.amount for v in document.vat), amount.currency)
    vat_part = Money.of_decimal(amount.to_decimal() * ratio_total.to_decimal() / document.total.to_decimal(),
                                amount.currency)
    if vat_part.is_zero:
        return ()
    weights = [v.amount.amount for v in document.vat]
    if sum(weights) <= 0:
        return ()
    parts = vat_part.allocate(weights)
    return tuple(VatAmount(v.rate, p) for v, p in zip(document.vat, parts) if not p.is_zero)


# -- entries -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EntryLine:
    account: str
    account_label: str
    debit: Money
    credit: Money
    label: str
    aux_code: str | None = None
    aux_label: str | None = None
    currency_amount: Money | None = None  # the amount in the document's currency when not the book's
    letter_key: str | None = None  # which invoice a customer line belongs to (for lettering)
    lettering: str | None = None
    lettering_date: date | None = None

    def __post_init__(self) -> None:
        if self.debit.is_negative or self.credit.is_negative or (self.debit.is_zero == self.credit.is_zero):
            raise UnbalancedEntry(f"entry line on {self.account} must have either a debit or a credit, positive")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    journal: Journal
    number: str
    date: date
    piece_ref: str
    piece_date: date
    label: str
    lines: tuple[EntryLine, ...]
    valid_date: date

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise UnbalancedEntry(f"entry {self.number} ({self.piece_ref}) needs at least two lines")
        if self.total_debit != self.total_credit:
            raise UnbalancedEntry(f"entry {self.number} ({self.piece_ref}) is unbalanced: debits {self.total_debit}"
                                  f" != credits {self.total_credit}")

    @property
    def currency(self) -> str:
        return self.lines[0].debit.currency

    @property
    def total_debit(self) -> Money:
        return money_sum((line.debit for line in self.lines), self.lines[0].debit.currency)

    @property
    def total_credit(self) -> Money:
        return money_sum((line.credit for line in self.lines), self.lines[0].debit.currency)


@dataclass
class _Draft:
    journal: Journal
    date: date
    piece_ref: str
    piece_date: date
    label: str
    order: int
    lines: list[tuple[str, int, int, str, CustomerAccount | None, Money | None, str | None]] = field(
        default_factory=list)  # account, debit minor, credit minor, label, customer, original amount, letter key


class _Builder:
    def __init__(self, plan: AccountPlan, book_currency: str) -> None:
        self.plan = plan
        self.book = book_currency
        self.drafts: list[_Draft] = []

    def _rate(self, money: Money, rate: Decimal | None, what: str) -> Decimal | None:
        if money.currency == self.book:
            return None
        if rate is None or rate <= 0:
            raise ValidationError(f"{what} is in {money.currency}: give its exchange rate to {self.book}",
                                  field="exchange_rate")
        return rate

    def draft(self, journal: Journal, day: date, piece_ref: str, label: str, order: int,
              piece_date: date | None = None) -> _Draft:
        d = _Draft(journal, day, piece_ref, piece_date or day, label, order)
        self.drafts.append(d)
        return d

    def add(self, d: _Draft, account: str, amount: Money, *, debit: bool, label: str, rate: Decimal | None,
            customer: CustomerAccount | None = None, letter: str | None = None) -> None:
        if amount.is_zero:
            return
        if amount.is_negative:  # a negative amount is the other side
            amount, debit = -amount, not debit
        original = amount if rate is not None else None
        book = Money.of_decimal(amount.to_decimal() * rate, self.book) if rate is not None else amount
        if book.currency != self.book:
            raise ValidationError(f"{label}: amount in {book.currency} without an exchange rate to {self.book}",
                                  field="exchange_rate")
        d.lines.append((account, book.amount if debit else 0, 0 if debit else book.amount, label, customer,
                        original, letter))

    # -- inputs -> drafts --------------------------------------------------------------------------
    def sales(self, doc: SalesDocument, order: int) -> None:
        p = self.plan
        if doc.kind not in (INVOICE, CREDIT_NOTE, DEPOSIT_INVOICE):
            raise ValidationError(f"{doc.number}: kind must be invoice, credit_note or deposit", field="kind")
        for line in doc.lines:
            if line.kind not in LINE_KINDS:
                raise ValidationError(f"{doc.number}: line kind must be one of {', '.join(LINE_KINDS)}",
                                      field="lines")
            if line.net.currency != doc.total.currency:
                raise ValidationError(f"{doc.number}: a line is in {line.net.currency}, the document in "
                                      f"{doc.total.currency}", field="lines")
        ccy = doc.total.currency
        net = money_sum((-ln.net if ln.kind == ALLOWANCE else ln.net for ln in doc.lines), ccy)
        vat = money_sum((v.amount for v in doc.vat), ccy)
        if net + vat != doc.total:
            raise UnbalancedEntry(f"{doc.number}: lines {net} + VAT {vat} do not add up to the total {doc.total}")
        rate = self._rate(doc.total, doc.exchange_rate, f"document {doc.number}")
        credit_note = doc.kind == CREDIT_NOTE
        what = "Avoir" if credit_note else "Facture d'acompte" if doc.kind == DEPOSIT_INVOICE else "Facture"
        label = f"{what} {doc.number} - {doc.customer.name}"
        d = self.draft(p.sales_journal, doc.issue_date, doc.number, label, order)
        # invoice: customer debit, revenue and VAT credit; a credit note is the mirror image
        self.add(d, p.customers, doc.total, debit=not credit_note, label=label, rate=rate, customer=doc.customer,
                 letter=doc.settles if credit_note and doc.settles else doc.id)
        for ln in doc.lines:
            account = ln.account or p.revenue_account(ln.kind)
            is_allowance = ln.kind == ALLOWANCE
            self.add(d, account, ln.net, debit=credit_note != is_allowance, label=ln.label or label, rate=rate)
        for v in doc.vat:
            self.add(d, p.vat_account(v.rate, pending=doc.vat_on_receipts), v.amount, debit=credit_note,
                     label=f"{label} - TVA {_rate_text(v.rate)} %", rate=rate)

    def payment(self, pay: ReceivedPayment, order: int) -> None:
        p = self.plan
        if not pay.amount.is_positive:
            raise ValidationError(f"payment {pay.id}: amount must be positive", field="amount")
        allocated = money_sum((a.amount for a in pay.allocations), pay.amount.currency)
        if allocated > pay.amount:
            raise UnbalancedEntry(f"payment {pay.id}: allocations {allocated} exceed the payment {pay.amount}")
        rate = self._rate(pay.amount, pay.exchange_rate, f"payment {pay.id}")
        numbers = ", ".join(a.invoice_number for a in pay.allocations)
        label = f"Règlement {pay.customer.name}" + (f" - {numbers}" if numbers else "")
        d = self.draft(p.bank_journal, pay.date, pay.reference or pay.id, label[:200], order)
        self.add(d, p.stripe_balance if pay.via_stripe else p.bank, pay.amount, debit=True, label=label, rate=rate)
        for a in pay.allocations:
            self.add(d, p.customers, a.amount, debit=False, label=f"Règlement {a.invoice_number}", rate=rate,
                     customer=pay.customer, letter=a.invoice_id)
            for v in a.vat:  # VAT on receipts becomes due now
                self.add(d, p.vat_account(v.rate, pending=True), v.amount, debit=True,
                         label=f"TVA encaissée {a.invoice_number} {_rate_text(v.rate)} %", rate=rate)
                self.add(d, p.vat_account(v.rate), v.amount, debit=False,
                         label=f"TVA encaissée {a.invoice_number} {_rate_text(v.rate)} %", rate=rate)
        unapplied = pay.amount - allocated
        self.add(d, p.customers, unapplied, debit=False, label="Règlement non affecté (avoir client)", rate=rate,
                 customer=pay.customer, letter=None)
        self._fix_rounding(d)

    def adjustment(self, adj: Adjustment, order: int, *, write_off: bool) -> None:
        p = self.plan
        if not adj.amount.is_positive:
            raise ValidationError(f"{adj.id}: amount must be positive", field="amount")
        vat = money_sum((v.amount for v in adj.vat), adj.amount.currency)
        if vat > adj.amount:
            raise UnbalancedEntry(f"{adj.id}: its VAT {vat} exceeds its amount {adj.amount}")
        rate = self._rate(adj.amount, adj.exchange_rate, adj.id)
        what = "Perte sur créance" if write_off else "Escompte accordé"
        label = f"{what} {adj.invoice_number} - {adj.customer.name}"
        d = self.draft(p.misc_journal, adj.date, adj.invoice_number, label, order)
        self.add(d, p.bad_debts if write_off else p.discounts_granted, adj.amount - vat, debit=True, label=label,
                 rate=rate)
        for v in adj.vat:
            self.add(d, p.vat_account(v.rate), v.amount, debit=True,
                     label=f"{label} - TVA {_rate_text(v.rate)} %", rate=rate)
        self.add(d, p.customers, adj.amount, debit=False, label=label, rate=rate, customer=adj.customer,
                 letter=adj.invoice_id)
        self._fix_rounding(d)

    def payout(self, po: StripePayout, order: int) -> None:
        p = self.plan
        if po.net.currency != self.book or po.fees.currency != self.book:
            raise ValidationError(f"payout {po.id} is in {po.net.currency}: only {self.book} payouts are booked",
                                  field="currency")
        if po.net.is_negative or po.fees.is_negative:
            raise ValidationError(f"payout {po.id}: net and fees must not be negative", field="amount")
        label = f"Virement Stripe {po.id}"
        d = self.draft(p.bank_journal, po.date, po.id, label, order)
        self.add(d, p.bank, po.net, debit=True, label=label, rate=None)
        self.add(d, p.bank_fees, po.fees, debit=True, label=f"Frais Stripe {po.id}", rate=None)
        self.add(d, p.stripe_balance, po.net + po.fees, debit=False, label=label, rate=None)

    def _fix_rounding(self, d: _Draft) -> None:
        """Currency conversion rounds each line; put the cent difference on the largest line."""
        diff = sum(x[1] for x in d.lines) - sum(x[2] for x in d.lines)
        if diff == 0 or not d.lines:
            return
        i = max(range(len(d.lines)), key=lambda k: d.lines[k][1] + d.lines[k][2])
        acct, deb, cre, *rest = d.lines[i]
        if deb:
            deb -= diff
        else:
            cre += diff
        d.lines[i] = (acct, deb, cre, *rest)  # type: ignore[assignment]


def build_entries(*, sales: Iterable[SalesDocument] = (), payments: Iterable[ReceivedPayment] = (),
                  discounts: Iterable[Adjustment] = (), write_offs: Iterable[Adjustment] = (),
                  payouts: Iterable[StripePayout] = (), plan: AccountPlan | None = None, book_currency: str = "EUR",
                  validated_on: date | None = None) -> tuple[JournalEntry, ...]:
    """Balanced, numbered and lettered journal entries for a period, in date order.

    ``EcritureNum`` is ``<journal code><6-digit sequence>``, continuous per journal
    in date order. ``validated_on`` is the ``ValidDate`` of every entry (the day
    the period was closed); by default each entry's own date. Raises
    :class:`ValidationError` for inconsistent inputs (a document whose lines and
    VAT do not add up to its total, a foreign currency without a rate, ...).
    """
    plan = plan or AccountPlan()
    b = _Builder(plan, book_currency)
    order = 0
    for doc in sales:
        order += 1
        b.sales(doc, order)
        b._fix_rounding(b.drafts[-1])
    for pay in payments:
        order += 1
        b.payment(pay, order)
    for adj in discounts:
        order += 1
        b.adjustment(adj, order, write_off=False)
    for adj in write_offs:
        order += 1
        b.adjustment(adj, order, write_off=True)
    for po in payouts:
        order += 1
        b.payout(po, order)
    journal_rank = {plan.sales_journal.code: 0, plan.bank_journal.code: 1, plan.misc_journal.code: 2}
    drafts = sorted(b.drafts, key=lambda d: (d.date, journal_rank.get(d.journal.code, 9), d.order))
    counters: dict[str, int] = {}
    entries: list[JournalEntry] = []
    for d in drafts:
        counters[d.journal.code] = counters.get(d.journal.code, 0) + 1
        number = f"{d.journal.code}{counters[d.journal.code]:06d}"
        lines = tuple(
            EntryLine(account=acct, account_label=plan.label(acct), debit=Money(deb, book_currency),
                      credit=Money(cre, book_currency), label=label,
                      aux_code=customer.code if customer and acct == plan.customers else None,
                      aux_label=customer.name if customer and acct == plan.customers else None,
                      currency_amount=original, letter_key=letter if acct == plan.customers else None)
            for acct, deb, cre, label, customer, original, letter in d.lines)
        entries.append(JournalEntry(journal=d.journal, number=number, date=d.date, piece_ref=d.piece_ref,
                                    piece_date=d.piece_date, label=d.label, lines=lines,
                                    valid_date=validated_on or d.date))
    result = _letter(entries, plan)
    check_balanced(result)
    return result


def _lettering_code(n: int) -> str:
    """AA, AB, ..., AZ, BA, ... ZZ, AAA, ..."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    width = 2
    while n >= 26 ** width:
        n -= 26 ** width
        width += 1
    out = ""
    for _ in range(width):
        n, r = divmod(n, 26)
        out = letters[r] + out
    return out


def _letter(entries: Sequence[JournalEntry], plan: AccountPlan) -> tuple[JournalEntry, ...]:
    groups: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for ei, entry in enumerate(entries):
        for li, line in enumerate(entry.lines):
            if line.account == plan.customers and line.letter_key and line.aux_code:
                groups.setdefault((line.aux_code, line.letter_key), []).append((ei, li))
    codes: dict[tuple[int, int], tuple[str, date]] = {}
    n = 0
    for key in sorted(groups, key=lambda k: groups[k][0]):
        members = groups[key]
        debit = sum(entries[ei].lines[li].debit.amount for ei, li in members)
        credit = sum(entries[ei].lines[li].credit.amount for ei, li in members)
        if debit == 0 or debit != credit:
            continue
        last = max(entries[ei].date for ei, _ in members)
        code = _lettering_code(n)
        n += 1
        for m in members:
            codes[m] = (code, last)
    out = []
    for ei, entry in enumerate(entries):
        lines = tuple(replace(line, lettering=codes[(ei, li)][0], lettering_date=codes[(ei, li)][1])
                      if (ei, li) in codes else line for li, line in enumerate(entry.lines))
        out.append(replace(entry, lines=lines))
    return tuple(out)


def check_balanced(entries: Sequence[JournalEntry]) -> dict[str, tuple[Money, Money]]:
    """Debit and credit totals per journal; raises :class:`UnbalancedEntry` if any entry or journal is off."""
    totals: dict[str, tuple[Money, Money]] = {}
    numbers: set[str] = set()
    for e in entries:
        if e.total_debit != e.total_credit:
            raise UnbalancedEntry(f"entry {e.number} is unbalanced")
        if e.number in numbers:
            raise UnbalancedEntry(f"entry number {e.number} is used twice")
        numbers.add(e.number)
        debit, credit = totals.get(e.journal.code, (Money.zero(e.currency), Money.zero(e.currency)))
        totals[e.journal.code] = (debit + e.total_debit, credit + e.total_credit)
    for code, (debit, credit) in totals.items():
        if debit != credit:
            raise UnbalancedEntry(f"journal {code} is unbalanced: debits {debit} != credits {credit}")
    return totals


# -- output --------------------------------------------------------------------------------------------

def _clean(text: str | None) -> str:
    if not text:
        return ""
    return " ".join(text.replace("\t", " ").split())


def _amount(m: Money | None, decimal_comma: bool) -> str:
    if m is None:
        return ""
    text = str(m.to_decimal())
    return text.replace(".", ",") if decimal_comma else text


def _fec_date(d: date | None) -> str:
    return d.strftime("%Y%m%d") if d else ""


def _rows(entries: Sequence[JournalEntry], *, fec: bool) -> Iterable[list[str]]:
    fmt_date = _fec_date if fec else (lambda d: d.isoformat() if d else "")
    for e in entries:
        for line in e.lines:
            yield [e.journal.code, _clean(e.journal.label), e.number, fmt_date(e.date), line.account,
                   _clean(line.account_label), line.aux_code or "", _clean(line.aux_label), _clean(e.piece_ref),
                   fmt_date(e.piece_date), _clean(line.label), _amount(line.debit, fec), _amount(line.credit, fec),
                   line.lettering or "", fmt_date(line.lettering_date), fmt_date(e.valid_date),
                   _amount(line.currency_amount, fec), line.currency_amount.currency if line.currency_amount else ""]


def to_fec(entries: Sequence[JournalEntry]) -> str:
    """The FEC text: a header with the 18 column names, then one tab-separated line per entry line."""
    check_balanced(entries)
    out = ["\t".join(FEC_COLUMNS)]
    out.extend("\t".join(row) for row in _rows(entries, fec=True))
    return "\r\n".join(out) + "\r\n"


def to_csv(entries: Sequence[JournalEntry]) -> str:
    """The same lines as a plain CSV (comma separated, ISO dates, ``.`` decimals)."""
    check_balanced(entries)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_rows(entries, fec=False))
    return buf.getvalue()


def fec_filename(siren: str, closing_date: date) -> str:
    """``<SIREN>FEC<YYYYMMDD>.txt`` with the closing date of the fiscal year."""
    compact = "".join(siren.split())
    if len(compact) != 9 or not compact.isdigit():
        raise ValidationError("the FEC file name needs the company's 9-digit SIREN", field="siren")
    return f"{compact}FEC{closing_date:%Y%m%d}.txt"


def parse_fec(text: str) -> list[Mapping[str, str]]:
    """Read a FEC back (for tests and checks): one dict per line, keyed by column name."""
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln]
    header = lines[0].split("\t")
    if tuple(header) != FEC_COLUMNS:
        raise ValidationError("not a FEC file: the header must list the 18 FEC columns in order", field="file")
    return [dict(zip(header, ln.split("\t"))) for ln in lines[1:]]
