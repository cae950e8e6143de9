"""Monthly recurring billing: one invoice per schedule and period, however often the job runs."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from chalicelib.domain.errors import ValidationError
from chalicelib.domain.recurring import ENDED, new_schedule, run_date
from chalicelib.services.recurring import RunReport

from .harness import CLERK_ACTOR, build

LINE = {"description": "Maintenance mensuelle", "quantity": "1", "unit_price": "480.00", "vat_rate": "20"}


def test_periods_and_dates():
    now = datetime(2026, 1, 20, tzinfo=timezone.utc)
    s = new_schedule("rsc_1", {"customer_id": "c", "lines": [LINE], "day_of_month": 31, "start": "2026-01-25",
                               "end": "2026-04-30", "timing": "in_arrears"},
                     customer_currency="EUR", today=now.date(), now=now)
    assert s.next_run == date(2026, 1, 31)
    assert run_date("2026-02", 31) == date(2026, 2, 28)
    assert s.due_periods(date(2026, 3, 30)) == ["2026-01", "2026-02"]
    assert s.billed_month("2026-02") == (date(2026, 1, 1), date(2026, 1, 31))        # in arrears
    draft = s.invoice_draft("2026-02")
    assert draft["lines"][0]["period_start"] == "2026-01-01" and draft["lines"][0]["period_end"] == "2026-01-31"
    s = s.billed("2026-01", "inv_a", now).billed("2026-02", "inv_b", now).billed("2026-03", "inv_c", now)
    assert s.next_run == date(2026, 4, 30) and s.status == "active"
    assert s.billed("2026-04", "inv_d", now).status == ENDED


@pytest.mark.parametrize("data, field", [
    ({"day_of_month": 0}, "day_of_month"), ({"day_of_month": "5"}, "day_of_month"),
    ({"start": "2026-02-01"}, "start"), ({"end": "2026-03-01", "start": "2026-04-01"}, "end"),
    ({"timing": "weekly"}, "timing"), ({"lines": []}, "lines"), ({"frequency": "monthly"}, "frequency"),
])
def test_bad_schedules_name_the_field(data, field):
    h = build()
    c = h.customer()
    with pytest.raises(ValidationError) as err:
        h.recurring.create({"customer_id": c.id, "lines": [LINE], "day_of_month": 5, **data}, CLERK_ACTOR)
    assert err.value.field == field


def test_the_job_issues_each_period_once_even_when_run_twice():
    h = build()
    c = h.customer()
    schedule, _ = h.recurring.create({"customer_id": c.id, "lines": [LINE], "day_of_month": 5}, CLERK_ACTOR)
    assert schedule.next_run == date(2026, 3, 5)
    assert h.recurring.run(date(2026, 3, 4)).to_dict()["issued"] == 0
    first = h.recurring.run(date(2026, 3, 5))
    second = h.recurring.run(date(2026, 3, 5))
    assert len(first.issued) == 1 and second.to_dict()["issued"] == 0
    invoice = h.ledger.get_invoice(first.issued[0]["invoice_id"])
    assert invoice.number == "F2026-000001" and invoice.status == "open"
    assert invoice.lines[0].period_start == date(2026, 3, 1) and invoice.lines[0].period_end == date(2026, 3, 31)
    assert invoice.documents and invoice.pay_token                          # the real issue path
    stored = h.ledger.get_schedule(schedule.id)
    assert stored.next_run == date(2026, 4, 5) and stored.last_invoice_id == invoice.id
    assert h.ledger.get_ref("recurring", f"{schedule.id}#2026-03").target == invoice.id


def test_a_marker_written_by_a_concurrent_run_is_respected():
    h = build()
    c = h.customer()
    schedule, _ = h.recurring.create({"customer_id": c.id, "lines": [LINE], "day_of_month": 2}, CLERK_ACTOR)
    from chalicelib.services.ports import UnitOfWork

    # another run billed the period after this one listed the schedule: its marker and the schedule's move
    # commit together
    listed = h.ledger.list_schedules(due_before=date(2026, 3, 3)).items
    uow = UnitOfWork(actor=CLERK_ACTOR, now=h.clock.now())
    uow.put_ref("recurring", f"{schedule.id}#2026-03", "inv_other_run")
    uow.save(schedule.billed("2026-03", "inv_other_run", h.clock.now()))
    h.ledger.commit(uow)
    report = RunReport(as_of="2026-03-02")
    h.recurring._run_schedule(listed[0], date(2026, 3, 2), report)
    assert report.to_dict()["issued"] == 0 and report.skipped[0]["invoice_id"] == "inv_other_run"
    assert h.ledger.get_counter("F#2026") == 0


def test_missed_months_are_caught_up_oldest_first_and_the_end_is_honoured():
    h = build()
    c = h.customer()
    schedule, _ = h.recurring.create({"customer_id": c.id, "lines": [LINE], "day_of_month": 10,
                                      "end": "2026-05-31"}, CLERK_ACTOR)
    report = h.recurring.run(date(2026, 7, 15))
    assert [i["period"] for i in report.issued] == ["2026-03", "2026-04", "2026-05"]
    assert [i["number"] for i in report.issued] == ["F2026-000001", "F2026-000002", "F2026-000003"]
    assert h.ledger.get_schedule(schedule.id).status == ENDED
    assert h.recurring.run(date(2026, 8, 15)).to_dict()["issued"] == 0


def test_paused_schedules_skip_and_resume_from_the_next_date():
    h = build()
    c = h.customer()
    schedule, _ = h.recurring.create({"customer_id": c.id, "lines": [LINE], "day_of_month": 10}, CLERK_ACTOR)
    h.recurring.update(schedule.id, {"status": "paused"}, CLERK_ACTOR)
    assert h.recurring.run(date(2026, 4, 20)).to_dict()["issued"] == 0
    h.clock.set(datetime(2026, 4, 20, 8, tzinfo=timezone.utc))
    resumed = h.recurring.update(schedule.id, {"status": "active"}, CLERK_ACTOR)
    assert resumed.next_run == date(2026, 5, 10)


def test_guards_refuse_schedules_and_run_hooks_flag_without_blocking():
    h = build()
    c = h.customer()

    def on_hold(schedule, customer, data, actor):
        if data.get("note") == "refuse":
            raise ValidationError("customer on credit hold", field="customer_id", code="credit_hold")

    flagged = []

    def credit_check(invoice, customer, seller, uow, context):
        context.flag("credit_limit_exceeded")
        flagged.append((invoice.id, context.delivered))
        return invoice

    h.recurring.hooks.schedule_guards.append(on_hold)
    h.recurring.hooks.run_hooks.append(credit_check)
    with pytest.raises(ValidationError) as err:
        h.recurring.create({"customer_id": c.id, "lines": [LINE], "day_of_month": 3, "note": "refuse"}, CLERK_ACTOR)
    assert err.value.code == "credit_hold"
    schedule, _ = h.recurring.create({"customer_id": c.id, "lines": [LINE], "day_of_month": 3,
                                      "timing": "in_arrears"}, CLERK_ACTOR)
    report = h.recurring.run(date(2026, 3, 3))
    assert report.issued[0]["flags"] == ["credit_limit_exceeded"]
    assert flagged == [(report.issued[0]["invoice_id"], True)]
    assert h.ledger.get_schedule(schedule.id).flags == ("credit_limit_exceeded",)


def test_a_failing_period_is_reported_and_retried_by_the_next_run():
    h = build()
    c = h.customer()
    schedule, _ = h.recurring.create({"customer_id": c.id, "lines": [LINE], "day_of_month": 3}, CLERK_ACTOR)
    calls = []

    def flaky(invoice, customer, seller, uow, context):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("credit bureau down")
        return invoice

    h.recurring.hooks.run_hooks.append(flaky)
    report = h.recurring.run(date(2026, 3, 3))
    assert report.to_dict()["failed"] == 1 and h.ledger.get_counter("F#2026") == 0
    assert h.recurring.run(date(2026, 3, 3)).to_dict()["issued"] == 1


def test_two_jobs_at_once_issue_each_period_once():
    from concurrent.futures import ThreadPoolExecutor

    h = build()
    c = h.customer()
    for _ in range(6):
        h.recurring.create({"customer_id": c.id, "lines": [LINE], "day_of_month": 5}, CLERK_ACTOR)
    with ThreadPoolExecutor(max_workers=3) as pool:
        reports = list(pool.map(lambda _: h.recurring.run(date(2026, 3, 5)), range(3)))
    assert sum(len(r.issued) for r in reports) == 6 and all(not r.failed for r in reports)
    assert h.ledger.get_counter("F#2026") == 6
