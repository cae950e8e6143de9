"""A month of dunning replayed through the API on moto, with ``POST /dunning/run?as_of=``.

Messages are checked in moto's record of what SES and SNS sent: amounts, invoice numbers, pay links
that open, the penalties arithmetic of the formal notice.
"""

from __future__ import annotations

import re
import threading
from datetime import date, timedelta
from decimal import Decimal

from tests.conftest import CUSTOMER_INPUT, line


def days(start: date, end: date):
    d = start
    while d <= end:
        yield d
        d += timedelta(days=1)


def customer(api, name: str, email: str, phone: str = "+33 6 12 34 56 78") -> str:
    return api.ok(api.post("/customers", {**CUSTOMER_INPUT, "name": name, "email": email, "phone": phone}), 201)["id"]


def issue(api, customer_id: str, on: date, price: str = "1000.00") -> dict:
    api.on(on)
    draft = api.ok(api.post("/invoices", {"customer_id": customer_id, "lines": [line(unit_price=price)],
                                          "payment_terms": {"kind": "net", "days": 30}}), 201)
    return api.ok(api.post(f"/invoices/{draft['id']}/issue"))


def pay(api, invoice: dict, on: date, amount: str | None = None) -> None:
    api.on(on, 11)
    body = {"method": "bank_transfer", "received_on": on.isoformat(), **({"amount": amount} if amount else {})}
    api.ok(api.post(f"/invoices/{invoice['id']}/payments", body), 201)


def history(api, customer_id: str, late: list[int]) -> None:
    for n, d in enumerate(late):
        inv = issue(api, customer_id, date(2025, 5, 1) + timedelta(days=20 * n), "400.00")
        pay(api, inv, date.fromisoformat(inv["due_date"]) + timedelta(days=d))


def reminder_days(api, email: str, since: int = 0) -> list[tuple[str, str]]:
    """(subject kind, first words) of the dunning emails sent to ``email``, in order."""
    return [m["subject"] for m in api.emails()[since:] if email in m["to"] and _is_dunning(m)]


def _is_dunning(m: dict) -> bool:
    return any(k in m["subject"] for k in ("Échéance prochaine", "Rappel", "Relance", "Mise en demeure",
                                           "Coming due", "Reminder", "Second reminder", "Formal notice"))


def test_a_month_replayed_reliable_and_chronic_payers_each_step_once_on_its_day(replay) -> None:
    api = replay
    good = customer(api, "Fiable SA", "ap@fiable.example")
    bad = customer(api, "Retard SARL", "ap@retard.example")
    history(api, good, [0, 0, 0, 0, 0])
    history(api, bad, [25, 30, 18, 40, 22])
    a = issue(api, good, date(2026, 3, 1))
    b = issue(api, bad, date(2026, 3, 1))
    assert a["due_date"] == b["due_date"] == "2026-03-31"
    sent_on: dict[str, list[tuple[date, str]]] = {"ap@fiable.example": [], "ap@retard.example": []}
    seen = 0
    for d in days(date(2026, 3, 1), date(2026, 5, 5)):
        api.run(d)
        emails = api.emails()
        for m in emails[seen:]:
            for who in sent_on:
                if who in m["to"] and _is_dunning(m):
                    sent_on[who].append((d, m["subject"]))
        seen = len(emails)
    assert [d for d, _ in sent_on["ap@fiable.example"]] == [date(2026, 4, 1), date(2026, 4, 15), date(2026, 4, 30)]
    assert [d for d, _ in sent_on["ap@retard.example"]] == [date(2026, 3, 26), date(2026, 4, 1), date(2026, 4, 5),
                                                            date(2026, 4, 30)]
    # the reliable payer's firm step is friendlier and by email only; the chronic payer's has its SMS
    sms = api.sms()
    assert len(sms) == 1 and b["number"] in sms[0]["message"] and sms[0]["phone_number"] == "+33612345678"
    tasks = api.ok(api.get("/tasks"))["data"]
    calls = sorted((t["customer_id"] == bad, t["due_on"]) for t in tasks if t["kind"] == "call")
    assert calls == [(False, "2026-04-25"), (True, "2026-04-12")]
    call = next(t for t in tasks if t["kind"] == "call" and t["customer_id"] == bad)
    assert call["details"]["phone"] == "+33612345678" and call["details"]["history"]
    # why: the API explains the profile and the ladder
    why = api.ok(api.get(f"/customers/{bad}/dunning"))
    assert why["profile"]["profile"] == "chronic_late"
    assert any(s["key"] == "firm_reminder" and s["offset_days"] == 5 for s in why["ladder"])
    view = api.ok(api.get(f"/invoices/{b['id']}/dunning"))
    assert [s["key"] for s in view["ladder"] if s["sent"]] == ["courtesy_notice", "friendly_reminder",
                                                                "firm_reminder", "call_task", "formal_notice"]
    # the timeline shows each reminder with its channel and provider message id
    timeline = api.ok(api.get(f"/invoices/{b['id']}/timeline"))["data"]
    reminders = [e for e in timeline if e["kind"] == "reminder"]
    assert {e["data"]["channel"] for e in reminders} == {"email", "sms", "letter"}
    assert all(e["data"]["message_id"] and e["actor"] == "system:dunning" for e in reminders)


