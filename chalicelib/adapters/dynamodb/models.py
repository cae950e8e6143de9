"""pynamodb models of the single ledger table.

One table, generic key names, overloaded indexes (see ``schema.md`` beside this
file for the access patterns each key serves):

==========  =========================  ==============================  =====================================
item        pk / sk                    gsi1 (by customer)              gsi2 (sparse queues) / gsi3 (by kind)
==========  =========================  ==============================  =====================================
customer    CUS#id / CUSTOMER          -                               gsi3: CUSTOMER / name#id
invoice     INV#id / INVOICE           CUS#cid / INV#date#id           gsi2: OPEN / due#id (open only);
                                                                       gsi3: INVOICE / created#id
payment     PAY#id / PAYMENT           CUS#cid / PAY#received#id       gsi2: UNAPPLIED / received#id
                                                                       (unapplied only); gsi3: PAYMENT / ...
counter     CTR#series#year / COUNTER  -                               -
api key     KEY#sha256 / APIKEY        -                               gsi3: APIKEY / created
settings    SET#name / SETTINGS        -                               -
idempotency IDEM#scope#key / IDEM      -                               - (TTL expires_at)
audit       AUD#type#id / at#id        -                               gsi3: AUDIT#day / at#id
outbox      OUTBOX#shard / created#id  -                               - (deleted when done)
ref         REF#kind#value / REF       -                               - (TTL for webhook event markers)
intent      PI#id / INTENT             -                               -
task        TSK#id / TASK              CUS#cid / TSK#created#id        gsi2: TASK#open / due#id (open only)
dispute     DSP#id / DISPUTE           CUS#cid / DSP#created#id        gsi2: DISPUTE#open / created#id
promise     PRM#id / PROMISE           CUS#cid / PRM#created#id        gsi2: PROMISE#active / promised_on#id
plan        PLN#id / PLAN              CUS#cid / PLN#created#id        gsi2: PLAN#active / next_due#id
schedule    RSC#id / SCHEDULE          CUS#cid / RSC#created#id        gsi2: RECURRING#active / next_run#id
aggregate   AGG#ccy#scope / grain#per  -                               - (cells are dynamic numeric attributes)
bank tx     BTX#id / BANKTX            CUS#cid / BTX#booked#id         gsi2: BANKTX#<status> / booked#id
                                                                       (unmatched, review, unreconciled only);
                                                                       gsi3: BANKTX (PAYOUT for Stripe
                                                                       payouts) / booked#id
import      IMP#id / IMPORT            -                               gsi3: IMPORT / created#id
==========  =========================  ==============================  =====================================

Nothing here connects at import time: :func:`configure` sets the table name,
region and endpoint, and gives every model one shared botocore client.
"""

from __future__ import annotations

from pynamodb.attributes import (BooleanAttribute, JSONAttribute, NumberAttribute, UnicodeAttribute,
                                 UTCDateTimeAttribute)
from pynamodb.connection import Connection, TableConnection
from pynamodb.constants import PAY_PER_REQUEST_BILLING_MODE
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from .schema import GSI1, GSI2, GSI3, TABLE_ATTRS


class Gsi1(GlobalSecondaryIndex["TableItem"]):
    class Meta:
        index_name = GSI1
        projection = AllProjection()
        billing_mode = PAY_PER_REQUEST_BILLING_MODE

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class Gsi2(GlobalSecondaryIndex["TableItem"]):
    class Meta:
        index_name = GSI2
        projection = AllProjection()
        billing_mode = PAY_PER_REQUEST_BILLING_MODE

    gsi2pk = UnicodeAttribute(hash_key=True)
    gsi2sk = UnicodeAttribute(range_key=True)


class Gsi3(GlobalSecondaryIndex["TableItem"]):
    class Meta:
        index_name = GSI3
        projection = AllProjection()
        billing_mode = PAY_PER_REQUEST_BILLING_MODE

    gsi3pk = UnicodeAttribute(hash_key=True)
    gsi3sk = UnicodeAttribute(range_key=True)


class TableItem(Model):
    """Keys and indexes shared by every item of the ledger table."""

    class Meta:
        table_name = TABLE_ATTRS["default_name"]
        region = "eu-west-3"
        host: str | None = None
        billing_mode = PAY_PER_REQUEST_BILLING_MODE

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    gsi2pk = UnicodeAttribute(null=True)
    gsi2sk = UnicodeAttribute(null=True)
    gsi3pk = UnicodeAttribute(null=True)
    gsi3sk = UnicodeAttribute(null=True)
    by_customer = Gsi1()
    queue = Gsi2()
    by_kind = Gsi3()
    version = NumberAttribute(default=0)


class CustomerItem(TableItem):
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    data = JSONAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class InvoiceItem(TableItem):
    id = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    invoice_kind = UnicodeAttribute()
    status = UnicodeAttribute()
    currency = UnicodeAttribute()
    number = UnicodeAttribute(null=True)
    issue_date = UnicodeAttribute(null=True)
    due_date = UnicodeAttribute(null=True)
    total = NumberAttribute()
    amount_due = NumberAttribute()
    dunning_step = UnicodeAttribute(null=True)
    dispute_status = UnicodeAttribute(null=True)
    collection_status = UnicodeAttribute(null=True)
    data = JSONAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class PaymentItem(TableItem):
    id = UnicodeAttribute()
    customer_id = UnicodeAttribute(null=True)
    amount = NumberAttribute()
    currency = UnicodeAttribute()
    unapplied = NumberAttribute()
    method = UnicodeAttribute()
    received_on = UnicodeAttribute()
    provider_ref = UnicodeAttribute(null=True)
    data = JSONAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class CounterItem(TableItem):
    value = NumberAttribute()


