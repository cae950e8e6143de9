"""The sweep on the in-memory ledger: the ladder day by day, stops, pauses, grouping, leases."""

from __future__ import annotations

from datetime import date, timedelta

from tests.dunning.builders import world


def days(start: date, end: date):
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def test_a_new_customer_gets_the_default_ladder_each_step_once() -> None:
    # Given a customer without history and one invoice due 31 March
    w = world()
    cid = w.customer("Boulangerie Martin", "compta@martin.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    assert inv.due_date == date(2026, 3, 31)
    # When the sweep runs every day until mid-May
    for d in days(date(2026, 3, 1), date(2026, 5, 15)):
        w.sweep(d)
    # Then each step went out once, on its day
    subjects = w.messages("compta@martin.example")
    assert [d for d, _ in subjects] == [date(2026, 3, 26), date(2026, 4, 1), date(2026, 4, 10), date(2026, 4, 30)]
    assert "Échéance prochaine" in subjects[0][1]
    assert "Mise en demeure" in subjects[-1][1]
    assert len(w.sms.sent) == 1 and inv.number in w.sms.sent[0][1]
    tasks = w.ledger.list_tasks().items
    assert [(t.kind, t.due_on) for t in tasks] == [("call", date(2026, 4, 20))]


def _steps(w, email):
    return [(d, s.split(":")[0]) for d, s in w.messages(email)]


def test_reliable_and_chronic_payers_with_the_same_invoice_get_their_own_ladders() -> None:
    w = world()
    good = w.customer("Reliable SA", "ap@reliable.example")
    bad = w.customer("Chronic SARL", "ap@chronic.example")
    w.history(good, start=date(2025, 5, 1), days_late=[0, 0, 0, 0, 0])
    w.history(bad, start=date(2025, 5, 1), days_late=[25, 30, 18, 40, 22])
    a = w.invoice(good, date(2026, 3, 1))
    b = w.invoice(bad, date(2026, 3, 1))
    assert a.due_date == b.due_date == date(2026, 3, 31)
    for d in days(date(2026, 3, 1), date(2026, 5, 10)):
        w.sweep(d)
    good_mail = [d for d, _ in w.messages("ap@reliable.example")]
    bad_mail = [d for d, _ in w.messages("ap@chronic.example")]
    # reliable: no courtesy notice, friendly +1, firm (friendlier, email only) +15, formal +30
    assert good_mail == [date(2026, 4, 1), date(2026, 4, 15), date(2026, 4, 30)]
    # chronic: courtesy -5, friendly +1, firm +5, formal +30
    assert bad_mail == [date(2026, 3, 26), date(2026, 4, 1), date(2026, 4, 5), date(2026, 4, 30)]
    calls = {t.customer_id: t.due_on for t in w.ledger.list_tasks().items}
    assert calls == {good: date(2026, 4, 25), bad: date(2026, 4, 12)}
    view = w.dunning.customer_view(bad)
    assert view["profile"]["profile"] == "chronic_late" and "chronic_late" in view["why"][0]


def test_a_payment_on_day_12_stops_the_ladder() -> None:
    w = world()
    cid = w.customer("Payer", "ap@payer.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    for d in days(date(2026, 3, 1), date(2026, 4, 11)):
        w.sweep(d)
    w.pay(inv, date(2026, 4, 12))
    for d in days(date(2026, 4, 12), date(2026, 5, 15)):
        w.sweep(d)
    assert [d for d, _ in w.messages("ap@payer.example")] == [date(2026, 3, 26), date(2026, 4, 1), date(2026, 4, 10)]
    assert w.ledger.list_tasks().items == []
    record = w.ledger.get_dunning([inv.id])[inv.id]
    assert record.next_action_at is None and not record.woken and not record.active


def test_a_dispute_pauses_and_its_rejection_resumes() -> None:
    from chalicelib.services.disputes import DisputeWorkflow
    from chalicelib.services.pay import PayService
    from tests.dunning.builders import ALICE

    w = world()
    pay = PayService(w.ledger, w.clock, w.settings, lambda: None, "http://pay.test")
    cid = w.customer("Contester", "ap@contest.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    for d in days(date(2026, 3, 1), date(2026, 4, 3)):
        w.sweep(d)
    w.on(date(2026, 4, 3))
    dispute = pay.open_dispute(inv.id, "quantity", "Only 3 of 4 items delivered", ALICE)
    for d in days(date(2026, 4, 3), date(2026, 4, 17)):
        w.sweep(d)
    assert [d for d, _ in w.messages("ap@contest.example")] == [date(2026, 3, 26), date(2026, 4, 1)]
    w.on(date(2026, 4, 18))
    DisputeWorkflow(w.ledger, w.clock).reject(dispute.id, {"resolution": "Delivery note signed for 4"}, ALICE)
    for d in days(date(2026, 4, 18), date(2026, 5, 5)):
        w.sweep(d)
    mails = [d for d, _ in w.messages("ap@contest.example")]
    # the firm reminder (missed on 10 April) goes out the day the ladder resumes, then the next steps on their day
    assert mails == [date(2026, 3, 26), date(2026, 4, 1), date(2026, 4, 18), date(2026, 4, 30)]
    assert [t.due_on for t in w.ledger.list_tasks().items if t.kind == "call"] == [date(2026, 4, 20)]


def test_a_broken_promise_resumes_the_ladder() -> None:
    from tests.dunning.builders import ALICE

    w = world()
    cid = w.customer("Promiser", "ap@promise.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    for d in days(date(2026, 3, 1), date(2026, 4, 2)):
        w.sweep(d)
    w.on(date(2026, 4, 2))
    promise = w.promises.record({"invoice_ids": [inv.id], "amount": "1200.00", "promised_on": "2026-04-15"}, ALICE)
    for d in days(date(2026, 4, 2), date(2026, 4, 15)):
        w.sweep(d)
    assert [d for d, _ in w.messages("ap@promise.example")] == [date(2026, 3, 26), date(2026, 4, 1)]
    for d in days(date(2026, 4, 16), date(2026, 4, 21)):
        w.sweep(d)
    assert w.ledger.get_promise(promise.id).status == "broken"
    mails = [d for d, _ in w.messages("ap@promise.example")]
    assert mails == [date(2026, 3, 26), date(2026, 4, 1), date(2026, 4, 16)]
    assert any(a.kind == "promise" and "broken" in a.summary for a in w.ledger.activities)
    assert "event" in w.ledger.outbox_topics()


def test_a_kept_promise_is_recorded_kept() -> None:
    from tests.dunning.builders import ALICE

    w = world()
    cid = w.customer("Keeper", "ap@keeper.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    w.on(date(2026, 4, 2))
    promise = w.promises.record({"invoice_ids": [inv.id], "promised_on": "2026-04-10"}, ALICE)
    w.pay(inv, date(2026, 4, 9))
    w.sweep(date(2026, 4, 11))
    assert w.ledger.get_promise(promise.id).status == "kept"


def test_grouped_reminder_lists_each_invoice_with_its_pay_link() -> None:
    w = world()
    cid = w.customer("Many", "ap@many.example")
    invoices = [w.invoice(cid, date(2026, 3, 1), amount=f"{100 * (n + 1)}.00") for n in range(3)]
    for d in days(date(2026, 3, 30), date(2026, 4, 1)):
        w.sweep(d)
    sent = [m for _, m in w.mailer.sent if "Rappel" in m.subject]
    assert len(sent) == 1
    text = sent[0].text
    for inv in invoices:
        assert inv.number in text and f"http://pay.test/pay/{inv.pay_token}" in text
    assert "3 factures" in sent[0].subject


def test_two_sweeps_at_the_same_time_send_nothing_twice() -> None:
    import threading

    w = world()
    cid = w.customer("Race", "ap@race.example")
    for _ in range(5):
        w.invoice(cid, date(2026, 3, 1))
    w.sweep(date(2026, 3, 2))   # decide the first actions
    w.on(date(2026, 4, 1))
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        w.dunning.run(w.clock.now())

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    friendly = [m for _, m in w.mailer.sent if "Rappel" in m.subject]
    assert len(friendly) == 1


def test_a_failed_send_is_retried_by_the_next_sweep_and_sent_once() -> None:
    from tests.dunning.builders import RecordingMailer

    w = world(mailer=RecordingMailer(fail_times=1))
    cid = w.customer("Flaky", "ap@flaky.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    w.sweep(date(2026, 3, 2))
    report = w.sweep(date(2026, 3, 26))
    assert report.failed["email"] == 1 and w.mailer.sent == []
    record = w.ledger.get_dunning([inv.id])[inv.id]
    assert record.claims == () and record.failures and record.index_key() is not None
    w.on(date(2026, 3, 26), 13)
    w.dunning.run(w.clock.now())
    w.dunning.run(w.clock.now())
    assert [s for _, s in w.messages("ap@flaky.example")] == ["Échéance prochaine : facture " + inv.number]


def test_after_downtime_no_stale_courtesy_notice_and_one_catch_up_step() -> None:
    w = world()
    cid = w.customer("Late", "ap@late.example")
    inv = w.invoice(cid, date(2026, 3, 1))
    # the sweep does not run from the issue until 12 April (friendly and firm were due meanwhile)
    report = w.sweep(date(2026, 4, 12))
    assert report.overdue_events == 1
    subjects = [s for _, s in w.messages("ap@late.example")]
    assert len(subjects) == 1 and subjects[0].startswith("Relance")
    w.sweep(date(2026, 4, 13))
    assert len(w.messages("ap@late.example")) == 1
    events = [v["message"].payload for v in w.ledger.outbox.values() if v["message"].topic == "event"
              and v["message"].payload["type"] == "invoice.overdue"]
    assert len(events) == 1 and events[0]["data"]["invoice_id"] == inv.id


def test_opt_out_keeps_call_tasks_only_and_sms_waits_for_allowed_hours() -> None:
    from tests.dunning.builders import ALICE

    w = world()
    quiet = w.customer("Opted", "ap@opted.example")
    w.dunning.config.put_customer_settings(quiet, {"opt_out": True}, ALICE)
    w.invoice(quiet, date(2026, 3, 1))
    night = w.customer("Night", "ap@night.example")
    w.invoice(night, date(2026, 3, 2))   # due 1 April: firm reminder on Saturday 11 April
    for d in days(date(2026, 3, 1), date(2026, 4, 21)):
        w.sweep(d)
    assert w.messages("ap@opted.example") == []
    assert [t.customer_id for t in w.ledger.list_tasks().items if t.kind == "call"].count(quiet) == 1
    # the firm reminder's email went on Saturday; its SMS waited for Monday 13 April 08:00
    assert len(w.sms.sent) == 1
    record = [r for r in w.ledger._all("dunning") if r.customer_id == night][0]
    sms = [s for s in record.sent if s.channel == "sms"][0]
    assert sms.sent_at.date() == date(2026, 4, 13)


def test_past_its_time_budget_the_sweep_leaves_the_rest_due_for_the_next_one() -> None:
    w = world()
    for n in range(3):
        cid = w.customer(f"Budget {n}", f"ap{n}@budget.example")
        w.invoice(cid, date(2026, 3, 1))
    w.sweep(date(2026, 3, 2))
    w.on(date(2026, 3, 26))
    first = w.dunning.run(w.clock.now(), budget_s=0)
    assert first.messages == 0 and first.deferred_to_next_sweep == 3
    second = w.dunning.run(w.clock.now())
    assert second.messages == 3 and len(w.mailer.sent) == 3