def test_messages_carry_amounts_numbers_working_pay_links_and_the_penalty_arithmetic(replay) -> None:
    api = replay
    cid = customer(api, "Martin SARL", "compta@martin.example")
    inv = issue(api, cid, date(2026, 3, 1))
    for d in days(date(2026, 3, 25), date(2026, 4, 30)):
        api.run(d)
    mails = [m for m in api.emails() if _is_dunning(m)]
    friendly = next(m for m in mails if m["subject"].startswith("Rappel"))
    assert inv["number"] in friendly["subject"] and "1\u202f200,00\u00a0€" in friendly["text"]
    link = re.search(r"http://testserver/pay/[\w-]+", friendly["text"]).group(0)
    page = api.client.http.get(link.replace("http://testserver", ""))
    assert page.status_code == 200 and inv["number"] in page.body.decode()
    assert link in friendly["html"]
    # formal notice on 30 April: 30 days late from 1 April at ECB 2.15% + 10 = 12.15%, /365, on 1200.00
    formal = next(m for m in mails if m["subject"].startswith("Mise en demeure"))
    interest = (Decimal("1200.00") * Decimal("12.15") * 30 / (100 * 365)).quantize(Decimal("0.01"))
    assert interest == Decimal("11.98")
    assert "11,98\u00a0€" in formal["text"] and "40,00\u00a0€" in formal["text"]
    assert "1\u202f251,98\u00a0€" in formal["text"]          # 1200.00 + 11.98 + 40.00
    assert "12,15 % l'an" in formal["text"]
    pdf = formal["attachments"]["mise-en-demeure.pdf"]
    assert pdf.startswith(b"%PDF")
    penalties = api.ok(api.get(f"/invoices/{inv['id']}/penalties?as_of=2026-04-30"))
    assert penalties["interest"] == "11.98" and penalties["indemnity"] == "40.00" and penalties["total"] == "51.98"
    assert penalties["provisional"] is False
    # past the rate table (2026-H2 not configured): carried forward, flagged provisional
    later = api.ok(api.get(f"/invoices/{inv['id']}/penalties?as_of=2026-08-15"))
    assert later["provisional"] is True and later["periods"][-1]["provisional"] is True
    assert "provisional_note" in later


def test_two_sweeps_at_the_same_time_send_nothing_twice(replay) -> None:
    from chalicelib import wiring
    from chalicelib.services.dunning import as_of_instant

    api = replay
    cid = customer(api, "Concurrent SAS", "ap@concurrent.example")
    for _ in range(4):
        issue(api, cid, date(2026, 3, 1))
    api.run(date(2026, 3, 2))
    api.on(date(2026, 4, 1), 12)
    now = as_of_instant(date(2026, 4, 1), "Europe/Paris")
    service = wiring.dunning()
    barrier = threading.Barrier(3)
    reports = []

    def go() -> None:
        barrier.wait()
        reports.append(service.run(now))

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    friendly = [m for m in api.emails() if m["subject"].startswith("Rappel")]
    assert len(friendly) == 1 and "4 factures" in friendly[0]["subject"]
    assert sum(r.messages for r in reports) == 1


