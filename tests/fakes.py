"""In-memory implementations of the ports, for unit tests (no sockets).

``FakeLedger`` honours the same contract as the DynamoDB ledger (atomic commit,
version / counter / idempotency conditions, the same query orderings); the
contract suite in tests/integration/test_ledger_contract.py runs against both.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import date, datetime
from typing import Any, Callable, Iterable, Sequence

from chalicelib.domain.aggregates import AggregateKey, apply_updates, merge_deltas
from chalicelib.domain.auth import ApiKey
from chalicelib.domain.collections import (DISPUTE_OPEN, PLAN_ACTIVE, PROMISE_ACTIVE, TASK_OPEN, Dispute, PaymentPlan,
                                          Promise, Task)
from chalicelib.domain.provider import IntentState
from chalicelib.domain.recurring import ACTIVE as SCHEDULE_ACTIVE, RecurringSchedule
from chalicelib.domain.errors import BadRequest, NotFound, ValidationError
from chalicelib.domain.invoice import OPEN, Invoice
from chalicelib.domain.parties import Customer
from chalicelib.domain.payment import Payment
from tests.fakes_cashapp import FakeCashAppLedger, cashapp_entity_key
from chalicelib.services.ports import (AuditEntry, CommitConflict, CounterPut, DocumentStore, EntityPut,
                                       EventPublisher, IdempotencyRecord, InvoiceQuery, Ledger, OutboxMessage, Page,
                                       PaymentQuery, RecordPut, RefRecord, SettingsDoc, UnitOfWork)


from chalicelib.domain.dunning_record import ActivityEntry, DunningRecord, touched  # noqa: E402
from chalicelib.services.ports import DunningTouch  # noqa: E402


def _entity_key(entity: Any) -> tuple[str, str]:
    if isinstance(entity, DunningRecord):
        return "dunning", entity.invoice_id
    if isinstance(entity, Customer):
        return "customer", entity.id
    if isinstance(entity, Invoice):
        return "invoice", entity.id
    if isinstance(entity, Payment):
        return "payment", entity.id
    if isinstance(entity, ApiKey):
        return "api_key", entity.key_hash
    if isinstance(entity, SettingsDoc):
        return "settings", entity.name
    if isinstance(entity, IntentState):
        return "intent", entity.id
    if isinstance(entity, Task):
        return "task", entity.id
    if isinstance(entity, Dispute):
        return "dispute", entity.id
    if isinstance(entity, Promise):
        return "promise", entity.id
    if isinstance(entity, PaymentPlan):
        return "plan", entity.id
    if isinstance(entity, RecurringSchedule):
        return "recurringschedule", entity.id
    cashapp = cashapp_entity_key(entity)  # bank transactions, imports
    if cashapp is not None:
        return cashapp
    raise TypeError(type(entity).__name__)


class FakeLedger(FakeCashAppLedger, Ledger):
    def __init__(self) -> None:
        self.entities: dict[tuple[str, str], Any] = {}
        self.counters: dict[str, int] = {}
        self.idempotency: dict[tuple[str, str], IdempotencyRecord] = {}
        self.refs: dict[tuple[str, str], RefRecord] = {}
        self.aggregates: dict[AggregateKey, dict[str, int]] = {}
        self.audit: list[AuditEntry] = []
        self.outbox: dict[str, dict[str, Any]] = {}
        self.dead: list[OutboxMessage] = []
        self.commits = 0
        self.activities: list[ActivityEntry] = []
        self._lock = threading.RLock()

    # -- reads --------------------------------------------------------------------------------
    def _get(self, kind: str, ident: str) -> Any:
        with self._lock:
            entity = self.entities.get((kind, ident))
        if entity is None:
            raise NotFound(f"{kind} {ident} does not exist", code=f"{kind}_not_found")
        return entity

    def get_customer(self, customer_id: str) -> Customer:
        return self._get("customer", customer_id)

    def get_invoice(self, invoice_id: str) -> Invoice:
        return self._get("invoice", invoice_id)

    def get_invoices(self, invoice_ids: Iterable[str]) -> dict[str, Invoice]:
        with self._lock:
            return {i: self.entities[("invoice", i)] for i in invoice_ids if ("invoice", i) in self.entities}

    def get_payment(self, payment_id: str) -> Payment:
        return self._get("payment", payment_id)

    def get_counter(self, key: str) -> int:
        return self.counters.get(key, 0)

    def get_settings(self, name: str) -> SettingsDoc | None:
        return self.entities.get(("settings", name))

    def get_ref(self, kind: str, value: str) -> RefRecord | None:
        return self.refs.get((kind, value))

    def get_intent(self, intent_id: str) -> IntentState | None:
        return self.entities.get(("intent", intent_id))

    def _by_customer_or_queue(self, kind: str, open_status: str, due: Callable[[Any], Any], *,
                              customer_id: str | None, status: str | None, due_before: date | None, limit: int,
                              cursor: str | None, plural: str, before: datetime | None = None) -> Page[Any]:
        items = [e for e in self._all(kind) if status is None or e.status == status]
        if customer_id:
            items = [e for e in items if e.customer_id == customer_id and (before is None or e.created_at < before)]
            return self._paginate(items, lambda e: (e.created_at, e.id), limit, cursor, reverse=True)
        if status not in (None, open_status):
            raise ValidationError(f"{plural} that are not {open_status} are listed per customer: pass customer_id",
                                  field="customer_id")
        items = [e for e in items if e.status == open_status and due(e) is not None
                 and (due_before is None or due(e) < due_before)]
        return self._paginate(items, lambda e: (due(e), e.id), limit, cursor)

    def get_task(self, task_id: str) -> Task:
        return self._get("task", task_id)

    def list_tasks(self, *, status: str = "open", customer_id: str | None = None, limit: int = 50,
                   cursor: str | None = None) -> Page[Task]:
        return self._by_customer_or_queue("task", TASK_OPEN, lambda t: t.due_on, customer_id=customer_id,
                                          status=status, due_before=None, limit=limit, cursor=cursor, plural="tasks")

    def get_dispute(self, dispute_id: str) -> Dispute:
        return self._get("dispute", dispute_id)

    def list_disputes(self, *, customer_id: str | None = None, status: str | None = None, limit: int = 50,
                      cursor: str | None = None, before: datetime | None = None) -> Page[Dispute]:
        return self._by_customer_or_queue("dispute", DISPUTE_OPEN, lambda d: d.created_at, customer_id=customer_id,
                                          status=status, due_before=None, limit=limit, cursor=cursor,
                                          plural="disputes", before=before)

    def get_promise(self, promise_id: str) -> Promise:
        return self._get("promise", promise_id)

    def list_promises(self, *, customer_id: str | None = None, status: str | None = None,
                      due_before: date | None = None, limit: int = 50, cursor: str | None = None) -> Page[Promise]:
        return self._by_customer_or_queue("promise", PROMISE_ACTIVE, lambda p: p.promised_on,
                                          customer_id=customer_id, status=status, due_before=due_before, limit=limit,
                                          cursor=cursor, plural="promises")

    def get_plan(self, plan_id: str) -> PaymentPlan:
        return self._get("plan", plan_id)

    def list_plans(self, *, customer_id: str | None = None, status: str | None = None,
                   due_before: date | None = None, limit: int = 50, cursor: str | None = None) -> Page[PaymentPlan]:
        return self._by_customer_or_queue("plan", PLAN_ACTIVE, lambda p: p.next_due, customer_id=customer_id,
                                          status=status, due_before=due_before, limit=limit, cursor=cursor,
                                          plural="plans")

    def get_schedule(self, schedule_id: str) -> RecurringSchedule:
        entity = self.entities.get(("recurringschedule", schedule_id))
        if entity is None:
            raise NotFound(f"schedule {schedule_id} does not exist", code="schedule_not_found")
        return entity

    def list_schedules(self, *, customer_id: str | None = None, due_before: date | None = None, limit: int = 50,
                       cursor: str | None = None) -> Page[RecurringSchedule]:
        items = self._all("recurringschedule")
        if customer_id:
            items = [s for s in items if s.customer_id == customer_id]
            return self._paginate(items, lambda s: (s.created_at, s.id), limit, cursor, reverse=True)
        items = [s for s in items if s.status == SCHEDULE_ACTIVE and s.next_run is not None
                 and (due_before is None or s.next_run < due_before)]
        return self._paginate(items, lambda s: (s.next_run, s.id), limit, cursor)

    def get_api_key(self, key_hash: str) -> ApiKey | None:
        return self.entities.get(("api_key", key_hash))

    def list_api_keys(self) -> list[ApiKey]:
        keys = [e for (k, _), e in self.entities.items() if k == "api_key"]
        return sorted(keys, key=lambda k: k.created_at, reverse=True)

    def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None:
        return self.idempotency.get((scope, key))

    def _all(self, kind: str) -> list[Any]:
        with self._lock:
            return [e for (k, _), e in self.entities.items() if k == kind]

    @staticmethod
    def _paginate(items: list[Any], sort_key: Callable[[Any], Any], limit: int, cursor: str | None,
                  reverse: bool = False) -> Page[Any]:
        ordered = sorted(items, key=sort_key, reverse=reverse)
        start = 0
        if cursor:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(cursor.encode() + b"==="))["offset"])
            except (ValueError, KeyError, TypeError):
                raise BadRequest("cursor is not valid", field="cursor", code="invalid_cursor") from None
        page = ordered[start:start + limit]
        more = start + limit < len(ordered)
        nxt = base64.urlsafe_b64encode(json.dumps({"offset": start + limit}).encode()).decode() if more else None
        return Page(items=page, next_cursor=nxt, scanned=len(page))

    def list_customers(self, *, limit: int = 50, cursor: str | None = None,
                       on_hold: bool = False) -> Page[Customer]:
        customers = [c for c in self._all("customer") if c.on_hold or not on_hold]
        return self._paginate(customers, lambda c: (c.name.casefold()[:80], c.id), limit, cursor)

    def query_invoices(self, query: InvoiceQuery, today: date) -> Page[Invoice]:
        items = self._all("invoice")
        if query.customer_id:
            items = [i for i in items if i.customer_id == query.customer_id]
        elif query.status in (None, OPEN) and (query.status == OPEN or query.due_before or query.due_after):
            items = [i for i in items if i.status == OPEN]
        read = len(items)
        if query.collection_status:
            items = [i for i in items if i.collection_status == query.collection_status]
        if query.dispute_status:
            items = [i for i in items if i.dispute_status == query.dispute_status]
        if query.status:
            items = [i for i in items if i.status == query.status]
        if query.due_before:
            items = [i for i in items if i.due_date and i.due_date < query.due_before]
        if query.due_after:
            items = [i for i in items if i.due_date and i.due_date > query.due_after]
        if query.issued_from:
            items = [i for i in items if i.issue_date and i.issue_date >= query.issued_from]
        if query.issued_to:
            items = [i for i in items if i.issue_date and i.issue_date <= query.issued_to]
        if query.currency:
            items = [i for i in items if i.currency == query.currency]
        if query.dunning_step:
            items = [i for i in items if i.dunning_step == query.dunning_step]
        if query.amount_min is not None:
            items = [i for i in items if i.totals.total.amount >= query.amount_min]
        if query.amount_max is not None:
            items = [i for i in items if i.totals.total.amount <= query.amount_max]
        open_path = not query.customer_id and query.status in (None, OPEN) and bool(
            query.status == OPEN or query.due_before or query.due_after)
        if query.sort in ("amount", "-amount") or (query.sort and not open_path):
            self._check_sort_cap(read)
            key = ((lambda i: (i.totals.total.amount, i.id)) if query.sort.endswith("amount")
                   else (lambda i: (i.due_date or date.max, i.id)))
            return self._paginate(items, key, query.limit, query.cursor, reverse=query.sort.startswith("-"))
        if query.customer_id:
            return self._paginate(items, lambda i: ((i.issue_date or i.created_at.date()), i.id), query.limit,
                                  query.cursor, reverse=True)
        if open_path:
            return self._paginate(items, lambda i: (i.due_date, i.id), query.limit, query.cursor,
                                  reverse=query.sort == "-due_date")
        return self._paginate(items, lambda i: (i.created_at, i.id), query.limit, query.cursor, reverse=True)

    @staticmethod
    def _check_sort_cap(read: int) -> None:
        from chalicelib.services.ports import SORT_READ_CAP

        if read > SORT_READ_CAP:
            raise ValidationError(f"this sort reads the whole selection and it has more than {SORT_READ_CAP} items",
                                  field="sort", code="sort_too_broad")

    def query_payments(self, query: PaymentQuery) -> Page[Payment]:
        items = self._all("payment")
        if query.customer_id:
            items = [p for p in items if p.customer_id == query.customer_id]
        if query.unapplied is not None:
            items = [p for p in items if p.unapplied.is_positive == query.unapplied]
        if query.received_from:
            items = [p for p in items if p.received_on >= query.received_from]
        if query.received_to:
            items = [p for p in items if p.received_on <= query.received_to]
        read = len(items)
        if query.method:
            items = [p for p in items if p.method == query.method]
        if query.currency:
            items = [p for p in items if p.currency == query.currency]
        if query.amount_min is not None:
            items = [p for p in items if p.amount.amount >= query.amount_min]
        if query.amount_max is not None:
            items = [p for p in items if p.amount.amount <= query.amount_max]
        if query.sort in ("amount", "-amount"):
            self._check_sort_cap(read)
            return self._paginate(items, lambda p: (p.amount.amount, p.id), query.limit, query.cursor,
                                  reverse=query.sort == "-amount")
        return self._paginate(items, lambda p: (p.received_on, p.id), query.limit, query.cursor,
                              reverse=query.sort != "received_on")

    def list_audit(self, *, entity_type: str | None = None, entity_id: str | None = None, day: date | None = None,
                   limit: int = 50, cursor: str | None = None) -> Page[AuditEntry]:
        if entity_type and entity_id:
            items = [a for a in self.audit if a.entity_type == entity_type and a.entity_id == entity_id]
        elif day is not None:
            items = [a for a in self.audit if a.at.date() == day]
        else:
            raise ValidationError("give entity_type and entity_id, or a day (YYYY-MM-DD)", field="day")
        return self._paginate(items, lambda a: (a.at, a.id), limit, cursor, reverse=True)

    # -- writes -------------------------------------------------------------------------------
    def commit(self, uow: UnitOfWork) -> None:
        with self._lock:
            failed: list[str] = []
            for op in uow.operations:
                if isinstance(op, EntityPut):
                    current = self.entities.get(_entity_key(op.entity))
                    if op.expected_version is None and current is not None:
                        failed.append(_entity_key(op.entity)[0])
                    elif op.expected_version is not None and (current is None or
                                                              current.version != op.expected_version):
                        failed.append(_entity_key(op.entity)[0])
                elif isinstance(op, CounterPut):
                    if self.counters.get(op.key, 0) != op.expected:
                        failed.append("counter")
                elif isinstance(op, RecordPut) and isinstance(op.record, IdempotencyRecord):
                    if (op.record.scope, op.record.key) in self.idempotency:
                        failed.append("idempotency")
                elif isinstance(op, RecordPut) and isinstance(op.record, RefRecord):
                    if op.must_not_exist and (op.record.kind, op.record.value) in self.refs:
                        failed.append(f"ref:{op.record.kind}")
            if failed:
                raise CommitConflict("the records changed while this request was processed; retry it",
                                     idempotency="idempotency" in failed, failed=failed)
            apply_updates(self.aggregates, merge_deltas(uow.aggregate_deltas))
            for op in uow.operations:
                if isinstance(op, EntityPut):
                    self.entities[_entity_key(op.entity)] = op.entity
                elif isinstance(op, CounterPut):
                    self.counters[op.key] = op.value
                elif isinstance(op, RecordPut):
                    rec = op.record
                    if isinstance(rec, IdempotencyRecord):
                        self.idempotency[(rec.scope, rec.key)] = rec
                    elif isinstance(rec, RefRecord):
                        self.refs[(rec.kind, rec.value)] = rec
                    elif isinstance(rec, AuditEntry):
                        self.audit.append(rec)
                    elif isinstance(rec, OutboxMessage):
                        self.outbox[rec.id] = {"message": rec, "lease_until": None}
                    elif isinstance(rec, ActivityEntry):
                        self.activities.append(rec)
                elif isinstance(op, DunningTouch):
                    self._touch_dunning(op)
            self.commits += 1

    def get_aggregates(self, keys: Sequence[AggregateKey]) -> dict[AggregateKey, dict[str, int]]:
        with self._lock:
            return {k: dict(self.aggregates[k]) for k in keys if k in self.aggregates}

    def put_aggregates(self, items: dict[AggregateKey, dict[str, int]]) -> None:
        with self._lock:
            self.aggregates.update({k: dict(v) for k, v in items.items()})

    def query_aggregates(self, currency: str, scope: str, *, grain: str | None = None,
                         start: str | None = None, end: str | None = None) -> dict[AggregateKey, dict[str, int]]:
        with self._lock:
            return {k: dict(v) for k, v in sorted(self.aggregates.items())
                    if k.currency == currency and k.scope == scope and (grain is None or (
                        k.grain == grain and (start is None or k.period >= start)
                        and (end is None or k.period <= end)))}

    # -- outbox -------------------------------------------------------------------------------
    def pending_outbox(self, now: datetime, limit: int = 100) -> list[OutboxMessage]:
        with self._lock:
            ready = [v["message"] for v in self.outbox.values()
                     if (v["message"].not_before is None or v["message"].not_before <= now)
                     and (v["lease_until"] is None or v["lease_until"] < now)]
        return sorted(ready, key=lambda m: m.created_at)[:limit]

    def claim_outbox(self, message: OutboxMessage, lease_until: datetime) -> bool:
        with self._lock:
            entry = self.outbox.get(message.id)
            if entry is None or entry["message"].attempts != message.attempts:
                return False
            entry["lease_until"] = lease_until
            entry["message"] = _bump(entry["message"])
            return True

    def complete_outbox(self, message: OutboxMessage) -> None:
        with self._lock:
            self.outbox.pop(message.id, None)

    def retry_outbox(self, message: OutboxMessage, error: str, not_before: datetime) -> None:
        from dataclasses import replace

        with self._lock:
            entry = self.outbox[message.id]
            entry["message"] = replace(entry["message"], last_error=error, not_before=not_before)
            entry["lease_until"] = None

    def dead_letter_outbox(self, message: OutboxMessage, error: str) -> None:
        from dataclasses import replace

        with self._lock:
            self.outbox.pop(message.id, None)
            self.dead.append(replace(message, last_error=error))

    def list_dead_letters(self, limit: int = 100) -> list[OutboxMessage]:
        return self.dead[:limit]

    def outbox_topics(self) -> list[str]:
        return [v["message"].topic for v in self.outbox.values()]

    # -- dunning (issue 5) ----------------------------------------------------------------------
    def _touch_dunning(self, op: DunningTouch) -> None:
        key = ("dunning", op.invoice_id)
        current = self.entities.get(key) or DunningRecord(invoice_id=op.invoice_id, customer_id=op.customer_id)
        self.entities[key] = touched(current, invoice=op.invoice, customer=op.customer,
                                     promises=op.promises, wake=op.wake)

    def get_dunning(self, invoice_ids: Iterable[str], *, consistent: bool = False) -> dict[str, DunningRecord]:
        with self._lock:
            return {i: self.entities[("dunning", i)] for i in invoice_ids if ("dunning", i) in self.entities}

    def dunning_due(self, until: datetime, *, limit: int = 500, cursor: str | None = None) -> Page[DunningRecord]:
        from chalicelib.domain.dunning_record import utc_key

        bound = f"{utc_key(until)}#~"
        items = [r for r in self._all("dunning") if r.index_key() is not None and r.index_key() <= bound]
        return self._paginate(items, lambda r: r.index_key(), limit, cursor)

    def dunning_for_customer(self, customer_id: str, *, active_only: bool = True, limit: int = 200,
                             cursor: str | None = None) -> Page[DunningRecord]:
        items = [r for r in self._all("dunning") if r.customer_id == customer_id and (r.active or not active_only)]
        return self._paginate(items, lambda r: r.invoice_id, limit, cursor)

    def dunning_active(self, *, limit: int = 500, cursor: str | None = None) -> Page[DunningRecord]:
        return self._paginate([r for r in self._all("dunning") if r.active], lambda r: r.invoice_id, limit, cursor)

    def list_activity(self, customer_id: str, *, limit: int = 100, cursor: str | None = None,
                      before: datetime | None = None) -> Page[ActivityEntry]:
        with self._lock:
            items = [a for a in self.activities if a.customer_id == customer_id and (before is None or a.at < before)]
        return self._paginate(items, lambda a: (a.at, a.id), limit, cursor, reverse=True)


def _bump(message: OutboxMessage) -> OutboxMessage:
    from dataclasses import replace

    return replace(message, attempts=message.attempts + 1)


class RecordingPublisher(EventPublisher):
    def __init__(self, fail_times: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail_times = fail_times

    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("bus unavailable")
        self.events.extend(events)


class FakeDocumentStore(DocumentStore):
    """Documents in memory; pre-signed URLs are ``memory://`` addresses (``url_key`` reads one back)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.urls: list[tuple[str, int]] = []

    def put(self, key: str, content: bytes, content_type: str) -> None:
        self.objects[key] = bytes(content)
        self.content_types[key] = content_type

    def get(self, key: str) -> bytes:
        if key not in self.objects:
            raise NotFound(f"document {key} is not stored yet", code="document_not_ready")
        return self.objects[key]

    def exists(self, key: str) -> bool:
        return key in self.objects

    def presigned_url(self, key: str, expires_s: int) -> str:
        self.urls.append((key, expires_s))
        return f"memory://{key}?expires={expires_s}"

    @staticmethod
    def url_key(url: str) -> str:
        return url.removeprefix("memory://").split("?")[0]
