"""E-invoicing settings and the certified platform (plateforme agréée, "PA", ex-PDP).

Since 2026-09-01 French B2B invoices travel through a certified platform (large
and mid-size sellers now, SMEs from 2027-09-01). When the platform is enabled
(``PUT /settings/einvoicing``):

- issuing marks the invoice (``einvoice.status = "pending"``) and queues its
  submission (outbox ``einvoice.submit``): the handler sends the Factur-X
  document and records the platform's receipt ("deposited");
- the platform's lifecycle statuses (deposited, issued, received, made
  available, in hand, approved, partially approved, disputed, suspended,
  completed, refused, payment sent, paid, rejected: the CDV codes 200-213 of
  the French specifications) come back through ``POST /einvoicing/statuses``
  (or a platform adapter's poller) and are stored on the invoice with their
  history; refused, rejected and disputed invoices get a review task;
- when a payment settles an invoice (the ``invoice.paid`` event), "paid"
  (encaissée, 212) is reported to the platform, once per event;
- the email to the customer is then a courtesy copy, and says so.

The settings also hold the defaults documents need: the operation category
(goods, services, mixed) when a draft does not say, and EUR exchange rates for
invoices in other currencies (VAT total in EUR, VAT directive art. 230).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from ..domain.auth import Actor
from ..domain.collections import Task
from ..domain.errors import Conflict, NotFound, ValidationError
from ..domain.fields import reject_unknown
from ..domain.ids import new_id
from ..domain.invoice import CREDIT_NOTE, OPERATION_CATEGORIES, TYPE_CODES, Invoice
from ..domain.money import Money, check_currency
from .common import diff, with_retries
from .ports import Clock, CommitConflict, Ledger, SettingsDoc, UnitOfWork

SETTINGS_NAME = "einvoicing"
SUBMIT_TOPIC = "einvoice.submit"
REPORT_TOPIC = "einvoice.report"
SUBMISSION_REF, STATUS_REF, PAID_REF = "einvsub", "einvstatus", "einvpaid"
PLATFORM_ACTOR = Actor.system("einvoicing")

# Lifecycle statuses of the French e-invoicing specifications (codes 200-213).
LIFECYCLE: dict[str, str] = {
    "deposited": "200", "issued": "201", "received": "202", "made_available": "203", "in_hand": "204",
    "approved": "205", "partially_approved": "206", "disputed": "207", "suspended": "208", "completed": "209",
    "refused": "210", "payment_sent": "211", "paid": "212", "rejected": "213",
}
BY_CODE = {code: name for name, code in LIFECYCLE.items()}
# Statuses someone in finance must look at.
NEEDS_REVIEW = ("rejected", "refused", "disputed", "suspended")
MAX_HISTORY = 50
PLATFORMS = ("local",)


# -- settings -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EInvoicingSettings:
    platform_enabled: bool = False
    platform: str = "local"
    default_operation_category: str = "services"
    # {"USD": {"rate": Decimal("0.9234"), "date": date(2026, 3, 1)}}: EUR for one unit, and its date
    exchange_rates: dict[str, dict[str, Any]] = field(default_factory=dict)
    send_on_issue: bool = True
    version: int = 0

    FIELDS = ("platform_enabled", "platform", "default_operation_category", "exchange_rates", "send_on_issue")

    def rate_for(self, currency: str) -> tuple[Decimal, date | None] | None:
        entry = self.exchange_rates.get(currency)
        return (entry["rate"], entry.get("date")) if entry else None

    def to_dict(self) -> dict[str, Any]:
        return {"platform_enabled": self.platform_enabled, "platform": self.platform,
                "default_operation_category": self.default_operation_category,
                "exchange_rates": {c: {"rate": str(v["rate"]),
                                       "date": v["date"].isoformat() if v.get("date") else None}
                                   for c, v in sorted(self.exchange_rates.items())},
                "send_on_issue": self.send_on_issue, "version": self.version}

    @classmethod
    def from_input(cls, data: Mapping[str, Any], version: int = 0) -> EInvoicingSettings:
        """Validate settings (raises ``ValidationError`` naming the field); missing fields take defaults."""
        reject_unknown(data, cls.FIELDS)
        out: dict[str, Any] = {}
        for key in ("platform_enabled", "send_on_issue"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise ValidationError(f"{key} must be true or false", field=key)
                out[key] = data[key]
        platform = data.get("platform", "local")
        if platform not in PLATFORMS:
            raise ValidationError(f"platform must be one of {', '.join(PLATFORMS)} (the local fake; a certified "
                                  "platform's adapter plugs in behind the same port)", field="platform")
        out["platform"] = platform
        category = data.get("default_operation_category", "services")
        if category not in OPERATION_CATEGORIES:
            raise ValidationError("default_operation_category must be goods, services or mixed",
                                  field="default_operation_category")
        out["default_operation_category"] = category
        rates = data.get("exchange_rates") or {}
        if not isinstance(rates, Mapping):
            raise ValidationError("exchange_rates must be an object like {\"USD\": {\"rate\": \"0.9234\", "
                                  "\"date\": \"2026-03-01\"}}", field="exchange_rates")
        parsed: dict[str, dict[str, Any]] = {}
        for currency, entry in rates.items():
            name = f"exchange_rates.{currency}"
            code = check_currency(str(currency))
            if code == "EUR":
                raise ValidationError("exchange_rates are for currencies other than EUR", field=name)
            if not isinstance(entry, Mapping) or not isinstance(entry.get("rate"), str):
                raise ValidationError(f"{name} must be {{\"rate\": \"0.9234\", \"date\": \"2026-03-01\"}} (the rate "
                                      "as a decimal string: EUR for one unit)", field=name)
            reject_unknown(entry, ("rate", "date"), name + ".")
            try:
                rate = Decimal(entry["rate"])
            except InvalidOperation:
                raise ValidationError(f"{name}.rate {entry['rate']!r} is not a decimal number",
                                      field=name + ".rate") from None
            if not rate.is_finite() or rate <= 0 or rate.as_tuple().exponent < -6:  # type: ignore[operator]
                raise ValidationError(f"{name}.rate must be greater than 0 with at most 6 decimals",
                                      field=name + ".rate")
            when = None
            if entry.get("date") is not None:
                try:
                    when = date.fromisoformat(str(entry["date"]))
                except ValueError:
                    raise ValidationError(f"{name}.date must be an ISO date such as 2026-03-01",
                                          field=name + ".date") from None
            parsed[code] = {"rate": rate, "date": when}
        out["exchange_rates"] = parsed
        return cls(version=version, **out)


class EInvoicingSettingsService:
    """The ``einvoicing`` settings document, cached ``ttl_s`` seconds per process (read on every issue)."""

    def __init__(self, ledger: Ledger, clock: Clock, ttl_s: float = 30.0) -> None:
        self._ledger = ledger
        self._clock = clock
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._cached: tuple[float, EInvoicingSettings] | None = None

    def get(self) -> EInvoicingSettings:
        with self._lock:
            cached = self._cached
        if cached and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        doc = self._ledger.get_settings(SETTINGS_NAME)
        value = EInvoicingSettings.from_input(doc.data, doc.version) if doc else EInvoicingSettings()
        with self._lock:
            self._cached = (time.monotonic(), value)
        return value

    def put(self, data: Mapping[str, Any], actor: Actor, expected_version: int | None = None) -> EInvoicingSettings:
        value = EInvoicingSettings.from_input(data)
        now = self._clock.now()
        current = self._ledger.get_settings(SETTINGS_NAME)
        if expected_version is not None and (current.version if current else 0) != expected_version:
            raise Conflict(f"the e-invoicing settings are at version {current.version if current else 0}, not "
                           f"{expected_version}: read them again and reapply your change", code="version_mismatch")
        stored = value.to_dict()
        stored.pop("version")
        uow = UnitOfWork(actor=actor, now=now)
        doc = SettingsDoc(name=SETTINGS_NAME, data=stored, updated_at=now, version=current.version if current else 0)
        saved = uow.save(doc) if current else uow.create(doc)
        before, after = diff(current.data if current else None, stored)
        uow.audit("settings.einvoicing.update", "settings", SETTINGS_NAME, before, after)
        self._ledger.commit(uow)
        value = replace(value, version=saved.version)
        with self._lock:
            self._cached = (time.monotonic(), value)
        return value


# -- the platform port ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PlatformSubmission:
    """An issued invoice or credit note handed to the platform."""

    invoice_id: str
    number: str
    type_code: str            # 380, 381, 386
    issue_date: date
    seller_siren: str | None
    buyer_siren: str | None
    buyer_vat_number: str | None
    xml: bytes                # the CII XML (Factur-X EN 16931)
    pdf: bytes                # the Factur-X PDF (its readable form)
    idempotency_key: str      # the same invoice is deposited once, however often it is sent


@dataclass(frozen=True)
class PlatformReceipt:
    submission_id: str
    status: str               # a LIFECYCLE name, "deposited" on success
    at: datetime
    reason: str | None = None


class EInvoicePlatform(ABC):
    """A certified e-invoicing platform. Calls are idempotent on their key; failures raise
    (the outbox retries, then dead-letters)."""

    name: str = "platform"

    @abstractmethod
    def submit(self, submission: PlatformSubmission) -> PlatformReceipt:
        """Deposit an issued document; a repeated key returns the first receipt."""

    @abstractmethod
    def report_status(self, submission_id: str, status: str, *, amount: Money | None, on: date | None,
                      idempotency_key: str) -> None:
        """Report a status the seller knows first (``paid``: encaissée, with the amount and date)."""


# -- the use cases ------------------------------------------------------------------------------

def _status_name(value: Any) -> str:
    text = str(value or "").strip().lower()
    if text in LIFECYCLE:
        return text
    if text in BY_CODE:
        return BY_CODE[text]
    raise ValidationError(f"status must be one of {', '.join(LIFECYCLE)} (or their codes 200-213)", field="status")


def _append(einvoice: Mapping[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """Add a history entry; the current status is the latest by date (events may arrive out of order)."""
    history = [*einvoice.get("history", []), entry][-MAX_HISTORY:]
    latest = max(history, key=lambda e: (e["at"], e.get("seq", 0)))
    return {**einvoice, "history": history, "status": latest["status"], "status_code": LIFECYCLE[latest["status"]],
            "updated_at": entry["at"]}


class EInvoicingService:
    """Submission to the platform, incoming lifecycle statuses, "paid" reports."""

    def __init__(self, ledger: Ledger, clock: Clock, settings: EInvoicingSettingsService,
                 platform: Callable[[], EInvoicePlatform], documents: Any, timezone: Callable[[], str]) -> None:
        self._ledger = ledger
        self._clock = clock
        self._settings = settings
        self._platform = platform       # built lazily
        self._documents = documents     # DocumentService (the files to submit)
        self._timezone = timezone

    # -- issuing ----------------------------------------------------------------------------------
    def issue_hook(self, invoice: Invoice, customer: Any, seller: Any, uow: UnitOfWork) -> Invoice:
        """Run while issuing: when the platform is enabled, mark the invoice and queue its submission."""
        settings = self._settings.get()
        if not settings.platform_enabled:
            return invoice
        uow.emit(SUBMIT_TOPIC, {"invoice_id": invoice.id})
        return replace(invoice, einvoice={"platform": settings.platform, "status": "pending", "status_code": None,
                                          "submission_id": None, "history": [], "updated_at": uow.now.isoformat()})

    def submit_handler(self, payload: Mapping[str, Any]) -> None:
        """Outbox ``einvoice.submit``: deposit the document once and record the receipt."""
        invoice = self._ledger.get_invoice(payload["invoice_id"])
        state = invoice.einvoice or {}
        if state.get("submission_id"):
            return  # already deposited (a repeated message)
        pdf, xml = self._documents.files(invoice)
        buyer, seller = invoice.buyer or {}, invoice.seller or {}
        receipt = self._platform().submit(PlatformSubmission(
            invoice_id=invoice.id, number=invoice.number or "", type_code=TYPE_CODES[invoice.kind],
            issue_date=invoice.issue_date or self._clock.now().date(), seller_siren=seller.get("siren"),
            buyer_siren=buyer.get("siren"), buyer_vat_number=buyer.get("vat_number"), xml=xml, pdf=pdf,
            idempotency_key=invoice.id))

        def record() -> None:
            current = self._ledger.get_invoice(invoice.id)
            uow = UnitOfWork(actor=PLATFORM_ACTOR, now=self._clock.now())
            einvoice = {**(current.einvoice or {"platform": self._platform().name, "history": []}),
                        "submission_id": receipt.submission_id}
            einvoice = _append(einvoice, {"status": receipt.status, "code": LIFECYCLE[receipt.status],
                                          "at": receipt.at.isoformat(), "reason": receipt.reason, "source": "platform"})
            uow.save_invoice(current, replace(current, einvoice=einvoice, updated_at=uow.now),
                             action="invoice.einvoice_submitted")
            uow.put_ref(SUBMISSION_REF, receipt.submission_id, invoice.id, must_not_exist=False)
            if receipt.status in NEEDS_REVIEW:
                self._review_task(uow, current, receipt.status, receipt.reason)
            self._ledger.commit(uow)

        with_retries(record)

    # -- incoming statuses -------------------------------------------------------------------------
    def receive_status(self, data: Mapping[str, Any], actor: Actor) -> Invoice:
        """A lifecycle status from the platform: ``{submission_id | invoice_id, status, at?, reason?, event_id?}``.

        Applied once per ``event_id`` (a repeat returns the invoice unchanged); statuses may arrive out of
        order: the current one is the latest by ``at``. Refused, rejected, disputed and suspended invoices
        get a review task. Raises ``NotFound`` for an unknown submission, ``ValidationError`` for bad input.
        """
        reject_unknown(data, ("submission_id", "invoice_id", "status", "at", "reason", "event_id"))
        status = _status_name(data.get("status"))
        invoice_id = data.get("invoice_id")
        submission_id = data.get("submission_id")
        if submission_id is not None:
            ref = self._ledger.get_ref(SUBMISSION_REF, str(submission_id))
            if ref is None:
                raise NotFound(f"no invoice was submitted as {submission_id}", code="submission_not_found")
            if invoice_id is not None and invoice_id != ref.target:
                raise ValidationError("invoice_id and submission_id name different invoices", field="invoice_id")
            invoice_id = ref.target
        if not isinstance(invoice_id, str) or not invoice_id:
            raise ValidationError("give the platform's submission_id (or our invoice_id)", field="submission_id")
        at = self._clock.now()
        if data.get("at") is not None:
            try:
                at = datetime.fromisoformat(str(data["at"]).replace("Z", "+00:00"))
            except ValueError:
                raise ValidationError("at must be an ISO 8601 date-time such as 2026-03-02T10:00:00Z",
                                      field="at") from None
            if at.tzinfo is None:
                raise ValidationError("at must carry a time zone (e.g. Z or +01:00)", field="at")
        reason = data.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
            raise ValidationError("reason must be a string of at most 1000 characters", field="reason")
        event_id = data.get("event_id")
        if event_id is not None and (not isinstance(event_id, str) or not 0 < len(event_id) <= 200):
            raise ValidationError("event_id must be a string of at most 200 characters", field="event_id")

        def run() -> Invoice:
            invoice = self._ledger.get_invoice(invoice_id)
            if invoice.einvoice is None:
                raise Conflict(f"invoice {invoice.number or invoice.id} was not sent through the e-invoicing "
                               "platform", code="not_submitted")
            if event_id and self._ledger.get_ref(STATUS_REF, event_id) is not None:
                return invoice
            entry = {"status": status, "code": LIFECYCLE[status], "at": at.isoformat(), "reason": reason,
                     "source": "platform", "event_id": event_id}
            if any(e.get("status") == status and e.get("at") == entry["at"] for e in invoice.einvoice.get("history", [])):
                return invoice
            now = self._clock.now()
            uow = UnitOfWork(actor=actor, now=now)
            saved = uow.save_invoice(invoice, replace(invoice, einvoice=_append(invoice.einvoice, entry),
                                                      updated_at=now), action="invoice.einvoice_status")
            if event_id:
                uow.put_ref(STATUS_REF, event_id, invoice.id)
            if status in NEEDS_REVIEW:
                self._review_task(uow, invoice, status, reason)
            self._ledger.commit(uow)
            return saved

        try:
            return with_retries(run)
        except CommitConflict as exc:
            if any(f == f"ref:{STATUS_REF}" for f in exc.failed):
                return self._ledger.get_invoice(invoice_id)  # the same event, applied concurrently
            raise

    def _review_task(self, uow: UnitOfWork, invoice: Invoice, status: str, reason: str | None) -> None:
        """A task for finance: the platform refused, rejected, suspended or reports a dispute."""
        today = self._clock.today(self._timezone())
        uow.create(Task(id=new_id("tsk"), kind="einvoice_review", customer_id=invoice.customer_id,
                        title=f"The e-invoicing platform reports {invoice.number} as {status}"
                              + (f": {reason}" if reason else ""),
                        due_on=today + timedelta(days=1), created_at=uow.now, updated_at=uow.now,
                        invoice_ids=(invoice.id,), details={"status": status, "code": LIFECYCLE[status]}))

    # -- "paid" (encaissée) -------------------------------------------------------------------------
    def on_event(self, event: Mapping[str, Any]) -> None:
        """Business event hook (outbox ``event``): an ``invoice.paid`` of a submitted invoice queues
        the "paid" report, once per event."""
        if event.get("type") != "invoice.paid":
            return
        data = event.get("data") or {}
        invoice_id = data.get("invoice_id")
        if not invoice_id or data.get("kind") == CREDIT_NOTE:
            return
        invoice = self._ledger.get_invoice(invoice_id)
        if invoice.einvoice is None:
            return
        uow = UnitOfWork(actor=PLATFORM_ACTOR, now=self._clock.now())
        uow.put_ref(PAID_REF, str(event["id"]), invoice.id)
        uow.emit(REPORT_TOPIC, {"invoice_id": invoice.id, "status": "paid", "event_id": event["id"],
                                "occurred_at": event.get("occurred_at")})
        try:
            self._ledger.commit(uow)
        except CommitConflict as exc:
            if f"ref:{PAID_REF}" not in exc.failed:
                raise  # pragma: no cover - nothing else in this unit of work can conflict

    def report_handler(self, payload: Mapping[str, Any]) -> None:
        """Outbox ``einvoice.report``: tell the platform the invoice was paid (idempotent on the event)."""
        invoice = self._ledger.get_invoice(payload["invoice_id"])
        state = invoice.einvoice or {}
        if not state.get("submission_id"):
            raise RuntimeError(f"invoice {invoice.id} is not deposited on the platform yet: retry later")
        if any(e.get("event_id") == payload["event_id"] and e.get("source") == "seller"
               for e in state.get("history", [])):
            return
        paid = invoice.money(invoice.amount_paid - invoice.amount_reversed)
        when = invoice.paid_at or self._clock.now()
        from zoneinfo import ZoneInfo

        on = when.astimezone(ZoneInfo(self._timezone())).date()
        self._platform().report_status(state["submission_id"], "paid", amount=paid, on=on,
                                       idempotency_key=str(payload["event_id"]))

        def record() -> None:
            current = self._ledger.get_invoice(invoice.id)
            uow = UnitOfWork(actor=PLATFORM_ACTOR, now=self._clock.now())
            entry = {"status": "paid", "code": LIFECYCLE["paid"], "at": uow.now.isoformat(), "reason": None,
                     "source": "seller", "event_id": payload["event_id"], "amount": str(paid), "on": on.isoformat()}
            uow.save_invoice(current, replace(current, einvoice=_append(current.einvoice or {}, entry),
                                              updated_at=uow.now), action="invoice.einvoice_paid_reported")
            self._ledger.commit(uow)

        with_retries(record)
