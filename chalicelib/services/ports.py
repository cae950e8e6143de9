"""Ports: what the use cases need from the outside world, as ABCs and records.

Adapters (DynamoDB, EventBridge, ...) implement these; unit tests pass the
in-memory fakes from ``tests/fakes.py``-style modules instead of patching.

Writes go through a :class:`UnitOfWork`: a use case collects every change it
makes (entities with optimistic versions, counters, audit entries, outbox
messages, idempotency claims) and the ledger commits them atomically, in one
DynamoDB ``TransactWriteItems``. Nothing is ever done "after returning".
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Generic, Iterable, Sequence, TypeVar
from zoneinfo import ZoneInfo

from typing import TYPE_CHECKING

from ..domain.errors import ConcurrencyConflict
from ..domain.ids import new_id

if TYPE_CHECKING:  # imported where used: a request pays only for the domain modules it touches (cold start)
    from ..domain.aggregates import AggregateDelta, AggregateKey
    from ..domain.auth import Actor, ApiKey
    from ..domain.bank_transaction import BankTransaction, ImportRecord
    from ..domain.collections import Dispute, PaymentPlan, Promise, Task
    from ..domain.dunning_record import ActivityEntry, DunningRecord
    from ..domain.invoice import Invoice
    from ..domain.parties import Customer
    from ..domain.payment import Payment
    from ..domain.provider import IntentState
    from ..domain.recurring import RecurringSchedule

T = TypeVar("T")


# -- time ---------------------------------------------------------------------------------------

class Clock(ABC):
    @abstractmethod
    def now(self) -> datetime:
        """Current instant, timezone-aware UTC."""

    def today(self, tz: str) -> date:
        """Calendar date in time zone ``tz`` (all due / overdue dates are seller-local)."""
        return self.now().astimezone(ZoneInfo(tz)).date()


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock(Clock):
    """A clock that stays where it is put (tests, replays, seeding history)."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = now

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self._now = self._now + timedelta(**delta)


# -- pages & queries ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    # Items the store examined to fill this page (filters on non-key attributes
    # read more than they return; the API reports it so callers can see the cost).
    scanned: int = 0
    # How the store served the query (index, key range, filters, read cap): shown in list responses.
    plan: str | None = None


@dataclass(frozen=True)
class InvoiceQuery:
    customer_id: str | None = None
    status: str | None = None
    due_before: date | None = None   # due_date < due_before
    due_after: date | None = None    # due_date > due_after
    limit: int = 50
    cursor: str | None = None
    # Filters on non-key attributes (applied to the Query the keys above select).
    collection_status: str | None = None
    dispute_status: str | None = None
    # Finance filters (issue 6): issue dates inclusive, amounts in minor units on the total.
    issued_from: date | None = None
    issued_to: date | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    currency: str | None = None
    dunning_step: str | None = None
    # None (the index's order), "due_date", "-due_date", "amount", "-amount" (total).
    sort: str | None = None


INVOICE_SORTS = ("due_date", "-due_date", "amount", "-amount")
PAYMENT_SORTS = ("received_on", "-received_on", "amount", "-amount")
# Sorting on something no index orders by reads the whole selection first: at most this many items.
SORT_READ_CAP = 2000


@dataclass(frozen=True)
class PaymentQuery:
    customer_id: str | None = None
    unapplied: bool | None = None
    received_from: date | None = None  # inclusive
    received_to: date | None = None    # inclusive
    limit: int = 50
    cursor: str | None = None
    # Finance filters (issue 6): amounts in minor units.
    method: str | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    currency: str | None = None
    # None (newest first), "received_on", "-received_on", "amount", "-amount".
    sort: str | None = None


# -- records that are not business entities --------------------------------------------------

@dataclass(frozen=True)
class AuditEntry:
    id: str
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor, "action": self.action,
                "entity_type": self.entity_type, "entity_id": self.entity_id,
                "before": self.before, "after": self.after}


