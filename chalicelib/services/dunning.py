"""The dunning sweep: send each reminder step on time, in the right tone, and never once too often.

How a sweep runs (``DunningService.run(now)``, hourly from the scheduler, or for a given
``as_of`` date from the admin route):

1. promises to pay and payment-plan installments whose date passed are resolved (kept /
   broken); that wakes the records they paused;
2. the records due at ``now`` are read from the sparse index (woken ones first): one item per
   due record, nothing else per record (the customer's settings and profile are copied on it);
3. each is decided by the pure :func:`~chalicelib.domain.dunning.decide` from that fresh state;
4. a customer's invoices due for the same step are grouped into one message
   (:func:`~chalicelib.domain.dunning.plan_messages`);
5. sends are **claimed** first: each record of the message gets a lease (``Claim``) in a
   transaction conditioned on the version read (several messages per transaction, at most 100
   items); a failed condition means another sweep (or a change) got there first: skipped;
6. the message goes out (email through SES, SMS through SNS, the formal notice's PDF letter to
   the document store, a call task for a collector);
7. the provider's message ids are **recorded** on the records (and the leases released) with the
   timeline entries; a channel that failed is released without a message id, so a later sweep
   retries it. While a lease is live, or once a message id is recorded, nothing is resent.

Everything else a record needs (stop, pause, wait, the overdue event the day an invoice becomes
late) is a conditional write of its next action, grouped up to 100 per transaction.
"""

from __future__ import annotations

from time import monotonic
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from ..domain.auth import Actor
from ..domain.collections import Task
from ..domain.dunning import (CALL_TASK, DEFAULT_POLICY, EMAIL, LETTER, SEND, SMS, STOP_PAID,
                              CustomerDunningSettings, DunningDecision, DunningPolicy, MessagePlan, customer_ladder,
                              decide, plan_messages)
from ..domain.dunning_record import Claim, DunningRecord, SentEntry, invoice_projection
from ..domain.errors import NotFound
from ..domain.ids import new_id
from ..domain.money import Money
from ..observability import count, logger
from .common import with_retries
from .dunning_config import DunningConfig, same_snapshot
from .events import envelope
from .ports import Clock, CommitConflict, Ledger, UnitOfWork

ACTOR = Actor.system("dunning")
LEASE = timedelta(minutes=15)
MAX_INVOICES_PER_MESSAGE = 40     # claims of one message fit a transaction with their timeline entries
TX_ITEMS = 100                    # DynamoDB's limit per TransactWriteItems
READ_PAGE = 500
EXTERNAL = (LETTER, EMAIL, SMS)   # sent outside the transaction: claimed first


@dataclass
class SweepReport:
    now: str = ""
    due: int = 0
    decided: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    claimed_elsewhere: int = 0
    conflicts: int = 0
    overdue_events: int = 0
    deferred_to_next_sweep: int = 0
    promises: dict[str, int] = field(default_factory=dict)
    plans: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now, "due": self.due, "decided": dict(self.decided), "messages": self.messages,
                "sent": dict(self.sent), "failed": dict(self.failed), "claimed_elsewhere": self.claimed_elsewhere,
                "conflicts": self.conflicts, "overdue_events": self.overdue_events,
                "deferred_to_next_sweep": self.deferred_to_next_sweep, "promises": self.promises,
                "payment_plans": self.plans}


@dataclass
class _Item:
    """A due record and what was decided for it."""

    record: DunningRecord
    snapshot: dict[str, Any]
    settings: CustomerDunningSettings
    policy: DunningPolicy
    decision: DunningDecision


@dataclass
class _Outcome:
    ok: bool
    message_id: str | None = None
    result: str = "sent"
    proof_key: str | None = None
    error: str | None = None
    proof: dict[str, Any] | None = None   # what was sent (kept on the timeline entry)


@dataclass
class _Job:
    """A message to record: what it was, the records to write on, and how each channel went."""

    plan: MessagePlan
    items: list[_Item]
    claim_id: str | None
    outcomes: dict[str, _Outcome]
    records: dict[str, DunningRecord]

    def size(self) -> int:
        """Items it writes: records, timeline entries, the call task, the step update (and overdue events)."""
        overdue = sum(1 for i in self.items if i.decision.emit_overdue_event) if self.claim_id is None else 0
        task = 1 if self.outcomes.get(CALL_TASK) is not None and self.outcomes[CALL_TASK].ok else 0
        return len(self.items) + len(self.outcomes) + 1 + task + overdue


@dataclass
class _Run:
    now: datetime
    today: date
    tz: str
    seller: Any
    policies: dict[str, DunningPolicy]
    report: SweepReport
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh: set[str] = field(default_factory=set)
    deadline: float | None = None     # monotonic() after which no new message is claimed
    _rates: Any = None


