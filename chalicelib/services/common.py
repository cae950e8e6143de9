"""Helpers shared by the use cases: conflict retries, idempotent creation, audit diffs."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ..domain.errors import IdempotencyKeyReused, ValidationError
from .ports import CommitConflict, IdempotencyRecord, Ledger

T = TypeVar("T")


def with_retries(run: Callable[[], T], *, deadline_s: float = 25.0, max_attempts: int = 200,
                 only: tuple[str, ...] | None = None) -> T:
    """Run a use case, retrying on optimistic-lock conflicts with jittered backoff.

    Each attempt re-reads what it needs, so business rules are re-checked
    against the state that finally commits. Idempotency conflicts are not
    retried: they mean "this request already happened". With ``only``, just
    conflicts on those record kinds are retried here (an outer loop handles
    the others).
    """
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return run()
        except CommitConflict as exc:
            if exc.idempotency or attempt >= max_attempts or time.monotonic() - start > deadline_s:
                raise
            if only is not None and (not exc.failed or set(exc.failed) - set(only)):
                raise
            time.sleep(random.uniform(0, min(1.0, 0.01 * 2 ** min(attempt, 7))))


@dataclass(frozen=True)
class IdempotencyRequest:
    """An ``Idempotency-Key`` header, scoped to the caller, with the hash of its request."""

    scope: str
    key: str
    request_hash: str

    def __post_init__(self) -> None:
        if not 1 <= len(self.key) <= 255 or not self.key.isprintable():
            raise ValidationError("Idempotency-Key must be 1 to 255 printable characters (a UUID is ideal)",
                                  field="Idempotency-Key")

    def record(self, resource_type: str, resource_id: str, now: Any) -> IdempotencyRecord:
        return IdempotencyRecord(scope=self.scope, key=self.key, request_hash=self.request_hash,
                                 resource_type=resource_type, resource_id=resource_id, created_at=now)


def idempotent(ledger: Ledger, request: IdempotencyRequest | None, resource_type: str,
               run: Callable[[], T], load: Callable[[str], T]) -> tuple[T, bool]:
    """Run ``run`` once per idempotency key; a repeat returns the first result.

    ``run`` must include ``request.record(...)`` in its unit of work, so the key
    and the created resource commit together: a crash can never leave a key
    without its resource or the reverse. Returns ``(result, replayed)``.
    """
    if request is None:
        return with_retries(run), False

    def replay() -> tuple[T, bool] | None:
        existing = ledger.get_idempotency(request.scope, request.key)
        if existing is None:
            return None
        if existing.request_hash != request.request_hash or existing.resource_type != resource_type:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {request.key!r} was already used for a different request: send a new key for "
                "a new request, or repeat the original request exactly")
        return load(existing.resource_id), True

    first = replay()
    if first is not None:
        return first
    try:
        return with_retries(run), False
    except CommitConflict as exc:
        if not exc.idempotency:
            raise
        again = replay()
        if again is None:  # pragma: no cover - the key cannot vanish within its TTL
            raise
        return again


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[dict[str, Any] | None,
                                                                              dict[str, Any] | None]:
    """Keep only the fields that changed (audit entries stay small for 500-line invoices)."""
    if before is None or after is None:
        return before, after
    ignore = {"updated_at", "version"}
    keys = [k for k in after.keys() | before.keys() if k not in ignore and before.get(k) != after.get(k)]
    return {k: before.get(k) for k in sorted(keys)}, {k: after.get(k) for k in sorted(keys)}
