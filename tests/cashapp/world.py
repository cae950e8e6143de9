"""A small receivables world for cash-application tests: ledger, services, builders.

Works on the in-memory ``FakeLedger`` (fast) or on the DynamoDB ledger of a moto
stack (pass ``ledger=wiring.ledger()``): the same services, the same assertions.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any

from chalicelib.domain.auth import CLERK, Actor
from chalicelib.domain.invoice import CREDIT_NOTE, Invoice
from chalicelib.domain.money import Money
from chalicelib.services.bank import BankService
from chalicelib.services.books import BooksService
from chalicelib.services.customers import CustomerService
from chalicelib.services.imports import ImportService
from chalicelib.services.invoice_numbers import number_ref_hook
from chalicelib.services.invoices import InvoiceHooks, InvoiceService
from chalicelib.services.payments import PaymentService
from chalicelib.services.ports import FixedClock, Ledger, PaymentGateway, UnitOfWork
from chalicelib.services.settings import SettingsService
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line
from tests.fakes import FakeLedger
from tests.unit.bank_samples import SELLER_IBAN

CLERK_ACTOR = Actor("clara", CLERK)
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=timezone.utc)
EUR = lambda s: Money.parse(s, "EUR")  # noqa: E731


class FakePayoutGateway(PaymentGateway):
    """Only what cash application asks of Stripe: a payout and its balance transactions."""

    def __init__(self) -> None:
        self.payouts: dict[str, dict[str, Any]] = {}
        self.calls = 0

    def add(self, payout_id: str, *transactions: tuple[str, int, int], currency: str = "EUR") -> int:
        """Transactions ``(type, amount, fee)``; returns the payout's net."""
        bts = [{"id": f"txn_{payout_id}_{i}", "type": t, "amount": a, "fee": f, "currency": currency, "source": None}
               for i, (t, a, f) in enumerate(transactions)]
        net = sum(a - f for _, a, f in transactions)
        bts.append({"id": f"txn_{payout_id}_po", "type": "payout", "amount": -net, "fee": 0, "currency": currency,
                    "source": payout_id})
        self.payouts[payout_id] = {"id": payout_id, "amount": net, "currency": currency, "arrival_date": None,
                                   "status": "paid", "balance_transactions": bts}
        return net

    def payout_details(self, payout_id: str) -> dict[str, Any]:
        from chalicelib.domain.errors import PaymentGatewayError

        self.calls += 1
        if payout_id not in self.payouts:
            raise PaymentGatewayError(f"No such payout: '{payout_id}'")
        return self.payouts[payout_id]

    # The rest of the port is not used by cash application.
    def ensure_customer(self, customer: Any) -> str: raise NotImplementedError  # noqa: E704
    def create_payment_link(self, **kw: Any) -> Any: raise NotImplementedError  # noqa: E704
    def deactivate_payment_link(self, link_id: str) -> None: raise NotImplementedError  # noqa: E704
    def create_checkout_session(self, **kw: Any) -> Any: raise NotImplementedError  # noqa: E704
    def collect_sepa_debit(self, **kw: Any) -> Any: raise NotImplementedError  # noqa: E704
    def refund(self, **kw: Any) -> str: raise NotImplementedError  # noqa: E704
    def verify_webhook(self, payload: bytes, signature: str | None) -> Any: raise NotImplementedError  # noqa: E704
    def setup_intent_details(self, setup_intent_id: str) -> Any: raise NotImplementedError  # noqa: E704


class World:
    def __init__(self, ledger: Ledger | None = None, now: datetime = NOW, seller: dict[str, Any] | None = None,
                 time_budget_s: float = 60.0) -> None:
        self.ledger = ledger if ledger is not None else FakeLedger()
        self.clock = FixedClock(now)
        self.settings = SettingsService(self.ledger, self.clock)
        self.settings.put_seller({**SELLER_INPUT, "iban": SELLER_IBAN, **(seller or {})}, Actor.system("test"))
        self.customers = CustomerService(self.ledger, self.clock, self.settings)
        self.invoices = InvoiceService(self.ledger, self.clock, self.settings, InvoiceHooks(on_issue=[number_ref_hook]))
        self.payments = PaymentService(self.ledger, self.clock, self.settings)
        self.gateway = FakePayoutGateway()
        self.bank = BankService(self.ledger, self.clock, self.settings, lambda: self.gateway,
                                time_budget_s=time_budget_s)
        self.imports = ImportService(self.ledger, self.clock, self.settings)
        self.books = BooksService(self.ledger, self.clock, self.settings)
        self._n = 0

    def customer(self, name: str = "Boulangerie Martin SARL", **extra: Any) -> Any:
        self._n += 1
        data = {**CUSTOMER_INPUT, "name": name, "email": f"compta{self._n}@example.com", **extra}
        data.pop("siren", None)
        data.pop("vat_number", None)
        return self.customers.create(data, CLERK_ACTOR)[0]

    def issued(self, customer_id: str, amount: str = "100.00", *, on: date | None = None, vat: str = "20",
               **extra: Any) -> Invoice:
        """An issued invoice whose total is ``amount`` x (1 + vat)."""
        if on is not None:
            self.clock.set(datetime(on.year, on.month, on.day, 9, 0, tzinfo=timezone.utc))
        draft, _ = self.invoices.create_draft({"customer_id": customer_id,
                                               "lines": [line(unit_price=amount, vat_rate=vat)], **extra}, CLERK_ACTOR)
        invoice = self.invoices.issue(draft.id, CLERK_ACTOR)
        if on is not None:
            self.clock.set(NOW)
        return invoice

    def credit_note(self, invoice: Invoice, amount: str) -> Invoice:
        """A credit note on ``invoice`` (kind credit_note, its own series), applied to it."""
        draft, _ = self.invoices.create_draft({"customer_id": invoice.customer_id,
                                               "lines": [line(unit_price=amount)]}, CLERK_ACTOR)
        uow = UnitOfWork(actor=CLERK_ACTOR, now=self.clock.now())
        uow.save_invoice(draft, replace(draft, kind=CREDIT_NOTE, related_invoice_id=invoice.id))
        self.ledger.commit(uow)
        note = self.invoices.issue(draft.id, CLERK_ACTOR)
        current = self.ledger.get_invoice(invoice.id)
        uow = UnitOfWork(actor=CLERK_ACTOR, now=self.clock.now())
        uow.save_invoice(current, current.apply_credit(note.totals.total, self.clock.now()), on=note.issue_date,
                         action="invoice.credited")
        self.ledger.commit(uow)
        return note

    def invoice(self, invoice_id: str) -> Invoice:
        return self.ledger.get_invoice(invoice_id)

    def import_statement(self, body: bytes, **kw: Any) -> Any:
        return self.bank.import_statement(body, CLERK_ACTOR, **kw)
