"""Builds the real adapters and services, lazily and once per process.

Routes and handlers call these getters; unit tests build services with fakes
directly and never come here. ``reset()`` forgets everything (tests that change
the environment between runs).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from .config import get_config
from .services.access import AccessService
from .services.customers import CustomerService
from .services.invoices import InvoiceService
from .services.outbox import OutboxDrain
from .services.payments import PaymentService
from .services.ports import Clock, EventPublisher, Ledger, SystemClock
from .services.settings import SettingsService


@lru_cache(maxsize=1)
def clock() -> Clock:
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
    return SettingsService(ledger(), clock())


@lru_cache(maxsize=1)
def access() -> AccessService:
    return AccessService(ledger(), clock())


@lru_cache(maxsize=1)
def customers() -> CustomerService:
    return CustomerService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def invoices() -> InvoiceService:
    return InvoiceService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def payments() -> PaymentService:
    return PaymentService(ledger(), clock(), settings())


@lru_cache(maxsize=1)
def event_publisher() -> EventPublisher:
    from .adapters.aws import client
    from .adapters.events import EventBridgePublisher

    return EventBridgePublisher(lambda: client("events"), get_config().event_bus_name)


def outbox_handlers() -> dict[str, Callable[[dict[str, Any]], None]]:
    """Topic -> handler. Later capabilities register their topics here."""
    return {
        "event": lambda payload: event_publisher().publish([payload]),
    }


@lru_cache(maxsize=1)
def outbox() -> OutboxDrain:
    return OutboxDrain(ledger(), clock(), outbox_handlers())


def reset() -> None:
    """Forget every cached adapter and service (and the configuration)."""
    for getter in (clock, dynamodb_connection, ledger, settings, access, customers, invoices, payments,
                   event_publisher, outbox):
        getter.cache_clear()
    get_config.cache_clear()
    from .adapters.aws import client

    client.cache_clear()
