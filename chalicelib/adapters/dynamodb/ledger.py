"""The ledger port on DynamoDB (pynamodb), one table, no Scan anywhere.

Every write goes through :meth:`DynamoLedger.commit`: all operations of a use
case in one ``TransactWriteItems`` with their conditions (entity version
unchanged, counter at the expected value, idempotency key unused), so a failed
condition leaves nothing half-written.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import zlib
from datetime import date, datetime, timedelta, timezone
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, TypeVar

from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, DoesNotExist, GetError, QueryError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from ...domain.auth import ApiKey
from ...domain.collections import (DISPUTE_OPEN, PLAN_ACTIVE, PROMISE_ACTIVE, TASK_OPEN, Dispute, PaymentPlan, Promise,
                                   Task)
from ...domain.provider import IntentState
from ...domain.errors import BadRequest, NotFound, ValidationError
from ...domain.invoice import OPEN, Invoice
from ...domain.parties import Customer
from ...domain.payment import Payment
from ...services.ports import (SORT_READ_CAP, AuditEntry, CommitConflict, CounterPut, EntityPut, IdempotencyRecord,
                               InvoiceQuery, Ledger, OutboxMessage, Page, PaymentQuery, RecordPut, RefRecord,
                               SettingsDoc, UnitOfWork)
from ..codec import decode, encode
from ...domain.recurring import ACTIVE as SCHEDULE_ACTIVE, RecurringSchedule
from .models import ScheduleItem
from .cashapp import CashAppLedger, cashapp_item
from ...services.ports import DunningTouch
from .dunning_items import DunningQueries, activity_item, dunning_item, touch_update
if TYPE_CHECKING:  # loaded where used: reading an invoice needs neither aggregates nor dunning (cold start)
    from ...domain.aggregates import AggregateKey, AggregateUpdate
from .models import (ApiKeyItem, AuditItem, CounterItem, CustomerItem, DisputeItem, IdempotencyItem, IntentItem,
                     InvoiceItem, OutboxItem, PaymentItem, PlanItem, PromiseItem, RefItem, SettingsItem, TableItem,
                     TaskItem)

M = TypeVar("M", bound=TableItem)
_DOMAIN = __name__.split(".adapters.")[0] + ".domain"
OUTBOX_SHARDS = 4
IDEMPOTENCY_TTL = timedelta(days=7)
MAX_TRANSACTION_ITEMS = 100


# -- keys ---------------------------------------------------------------------------------------

def customer_pk(customer_id: str) -> str:
    return f"CUS#{customer_id}"


def invoice_pk(invoice_id: str) -> str:
    return f"INV#{invoice_id}"


def payment_pk(payment_id: str) -> str:
    return f"PAY#{payment_id}"


def _outbox_shard(message_id: str) -> str:
    return f"OUTBOX#{zlib.crc32(message_id.encode()) % OUTBOX_SHARDS}"


# -- entity <-> item ----------------------------------------------------------------------------

def customer_item(c: Customer) -> CustomerItem:
    item = CustomerItem(pk=customer_pk(c.id), sk="CUSTOMER", kind="customer", id=c.id, name=c.name,
                        gsi3pk="CUSTOMER", gsi3sk=f"{c.name.casefold()[:80]}#{c.id}", data=encode(c),
                        created_at=c.created_at, updated_at=c.updated_at, version=c.version)
    if c.on_hold:  # sparse queue: GET /customers?on_hold=true reads exactly the held customers
        item.gsi2pk, item.gsi2sk = "HOLD", item.gsi3sk
    return item


def invoice_item(inv: Invoice) -> InvoiceItem:
    day = (inv.issue_date or inv.created_at.date()).isoformat()
    item = InvoiceItem(
        pk=invoice_pk(inv.id), sk="INVOICE", kind="invoice", id=inv.id, customer_id=inv.customer_id,
        invoice_kind=inv.kind, status=inv.status, currency=inv.currency, number=inv.number,
        issue_date=inv.issue_date.isoformat() if inv.issue_date else None,
        due_date=inv.due_date.isoformat() if inv.due_date else None,
        total=inv.totals.total.amount, amount_due=inv.amount_due.amount, dunning_step=inv.dunning_step,
        dispute_status=inv.dispute_status, collection_status=inv.collection_status,
        gsi1pk=customer_pk(inv.customer_id), gsi1sk=f"INV#{day}#{inv.id}",
        gsi3pk="INVOICE", gsi3sk=f"{inv.created_at.isoformat()}#{inv.id}",
        data=encode(inv), created_at=inv.created_at, updated_at=inv.updated_at, version=inv.version)
    if inv.status == OPEN and inv.due_date is not None:
        item.gsi2pk, item.gsi2sk = "OPEN", f"{inv.due_date.isoformat()}#{inv.id}"
    return item


def payment_item(p: Payment) -> PaymentItem:
    item = PaymentItem(
        pk=payment_pk(p.id), sk="PAYMENT", kind="payment", id=p.id, customer_id=p.customer_id,
        amount=p.amount.amount, currency=p.currency, unapplied=p.unapplied.amount, method=p.method,
        received_on=p.received_on.isoformat(), provider_ref=p.provider_ref,
        gsi1pk=customer_pk(p.customer_id) if p.customer_id else None,
        gsi1sk=f"PAY#{p.received_on.isoformat()}#{p.id}" if p.customer_id else None,
        gsi3pk="PAYMENT", gsi3sk=f"{p.received_on.isoformat()}#{p.id}",
        data=encode(p), created_at=p.created_at, updated_at=p.updated_at, version=p.version)
    if p.unapplied.is_positive:
        item.gsi2pk, item.gsi2sk = "UNAPPLIED", f"{p.received_on.isoformat()}#{p.id}"
    return item


def api_key_item(k: ApiKey) -> ApiKeyItem:
    return ApiKeyItem(pk=f"KEY#{k.key_hash}", sk="APIKEY", kind="api_key", name=k.name, role=k.role, hint=k.hint,
                      created_by=k.created_by, created_at=k.created_at, revoked_at=k.revoked_at,
                      gsi3pk="APIKEY", gsi3sk=f"{k.created_at.isoformat()}#{k.key_hash[:16]}", version=k.version)


def settings_item(s: SettingsDoc) -> SettingsItem:
    return SettingsItem(pk=f"SET#{s.name}", sk="SETTINGS", kind="settings", data=s.data, updated_at=s.updated_at,
                        version=s.version)


def intent_item(i: IntentState) -> IntentItem:
    return IntentItem(pk=f"PI#{i.id}", sk="INTENT", kind="intent", status=i.status, data=encode(i),
                      version=i.version)


def task_item(t: Task) -> TaskItem:
    item = TaskItem(pk=f"TSK#{t.id}", sk="TASK", kind="task", status=t.status, customer_id=t.customer_id,
                    gsi1pk=customer_pk(t.customer_id), gsi1sk=f"TSK#{t.created_at.isoformat()}#{t.id}",
                    data=encode(t), version=t.version)
    if t.status == TASK_OPEN:
        item.gsi2pk, item.gsi2sk = "TASK#open", f"{t.due_on.isoformat()}#{t.id}"
    return item


def dispute_item(d: Dispute) -> DisputeItem:
    item = DisputeItem(pk=f"DSP#{d.id}", sk="DISPUTE", kind="dispute", status=d.status, customer_id=d.customer_id,
                       invoice_id=d.invoice_id, gsi1pk=customer_pk(d.customer_id),
                       gsi1sk=f"DSP#{d.created_at.isoformat()}#{d.id}", data=encode(d), version=d.version)
    if d.status == DISPUTE_OPEN:
        item.gsi2pk, item.gsi2sk = "DISPUTE#open", f"{d.created_at.isoformat()}#{d.id}"
    return item


def promise_item(p: Promise) -> PromiseItem:
    item = PromiseItem(pk=f"PRM#{p.id}", sk="PROMISE", kind="promise", status=p.status, customer_id=p.customer_id,
                       gsi1pk=customer_pk(p.customer_id), gsi1sk=f"PRM#{p.created_at.isoformat()}#{p.id}",
                       data=encode(p), version=p.version)
    if p.status == PROMISE_ACTIVE:
        item.gsi2pk, item.gsi2sk = "PROMISE#active", f"{p.promised_on.isoformat()}#{p.id}"
    return item


def plan_item(p: PaymentPlan) -> PlanItem:
    item = PlanItem(pk=f"PLN#{p.id}", sk="PLAN", kind="plan", status=p.status, customer_id=p.customer_id,
                    gsi1pk=customer_pk(p.customer_id), gsi1sk=f"PLN#{p.created_at.isoformat()}#{p.id}",
                    data=encode(p), version=p.version)
    if p.status == PLAN_ACTIVE and p.next_due:
        item.gsi2pk, item.gsi2sk = "PLAN#active", f"{p.next_due.isoformat()}#{p.id}"
    return item


def schedule_item(s: RecurringSchedule) -> ScheduleItem:
    item = ScheduleItem(pk=f"RSC#{s.id}", sk="SCHEDULE", kind="schedule", status=s.status, customer_id=s.customer_id,
                        gsi1pk=customer_pk(s.customer_id), gsi1sk=f"RSC#{s.created_at.isoformat()}#{s.id}",
                        data=encode(s), version=s.version)
    if s.status == SCHEDULE_ACTIVE and s.next_run:  # sparse queue: the daily job reads only what is due
        item.gsi2pk, item.gsi2sk = "RECURRING#active", f"{s.next_run.isoformat()}#{s.id}"
    return item


def _instance_of(obj: Any, module: str, name: str) -> bool:
    """``isinstance`` against a class of a module that may not be loaded yet (then nothing is an instance)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(obj, getattr(loaded, name))