@dataclass(frozen=True)
class OutboxMessage:
    """Work that must follow a committed change (events, documents, emails, provider calls)."""

    id: str
    topic: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int = 0
    not_before: datetime | None = None
    last_error: str | None = None

    @classmethod
    def new(cls, topic: str, payload: dict[str, Any], now: datetime) -> OutboxMessage:
        return cls(id=new_id("msg"), topic=topic, payload=payload, created_at=now)


@dataclass(frozen=True)
class IdempotencyRecord:
    """Ties an Idempotency-Key to the resource its first request created."""

    scope: str          # the API key name: keys of different clients never collide
    key: str
    request_hash: str
    resource_type: str
    resource_id: str
    created_at: datetime


@dataclass(frozen=True)
class RefRecord:
    """A small keyed fact: a processed webhook event, a cash marker, a pay token, a batch..."""

    kind: str
    value: str
    target: str
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    ttl_days: int | None = None  # expire automatically (DynamoDB TTL) after this many days


@dataclass(frozen=True)
class SettingsDoc:
    name: str
    data: dict[str, Any]
    updated_at: datetime
    version: int = 0


# -- unit of work -------------------------------------------------------------------------------

if TYPE_CHECKING:
    Entity = Customer | Invoice | Payment | ApiKey | SettingsDoc | IntentState | Task | Dispute | Promise | PaymentPlan
    Entity = Entity | RecurringSchedule  # type: ignore[misc]  # monthly recurring billing (issue 3)
    # Cash application (bank transactions) and receivable imports:
    Entity = Entity | BankTransaction | ImportRecord  # type: ignore[misc]


@dataclass(frozen=True)
class EntityPut:
    entity: Any
    expected_version: int | None  # None: must not exist yet


@dataclass(frozen=True)
class CounterPut:
    key: str
    value: int
    expected: int  # 0: the counter must not exist yet


@dataclass(frozen=True)
class RecordPut:
    """An append-only record (audit entry, outbox message, idempotency claim)."""

    record: AuditEntry | OutboxMessage | IdempotencyRecord | RefRecord
    must_not_exist: bool = True


Operation = EntityPut | CounterPut | RecordPut


@dataclass(frozen=True)
class DunningTouch:
    """Keep an invoice's dunning record in step with a change, in the same transaction (issue 5).

    An upsert of some attributes only (the sweep's sent records and leases are left alone);
    it bumps the record's version so a sweep holding an older copy fails its conditional write.
    ``wake`` puts the record at the head of the due index (the next sweep re-decides it).
    """

    invoice_id: str
    customer_id: str
    invoice: dict[str, Any] | None = None
    customer: dict[str, Any] | None = None
    promises: tuple[dict[str, Any], ...] | None = None
    wake: bool = False


# Dunning (issue 5): per-invoice records, their attribute touches and timeline entries.
if TYPE_CHECKING:
    Entity = Entity | DunningRecord  # type: ignore[misc]
Operation = Operation | DunningTouch  # type: ignore[misc]


DEACTIVATE_LINK_TOPIC = "stripe.deactivate_link"  # payload {"link_ids": [...]} (older messages: {"link_id"})


