"""Builders for the dunning tests: a seller, customers with a payment history, invoices, fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from chalicelib.domain.auth import CLERK, Actor
from chalicelib.services.customers import CustomerService
from chalicelib.services.dunning import DunningService, as_of_instant
from chalicelib.services.dunning_config import DunningConfig
from chalicelib.services.invoices import InvoiceHooks, InvoiceService
from chalicelib.services.pay import issue_hook
from chalicelib.services.payments import PaymentService
from chalicelib.services.plans import PlanService
from chalicelib.services.ports import EmailMessage, FixedClock, Ledger, Mailer, SmsSender
from chalicelib.services.promises import PromiseService
from chalicelib.services.settings import SettingsService
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT, line

PARIS = ZoneInfo("Europe/Paris")
ALICE = Actor("alice", CLERK)
BASE_URL = "http://pay.test"


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=PARIS).astimezone(timezone.utc)


class RecordingMailer(Mailer):
    def __init__(self, fail_times: int = 0) -> None:
        self.sent: list[tuple[datetime | None, EmailMessage]] = []
        self.fail_times = fail_times
        self.clock: FixedClock | None = None

    def send(self, message: EmailMessage) -> str:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("MessageRejected")
        self.sent.append((self.clock.now() if self.clock else None, message))
        return f"ses-{len(self.sent)}"


class RecordingSms(SmsSender):
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, phone_e164: str, text: str, *, tags: dict[str, str] | None = None) -> str:
        self.sent.append((phone_e164, text))
        return f"sns-{len(self.sent)}"


class MemoryStore:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def put(self, key: str, content: bytes, content_type: str) -> None:
        self.files[key] = content

    def get(self, key: str) -> bytes:
        return self.files[key]

    def exists(self, key: str) -> bool:
        return key in self.files


@dataclass
class World:
    ledger: Ledger
    clock: FixedClock
    settings: SettingsService
    customers: CustomerService
    invoices: InvoiceService
    payments: PaymentService
    promises: PromiseService
    plans: PlanService
    dunning: DunningService
    mailer: RecordingMailer
    sms: RecordingSms
    store: MemoryStore
    extra: dict[str, Any] = field(default_factory=dict)

    def on(self, day: date, hour: int = 12) -> None:
        self.clock.set(at(day, hour))

    def sweep(self, day: date) -> Any:
        self.on(day)
        return self.dunning.run(as_of_instant(day, "Europe/Paris"))

    def customer(self, name: str, email: str, **extra: Any) -> str:
        c, _ = self.customers.create({**CUSTOMER_INPUT, "name": name, "email": email, **extra}, ALICE)
        return c.id

    def invoice(self, customer_id: str, issued_on: date, amount: str = "1000.00", days: int = 30) -> Any:
        self.on(issued_on, 10)
        draft, _ = self.invoices.create_draft({"customer_id": customer_id, "payment_terms": {"kind": "net", "days": days},
                                               "lines": [line(unit_price=amount)]}, ALICE)
        return self.invoices.issue(draft.id, ALICE)

    def pay(self, invoice: Any, on: date, amount: str | None = None) -> Any:
        self.on(on, 11)
        current = self.ledger.get_invoice(invoice.id)
        body = {"method": "bank_transfer", "received_on": on.isoformat()}
        if amount:
            body["amount"] = amount
        return self.payments.record_for_invoice(current.id, body, ALICE)

    def history(self, customer_id: str, *, start: date, days_late: list[int]) -> None:
        """Paid invoices: issued every 20 days from ``start`` (net 30), each paid ``days_late`` after due."""
        for n, late in enumerate(days_late):
            inv = self.invoice(customer_id, start + timedelta(days=20 * n), amount="500.00")
            self.pay(inv, inv.due_date + timedelta(days=late))

    def messages(self, customer_email: str) -> list[tuple[date, str]]:
        return [(when.astimezone(PARIS).date() if when else None, m.subject) for when, m in self.mailer.sent
                if customer_email in m.to]


def world(ledger: Ledger | None = None, *, mailer: RecordingMailer | None = None) -> World:
    from tests.fakes import FakeLedger

    ledger = ledger or FakeLedger()
    clock = FixedClock(at(date(2026, 1, 5)))
    settings = SettingsService(ledger, clock, ttl_s=0)
    settings.put_seller(SELLER_INPUT, Actor.system("test"))
    mailer = mailer or RecordingMailer()
    mailer.clock = clock
    sms = RecordingSms()
    store = MemoryStore()
    promises = PromiseService(ledger, clock, settings)
    plans = PlanService(ledger, clock, settings)
    service = DunningService(ledger, clock, settings, config=DunningConfig(ledger, clock), mailer=lambda: mailer,
                             sms=lambda: sms, store=lambda: store, public_base_url=BASE_URL, promises=promises,
                             plans=plans)
    return World(ledger=ledger, clock=clock, settings=settings, customers=CustomerService(ledger, clock, settings),
                 invoices=InvoiceService(ledger, clock, settings, InvoiceHooks(on_issue=[issue_hook])),
                 payments=PaymentService(ledger, clock, settings), promises=promises, plans=plans, dunning=service,
                 mailer=mailer, sms=sms, store=store)
