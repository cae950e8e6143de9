"""Draining the outbox: run the work that follows committed changes, at least once.

Handlers are looked up by topic and must be idempotent (a message may run
twice if a drain dies between the work and the delete). Failures back off
exponentially; after ``max_attempts`` a message goes to the dead-letter list
(GET /admin/outbox/dead) and a metric alarms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Callable, Mapping

from ..observability import scrub
from .ports import Clock, Ledger, OutboxMessage

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]


@dataclass
class DrainReport:
    processed: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"processed": self.processed, "failed": self.failed, "dead": self.dead, "skipped": self.skipped}


class OutboxDrain:
    def __init__(self, ledger: Ledger, clock: Clock, handlers: Mapping[str, Handler], *, max_attempts: int = 8,
                 lease: timedelta = timedelta(minutes=2)) -> None:
        self._ledger = ledger
        self._clock = clock
        self._handlers = dict(handlers)
        self._max_attempts = max_attempts
        self._lease = lease

    def run(self, limit: int = 100) -> DrainReport:
        report = DrainReport()
        for message in self._ledger.pending_outbox(self._clock.now(), limit=limit):
            self.process(message, report)
        return report

    def process(self, message: OutboxMessage, report: DrainReport | None = None) -> None:
        report = report or DrainReport()
        now = self._clock.now()
        if not self._ledger.claim_outbox(message, now + self._lease):
            report.skipped += 1
            return
        message = replace(message, attempts=message.attempts + 1)
        handler = self._handlers.get(message.topic)
        try:
            if handler is None:
                raise LookupError(f"no handler for outbox topic {message.topic!r}")
            handler(message.payload)
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then dead-lettered
            error = scrub(f"{type(exc).__name__}: {exc}")  # stored and logged: no personal data
            if message.attempts >= self._max_attempts or isinstance(exc, LookupError):
                log.error("outbox message dead-lettered", extra={"message_id": message.id, "topic": message.topic,
                                                                  "error": error})
                self._ledger.dead_letter_outbox(message, error)
                report.dead += 1
            else:
                delay = timedelta(seconds=min(3600, 5 * 2 ** (message.attempts - 1)))
                log.warning("outbox message failed, will retry", extra={
                    "message_id": message.id, "topic": message.topic, "attempt": message.attempts, "error": error})
                self._ledger.retry_outbox(message, error, now + delay)
                report.failed += 1
            return
        self._ledger.complete_outbox(message)
        report.processed += 1
