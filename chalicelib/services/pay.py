"""The customer's side: the hosted invoice page (/pay/{token}) and the portal (/portal/{token}).

Tokens are random (192 bits), never the invoice id. An invoice's pay token is
created when it is issued, in the issue transaction, so the PDF and the email
carry a link that works from the first second. Rotating a token keeps the old
one as "rotated" (the page answers 410 and says where to find the new link);
revoking makes it unknown (404, revealing nothing).

The Pay button uses the invoice's provider payment link for the amount to pay
now (discounted inside the escompte window); a link is replaced, never edited,
when that amount changes, and deactivated (through the outbox) as soon as the
invoice is no longer open or its amount due changes by any path (payments,
bank cash application, credit notes, write-offs, refunds, chargebacks): see
``UnitOfWork.save_invoice``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo
from typing import Any

from ..domain.auth import Actor
from ..domain.collections import Dispute, Task
from ..domain.errors import Conflict, DomainError, Gone, NotFound, ValidationError  # noqa: F401 - Gone re-exported
from ..domain.ids import new_id
from ..domain.invoice import CREDIT_NOTE, OPEN, Invoice
from ..domain.money import Money
from ..domain.payment import MAX_ALLOCATIONS
from ..domain.parties import Customer, SellerProfile
from .common import IdempotencyRequest, idempotent, with_retries
from .events import envelope
from .ports import DEACTIVATE_LINK_TOPIC, Clock, InvoiceQuery, Ledger, PaymentGateway, PaymentQuery, UnitOfWork
from .settings import SettingsService

PAY_TOKEN, PORTAL_TOKEN = "paytoken", "portaltoken"
SEPA_DEBIT_LIMIT = Money(1_000_000, "EUR")  # Stripe's default per-debit limit: 10,000 EUR
CUSTOMER = Actor.system("customer")


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class PayView:
    """What the hosted page shows."""

    invoice: Invoice
    customer: Customer
    seller: SellerProfile
    today: date
    amount_to_pay: Money
    discount: Money | None
    discount_until: date | None
    can_pay: bool
    can_set_up_debit: bool
    debit_scheduled: bool


def issue_hook(invoice: Invoice, customer: Customer, seller: SellerProfile, uow: UnitOfWork) -> Invoice:
    """Run while issuing: give the invoice its pay token; schedule its SEPA debit if the
    customer has an active mandate (the invoice email then announces the debit)."""
    if invoice.kind == CREDIT_NOTE:
        return invoice  # a credit note is money we owe: no pay link, no debit
    token = new_token()
    uow.put_ref(PAY_TOKEN, token, invoice.id, {"status": "active"})
    if customer.mandate and customer.mandate.active and invoice.currency == "EUR" \
            and invoice.amount_due <= SEPA_DEBIT_LIMIT and invoice.amount_due.is_positive:
        invoice = replace(invoice, collection_status="scheduled")
    return replace(invoice, pay_token=token)


class PayService:
    def __init__(self, ledger: Ledger, clock: Clock, settings: SettingsService, gateway: Any,
                 public_base_url: str) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self._gateway = gateway  # a callable returning the PaymentGateway (built lazily)
        self._base = public_base_url

    def gateway(self) -> PaymentGateway:
        return self._gateway()

    # -- tokens ---------------------------------------------------------------------------------
    def _resolve(self, kind: str, token: str) -> str:
        if not token or len(token) > 100:
            raise NotFound("not found")
        ref = self._ledger.get_ref(kind, token)
        if ref is None or ref.data.get("status") == "revoked":
            raise NotFound("not found")
        if ref.data.get("status") == "rotated":
            raise Gone("this link was replaced by a newer one: use the link in the latest email about this "
                       "invoice, or your customer portal")
        return ref.target

    def invoice_for(self, token: str) -> Invoice:
        return self._ledger.get_invoice(self._resolve(PAY_TOKEN, token))

    def pay_url(self, invoice: Invoice) -> str | None:
        return f"{self._base}/pay/{invoice.pay_token}" if invoice.pay_token else None

    def portal_url(self, customer: Customer) -> str | None:
        return f"{self._base}/portal/{customer.portal_token}" if customer.portal_token else None

    def rotate(self, invoice_id: str, actor: Actor, *, revoke: bool = False) -> Invoice:
        """Replace an invoice's pay link (the old one answers 410), or revoke it (404)."""

        def run() -> Invoice:
            invoice = self._ledger.get_invoice(invoice_id)
            if invoice.pay_token is None:
                raise Conflict(f"invoice {invoice_id} has no pay link (it is {invoice.status})")
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            token = new_token()
            uow.put_ref(PAY_TOKEN, invoice.pay_token, invoice.id,
                        {"status": "revoked" if revoke else "rotated"}, must_not_exist=False)
            uow.put_ref(PAY_TOKEN, token, invoice.id, {"status": "active"})
            saved = uow.save_invoice(invoice, replace(invoice, pay_token=token, updated_at=uow.now))
            uow.audit("invoice.pay_link_" + ("revoked" if revoke else "rotated"), "invoice", invoice.id,
                      {"pay_link": "previous"}, {"pay_link": "new"})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    def portal_token(self, customer_id: str, actor: Actor, *, rotate: bool = False) -> Customer:
        """The customer's portal token, created on first use (or replaced)."""

        def run() -> Customer:
            customer = self._ledger.get_customer(customer_id)
            if customer.portal_token and not rotate:
                return customer
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            token = new_token()
            if customer.portal_token:
                uow.put_ref(PORTAL_TOKEN, customer.portal_token, customer.id, {"status": "rotated"},
                            must_not_exist=False)
            uow.put_ref(PORTAL_TOKEN, token, customer.id, {"status": "active"})
            saved = uow.save(replace(customer, portal_token=token, updated_at=uow.now))
            uow.audit("customer.portal_link", "customer", customer.id, None, {"portal_link": "new"})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    # -- the hosted page ------------------------------------------------------------------------
    def view(self, token: str) -> PayView:
        invoice = self.invoice_for(token)
        customer = self._ledger.get_customer(invoice.customer_id)
        seller = self._settings.seller()
        today = self._clock.today(seller.timezone)
        discount = None
        until = None
        if seller.early_payment_discount and invoice.issue_date:
            discount = invoice.early_payment_discount(seller.early_payment_discount.rate,
                                                      seller.early_payment_discount.days, today)
            until = invoice.issue_date + timedelta(days=seller.early_payment_discount.days) if discount else None
        amount = invoice.amount_due - discount if discount else invoice.amount_due
        can_pay = invoice.status == OPEN and amount.is_positive and invoice.collection_status != "processing"
        mandate_ok = bool(customer.mandate and customer.mandate.active)
        return PayView(invoice=invoice, customer=customer, seller=seller, today=today, amount_to_pay=amount,
                       discount=discount, discount_until=until, can_pay=can_pay,
                       can_set_up_debit=invoice.currency == "EUR" and not mandate_ok,
                       debit_scheduled=invoice.collection_status in ("scheduled", "processing"))

    def checkout_url(self, token: str) -> str:
        """Where the Pay button sends the payer: the invoice's payment link for today's amount."""
        view = self.view(token)
        invoice = view.invoice
        if not view.can_pay:
            raise Conflict(f"invoice {invoice.number} has nothing to pay now ({invoice.status})",
                           code="nothing_to_pay")
        amount = view.amount_to_pay
        link = invoice.payment_link
        if link and link.get("amount") == amount.amount and link.get("currency") == amount.currency:
            return str(link["url"])
        metadata = {"invoice_id": invoice.id, "customer_id": invoice.customer_id, "invoice_number": invoice.number or ""}
        key = f"plink-{invoice.id}-{amount.amount}-{invoice.version}"
        created = self.gateway().create_payment_link(
            invoice=invoice, amount=amount, description=f"Facture {invoice.number}", metadata=metadata,
            idempotency_key=key, return_url=f"{self._base}/pay/{token}?done=pay")

        def save() -> None:
            current = self._ledger.get_invoice(invoice.id)
            uow = UnitOfWork(actor=CUSTOMER, now=self._clock.now())
            uow.save_invoice(current, replace(current, payment_link={
                "id": created.id, "url": created.url, "amount": amount.amount, "currency": amount.currency},
                updated_at=uow.now))
            if current.payment_link and current.payment_link.get("id") != created.id:
                uow.deactivate_payment_link(str(current.payment_link["id"]))
            if view.discount is not None and view.discount_until is not None:
                # a discounted link is for the escompte window only: retired when it closes (the seller's
                # midnight), so the old URL cannot settle the invoice at the discounted amount afterwards
                closes = datetime.combine(view.discount_until + timedelta(days=1), time(0),
                                          tzinfo=ZoneInfo(view.seller.timezone))
                uow.emit(DEACTIVATE_LINK_TOPIC, {"link_ids": [created.id]}, not_before=closes)
            self._ledger.commit(uow)

        with_retries(save)
        return created.url

    def _checkout_session(self, customer: Customer, *, mode: str, amount: Money | None, description: str,
                          metadata: dict[str, str], return_path: str, key: str, done: str) -> str:
        gateway = self.gateway()
        provider_customer = customer.stripe_customer_id or gateway.ensure_customer(customer)
        if not customer.stripe_customer_id:
            def remember() -> None:
                current = self._ledger.get_customer(customer.id)
                if current.stripe_customer_id:
                    return
                uow = UnitOfWork(actor=CUSTOMER, now=self._clock.now())
                uow.save(replace(current, stripe_customer_id=provider_customer, updated_at=uow.now))
                self._ledger.commit(uow)

            with_retries(remember)
        now = self._clock.now()
        session = gateway.create_checkout_session(
            mode=mode, provider_customer=provider_customer, amount=amount, description=description,
            metadata=metadata, success_url=f"{self._base}{return_path}?done={done}",
            cancel_url=f"{self._base}{return_path}", expires_at=now + timedelta(hours=23), idempotency_key=key,
            payment_method_types=("sepa_debit",) if mode == "setup" else (
                ("card", "sepa_debit") if amount and amount.currency == "EUR" else ("card",)))
        return session.url

    def mandate_url(self, token: str, *, portal: bool = False) -> str:
        """Checkout in setup mode: the payer signs a SEPA mandate; later invoices are debited."""
        if portal:
            customer = self._ledger.get_customer(self._resolve(PORTAL_TOKEN, token))
            path = f"/portal/{token}"
        else:
            invoice = self.invoice_for(token)
            customer = self._ledger.get_customer(invoice.customer_id)
            path = f"/pay/{token}"
        bucket = self._clock.now().strftime("%Y%m%d%H")
        return self._checkout_session(customer, mode="setup", amount=None, description="Mandat SEPA",
                                      metadata={"customer_id": customer.id, "purpose": "sepa_mandate"},
                                      return_path=path, key=f"setup-{customer.id}-{bucket}", done="mandate")

    def contest(self, token: str, reason: Any, message: Any, *, portal: bool = False,
                invoice_id: str | None = None) -> Dispute:
        """The customer contests an invoice from its page (or the portal): a dispute record
        that pauses dunning on that invoice, and a review task for finance."""
        if portal:
            customer_id = self._resolve(PORTAL_TOKEN, token)
            invoice = self._ledger.get_invoice(invoice_id or "")
            if invoice.customer_id != customer_id:
                raise NotFound("not found")
        else:
            invoice = self.invoice_for(token)
        return self.open_dispute(invoice.id, reason, message, CUSTOMER, source="portal" if portal else "hosted_page")

    def open_dispute(self, invoice_id: str, reason: Any, message: Any, actor: Actor, *,
                     source: str = "api", idempotency: IdempotencyRequest | None = None) -> Dispute:
        """Open a dispute on an open invoice; raises Conflict if it is not open or already contested.
        With ``idempotency``, a repeat of the same request returns the dispute it opened."""

        def run() -> Dispute:
            invoice = self._ledger.get_invoice(invoice_id)
            if invoice.status != OPEN:
                raise Conflict(f"invoice {invoice.number or invoice.id} is {invoice.status}: nothing to contest",
                               code="not_open")
            if invoice.dispute_status == "open":
                raise Conflict(f"invoice {invoice.number} is already contested; we will come back to you",
                               code="already_disputed")
            now = self._clock.now()
            dispute = Dispute.open(new_id("dsp"), invoice_id=invoice.id, customer_id=invoice.customer_id,
                                   reason=reason, message=message, source=source, now=now)
            uow = UnitOfWork(actor=actor, now=now)
            dispute = uow.create(dispute)
            uow.save_invoice(invoice, replace(invoice, dispute_status="open", updated_at=now),
                             action="invoice.disputed")
            uow.audit("dispute.open", "dispute", dispute.id, None, dispute.to_dict())
            uow.create(Task(id=new_id("tsk"), kind="dispute_review", customer_id=invoice.customer_id,
                            title=f"Review the dispute on {invoice.number} ({dispute.reason})",
                            due_on=self._clock.today(self._settings.timezone()) + timedelta(days=2),
                            created_at=now, updated_at=now, invoice_ids=(invoice.id,),
                            details={"dispute_id": dispute.id}))
            uow.emit("event", envelope("dispute.opened", {
                "dispute_id": dispute.id, "invoice_id": invoice.id, "customer_id": invoice.customer_id,
                "reason": dispute.reason, "amount_due": str(invoice.amount_due), "currency": invoice.currency}, now))
            if idempotency:
                uow.claim_idempotency(idempotency.record("dispute", dispute.id, now))
            self._ledger.commit(uow)
            return dispute

        dispute, _ = idempotent(self._ledger, idempotency, "dispute", run, self._ledger.get_dispute)
        return dispute

    # -- portal ---------------------------------------------------------------------------------
    def portal(self, token: str) -> dict[str, Any]:
        customer = self._ledger.get_customer(self._resolve(PORTAL_TOKEN, token))
        seller = self._settings.seller()
        today = self._clock.today(seller.timezone)
        invoices = self._ledger.query_invoices(InvoiceQuery(customer_id=customer.id, limit=200), today).items
        invoices = [i for i in invoices if i.status != "draft"]
        payments = self._ledger.query_payments(PaymentQuery(customer_id=customer.id, limit=200)).items
        disputes = self._ledger.list_disputes(customer_id=customer.id, status="open").items
        return {"customer": customer, "seller": seller, "today": today, "invoices": invoices,
                "payments": payments, "disputes": disputes,
                "open": [i for i in invoices if i.status == OPEN and i.kind != CREDIT_NOTE
                         and i.amount_due.is_positive]}

    def portal_checkout(self, token: str, invoice_ids: list[str]) -> str:
        """Pay several open invoices at once: one checkout session for a stored batch."""
        customer = self._ledger.get_customer(self._resolve(PORTAL_TOKEN, token))
        if not invoice_ids:
            raise ValidationError("choose at least one invoice to pay", field="invoice_ids")
        if len(invoice_ids) > MAX_ALLOCATIONS:
            raise ValidationError(f"pay at most {MAX_ALLOCATIONS} invoices at once", field="invoice_ids")
        invoices = self._ledger.get_invoices(invoice_ids)
        chosen = [invoices[i] for i in invoice_ids if i in invoices]
        if len(chosen) != len(set(invoice_ids)) or any(
                i.customer_id != customer.id or i.status != OPEN for i in chosen):
            raise ValidationError("some of these invoices are not open invoices of yours", field="invoice_ids")
        currencies = {i.currency for i in chosen}
        if len(currencies) != 1:
            raise ValidationError("invoices in different currencies are paid separately", field="invoice_ids")
        total = Money.zero(currencies.pop())
        for invoice in chosen:
            total = total + invoice.amount_due
        digest = hashlib.sha256("|".join(sorted(f"{i.id}:{i.amount_due.amount}" for i in chosen)).encode())
        batch_id = "bat_" + digest.hexdigest()[:24]
        if self._ledger.get_ref("batch", batch_id) is None:
            uow = UnitOfWork(actor=CUSTOMER, now=self._clock.now())
            uow.put_ref("batch", batch_id, customer.id, {"invoice_ids": [i.id for i in chosen]},
                        must_not_exist=False)
            self._ledger.commit(uow)
        numbers = ", ".join(i.number or i.id for i in chosen)
        return self._checkout_session(customer, mode="payment", amount=total, description=f"Factures {numbers}"[:250],
                                      metadata={"batch_id": batch_id, "customer_id": customer.id},
                                      return_path=f"/portal/{token}",
                                      key=f"batch-{batch_id}-{self._clock.now().strftime('%Y%m%d%H')}", done="pay")

    def request_copy(self, token: str, invoice_id: str) -> Invoice:
        customer_id = self._resolve(PORTAL_TOKEN, token)
        invoice = self._ledger.get_invoice(invoice_id)
        if invoice.customer_id != customer_id or invoice.status == "draft":
            raise NotFound("not found")
        uow = UnitOfWork(actor=CUSTOMER, now=self._clock.now())
        uow.emit("mail.invoice_copy", {"invoice_id": invoice.id})
        uow.audit("invoice.copy_requested", "invoice", invoice.id, None, {"by": "customer portal"})
        self._ledger.commit(uow)
        return invoice

    # -- refunds --------------------------------------------------------------------------------
    def refund(self, invoice_id: str, amount_raw: Any, actor: Actor,
               idempotency: IdempotencyRequest | None = None) -> dict[str, Any]:
        """Refund card/SEPA money paid on an invoice through the provider; the ledger moves
        when the provider confirms (charge.refunded webhook). With ``idempotency``, a repeat of the
        same request answers what the first one did and asks the provider for nothing."""
        result, _ = idempotent(self._ledger, idempotency, "refund",
                               lambda: self._refund(invoice_id, amount_raw, actor, idempotency), self._refund_requested)
        return result

    def _refund_requested(self, refund_id: str) -> dict[str, Any]:
        ref = self._ledger.get_ref("refund", refund_id)
        if ref is None:  # pragma: no cover - written with the idempotency key it answers
            raise NotFound(f"refund {refund_id} is not recorded", code="refund_not_found")
        return dict(ref.data)

    def _refund(self, invoice_id: str, amount_raw: Any, actor: Actor,
                idempotency: IdempotencyRequest | None) -> dict[str, Any]:
        invoice = self._ledger.get_invoice(invoice_id)
        paid = invoice.amount_paid - invoice.amount_reversed
        amount = Money.parse(amount_raw if amount_raw is not None else str(invoice.money(paid)), invoice.currency)
        if not amount.is_positive or amount.amount > paid:
            raise ValidationError(f"refund must be between 0.01 and the {invoice.money(paid)} {invoice.currency} "
                                  "paid on this invoice", field="amount")
        payments = self._ledger.query_payments(PaymentQuery(customer_id=invoice.customer_id, limit=200)).items
        candidates = [p for p in payments if p.source == "stripe" and p.provider_ref and any(
            a.invoice_id == invoice_id for a in p.allocations)]
        if not candidates:
            raise Conflict("no card or SEPA payment on this invoice can be refunded through the provider: "
                           "refund a bank transfer from your bank", code="not_refundable")

        def covers(p: Any) -> int:
            """What ``p`` can refund of the money it brought to this invoice (a batch payment also paid others)."""
            on_invoice = sum(a.amount.amount for a in p.allocations if a.invoice_id == invoice_id)
            return min(on_invoice, p.amount.amount - p.refunded)

        payment = next((p for p in candidates if covers(p) >= amount.amount), None)
        if payment is None:
            best = max(candidates, key=covers)
            raise ValidationError(f"no single card or SEPA payment brought {amount} to this invoice: at most "
                                  f"{invoice.money(max(covers(best), 0))} can be refunded at once (payment {best.id}); "
                                  "refund in several parts", field="amount")
        key = f"refund-{payment.id}-{payment.refunded}-{amount.amount}"
        refund_id = self.gateway().refund(payment_intent=str(payment.provider_ref), amount=amount,
                                          metadata={"invoice_id": invoice_id}, idempotency_key=key)
        uow = UnitOfWork(actor=actor, now=self._clock.now())
        uow.audit("invoice.refund_requested", "invoice", invoice_id, None,
                  {"refund_id": refund_id, "amount": str(amount), "payment_id": payment.id})
        result = {"object": "refund", "id": refund_id, "invoice_id": invoice_id, "payment_id": payment.id,
                  "amount": str(amount), "currency": invoice.currency, "status": "pending",
                  "note": "the invoice reopens when the provider confirms the refund"}
        if idempotency:
            # what a repeat of this request answers (the provider deduplicates the refund on its own key)
            uow.put_ref("refund", refund_id, invoice_id, result, must_not_exist=False)
            uow.claim_idempotency(idempotency.record("refund", refund_id, uow.now))
        self._ledger.commit(uow)
        return result


def deactivate_link_handler(gateway: Any) -> Any:
    """Outbox handler (``stripe.deactivate_link``): deactivate superseded payment links, or those of
    invoices paid, credited, written off... (``UnitOfWork.deactivate_payment_link``). Deactivating
    twice is harmless, so a retried message (or a partly done list) simply runs again."""
    def handle(payload: dict[str, Any]) -> None:
        ids = list(payload.get("link_ids") or ()) or [payload["link_id"]]  # "link_id": messages queued before
        for link_id in ids:
            gateway().deactivate_payment_link(str(link_id))
    return handle
