"""Scheduled and event-driven functions (each deploys as its own Lambda with its own role)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Cron, Rate

from . import wiring
from .observability import count, flush, logger

DUNNING_SEND_FAILED = "DunningSendFailed"  # EMF metric; infra/cdk/monitoring.py alarms on it

jobs_bp = Blueprint(__name__)


@jobs_bp.schedule(Rate(1, unit=Rate.MINUTES), name="outbox_drain")
def outbox_drain(event: Any) -> dict[str, int]:
    """Safety net of the outbox: retries failures and picks up anything the stream missed."""
    report = wiring.outbox().run(limit=500)
    logger.info("outbox drained", extra=report.to_dict())
    flush()
    return report.to_dict()


@jobs_bp.lambda_function(name="outbox_stream")
def outbox_stream(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Drains each outbox item as soon as it is written (DynamoDB stream of the ledger table).

    On AWS the event source mapping (infra/cdk) passes only INSERTs under ``OUTBOX#``
    that are neither dead letters nor delayed (``not_before``); this handler skips
    anything else anyway. ``process``
    claims the message first, so a message the 1-minute drain already took is skipped.
    A record that raises is reported back (partial batch response): Lambda retries from
    it, then sends the batch to the dead-letter queue; ``outbox_drain`` stays the
    safety net for whatever is left in the table.
    """
    from .adapters.dynamodb.ledger import to_outbox
    from .adapters.dynamodb.models import OutboxItem
    from .services.outbox import DrainReport

    report, failures = DrainReport(), []
    for record in event.get("Records", []):
        image = record.get("dynamodb", {}).get("NewImage")
        pk = (image or {}).get("pk", {}).get("S", "")
        if record.get("eventName") != "INSERT" or not pk.startswith("OUTBOX#") or pk == "OUTBOX#DEAD":
            continue
        try:
            message = to_outbox(OutboxItem.from_raw_data(image))
            if message.not_before is not None and message.not_before > wiring.clock().now():
                continue  # delayed: the scheduled drain sends it when due
            wiring.outbox().process(message, report)
        except Exception:  # noqa: BLE001 - reported to Lambda, which retries then dead-letters
            logger.exception("outbox stream record failed", extra={"sequence": record["dynamodb"]["SequenceNumber"]})
            failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
            break  # a stream is ordered per shard: Lambda retries from the first failure
    logger.info("outbox stream drained", extra=report.to_dict())
    flush()
    return {"batchItemFailures": failures}


@jobs_bp.schedule(Cron(0, 5, "*", "*", "?", "*"), name="sepa_collections")
def sepa_collections(event: Any) -> dict[str, int]:
    """Every morning (05:00 UTC): request the SEPA debits of invoices due today."""
    report = wiring.collections().run(wiring.invoices().today())
    logger.info("sepa collections requested", extra=report.to_dict())
    flush()
    return report.to_dict()


@jobs_bp.schedule(Cron(15, 4, "*", "*", "?", "*"), name="recurring_invoices")
def recurring_invoices(event: Any) -> dict[str, Any]:
    """Every morning (04:15 UTC): issue the recurring invoices due today (seller-local), once per period.
    Admin route: POST /recurring/run?as_of=YYYY-MM-DD."""
    report = wiring.recurring().run().to_dict()
    logger.info("recurring invoices issued", extra={k: report[k] for k in ("as_of", "issued", "skipped", "failed")})
    flush()
    return {k: report[k] for k in ("as_of", "issued", "skipped", "failed")}


@jobs_bp.schedule(Cron("0/15", "2-5", "*", "*", "?", "*"), name="reconcile_aggregates")
def reconcile_aggregates(event: Any) -> dict[str, Any]:
    """Every night, every 15 minutes from 02:00 to 05:45 UTC: continue the aggregates reconciliation in
    progress within this invocation's time, or start today's once (docs/finance.md "Reconciliation"). Drift
    is logged as an error and counted in the AggregateDrift metric (there must be none). A run that does not
    finish goes on at the next invocation. Admin routes: POST and GET /admin/reconcile."""
    context = getattr(event, "context", None)
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else None
    report = wiring.reconcile().run(budget_s=max(30.0, remaining - 90) if remaining else None, fresh=False)
    flush()
    return {k: v for k, v in report.to_dict().items() if k not in ("aging",)}


@jobs_bp.schedule(Rate(1, unit=Rate.HOURS), name="dunning_sweep")
def dunning_sweep(event: Any) -> dict[str, Any]:
    """Every hour: the dunning sweep (docs/dunning.md): due promises and installments, then the reminders
    due now, read from the sparse index. Admin route: POST /dunning/run?as_of=YYYY-MM-DD."""
    context = getattr(event, "context", None)
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else None
    report = wiring.dunning().run(budget_s=max(30.0, remaining - 90) if remaining else None).to_dict()
    logger.info("dunning sweep", extra={k: report[k] for k in ("due", "messages", "sent", "failed")})
    if report["failed"]:
        count(DUNNING_SEND_FAILED, report["failed"])  # retried next hour; the alarm watches this metric
    flush()
    return report


@jobs_bp.lambda_function(name="ses_events")
def ses_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SES bounces and complaints, delivered by the configuration set's SNS topic (subscribed in infra/cdk)."""
    from .api.documents import ses_events as handle

    return handle(event, context)
