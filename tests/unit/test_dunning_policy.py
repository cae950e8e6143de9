"""Dunning policy as data, the per-invoice decision, and grouping.

Most scenarios replay hourly sweeps over fixed dates (Europe/Paris seller) the way the
scheduled sweep will: read an invoice only when its ``next_action_at`` has come, send
``channels_now``, record them, store the new ``next_action_at``. Every replay is run a
second time deciding at *every* hour regardless of the index, and both runs must send
the same things at the same times: that proves the index never hides a due action.
"""

from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chalicelib.domain.dunning import (CALL_TASK, CHARGEBACK_OPEN, COLLECTION_PENDING, COMPLETED, DEFAULT_POLICY,
                                       DEFERRED, DISPUTE_OPEN, EMAIL, LETTER, PAUSED, PROMISE_ACTIVE, SEND, SMS,
                                       STOP_PAID, STOP_VOID, STOPPED, WAIT, CustomerDunningSettings, DunningPolicy,
                                       InvoiceDunningState, SentRecord, customer_ladder, decide, next_sms_time,
                                       plan_messages)
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.money import Money
from chalicelib.domain.payer_profile import (CHRONIC_LATE, NEW, OCCASIONAL_LATE, RELIABLE, PaidInvoiceRecord,
                                             PromiseToPay, derive_profile)

PARIS = ZoneInfo("Europe/Paris")
UTC = timezone.utc
DUE = date(2026, 3, 16)          # a Monday; day +10 is Thursday 26 March, DST starts Sunday 29 March


# -- builders -----------------------------------------------------------------------------------

def invoice(invoice_id: str = "inv-1", *, due: date = DUE, amount: int = 120000, **kw) -> InvoiceDunningState:
    return InvoiceDunningState(invoice_id=invoice_id, customer_id="cus-1", status="open", due_date=due,
                               amount_due=Money(amount, "EUR"), number=f"F2026-{invoice_id[-3:]:>06}",
                               issue_date=due - timedelta(days=30), **kw)


def settings(**kw) -> CustomerDunningSettings:
    base = dict(customer_id="cus-1", contact_email="compta@client.example", contact_phone="+33612345678")
    base.update(kw)
    return CustomerDunningSettings(**base)


def paris(day: date, hh: int = 10, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=PARIS)


Event = tuple[datetime, Callable[[InvoiceDunningState], InvoiceDunningState]]


def _run(state, cfg, profile, start, end, events, policy, use_index):
    sends: list[tuple[str, str, str]] = []
    overdue: list[str] = []
    t = datetime.combine(start, time(0, 0), tzinfo=PARIS).astimezone(UTC)
    stop = datetime.combine(end, time(23, 59), tzinfo=PARIS).astimezone(UTC)
    indexed: datetime | None = t
    pending = sorted(events, key=lambda e: e[0])
    while t <= stop:
        while pending and pending[0][0] <= t:
            state = pending.pop(0)[1](state)
            indexed = t                       # every state change re-decides and re-indexes
        if not use_index or (indexed is not None and indexed <= t):
            d = decide(state, cfg, policy, profile, now=t)
            local = t.astimezone(PARIS).strftime("%Y-%m-%d %H:%M")
            if d.emit_overdue_event:
                overdue.append(local)
                state = replace(state, overdue_event_emitted=True)
            for c in d.channels_now:
                sends.append((local, d.step.key, c))
                state = replace(state, sent=state.sent + (SentRecord(d.step.key, c, t, f"msg-{len(sends)}"),))
            indexed = d.next_action_at
        t += timedelta(hours=1)
    return sends, overdue, state


def replay(state, cfg, profile, start=date(2026, 3, 1), end=date(2026, 4, 30), events: list[Event] = (),
           policy=DEFAULT_POLICY):
    indexed = _run(state, cfg, profile, start, end, list(events), policy, use_index=True)
    brute = _run(state, cfg, profile, start, end, list(events), policy, use_index=False)
    assert indexed[:2] == brute[:2], "the next-action index skipped or moved an action"
    return indexed


# -- the policy as data -------------------------------------------------------------------------