@dataclass
class UnitOfWork:
    """Changes of one use case, committed atomically by :meth:`Ledger.commit`.

    Invoices are saved through :meth:`save_invoice`, which also records the
    report aggregates' deltas (aging, DSO...) so they commit in the same
    transaction as the change: reports never lag the ledger.
    """

    actor: Actor
    now: datetime
    operations: list[Operation] = field(default_factory=list)
    aggregate_deltas: list[AggregateDelta] = field(default_factory=list)

    def create(self, entity: T) -> T:
        from ..domain.invoice import DRAFT, Invoice

        if isinstance(entity, Invoice) and entity.status != DRAFT:
            raise TypeError("issued invoices are written with save_invoice (aggregates must follow)")
        created = dataclasses.replace(entity, version=1)  # type: ignore[type-var]
        self.operations.append(EntityPut(created, expected_version=None))
        return created

    def save_invoice(self, before: Invoice | None, after: Invoice, *, on: date | None = None,
                     action: str | None = None, note: dict[str, Any] | None = None) -> Invoice:
        """Save a changed invoice (or, with ``before=None``, create one that is already issued,
        e.g. an imported invoice) with its aggregate deltas and, with ``action``, an audit entry.

        ``on`` is the business date of a money movement (a payment's received_on,
        a credit note's date); it is required when the open balance changes.
        """
        from ..domain.aggregates import ReceivableHistory, deltas_for_invoice_change, entries_for_change

        after = self._retire_payment_link(before, after)
        stored = (ReceivableHistory.from_dict(before.ledger_history)
                  if before is not None and before.ledger_history else None)
        entries = entries_for_change(before, after, on=on or self.now.date())
        if entries and on is None:
            raise ValueError(f"invoice {after.id}: a change of its balance needs its business date (on=)")
        deltas, history = deltas_for_invoice_change(before, after, on=on or self.now.date(), history=stored)
        if history is not None and (stored is None or history != stored):
            after = dataclasses.replace(after, ledger_history=history.to_dict())
        self.aggregate_deltas.extend(deltas)
        if before is None:
            saved = dataclasses.replace(after, version=1)
            self.operations.append(EntityPut(saved, expected_version=None))
        else:
            saved = self._save(after)
        if action:
            from .common import diff

            b, a = diff(before.to_dict() if before else None, saved.to_dict())
            self.audit(action, "invoice", saved.id, b, {**(a or {}), **(note or {})})
        self._sync_dunning(before, saved)
        return saved

    def _retire_payment_link(self, before: Invoice | None, after: Invoice) -> Invoice:
        """A provider payment link is for one amount: once the invoice is no longer open or its amount
        due moved (paid, partly paid, credited, written off, refunded, charged back...), whatever path
        changed it, the link is deactivated through the outbox and forgotten, so nobody pays the old
        amount twice; the Pay button creates a link for the new amount when there is one."""
        from ..domain.invoice import OPEN

        link = after.payment_link
        if before is None or not link or link != before.payment_link:
            return after  # no link, or this change sets a new one (the caller retires the old one)
        debit_started = after.collection_status == "processing" and before.collection_status != "processing"
        if after.status == OPEN and after.amount_due == before.amount_due and not debit_started:
            return after  # (a SEPA debit in flight collects the amount: the link must not be paid too)
        self.deactivate_payment_link(str(link["id"]))
        return dataclasses.replace(after, payment_link=None)

    def deactivate_payment_link(self, link_id: str) -> None:
        """Deactivate a provider payment link after the commit (outbox topic ``stripe.deactivate_link``):
        one message per unit of work, however many links it retires."""
        for i, op in enumerate(self.operations):
            if (isinstance(op, RecordPut) and isinstance(op.record, OutboxMessage)
                    and op.record.topic == DEACTIVATE_LINK_TOPIC):
                ids = list(op.record.payload.get("link_ids", ()))
                if link_id not in ids:
                    self.operations[i] = dataclasses.replace(op, record=dataclasses.replace(
                        op.record, payload={**op.record.payload, "link_ids": [*ids, link_id]}))
                return
        self.emit(DEACTIVATE_LINK_TOPIC, {"link_ids": [link_id]})

    def save(self, entity: T) -> T:
        """Write ``entity`` if nobody changed it since it was read (optimistic lock)."""
        from ..domain.invoice import Invoice

        if isinstance(entity, Invoice):
            raise TypeError("invoices are written with save_invoice (aggregates must follow)")
        return self._save(entity)

    def _save(self, entity: T) -> T:
        current = entity.version  # type: ignore[attr-defined]
        saved = dataclasses.replace(entity, version=current + 1)  # type: ignore[type-var]
        self.operations.append(EntityPut(saved, expected_version=current))
        return saved

    def advance_counter(self, key: str, expected: int, value: int) -> None:
        self.operations.append(CounterPut(key=key, value=value, expected=expected))

    def audit(self, action: str, entity_type: str, entity_id: str, before: dict[str, Any] | None,
              after: dict[str, Any] | None) -> None:
        self.operations.append(RecordPut(AuditEntry(
            id=new_id("aud"), at=self.now, actor=self.actor.name, action=action, entity_type=entity_type,
            entity_id=entity_id, before=before, after=after)))

    def emit(self, topic: str, payload: dict[str, Any], *, not_before: datetime | None = None) -> None:
        msg = OutboxMessage.new(topic, payload, self.now)
        if not_before is not None:
            msg = dataclasses.replace(msg, not_before=not_before)
        self.operations.append(RecordPut(msg))

    def put_ref(self, kind: str, value: str, target: str, data: dict[str, Any] | None = None, *,
                must_not_exist: bool = True, ttl_days: int | None = None) -> None:
        """Write a keyed fact; with ``must_not_exist`` the commit fails (kind ``ref:<kind>``) if it exists."""
        self.operations.append(RecordPut(RefRecord(kind=kind, value=value, target=target, data=data or {},
                                                   created_at=self.now, ttl_days=ttl_days), must_not_exist))

    def claim_idempotency(self, record: IdempotencyRecord | None) -> None:
        if record is not None:
            self.operations.append(RecordPut(record))

    # -- dunning (issue 5) ----------------------------------------------------------------------
    def _sync_dunning(self, before: Invoice | None, after: Invoice) -> None:
        """Every invoice change rewrites the dunning record's projection in this transaction; a change
        that may move the next action (status, amount due, dispute, chargeback, collection) wakes it."""
        from ..domain.dunning_record import invoice_projection, projection_changed

        projection = invoice_projection(after)
        if projection is None:
            return
        previous = invoice_projection(before) if before is not None else None
        if previous == projection:
            return
        self.touch_dunning(after.id, after.customer_id, invoice=projection,
                           wake=projection_changed(previous, projection))

    def touch_dunning(self, invoice_id: str, customer_id: str, *, invoice: dict[str, Any] | None = None,
                      customer: dict[str, Any] | None = None, promises: Sequence[dict[str, Any]] | None = None,
                      wake: bool = False) -> None:
        """Update some attributes of a dunning record (one operation per record: touches merge)."""
        for i, op in enumerate(self.operations):
            if isinstance(op, DunningTouch) and op.invoice_id == invoice_id:
                self.operations[i] = dataclasses.replace(
                    op, invoice=invoice if invoice is not None else op.invoice,
                    customer=customer if customer is not None else op.customer,
                    promises=tuple(promises) if promises is not None else op.promises, wake=op.wake or wake)
                return
        self.operations.append(DunningTouch(invoice_id, customer_id, invoice=invoice, customer=customer,
                                            promises=tuple(promises) if promises is not None else None,
                                            wake=wake))

    def activity(self, customer_id: str, kind: str, summary: str, *, invoice_ids: Sequence[str] = (),
                 data: dict[str, Any] | None = None, actor: str | None = None) -> ActivityEntry:
        """Append a line to the customer's timeline (GET /customers/{id}/timeline)."""
        from ..domain.dunning_record import ActivityEntry

        entry = ActivityEntry(id=new_id("act"), customer_id=customer_id, at=self.now, kind=kind,
                              actor=actor or self.actor.name, summary=summary, invoice_ids=tuple(invoice_ids),
                              data=data or {})
        self.operations.append(RecordPut(entry))  # type: ignore[arg-type]
        return entry

    def __len__(self) -> int:
        return len(self.operations)



