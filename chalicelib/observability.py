"""One place for Powertools logging, metrics and tracing.

Logs are structured JSON with the invoice / customer ids appended as keys,
never names, emails or IBANs. Metrics use CloudWatch EMF (one business metric
per use case). The X-Ray SDK costs ~170 ms to import, so the tracer is built
only on first use and only where tracing is enabled (on AWS; Lambda's active
tracing already records every invocation without it).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from typing import Any, Iterator

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ar-backend")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="ARBackend", service=SERVICE)


_PERSONAL = (
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"), "<iban>"),
    (re.compile(r"(?<![\w.])(?:\+\d[\d .-]{7,}\d|0\d(?:[ .-]?\d{2}){4})\b"), "<phone>"),
)


def scrub(text: str) -> str:
    """Exception texts from providers (SES, SNS, Stripe) may quote an address, a phone number or an
    IBAN: replace them before the text reaches a log or a stored error."""
    for pattern, placeholder in _PERSONAL:
        text = pattern.sub(placeholder, text)
    return text


def count(name: str, value: float = 1) -> None:
    """Record a business metric (e.g. InvoiceIssued) for this invocation."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def flush() -> None:
    """Emit collected metrics (called once per request / event by the handlers)."""
    if not metrics.metric_set:
        return
    try:
        metrics.flush_metrics()
    except Exception:  # noqa: BLE001 - metrics must never fail a request
        logger.exception("metrics flush failed")


@lru_cache(maxsize=1)
def _tracer() -> Any:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() in ("1", "true"):
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


@contextmanager
def traced(name: str) -> Iterator[None]:
    """An X-Ray subsegment when tracing is on, nothing otherwise."""
    tracer = _tracer()
    ctx = tracer.provider.in_subsegment(name) if tracer else nullcontext()
    with ctx:
        yield