def test_default_policy_is_the_issue_s_ladder():
    assert [(s.key, s.offset_days, s.channels, s.tone) for s in DEFAULT_POLICY.steps] == [
        ("courtesy_notice", -5, (EMAIL,), "courtesy"),
        ("friendly_reminder", 1, (EMAIL,), "friendly"),
        ("firm_reminder", 10, (EMAIL, SMS), "firm"),
        ("call_task", 20, (CALL_TASK,), "firm"),
        ("formal_notice", 30, (EMAIL, LETTER), "formal"),
    ]


def test_profile_ladders():
    def ladder(p):
        return [(s.key, s.offset_days, s.channels, s.tone) for s in DEFAULT_POLICY.ladder(p)]
    assert ladder(RELIABLE) == [("friendly_reminder", 1, (EMAIL,), "friendly"),
                                ("firm_reminder", 15, (EMAIL,), "friendly"),
                                ("call_task", 25, (CALL_TASK,), "firm"),
                                ("formal_notice", 30, (EMAIL, LETTER), "formal")]
    assert [(k, o) for k, o, _, _ in ladder(CHRONIC_LATE)] == [
        ("courtesy_notice", -5), ("friendly_reminder", 1), ("firm_reminder", 5), ("call_task", 12),
        ("formal_notice", 30)]
    assert ladder(NEW) == ladder(OCCASIONAL_LATE) == [(s.key, s.offset_days, s.channels, s.tone)
                                                      for s in DEFAULT_POLICY.steps]


def test_policy_round_trips_through_json():
    data = DEFAULT_POLICY.to_dict()
    assert DunningPolicy.from_dict(data) == DEFAULT_POLICY
    assert data["profile_adjustments"]["chronic_late"] == {
        "skip": [], "shift_days": {"firm_reminder": -5, "call_task": -8}, "tone": {}, "channels": {}}
    assert data["profile_rule"]["min_invoices"] == 5 and data["send_time"] == "09:00"


def _policy_with(**changes):
    data = DEFAULT_POLICY.to_dict()
    for path, value in changes.items():
        target = data
        *parents, leaf = path.split("__")
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if isinstance(target, list):
            target[int(leaf)] = value
        else:
            target[leaf] = value
    return data


@pytest.mark.parametrize("data, field, message", [
    (_policy_with(steps__1__key="courtesy_notice"), "steps[1].key", "used twice"),
    (_policy_with(steps__2__offset_days=1), "steps[2].offset_days", "greater than the previous step"),
    (_policy_with(steps__4__offset_days=400), "steps[4].offset_days", "between -90 and 365"),
    (_policy_with(steps__0__offset_days="5"), "steps[0].offset_days", "whole number"),
    (_policy_with(steps__2__channels=["email", "fax"]), "steps[2].channels[1]", "not a known channel"),
    (_policy_with(steps__2__channels=["email", "email"]), "steps[2].channels[1]", "listed twice"),
    (_policy_with(steps__2__channels=[]), "steps[2].channels", "non-empty"),
    (_policy_with(steps__3__template=""), "steps[3].template", "name a template"),
    (_policy_with(steps__3__tone="angry"), "steps[3].tone", "one of courtesy"),
    (_policy_with(steps=[]), "steps", "non-empty"),
    (_policy_with(profile_adjustments__chronic_late__shift_days__firm_reminder=-10),
     "profile_adjustments.chronic_late.shift_days.firm_reminder", "keep the steps in order"),
    (_policy_with(profile_adjustments__reliable__skip=["courtesy", "call_task"]),
     "profile_adjustments.reliable.skip[0]", "no step 'courtesy'"),
    (_policy_with(profile_adjustments__new={}), "profile_adjustments.new", "occasional_late ladder"),
    (_policy_with(profile_adjustments__reliable__tone={"firm_reminder": "meek"}),
     "profile_adjustments.reliable.tone.firm_reminder", "one of"),
    (_policy_with(profile_adjustments__reliable__shift_days={"courtesy_notice": 1}),
     "profile_adjustments.reliable.shift_days.courtesy_notice", "skipped for reliable"),
    (_policy_with(profile_rule={"chronic_min_late_percent": "150"}), "profile_rule.chronic_min_late_percent",
     "between"),
    (_policy_with(send_time="9am"), "send_time", "HH:MM"),
    ({**DEFAULT_POLICY.to_dict(), "color": "red"}, "color", "unknown field"),
])
def test_policy_validation_names_the_field(data, field, message):
    with pytest.raises(ValidationError) as err:
        DunningPolicy.from_dict(data)
    assert err.value.field == field
    assert message in err.value.message


