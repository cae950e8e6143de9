"""Pure pieces and services on the in-memory ledger (no sockets): settlement dates, statements,
finance settings, credit checks and reports on the fake."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from chalicelib.domain.aggregates import ADJUST, CREDIT, ISSUE, PAYMENT, REFUND, LedgerEntry, ReceivableHistory
from chalicelib.domain.auth import CLERK, Actor
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.money import Money
from chalicelib.domain.risk import CreditHold
from chalicelib.domain.statement import StatementInvoice, StatementPayment, paid_on, statement
from chalicelib.services.credit import CreditService, FinanceSettings, FinanceSettingsService
from chalicelib.services.customers import CustomerService
from chalicelib.services.invoices import InvoiceHooks, InvoiceService
from chalicelib.services.payments import PaymentService
from chalicelib.services.ports import FixedClock
from chalicelib.services.reports import ReportService
from chalicelib.services.settings import SettingsService
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line
from tests.fakes import FakeLedger

D = date.fromisoformat
ALICE = Actor("alice", CLERK)


def history(*entries: tuple[str, str, int]) -> ReceivableHistory:
    return ReceivableHistory("inv_1", "cus_1", "EUR", D("2026-01-05"), D("2026-02-04"),
                             tuple(LedgerEntry(D(on), kind, amount) for on, kind, amount in entries))


def test_paid_on_is_the_day_the_balance_reached_zero_and_stayed_there():
    h = history(("2026-01-05", ISSUE, 1000), ("2026-01-20", PAYMENT, 400), ("2026-02-10", PAYMENT, 600))
    assert paid_on(h) == D("2026-02-10") and paid_on(h, D("2026-02-09")) is None
    reopened = history(("2026-01-05", ISSUE, 1000), ("2026-01-20", PAYMENT, 1000), ("2026-02-01", REFUND, 200))
    assert paid_on(reopened) is None and paid_on(reopened, D("2026-01-31")) == D("2026-01-20")
    voided = history(("2026-01-05", ISSUE, 1000), ("2026-01-06", CREDIT, 1000))
    assert paid_on(voided) == D("2026-01-06")
    assert paid_on(history(("2026-01-05", ISSUE, 500), ("2026-01-06", ADJUST, -500))) == D("2026-01-06")


def test_statement_opening_rows_closing_and_unapplied_cash():
    inv = StatementInvoice("inv_1", "F1", history(("2026-01-05", ISSUE, 1000), ("2026-01-20", PAYMENT, 400),
                                                 ("2026-02-03", CREDIT, 100)))
    pays = [StatementPayment("pay_1", "EUR", D("2026-01-20"), 500, "cheque", "CHQ 1"),   # 100 left unapplied
            StatementPayment("pay_2", "USD", D("2026-01-21"), 999, "card")]
    st = statement(customer_id="cus_1", currency="EUR", start=D("2026-01-10"), end=D("2026-02-28"),
                   invoices=[inv], payments=pays)
    assert st.opening == 1000                                  # the invoice, issued before the period
    assert [(r.kind, r.amount) for r in st.rows] == [("payment", -500), ("credit_note", -100)]
    assert st.closing == 400 == (1000 - 400 - 100) - 100      # still due minus unapplied cash
    d = st.to_dict()
    assert (d["opening_balance"], d["closing_balance"], d["total_credits"]) == ("10.00", "4.00", "6.00")


def test_finance_settings_validate_and_name_the_field():
    s = FinanceSettings.from_dict({"risk": {"weights": {"trend": 0}}, "credit": {"max_overdue_days": 45},
                                   "forecast": {"dispute_delay_days": 10}})
    assert s.risk.weights.trend == 0 and s.credit.max_overdue_days == 45 and s.forecast.dispute_delay_days == 10
    for bad, field in (({"credit": {"max_overdue_days": -1}}, "credit.max_overdue_days"),
                       ({"credit": {"days": 3}}, "credit.days"), ({"risk": {"weights": {"x": 1}}}, "risk.weights.x"),
                       ({"forecast": {"window_days": "7"}}, "forecast.window_days"), ({"colour": 1}, "colour")):
        with pytest.raises(ValidationError) as err:
            FinanceSettings.from_dict(bad)
        assert err.value.field == field


@pytest.fixture
def world():
    ledger = FakeLedger()
    clock = FixedClock(datetime(2026, 3, 2, 10, tzinfo=timezone.utc))
    settings = SettingsService(ledger, clock)
    settings.put_seller(SELLER_INPUT, Actor.system("t"))
    finance = FinanceSettingsService(ledger, clock)
    credit = CreditService(ledger, clock, settings, finance)
    invoices = InvoiceService(ledger, clock, settings, InvoiceHooks(on_issue=[credit.issue_hook],
                                                                    draft_guards=[credit.draft_guard]))
    customers = CustomerService(ledger, clock, settings)
    payments = PaymentService(ledger, clock, settings)
    reports = ReportService(ledger, clock, settings, finance)
    return ledger, clock, customers, invoices, payments, credit, reports


def test_credit_guard_and_exposure_on_the_fake_ledger(world):
    ledger, clock, customers, invoices, payments, credit, reports = world
    c, _ = customers.create({**CUSTOMER_INPUT, "credit_limit": "300.00"}, ALICE)
    draft, _ = invoices.create_draft({"customer_id": c.id, "lines": [line(unit_price="200.00")]}, ALICE)  # 240.00
    invoices.issue(draft.id, ALICE)
    payments.record({"customer_id": c.id, "amount": "50.00", "method": "cheque", "received_on": "2026-03-02",
                     "keep_excess_as_credit": True}, ALICE)
    exposure = credit.exposure(c, "EUR")
    assert (exposure.open_receivables, exposure.unapplied_cash, exposure.exposure) == (24000, 5000, 19000)
    with pytest.raises(CreditHold):
        invoices.create_draft({"customer_id": c.id, "lines": [line(unit_price="100.00")]}, ALICE)  # 190 + 120
    assert credit.check(c, Money(11000, "EUR")).allowed
    aging, _, read = reports.aging(as_of=D("2026-03-02"), currency="EUR")
    assert aging.total == 24000 and read <= 8
    assert ledger.query_aggregates("EUR", c.id, grain="y") and ledger.list_customers(on_hold=True).items == []