def as_of_instant(as_of: date, tz: str, at: time = time(12, 0)) -> datetime:
    """The instant a replay of ``as_of`` runs at: noon seller time (after the 09:00 send time,
    inside the usual SMS hours)."""
    return datetime.combine(as_of, at, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


class DunningService:
    """The sweep and the views that explain it. Collaborators are passed in (``wiring.dunning()``)."""

    def __init__(self, ledger: Ledger, clock: Clock, settings: Any, *, config: DunningConfig | None = None,
                 mailer: Callable[[], Any] | None = None, sms: Callable[[], Any] | None = None,
                 store: Callable[[], Any] | None = None, public_base_url: str = "",
                 promises: Any = None, plans: Any = None, workers: int = 4) -> None:
        self._ledger = ledger
        self.workers = workers  # parallel sends (keep under the SES account's sending rate)
        self._clock = clock
        self._settings = settings
        self.config = config or DunningConfig(ledger, clock)
        self._mailer = mailer
        self._sms = sms
        self._store = store
        self._base = public_base_url.rstrip("/")
        self.promises = promises
        self.plans = plans

    # -- small helpers --------------------------------------------------------------------------
    def timezone(self) -> str:
        return self._settings.timezone()

    def pay_url(self, token: str | None) -> str | None:
        return f"{self._base}/pay/{token}" if token else None

    def _snapshot(self, run: _Run, customer_id: str) -> dict[str, Any]:
        snap = run.snapshots.get(customer_id)
        if snap is None:
            try:
                snap = self.config.snapshot(customer_id, run.today, run.tz, actor=ACTOR)
            except NotFound:
                snap = {"settings": CustomerDunningSettings(customer_id=customer_id, channels_allowed=()).to_dict(),
                        "profile": "new", "profile_reasons": ["customer not found"], "profile_on": run.today.isoformat(),
                        "customer_name": None, "policy_id": DEFAULT_POLICY.id}
            run.snapshots[customer_id] = snap
        return snap

    def _decide(self, run: _Run, record: DunningRecord) -> _Item:
        snap = record.customer if (record.customer and record.customer.get("settings")) else None
        if snap is None:
            snap = self._snapshot(run, record.customer_id)
        settings = CustomerDunningSettings.from_dict(snap["settings"], customer_id=record.customer_id)
        policy = run.policies.get(settings.policy_id) or run.policies[DEFAULT_POLICY.id]
        decision = decide(record.state(), settings, policy, snap["profile"], now=run.now, seller_timezone=run.tz)
        return _Item(record=record, snapshot=snap, settings=settings, policy=policy, decision=decision)

    # -- the sweep ------------------------------------------------------------------------------
    def run(self, now: datetime | None = None, *, max_records: int = 50_000,
            budget_s: float | None = None) -> SweepReport:
        """One sweep at ``now`` (default: the clock). Safe to run twice or concurrently. With ``budget_s``,
        no new message is claimed after that many seconds (the scheduled job passes what is left of the
        Lambda's time): what is left stays due and the next sweep sends it."""
        now = now or self._clock.now()
        tz = self.timezone()
        run = _Run(now=now, today=now.astimezone(ZoneInfo(tz)).date(), tz=tz, seller=self._settings.seller_or_none(),
                   policies=self.config.policies(), report=SweepReport(now=now.isoformat()),
                   deadline=monotonic() + budget_s if budget_s is not None else None)
        if self.promises is not None:
            run.report.promises = self.promises.check(run.today, now)
        if self.plans is not None:
            run.report.plans = self.plans.run(run.today, now)
        records: list[DunningRecord] = []
        cursor = None
        while len(records) < max_records:
            page = self._ledger.dunning_due(now, limit=READ_PAGE, cursor=cursor)
            records.extend(page.items)
            cursor = page.next_cursor
            if not cursor:
                break
        run.report.due = len(records)
        sending: dict[str, list[_Item]] = defaultdict(list)
        settle: list[tuple[DunningRecord, list[Callable[[UnitOfWork], None]]]] = []
        for record in records:
            if record.live_claims(now):
                run.report.claimed_elsewhere += 1   # a send is in flight: its sweep records the outcome
                continue
            item = self._decide(run, record)
            run.report.decided[item.decision.outcome] += 1
            if item.decision.outcome == SEND:
                sending[record.customer_id].append(item)
            else:
                settle.append(self._settled(run, item))
        self._commit_packed(settle, run)
        self._send_all(run, sending)
        self._after(run)
        count("DunningSweep")
        logger.info("dunning sweep", extra=run.report.to_dict())
        return run.report

    def _after(self, run: _Run) -> None:
        """Customers whose invoices got paid: refresh their payer profile (off the sweep, via the outbox)."""
        if not run.refresh:
            return
        uow = UnitOfWork(actor=ACTOR, now=run.now)
        for customer_id in sorted(run.refresh)[:TX_ITEMS]:
            uow.emit("dunning.refresh_customer", {"customer_id": customer_id, "as_of": run.today.isoformat()})
        self._ledger.commit(uow)

    def _overdue_ops(self, run: _Run, item: _Item) -> list[Callable[[UnitOfWork], None]]:
        if not item.decision.emit_overdue_event:
            return []
        inv = item.record.invoice or {}

        def op(uow: UnitOfWork) -> None:
            uow.emit("event", envelope("invoice.overdue", {
                "invoice_id": item.record.invoice_id, "number": inv.get("number"),
                "customer_id": item.record.customer_id, "currency": inv.get("currency"),
                "amount_due": str(Money(int(inv.get("amount_due") or 0), inv.get("currency") or "EUR")),
                "due_date": inv.get("due_date"), "days_overdue": (run.today - date.fromisoformat(inv["due_date"])).days
                if inv.get("due_date") else None}, run.now))

        return [op]

    def _settled(self, run: _Run, item: _Item) -> tuple[DunningRecord, list[Callable[[UnitOfWork], None]]]:
        r, d = item.record, item.decision
        if d.stop_reason == STOP_PAID and r.woken:
            run.refresh.add(r.customer_id)
        updated = replace(r, customer=item.snapshot, next_action_at=d.next_action_at, woken=False,
                          last_decision=summary(d), claims=r.live_claims(run.now),
                          overdue_event_emitted=r.overdue_event_emitted or d.emit_overdue_event)
        return updated, self._overdue_ops(run, item)

    def _commit_packed(self, entries: list[tuple[DunningRecord, list[Callable[[UnitOfWork], None]]]],
                       run: _Run) -> list[DunningRecord]:
        """Save records (conditioned on the version read) up to 100 items per transaction; a chunk that
        conflicts is retried record by record, and a record that changed is left for the next sweep."""
        saved: list[DunningRecord] = []
        chunk: list[tuple[DunningRecord, list[Callable[[UnitOfWork], None]]]] = []
        size = 0

        def flush() -> None:
            nonlocal chunk, size
            if not chunk:
                return
            try:
                saved.extend(self._commit_records(chunk, run.now, run.report))
            except CommitConflict:
                for entry in chunk:
                    try:
                        saved.extend(self._commit_records([entry], run.now, run.report))
                    except CommitConflict:
                        run.report.conflicts += 1
            chunk, size = [], 0

        for record, ops in entries:
            if size + 1 + len(ops) > TX_ITEMS:
                flush()
            chunk.append((record, ops))
            size += 1 + len(ops)
        flush()
        return saved

    def _commit_records(self, entries: list[tuple[DunningRecord, list[Callable[[UnitOfWork], None]]]],
                        now: datetime, report: SweepReport | None = None) -> list[DunningRecord]:
        uow = UnitOfWork(actor=ACTOR, now=now)
        out = []
        for record, ops in entries:
            out.append(uow.save(record))
            for op in ops:
                op(uow)
        self._ledger.commit(uow)
        if report is not None:  # the only extra operations are the overdue events
            report.overdue_events += sum(len(ops) for _, ops in entries)
        return out

    # -- sending --------------------------------------------------------------------------------
    def _send_all(self, run: _Run, sending: Mapping[str, list[_Item]]) -> None:
        plans: list[tuple[MessagePlan, list[_Item]]] = []
        for customer_id, items in sending.items():
            by_id = {i.record.invoice_id: i for i in items}
            settings = items[0].settings
            links = {i.record.invoice_id: self.pay_url((i.record.invoice or {}).get("pay_token")) or "" for i in items}
            for plan in plan_messages(settings, [(i.record.state(), i.decision) for i in items], pay_links=links,
                                      max_invoices_per_message=MAX_INVOICES_PER_MESSAGE):
                plans.append((plan, [by_id[line.invoice_id] for line in plan.invoices]))
        # Internal-only messages (call tasks) commit in one step, on the versions decided from; the others
        # are claimed, sent, then recorded on the versions their claim wrote.
        self._record_packed(run, [_Job(p, its, None, self._internal_outcomes(p),
                                       {i.record.invoice_id: i.record for i in its})
                                  for p, its in plans if not set(p.channels) & set(EXTERNAL)])
        # External messages go chunk by chunk (a chunk's claims fit one transaction): claim, send (in
        # parallel), record; past the time budget the rest stays due for the next sweep.
        external = [(p, its) for p, its in plans if set(p.channels) & set(EXTERNAL)]
        start = 0
        while start < len(external):
            if run.deadline is not None and monotonic() > run.deadline:
                run.report.deferred_to_next_sweep = len(external) - start
                break
            size, end = 0, start
            while end < len(external) and (end == start or size + len(external[end][1]) <= TX_ITEMS):
                size += len(external[end][1])
                end += 1
            claimed = self._claim_packed(run, external[start:end])
            start = end

            def deliver(entry: tuple[MessagePlan, list[_Item], str, dict[str, DunningRecord]]) -> _Job:
                plan, items, claim_id, records = entry
                outcomes = self._deliver(run, plan, items)
                outcomes.update(self._internal_outcomes(plan))
                return _Job(plan, items, claim_id, outcomes, records)

            if self.workers > 1 and len(claimed) > 1:
                with ThreadPoolExecutor(max_workers=self.workers) as pool:
                    jobs = list(pool.map(deliver, claimed))
            else:
                jobs = [deliver(entry) for entry in claimed]
            self._record_packed(run, jobs)

    def _internal_outcomes(self, plan: MessagePlan) -> dict[str, _Outcome]:
        return {CALL_TASK: _Outcome(ok=True, message_id=new_id("tsk"), result="created")} \
            if CALL_TASK in plan.channels else {}

    def _claim_packed(self, run: _Run, plans: list[tuple[MessagePlan, list[_Item]]]
                      ) -> list[tuple[MessagePlan, list[_Item], str, dict[str, DunningRecord]]]:
        """Lease every record of each message (several messages per transaction, at most 100 items);
        returns the messages claimed with the record versions the claim wrote."""
        lease_until = run.now + LEASE
        out: list[tuple[MessagePlan, list[_Item], str, dict[str, DunningRecord]]] = []
        chunk: list[tuple[MessagePlan, list[_Item], str]] = []
        size = 0

        def claim_ops(plan: MessagePlan, items: list[_Item], claim_id: str
                      ) -> list[tuple[DunningRecord, list[Callable[[UnitOfWork], None]]]]:
            entries = []
            for it in items:
                r = it.record
                claims = r.live_claims(run.now) + tuple(
                    Claim(step_key=plan.step_key, channel=c, claim_id=claim_id, lease_until=lease_until,
                          plan_id=plan.plan_id) for c in plan.channels if c in EXTERNAL)
                updated = replace(r, customer=it.snapshot, claims=claims, next_action_at=lease_until, woken=False,
                                  overdue_event_emitted=r.overdue_event_emitted or it.decision.emit_overdue_event)
                entries.append((updated, self._overdue_ops(run, it)))
            return entries

        def keep(claimed: list[tuple[MessagePlan, list[_Item], str]], saved: list[DunningRecord]) -> None:
            by_id = {r.invoice_id: r for r in saved}
            for p, its, cid in claimed:
                out.append((p, its, cid, {i.record.invoice_id: by_id[i.record.invoice_id] for i in its}))

        def flush() -> None:
            nonlocal chunk, size
            if not chunk:
                return
            try:
                keep(chunk, self._commit_records([e for p, its, cid in chunk for e in claim_ops(p, its, cid)],
                                                 run.now, run.report))
            except CommitConflict:
                for p, its, cid in chunk:
                    try:
                        keep([(p, its, cid)], self._commit_records(claim_ops(p, its, cid), run.now, run.report))
                    except CommitConflict:
                        run.report.claimed_elsewhere += 1  # another sweep claimed it, or it just changed
            chunk, size = [], 0

        for plan, items in plans:
            need = len(items) + sum(1 for i in items if i.decision.emit_overdue_event)
            if size + need > TX_ITEMS:
                flush()
            chunk.append((plan, items, new_id("clm")))
            size += need
        flush()
        return out

    def _lines(self, run: _Run, plan: MessagePlan, items: list[_Item]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Template lines and context; the formal notice adds penalties per invoice (see penalty.py)."""
        from ..adapters.dunning_templates import date_text, money_text

        lang = plan.language
        lines = []
        by_id = {i.record.invoice_id: i for i in items}
        for line in plan.invoices:
            inv = by_id[line.invoice_id].record.invoice or {}
            lines.append({"invoice_id": line.invoice_id, "number": line.number, "due_date": line.due_date,
                          "amount_due": line.amount_due, "days_overdue": line.days_overdue,
                          "pay_link": line.pay_link, "issue_date": inv.get("issue_date"),
                          "total": Money(int(inv.get("total") or 0), line.amount_due.currency)})
        seller = run.seller
        settings = items[0].settings
        snap = items[0].snapshot
        ctx: dict[str, Any] = {
            "seller_name": (seller.trade_name or seller.legal_name) if seller else "",
            "contact_name": settings.contact_name or snap.get("customer_name") or "",
            "customer_name": snap.get("customer_name") or "",
            "total": ", ".join(money_text(m, lang) for m in plan.totals),
            "today": date_text(run.today, lang), "lang": lang,
        }
        if plan.tone == "formal" or plan.template == "formal_notice":
            from .penalty import formal_notice_figures

            if run._rates is None:
                run._rates = self.config.rates()
            figures = formal_notice_figures(lines, run.today, run._rates, seller)
            lines = figures["lines"]
            def joined(totals: Mapping[str, Money]) -> str:
                return ", ".join(money_text(m, lang) for _, m in sorted(totals.items())) or money_text(
                    Money.zero(plan.totals[0].currency), lang)

            ctx.update({"deadline": date_text(run.today + timedelta(days=8), lang),
                        "penalties_total": joined(figures["interest"]),
                        "indemnity_total": joined(figures["indemnity"]),
                        "indemnity": money_text(figures["indemnity_each"], lang),
                        "claimed_total": joined(figures["claimed"]), "provisional": figures["provisional"],
                        "rate_text": figures["rate_text"][lang], "figures": figures})
        return lines, ctx

    def _deliver(self, run: _Run, plan: MessagePlan, items: list[_Item]) -> dict[str, _Outcome]:
        """Send the external channels of a claimed message; every failure is caught and reported."""
        from ..adapters.dunning_templates import render_message

        outcomes: dict[str, _Outcome] = {}
        settings = items[0].settings
        try:
            lines, ctx = self._lines(run, plan, items)
            rendered = render_message(plan.template, plan.tone, plan.language, lines, ctx)
        except Exception as exc:  # noqa: BLE001 - a broken template or rate table must not stop the sweep
            logger.exception("dunning message could not be rendered", extra={"plan": plan.plan_id})
            return {c: _Outcome(ok=False, error=_error_text(exc)) for c in plan.channels if c in EXTERNAL}
        letter: bytes | None = None
        if LETTER in plan.channels or (EMAIL in plan.channels and "figures" in ctx):
            try:
                from .penalty import formal_notice_pdf

                letter = formal_notice_pdf(run.seller, ctx["figures"], settings, items[0].snapshot, run.today,
                                           plan.language, items[0].record.invoice or {})
            except Exception as exc:  # noqa: BLE001
                logger.exception("formal notice letter failed", extra={"plan": plan.plan_id})
                return {c: _Outcome(ok=False, error=_error_text(exc)) for c in plan.channels if c in EXTERNAL}
        stamp = run.now.strftime("%Y%m%dT%H%M%SZ")
        base_key = f"dunning/{plan.customer_id}/{stamp}-{plan.step_key}-{_short(plan.plan_id)}"
        if LETTER in plan.channels and letter is not None:
            outcomes[LETTER] = self._safely(LETTER, lambda: self._put(f"{base_key}/letter.pdf", letter,
                                                                       "application/pdf"), result="stored")
        if EMAIL in plan.channels:
            def send_email() -> str:
                from .ports import Attachment, EmailMessage

                attachments = ()
                if letter is not None:
                    name = "mise-en-demeure.pdf" if plan.language == "fr" else "formal-notice.pdf"
                    attachments = (Attachment(name, letter, "application/pdf"),)
                reply_to = run.seller.email if run.seller else None
                message = EmailMessage(to=(str(settings.contact_email),), subject=rendered.subject, text=rendered.text,
                                       html=rendered.html, attachments=attachments, reply_to=reply_to,
                                       tags={"kind": "dunning", "step": plan.step_key,
                                             "customer_id": plan.customer_id})
                return str(self._mailer().send(message))  # type: ignore[misc]

            outcomes[EMAIL] = self._safely(EMAIL, send_email)
        if SMS in plan.channels:
            outcomes[SMS] = self._safely(SMS, lambda: str(self._sms().send(  # type: ignore[misc]
                str(settings.contact_phone), rendered.sms, tags={"kind": "dunning", "step": plan.step_key})))
        # Proof of sending: what went out, to whom, under which provider id. It is kept on the timeline
        # entry of the send, written in the same transaction as the message id (the evidence pack prints it).
        for channel, outcome in outcomes.items():
            if outcome.ok and channel in (EMAIL, SMS):
                outcome.proof = {
                    "to": settings.contact_email if channel == EMAIL else settings.contact_phone,
                    "subject": rendered.subject if channel == EMAIL else None,
                    "text": rendered.text if channel == EMAIL else rendered.sms,
                    "attachment": f"{base_key}/letter.pdf" if (channel == EMAIL and LETTER in outcomes
                                                               and outcomes[LETTER].ok) else None}
        return outcomes

    def _put(self, key: str, content: bytes, content_type: str) -> str:
        self._store().put(key, content, content_type)  # type: ignore[misc]
        return key

    def _safely(self, channel: str, send: Callable[[], str], result: str = "sent") -> _Outcome:
        try:
            return _Outcome(ok=True, message_id=send(), result=result)
        except Exception as exc:  # noqa: BLE001 - released, retried by a later sweep
            logger.warning("dunning send failed", extra={"channel": channel, "error": type(exc).__name__})
            return _Outcome(ok=False, error=_error_text(exc))

    def _record_packed(self, run: _Run, jobs: list[_Job]) -> None:
        """Write what went out (several messages per transaction, at most 100 items). A transaction that
        conflicts is split: a claimed message is recorded again on fresh reads until it commits (what went
        out is never lost); an unclaimed one (a call task) is left for the next sweep to decide again."""
        chunk: list[_Job] = []
        size = 0

        def done(job: _Job) -> None:
            run.report.messages += 1
            if job.claim_id is None:
                run.report.overdue_events += sum(1 for i in job.items if i.decision.emit_overdue_event)
            for channel, outcome in job.outcomes.items():
                (run.report.sent if outcome.ok else run.report.failed)[channel] += 1

        def one(job: _Job) -> None:
            if job.claim_id is None:
                try:
                    self._commit_jobs(run, [job], {})
                    done(job)
                except CommitConflict:
                    run.report.conflicts += 1
                return

            def attempt() -> None:
                fresh = self._ledger.get_dunning([i.record.invoice_id for i in job.items], consistent=True)
                self._commit_jobs(run, [job], fresh)

            with_retries(attempt)
            done(job)

        def flush() -> None:
            nonlocal chunk, size
            if not chunk:
                return
            try:
                self._commit_jobs(run, chunk, {})
                for job in chunk:
                    done(job)
            except CommitConflict:
                for job in chunk:
                    one(job)
            chunk, size = [], 0

        for job in jobs:
            need = job.size()
            if size + need > TX_ITEMS:
                flush()
            chunk.append(job)
            size += need
        flush()

    def _commit_jobs(self, run: _Run, jobs: list[_Job], fresh: Mapping[str, DunningRecord]) -> None:
        uow = UnitOfWork(actor=ACTOR, now=run.now)
        for job in jobs:
            self._record_ops(uow, run, job, fresh)
        self._ledger.commit(uow)

    def _record_ops(self, uow: UnitOfWork, run: _Run, job: _Job, fresh: Mapping[str, DunningRecord]) -> None:
        """The writes recording one message: every record (sent entries, lease released, next action),
        the timeline entries, the call task and the invoices' ``dunning_step`` update."""
        plan, items, outcomes = job.plan, job.items, job.outcomes
        ids = [i.record.invoice_id for i in items]
        failed = {c: o for c, o in outcomes.items() if not o.ok}
        numbers = [line.number or line.invoice_id for line in plan.invoices]
        total = ", ".join(f"{m} {m.currency}" for m in plan.totals)
        proofs: dict[str, str] = {}
        for channel, outcome in outcomes.items():
            if channel == CALL_TASK and outcome.ok:
                uow.create(self._call_task(run, plan, items, str(outcome.message_id)))
            entry = uow.activity(
                plan.customer_id, "call_task" if channel == CALL_TASK else "reminder",
                (f"{plan.step_key} by {channel}: {', '.join(numbers)} ({total})" if outcome.ok else
                 f"{plan.step_key} by {channel} failed, will retry: {outcome.error}"),
                invoice_ids=ids, actor=ACTOR.name,
                data={"step": plan.step_key, "channel": channel, "template": plan.template, "tone": plan.tone,
                      "result": outcome.result if outcome.ok else "failed", "message_id": outcome.message_id,
                      "error": outcome.error, "plan_id": plan.plan_id, "sent_at": run.now.isoformat(),
                      **({"proof": outcome.proof} if outcome.proof else {})})
            proofs[channel] = outcome.proof_key or (f"activity:{entry.id}" if outcome.proof else "")
        for item in items:
            invoice_id = item.record.invoice_id
            r = fresh.get(invoice_id) or job.records.get(invoice_id) or item.record
            new_sent = tuple(SentEntry(step_key=plan.step_key, channel=c, sent_at=run.now, message_id=o.message_id,
                                       template=plan.template, plan_id=plan.plan_id, result=o.result,
                                       proof_key=proofs.get(c) or None)
                             for c, o in outcomes.items() if o.ok and not r.has_sent(plan.step_key, c))
            failures = r.failures
            if failed:
                failures = (failures + tuple({"at": run.now.isoformat(), "step_key": plan.step_key, "channel": c,
                                              "error": o.error} for c, o in failed.items()))[-5:]
            claims = tuple(c for c in r.claims if c.claim_id != job.claim_id and c.live(run.now))
            next_at = item.decision.next_action_at
            if failed:
                next_at = run.now  # released: the next sweep retries the failed channels
            updated = replace(r, sent=r.sent + new_sent, claims=claims, next_action_at=next_at, failures=failures,
                              last_decision=summary(item.decision), customer=item.snapshot,
                              overdue_event_emitted=r.overdue_event_emitted or item.decision.emit_overdue_event)
            uow.save(updated)
            if job.claim_id is None:  # not claimed first (call task): the overdue event commits here
                for op in self._overdue_ops(run, item):
                    op(uow)
        if any(o.ok for o in outcomes.values()):
            uow.emit("dunning.mark_step", {"invoice_ids": ids, "step": plan.step_key})

    def _call_task(self, run: _Run, plan: MessagePlan, items: list[_Item], task_id: str) -> Task:
        settings = items[0].settings
        snap = items[0].snapshot
        history = []
        for it in items:
            for s in it.record.sent[-10:]:
                history.append({"invoice_id": it.record.invoice_id, "step": s.step_key, "channel": s.channel,
                                "sent_at": s.sent_at.isoformat(), "result": s.result})
        total = ", ".join(f"{m} {m.currency}" for m in plan.totals)
        who = settings.contact_name or snap.get("customer_name") or plan.customer_id
        return Task(id=task_id, kind="call", customer_id=plan.customer_id,
                    title=f"Call {who} about {len(plan.invoices)} overdue invoice(s), {total}",
                    due_on=run.today, created_at=run.now, updated_at=run.now,
                    invoice_ids=tuple(line.invoice_id for line in plan.invoices),
                    details={"phone": settings.contact_phone, "contact_name": settings.contact_name,
                             "contact_email": settings.contact_email, "language": settings.language,
                             "profile": snap.get("profile"), "profile_reasons": snap.get("profile_reasons"),
                             "step": plan.step_key,
                             "invoices": [line.to_dict() for line in plan.invoices],
                             "history": sorted(history, key=lambda h: h["sent_at"])})

    # -- outbox handlers ------------------------------------------------------------------------
    def mark_step(self, payload: Mapping[str, Any]) -> None:
        """``dunning.mark_step``: copy the last step onto the invoices (``dunning_step``), off the sweep."""
        for invoice_id in payload.get("invoice_ids", []):
            def run(invoice_id: str = invoice_id) -> None:
                try:
                    inv = self._ledger.get_invoice(invoice_id)
                except NotFound:
                    return
                if inv.dunning_step == payload["step"]:
                    return
                uow = UnitOfWork(actor=ACTOR, now=self._clock.now())
                uow.save_invoice(inv, replace(inv, dunning_step=str(payload["step"])))
                self._ledger.commit(uow)

            with_retries(run)

    def refresh_customer(self, payload: Mapping[str, Any]) -> None:
        """``dunning.refresh_customer`` / ``dunning.customer_changed``: recompute the profile and copy the
        snapshot onto the customer's open records (waking those whose copy changed)."""
        as_of = date.fromisoformat(payload["as_of"]) if payload.get("as_of") else \
            self._clock.today(self.timezone())
        try:
            self.config.resync_customer(str(payload["customer_id"]), as_of, self.timezone(),
                                        refresh_profile=bool(payload.get("refresh_profile", True)), actor=ACTOR)
        except NotFound:
            return

    def plan_mail(self, payload: Mapping[str, Any]) -> None:
        """``dunning.plan_mail``: the reminder of a payment-plan installment (due soon, or late).
        Sent once: a ``plan_mail`` marker is written after the send (an outbox retry skips it)."""
        from ..adapters.dunning_templates import date_text, money_text, render_message
        from .plans import plan_context
        from .ports import EmailMessage

        plan = self._ledger.get_plan(str(payload["plan_id"]))
        index = int(payload["index"])
        kind = str(payload["kind"])
        marker = f"{plan.id}:{index}:{kind}"
        if self._ledger.get_ref("plan_mail", marker) is not None:
            return
        customer = self._ledger.get_customer(plan.customer_id)
        settings = self.config.customer_settings(customer)
        if settings.opt_out or "email" not in settings.channels_allowed or not settings.contact_email:
            return
        invoices = self._ledger.get_invoices(plan.invoice_ids)
        lang = settings.language
        seller = self._settings.seller_or_none()
        inst = plan_context(plan, index, debit=bool(payload.get("debit")))
        today = date.fromisoformat(payload["as_of"]) if payload.get("as_of") else self._clock.today(self.timezone())
        lines = [{"invoice_id": i.id, "number": i.number, "due_date": i.due_date, "amount_due": i.amount_due,
                  "days_overdue": max(0, (today - i.due_date).days) if i.due_date else 0,
                  "pay_link": self.pay_url(i.pay_token)} for i in invoices.values() if i.status == "open"]
        ctx = {"seller_name": (seller.trade_name or seller.legal_name) if seller else "",
               "contact_name": settings.contact_name or customer.name, "customer_name": customer.name,
               "total": money_text(Money(sum(i.amount_due.amount for i in invoices.values() if i.status == "open"),
                                         plan.installments[0].amount.currency), lang),
               "today": date_text(today, lang), "lang": lang,
               "installment": {**inst, "amount": money_text(inst["amount"], lang),
                               "due_on": date_text(inst["due_on"], lang),
                               "grace_until": date_text(inst["grace_until"], lang)}}
        rendered = render_message(kind, None, lang, lines, ctx)
        message_id = self._mailer().send(EmailMessage(  # type: ignore[misc]
            to=(settings.contact_email,), subject=rendered.subject, text=rendered.text, html=rendered.html,
            reply_to=seller.email if seller else None,
            tags={"kind": "dunning", "step": kind, "customer_id": plan.customer_id}))
        uow = UnitOfWork(actor=ACTOR, now=self._clock.now())
        uow.put_ref("plan_mail", marker, plan.id, {"message_id": message_id}, must_not_exist=False)
        uow.activity(plan.customer_id, "reminder", f"{kind} by email: installment {index + 1} of plan {plan.id}",
                     invoice_ids=plan.invoice_ids, actor=ACTOR.name,
                     data={"step": kind, "channel": EMAIL, "template": kind, "result": "sent", "message_id": message_id,
                           "plan_id": plan.id})
        self._ledger.commit(uow)

    def rewake(self, payload: Mapping[str, Any]) -> None:
        """``dunning.rewake``: wake every open invoice's record (a policy changed), a page at a time;
        the next sweep re-decides them. Continues itself through the outbox when there are more."""
        page = self._ledger.dunning_active(limit=500, cursor=payload.get("cursor"))
        for start in range(0, len(page.items), TX_ITEMS):
            uow = UnitOfWork(actor=ACTOR, now=self._clock.now())
            for r in page.items[start:start + TX_ITEMS]:
                uow.touch_dunning(r.invoice_id, r.customer_id, wake=True)
            self._ledger.commit(uow)
        if page.next_cursor:
            uow = UnitOfWork(actor=ACTOR, now=self._clock.now())
            uow.emit("dunning.rewake", {**payload, "cursor": page.next_cursor})
            self._ledger.commit(uow)

    # -- call tasks ---------------------------------------------------------------------------------
    def complete_task(self, task_id: str, outcome: Any, actor: Actor) -> Task:
        """Close a task with what happened (a call's outcome goes on the timeline with its actor)."""
        def run() -> Task:
            task = self._ledger.get_task(task_id)
            done = task.complete(outcome if isinstance(outcome, str) else "", actor.name, self._clock.now())
            uow = UnitOfWork(actor=actor, now=done.updated_at)
            saved = uow.save(done)
            uow.audit("task.complete", "task", task_id, {"status": task.status}, {"status": done.status,
                                                                                  "outcome": done.outcome})
            uow.activity(task.customer_id, "call_outcome" if task.kind == "call" else "task",
                         f"{task.kind} task done: {done.outcome}", invoice_ids=task.invoice_ids,
                         data={"task_id": task_id, "kind": task.kind})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    # -- backfill ---------------------------------------------------------------------------------
    def backfill(self, *, limit: int = 500, cursor: str | None = None) -> dict[str, Any]:
        """Create the dunning records of open invoices issued before dunning existed (idempotent)."""
        from ..domain.invoice import OPEN
        from .ports import InvoiceQuery

        page = self._ledger.query_invoices(InvoiceQuery(status=OPEN, limit=limit, cursor=cursor),
                                           self._clock.today(self.timezone()))
        existing = self._ledger.get_dunning([i.id for i in page.items])
        missing = [i for i in page.items if i.id not in existing]
        for start in range(0, len(missing), TX_ITEMS):
            uow = UnitOfWork(actor=ACTOR, now=self._clock.now())
            for inv in missing[start:start + TX_ITEMS]:
                projection = invoice_projection(inv)
                if projection is not None:
                    uow.touch_dunning(inv.id, inv.customer_id, invoice=projection, wake=True)
            self._ledger.commit(uow)
        return {"read": len(page.items), "created": len(missing), "next_cursor": page.next_cursor}

    # -- views ----------------------------------------------------------------------------------
    def invoice_view(self, invoice_id: str, now: datetime | None = None) -> dict[str, Any]:
        """The invoice's dunning record, and what the sweep would do now and why."""
        now = now or self._clock.now()
        invoice = self._ledger.get_invoice(invoice_id)
        record = self._ledger.get_dunning([invoice_id]).get(invoice_id)
        projection = invoice_projection(invoice)
        if record is None:
            record = DunningRecord(invoice_id=invoice.id, customer_id=invoice.customer_id, invoice=projection)
        elif projection is not None:
            record = replace(record, invoice=projection)
        tz = self.timezone()
        run = _Run(now=now, today=now.astimezone(ZoneInfo(tz)).date(), tz=tz, seller=self._settings.seller_or_none(),
                   policies=self.config.policies(), report=SweepReport())
        if projection is None:
            return {"invoice_id": invoice_id, "record": record.to_dict(), "decision": None,
                    "explanation": ["not dunned: drafts and credit notes are never chased"]}
        current = self.config.snapshot(invoice.customer_id, run.today, tz, actor=ACTOR)
        record = replace(record, customer=current)
        item = self._decide(run, record)
        ladder = customer_ladder(item.policy, item.snapshot["profile"], item.settings)
        due = date.fromisoformat(projection["due_date"]) if projection.get("due_date") else None
        return {"invoice_id": invoice_id, "number": invoice.number, "profile": item.snapshot["profile"],
                "profile_reasons": item.snapshot.get("profile_reasons"), "policy_id": item.policy.id,
                "decision": item.decision.to_dict(),
                "ladder": [{**s.to_dict(), "date": s.date_for(due).isoformat() if due else None,
                            "sent": [e.to_dict() for e in record.sent if e.step_key == s.key]} for s in ladder],
                "record": record.to_dict(),
                "snapshot_current": same_snapshot(self._ledger.get_dunning([invoice_id]).get(invoice_id) or record,
                                                  current)}

    def customer_view(self, customer_id: str) -> dict[str, Any]:
        """Settings, payer profile (with its figures and the rule) and the ladder that results."""
        customer = self._ledger.get_customer(customer_id)
        tz = self.timezone()
        today = self._clock.today(tz)
        from .dunning_config import customer_doc

        doc = self._ledger.get_settings(customer_doc(customer_id))
        settings = self.config.customer_settings(customer, doc, load=False)
        policies = self.config.policies()
        policy = policies.get(settings.policy_id, DEFAULT_POLICY)
        profile = self.config.compute_profile(customer_id, today, policy, tz)
        ladder = customer_ladder(policy, profile.profile, settings)
        return {"customer_id": customer_id, "settings": settings.to_dict(),
                "overrides": (doc.data.get("settings") or {}) if doc else {},
                "policy": policy.to_dict(), "policy_fallback": settings.policy_id not in policies,
                "profile": profile.to_dict(),
                "ladder": [s.to_dict() for s in ladder],
                "why": [f"payer profile {profile.profile}: {profile.explanation}",
                        f"policy {policy.id!r}, ladder for {profile.ladder_profile} payers: "
                        + ", ".join(f"{s.key} day {s.offset_days:+d} by {', '.join(s.channels) or 'nothing'}"
                                    + (f" ({'; '.join(s.notes)})" if s.notes else "") for s in ladder)]}


def summary(d: DunningDecision) -> dict[str, Any]:
    """What the record keeps of its last decision (short: the full explanation is recomputed on read)."""
    return {"outcome": d.outcome, "today": d.today.isoformat(), "profile": d.profile,
            "step": d.step.key if d.step else None, "channels_now": list(d.channels_now),
            "pause_reasons": list(d.pause_reasons), "stop_reason": d.stop_reason,
            "skipped": [s.key for s in d.skipped], "deferred": [c.channel for c in d.deferred],
            "next_action_at": d.next_action_at.isoformat() if d.next_action_at else None}


def _error_text(exc: Exception) -> str:
    """An error worth showing, without personal data (provider messages may quote addresses)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return f"{type(exc).__name__}" + (f" ({code})" if code else "")


def _short(plan_id: str) -> str:
    return plan_id.rsplit(":", 1)[-1][:12]


def group_ids(items: Iterable[DunningRecord]) -> list[str]:
    return [r.invoice_id for r in items]