def test_settings_round_trip_validation_and_customer_defaults():
    s = settings(quiet_start=time(21, 0), opt_out=True, channels_allowed=(EMAIL, CALL_TASK))
    assert CustomerDunningSettings.from_dict(s.to_dict()) == s
    patched = CustomerDunningSettings.from_dict({"sms_on_weekends": True}, base=s)
    assert patched.sms_on_weekends and patched.opt_out and patched.quiet_start == time(21, 0)
    for data, field in (({"timezone": "Mars/Olympus"}, "timezone"), ({"channels_allowed": ["pigeon"]},
                        "channels_allowed[0]"), ({"quiet_end": "25:00"}, "quiet_end"), ({"opt_out": "no"}, "opt_out"),
                        ({"langage": "fr"}, "langage")):
        with pytest.raises(ValidationError) as err:
            CustomerDunningSettings.from_dict(data, customer_id="cus-1")
        assert err.value.field == field

    class Customer:  # the fields of chalicelib.domain.parties.Customer that settings read
        id, name, email, phone, timezone, language = ("cus-9", "Boulangerie Martin", "compta@bm.example", None,
                                                      "Europe/Paris", "fr")
    c = CustomerDunningSettings.from_customer(Customer())
    assert (c.customer_id, c.contact_email, c.contact_phone) == ("cus-9", "compta@bm.example", None)


# -- reliable vs chronic: same invoice, different ladders ---------------------------------------

def test_reliable_and_chronic_payers_get_their_steps_on_their_days_exactly_once():
    # Given the same invoice (due Monday 16 March 2026) for two customers
    # When the sweep runs every hour from 1 March to 30 April
    reliable, overdue, _ = replay(invoice(), settings(), RELIABLE)
    chronic, _, _ = replay(invoice(), settings(), CHRONIC_LATE)
    # Then the reliable payer gets fewer, softer touches, later: no courtesy notice, the firm
    # reminder on day 15 by email only (friendly tone), the call on day 25
    assert reliable == [
        ("2026-03-17 09:00", "friendly_reminder", EMAIL),
        ("2026-03-31 09:00", "firm_reminder", EMAIL),
        ("2026-04-10 09:00", "call_task", CALL_TASK),
        ("2026-04-15 09:00", "formal_notice", EMAIL),
        ("2026-04-15 09:00", "formal_notice", LETTER),
    ]
    # And the chronic late payer gets the firm step on day 5 (Saturday 21 March: its SMS waits
    # for Monday 08:00, customer time) and the call on day 12
    assert chronic == [
        ("2026-03-11 09:00", "courtesy_notice", EMAIL),
        ("2026-03-17 09:00", "friendly_reminder", EMAIL),
        ("2026-03-21 09:00", "firm_reminder", EMAIL),
        ("2026-03-23 08:00", "firm_reminder", SMS),
        ("2026-03-28 09:00", "call_task", CALL_TASK),
        ("2026-04-15 09:00", "formal_notice", EMAIL),
        ("2026-04-15 09:00", "formal_notice", LETTER),
    ]
    # And invoice.overdue is emitted once, at the start of the first late day
    assert overdue == ["2026-03-17 00:00"]


def test_occasional_payer_and_a_payment_on_day_12_stops_the_ladder():
    def pay(s):
        return replace(s, status="paid", amount_due=Money(0, "EUR"))
    sends, _, _ = replay(invoice(), settings(), OCCASIONAL_LATE, events=[(paris(date(2026, 3, 28), 14), pay)])
    assert sends == [
        ("2026-03-11 09:00", "courtesy_notice", EMAIL),
        ("2026-03-17 09:00", "friendly_reminder", EMAIL),
        ("2026-03-26 09:00", "firm_reminder", EMAIL),
        ("2026-03-26 09:00", "firm_reminder", SMS),
    ]


def test_why_this_customer_got_this_step():
    history = [PaidInvoiceRecord(date(2026, 1, 5) + timedelta(weeks=i), date(2026, 1, 5) + timedelta(weeks=i, days=30),
                                 Money(100000, "EUR")) for i in range(6)]
    profile = derive_profile(history, today=date(2026, 3, 21))
    d = decide(invoice(sent=(SentRecord("friendly_reminder", EMAIL, paris(date(2026, 3, 17), 9)),)), settings(),
               DEFAULT_POLICY, profile, now=paris(date(2026, 3, 21), 9))
    assert d.outcome == SEND and d.step.key == "firm_reminder" and d.profile == CHRONIC_LATE
    text = "\n".join(d.explanation)
    assert "payer profile chronic_late" in text and "average 30.00 days late > 15" in text
    assert "offset shifted -5 days for chronic_late payers (day +10 -> +5)" in text and "2026-03-21 09:00" in text
    assert d.to_dict()["step"]["base_offset_days"] == 10