def _entity_item(entity: Any) -> TableItem:
    if isinstance(entity, Invoice):
        return invoice_item(entity)
    if isinstance(entity, Payment):
        return payment_item(entity)
    if isinstance(entity, Customer):
        return customer_item(entity)
    if isinstance(entity, ApiKey):
        return api_key_item(entity)
    if isinstance(entity, SettingsDoc):
        return settings_item(entity)
    if isinstance(entity, IntentState):
        return intent_item(entity)
    if isinstance(entity, Task):
        return task_item(entity)
    if isinstance(entity, Dispute):
        return dispute_item(entity)
    if isinstance(entity, Promise):
        return promise_item(entity)
    if isinstance(entity, PaymentPlan):
        return plan_item(entity)
    if isinstance(entity, RecurringSchedule):
        return schedule_item(entity)
    if _instance_of(entity, f"{_DOMAIN}.dunning_record", "DunningRecord"):
        return dunning_item(entity)
    cashapp = cashapp_item(entity)  # bank transactions, imports
    if cashapp is not None:
        return cashapp
    raise TypeError(f"no item mapping for {type(entity).__name__}")


def _record_item(record: Any) -> TableItem:
    if isinstance(record, AuditEntry):
        at = record.at.isoformat()
        return AuditItem(pk=f"AUD#{record.entity_type}#{record.entity_id}", sk=f"{at}#{record.id}", kind="audit",
                         id=record.id, at=record.at, actor=record.actor, action=record.action,
                         entity_type=record.entity_type, entity_id=record.entity_id, before=record.before,
                         after=record.after, gsi3pk=f"AUDIT#{record.at.date().isoformat()}",
                         gsi3sk=f"{at}#{record.id}")
    if isinstance(record, OutboxMessage):
        return OutboxItem(pk=_outbox_shard(record.id), sk=f"{record.created_at.isoformat()}#{record.id}",
                          kind="outbox", id=record.id, topic=record.topic, payload=record.payload,
                          created_at=record.created_at, attempts=record.attempts, not_before=record.not_before,
                          last_error=record.last_error)
    if isinstance(record, IdempotencyRecord):
        return IdempotencyItem(pk=f"IDEM#{record.scope}#{record.key}", sk="IDEM", kind="idempotency",
                               request_hash=record.request_hash, resource_type=record.resource_type,
                               resource_id=record.resource_id, created_at=record.created_at,
                               expires_at=int((record.created_at + IDEMPOTENCY_TTL).timestamp()))
    if isinstance(record, RefRecord):
        created = record.created_at
        return RefItem(pk=f"REF#{record.kind}#{record.value}", sk="REF", kind="ref", target=record.target,
                       data=record.data or None, created_at=created,
                       expires_at=(int((created + timedelta(days=record.ttl_days)).timestamp())
                                   if record.ttl_days and created else None))
    if _instance_of(record, f"{_DOMAIN}.dunning_record", "ActivityEntry"):
        return activity_item(record)
    raise TypeError(f"no item mapping for {type(record).__name__}")


