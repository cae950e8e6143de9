"""Customer account statements: JSON, CSV and PDF, in the customer's language.

Reads: the customer, its invoices issued up to the end of the period (customer
index, issue dates in the key) and its payments received up to then (customer
index, received dates in the key): O(that customer's documents).

Rows and balances come from the invoices' dated histories (the same entries as
the report aggregates) and the payments themselves; see
:mod:`chalicelib.domain.statement`. Raises ``NotFound`` for an unknown customer,
``ValidationError`` for a period that ends before it starts.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from ..domain.errors import ValidationError
from ..domain.money import Money, check_currency
from ..domain.parties import Customer
from ..domain.statement import Statement, StatementInvoice, StatementPayment, statement
from .credit import all_pages, history_of, local_day
from .ports import Clock, InvoiceQuery, Ledger, PaymentQuery
from .settings import SettingsService

MAX_PERIOD_DAYS = 3 * 366


class StatementService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings

    def today(self) -> date:
        return self._clock.today(self._settings.timezone())

    def statement(self, customer_id: str, *, start: date | None = None, end: date | None = None,
                  currency: str | None = None) -> tuple[Statement, Customer]:
        """The statement of ``[start, end]`` (default: from the first of the end's month to today)."""
        today = self.today()
        end = end or today
        start = start or end.replace(day=1)
        if end < start:
            raise ValidationError(f"end {end.isoformat()} is before start {start.isoformat()}", field="end")
        if (end - start).days > MAX_PERIOD_DAYS:
            raise ValidationError(f"a statement covers at most {MAX_PERIOD_DAYS} days: shorten the period",
                                  field="start")
        customer = self._ledger.get_customer(customer_id)
        ccy = check_currency(currency or customer.currency)
        invoices, _ = all_pages(lambda c: self._ledger.query_invoices(
            InvoiceQuery(customer_id=customer_id, issued_to=end, limit=200, cursor=c), today))
        payments, _ = all_pages(lambda c: self._ledger.query_payments(
            PaymentQuery(customer_id=customer_id, received_to=end, limit=200, cursor=c)))
        tz = self._settings.timezone()
        docs = []
        for inv in invoices:
            h = history_of(inv)
            if h is not None:
                docs.append(StatementInvoice(inv.id, inv.number or inv.id, h))
        pays = [StatementPayment(payment_id=p.id, currency=p.currency, received_on=p.received_on,
                                 amount=p.amount.amount, method=p.method, reference=p.reference,
                                 refunded_unapplied=p.refunded_unapplied,
                                 refunded_on=local_day(p.updated_at, tz) if p.refunded_unapplied else None)
                for p in payments]
        return statement(customer_id=customer.id, currency=ccy, start=start, end=end, invoices=docs,
                         payments=pays), customer

    @staticmethod
    def to_csv(st: Statement, language: str) -> str:
        from ..adapters.documents.statement_pdf import entry_label, labels

        t = labels(language)
        money = lambda minor: str(Money(minor, st.currency))  # noqa: E731
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\r\n")
        w.writerow([t["date"], t["entry"], t["reference"], t["debit"], t["credit"], t["balance"], t["currency"]])
        w.writerow([st.start.isoformat(), t["opening"].format(d=st.start.isoformat()), "", "", "",
                    money(st.opening), st.currency])
        for row, balance in st.running():
            w.writerow([row.on.isoformat(), entry_label(row.kind, row.detail, language), row.reference,
                        money(row.amount) if row.amount > 0 else "", money(-row.amount) if row.amount < 0 else "",
                        money(balance), st.currency])
        w.writerow([st.end.isoformat(), t["closing"].format(d=st.end.isoformat()), "", money(st.debits),
                    money(st.credits), money(st.closing), st.currency])
        return out.getvalue()

    def to_pdf(self, st: Statement, customer: Customer, language: str) -> bytes:
        from ..adapters.documents.statement_pdf import render_statement_pdf

        seller = self._settings.seller_or_none()
        seller_name = seller.identity().get("legal_name", "") if seller else ""
        return render_statement_pdf(st, customer_name=customer.name, seller_name=str(seller_name or ""),
                                    language=language)


def present(st: Statement, customer: Customer, language: str) -> dict[str, Any]:
    return {"object": "statement", "customer_name": customer.name, "language": language, **st.to_dict()}