# -- catch-up after downtime --------------------------------------------------------------------

def test_catch_up_sends_only_the_step_that_applies_today():
    # Given the sweep was down from 10 to 26 March; it comes back on 27 March at 10:00
    d = decide(invoice(), settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 3, 27)))
    # Then the firm reminder (day 10) goes out; the courtesy notice is stale, the friendly one superseded
    assert d.outcome == SEND and d.step.key == "firm_reminder" and d.channels_now == (EMAIL, SMS)
    assert [(s.key, s.reason.split(":")[0]) for s in d.skipped] == [("courtesy_notice", "stale"),
                                                                      ("friendly_reminder", "superseded")]
    assert d.next_action_at == paris(date(2026, 4, 5), 9).astimezone(UTC)   # call task, day 20 (CEST)


def test_no_stale_courtesy_notice_the_day_after_the_due_date():
    d = decide(invoice(), settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 3, 17), 8))
    assert d.outcome == WAIT and d.step is None
    assert [s.key for s in d.skipped] == ["courtesy_notice"]
    assert d.next_action_at == paris(date(2026, 3, 17), 9).astimezone(UTC)
    assert d.emit_overdue_event and d.on_collector_list


def test_a_missed_courtesy_notice_is_still_sent_before_the_due_date():
    d = decide(invoice(), settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 3, 14)))
    assert d.outcome == SEND and d.step.key == "courtesy_notice"


def test_downtime_replay_never_resends_and_never_goes_back():
    # Sweeps stop from 12 March to 27 March 12:00, then resume hourly
    def run(start, end, state):
        return _run(state, settings(), OCCASIONAL_LATE, start, end, [], DEFAULT_POLICY, use_index=True)
    first, _, state = run(date(2026, 3, 1), date(2026, 3, 11), invoice())
    second, _, _ = run(date(2026, 3, 28), date(2026, 4, 30), state)
    assert [(k, c) for _, k, c in first + second] == [
        ("courtesy_notice", EMAIL), ("firm_reminder", EMAIL), ("firm_reminder", SMS), ("call_task", CALL_TASK),
        ("formal_notice", EMAIL), ("formal_notice", LETTER)]


def test_a_step_already_sent_is_never_resent():
    sent = tuple(SentRecord("firm_reminder", c, paris(date(2026, 3, 26), 9)) for c in (EMAIL, SMS))
    d = decide(invoice(sent=sent), settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 3, 30)))
    assert d.outcome == WAIT and d.channels_now == ()
    assert d.next_action_at == paris(date(2026, 4, 5), 9).astimezone(UTC)


def test_steps_before_the_issue_date_are_not_sent():
    late_issued = replace(invoice(), issue_date=DUE - timedelta(days=2))    # courtesy day would be 11 March
    d = decide(late_issued, settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 3, 15)))
    assert d.outcome == WAIT and "before the invoice was issued" in d.skipped[0].reason


def test_sends_recorded_under_a_renamed_step_are_not_repeated():
    sent = (SentRecord("relance_ferme", EMAIL, paris(date(2026, 3, 26), 9)),)   # key from an older policy
    d = decide(invoice(sent=sent), settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 3, 27)))
    assert d.outcome == WAIT


# -- pauses and resumption ----------------------------------------------------------------------

def test_dispute_pauses_and_rejection_resumes():
    def open_dispute(s):
        return replace(s, dispute_status="open")

    def reject(s):
        return replace(s, dispute_status="rejected")
    sends, _, _ = replay(invoice(), settings(), OCCASIONAL_LATE, events=[
        (paris(date(2026, 3, 20), 11), open_dispute), (paris(date(2026, 4, 2), 15), reject)])
    assert sends == [
        ("2026-03-11 09:00", "courtesy_notice", EMAIL),
        ("2026-03-17 09:00", "friendly_reminder", EMAIL),
        ("2026-04-02 15:00", "firm_reminder", EMAIL),           # resumes at once with the step that applies
        ("2026-04-02 15:00", "firm_reminder", SMS),
        ("2026-04-05 09:00", "call_task", CALL_TASK),
        ("2026-04-15 09:00", "formal_notice", EMAIL),
        ("2026-04-15 09:00", "formal_notice", LETTER),
    ]


