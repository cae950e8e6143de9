"""Signed webhook delivery: a background worker, bounded retries, hold/release, resend.

Each endpoint has a URL, a ``whsec_`` secret and the event types it wants (``*`` = all).
Every attempt is signed afresh with ``stripe.WebhookSignature.generate_signature_header``
(what ``stripe.Webhook.construct_event`` verifies) and recorded with its status code.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

import stripe

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.5, 2.0, 8.0)  # 4 attempts in all
SIGNATURE_MODES = ("valid", "stale", "wrong_secret", "tampered", "missing", "future")


def new_secret() -> str:
    return "whsec_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))


@dataclass
class Endpoint:
    url: str
    secret: str
    enabled_events: list[str] = field(default_factory=lambda: ["*"])
    id: str = field(default_factory=lambda: "we_" + secrets.token_hex(12))

    def wants(self, event_type: str) -> bool:
        for pattern in self.enabled_events:
            if pattern == "*" or pattern == event_type:
                return True
            if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
                return True
        return False

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "secret": self.secret, "enabled_events": self.enabled_events}


@dataclass
class _Job:
    event_id: str
    event_type: str
    payload: str
    endpoint: Endpoint
    attempt: int = 1


class WebhookDispatcher:
    """Delivers queued events in order on one worker thread; retries failed ones later."""

    def __init__(self, retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS, timeout_s: float = 5.0,
                 on_delivered: Callable[[str], None] | None = None) -> None:
        self.endpoints: list[Endpoint] = []
        self.retry_delays = tuple(retry_delays)
        self.timeout_s = timeout_s
        self.deliveries: list[dict[str, Any]] = []
        self._on_delivered = on_delivered
        self._heap: list[tuple[float, int, _Job]] = []
        self._held: list[_Job] = []
        self._holding = False
        self._in_flight = 0
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._worker = threading.Thread(target=self._run, name="stripe-emulator-webhooks", daemon=True)
        self._worker.start()

    # -- configuration -------------------------------------------------------------------
    def set_endpoints(self, endpoints: list[Endpoint]) -> None:
        with self._cond:
            self.endpoints = list(endpoints)

    def endpoints_for(self, event_type: str) -> list[Endpoint]:
        with self._cond:
            return [e for e in self.endpoints if e.wants(event_type)]

    # -- queueing ------------------------------------------------------------------------
    def enqueue(self, event_id: str, event_type: str, payload: str) -> int:
        """Queue one delivery per interested endpoint; return how many."""
        with self._cond:
            targets = [e for e in self.endpoints if e.wants(event_type)]
            for endpoint in targets:
                job = _Job(event_id, event_type, payload, endpoint)
                if self._holding:
                    self._held.append(job)
                else:
                    self._push(job, 0.0)
            self._cond.notify_all()
            return len(targets)

    def _push(self, job: _Job, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job))

    def hold(self) -> None:
        with self._cond:
            self._holding = True

    def held(self) -> list[dict[str, Any]]:
        with self._cond:
            return [{"event_id": j.event_id, "type": j.event_type, "url": j.endpoint.url} for j in self._held]

    def release(self, order: list[str] | str | None = None) -> list[str]:
        """Stop holding and deliver what was held: FIFO, ``"reverse"``, or the listed event ids
        first (in that order), then the rest FIFO. Returns the event ids in delivery order."""
        with self._cond:
            jobs, self._held, self._holding = self._held, [], False
            if order == "reverse":
                jobs.reverse()
            elif isinstance(order, list):
                rank = {event_id: i for i, event_id in enumerate(order)}
                jobs.sort(key=lambda j: rank.get(j.event_id, len(rank)))  # stable: rest stays FIFO
            for job in jobs:
                self._push(job, 0.0)
            self._cond.notify_all()
            return [j.event_id for j in jobs]

    def drop_all(self) -> None:
        with self._cond:
            self._heap.clear()
            self._held.clear()
            self._holding = False
            self.deliveries.clear()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until nothing is queued (retries included) or in flight; held jobs don't count."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._heap or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._worker.join(timeout=5)

    # -- worker --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    wait = (self._heap[0][0] - time.monotonic()) if self._heap else None
                    self._cond.wait(wait if wait is None else max(wait, 0.001))
                if self._stopped:
                    return
                _, _, job = heapq.heappop(self._heap)
                self._in_flight += 1
            try:
                record = self.deliver(job.event_id, job.event_type, job.payload, job.endpoint,
                                      attempt=job.attempt, kind="automatic")
                ok = record["status_code"] is not None and 200 <= record["status_code"] < 300
                with self._cond:
                    if not ok and job.attempt <= len(self.retry_delays) and not self._stopped:
                        self._push(_Job(job.event_id, job.event_type, job.payload, job.endpoint,
                                        job.attempt + 1), self.retry_delays[job.attempt - 1])
                        record["next_retry_in_s"] = self.retry_delays[job.attempt - 1]
                if ok and self._on_delivered is not None:
                    self._on_delivered(job.event_id)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    # -- one HTTP attempt ------------------------------------------------------------------
    def deliver(self, event_id: str, event_type: str, payload: str, endpoint: Endpoint, *, attempt: int = 1,
                kind: str = "automatic", signature: str = "valid", age_s: int = 600) -> dict[str, Any]:
        """POST one signed copy now and record it (``signature`` picks a deliberately bad one)."""
        now = int(time.time())
        body = payload
        header: str | None
        if signature == "valid":
            header = stripe.WebhookSignature.generate_signature_header(payload, endpoint.secret, timestamp=now)
        elif signature == "stale":
            header = stripe.WebhookSignature.generate_signature_header(payload, endpoint.secret,
                                                                       timestamp=now - age_s)
        elif signature == "future":
            header = stripe.WebhookSignature.generate_signature_header(payload, endpoint.secret,
                                                                       timestamp=now + age_s)
        elif signature == "wrong_secret":
            header = stripe.WebhookSignature.generate_signature_header(payload, new_secret(), timestamp=now)
        elif signature == "tampered":
            header = stripe.WebhookSignature.generate_signature_header(payload, endpoint.secret, timestamp=now)
            body = payload.replace('"livemode": false', '"livemode": true', 1)
            if body == payload:
                body = payload + " "
        elif signature == "missing":
            header = None
        else:
            raise ValueError(f"unknown signature mode {signature!r}; use one of {SIGNATURE_MODES}")
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
                   "Cache-Control": "no-cache", "Accept": "*/*; q=0.5, application/xml"}
        if header is not None:
            headers["Stripe-Signature"] = header
        request = urllib.request.Request(endpoint.url, data=body.encode("utf-8"), headers=headers, method="POST")
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        response_body = ""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = response.status
                response_body = response.read(2000).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status = exc.code
            response_body = exc.read(2000).decode("utf-8", "replace")
        except Exception as exc:  # noqa: BLE001 - connection refused, timeout: a failed attempt
            error = f"{type(exc).__name__}: {exc}"
        record = {
            "id": "whdel_" + secrets.token_hex(10), "event_id": event_id, "event_type": event_type,
            "endpoint_id": endpoint.id, "url": endpoint.url, "attempt": attempt, "kind": kind,
            "signature": signature, "status_code": status, "error": error, "response_body": response_body[:500],
            "duration_ms": round((time.monotonic() - started) * 1000, 1), "at": time.time(),
            "stripe_signature": header, "payload_sent": body if signature != "valid" else None,
        }
        with self._cond:
            self.deliveries.append(record)
        return record

    def resend(self, event_id: str, event_type: str, payload: str, times: int = 1, concurrent: bool = False,
               signature: str = "valid", age_s: int = 600) -> list[dict[str, Any]]:
        """Send ``times`` extra copies to every interested endpoint now (one attempt each)."""
        targets = self.endpoints_for(event_type)
        work = [(endpoint, i) for i in range(times) for endpoint in targets]
        kind = "resend" if signature == "valid" else f"signature:{signature}"
        if not concurrent:
            return [self.deliver(event_id, event_type, payload, e, kind=kind, signature=signature, age_s=age_s)
                    for e, _ in work]
        results: list[dict[str, Any] | None] = [None] * len(work)
        barrier = threading.Barrier(len(work)) if work else None

        def send(index: int, endpoint: Endpoint) -> None:
            if barrier is not None:
                try:
                    barrier.wait(timeout=5)
                except threading.BrokenBarrierError:
                    pass
            results[index] = self.deliver(event_id, event_type, payload, endpoint, kind=kind,
                                          signature=signature, age_s=age_s)

        threads = [threading.Thread(target=send, args=(i, e), daemon=True) for i, (e, _) in enumerate(work)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=self.timeout_s + 5)
        return [r for r in results if r is not None]
