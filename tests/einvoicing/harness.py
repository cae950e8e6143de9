"""The e-invoicing services wired on in-memory fakes (no sockets), the way chalicelib/wiring.py wires them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chalicelib.adapters.einvoice_platform import LocalEInvoicePlatform, Registry
from chalicelib.adapters.mail_templates import render_mail
from chalicelib.domain.auth import CLERK, Actor
from chalicelib.services.credit_notes import CreditNoteService
from chalicelib.services.customers import CustomerService
from chalicelib.services.delivery import DeliveryService
from chalicelib.services.documents import DocumentService
from chalicelib.services.einvoicing import EInvoicingService, EInvoicingSettingsService
from chalicelib.services.invoices import InvoiceHooks, InvoiceService
from chalicelib.services.outbox import OutboxDrain
from chalicelib.services.pay import PayService, issue_hook
from chalicelib.services.payments import PaymentService
from chalicelib.services.ports import EmailMessage, FixedClock, Mailer
from chalicelib.services.recurring import RecurringService
from chalicelib.services.settings import SettingsService
from tests.conftest import CUSTOMER_INPUT, SELLER_INPUT
from tests.fakes import FakeDocumentStore, FakeLedger, RecordingPublisher

CLERK_ACTOR = Actor("clara", CLERK)
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
BASE = "https://ar.example"


class MemoryStore(FakeDocumentStore):
    """The shared in-memory store, counting writes (the issue path must store each document once)."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    def put(self, key: str, content: bytes, content_type: str) -> None:
        super().put(key, content, content_type)
        self.puts += 1


class RecordingMailer(Mailer):
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> str:
        self.sent.append(message)
        return f"ses-{len(self.sent):04d}"


@dataclass
class Harness:
    ledger: FakeLedger
    clock: FixedClock
    settings: SettingsService
    customers: CustomerService
    invoices: InvoiceService
    payments: PaymentService
    pay: PayService
    documents: DocumentService
    delivery: DeliveryService
    einvoicing_settings: EInvoicingSettingsService
    einvoicing: EInvoicingService
    credit_notes: CreditNoteService
    recurring: RecurringService
    store: MemoryStore
    mailer: RecordingMailer
    registry: Registry
    publisher: RecordingPublisher
    drain: OutboxDrain
    renders: list[str] = field(default_factory=list)

    def customer(self, **overrides: Any) -> Any:
        return self.customers.create({**CUSTOMER_INPUT, **overrides}, CLERK_ACTOR)[0]

    def draft(self, customer_id: str, lines: list[dict[str, Any]], **extra: Any) -> Any:
        return self.invoices.create_draft({"customer_id": customer_id, "lines": lines, **extra}, CLERK_ACTOR)[0]

    def issue(self, customer_id: str, lines: list[dict[str, Any]], **extra: Any) -> Any:
        return self.invoices.issue(self.draft(customer_id, lines, **extra).id, CLERK_ACTOR)

    def run_outbox(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for _ in range(5):
            report = self.drain.run(limit=1000).to_dict()
            for k, v in report.items():
                total[k] = total.get(k, 0) + v
            if not self.ledger.pending_outbox(self.clock.now()):
                break
        return total


def build(now: datetime = NOW, *, seller: dict[str, Any] | None = None) -> Harness:
    from chalicelib.adapters.documents.spec import render_from_spec

    ledger = FakeLedger()
    clock = FixedClock(now)
    settings = SettingsService(ledger, clock, ttl_s=0)
    settings.put_seller(seller or SELLER_INPUT, Actor.system("tests"))
    einvoicing_settings = EInvoicingSettingsService(ledger, clock, ttl_s=0)
    pay = PayService(ledger, clock, settings, lambda: None, BASE)
    store = MemoryStore()
    mailer = RecordingMailer()
    registry = Registry()
    renders: list[str] = []

    def render(invoice: Any, spec: Any) -> Any:
        renders.append(invoice.id)
        return render_from_spec(invoice, spec)

    documents = DocumentService(ledger, settings, einvoicing_settings, lambda: store, render, pay.pay_url)

    def portal_url(customer_id: str) -> str | None:
        return pay.portal_url(pay.portal_token(customer_id, Actor.system("delivery")))

    delivery = DeliveryService(ledger, clock, settings, documents, lambda: mailer, render_mail, pay.pay_url,
                               portal_url, einvoicing_settings)
    platform = LocalEInvoicePlatform(clock.now, registry)
    einvoicing = EInvoicingService(ledger, clock, einvoicing_settings, lambda: platform, documents,
                                   settings.timezone)
    hooks = InvoiceHooks(on_issue=[documents.deposits_hook, issue_hook, documents.issue_hook, einvoicing.issue_hook,
                                   delivery.issue_hook])
    invoices = InvoiceService(ledger, clock, settings, hooks)
    publisher = RecordingPublisher()

    def on_event(payload: dict[str, Any]) -> None:
        publisher.publish([payload])
        einvoicing.on_event(payload)

    drain = OutboxDrain(ledger, clock, {
        "event": on_event, "documents.store": documents.store_handler, "mail.invoice": delivery.mail_handler,
        "mail.invoice_copy": delivery.copy_handler, "einvoice.submit": einvoicing.submit_handler,
        "einvoice.report": einvoicing.report_handler, "stripe.deactivate_link": lambda payload: None})
    return Harness(ledger=ledger, clock=clock, settings=settings, customers=CustomerService(ledger, clock, settings),
                   invoices=invoices, payments=PaymentService(ledger, clock, settings), pay=pay,
                   documents=documents, delivery=delivery, einvoicing_settings=einvoicing_settings,
                   einvoicing=einvoicing, credit_notes=CreditNoteService(ledger, clock, invoices),
                   recurring=RecurringService(ledger, clock, invoices, settings.timezone), store=store,
                   mailer=mailer, registry=registry, publisher=publisher, drain=drain, renders=renders)