def test_paused_decision_says_why_and_is_not_indexed():
    d = decide(invoice(dispute_status="open", chargeback_open=True), settings(), DEFAULT_POLICY, OCCASIONAL_LATE,
               now=paris(date(2026, 3, 26)))
    assert d.outcome == PAUSED and d.pause_reasons == (DISPUTE_OPEN, CHARGEBACK_OPEN)
    assert d.next_action_at is None and d.on_collector_list
    resumed = decide(invoice(dispute_status="rejected"), settings(), DEFAULT_POLICY, OCCASIONAL_LATE,
                     now=paris(date(2026, 3, 26)))
    assert resumed.outcome == SEND and "dispute on this invoice was rejected" in "\n".join(resumed.explanation)


def test_active_promise_pauses_until_its_date_and_a_broken_one_resumes():
    promise = PromiseToPay(amount=Money(120000, "EUR"), promised_date=date(2026, 3, 31), made_on=date(2026, 3, 18))

    def promise_made(s):
        return replace(s, promises=(promise,))
    sends, _, _ = replay(invoice(), settings(), OCCASIONAL_LATE, events=[(paris(date(2026, 3, 18), 16), promise_made)])
    assert [s for s in sends if s[0] >= "2026-03-18"] == [
        ("2026-04-01 09:00", "firm_reminder", EMAIL),           # day after the promised date, at send time
        ("2026-04-01 09:00", "firm_reminder", SMS),
        ("2026-04-05 09:00", "call_task", CALL_TASK),
        ("2026-04-15 09:00", "formal_notice", EMAIL),
        ("2026-04-15 09:00", "formal_notice", LETTER),
    ]
    paused = decide(invoice(promises=(promise,)), settings(), DEFAULT_POLICY, OCCASIONAL_LATE,
                    now=paris(date(2026, 3, 26)))
    assert paused.outcome == PAUSED and paused.pause_reasons == (PROMISE_ACTIVE,)
    assert paused.next_action_at == paris(date(2026, 4, 1), 9).astimezone(UTC)
    broken = decide(invoice(promises=(promise,)), settings(), DEFAULT_POLICY, OCCASIONAL_LATE,
                    now=paris(date(2026, 4, 1), 9))
    assert broken.outcome == SEND and "expired with 1200.00 EUR still due: dunning resumed" in "\n".join(
        broken.explanation)


def test_pending_sepa_collection_pauses_and_a_failure_resumes():
    def schedule(s):
        return replace(s, collection_status="pending")

    def fail(s):
        return replace(s, collection_status="failed")
    sends, _, _ = replay(invoice(), settings(), OCCASIONAL_LATE, events=[
        (paris(date(2026, 3, 12), 12), schedule), (paris(date(2026, 3, 30), 7), fail)])
    assert sends == [
        ("2026-03-11 09:00", "courtesy_notice", EMAIL),
        ("2026-03-30 07:00", "firm_reminder", EMAIL),           # friendly superseded by the step of the day
        ("2026-03-30 08:00", "firm_reminder", SMS),             # SMS waits for 08:00
        ("2026-04-05 09:00", "call_task", CALL_TASK),
        ("2026-04-15 09:00", "formal_notice", EMAIL),
        ("2026-04-15 09:00", "formal_notice", LETTER),
    ]
    d = decide(invoice(collection_status="scheduled"), settings(), DEFAULT_POLICY, RELIABLE,
               now=paris(date(2026, 3, 20)))
    assert d.pause_reasons == (COLLECTION_PENDING,)


@pytest.mark.parametrize("status, reason", [("paid", STOP_PAID), ("void", STOP_VOID)])
def test_paid_or_void_stops(status, reason):
    d = decide(replace(invoice(), status=status), settings(), DEFAULT_POLICY, CHRONIC_LATE,
               now=paris(date(2026, 3, 26)))
    assert d.outcome == STOPPED and d.stop_reason == reason and d.next_action_at is None
    assert not d.emit_overdue_event and not d.on_collector_list