def test_a_failed_ses_send_is_retried_on_the_next_sweep_and_sent_once(replay) -> None:
    import boto3

    from chalicelib.config import get_config

    api = replay
    cid = customer(api, "Flaky SARL", "ap@flaky.example")
    inv = issue(api, cid, date(2026, 3, 1))
    ses = boto3.client("sesv2", endpoint_url=api.endpoint, region_name="eu-west-3")
    sender = get_config().mail_from
    ses.delete_email_identity(EmailIdentity=sender)       # SES now answers MessageRejected
    report = api.run(date(2026, 3, 26))
    assert report["failed"] == {"email": 1} and not [m for m in api.emails() if _is_dunning(m)]
    view = api.ok(api.get(f"/invoices/{inv['id']}/dunning"))
    assert view["record"]["failures"][0]["error"].startswith("MessageRejected")
    assert view["record"]["claims"] == []
    ses.create_email_identity(EmailIdentity=sender)
    api.run(date(2026, 3, 27))
    api.run(date(2026, 3, 28))
    courtesy = [m for m in api.emails() if _is_dunning(m)]
    assert len(courtesy) == 1 and inv["number"] in courtesy[0]["subject"]


def test_payment_on_day_12_stops_dispute_pauses_rejection_resumes_broken_promise_resumes(replay) -> None:
    api = replay
    paid_c = customer(api, "Payeur SA", "ap@payeur.example")
    disp_c = customer(api, "Litige SA", "ap@litige.example")
    prom_c = customer(api, "Promesse SA", "ap@promesse.example")
    paid_i = issue(api, paid_c, date(2026, 3, 1))
    disp_i = issue(api, disp_c, date(2026, 3, 1))
    prom_i = issue(api, prom_c, date(2026, 3, 1))
    log: dict[str, list[date]] = {"payeur": [], "litige": [], "promesse": []}
    seen = 0
    for d in days(date(2026, 3, 1), date(2026, 5, 5)):
        if d == date(2026, 4, 12):
            pay(api, paid_i, d)
        if d == date(2026, 4, 3):
            api.on(d)
            api.ok(api.post(f"/invoices/{disp_i['id']}/disputes", {"reason": "quality", "message": "Scratched"}), 201)
            api.ok(api.post("/promises", {"invoice_ids": [prom_i["id"]], "amount": "1200.00",
                                          "promised_on": "2026-04-15"}), 201)
        if d == date(2026, 4, 18):
            api.on(d)
            dispute = api.ok(api.get(f"/disputes?customer_id={disp_c}"))["data"][0]
            api.ok(api.post(f"/disputes/{dispute['id']}/assign", {"assignee": "claire"}))
            rejected = api.ok(api.post(f"/disputes/{dispute['id']}/reject", {"resolution": "Photos show no damage"}))
            assert rejected["status"] == "rejected"
        api.run(d)
        emails = api.emails()
        for m in emails[seen:]:
            for who in log:
                if f"ap@{who}.example" in m["to"] and _is_dunning(m):
                    log[who].append(d)
        seen = len(emails)
    assert log["payeur"] == [date(2026, 3, 26), date(2026, 4, 1), date(2026, 4, 10)]
    assert log["litige"] == [date(2026, 3, 26), date(2026, 4, 1), date(2026, 4, 18), date(2026, 4, 30)]
    assert log["promesse"] == [date(2026, 3, 26), date(2026, 4, 1), date(2026, 4, 16), date(2026, 4, 30)]
    promises = api.ok(api.get(f"/promises?customer_id={prom_c}"))["data"]
    assert [p["status"] for p in promises] == ["broken"]
    timeline = api.ok(api.get(f"/customers/{prom_c}/timeline"))["data"]
    assert any(e["kind"] == "promise" and "broken" in e["summary"] for e in timeline)
    dtl = api.ok(api.get(f"/customers/{disp_c}/timeline"))["data"]
    assert {e["kind"] for e in dtl} >= {"dispute", "reminder"}
    assert any(e["kind"] == "dispute" and e["actor"] == "test-admin" for e in dtl)