class CommitConflict(ConcurrencyConflict):
    """A condition of the unit of work failed: an entity changed, a counter moved, or a key was used."""

    def __init__(self, message: str, *, idempotency: bool = False, failed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.idempotency = idempotency
        self.failed = list(failed)


# -- the ledger (repository) ------------------------------------------------------------------

class Ledger(ABC):
    """Persistence of the receivables ledger. Reads raise ``NotFound`` when absent."""

    @abstractmethod
    def get_customer(self, customer_id: str) -> Customer: ...

    @abstractmethod
    def list_customers(self, *, limit: int = 50, cursor: str | None = None,
                       on_hold: bool = False) -> Page[Customer]:
        """Customers by name; with ``on_hold`` only those on credit hold (a sparse index, no Scan)."""

    @abstractmethod
    def get_invoice(self, invoice_id: str) -> Invoice: ...

    @abstractmethod
    def get_invoices(self, invoice_ids: Iterable[str]) -> dict[str, Invoice]:
        """Batch read; missing ids are simply absent from the result."""

    @abstractmethod
    def query_invoices(self, query: InvoiceQuery, today: date) -> Page[Invoice]: ...

    @abstractmethod
    def get_payment(self, payment_id: str) -> Payment: ...

    @abstractmethod
    def query_payments(self, query: PaymentQuery) -> Page[Payment]: ...

    @abstractmethod
    def get_counter(self, key: str) -> int:
        """Last value handed out for ``key`` (0 when never used)."""

    @abstractmethod
    def get_settings(self, name: str) -> SettingsDoc | None: ...

    @abstractmethod
    def get_ref(self, kind: str, value: str) -> RefRecord | None: ...

    @abstractmethod
    def get_intent(self, intent_id: str) -> IntentState | None:
        """What we know of a provider PaymentIntent (None if never seen)."""

    @abstractmethod
    def get_task(self, task_id: str) -> Task: ...

    @abstractmethod
    def list_tasks(self, *, status: str = "open", customer_id: str | None = None, limit: int = 50,
                   cursor: str | None = None) -> Page[Task]:
        """Open tasks by due date (or a customer's tasks, newest first)."""

    @abstractmethod
    def get_dispute(self, dispute_id: str) -> Dispute: ...

    @abstractmethod
    def list_disputes(self, *, customer_id: str | None = None, status: str | None = None,
                      limit: int = 50, cursor: str | None = None, before: datetime | None = None) -> Page[Dispute]:
        """A customer's disputes (newest first; ``before``: opened strictly before, a key bound) or all open
        ones (oldest first)."""

    @abstractmethod
    def get_promise(self, promise_id: str) -> Promise: ...

    @abstractmethod
    def list_promises(self, *, customer_id: str | None = None, status: str | None = None,
                      due_before: date | None = None, limit: int = 50, cursor: str | None = None) -> Page[Promise]:
        """A customer's promises (newest first), or all active ones by promised date (``due_before`` exclusive)."""

    @abstractmethod
    def get_plan(self, plan_id: str) -> PaymentPlan: ...

    @abstractmethod
    def list_plans(self, *, customer_id: str | None = None, status: str | None = None,
                   due_before: date | None = None, limit: int = 50, cursor: str | None = None) -> Page[PaymentPlan]:
        """A customer's payment plans (newest first), or all active ones by next installment date."""

    @abstractmethod
    def get_schedule(self, schedule_id: str) -> RecurringSchedule: ...

    @abstractmethod
    def list_schedules(self, *, customer_id: str | None = None, due_before: date | None = None, limit: int = 50,
                       cursor: str | None = None) -> Page[RecurringSchedule]:
        """A customer's recurring schedules (newest first), or the active ones by next invoice date
        (``due_before`` exclusive): what the daily job must issue."""

    @abstractmethod
    def get_api_key(self, key_hash: str) -> ApiKey | None: ...

    @abstractmethod
    def list_api_keys(self) -> list[ApiKey]: ...

    @abstractmethod
    def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None: ...

    @abstractmethod
    def list_audit(self, *, entity_type: str | None = None, entity_id: str | None = None,
                   day: date | None = None, limit: int = 50, cursor: str | None = None) -> Page[AuditEntry]: ...

    @abstractmethod
    def commit(self, uow: UnitOfWork) -> None:
        """Apply every operation and aggregate delta atomically, or none; raises :class:`CommitConflict`."""

    @abstractmethod
    def get_aggregates(self, keys: Sequence[AggregateKey]) -> dict[AggregateKey, dict[str, int]]:
        """The report aggregate items (cell -> integer); missing items are absent."""

    @abstractmethod
    def put_aggregates(self, items: dict[AggregateKey, dict[str, int]]) -> None:
        """Overwrite aggregate items (seeding and repairs after a reconciliation)."""

    @abstractmethod
    def query_aggregates(self, currency: str, scope: str, *, grain: str | None = None,
                         start: str | None = None, end: str | None = None) -> dict[AggregateKey, dict[str, int]]:
        """The aggregate items of one (currency, scope), in one Query on their partition: all of them, or
        those of ``grain`` with a period between ``start`` and ``end`` (inclusive, e.g. "2019".."2026")."""

    # -- outbox -------------------------------------------------------------------------------
    @abstractmethod
    def pending_outbox(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        """Messages ready to run (``not_before`` passed), oldest first."""

    @abstractmethod
    def claim_outbox(self, message: OutboxMessage, lease_until: datetime) -> bool:
        """Lease a message so concurrent drains do not run it twice; False if someone else holds it."""

    @abstractmethod
    def complete_outbox(self, message: OutboxMessage) -> None: ...

    @abstractmethod
    def retry_outbox(self, message: OutboxMessage, error: str, not_before: datetime) -> None: ...

    @abstractmethod
    def dead_letter_outbox(self, message: OutboxMessage, error: str) -> None: ...

    @abstractmethod
    def list_dead_letters(self, limit: int = 100) -> list[OutboxMessage]: ...

    # -- cash application and imports ---------------------------------------------------------
    @abstractmethod
    def get_refs(self, kind: str, values: Iterable[str]) -> dict[str, RefRecord]:
        """Batch read of keyed facts; missing values are absent from the result."""

    @abstractmethod
    def get_customers(self, customer_ids: Iterable[str]) -> dict[str, Customer]:
        """Batch read; missing ids are absent."""

    @abstractmethod
    def find_customers_by_name(self, prefix: str, *, limit: int = 50) -> list[Customer]:
        """Customers whose case-folded name starts with ``prefix`` (the name index), at most ``limit``."""

    @abstractmethod
    def list_invoices_created(self, start: datetime, end: datetime, *, limit: int = 200,
                              cursor: str | None = None) -> Page[Invoice]:
        """Invoices (any status) created in ``[start, end)``, oldest first (the by-kind index)."""

    @abstractmethod
    def get_bank_transaction(self, transaction_id: str) -> BankTransaction: ...

    @abstractmethod
    def get_bank_transactions(self, transaction_ids: Iterable[str]) -> dict[str, BankTransaction]:
        """Batch read; missing ids are absent."""

    @abstractmethod
    def list_bank_transactions(self, *, status: str | None = None, customer_id: str | None = None,
                               booked_from: date | None = None, booked_to: date | None = None,
                               limit: int = 50, cursor: str | None = None) -> Page[BankTransaction]:
        """A queue (status unmatched / review / unreconciled: oldest first), a customer's transactions,
        or all by booking date (newest first; ``status`` then filters, Stripe payouts have their own
        partition: ``status`` reconciled or unreconciled reads it)."""

    @abstractmethod
    def list_payouts(self, booked_from: date, booked_to: date, *, limit: int = 200,
                     cursor: str | None = None) -> Page[BankTransaction]:
        """Stripe payouts booked in ``[booked_from, booked_to]``, oldest first (their own partition)."""

    @abstractmethod
    def get_import(self, import_id: str) -> ImportRecord | None: ...

    # -- dunning (issue 5) ----------------------------------------------------------------------
    @abstractmethod
    def get_dunning(self, invoice_ids: Iterable[str], *, consistent: bool = False) -> dict[str, DunningRecord]:
        """Batch read of dunning records; missing ones are absent."""

    @abstractmethod
    def dunning_due(self, until: datetime, *, limit: int = 500, cursor: str | None = None) -> Page[DunningRecord]:
        """Records whose next action is at or before ``until`` (woken ones first), from the sparse index."""

    @abstractmethod
    def dunning_for_customer(self, customer_id: str, *, active_only: bool = True, limit: int = 200,
                             cursor: str | None = None) -> Page[DunningRecord]:
        """A customer's dunning records (by invoice id), the open invoices' only with ``active_only``."""

    @abstractmethod
    def dunning_active(self, *, limit: int = 500, cursor: str | None = None) -> Page[DunningRecord]:
        """Every record of an open invoice (a sparse index): re-deciding all after a policy change."""

    @abstractmethod
    def list_activity(self, customer_id: str, *, limit: int = 100, cursor: str | None = None,
                      before: datetime | None = None) -> Page[ActivityEntry]:
        """A customer's timeline entries, newest first."""


class EventPublisher(ABC):
    """Publishes business events (invoice.issued, invoice.paid, ...) to subscribers."""

    @abstractmethod
    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        """Publish events ``{"id", "type", "occurred_at", "data"}``; raises on failure."""


# -- payment provider -------------------------------------------------------------------------

@dataclass(frozen=True)
class ProviderLink:
    """A provider object the payer is sent to (payment link, checkout session)."""

    id: str
    url: str


class PaymentGateway(ABC):
    """A card / SEPA payment provider (Stripe). Every create takes an idempotency key.

    Methods raise ``PaymentGatewayError`` (HTTP 502) when the provider fails or
    refuses, and ``WebhookSignatureError`` (HTTP 400) for an unverifiable webhook.
    """

    @abstractmethod
    def ensure_customer(self, customer: Customer) -> str:
        """The provider's customer id for ``customer`` (created once, idempotently)."""

    @abstractmethod
    def create_payment_link(self, *, invoice: Invoice, amount: Any, description: str,
                            metadata: dict[str, str], idempotency_key: str,
                            return_url: str | None = None) -> ProviderLink:
        """A reusable link paying ``amount``; the payer comes back to ``return_url``."""

    @abstractmethod
    def deactivate_payment_link(self, link_id: str) -> None: ...

    @abstractmethod
    def create_checkout_session(self, *, mode: str, provider_customer: str | None, amount: Any,
                                description: str, metadata: dict[str, str], success_url: str, cancel_url: str,
                                expires_at: datetime, idempotency_key: str,
                                payment_method_types: Sequence[str] = ("card", "sepa_debit")) -> ProviderLink:
        """``mode`` is "payment" (amount required) or "setup" (a SEPA mandate)."""

    @abstractmethod
    def collect_sepa_debit(self, *, provider_customer: str, mandate_id: str, payment_method: str, amount: Any,
                           metadata: dict[str, str], idempotency_key: str) -> tuple[str, str]:
        """Start an off-session SEPA debit; returns (payment intent id, status)."""

    @abstractmethod
    def refund(self, *, payment_intent: str, amount: Any, metadata: dict[str, str],
               idempotency_key: str) -> str:
        """Refund (part of) a payment; returns the refund id."""

    @abstractmethod
    def verify_webhook(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """Check the signature on the raw body (300 s tolerance) and return the event as a dict."""

    @abstractmethod
    def setup_intent_details(self, setup_intent_id: str) -> dict[str, Any]:
        """``{"customer", "payment_method", "mandate": {id, status, reference}}`` of a succeeded setup."""

    def payout_details(self, payout_id: str) -> dict[str, Any]:
        """A payout and the balance transactions it pays out (charges, refunds, fees, disputes...):
        ``{"id", "amount", "currency", "arrival_date", "status", "balance_transactions": [{"id", "type",
        "amount", "fee", "currency", "source"}]}``, amounts in minor units as the provider reports them.
        Raises ``PaymentGatewayError`` when the payout cannot be read. (Not abstract: gateways that
        never pay out need not implement it.)"""
        raise NotImplementedError


# -- messages & documents ---------------------------------------------------------------------

@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class EmailMessage:
    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    reply_to: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # e.g. {"invoice_id": ..., "kind": "invoice"}


class Mailer(ABC):
    @abstractmethod
    def send(self, message: EmailMessage) -> str:
        """Send and return the provider's message id; raises on refusal (the caller retries)."""


class SmsSender(ABC):
    @abstractmethod
    def send(self, phone_e164: str, text: str, *, tags: dict[str, str] | None = None) -> str:
        """Send a text message; returns the provider's message id."""


class DocumentStore(ABC):
    """Immutable documents (issued invoices' PDF and XML), served byte-identical later."""

    @abstractmethod
    def put(self, key: str, content: bytes, content_type: str) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Raises NotFound when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def presigned_url(self, key: str, expires_s: int) -> str:
        """A URL that downloads ``key`` without credentials for ``expires_s`` seconds (exports)."""