def test_ladder_completed_after_the_formal_notice():
    sent = tuple(SentRecord("formal_notice", c, paris(date(2026, 4, 15), 9)) for c in (EMAIL, LETTER))
    d = decide(invoice(sent=sent, overdue_event_emitted=True), settings(), DEFAULT_POLICY, OCCASIONAL_LATE,
               now=paris(date(2026, 4, 20)))
    assert d.outcome == COMPLETED and d.next_action_at is None and d.on_collector_list


# -- channels, quiet hours, time zones ----------------------------------------------------------

def test_sms_quiet_hours_and_weekends_in_the_customer_zone():
    cfg = settings()                                            # SMS 08:00-20:00, weekdays
    friday_night = paris(date(2026, 3, 20), 21)
    assert next_sms_time(friday_night, cfg) == paris(date(2026, 3, 23), 8).astimezone(UTC)
    tuesday_7am = paris(date(2026, 3, 24), 7)
    assert next_sms_time(tuesday_7am, cfg) == paris(date(2026, 3, 24), 8).astimezone(UTC)
    assert next_sms_time(paris(date(2026, 3, 24), 12), cfg) == paris(date(2026, 3, 24), 12).astimezone(UTC)


def test_sms_deferral_across_the_spring_dst_change():
    # Saturday 28 March 21:00 CET (20:00 UTC); clocks go forward on Sunday 29 March at 02:00
    cfg = settings(sms_on_weekends=True)
    when = next_sms_time(paris(date(2026, 3, 28), 21), cfg)
    assert when == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)      # 08:00 CEST, not 07:00 UTC
    assert when.astimezone(PARIS).strftime("%H:%M %Z") == "08:00 CEST"


def test_sms_deferral_across_the_autumn_dst_change():
    cfg = settings(sms_on_weekends=True)
    when = next_sms_time(datetime(2026, 10, 24, 20, 0, tzinfo=UTC), cfg)   # Sat 22:00 CEST
    assert when == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)                # Sun 08:00 CET


def test_customer_in_another_zone_after_its_own_dst_change():
    # New York moved to EDT on 8 March 2026, Paris is still on CET: 9:00 Paris = 04:00 New York
    cfg = settings(timezone="America/New_York")
    due = date(2026, 2, 27)                                      # day +10 = Monday 9 March
    d = decide(invoice(due=due), cfg, DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 3, 9), 9))
    assert d.step.key == "firm_reminder" and d.channels_now == (EMAIL,)
    assert d.deferred[0].not_before == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)   # 08:00 EDT
    assert d.next_action_at == d.deferred[0].not_before
    assert "deferred to Mon 2026-03-09 08:00 customer time" in d.deferred[0].reason


def test_sms_only_step_at_night_is_deferred_not_sent():
    policy = DunningPolicy.from_dict(_policy_with(steps__2__channels=["sms"]))
    d = decide(invoice(), settings(), policy, OCCASIONAL_LATE, now=paris(date(2026, 3, 26), 22))
    assert d.outcome == DEFERRED and d.channels_now == () and d.step.key == "firm_reminder"
    assert d.next_action_at == paris(date(2026, 3, 27), 8).astimezone(UTC)


def test_a_deferred_sms_superseded_by_the_next_step_is_dropped():
    # Step a on day +1 (email + sms), step b on day +2; due Friday 20 March: a falls on Saturday
    policy = DunningPolicy.from_dict({"id": "short", "name": "Short", "steps": [
        {"key": "a", "offset_days": 1, "channels": ["email", "sms"], "template": "a", "tone": "friendly"},
        {"key": "b", "offset_days": 2, "channels": ["email"], "template": "b", "tone": "firm"}]})
    sends, _, _ = replay(invoice(due=date(2026, 3, 20)), settings(), OCCASIONAL_LATE, policy=policy)
    assert sends == [("2026-03-21 09:00", "a", EMAIL), ("2026-03-22 09:00", "b", EMAIL)]
    d = decide(invoice(due=date(2026, 3, 20), sent=(SentRecord("a", EMAIL, paris(date(2026, 3, 21), 9)),)),
               settings(), policy, OCCASIONAL_LATE, now=paris(date(2026, 3, 22), 9))
    assert d.skipped[0].key == "a" and d.skipped[0].channels == (SMS,)


