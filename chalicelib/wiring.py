"""Builds the real adapters and services, lazily and once per process.

Routes and handlers call these getters; unit tests build services with fakes
directly and never come here. ``reset()`` forgets everything (tests that change
the environment between runs).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from .config import get_config
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # services are imported by their getter: a cold start loads only what its request uses
    from .services.access import AccessService
    from .services.customers import CustomerService
    from .services.invoices import InvoiceService
    from .services.outbox import OutboxDrain
    from .services.payments import PaymentService
    from .services.ports import Clock, EventPublisher, Ledger
    from .services.settings import SettingsService


@lru_cache(maxsize=1)
def clock() -> Clock:
    from .services.ports import SystemClock

    return SystemClock()


@lru_cache(maxsize=1)
def dynamodb_connection() -> Any:
    from .adapters.dynamodb.models import configure

    cfg = get_config()
    return configure(table_name=cfg.table_name, region=cfg.region, host=cfg.aws_endpoint_url)


@lru_cache(maxsize=1)
def ledger() -> Ledger:
    from .adapters.dynamodb.ledger import DynamoLedger

    return DynamoLedger(dynamodb_connection())


@lru_cache(maxsize=1)
def settings() -> SettingsService:
    from .services.settings import SettingsService

    return SettingsService(ledger(), clock())


@lru_cache(maxsize=1)
def access() -> AccessService:
    from .services.access import AccessService

    return AccessService(ledger(), clock())


@lru_cache(maxsize=1)
def customers() -> CustomerService:
    from .services.customers import CustomerService

    return CustomerService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def invoices() -> InvoiceService:
    from .services.invoices import InvoiceHooks, InvoiceService
    from .services.invoice_numbers import number_ref_hook  # issue 8: by-number lookup, in the issue transaction
    from .services.pay import issue_hook

    service = InvoiceService(ledger(), clock(), settings(),
                          InvoiceHooks(on_issue=[issue_hook, credit().issue_hook, number_ref_hook], draft_guards=[credit().draft_guard],
                                       update_guards=[credit().update_guard]))
    return with_einvoice_hooks(service)  # documents, e-invoicing platform, delivery (docs/einvoicing.md)


@lru_cache(maxsize=1)
def payments() -> PaymentService:
    from .services.payments import PaymentService

    return PaymentService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def event_publisher() -> EventPublisher:
    from .adapters.aws import client
    from .adapters.events import EventBridgePublisher

    return EventBridgePublisher(lambda: client("events"), get_config().event_bus_name)


@lru_cache(maxsize=1)
def payment_gateway() -> Any:
    from .adapters.secrets import get_secret
    from .adapters.stripe_gateway import StripeGateway

    return StripeGateway(get_secret, get_config().stripe_api_base)


@lru_cache(maxsize=1)
def provider_events() -> Any:
    from .services.provider_events import ProviderEventService

    return ProviderEventService(ledger(), clock(), settings(), payment_gateway)


@lru_cache(maxsize=1)
def pay() -> Any:
    from .services.pay import PayService

    return PayService(ledger(), clock(), settings(), payment_gateway, get_config().public_base_url)


@lru_cache(maxsize=1)
def collections() -> Any:
    from .services.collections import CollectionService

    return CollectionService(ledger(), clock(), payment_gateway)


@lru_cache(maxsize=1)
def mailer() -> Any:
    from .adapters.aws import client
    from .adapters.mail import SesMailer

    cfg = get_config()
    return SesMailer(lambda: client("sesv2"), cfg.mail_from, configuration_set=cfg.ses_configuration_set)


@lru_cache(maxsize=1)
def sms() -> Any:
    from .adapters.aws import client
    from .adapters.sms import SnsSms

    return SnsSms(lambda: client("sns"), get_config().sms_sender_id)


@lru_cache(maxsize=1)
def documents_store() -> Any:
    from .adapters.aws import client
    from .adapters.storage import S3DocumentStore

    cfg = get_config()
    return S3DocumentStore(lambda: client("s3"), cfg.documents_bucket, retention_days=cfg.documents_retention_days)


# -- electronic invoices (docs/einvoicing.md): documents, credit notes, recurring billing, delivery, platform --

@lru_cache(maxsize=1)
def einvoicing_settings() -> Any:
    from .services.einvoicing import EInvoicingSettingsService

    return EInvoicingSettingsService(ledger(), clock())


def _render_documents(invoice: Any, spec: Any) -> Any:
    from .adapters.documents.spec import render_from_spec  # fpdf2, factur-x, lxml: on the first render only

    return render_from_spec(invoice, spec)


@lru_cache(maxsize=1)
def documents() -> Any:
    from .services.documents import DocumentService

    return DocumentService(ledger(), settings(), einvoicing_settings(), documents_store, _render_documents,
                           lambda invoice: pay().pay_url(invoice))


@lru_cache(maxsize=1)
def credit_notes() -> Any:
    from .services.credit_notes import CreditNoteService

    return CreditNoteService(ledger(), clock(), invoices())


@lru_cache(maxsize=1)
def recurring() -> Any:
    from .services.recurring import RecurringService

    from .services.recurring import RecurringHooks

    return RecurringService(ledger(), clock(), invoices(), lambda: settings().timezone(),
                            RecurringHooks(schedule_guards=[credit().schedule_guard],        # credit holds (issue 6)
                                           run_hooks=[credit().recurring_run_hook]))


def _render_mail(name: str, lang: str, **context: Any) -> Any:
    from .adapters.mail_templates import render_mail

    return render_mail(name, lang, **context)


def _portal_url(customer_id: str) -> str | None:
    from .domain.auth import Actor

    return pay().portal_url(pay().portal_token(customer_id, Actor.system("delivery")))


@lru_cache(maxsize=1)
def delivery() -> Any:
    from .services.delivery import DeliveryService

    return DeliveryService(ledger(), clock(), settings(), documents(), mailer, _render_mail,
                           lambda invoice: pay().pay_url(invoice), _portal_url, einvoicing_settings())


@lru_cache(maxsize=1)
def einvoice_platform() -> Any:
    from .adapters.einvoice_platform import LocalEInvoicePlatform

    return LocalEInvoicePlatform(lambda: clock().now())


@lru_cache(maxsize=1)
def einvoicing() -> Any:
    from .services.einvoicing import EInvoicingService

    return EInvoicingService(ledger(), clock(), einvoicing_settings(), einvoice_platform, documents(),
                             lambda: settings().timezone())


def with_einvoice_hooks(service: InvoiceService) -> InvoiceService:
    """Deposits are deducted before the other issue hooks (the pay link and the SEPA debit see what is
    really due); the document is rendered after them (it prints the pay link and payment means they set),
    then the platform submission and the email are queued."""
    service.hooks.on_issue.insert(0, documents().deposits_hook)
    service.hooks.on_issue.extend([documents().issue_hook, einvoicing().issue_hook, delivery().issue_hook])
    return service


def einvoice_outbox_handlers() -> dict[str, Callable[[dict[str, Any]], None]]:
    return {
        "documents.store": lambda payload: documents().store_handler(payload),
        "mail.invoice": lambda payload: delivery().mail_handler(payload),
        "mail.invoice_copy": lambda payload: delivery().copy_handler(payload),
        "einvoice.submit": lambda payload: einvoicing().submit_handler(payload),
        "einvoice.report": lambda payload: einvoicing().report_handler(payload),
    }


def einvoice_event_handler(publish: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """The business event handler, then: an ``invoice.paid`` of a submitted invoice is reported to the
    e-invoicing platform (queued once per event)."""

    def handle(payload: dict[str, Any]) -> None:
        publish(payload)
        if payload.get("type") == "invoice.paid":
            einvoicing().on_event(payload)

    return handle


EINVOICE_GETTERS = (einvoicing_settings, documents, credit_notes, recurring, delivery, einvoice_platform, einvoicing)


def outbox_handlers() -> dict[str, Callable[[dict[str, Any]], None]]:
    """Topic -> handler. Later capabilities register their topics here."""
    from .services.pay import deactivate_link_handler

    return {
        "event": einvoice_event_handler(lambda payload: event_publisher().publish([payload])),
        "stripe.deactivate_link": deactivate_link_handler(payment_gateway),
        "stripe.collect": collections().handler(),
        "import.activate": lambda payload: imports().resume(payload["import_id"]),  # docs/cash-application.md
        **einvoice_outbox_handlers(),
        **dunning_outbox_handlers(),
        **cashapp_outbox_handlers(),
    }


@lru_cache(maxsize=1)
def outbox() -> OutboxDrain:
    from .services.outbox import OutboxDrain

    return OutboxDrain(ledger(), clock(), outbox_handlers())


@lru_cache(maxsize=1)
def finance_settings() -> Any:
    from .services.credit import FinanceSettingsService

    return FinanceSettingsService(ledger(), clock())


@lru_cache(maxsize=1)
def credit() -> Any:
    from .services.credit import CreditService

    return CreditService(ledger(), clock(), settings(), finance_settings())


@lru_cache(maxsize=1)
def reports() -> Any:
    from .services.reports import ReportService

    return ReportService(ledger(), clock(), settings(), finance_settings())


@lru_cache(maxsize=1)
def statements() -> Any:
    from .services.statements import StatementService

    return StatementService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def reconcile() -> Any:
    from .services.reconcile import ReconcileService

    return ReconcileService(ledger(), clock(), settings())


# -- cash application, receivable imports, accounting export (issue 8, docs/cash-application.md) --

@lru_cache(maxsize=1)
def bank() -> Any:
    from .services.bank import BankService

    return BankService(ledger(), clock(), settings(), payment_gateway)


@lru_cache(maxsize=1)
def imports() -> Any:
    from .services.imports import ImportService

    return ImportService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def books() -> Any:
    from .services.books import BooksService

    return BooksService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def fec_exports() -> Any:
    from .adapters.codec import decode, encode
    from .services.fec_exports import FecExportService

    return FecExportService(ledger(), clock(), books(), documents_store, encode=encode, decode=decode)


def cashapp_outbox_handlers() -> dict[str, Callable[[dict[str, Any]], None]]:
    return {"books.fec_export": lambda payload: fec_exports().handler(payload)}


CASHAPP_GETTERS = (bank, imports, books, fec_exports)


# -- dunning (issue 5, docs/dunning.md): the sweep, promises, payment plans, timeline, penalties ----------

@lru_cache(maxsize=1)
def dunning_config() -> Any:
    from .services.dunning_config import DunningConfig

    return DunningConfig(ledger(), clock())


@lru_cache(maxsize=1)
def promises() -> Any:
    from .services.promises import PromiseService

    return PromiseService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def plans() -> Any:
    from .services.plans import PlanService

    return PlanService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def dunning() -> Any:
    from .services.dunning import DunningService

    return DunningService(ledger(), clock(), settings(), config=dunning_config(), mailer=mailer, sms=sms,
                          store=documents_store, public_base_url=get_config().public_base_url,
                          promises=promises(), plans=plans())


@lru_cache(maxsize=1)
def timeline() -> Any:
    from .services.timeline import TimelineService

    return TimelineService(ledger(), clock())


@lru_cache(maxsize=1)
def penalties() -> Any:
    from .services.penalty import PenaltyService

    return PenaltyService(ledger(), clock(), settings(), dunning_config(), invoices, documents_store, timeline)


@lru_cache(maxsize=1)
def disputes() -> Any:
    from .services.disputes import DisputeWorkflow

    return DisputeWorkflow(ledger(), clock(), credit_notes)


def dunning_outbox_handlers() -> dict[str, Callable[[dict[str, Any]], None]]:
    return {
        "dunning.mark_step": lambda payload: dunning().mark_step(payload),
        "dunning.refresh_customer": lambda payload: dunning().refresh_customer(payload),
        "dunning.customer_changed": lambda payload: dunning().refresh_customer({**payload, "refresh_profile": False}),
        "dunning.rewake": lambda payload: dunning().rewake(payload),
        "dunning.plan_mail": lambda payload: dunning().plan_mail(payload),
    }


DUNNING_GETTERS = (dunning_config, promises, plans, dunning, timeline, penalties, disputes)


def reset() -> None:
    """Forget every cached adapter and service (and the configuration)."""
    for cashapp_getter in CASHAPP_GETTERS:
        cashapp_getter.cache_clear()
    for finance_getter in (finance_settings, credit, reports, statements, reconcile):
        finance_getter.cache_clear()
    for getter in (clock, dynamodb_connection, ledger, settings, access, customers, invoices, payments,
                   event_publisher, outbox, payment_gateway, provider_events, pay, collections, mailer, sms,
                   documents_store):
        getter.cache_clear()
    for einvoice_getter in EINVOICE_GETTERS:
        einvoice_getter.cache_clear()
    for dunning_getter in DUNNING_GETTERS:
        dunning_getter.cache_clear()
    get_config.cache_clear()
    from .adapters import secrets
    from .adapters.aws import client

    client.cache_clear()
    secrets.forget()
