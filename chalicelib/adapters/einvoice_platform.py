"""A local, deterministic stand-in for a certified e-invoicing platform (plateforme agréée).

It behaves like a platform's API where it matters to us: a deposit is idempotent
on its key (same receipt), the document must be a well-formed CII XML naming
the invoice number, and the submission id is derived from the key (so replays
and tests are reproducible). Deposits and reports are kept in memory, per
process, in :data:`REGISTRY` (tests read it). Lifecycle statuses that a real
platform would push are simulated by calling ``POST /einvoicing/statuses``.

A real platform adapter implements the same port
(:class:`~chalicelib.services.einvoicing.EInvoicePlatform`) over its HTTP API.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable

from ..domain.money import Money
from ..services.einvoicing import EInvoicePlatform, PlatformReceipt, PlatformSubmission

CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"


@dataclass
class Registry:
    submissions: dict[str, PlatformReceipt] = field(default_factory=dict)   # idempotency key -> receipt
    documents: dict[str, PlatformSubmission] = field(default_factory=dict)  # submission id -> what was sent
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)        # idempotency key -> report
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.submissions.clear()
            self.documents.clear()
            self.reports.clear()


REGISTRY = Registry()


class LocalEInvoicePlatform(EInvoicePlatform):
    name = "local"

    def __init__(self, now: Callable[[], datetime], registry: Registry = REGISTRY) -> None:
        self._now = now
        self._registry = registry

    def submit(self, submission: PlatformSubmission) -> PlatformReceipt:
        with self._registry.lock:
            done = self._registry.submissions.get(submission.idempotency_key)
        if done is not None:
            return done
        submission_id = "LOC-" + hashlib.sha256(submission.idempotency_key.encode()).hexdigest()[:20].upper()
        problem = self._check(submission)
        receipt = PlatformReceipt(submission_id=submission_id, status="rejected" if problem else "deposited",
                                  at=self._now(), reason=problem)
        with self._registry.lock:
            receipt = self._registry.submissions.setdefault(submission.idempotency_key, receipt)
            self._registry.documents.setdefault(receipt.submission_id, submission)
        return receipt

    def report_status(self, submission_id: str, status: str, *, amount: Money | None, on: date | None,
                      idempotency_key: str) -> None:
        with self._registry.lock:
            if submission_id not in self._registry.documents:
                raise LookupError(f"the platform knows no submission {submission_id}")
            self._registry.reports.setdefault(idempotency_key, {
                "submission_id": submission_id, "status": status, "amount": str(amount) if amount else None,
                "currency": amount.currency if amount else None, "on": on.isoformat() if on else None})

    @staticmethod
    def _check(submission: PlatformSubmission) -> str | None:
        """What a platform checks first: a CII document of the announced number and type."""
        from lxml import etree

        try:
            root = etree.fromstring(submission.xml)
        except etree.XMLSyntaxError as exc:
            return f"not well-formed XML: {exc}"
        if root.tag != f"{{{CII_NS}}}CrossIndustryInvoice":
            return "not a UN/CEFACT Cross Industry Invoice"
        ns = {"rsm": CII_NS, "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"}
        number = root.findtext("rsm:ExchangedDocument/ram:ID", namespaces=ns)
        type_code = root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=ns)
        if number != submission.number or type_code != submission.type_code:
            return f"the document says {type_code} {number}, the submission {submission.type_code} {submission.number}"
        if not submission.pdf.startswith(b"%PDF-"):
            return "the readable copy is not a PDF"
        return None