def test_opt_out_keeps_only_call_tasks_and_the_collectors_list():
    sends, _, _ = replay(invoice(), settings(opt_out=True), CHRONIC_LATE)
    assert sends == [("2026-03-28 09:00", "call_task", CALL_TASK)]
    d = decide(invoice(), settings(opt_out=True), DEFAULT_POLICY, CHRONIC_LATE, now=paris(date(2026, 3, 22)))
    assert d.on_collector_list and "opted out of automatic reminders" in "\n".join(d.explanation)
    ladder = customer_ladder(DEFAULT_POLICY, CHRONIC_LATE, settings(opt_out=True))
    assert [s.key for s in ladder if s.channels] == ["call_task"]


def test_channels_allowed_and_missing_phone():
    no_sms = customer_ladder(DEFAULT_POLICY, OCCASIONAL_LATE, settings(channels_allowed=(EMAIL, CALL_TASK)))
    firm = next(s for s in no_sms if s.key == "firm_reminder")
    assert firm.channels == (EMAIL,) and "not among the customer's allowed channels" in firm.notes[0]
    formal = next(s for s in no_sms if s.key == "formal_notice")
    assert formal.channels == (EMAIL,)
    no_phone = customer_ladder(DEFAULT_POLICY, OCCASIONAL_LATE, settings(contact_phone=None))
    assert next(s for s in no_phone if s.key == "firm_reminder").notes == ("sms not sent: no phone number for the "
                                                                         "customer",)


def test_send_time_follows_the_seller_clock_across_dst():
    # formal notice: 30 days after 16 March = 15 April, 09:00 CEST = 07:00 UTC (courtesy was 08:00 UTC)
    d = decide(invoice(), settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 3, 10)))
    assert d.next_action_at == datetime(2026, 3, 11, 8, 0, tzinfo=UTC)
    sent = (SentRecord("call_task", CALL_TASK, paris(date(2026, 4, 5), 9)),)
    d = decide(invoice(sent=sent), settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 4, 6)))
    assert d.next_action_at == datetime(2026, 4, 15, 7, 0, tzinfo=UTC)


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        decide(invoice(), settings(), DEFAULT_POLICY, RELIABLE, now=datetime(2026, 3, 20, 10))


# -- grouping -----------------------------------------------------------------------------------

def test_five_overdue_invoices_due_for_the_same_step_make_one_message():
    now = paris(date(2026, 3, 27))
    states = [invoice(f"inv-{i}", due=DUE - timedelta(days=i), amount=10000 * (i + 1)) for i in range(5)]
    states.append(invoice("inv-9", due=date(2026, 3, 25)))      # only due for the friendly reminder
    items = [(s, decide(s, settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=now)) for s in states]
    assert {d.step.key for _, d in items} == {"firm_reminder", "friendly_reminder"}
    plans = plan_messages(settings(), items, pay_links={"inv-0": "https://pay.example/inv-0"})
    assert [(p.step_key, len(p.invoices)) for p in plans] == [("firm_reminder", 5), ("friendly_reminder", 1)]
    firm = plans[0]
    assert firm.channels == (EMAIL, SMS) and firm.language == "fr" and firm.tone == "firm"
    assert [x.invoice_id for x in firm.invoices] == ["inv-4", "inv-3", "inv-2", "inv-1", "inv-0"]   # oldest first
    assert firm.totals == (Money(150000, "EUR"),)
    assert firm.invoices[-1].pay_link == "https://pay.example/inv-0" and firm.invoices[0].days_overdue == 15
    # Deterministic id: the same group planned again (a retry) has the same id
    assert plan_messages(settings(), reversed(items))[0].plan_id == firm.plan_id
    assert firm.to_dict()["totals"] == [{"amount": "1500.00", "currency": "EUR"}]


def test_grouping_splits_large_groups_and_skips_non_send_decisions():
    now = paris(date(2026, 3, 27))
    states = [invoice(f"inv-{i:03d}") for i in range(7)] + [invoice("inv-d", dispute_status="open")]
    items = [(s, decide(s, settings(), DEFAULT_POLICY, OCCASIONAL_LATE, now=now)) for s in states]
    plans = plan_messages(settings(), items, max_invoices_per_message=3)
    assert [len(p.invoices) for p in plans] == [3, 3, 1]
    assert len({p.plan_id for p in plans}) == 3
    assert "inv-d" not in {x.invoice_id for p in plans for x in p.invoices}