def _to_api_key(item: ApiKeyItem) -> ApiKey:
    return ApiKey(key_hash=item.pk.removeprefix("KEY#"), name=item.name, role=item.role, created_at=item.created_at,
                  created_by=item.created_by, hint=item.hint, revoked_at=item.revoked_at, version=int(item.version))


def to_outbox(item: OutboxItem) -> OutboxMessage:
    return OutboxMessage(id=item.id, topic=item.topic, payload=item.payload, created_at=item.created_at,
                         attempts=int(item.attempts or 0), not_before=item.not_before, last_error=item.last_error)


def _to_audit(item: AuditItem) -> AuditEntry:
    return AuditEntry(id=item.id, at=item.at, actor=item.actor, action=item.action, entity_type=item.entity_type,
                      entity_id=item.entity_id, before=item.before, after=item.after)


# -- cursors ------------------------------------------------------------------------------------

def encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    flat = {name: value["S"] for name, value in key.items()}
    return base64.urlsafe_b64encode(json.dumps(flat, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected: Iterable[str]) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        flat = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(flat, dict) or set(flat) != set(expected) or not all(isinstance(v, str) for v in
                                                                                flat.values()):
            raise ValueError
    except (ValueError, TypeError):
        raise BadRequest("cursor is not valid: pass back the next_cursor of the previous page unchanged",
                         field="cursor", code="invalid_cursor") from None
    return {name: {"S": value} for name, value in flat.items()}


class DynamoLedger(CashAppLedger, DunningQueries, Ledger):
    """Ledger port implementation. ``connection`` is the shared one from :func:`models.configure`."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # -- single items -------------------------------------------------------------------------
    def _get(self, model: type[M], pk: str, sk: str, what: str, ident: str) -> M:
        try:
            return model.get(pk, sk)
        except DoesNotExist:
            raise NotFound(f"{what} {ident} does not exist", code=f"{what}_not_found") from None
        except GetError as exc:  # pragma: no cover - infrastructure failure
            raise RuntimeError(f"DynamoDB read failed for {what}") from exc

    def get_customer(self, customer_id: str) -> Customer:
        item = self._get(CustomerItem, customer_pk(customer_id), "CUSTOMER", "customer", customer_id)
        return decode(Customer, item.data)

    def get_invoice(self, invoice_id: str) -> Invoice:
        item = self._get(InvoiceItem, invoice_pk(invoice_id), "INVOICE", "invoice", invoice_id)
        return decode(Invoice, item.data)

    def get_invoices(self, invoice_ids: Iterable[str]) -> dict[str, Invoice]:
        keys = [(invoice_pk(i), "INVOICE") for i in dict.fromkeys(invoice_ids)]
        if not keys:
            return {}
        out = {}
        for item in InvoiceItem.batch_get(keys):
            inv = decode(Invoice, item.data)
            out[inv.id] = inv
        return out

    def get_payment(self, payment_id: str) -> Payment:
        item = self._get(PaymentItem, payment_pk(payment_id), "PAYMENT", "payment", payment_id)
        return decode(Payment, item.data)

    def get_counter(self, key: str) -> int:
        try:
            return int(CounterItem.get(f"CTR#{key}", "COUNTER", consistent_read=True).value)
        except DoesNotExist:
            return 0

    def get_settings(self, name: str) -> SettingsDoc | None:
        try:
            item = SettingsItem.get(f"SET#{name}", "SETTINGS")
        except DoesNotExist:
            return None
        return SettingsDoc(name=name, data=item.data, updated_at=item.updated_at, version=int(item.version))

    def get_ref(self, kind: str, value: str) -> RefRecord | None:
        try:
            item = RefItem.get(f"REF#{kind}#{value}", "REF", consistent_read=True)
        except DoesNotExist:
            return None
        return RefRecord(kind=kind, value=value, target=item.target, data=item.data or {}, created_at=item.created_at)

    def get_intent(self, intent_id: str) -> IntentState | None:
        try:
            return decode(IntentState, IntentItem.get(f"PI#{intent_id}", "INTENT", consistent_read=True).data)
        except DoesNotExist:
            return None

    def _by_customer_or_queue(self, model: type[M], entity: type, prefix: str, queue: str, open_status: str, *,
                              customer_id: str | None, status: str | None, due_before: date | None, limit: int,
                              cursor: str | None, plural: str, before: datetime | None = None) -> Page[Any]:
        """The shared shape of tasks, disputes, promises and plans: a customer's items (newest
        first, any status; ``before``: created strictly before, a bound on the gsi1 key, which starts
        with the creation time) through gsi1, or the open/active ones of everyone through their sparse
        gsi2 queue (oldest due first, optionally before a date)."""
        convert: Callable[[Any], Any] = lambda i: decode(entity, i.data)  # noqa: E731
        if customer_id:
            # "<prefix>#<created_at>#<id>" < "<prefix>#<before>" exactly when created_at < before (UTC ISO strings)
            rng = (model.gsi1sk.between(f"{prefix}#", f"{prefix}#{before.astimezone(timezone.utc).isoformat()}")
                   if before is not None else model.gsi1sk.startswith(f"{prefix}#"))
            return self._page(model, model.by_customer, ("pk", "sk", "gsi1pk", "gsi1sk"), customer_pk(customer_id),
                              rng,
                              model.status == status if status else None,  # type: ignore[attr-defined]
                              False, limit, cursor, convert)
        if status not in (None, open_status):
            raise ValidationError(f"{plural} that are not {open_status} are listed per customer: pass customer_id",
                                  field="customer_id")
        rng = model.gsi2sk < f"{due_before.isoformat()}#" if due_before else None
        return self._page(model, model.queue, ("pk", "sk", "gsi2pk", "gsi2sk"), queue, rng, None, True, limit, cursor,
                          convert)

    def get_task(self, task_id: str) -> Task:
        return decode(Task, self._get(TaskItem, f"TSK#{task_id}", "TASK", "task", task_id).data)

    def list_tasks(self, *, status: str = "open", customer_id: str | None = None, limit: int = 50,
                   cursor: str | None = None) -> Page[Task]:
        return self._by_customer_or_queue(TaskItem, Task, "TSK", "TASK#open", TASK_OPEN, customer_id=customer_id,
                                          status=status, due_before=None, limit=limit, cursor=cursor, plural="tasks")

    def get_dispute(self, dispute_id: str) -> Dispute:
        return decode(Dispute, self._get(DisputeItem, f"DSP#{dispute_id}", "DISPUTE", "dispute", dispute_id).data)

    def list_disputes(self, *, customer_id: str | None = None, status: str | None = None, limit: int = 50,
                      cursor: str | None = None, before: datetime | None = None) -> Page[Dispute]:
        return self._by_customer_or_queue(DisputeItem, Dispute, "DSP", "DISPUTE#open", DISPUTE_OPEN,
                                          customer_id=customer_id, status=status, due_before=None, limit=limit,
                                          cursor=cursor, plural="disputes", before=before)

    def get_promise(self, promise_id: str) -> Promise:
        return decode(Promise, self._get(PromiseItem, f"PRM#{promise_id}", "PROMISE", "promise", promise_id).data)

    def list_promises(self, *, customer_id: str | None = None, status: str | None = None, due_before: date | None = None,
                      limit: int = 50, cursor: str | None = None) -> Page[Promise]:
        return self._by_customer_or_queue(PromiseItem, Promise, "PRM", "PROMISE#active", PROMISE_ACTIVE,
                                          customer_id=customer_id, status=status, due_before=due_before, limit=limit,
                                          cursor=cursor, plural="promises")

    def get_plan(self, plan_id: str) -> PaymentPlan:
        return decode(PaymentPlan, self._get(PlanItem, f"PLN#{plan_id}", "PLAN", "payment plan", plan_id).data)

    def list_plans(self, *, customer_id: str | None = None, status: str | None = None, due_before: date | None = None,
                   limit: int = 50, cursor: str | None = None) -> Page[PaymentPlan]:
        return self._by_customer_or_queue(PlanItem, PaymentPlan, "PLN", "PLAN#active", PLAN_ACTIVE,
                                          customer_id=customer_id, status=status, due_before=due_before, limit=limit,
                                          cursor=cursor, plural="plans")

    def get_schedule(self, schedule_id: str) -> RecurringSchedule:
        item = self._get(ScheduleItem, f"RSC#{schedule_id}", "SCHEDULE", "schedule", schedule_id)
        return decode(RecurringSchedule, item.data)

    def list_schedules(self, *, customer_id: str | None = None, due_before: date | None = None, limit: int = 50,
                       cursor: str | None = None) -> Page[RecurringSchedule]:
        convert: Callable[[ScheduleItem], RecurringSchedule] = lambda i: decode(RecurringSchedule, i.data)  # noqa
        if customer_id:
            return self._page(ScheduleItem, ScheduleItem.by_customer, ("pk", "sk", "gsi1pk", "gsi1sk"),
                              customer_pk(customer_id), ScheduleItem.gsi1sk.startswith("RSC#"), None, False, limit,
                              cursor, convert)
        rng = ScheduleItem.gsi2sk < f"{due_before.isoformat()}#" if due_before else None
        return self._page(ScheduleItem, ScheduleItem.queue, ("pk", "sk", "gsi2pk", "gsi2sk"), "RECURRING#active", rng,
                          None, True, limit, cursor, convert)

    def get_api_key(self, key_hash: str) -> ApiKey | None:
        try:
            return _to_api_key(ApiKeyItem.get(f"KEY#{key_hash}", "APIKEY"))
        except DoesNotExist:
            return None

    def list_api_keys(self) -> list[ApiKey]:
        return [_to_api_key(i) for i in ApiKeyItem.by_kind.query("APIKEY", scan_index_forward=False)]

    def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None:
        try:
            item = IdempotencyItem.get(f"IDEM#{scope}#{key}", "IDEM", consistent_read=True)
        except DoesNotExist:
            return None
        return IdempotencyRecord(scope=scope, key=key, request_hash=item.request_hash,
                                 resource_type=item.resource_type, resource_id=item.resource_id,
                                 created_at=item.created_at)

    # -- queries ------------------------------------------------------------------------------
    def _page(self, model: type[M], index: Any, key_names: tuple[str, ...], hash_value: str,
              range_condition: Condition | None, filter_condition: Condition | None, forward: bool, limit: int,
              cursor: str | None, convert: Callable[[M], Any]) -> Page[Any]:
        """One page of a Query, reading at most ``max(20 x limit, 1000)`` items when a filter is set."""
        start = decode_cursor(cursor, key_names)
        page_size = limit + 1 if filter_condition is None else min(max(limit * 4, 100), 1000)
        read_cap = max(limit * 20, 1000)
        target = index if index is not None else model
        try:
            result = target.query(hash_value, range_condition, filter_condition=filter_condition,
                                  scan_index_forward=forward, page_size=page_size, last_evaluated_key=start)
            pages = result.page_iter
            items: list[Any] = []
            scanned = 0
            next_key = None
            for page in pages:
                raw_items = page.get("Items", [])
                scanned += int(page.get("ScannedCount", len(raw_items)))
                for i, raw in enumerate(raw_items):
                    items.append(convert(model.from_raw_data(raw)))
                    if len(items) == limit:
                        more = i < len(raw_items) - 1 or pages.last_evaluated_key is not None
                        next_key = {k: raw[k] for k in key_names} if more else None
                        return Page(items=items, next_cursor=encode_cursor(next_key), scanned=scanned)
                next_key = pages.last_evaluated_key
                if not next_key or scanned >= read_cap:
                    break
        except QueryError as exc:
            if "ValidationException" in str(exc.cause_response_code or exc):
                raise BadRequest("cursor does not belong to this query: start again without it",
                                 field="cursor", code="invalid_cursor") from None
            raise
        return Page(items=items, next_cursor=encode_cursor(next_key), scanned=scanned)

    def list_customers(self, *, limit: int = 50, cursor: str | None = None,
                       on_hold: bool = False) -> Page[Customer]:
        if on_hold:
            return self._page(CustomerItem, CustomerItem.queue, ("pk", "sk", "gsi2pk", "gsi2sk"), "HOLD", None,
                              None, True, limit, cursor, lambda i: decode(Customer, i.data))
        return self._page(CustomerItem, CustomerItem.by_kind, ("pk", "sk", "gsi3pk", "gsi3sk"), "CUSTOMER", None,
                          None, True, limit, cursor, lambda i: decode(Customer, i.data))

    def query_invoices(self, query: InvoiceQuery, today: date) -> Page[Invoice]:
        """Which index serves which filters: docs/finance.md ("Queries"). Filters on non-key attributes
        read at most ``max(20 x limit, 1000)`` items per page; sorts no index gives read the whole
        selection, at most :data:`SORT_READ_CAP` items."""
        m = InvoiceItem
        convert: Callable[[InvoiceItem], Invoice] = lambda i: decode(Invoice, i.data)  # noqa: E731
        filters: list[Condition] = []
        names: list[str] = []

        def add(condition: Condition, name: str) -> None:
            filters.append(condition)
            names.append(name)

        if query.collection_status:
            add(m.collection_status == query.collection_status, "collection_status")
        if query.dispute_status:
            add(m.dispute_status == query.dispute_status, "dispute_status")
        if query.currency:
            add(m.currency == query.currency, "currency")
        if query.dunning_step:
            add(m.dunning_step == query.dunning_step, "dunning_step")
        if query.amount_min is not None:
            add(m.total >= query.amount_min, "amount_min")
        if query.amount_max is not None:
            add(m.total <= query.amount_max, "amount_max")

        def issued_filters() -> None:
            if query.issued_from:
                add(m.issue_date >= query.issued_from.isoformat(), "issued_from")
            if query.issued_to:
                add(m.issue_date <= query.issued_to.isoformat(), "issued_to")

        def due_filters() -> None:
            if query.due_before:
                add(m.due_date < query.due_before.isoformat(), "due_before")
            if query.due_after:
                add(m.due_date > query.due_after.isoformat(), "due_after")

        natural: dict[str | None, bool]
        if query.customer_id:
            if query.status:
                add(m.status == query.status, "status")
            due_filters()
            issued_filters()  # drafts (no issue date) drop out; the key range bounds what is read
            low = f"INV#{query.issued_from.isoformat()}" if query.issued_from else "INV#"
            high = f"INV#{query.issued_to.isoformat()}#~" if query.issued_to else "INV#~"
            index, keys, hash_value, rng = m.by_customer, ("pk", "sk", "gsi1pk", "gsi1sk"), \
                customer_pk(query.customer_id), m.gsi1sk.between(low, high)
            served = "gsi1 (customer, newest issue date first" + (", issue dates in the key)"
                                                                   if query.issued_from or query.issued_to else ")")
            natural = {None: False}
        elif query.status in (None, OPEN) and (query.status == OPEN or query.due_before or query.due_after):
            # The sparse OPEN index holds exactly the open invoices, sorted by due date.
            low = f"{query.due_after.isoformat()}#~" if query.due_after else None
            high = f"{query.due_before.isoformat()}#" if query.due_before else None
            if low and high:
                rng = m.gsi2sk.between(low, high)
            elif low:
                rng = m.gsi2sk > low
            elif high:
                rng = m.gsi2sk < high
            else:
                rng = None
            issued_filters()
            index, keys, hash_value = m.queue, ("pk", "sk", "gsi2pk", "gsi2sk"), "OPEN"
            served = "gsi2 OPEN (open invoices by due date" + (", due dates in the key)" if rng is not None else ")")
            natural = {None: True, "due_date": True, "-due_date": False}
        else:
            if query.status:
                add(m.status == query.status, "status")
            due_filters()
            issued_filters()
            index, keys, hash_value, rng = m.by_kind, ("pk", "sk", "gsi3pk", "gsi3sk"), "INVOICE", None
            served = "gsi3 INVOICE (every invoice, newest first)"
            natural = {None: False}
        condition = _and(filters)
        plan = served + (f"; filtered on {', '.join(names)} (at most {max(query.limit * 20, 1000)} items read "
                         "per page)" if names else "")
        if query.sort in natural:
            page = self._page(m, index, keys, hash_value, rng, condition, natural[query.sort], query.limit,
                              query.cursor, convert)
            return dataclasses.replace(page, plan=plan)

        def fetch(cursor: str | None) -> Page[Any]:
            return self._page(m, index, keys, hash_value, rng, condition, True, 100, cursor, convert)

        sort = query.sort or "due_date"
        key: Callable[[Invoice], Any] = ((lambda i: (i.totals.total.amount, i.id)) if sort.endswith("amount")
                                         else (lambda i: (i.due_date or date.max, i.id)))
        return _sorted_page(fetch, key, sort.startswith("-"), query.limit, query.cursor,
                            plan + f"; sorted by {sort.lstrip('-')} in memory (at most {SORT_READ_CAP} items read)")

    def query_payments(self, query: PaymentQuery) -> Page[Payment]:
        m = PaymentItem
        convert: Callable[[PaymentItem], Payment] = lambda i: decode(Payment, i.data)  # noqa: E731
        lo = query.received_from.isoformat() if query.received_from else None
        hi = f"{query.received_to.isoformat()}#~" if query.received_to else None
        filters: list[Condition] = []
        names: list[str] = []

        def add(condition: Condition, name: str) -> None:
            filters.append(condition)
            names.append(name)

        if query.method:
            add(m.method == query.method, "method")
        if query.currency:
            add(m.currency == query.currency, "currency")
        if query.amount_min is not None:
            add(m.amount >= query.amount_min, "amount_min")
        if query.amount_max is not None:
            add(m.amount <= query.amount_max, "amount_max")
        if query.customer_id:
            if query.unapplied is True:
                add(m.unapplied > 0, "unapplied")
            elif query.unapplied is False:
                add(m.unapplied == 0, "unapplied")
            index, keys, hash_value = m.by_customer, ("pk", "sk", "gsi1pk", "gsi1sk"), customer_pk(query.customer_id)
            rng = _range(m.gsi1sk, f"PAY#{lo}" if lo else "PAY#", f"PAY#{hi}" if hi else "PAY#~")
            served = "gsi1 (customer, by received date)"
        elif query.unapplied:
            index, keys, hash_value = m.queue, ("pk", "sk", "gsi2pk", "gsi2sk"), "UNAPPLIED"
            rng = _range(m.gsi2sk, lo, hi)
            served = "gsi2 UNAPPLIED (payments with unapplied cash, by received date)"
        else:
            if query.unapplied is False:
                add(m.unapplied == 0, "unapplied")
            index, keys, hash_value = m.by_kind, ("pk", "sk", "gsi3pk", "gsi3sk"), "PAYMENT"
            rng = _range(m.gsi3sk, lo, hi)
            served = "gsi3 PAYMENT (every payment, by received date)"
        condition = _and(filters)
        plan = served + (f"; filtered on {', '.join(names)} (at most {max(query.limit * 20, 1000)} items read "
                         "per page)" if names else "")
        natural = {None: False, "-received_on": False, "received_on": True}
        if query.sort in natural:
            page = self._page(m, index, keys, hash_value, rng, condition, natural[query.sort], query.limit,
                              query.cursor, convert)
            return dataclasses.replace(page, plan=plan)

        def fetch(cursor: str | None) -> Page[Any]:
            return self._page(m, index, keys, hash_value, rng, condition, False, 100, cursor, convert)

        return _sorted_page(fetch, lambda p: (p.amount.amount, p.id), (query.sort or "").startswith("-"),
                            query.limit, query.cursor,
                            plan + f"; sorted by amount in memory (at most {SORT_READ_CAP} items read)")

    def list_audit(self, *, entity_type: str | None = None, entity_id: str | None = None, day: date | None = None,
                   limit: int = 50, cursor: str | None = None) -> Page[AuditEntry]:
        if entity_type and entity_id:
            return self._page(AuditItem, None, ("pk", "sk"), f"AUD#{entity_type}#{entity_id}", None, None, False,
                              limit, cursor, _to_audit)
        if day is None:
            raise ValidationError("give entity_type and entity_id, or a day (YYYY-MM-DD)", field="day")
        return self._page(AuditItem, AuditItem.by_kind, ("pk", "sk", "gsi3pk", "gsi3sk"),
                          f"AUDIT#{day.isoformat()}", None, None, False, limit, cursor, _to_audit)

    # -- writes -------------------------------------------------------------------------------
    def commit(self, uow: UnitOfWork) -> None:
        ops = uow.operations
        if not ops and not uow.aggregate_deltas:
            return
        if len(ops) > MAX_TRANSACTION_ITEMS:
            raise ValidationError(f"this change touches {len(ops)} records, more than the {MAX_TRANSACTION_ITEMS} "
                                  "DynamoDB commits atomically: split it into smaller requests")
        if uow.aggregate_deltas:
            from ...domain.aggregates import merge_deltas

            updates = merge_deltas(uow.aggregate_deltas)
        else:
            updates = []
        if len(ops) + len(updates) > MAX_TRANSACTION_ITEMS:
            raise ValidationError(f"this change touches {len(ops) + len(updates)} records (with report aggregates), "
                                  f"more than the {MAX_TRANSACTION_ITEMS} DynamoDB commits atomically: split it "
                                  "into smaller requests (e.g. fewer allocations per payment)")
        items: list[tuple[TableItem, Condition | None, str]] = []
        for op in ops:
            if isinstance(op, EntityPut):
                item = _entity_item(op.entity)
                cond = (type(item).pk.does_not_exist() if op.expected_version is None
                        else type(item).version == op.expected_version)
                items.append((item, cond, f"{type(op.entity).__name__.lower()}"))
            elif isinstance(op, CounterPut):
                item = CounterItem(pk=f"CTR#{op.key}", sk="COUNTER", kind="counter", value=op.value)
                cond = CounterItem.pk.does_not_exist() if op.expected == 0 else CounterItem.value == op.expected
                items.append((item, cond, "counter"))
            elif isinstance(op, RecordPut):
                item = _record_item(op.record)
                cond = type(item).pk.does_not_exist() if op.must_not_exist else None
                kind = ("idempotency" if isinstance(op.record, IdempotencyRecord)
                        else f"ref:{op.record.kind}" if isinstance(op.record, RefRecord)
                        else type(op.record).__name__)
                items.append((item, cond, kind))
        touches = [op for op in ops if isinstance(op, DunningTouch)]  # attribute upserts (issue 5)
        table = TableItem.Meta.table_name
        try:
            with TransactWrite(connection=self._connection) as tx:
                for item, cond, _ in items:
                    tx.save(item, condition=cond)
                # Aggregate cells are dynamic attribute names: ADD them with a raw update
                # (pynamodb sends updates after the puts, so cancellation reasons keep their order).
                tx._update_items.extend(_aggregate_update(table, u) for u in updates)
                tx._update_items.extend(touch_update(table, t) for t in touches)
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            failed = [items[i][2] if i < len(items) else "update" for i, r in enumerate(reasons)
                      if r is not None and r.code]
            codes = {r.code for r in reasons if r is not None and r.code}
            if codes and codes <= {"ConditionalCheckFailed", "TransactionConflict"} or \
                    exc.cause_response_code == "TransactionConflictException":
                raise CommitConflict("the records changed while this request was processed; retry it",
                                     idempotency="idempotency" in failed, failed=failed) from None
            raise

    # -- aggregates -----------------------------------------------------------------------------
    def get_aggregates(self, keys: Sequence[AggregateKey]) -> dict[AggregateKey, dict[str, int]]:
        client = self._connection.client
        table = TableItem.Meta.table_name
        wanted = {(k.pk, k.sk): k for k in keys}
        out: dict[AggregateKey, dict[str, int]] = {}
        pending = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in wanted]
        while pending:
            batch, pending = pending[:100], pending[100:]
            request: dict[str, Any] = {table: {"Keys": batch, "ConsistentRead": True}}
            while request:
                response = client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(table, []):
                    key = wanted[(raw["pk"]["S"], raw["sk"]["S"])]
                    out[key] = {name: int(value["N"]) for name, value in raw.items() if "N" in value
                                and name not in ("version",)}
                request = response.get("UnprocessedKeys") or {}
        return out

    def query_aggregates(self, currency: str, scope: str, *, grain: str | None = None,
                         start: str | None = None, end: str | None = None) -> dict[AggregateKey, dict[str, int]]:
        from ...domain.aggregates import AggregateKey

        client = self._connection.client
        pk = AggregateKey(currency, scope, "", "").pk
        values: dict[str, Any] = {":pk": {"S": pk}}
        condition = "pk = :pk"
        if grain is not None:
            values[":lo"] = {"S": f"{grain}#{start or ''}"}
            values[":hi"] = {"S": f"{grain}#{end}" if end is not None else f"{grain}#~"}
            condition += " AND sk BETWEEN :lo AND :hi"
        request: dict[str, Any] = {"TableName": TableItem.Meta.table_name, "KeyConditionExpression": condition,
                                   "ExpressionAttributeValues": values, "ConsistentRead": True}
        out: dict[AggregateKey, dict[str, int]] = {}
        while True:
            response = client.query(**request)
            for raw in response.get("Items", []):
                item_grain, _, period = raw["sk"]["S"].partition("#")
                out[AggregateKey(currency, scope, item_grain, period)] = {
                    name: int(value["N"]) for name, value in raw.items() if "N" in value and name != "version"}
            if not response.get("LastEvaluatedKey"):
                return out
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def put_aggregates(self, items: dict[AggregateKey, dict[str, int]]) -> None:
        client = self._connection.client
        table = TableItem.Meta.table_name
        requests = [{"PutRequest": {"Item": {"pk": {"S": k.pk}, "sk": {"S": k.sk}, "kind": {"S": "aggregate"},
                                             **{c: {"N": str(v)} for c, v in cells.items()}}}}
                    for k, cells in items.items()]
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {table: requests[start:start + 25]}
            while pending:
                pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    # -- outbox -------------------------------------------------------------------------------
    def pending_outbox(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        out: list[OutboxMessage] = []
        ready = OutboxItem.not_before.does_not_exist() | (OutboxItem.not_before <= now)
        free = OutboxItem.lease_until.does_not_exist() | (OutboxItem.lease_until < now)
        for shard in range(OUTBOX_SHARDS):
            for item in OutboxItem.query(f"OUTBOX#{shard}", filter_condition=ready & free, limit=limit,
                                         page_size=limit):
                out.append(to_outbox(item))
        out.sort(key=lambda m: m.created_at)
        return out[:limit]

    def _outbox_item(self, message: OutboxMessage) -> OutboxItem:
        return OutboxItem(pk=_outbox_shard(message.id), sk=f"{message.created_at.isoformat()}#{message.id}")

    def claim_outbox(self, message: OutboxMessage, lease_until: datetime) -> bool:
        # Optimistic on the attempt counter: of two drains that read the same
        # message, only the first increments it; the other's condition fails.
        try:
            self._outbox_item(message).update(
                actions=[OutboxItem.lease_until.set(lease_until), OutboxItem.attempts.set(message.attempts + 1)],
                condition=OutboxItem.pk.exists() & (OutboxItem.attempts == message.attempts))
        except UpdateError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def complete_outbox(self, message: OutboxMessage) -> None:
        try:
            self._outbox_item(message).delete()
        except DeleteError:  # pragma: no cover - already gone is fine
            pass

    def retry_outbox(self, message: OutboxMessage, error: str, not_before: datetime) -> None:
        self._outbox_item(message).update(actions=[
            OutboxItem.last_error.set(error[:1000]), OutboxItem.not_before.set(not_before),
            OutboxItem.lease_until.remove()])

    def dead_letter_outbox(self, message: OutboxMessage, error: str) -> None:
        dead = OutboxItem(pk="OUTBOX#DEAD", sk=f"{message.created_at.isoformat()}#{message.id}", kind="outbox",
                          id=message.id, topic=message.topic, payload=message.payload,
                          created_at=message.created_at, attempts=message.attempts + 1, last_error=error[:1000],
                          dead=True)
        with TransactWrite(connection=self._connection) as tx:
            tx.save(dead)
            tx.delete(self._outbox_item(message))

    def list_dead_letters(self, limit: int = 100) -> list[OutboxMessage]:
        return [to_outbox(i) for i in OutboxItem.query("OUTBOX#DEAD", limit=limit)]


def _aggregate_update(table: str, update: AggregateUpdate) -> dict[str, Any]:
    names, values, parts = {}, {}, []
    for i, (cell, value) in enumerate(sorted(update.increments.items())):
        names[f"#c{i}"] = cell
        values[f":v{i}"] = {"N": str(value)}
        parts.append(f"#c{i} :v{i}")
    names["#k"] = "kind"
    values[":kind"] = {"S": "aggregate"}
    return {"TableName": table, "Key": {"pk": {"S": update.key.pk}, "sk": {"S": update.key.sk}},
            "UpdateExpression": "SET #k = :kind ADD " + ", ".join(parts),
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        flat = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        offset = flat["offset"]
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise BadRequest("cursor is not valid: pass back the next_cursor of the previous page unchanged",
                         field="cursor", code="invalid_cursor") from None
    return offset


def _sorted_page(fetch: Callable[[str | None], Page[Any]], key: Callable[[Any], Any], reverse: bool, limit: int,
                 cursor: str | None, plan: str) -> Page[Any]:
    """Read the whole selection (at most SORT_READ_CAP items), sort it, return one slice (offset cursor)."""
    start = _offset(cursor)
    items: list[Any] = []
    scanned = 0
    page_cursor: str | None = None
    while True:
        page = fetch(page_cursor)
        items.extend(page.items)
        scanned += page.scanned
        page_cursor = page.next_cursor
        if not page_cursor:
            break
        if scanned >= SORT_READ_CAP:
            raise ValidationError(f"this sort reads the whole selection and it has more than {SORT_READ_CAP} "
                                  "items: narrow it (customer_id, status=open with due dates, issue dates, "
                                  "amounts) or drop sort to page through the index's own order",
                                  field="sort", code="sort_too_broad")
    items.sort(key=key, reverse=reverse)
    end = start + limit
    nxt = (base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode().rstrip("=")
           if end < len(items) else None)
    return Page(items=items[start:end], next_cursor=nxt, scanned=scanned, plan=plan)


def _and(conditions: list[Condition]) -> Condition | None:
    if not conditions:
        return None
    out = conditions[0]
    for c in conditions[1:]:
        out = out & c
    return out


def _range(attr: Any, low: str | None, high: str | None) -> Condition | None:
    if low and high:
        return attr.between(low, high)
    if low:
        return attr >= low
    if high:
        return attr <= high
    return None