class ApiKeyItem(TableItem):
    name = UnicodeAttribute()
    role = UnicodeAttribute()
    hint = UnicodeAttribute()
    created_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)


class SettingsItem(TableItem):
    data = JSONAttribute()
    updated_at = UTCDateTimeAttribute()


class IdempotencyItem(TableItem):
    request_hash = UnicodeAttribute()
    resource_type = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = NumberAttribute()  # DynamoDB TTL (epoch seconds)


class AuditItem(TableItem):
    id = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    entity_type = UnicodeAttribute()
    entity_id = UnicodeAttribute()
    before = JSONAttribute(null=True)
    after = JSONAttribute(null=True)


class OutboxItem(TableItem):
    id = UnicodeAttribute()
    topic = UnicodeAttribute()
    payload = JSONAttribute()
    created_at = UTCDateTimeAttribute()
    attempts = NumberAttribute(default=0)
    not_before = UTCDateTimeAttribute(null=True)
    lease_until = UTCDateTimeAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    dead = BooleanAttribute(default=False)


class RefItem(TableItem):
    target = UnicodeAttribute()
    data = JSONAttribute(null=True)
    created_at = UTCDateTimeAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # DynamoDB TTL (epoch seconds)


class IntentItem(TableItem):
    """A provider PaymentIntent's furthest known state."""

    status = UnicodeAttribute()
    data = JSONAttribute()


class TaskItem(TableItem):
    status = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    data = JSONAttribute()


class DisputeItem(TableItem):
    status = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    invoice_id = UnicodeAttribute()
    data = JSONAttribute()


class PromiseItem(TableItem):
    status = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    data = JSONAttribute()


class PlanItem(TableItem):
    status = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    data = JSONAttribute()


ALL_MODELS: tuple[type[TableItem], ...] = (TableItem, CustomerItem, InvoiceItem, PaymentItem, CounterItem,
                                           ApiKeyItem, SettingsItem, IdempotencyItem, AuditItem, OutboxItem,
                                           RefItem, IntentItem, TaskItem, DisputeItem, PromiseItem, PlanItem)


class BankTransactionItem(TableItem):
    """A bank statement transaction (cash application); the id derives from its statement key."""

    status = UnicodeAttribute()
    customer_id = UnicodeAttribute(null=True)
    booking_date = UnicodeAttribute()
    data = JSONAttribute()


class ImportItem(TableItem):
    """An import of existing receivables and its progress."""

    status = UnicodeAttribute()
    data = JSONAttribute()


ALL_MODELS = ALL_MODELS + (BankTransactionItem, ImportItem)


# -- dunning (issue 5) ----------------------------------------------------------------------------
# dunning   DUN#invoice / STATE        CUS#cid / DUN#invoice           gsi2: DUNNING#due / <next action UTC>#id
#                                                                     (pending only; "!wake#id" when woken);
#                                                                     gsi3: DUNNING#active / id (open only)
# activity  ACT#cid / at#id            -                               -
class DunningItem(TableItem):
    """One invoice's dunning record: projection, customer snapshot, promises (touched), sends (sweep)."""

    customer_id = UnicodeAttribute()
    invoice = JSONAttribute(null=True)
    customer = JSONAttribute(null=True)
    promises = JSONAttribute(null=True)
    data = JSONAttribute(null=True)
    next_action_at = UnicodeAttribute(null=True)
    woken = BooleanAttribute(null=True)


class ActivityItem(TableItem):
    """A line of a customer's timeline (append-only)."""

    data = JSONAttribute()


ALL_MODELS = ALL_MODELS + (DunningItem, ActivityItem)


class ScheduleItem(TableItem):
    """A monthly recurring billing schedule (issue 3)."""

    status = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    data = JSONAttribute()


ALL_MODELS = ALL_MODELS + (ScheduleItem,)


def configure(*, table_name: str, region: str, host: str | None, max_pool_connections: int = 50) -> Connection:
    """Point every model at ``table_name`` through one shared connection and return it.

    One botocore client for all models and transactions means one place to
    hook request metering and one connection pool.
    """
    shared = Connection(region=region, host=host, max_pool_connections=max_pool_connections,
                        connect_timeout_seconds=5, read_timeout_seconds=15)
    for model in ALL_MODELS:
        model.Meta.table_name = table_name
        model.Meta.region = region
        model.Meta.host = host
        model._connection = None
    base = TableItem._get_connection()  # builds the meta-table once
    shared.add_meta_table(base.connection.get_meta_table(table_name))
    for model in ALL_MODELS:
        tc = TableConnection.__new__(TableConnection)
        tc.table_name = table_name
        tc.connection = shared
        model._connection = tc
    return shared
