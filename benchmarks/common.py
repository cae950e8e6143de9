"""Shared benchmark tools: a local stack, DynamoDB request metering, percentiles."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

PROJECT_DIR = Path(__file__).resolve().parents[1]
# EMF metrics lines would drown the figures (Powertools flushes every 100 values).
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
sys.path.insert(0, str(PROJECT_DIR))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def timed(fn: Callable[[], Any], n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


@contextmanager
def local_stack(server: Callable[[int], list[str]] | None = None) -> Iterator[str]:
    """A serialized moto server with the app's resources; env and wiring point at it. ``server(port)``
    gives another server's command line (e.g. benchmarks/moto_indexed.py)."""
    from infra.local.bootstrap import create_resources, local_env
    from infra.local.run import free_port, wait_for_http

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    argv = server(port) if server else [sys.executable, "-m", "infra.local.moto_serial", "--port", str(port)]
    proc = subprocess.Popen(argv, cwd=PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_http(f"{endpoint}/moto-api/data.json", proc=proc)
        env = local_env(endpoint, "http://127.0.0.1:8000")
        os.environ.update(env)
        create_resources(endpoint, env)
        from chalicelib import wiring

        wiring.reset()
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class DynamoMeter:
    """Counts DynamoDB requests (and items read) through a botocore event hook on the app's client."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.auth_calls = 0
        self.items_read = 0
        self._lock = threading.Lock()
        self.enabled = True

    def install(self, client: Any) -> None:
        client.meta.events.register("before-call.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        key = params.get("Key", {}).get("pk", {}).get("S", "")
        with self._lock:
            if model.name == "GetItem" and key.startswith("KEY#"):
                self.auth_calls += 1
            else:
                self.calls[model.name] += 1

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if not self.enabled:
            return
        with self._lock:
            if model.name in ("Query", "Scan"):
                self.items_read += int(parsed.get("ScannedCount", 0))
            elif model.name == "GetItem" and "Item" in parsed:
                self.items_read += 1
            elif model.name == "BatchGetItem":
                self.items_read += sum(len(v) for v in parsed.get("Responses", {}).values())

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.auth_calls = 0
            self.items_read = 0

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def describe(self) -> str:
        parts = ", ".join(f"{n} {op}" for op, n in sorted(self.calls.items()))
        return f"{self.total} ({parts or 'none'})"


def meter_app_client() -> DynamoMeter:
    from chalicelib import wiring

    meter = DynamoMeter()
    meter.install(wiring.dynamodb_connection().client)
    return meter


def median(values: list[float]) -> float:
    return statistics.median(values)