def test_grouping_refuses_another_customer_s_invoice():
    other = replace(invoice(), customer_id="cus-2")
    d = decide(other, settings(customer_id="cus-2"), DEFAULT_POLICY, OCCASIONAL_LATE, now=paris(date(2026, 3, 27)))
    with pytest.raises(ValidationError):
        plan_messages(settings(), [(other, d)])


# -- from the real Invoice ----------------------------------------------------------------------

def test_state_from_an_issued_invoice():
    from chalicelib.domain.invoice import new_draft
    from chalicelib.domain.terms import PaymentTerms
    now = datetime(2026, 2, 14, 9, 0, tzinfo=UTC)
    inv = new_draft("inv_1", {"customer_id": "cus-1", "lines": [
        {"description": "Conseil", "quantity": "1", "unit_price": "1000.00", "vat_rate": "20"}]},
        customer_currency="EUR", now=now).issue(
        number="F2026-000001", series="F#2026", issue_date=date(2026, 2, 14), terms=PaymentTerms("net", 30),
        eom_mode="days_then_end_of_month", jurisdiction="FR", seller={}, buyer={}, now=now)
    state = InvoiceDunningState.from_invoice(inv)
    assert (state.due_date, state.amount_due, state.dispute_status, state.collection_status) == (
        DUE, Money(120000, "EUR"), "none", "none")
    assert decide(state, settings(), DEFAULT_POLICY, NEW, now=paris(date(2026, 3, 17), 9)).step.key == \
        "friendly_reminder"
    paid = InvoiceDunningState.from_invoice(inv.apply_payment(Money(120000, "EUR"), now))
    assert decide(paid, settings(), DEFAULT_POLICY, NEW, now=paris(date(2026, 3, 17))).stop_reason == STOP_PAID


# -- properties over random downtime and pauses ---------------------------------------------------

_toggles = st.lists(st.tuples(st.integers(min_value=0, max_value=60 * 24 - 1),
                              st.sampled_from(["dispute", "resolve", "sepa", "sepa_failed", "down", "up"])),
                    max_size=6)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([RELIABLE, OCCASIONAL_LATE, CHRONIC_LATE]), _toggles, st.booleans(), st.booleans())
def test_random_replays_send_each_channel_once_in_ladder_order(profile, toggles, weekends, opt_out):
    cfg = settings(sms_on_weekends=weekends, opt_out=opt_out)
    start = datetime.combine(date(2026, 3, 1), time(0, 0), tzinfo=PARIS).astimezone(UTC)
    changes = {
        "dispute": lambda s: replace(s, dispute_status="open"),
        "resolve": lambda s: replace(s, dispute_status="rejected"),
        "sepa": lambda s: replace(s, collection_status="pending"),
        "sepa_failed": lambda s: replace(s, collection_status="failed"),
    }
    events = {start + timedelta(hours=h): kind for h, kind in toggles}
    state, indexed, up = invoice(), start, True
    sends: list[tuple[datetime, str, str]] = []
    t = start
    while t < start + timedelta(days=60):
        kind = events.get(t)
        if kind in changes:
            state, indexed = changes[kind](state), t
        elif kind in ("down", "up"):
            up = kind == "up"
        if up and indexed is not None and indexed <= t:
            d = decide(state, cfg, DEFAULT_POLICY, profile, now=t)
            for c in d.channels_now:
                sends.append((t, d.step.key, c))
                state = replace(state, sent=state.sent + (SentRecord(d.step.key, c, t),))
            indexed = d.next_action_at
            if d.outcome == PAUSED:
                assert not d.channels_now
        t += timedelta(hours=1)
    pairs = [(k, c) for _, k, c in sends]
    assert len(pairs) == len(set(pairs)), "a channel of a step was sent twice"
    order = [s.key for s in DEFAULT_POLICY.steps]
    indices = [order.index(k) for k, _ in pairs]
    assert indices == sorted(indices), "the ladder went backwards"
    for when, key, channel in sends:
        if key == "courtesy_notice":
            assert when.astimezone(PARIS).date() <= DUE, "stale courtesy notice"
        if channel == SMS:
            assert 8 <= when.astimezone(PARIS).hour < 20
            assert weekends or when.astimezone(PARIS).weekday() < 5
        if opt_out:
            assert channel == CALL_TASK
