"""Payment-provider webhooks turned into ledger state, exactly once, by money.

The same payment is reported by several event types (checkout.session.completed
with payment_status "paid", checkout.session.async_payment_succeeded,
payment_intent.succeeded), each event may be delivered many times, at the same
time, in any order. So:

- cash is keyed by PaymentIntent id (refunds by the charge's cumulative refunded
  amount and refund ids, chargebacks by dispute id): a ``cash:<key>`` marker with
  an attribute_not_exists condition commits in the same transaction as its
  effects, and the per-intent state (versioned) never moves backwards;
- the event id is recorded too (``event:<id>``), so a redelivery is skipped
  after one read-free, conditional write;
- money from a provider is never refused: an unknown invoice, another currency
  or more than is due becomes unapplied cash on the customer (or, with no
  customer, on the review list of unidentified payments);
- an event about money not recorded yet (a refund or a chargeback delivered
  before its payment, a dispute closed before it was opened) is never marked
  processed: it raises :class:`EventNotReady` (HTTP 409) and Stripe delivers it
  again later (with backoff, for up to 3 days). An event still unmatched after
  ``DEFER_FOR`` is recorded once as a review task for finance instead;
- slow work (emails, receipts, platform status, events) goes to the outbox in
  the same transaction.

Reads per payment event: the intent state, the invoices (one batch read),
then one transaction.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from ..domain.auth import Actor
from ..domain.collections import Task
from ..domain.errors import Conflict, NotFound
from ..domain.ids import new_id
from ..domain.invoice import OPEN, PAID, Invoice
from ..domain.money import Money, minor_units
from ..domain.payment import Payment, reversal_plan
from ..domain.provider import (FAILED, PROCESSING, REQUIRES_PAYMENT, SUCCEEDED, Chargeback, IntentState, Mandate,
                               ProviderRefund)
from ..observability import count, logger
from .common import diff, with_retries
from .events import invoice_event, payment_event
from .ports import Clock, CommitConflict, Ledger, PaymentGateway, UnitOfWork
from .settings import SettingsService

ACTOR = Actor.system("stripe-webhook")
EVENT_MARKER_DAYS = 90  # Stripe retries for 3 days; keep markers well beyond
# An out-of-order event is refused (Stripe retries it) for this long after it was created; a delivery
# after that (a late retry, or a resend from the dashboard) becomes a task for finance: never lost.
DEFER_FOR = timedelta(days=2)
UNIDENTIFIED = "unidentified"  # task owner when the provider names no customer of ours


class EventNotReady(Conflict):
    """An event about money we have not recorded yet (it arrived before the payment or the
    chargeback it changes): nothing is written and the webhook answers 409, so the provider
    delivers it again later, when the order has resolved itself."""

    code = "event_out_of_order"

    def __init__(self, message: str, *, review: str, amount: int | None = None, currency: str | None = None,
                 customer_id: str | None = None, payment_intent: str | None = None, defer: bool = True) -> None:
        super().__init__(message + ": nothing was recorded; the provider retries this event later")
        self.defer = defer  # False: waiting cannot help (e.g. a currency we cannot book): a task at once
        self.review = review  # the finance task's title, if we stop waiting
        self.amount = amount  # provider minor units, as sent
        self.currency = currency
        self.customer_id = customer_id
        self.payment_intent = payment_intent


def _money(amount: int, currency: str) -> Money:
    return Money(int(amount), currency.upper())


def _supported(currency: str) -> bool:
    try:
        minor_units(currency.upper())
    except Exception:  # noqa: BLE001 - unknown or 3-decimal currency
        return False
    return True


class ProviderEventService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService,
                 gateway_factory: Callable[[], PaymentGateway]) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self._gateway = gateway_factory
        self._handlers: dict[str, Callable[[dict[str, Any], UnitOfWork], str]] = {
            "checkout.session.completed": self._session_completed,
            "checkout.session.async_payment_succeeded": self._session_async,
            "checkout.session.async_payment_failed": self._session_async,
            "payment_intent.succeeded": self._intent_event,
            "payment_intent.processing": self._intent_event,
            "payment_intent.payment_failed": self._intent_event,
            "charge.refunded": self._charge_refunded,
            "charge.dispute.created": self._dispute_created,
            "charge.dispute.closed": self._dispute_closed,
            "setup_intent.succeeded": self._setup_succeeded,
            "mandate.updated": self._mandate_updated,
        }

    # -- entry point ----------------------------------------------------------------------------
    def handle(self, event: dict[str, Any]) -> str:
        """Apply a verified event; returns what happened (applied, duplicate, ignored, noop)."""
        event_type = str(event.get("type", ""))
        event_id = str(event.get("id", ""))
        handler = self._handlers.get(event_type)
        logger.append_keys(stripe_event=event_id, stripe_event_type=event_type)
        if handler is None:
            logger.info("stripe event type not handled")
            return "ignored"

        def attempt() -> str:
            # No read of the event marker first: its conditional put below
            # catches redeliveries, and most events are not redeliveries.
            uow = UnitOfWork(actor=ACTOR, now=self._clock.now())
            try:
                outcome = handler(event["data"]["object"], uow)
            except EventNotReady as exc:
                if exc.defer and not self._stop_waiting(event, uow.now):
                    count("WebhookDeferred")
                    logger.info("stripe event arrived before what it changes: deferred", extra={"why": exc.message})
                    raise
                uow = UnitOfWork(actor=ACTOR, now=uow.now)  # nothing of the handler's partial work
                outcome = self._review(event, exc, uow)
            uow.put_ref("event", event_id, event_type, {"outcome": outcome}, ttl_days=EVENT_MARKER_DAYS)
            try:
                self._ledger.commit(uow)
            except CommitConflict as exc:
                if "ref:event" in exc.failed:
                    return "duplicate"
                raise  # state moved under us (a concurrent report of the same money): re-read and retry
            return outcome

        outcome = with_retries(attempt)
        count("WebhookApplied" if outcome != "duplicate" else "WebhookDuplicate")
        logger.info("stripe event applied", extra={"outcome": outcome})
        return outcome

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _stop_waiting(event: dict[str, Any], now: datetime) -> bool:
        created = event.get("created")
        if not isinstance(created, (int, float)) or isinstance(created, bool):
            return False
        return now - datetime.fromtimestamp(created, timezone.utc) > DEFER_FOR

    def _review(self, event: dict[str, Any], exc: EventNotReady, uow: UnitOfWork) -> str:
        """An event that never found its payment: a task for finance (once: the event marker is
        written in the same transaction), with the provider's amount in its minor units."""
        obj = event["data"]["object"]
        uow.create(Task(id=new_id("tsk"), kind="provider_event_review", customer_id=exc.customer_id or UNIDENTIFIED,
                        title=exc.review, due_on=self._today(None), created_at=uow.now, updated_at=uow.now,
                        details={"event_id": event.get("id"), "event_type": event.get("type"),
                                 "object_id": obj.get("id"), "payment_intent": exc.payment_intent,
                                 "amount_minor": exc.amount, "currency": (exc.currency or "").upper() or None,
                                 "reason": exc.message}))
        logger.error("stripe event never matched: task created for finance", extra={"why": exc.message})
        count("WebhookUnmatched")
        return "review_task_created"

    def _today(self, ts: int | None) -> date:
        tz = self._settings.timezone()
        from zoneinfo import ZoneInfo

        when = datetime.fromtimestamp(ts, timezone.utc) if ts else self._clock.now()
        return when.astimezone(ZoneInfo(tz)).date()

    def _state(self, intent_id: str, *, amount: int, currency: str, metadata: dict[str, Any], method: str,
               now: datetime) -> IntentState:
        state = self._ledger.get_intent(intent_id)
        if state is not None:
            return state
        invoice_ids: tuple[str, ...] = ()
        customer_id = metadata.get("customer_id") or None
        if metadata.get("invoice_id"):
            invoice_ids = (str(metadata["invoice_id"]),)
        elif metadata.get("batch_id"):
            batch = self._ledger.get_ref("batch", str(metadata["batch_id"]))
            if batch is not None:
                invoice_ids = tuple(batch.data.get("invoice_ids", ()))
                customer_id = customer_id or batch.target
        return IntentState(id=intent_id, status=REQUIRES_PAYMENT, amount=_money(amount, currency or "eur"),
                           customer_id=customer_id, invoice_ids=invoice_ids, created_at=now, updated_at=now,
                           method=method, collection=metadata.get("collection") == "true")

    def _save_state(self, uow: UnitOfWork, state: IntentState, new: IntentState) -> IntentState:
        return uow.save(new) if state.version else uow.create(new)

    @staticmethod
    def _method(obj: dict[str, Any]) -> str:
        types = obj.get("payment_method_types") or []
        details = (obj.get("payment_method_details") or {}).get("type")
        kind = details or (types[0] if len(types) == 1 else None)
        return "sepa_debit" if kind == "sepa_debit" else "card"

    # -- payment intents & sessions -------------------------------------------------------------
    def _intent_event(self, intent: dict[str, Any], uow: UnitOfWork) -> str:
        status = {"succeeded": SUCCEEDED, "processing": PROCESSING, "requires_payment_method": FAILED,
                  "canceled": FAILED}.get(str(intent.get("status")), str(intent.get("status")))
        failure = (intent.get("last_payment_error") or {}).get("message") or (
            intent.get("last_payment_error") or {}).get("code")
        return self._move(str(intent["id"]), status, uow, amount=int(intent.get("amount_received") or
                                                                       intent.get("amount") or 0),
                          currency=str(intent.get("currency") or "eur"), metadata=intent.get("metadata") or {},
                          method=self._method(intent), charge_id=intent.get("latest_charge"),
                          created=intent.get("created"), failure=failure)

    def _session_completed(self, session: dict[str, Any], uow: UnitOfWork) -> str:
        if session.get("mode") == "setup":
            return self._store_mandate_from_setup(session.get("setup_intent"), session.get("metadata") or {}, uow)
        if not session.get("payment_intent"):
            return "noop"
        paid = session.get("payment_status") in ("paid", "no_payment_required")
        return self._move(str(session["payment_intent"]), SUCCEEDED if paid else PROCESSING, uow,
                          amount=int(session.get("amount_total") or 0), currency=str(session.get("currency") or "eur"),
                          metadata=session.get("metadata") or {}, method="card" if paid else "sepa_debit",
                          created=session.get("created"))

    def _session_async(self, session: dict[str, Any], uow: UnitOfWork) -> str:
        if not session.get("payment_intent"):
            return "noop"
        succeeded = session.get("payment_status") == "paid"
        return self._move(str(session["payment_intent"]), SUCCEEDED if succeeded else FAILED, uow,
                          amount=int(session.get("amount_total") or 0), currency=str(session.get("currency") or "eur"),
                          metadata=session.get("metadata") or {}, method="sepa_debit", created=session.get("created"),
                          failure=None if succeeded else "the SEPA debit failed")

    def _move(self, intent_id: str, status: str, uow: UnitOfWork, *, amount: int, currency: str,
              metadata: dict[str, Any], method: str, created: int | None, charge_id: str | None = None,
              failure: str | None = None) -> str:
        if not _supported(currency):
            return self._unsupported_cash(intent_id, status, uow, amount=amount, currency=currency,
                                          metadata=metadata)
        state = self._state(intent_id, amount=amount, currency=currency, metadata=metadata, method=method,
                            now=uow.now)
        if not state.advances_to(status):
            return "noop"  # a duplicate report or an older state arriving late
        changes: dict[str, Any] = {}
        if charge_id and not state.charge_id:
            changes["charge_id"] = charge_id
        if state.method != method and status == PROCESSING:
            changes["method"] = method
        if status == SUCCEEDED:
            if amount <= 0:
                return "noop"  # nothing was paid (e.g. no_payment_required)
            received = self._today(created)
            payment = self._record_cash(state, _money(amount, currency), received, uow)
            self._save_state(uow, state, state.moved(SUCCEEDED, uow.now, payment_id=payment.id,
                                                     failure_reason=None, **changes))
            count("ProviderPaymentRecorded")
            return "payment_recorded"
        invoices = self._ledger.get_invoices(state.invoice_ids)
        for invoice in invoices.values():
            if invoice.status != OPEN:
                continue
            if status == PROCESSING:
                updated = replace(invoice, collection_status="processing", collection_failure=None)
            elif state.status == PROCESSING or state.collection:
                updated = replace(invoice, collection_status="failed", collection_failure=failure or "payment failed")
                uow.emit("event", invoice_event("invoice.collection_failed", updated, uow.now))
            else:
                continue  # a declined card on a checkout page: the customer can simply try again
            self._save_invoice(uow, invoice, updated, "invoice.collection_" + ("processing" if status == PROCESSING
                                                                                else "failed"))
        self._save_state(uow, state, state.moved(status, uow.now, failure_reason=failure, **changes))
        return f"intent_{status}"

    def _unsupported_cash(self, intent_id: str, status: str, uow: UnitOfWork, *, amount: int, currency: str,
                          metadata: dict[str, Any]) -> str:
        """Money received in a currency the ledger cannot hold (unknown, or 3 decimals): never refused,
        never lost. Recorded once (``cash:<intent>``) as a task for finance, with the provider's amount
        in its integer minor units and currency as sent; the webhook answers 200."""
        if status != SUCCEEDED or amount <= 0:
            return "unsupported_currency"  # no money moved (processing, failed)
        if self._ledger.get_ref("cash", intent_id) is not None:
            return "noop"  # the same payment, reported by another event type
        code = (currency or "").upper()
        invoice_ids = (str(metadata["invoice_id"]),) if metadata.get("invoice_id") else ()
        details = {"payment_intent": intent_id, "amount_minor": int(amount), "currency": code,
                   "invoice_ids": list(invoice_ids), "batch_id": metadata.get("batch_id"),
                   "customer_id": metadata.get("customer_id")}
        task = uow.create(Task(
            id=new_id("tsk"), kind="unsupported_payment", customer_id=str(metadata.get("customer_id") or UNIDENTIFIED),
            title=f"Stripe payment received in {code}, a currency this ledger cannot book: record it by hand "
                  f"({amount} minor units)", due_on=self._today(None), created_at=uow.now, updated_at=uow.now,
            invoice_ids=invoice_ids, details=details))
        uow.put_ref("cash", intent_id, task.id, {"unsupported_currency": code, "amount_minor": int(amount)})
        uow.audit("payment.unsupported_currency", "task", task.id, None, details)
        logger.error("payment in an unsupported currency: task created for finance", extra={"currency": code})
        count("UnsupportedCurrencyPayment")
        return "unsupported_currency_recorded"

    def _save_invoice(self, uow: UnitOfWork, before: Invoice, after: Invoice, action: str,
                      on: date | None = None) -> Invoice:
        return uow.save_invoice(before, replace(after, updated_at=uow.now), on=on, action=action)

    def _record_cash(self, state: IntentState, amount: Money, received: date, uow: UnitOfWork) -> Payment:
        """The cash of a succeeded intent, allocated to its invoices; the rest stays unapplied."""
        invoices = self._ledger.get_invoices(state.invoice_ids)
        customer_id = state.customer_id or next((i.customer_id for i in invoices.values()), None)
        payment = Payment(id=f"pay_{state.id}", customer_id=customer_id, amount=amount,
                          method="sepa_debit" if state.method == "sepa_debit" else "card", received_on=received,
                          created_at=uow.now, updated_at=uow.now, provider_ref=state.id, source="stripe")
        remaining = amount
        seller = self._settings.seller_or_none()
        ordered = sorted((invoices[i] for i in state.invoice_ids if i in invoices),
                         key=lambda inv: (inv.due_date or date.max, inv.id))
        for invoice in ordered:
            if not remaining.is_positive:
                break
            if (invoice.status != OPEN or invoice.currency != amount.currency
                    or (customer_id and invoice.customer_id != customer_id)):
                continue
            due = invoice.amount_due
            discount = None
            if seller and seller.early_payment_discount:
                discount = invoice.early_payment_discount(seller.early_payment_discount.rate,
                                                          seller.early_payment_discount.days, received)
            if discount is not None and remaining.amount == due.amount - discount.amount:
                updated = invoice.settle_with_discount(remaining, discount, uow.now)
                allocation = remaining
            else:
                allocation = min(remaining, due)
                updated = invoice.apply_payment(allocation, uow.now)
            payment = payment.allocate(invoice.id, allocation, now=uow.now, invoice_number=invoice.number)
            remaining = remaining - allocation
            saved = self._save_invoice(uow, invoice, replace(updated, collection_status="none",
                                                             collection_failure=None), "invoice.payment_allocated",
                                       on=received)
            if saved.status == PAID:
                uow.emit("event", invoice_event("invoice.paid", saved, uow.now))
            # save_invoice deactivated the invoice's payment link (its amount is no longer what is due)
        if remaining.is_positive:
            logger.warning("provider payment left unapplied", extra={"intent": state.id,
                                                                     "unapplied": str(remaining)})
            count("UnappliedProviderCash")
        payment = uow.create(payment)
        uow.put_ref("cash", state.id, payment.id)
        uow.audit("payment.create", "payment", payment.id, None, payment.to_dict())
        uow.emit("event", payment_event("payment.recorded", payment, uow.now))
        return payment

    # -- refunds & chargebacks ------------------------------------------------------------------
    def _charge_refunded(self, charge: dict[str, Any], uow: UnitOfWork) -> str:
        intent_id = charge.get("payment_intent")
        state = self._ledger.get_intent(str(intent_id)) if intent_id else None
        if state is None or state.payment_id is None:
            unsupported = not _supported(str(charge.get("currency") or "eur"))
            raise EventNotReady(f"refund of payment {intent_id}, which is not recorded yet",
                                review=("Stripe refund in a currency this ledger cannot book: record it by hand"
                                        if unsupported else
                                        "Stripe refund on a payment never recorded here: check it by hand"),
                                amount=int(charge.get("amount_refunded") or 0), currency=charge.get("currency"),
                                customer_id=(charge.get("metadata") or {}).get("customer_id"),
                                payment_intent=str(intent_id) if intent_id else None, defer=not unsupported)
        refunded_total = int(charge.get("amount_refunded") or 0)
        delta = refunded_total - state.refunded.amount
        if delta <= 0:
            return "noop"
        refunds = [r for r in ((charge.get("refunds") or {}).get("data") or []) if r.get("id")]
        new_refund = next((r for r in refunds if state.refund(str(r["id"])) is None), None)
        new_id_ = str(new_refund["id"]) if new_refund else f"refund-{refunded_total}"
        # A refund asked from an invoice (POST /invoices/{id}/refunds) names it: that invoice reopens,
        # not whichever invoice of a multi-invoice payment was allocated last.
        target = ((new_refund or {}).get("metadata") or {}).get("invoice_id")
        amount = Money(delta, state.amount.currency)
        uow.put_ref("cash", f"{charge.get('id')}:refunded:{refunded_total}", new_id_)
        self._reverse(state, amount, uow, "invoice.refunded", target=str(target) if target else None)
        self._save_state(uow, state, replace(state, updated_at=uow.now, refunds=state.refunds + (
            ProviderRefund(id=new_id_, amount=amount, created_at=uow.now),)))
        count("ProviderRefundRecorded")
        return "refund_recorded"

    def _reverse(self, state: IntentState, amount: Money, uow: UnitOfWork, action: str,
                 chargeback: bool = False, target: str | None = None) -> None:
        """Take ``amount`` back: first from the ``target`` invoice (the one a refund was asked for),
        then from unapplied cash, then from the other invoices, latest allocation first."""
        payment = self._ledger.get_payment(str(state.payment_id))
        remaining = amount.amount
        invoices = self._ledger.get_invoices(a.invoice_id for a in payment.allocations)
        latest_first = list(reversed(payment.allocations))

        def reverse(allocations: list[Any]) -> None:
            nonlocal remaining
            returnable = {i.id: i.amount_paid - i.amount_reversed for i in invoices.values()}
            for invoice_id, back in reversal_plan(allocations, returnable, remaining):
                invoice = invoices[invoice_id]
                updated = invoice.reverse_payment(Money(back, invoice.currency), uow.now)
                if chargeback:
                    updated = replace(updated, chargeback_status="open")
                saved = self._save_invoice(uow, invoice, updated, action, on=self._today(None))
                invoices[saved.id] = saved
                uow.emit("event", invoice_event("invoice.reopened", saved, uow.now))
                remaining -= back

        if target:
            reverse([a for a in latest_first if a.invoice_id == target])
        take = min(remaining, payment.unapplied.amount)
        refunded_unapplied = payment.refunded_unapplied + take
        remaining -= take
        reverse([a for a in latest_first if a.invoice_id != target])
        uow.save(replace(payment, refunded=payment.refunded + amount.amount, refunded_unapplied=refunded_unapplied,
                         updated_at=uow.now))

    def _dispute_created(self, dispute: dict[str, Any], uow: UnitOfWork) -> str:
        intent_id = dispute.get("payment_intent")
        state = self._ledger.get_intent(str(intent_id)) if intent_id else None
        if state is None or state.payment_id is None:
            unsupported = not _supported(str(dispute.get("currency") or "eur"))
            raise EventNotReady(f"chargeback {dispute.get('id')} on payment {intent_id}, which is not recorded yet",
                                review=("Stripe chargeback in a currency this ledger cannot book: handle it by hand"
                                        if unsupported else
                                        "Stripe chargeback on a payment never recorded here: check it by hand"),
                                amount=int(dispute.get("amount") or 0), currency=dispute.get("currency"),
                                customer_id=(dispute.get("metadata") or {}).get("customer_id"),
                                payment_intent=str(intent_id) if intent_id else None, defer=not unsupported)
        if state.chargeback(str(dispute["id"])) is not None:
            return "noop"
        amount = Money(int(dispute.get("amount") or 0), state.amount.currency)
        contestable = state.method != "sepa_debit"
        uow.put_ref("cash", f"{dispute['id']}:created", state.id)
        self._reverse(state, amount, uow, "invoice.chargeback_opened", chargeback=True)
        self._save_state(uow, state, replace(state, updated_at=uow.now, chargebacks=state.chargebacks + (
            Chargeback(id=str(dispute["id"]), amount=amount, reason=dispute.get("reason"), status="open",
                       created_at=uow.now, contestable=contestable),)))
        if state.customer_id:
            task = Task(id=new_id("tsk"), kind="chargeback", customer_id=state.customer_id,
                        title=("Card chargeback: answer it before the deadline" if contestable
                               else "SEPA debit returned: contact the customer"),
                        due_on=self._today(None), created_at=uow.now, updated_at=uow.now,
                        invoice_ids=state.invoice_ids,
                        details={"dispute_id": dispute["id"], "reason": dispute.get("reason"),
                                 "amount": str(amount), "contestable": contestable})
            uow.create(task)
        uow.emit("event", {"id": new_id("evt"), "type": "chargeback.opened", "occurred_at": uow.now.isoformat(),
                           "data": {"dispute_id": dispute["id"], "payment_intent": state.id,
                                    "amount": str(amount), "invoice_ids": list(state.invoice_ids)}})
        count("ChargebackOpened")
        return "chargeback_opened"

    def _dispute_closed(self, dispute: dict[str, Any], uow: UnitOfWork) -> str:
        intent_id = dispute.get("payment_intent")
        state = self._ledger.get_intent(str(intent_id)) if intent_id else None
        existing = state.chargeback(str(dispute["id"])) if state else None
        if state is None or existing is None:
            unsupported = not _supported(str(dispute.get("currency") or "eur"))
            raise EventNotReady(f"chargeback {dispute.get('id')} closed before it was opened here",
                                review="Stripe chargeback closed that was never opened here: check it by hand",
                                amount=int(dispute.get("amount") or 0), currency=dispute.get("currency"),
                                customer_id=state.customer_id if state else None,
                                payment_intent=str(intent_id) if intent_id else None, defer=not unsupported)
        if existing.status != "open":
            return "noop"
        won = dispute.get("status") == "won"
        uow.put_ref("cash", f"{dispute['id']}:closed", state.id)
        if won:
            payment = self._ledger.get_payment(str(state.payment_id))
            invoices = self._ledger.get_invoices(a.invoice_id for a in payment.allocations)
            remaining = existing.amount.amount
            for allocation in payment.allocations:
                invoice = invoices.get(allocation.invoice_id)
                if invoice is None or remaining <= 0 or invoice.amount_reversed <= 0:
                    continue
                restored = min(remaining, invoice.amount_reversed)
                updated = replace(invoice.restore_reversal(Money(restored, invoice.currency), uow.now),
                                  chargeback_status="won")
                saved = self._save_invoice(uow, invoice, updated, "invoice.chargeback_won", on=self._today(None))
                if saved.status == PAID:
                    uow.emit("event", invoice_event("invoice.paid", saved, uow.now))
                remaining -= restored
            uow.save(replace(payment, refunded=max(0, payment.refunded - existing.amount.amount),
                             updated_at=uow.now))
        else:
            invoices = self._ledger.get_invoices(state.invoice_ids)
            for invoice in invoices.values():
                if invoice.chargeback_status == "open":
                    self._save_invoice(uow, invoice, replace(invoice, chargeback_status="lost"),
                                       "invoice.chargeback_lost")
        closed = replace(existing, status="won" if won else "lost")
        self._save_state(uow, state, replace(state, updated_at=uow.now, chargebacks=tuple(
            closed if c.id == existing.id else c for c in state.chargebacks)))
        return "chargeback_won" if won else "chargeback_lost"

    # -- mandates -------------------------------------------------------------------------------
    def _setup_succeeded(self, setup_intent: dict[str, Any], uow: UnitOfWork) -> str:
        return self._store_mandate_from_setup(setup_intent.get("id"), setup_intent.get("metadata") or {}, uow)

    def _store_mandate_from_setup(self, setup_intent_id: Any, metadata: dict[str, Any], uow: UnitOfWork) -> str:
        if not setup_intent_id:
            return "noop"
        details = self._gateway().setup_intent_details(str(setup_intent_id))
        customer_id = metadata.get("customer_id") or details.get("metadata", {}).get("customer_id")
        mandate = details.get("mandate")
        if not customer_id or not mandate:
            logger.warning("setup without customer or mandate")
            return "noop"
        return self._apply_mandate(str(customer_id), mandate, details.get("payment_method"),
                                   details.get("customer"), uow)

    def _apply_mandate(self, customer_id: str, mandate: dict[str, Any], payment_method: Any,
                       provider_customer: Any, uow: UnitOfWork) -> str:
        try:
            customer = self._ledger.get_customer(customer_id)
        except NotFound:
            return "unknown_customer"
        current = customer.mandate
        if current and current.id == mandate["id"] and current.status == mandate["status"]:
            return "noop"
        new = Mandate(id=str(mandate["id"]), status=str(mandate["status"]), reference=mandate.get("reference"),
                      payment_method=str(payment_method) if payment_method else (
                          current.payment_method if current else None),
                      created_at=current.created_at if current and current.id == mandate["id"] else uow.now)
        updated = replace(customer, mandate=new, updated_at=uow.now,
                          stripe_customer_id=customer.stripe_customer_id or (
                              str(provider_customer) if provider_customer else None))
        saved = uow.save(updated)
        b, a = diff(customer.to_dict(), saved.to_dict())
        uow.audit("customer.mandate", "customer", customer_id, b, a)
        uow.put_ref("mandate", new.id, customer_id, must_not_exist=False)
        return f"mandate_{new.status}"

    def _mandate_updated(self, mandate: dict[str, Any], uow: UnitOfWork) -> str:
        owner = self._ledger.get_ref("mandate", str(mandate["id"]))
        if owner is None:
            return "unknown_mandate"  # setup_intent.succeeded will read the mandate's current state
        details = mandate.get("payment_method_details") or {}
        reference = (details.get("sepa_debit") or {}).get("reference")
        return self._apply_mandate(owner.target, {"id": mandate["id"], "status": mandate.get("status"),
                                                  "reference": reference}, mandate.get("payment_method"), None, uow)
