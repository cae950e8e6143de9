"""Scheduled and event-driven functions (each deploys as its own Lambda with its own role)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Rate

from . import wiring
from .observability import flush, logger

jobs_bp = Blueprint(__name__)


@jobs_bp.schedule(Rate(1, unit=Rate.MINUTES), name="outbox_drain")
def outbox_drain(event: Any) -> dict[str, int]:
    """Safety net of the outbox: retries failures and picks up anything the stream missed."""
    report = wiring.outbox().run(limit=500)
    logger.info("outbox drained", extra=report.to_dict())
    flush()
    return report.to_dict()
