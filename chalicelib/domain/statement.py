"""Account statements and settlement dates, from the invoices' dated histories (pure).

An issued invoice keeps its :class:`~.aggregates.ReceivableHistory`: the dated
movements of its open balance (issue, payments, credit notes, discounts,
write-offs, refunds, adjustments). The same entries build the report aggregates,
so a statement computed here always agrees with the aging of the customer.

Statement rows
--------------
- debits: invoices issued (their payable amount), refunds and chargebacks that
  reopen an invoice, refunds of unapplied cash, adjustments that raise a balance;
- credits: payments received (the whole payment, allocated or not, on its
  ``received_on``), credit notes, early-payment discounts, write-offs,
  adjustments that lower a balance (a voided invoice).

Payment entries of the invoices' histories are *not* rows: the payments
themselves are, so cash left unapplied on the account shows too. The closing
balance is then "still due on the invoices minus the customer's unapplied cash".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Sequence

from .aggregates import ADJUST, CREDIT, DISCOUNT, ISSUE, PAYMENT, REFUND, WRITE_OFF, ReceivableHistory
from .money import Money

INVOICE_ROW, CREDIT_ROW, DISCOUNT_ROW, WRITE_OFF_ROW, REVERSAL_ROW, ADJUST_ROW, PAYMENT_ROW, REFUND_ROW = (
    "invoice", "credit_note", "discount", "write_off", "reversal", "adjustment", "payment", "refund")
ROW_KINDS = (INVOICE_ROW, CREDIT_ROW, DISCOUNT_ROW, WRITE_OFF_ROW, REVERSAL_ROW, ADJUST_ROW, PAYMENT_ROW, REFUND_ROW)
_ORDER = {k: i for i, k in enumerate(ROW_KINDS)}
_ROW_OF = {ISSUE: INVOICE_ROW, CREDIT: CREDIT_ROW, DISCOUNT: DISCOUNT_ROW, WRITE_OFF: WRITE_OFF_ROW,
           REFUND: REVERSAL_ROW, ADJUST: ADJUST_ROW}


def paid_on(history: ReceivableHistory, as_of: date | None = None) -> date | None:
    """The day the invoice became fully settled (balance <= 0 and staying so up to ``as_of``).

    ``None`` when it still had a balance at the end of ``as_of`` (or of its history).
    A payment dated the same day as a refund counts on that day's net.
    """
    by_day: dict[date, int] = {}
    for e in history.entries:
        if as_of is None or e.on <= as_of:
            by_day[e.on] = by_day.get(e.on, 0) + e.balance_effect
    balance = 0
    settled: date | None = None
    for day in sorted(by_day):
        before = balance
        balance += by_day[day]
        if balance <= 0 < before:
            settled = day
        elif balance > 0:
            settled = None
    return settled if balance <= 0 and history.entries else None


@dataclass(frozen=True, slots=True)
class StatementRow:
    on: date
    kind: str
    amount: int                  # signed minor units: + debit (owed more), - credit
    reference: str               # invoice number, payment reference or id
    document_id: str             # invoice or payment id
    detail: str | None = None    # payment method


@dataclass(frozen=True, slots=True)
class Statement:
    customer_id: str
    currency: str
    start: date
    end: date
    opening: int
    rows: tuple[StatementRow, ...]

    @property
    def closing(self) -> int:
        return self.opening + sum(r.amount for r in self.rows)

    @property
    def debits(self) -> int:
        return sum(r.amount for r in self.rows if r.amount > 0)

    @property
    def credits(self) -> int:
        return -sum(r.amount for r in self.rows if r.amount < 0)

    def running(self) -> list[tuple[StatementRow, int]]:
        out, balance = [], self.opening
        for r in self.rows:
            balance += r.amount
            out.append((r, balance))
        return out

    def to_dict(self) -> dict[str, Any]:
        money = lambda minor: str(Money(minor, self.currency))  # noqa: E731
        return {"customer_id": self.customer_id, "currency": self.currency, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "opening_balance": money(self.opening),
                "total_debits": money(self.debits), "total_credits": money(self.credits),
                "closing_balance": money(self.closing),
                "rows": [{"date": r.on.isoformat(), "kind": r.kind, "reference": r.reference,
                          "document_id": r.document_id, "detail": r.detail,
                          "debit": money(r.amount) if r.amount > 0 else None,
                          "credit": money(-r.amount) if r.amount < 0 else None,
                          "balance": money(b)} for r, b in self.running()]}


@dataclass(frozen=True, slots=True)
class StatementInvoice:
    """What a statement needs of an issued invoice."""

    invoice_id: str
    number: str
    history: ReceivableHistory


@dataclass(frozen=True, slots=True)
class StatementPayment:
    payment_id: str
    currency: str
    received_on: date
    amount: int
    method: str
    reference: str | None = None
    refunded_unapplied: int = 0
    refunded_on: date | None = None   # when unapplied cash was given back (the payment's last change)


def statement(*, customer_id: str, currency: str, start: date, end: date,
              invoices: Iterable[StatementInvoice], payments: Iterable[StatementPayment]) -> Statement:
    """The statement of ``currency`` over ``[start, end]``: opening balance at the end of ``start - 1``."""
    rows: list[StatementRow] = []
    for inv in invoices:
        if inv.history.currency != currency:
            continue
        for e in inv.history.entries:
            if e.kind == PAYMENT:
                continue
            rows.append(StatementRow(e.on, _ROW_OF[e.kind], e.balance_effect, inv.number, inv.invoice_id))
    for p in payments:
        if p.currency != currency:
            continue
        rows.append(StatementRow(p.received_on, PAYMENT_ROW, -p.amount, p.reference or p.payment_id, p.payment_id,
                                 p.method))
        if p.refunded_unapplied:
            rows.append(StatementRow(p.refunded_on or p.received_on, REFUND_ROW, p.refunded_unapplied,
                                     p.reference or p.payment_id, p.payment_id))
    rows = [r for r in rows if r.amount]
    opening = sum(r.amount for r in rows if r.on < start)
    period = sorted((r for r in rows if start <= r.on <= end),
                    key=lambda r: (r.on, _ORDER[r.kind], r.reference, r.document_id))
    return Statement(customer_id=customer_id, currency=currency, start=start, end=end, opening=opening,
                     rows=tuple(period))


def balances_by_invoice(histories: Sequence[ReceivableHistory], as_of: date) -> dict[str, int]:
    """Open balance of each invoice at the end of ``as_of`` (zero balances left out)."""
    out = {}
    for h in histories:
        b = h.balance_as_of(as_of)
        if b:
            out[h.invoice_id] = b
    return out
