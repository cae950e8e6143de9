"""Recurring schedules in both ledgers (fake and DynamoDB): stored whole, listed by customer and by due date."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone

import pytest

from chalicelib.domain.auth import CLERK, Actor
from chalicelib.domain.errors import NotFound
from chalicelib.domain.recurring import ENDED, new_schedule
from chalicelib.services.ports import CommitConflict, UnitOfWork
from tests.fakes import FakeLedger

ALICE = Actor("alice", CLERK)
NOW = datetime(2026, 3, 10, 8, 0, tzinfo=timezone.utc)
LINE = {"description": "Maintenance", "quantity": "1", "unit_price": "480.00", "vat_rate": "20"}


@pytest.fixture(params=["fake", "dynamodb"])
def ledger(request):
    if request.param == "fake":
        return FakeLedger()
    request.getfixturevalue("stack")
    from chalicelib import wiring

    return wiring.ledger()


def schedule(sid: str, customer: str, day: int, **extra):
    return new_schedule(sid, {"customer_id": customer, "lines": [LINE], "day_of_month": day, **extra},
                        customer_currency="EUR", today=NOW.date(), now=NOW)


def commit(ledger, *entities, save=False):
    uow = UnitOfWork(actor=ALICE, now=NOW)
    out = [uow.save(e) if save else uow.create(e) for e in entities]
    ledger.commit(uow)
    return out


def test_schedules_round_trip_and_queue_by_next_run(ledger):
    a, b, c = commit(ledger, schedule("rsc_a", "cus_1", 15), schedule("rsc_b", "cus_1", 11),
                     schedule("rsc_c", "cus_2", 31, end="2026-12-31", timing="in_arrears"))
    assert ledger.get_schedule("rsc_c") == c
    assert [s.next_run for s in (a, b, c)] == [date(2026, 3, 15), date(2026, 3, 11), date(2026, 3, 31)]
    # due on 2026-03-15 (exclusive bound: the 16th)
    due = ledger.list_schedules(due_before=date(2026, 3, 16)).items
    assert [s.id for s in due] == ["rsc_b", "rsc_a"]
    assert {s.id for s in ledger.list_schedules(customer_id="cus_1").items} == {"rsc_a", "rsc_b"}
    # an ended schedule leaves the queue
    (ended,) = commit(ledger, replace(b, status=ENDED, next_run=None), save=True)
    assert [s.id for s in ledger.list_schedules(due_before=date(2027, 1, 1)).items] == ["rsc_a", "rsc_c"]
    assert ledger.get_schedule("rsc_b").version == ended.version


def test_stale_schedule_write_conflicts_and_missing_is_not_found(ledger):
    (a,) = commit(ledger, schedule("rsc_a", "cus_1", 15))
    commit(ledger, a, save=True)
    with pytest.raises(CommitConflict):
        commit(ledger, a, save=True)
    with pytest.raises(NotFound) as err:
        ledger.get_schedule("rsc_nope")
    assert err.value.code == "schedule_not_found"
