"""Dunning records and timeline entries on the ledger table (issue 5).

Key layout (see models.py):

- ``DUN#<invoice id>`` / ``STATE``: the record; ``gsi1`` ``CUS#<customer>`` / ``DUN#<invoice>``
  (a customer's records), ``gsi2`` ``DUNNING#due`` / ``<next action UTC>#<invoice>`` only while an
  action is pending (``!wake#<invoice>`` when a change woke it: sorts first, due at any clock),
  ``gsi3`` ``DUNNING#active`` / ``<invoice>`` only while the invoice is open.
- ``ACT#<customer>`` / ``<at>#<id>``: timeline entries, newest first by a reverse Query.

Two writers, never clobbering each other: invoice changes, promises and settings *touch*
some attributes with an ``UpdateItem`` (``ADD version 1``) inside their transaction; the sweep
*puts* the whole item conditioned on the version it read.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:  # loaded by the functions that use it: reading an invoice needs none of dunning (cold start)
    from ...domain.dunning_record import ActivityEntry, DunningRecord
from ...services.ports import DunningTouch, Page
from ..codec import decode, encode
from .models import ActivityItem, DunningItem, TableItem

ACTIVE_INDEX = "DUNNING#active"


def dunning_pk(invoice_id: str) -> str:
    return f"DUN#{invoice_id}"


def dunning_item(r: DunningRecord) -> DunningItem:
    from ...domain.dunning_record import due_partition

    item = DunningItem(pk=dunning_pk(r.invoice_id), sk="STATE", kind="dunning", customer_id=r.customer_id,
                       invoice=r.invoice, customer=r.customer, promises=list(r.promises) or None,
                       data={"sent": encode(list(r.sent)), "claims": encode(list(r.claims)),
                             "overdue_event_emitted": r.overdue_event_emitted,
                             "last_decision": r.last_decision, "failures": list(r.failures)},
                       next_action_at=r.next_action_at.isoformat() if r.next_action_at else None,
                       woken=r.woken or None, gsi1pk=f"CUS#{r.customer_id}", gsi1sk=f"DUN#{r.invoice_id}",
                       version=r.version)
    key = r.index_key()
    if key is not None:
        item.gsi2pk, item.gsi2sk = due_partition(r.invoice_id), key
    if r.active:
        item.gsi3pk, item.gsi3sk = ACTIVE_INDEX, r.invoice_id
    return item


def to_record(item: DunningItem) -> DunningRecord:
    from ...domain.dunning_record import Claim, DunningRecord, SentEntry

    data = item.data or {}
    return DunningRecord(
        invoice_id=item.pk.removeprefix("DUN#"), customer_id=item.customer_id, invoice=item.invoice,
        customer=item.customer, promises=tuple(item.promises or ()),
        sent=tuple(decode(SentEntry, s) for s in data.get("sent") or ()),
        claims=tuple(decode(Claim, c) for c in data.get("claims") or ()),
        overdue_event_emitted=bool(data.get("overdue_event_emitted")),
        next_action_at=datetime.fromisoformat(item.next_action_at) if item.next_action_at else None,
        woken=bool(item.woken), last_decision=data.get("last_decision"),
        failures=tuple(data.get("failures") or ()), version=int(item.version or 0))


def activity_item(entry: ActivityEntry) -> ActivityItem:
    return ActivityItem(pk=f"ACT#{entry.customer_id}", sk=f"{entry.at.isoformat()}#{entry.id}", kind="activity",
                        data=encode(entry))


def to_activity(item: ActivityItem) -> ActivityEntry:
    from ...domain.dunning_record import ActivityEntry

    return decode(ActivityEntry, item.data)


def touch_update(table: str, op: DunningTouch) -> dict[str, Any]:
    """The raw ``Update`` of a transaction for a :class:`DunningTouch` (an upsert of some attributes)."""
    from ...domain.dunning_record import WAKE_PREFIX, due_partition, is_active

    names = {"#k": "kind", "#c": "customer_id", "#g1p": "gsi1pk", "#g1s": "gsi1sk", "#v": "version"}
    values: dict[str, Any] = {":kind": {"S": "dunning"}, ":cid": {"S": op.customer_id},
                              ":g1p": {"S": f"CUS#{op.customer_id}"}, ":g1s": {"S": f"DUN#{op.invoice_id}"},
                              ":one": {"N": "1"}}
    sets = ["#k = :kind", "#c = :cid", "#g1p = :g1p", "#g1s = :g1s"]
    removes: list[str] = []
    if op.invoice is not None:
        names["#inv"] = "invoice"
        values[":inv"] = {"S": json.dumps(op.invoice)}
        sets.append("#inv = :inv")
        names["#g3p"], names["#g3s"] = "gsi3pk", "gsi3sk"
        if is_active(op.invoice):
            values[":g3p"], values[":g3s"] = {"S": ACTIVE_INDEX}, {"S": op.invoice_id}
            sets += ["#g3p = :g3p", "#g3s = :g3s"]
        else:
            removes += ["#g3p", "#g3s"]
    if op.customer is not None:
        names["#cus"] = "customer"
        values[":cus"] = {"S": json.dumps(op.customer)}
        sets.append("#cus = :cus")
    if op.promises is not None:
        names["#prm"] = "promises"
        if op.promises:
            values[":prm"] = {"S": json.dumps(list(op.promises))}
            sets.append("#prm = :prm")
        else:
            removes.append("#prm")
    if op.wake:
        names.update({"#w": "woken", "#g2p": "gsi2pk", "#g2s": "gsi2sk"})
        values.update({":w": {"BOOL": True}, ":due": {"S": due_partition(op.invoice_id)}, ":wk": {"S": f"{WAKE_PREFIX}{op.invoice_id}"}})
        sets += ["#w = :w", "#g2p = :due", "#g2s = :wk"]
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "") + " ADD #v :one"
    return {"TableName": table, "Key": {"pk": {"S": dunning_pk(op.invoice_id)}, "sk": {"S": "STATE"}},
            "UpdateExpression": expression, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values}


class DunningQueries:
    """The dunning reads of the ledger port (mixed into :class:`DynamoLedger`, which has ``_page``)."""

    _page: Callable[..., Page[Any]]

    def get_dunning(self, invoice_ids: Iterable[str], *, consistent: bool = False) -> dict[str, DunningRecord]:
        keys = [(dunning_pk(i), "STATE") for i in dict.fromkeys(invoice_ids)]
        if not keys:
            return {}
        return {r.invoice_id: r for r in (to_record(i) for i in DunningItem.batch_get(keys, consistent_read=consistent))}

    def dunning_due(self, until: datetime, *, limit: int = 500, cursor: str | None = None) -> Page[DunningRecord]:
        """Shard by shard (woken first, then by next action within a shard); the cursor names the shard."""
        from ...domain.dunning_record import DUE_SHARDS, utc_key

        shard, inner = 0, None
        if cursor:
            shard_text, _, inner_text = cursor.partition(".")
            if not shard_text.isdigit() or int(shard_text) >= DUE_SHARDS:
                from ...domain.errors import BadRequest

                raise BadRequest("cursor is not valid: pass back the next_cursor of the previous page unchanged",
                                 field="cursor", code="invalid_cursor")
            shard, inner = int(shard_text), inner_text or None
        items: list[DunningRecord] = []
        scanned = 0
        while shard < DUE_SHARDS and len(items) < limit:
            page = self._page(DunningItem, DunningItem.queue, ("pk", "sk", "gsi2pk", "gsi2sk"),
                              f"DUNNING#due#{shard}", DunningItem.gsi2sk <= f"{utc_key(until)}#~", None, True,
                              limit - len(items), inner, to_record)
            items.extend(page.items)
            scanned += page.scanned
            if page.next_cursor:
                return Page(items=items, next_cursor=f"{shard}.{page.next_cursor}", scanned=scanned)
            shard, inner = shard + 1, None
        return Page(items=items, next_cursor=f"{shard}." if shard < DUE_SHARDS else None, scanned=scanned)

    def dunning_for_customer(self, customer_id: str, *, active_only: bool = True, limit: int = 200,
                             cursor: str | None = None) -> Page[DunningRecord]:
        return self._page(DunningItem, DunningItem.by_customer, ("pk", "sk", "gsi1pk", "gsi1sk"), f"CUS#{customer_id}",
                          DunningItem.gsi1sk.startswith("DUN#"),
                          DunningItem.gsi3pk == ACTIVE_INDEX if active_only else None, True, limit, cursor,
                          to_record)

    def dunning_active(self, *, limit: int = 500, cursor: str | None = None) -> Page[DunningRecord]:
        return self._page(DunningItem, DunningItem.by_kind, ("pk", "sk", "gsi3pk", "gsi3sk"), ACTIVE_INDEX, None, None,
                          True, limit, cursor, to_record)

    def list_activity(self, customer_id: str, *, limit: int = 100, cursor: str | None = None,
                      before: datetime | None = None) -> Page[ActivityEntry]:
        rng = ActivityItem.sk < before.isoformat() if before else None
        return self._page(ActivityItem, None, ("pk", "sk"), f"ACT#{customer_id}", rng, None, False, limit, cursor,
                          to_activity)


def is_dunning_item(item: TableItem) -> bool:
    return item.pk.startswith("DUN#")
