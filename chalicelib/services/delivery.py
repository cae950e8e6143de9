"""Delivery of issued documents by email, and what SES tells us afterwards.

On issue (:meth:`DeliveryService.issue_hook`) an outbox message ``mail.invoice``
is written in the issue transaction; its handler emails the customer, in the
customer's language, with the Factur-X PDF attached (as stored), the one-click
pay link, the customer portal link (created on first use), bank-transfer
details with the RF reference, and, when the invoice will be collected by SEPA
direct debit, the pre-notification (amount, debit date, mandate). When the
certified e-invoicing platform carries the invoice, the email says it is a
courtesy copy. ``POST /invoices/{id}/send`` queues it again; the portal's
"request a copy" (outbox ``mail.invoice_copy``) sends a copy.

Each queued delivery has an id: a message that runs twice (the outbox is at
least once) sends once, unless the process dies between SES accepting the
message and the record, in which case the customer gets it twice.

The invoice records its delivery: ``delivery = {status, message_id, at,
history}`` with statuses queued, sent, delivered, bounced (permanent),
soft_bounced, complained, failed. SES events (bounce, complaint, delivery;
either SES event publishing or identity notifications, as they arrive through
SNS) are applied by :meth:`DeliveryService.handle_ses_event`: the message id is
mapped back to its invoice by the ``invoice_id`` message tag or by a ref
written at send time. Recipients never appear in logs.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any, Callable, Mapping

from ..domain import creditor_reference
from ..domain.auth import Actor
from ..domain.errors import Conflict
from ..domain.ids import new_id
from ..domain.invoice import CREDIT_NOTE, DRAFT, VOID, Invoice
from .common import with_retries
from .ports import Attachment, Clock, EmailMessage, Ledger, Mailer, UnitOfWork

log = logging.getLogger(__name__)

MAIL_TOPIC = "mail.invoice"
COPY_TOPIC = "mail.invoice_copy"
DELIVERY_REF, MESSAGE_REF = "delivery", "sesmsg"
MAIL_ACTOR = Actor.system("delivery")
MAX_HISTORY = 30
# SES event type -> our delivery status
SES_STATUS = {"Delivery": "delivered", "Complaint": "complained", "Reject": "failed",
              "Rendering Failure": "failed", "DeliveryDelay": None, "Send": None, "Open": None, "Click": None}
# Statuses a later, weaker event does not overwrite (a bounce is not undone by a delay).
FINAL = ("bounced", "complained", "failed")


def _group4(value: str) -> str:
    compact = "".join(value.split())
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


class DeliveryService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: Any, documents: Any, mailer: Callable[[], Mailer],
                 render_mail: Callable[..., tuple[str, str, str]], pay_url: Callable[[Invoice], str | None],
                 portal_url: Callable[[str], str | None], einvoicing: Any) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings          # SettingsService (seller)
        self._documents = documents        # DocumentService (the stored PDF)
        self._mailer = mailer              # built lazily (SES client)
        self._render = render_mail
        self._pay_url = pay_url
        self._portal_url = portal_url      # customer id -> portal URL (token created on first use)
        self._einvoicing = einvoicing      # EInvoicingSettingsService

    # -- queueing -----------------------------------------------------------------------------------
    def issue_hook(self, invoice: Invoice, customer: Any, seller: Any, uow: UnitOfWork) -> Invoice:
        """Run while issuing: queue the email (unless the seller turned sending on issue off)."""
        if not self._einvoicing.get().send_on_issue:
            return invoice
        return self._queue(invoice, uow, "issued")

    def _queue(self, invoice: Invoice, uow: UnitOfWork, reason: str) -> Invoice:
        delivery_id = new_id("dlv")
        uow.emit(MAIL_TOPIC, {"invoice_id": invoice.id, "delivery_id": delivery_id, "reason": reason})
        entry = {"status": "queued", "at": uow.now.isoformat(), "delivery_id": delivery_id, "reason": reason}
        return replace(invoice, delivery=_with(invoice.delivery, entry))

    def resend(self, invoice_id: str, actor: Actor) -> Invoice:
        """Queue the email of an issued document again (``POST /invoices/{id}/send``)."""

        def run() -> Invoice:
            invoice = self._ledger.get_invoice(invoice_id)
            if invoice.status == DRAFT:
                raise Conflict(f"invoice {invoice_id} is a draft: issue it first (issuing sends it)", code="not_issued")
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            saved = uow.save_invoice(invoice, replace(self._queue(invoice, uow, "resend"), updated_at=uow.now),
                                     action="invoice.send_requested")
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    # -- sending (outbox handlers) ----------------------------------------------------------------------
    def mail_handler(self, payload: Mapping[str, Any]) -> None:
        self.send(payload["invoice_id"], reason=payload.get("reason") or "issued",
                  delivery_id=payload.get("delivery_id"))

    def copy_handler(self, payload: Mapping[str, Any]) -> None:
        """Outbox ``mail.invoice_copy`` (the portal's "request a copy")."""
        self.send(payload["invoice_id"], reason="copy", delivery_id=payload.get("delivery_id"))

    def send(self, invoice_id: str, *, reason: str, delivery_id: str | None) -> str | None:
        """Email the document; returns the SES message id (None when this delivery was already sent)."""
        if delivery_id and self._ledger.get_ref(DELIVERY_REF, delivery_id) is not None:
            return None
        invoice = self._ledger.get_invoice(invoice_id)
        customer = self._ledger.get_customer(invoice.customer_id)
        message = self.compose(invoice, customer, reason)
        message_id = self._mailer().send(message)
        log.info("invoice emailed", extra={"invoice_id": invoice.id, "reason": reason})

        def record() -> None:
            current = self._ledger.get_invoice(invoice.id)
            uow = UnitOfWork(actor=MAIL_ACTOR, now=self._clock.now())
            entry = {"status": "sent", "at": uow.now.isoformat(), "message_id": message_id, "reason": reason,
                     "delivery_id": delivery_id}
            uow.save_invoice(current, replace(current, delivery=_with(current.delivery, entry), updated_at=uow.now),
                             action="invoice.sent")
            uow.put_ref(MESSAGE_REF, message_id, invoice.id, must_not_exist=False)
            if delivery_id:
                uow.put_ref(DELIVERY_REF, delivery_id, invoice.id, {"message_id": message_id}, must_not_exist=False)
            self._ledger.commit(uow)

        with_retries(record)
        return message_id

    def compose(self, invoice: Invoice, customer: Any, reason: str) -> EmailMessage:
        """The email of an issued document, in the customer's language, with its Factur-X PDF."""
        seller = self._settings.seller()
        pdf = self._documents.file(invoice, "pdf")
        is_credit = invoice.kind == CREDIT_NOTE
        amount_due = invoice.amount_due
        open_to_pay = not is_credit and invoice.status not in (VOID,) and amount_due.is_positive
        debit = None
        transfer = None
        if open_to_pay and invoice.collection_status == "scheduled" and customer.mandate and customer.mandate.active:
            debit = {"amount": amount_due, "date": invoice.due_date, "mandate_reference": customer.mandate.reference
                     or customer.mandate.id, "creditor_id": seller.sepa_creditor_id}
        elif open_to_pay and invoice.currency == "EUR":
            reference = creditor_reference.format_reference(
                creditor_reference.for_invoice(invoice.number, invoice.id))
            transfer = {"beneficiary": seller.legal_name, "iban": _group4(seller.iban), "bic": seller.bic,
                        "reference": reference}
        related = None
        if is_credit and invoice.related_invoice_id:
            related = self._ledger.get_invoice(invoice.related_invoice_id).number
        filename = f"{invoice.number or invoice.id}.pdf"
        prepaid = invoice.totals.prepaid if invoice.totals.prepaid.is_positive else None
        subject, text, html = self._render(
            "invoice", customer.language, reason=reason, kind=invoice.kind, number=invoice.number,
            issue_date=invoice.issue_date, due_date=None if is_credit else invoice.due_date,
            total=invoice.totals.total, prepaid=prepaid, amount_due=amount_due, customer_name=customer.name,
            seller_name=seller.trade_name or seller.legal_name, seller_email=seller.email, related_number=related,
            pay_url=self._pay_url(invoice) if open_to_pay else None,
            portal_url=self._portal_url(customer.id), transfer=transfer, debit=debit,
            platform=bool(invoice.einvoice), filename=filename)
        return EmailMessage(to=(customer.email,), subject=subject, text=text, html=html,
                            attachments=(Attachment(filename, pdf, "application/pdf"),), reply_to=seller.email,
                            tags={"invoice_id": invoice.id, "kind": invoice.kind})

    # -- SES events -------------------------------------------------------------------------------------
    def handle_ses_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one SES notification (the JSON in the SNS message): bounce, complaint, delivery...

        Returns what was done: ``{"invoice_id", "status"}`` or ``{"ignored": reason}``. Idempotent:
        the same event applied twice records it once.
        """
        kind = str(event.get("eventType") or event.get("notificationType") or "")
        mail = event.get("mail") or {}
        message_id = mail.get("messageId")
        if not message_id:
            return {"ignored": "no mail.messageId"}
        if kind == "Bounce":
            bounce = event.get("bounce") or {}
            permanent = bounce.get("bounceType") == "Permanent"
            status = "bounced" if permanent else "soft_bounced"
            detail = "/".join(str(x) for x in (bounce.get("bounceType"), bounce.get("bounceSubType")) if x)
            at = bounce.get("timestamp")
        elif kind in SES_STATUS and SES_STATUS[kind]:
            status = SES_STATUS[kind]
            body = event.get(kind[0].lower() + kind[1:]) or {}
            detail = str(body.get("complaintFeedbackType") or body.get("reason") or "") or None
            at = body.get("timestamp")
        else:
            return {"ignored": f"event type {kind or 'unknown'}"}
        tags = mail.get("tags") or {}
        invoice_id = (tags.get("invoice_id") or [None])[0]
        if not invoice_id:
            ref = self._ledger.get_ref(MESSAGE_REF, str(message_id))
            invoice_id = ref.target if ref else None
        if not invoice_id:
            return {"ignored": "message not sent for an invoice"}

        def run() -> dict[str, Any]:
            invoice = self._ledger.get_invoice(invoice_id)
            history = (invoice.delivery or {}).get("history", [])
            if any(e.get("message_id") == message_id and e.get("status") == status for e in history):
                return {"invoice_id": invoice.id, "status": status, "duplicate": True}
            now = self._clock.now()
            entry = {"status": status, "at": _iso(at) or now.isoformat(), "message_id": message_id,
                     "detail": detail or None}
            uow = UnitOfWork(actor=Actor.system("ses"), now=now)
            uow.save_invoice(invoice, replace(invoice, delivery=_with(invoice.delivery, entry), updated_at=now),
                             action=f"invoice.delivery_{status}")
            self._ledger.commit(uow)
            log.info("invoice delivery event", extra={"invoice_id": invoice.id, "status": status})
            return {"invoice_id": invoice.id, "status": status}

        return with_retries(run)


def _iso(value: Any) -> str | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).isoformat()
    except ValueError:
        return None


def _with(delivery: Mapping[str, Any] | None, entry: dict[str, Any]) -> dict[str, Any]:
    """Append ``entry`` to the delivery history; the status follows the latest message's news, except that
    a bounce, complaint or failure of that message is not overwritten by weaker news."""
    current = dict(delivery or {})
    history = [*current.get("history", []), {k: v for k, v in entry.items() if v is not None}][-MAX_HISTORY:]
    out = {**current, "history": history}
    latest_message = current.get("message_id")
    if entry["status"] in ("queued", "sent"):
        out.update(status=entry["status"], at=entry["at"])
        if entry.get("message_id"):
            out["message_id"] = entry["message_id"]
    elif entry.get("message_id") == latest_message and current.get("status") not in FINAL:
        out.update(status=entry["status"], at=entry["at"])
    elif entry.get("message_id") == latest_message and entry["status"] in FINAL:
        out.update(status=entry["status"], at=entry["at"])
    return out
