"""The dispute workflow after a customer contests an invoice (opened by ``PayService.open_dispute``).

- **assign**: who looks at it (timeline entry, audit);
- **accept**: the customer is right: a credit note (``CreditNoteService``: the whole balance, or the
  ``lines`` given) is issued and applied to the invoice, then the dispute is closed as accepted;
  with ``credit_note: false`` the dispute is closed without one (settled otherwise);
- **reject**: the invoice stands: the dispute is closed as rejected and, in the same transaction, the
  invoice's ``dispute_status`` becomes ``rejected``, which wakes its dunning record: the ladder
  resumes where it stood (steps missed meanwhile are caught up without resending older ones).

An open dispute pauses dunning on its invoice only (the other invoices of the customer go on).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping

from ..domain.auth import Actor
from ..domain.collections import DISPUTE_ACCEPTED, DISPUTE_OPEN, DISPUTE_REJECTED, Dispute
from ..domain.errors import Conflict, ValidationError
from .common import with_retries
from .events import envelope
from .ports import Clock, Ledger, UnitOfWork


def _text(value: Any, name: str, *, required: bool, max_len: int = 2000) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{name} is required (at most {max_len} characters)", field=name)
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise ValidationError(f"{name} must be a text of at most {max_len} characters", field=name)
    return value.strip()


class DisputeWorkflow:
    def __init__(self, ledger: Ledger, clock: Clock, credit_notes: Callable[[], Any] | None = None) -> None:
        self._ledger = ledger
        self._clock = clock
        self._credit_notes = credit_notes

    def assign(self, dispute_id: str, data: Mapping[str, Any], actor: Actor) -> Dispute:
        assignee = _text(data.get("assignee"), "assignee", required=True, max_len=200)

        def run() -> Dispute:
            dispute = self._ledger.get_dispute(dispute_id)
            if dispute.status != DISPUTE_OPEN:
                raise Conflict(f"dispute {dispute_id} is {dispute.status}: only open disputes are assigned",
                               code="not_open")
            uow = UnitOfWork(actor=actor, now=self._clock.now())
            saved = uow.save(replace(dispute, assignee=assignee, updated_at=uow.now))
            uow.audit("dispute.assign", "dispute", dispute_id, {"assignee": dispute.assignee}, {"assignee": assignee})
            uow.activity(dispute.customer_id, "dispute", f"dispute {dispute_id} assigned to {assignee}",
                         invoice_ids=(dispute.invoice_id,), data={"dispute_id": dispute_id, "assignee": assignee})
            self._ledger.commit(uow)
            return saved

        return with_retries(run)

    def reject(self, dispute_id: str, data: Mapping[str, Any], actor: Actor) -> Dispute:
        resolution = _text(data.get("resolution"), "resolution", required=True)
        return self._close(dispute_id, DISPUTE_REJECTED, str(resolution), actor)

    def accept(self, dispute_id: str, data: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        resolution = _text(data.get("resolution"), "resolution", required=True)
        credit = data.get("credit_note", True)
        if credit is not True and credit is not False and not isinstance(credit, Mapping):
            raise ValidationError("credit_note must be true (credit the whole balance), false (none), or "
                                  "{\"lines\": [{\"index\": 0, \"quantity\": \"1\"}]}", field="credit_note")
        dispute = self._ledger.get_dispute(dispute_id)
        if dispute.status != DISPUTE_OPEN:
            raise Conflict(f"dispute {dispute_id} is already {dispute.status}", code="not_open")
        note = None
        if credit is not False:
            service = self._credit_notes() if self._credit_notes else None
            if service is None:
                raise Conflict("credit notes are not available here: accept with \"credit_note\": false and issue "
                               "the credit note yourself", code="credit_notes_unavailable")
            body: dict[str, Any] = {"reason": f"Litige {dispute.reason} accepté : {resolution}"[:1000]}
            if isinstance(credit, Mapping):
                if "lines" in credit:
                    body["lines"] = credit["lines"]
                if "allowances_charges" in credit:
                    body["allowances_charges"] = credit["allowances_charges"]
            note = service.create(dispute.invoice_id, body, actor)
        closed = self._close(dispute_id, DISPUTE_ACCEPTED, str(resolution), actor,
                             credit_note=note.id if note is not None else None)
        return {"dispute": closed.to_dict(), "credit_note": note.to_dict() if note is not None else None}

    def _close(self, dispute_id: str, status: str, resolution: str, actor: Actor,
               credit_note: str | None = None) -> Dispute:
        def run() -> Dispute:
            dispute = self._ledger.get_dispute(dispute_id)
            now = self._clock.now()
            resolved = dispute.resolve(status, resolution, actor.name, now)
            uow = UnitOfWork(actor=actor, now=now)
            saved = uow.save(resolved)
            invoice = self._ledger.get_invoice(dispute.invoice_id)
            if invoice.dispute_status == DISPUTE_OPEN:
                uow.save_invoice(invoice, replace(invoice, dispute_status=status, updated_at=now),
                                 action=f"invoice.dispute_{status}", note={"dispute_id": dispute_id})
            uow.audit(f"dispute.{status}", "dispute", dispute_id, {"status": DISPUTE_OPEN},
                      {"status": status, "resolution": resolution, "credit_note_id": credit_note})
            uow.activity(dispute.customer_id, "dispute",
                         f"dispute on {invoice.number} {status}: {resolution}"
                         + (" (reminders resume)" if status == DISPUTE_REJECTED and invoice.status == "open" else ""),
                         invoice_ids=(dispute.invoice_id,),
                         data={"dispute_id": dispute_id, "status": status, "credit_note_id": credit_note})
            uow.emit("event", envelope(f"dispute.{status}", {
                "dispute_id": dispute_id, "invoice_id": dispute.invoice_id, "customer_id": dispute.customer_id,
                "resolution": resolution, "credit_note_id": credit_note}, now))
            self._ledger.commit(uow)
            return saved

        return with_retries(run)
