"""Every function the app registers is deployed, scheduled, configured and dead-lettered."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from chalice.app import ScheduledEventConfig
from infra_synth import Synth

from infra.cdk.stack import OUTBOX_STREAM_FILTER

REQUIRED_ENV = ("STAGE", "TABLE_NAME", "DOCUMENTS_BUCKET", "EVENT_BUS_NAME", "MAIL_FROM", "PUBLIC_BASE_URL",
                "SECRETS_NAME", "SES_EVENTS_TOPIC_ARN", "LOG_LEVEL", "POWERTOOLS_SERVICE_NAME",
                "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_TRACE_DISABLED")


def _schedule_string(expression: Any) -> str:
    return expression if isinstance(expression, str) else expression.to_string()


def test_every_scheduled_job_has_its_eventbridge_rule(stage: Synth, chalice_app: Any) -> None:
    # Given the schedules the chalice app registers (read from the app, not from infra/)
    schedules = {s.name: (s.handler_string, _schedule_string(s.schedule_expression))
                 for s in chalice_app.event_sources if isinstance(s, ScheduledEventConfig)}
    assert "outbox_drain" in schedules
    # Then each is a function with a Schedule event (SAM turns it into an AWS::Events::Rule)
    deployed: dict[str, tuple[str, str]] = {}
    for fn in stage.functions().values():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] == "Schedule":
                assert event["Properties"].get("Enabled", True) is not False
                name = fn["Properties"]["FunctionName"].removeprefix(f"ar-backend-{stage.stage}-")
                deployed[name] = (fn["Properties"]["Handler"], event["Properties"]["Schedule"])
    assert deployed == schedules


def test_every_function_is_traced_logged_and_configured(stage: Synth) -> None:
    log_groups = stage.resources("AWS::Logs::LogGroup")
    for lid, fn in stage.functions().items():
        props = fn["Properties"]
        assert props["Tracing"] == "Active", lid
        env = props["Environment"]["Variables"]
        missing = [k for k in REQUIRED_ENV if k not in env]
        assert not missing, f"{lid} lacks {missing}"
        assert env["POWERTOOLS_TRACE_DISABLED"] == "false"
        assert env["POWERTOOLS_SERVICE_NAME"] == f"ar-backend-{stage.stage}"
        assert env["STAGE"] == stage.stage
        assert "AWS_ENDPOINT_URL" not in env, "AWS_ENDPOINT_URL is for the local stack only"
        group = log_groups[props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert group["LogGroupName"] == f"/aws/lambda/{props['FunctionName']}"
        assert group["RetentionInDays"] in (14, 90)
        assert props["Timeout"] <= 300 and props["MemorySize"] >= 256


def test_api_timeout_fits_api_gateway(stage: Synth) -> None:
    assert stage.functions()["APIHandler"]["Properties"]["Timeout"] <= 29


def test_async_functions_send_failures_to_the_dead_letter_queue(stage: Synth, app_model: Any) -> None:
    configs = {c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
               for c in stage.resources("AWS::Lambda::EventInvokeConfig").values()}
    async_functions = {f.logical_id for f in app_model.functions if f.is_async}
    assert async_functions and set(configs) == async_functions
    (dlq_id,) = stage.resources("AWS::SQS::Queue")
    for lid, cfg in configs.items():
        assert cfg["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [dlq_id, "Arn"]}, lid


def test_outbox_stream_is_wired_to_the_table_stream(stage: Synth) -> None:
    (mapping,) = stage.resources("AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]
    (table_id,) = stage.resources("AWS::DynamoDB::Table")
    (dlq_id,) = stage.resources("AWS::SQS::Queue")
    assert props["FunctionName"] == {"Ref": "OutboxStream"}
    assert props["EventSourceArn"] == {"Fn::GetAtt": [table_id, "StreamArn"]}
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    (flt,) = props["FilterCriteria"]["Filters"]
    assert json.loads(flt["Pattern"]) == OUTBOX_STREAM_FILTER


# A small matcher for the subset of Lambda event-filter syntax the stack uses.
_MISSING = object()


def _matches(pattern: Any, value: Any) -> bool:
    if isinstance(pattern, dict):  # a missing node only matches leaves asking for {"exists": false}
        children = value if isinstance(value, dict) else {}
        return all(_matches(p, children.get(k, _MISSING)) for k, p in pattern.items())
    for alternative in pattern:
        if isinstance(alternative, dict) and "exists" in alternative:
            if (value is not _MISSING) == alternative["exists"]:
                return True
        elif isinstance(alternative, dict) and "prefix" in alternative:
            if value is not _MISSING and str(value).startswith(alternative["prefix"]):
                return True
        elif value is not _MISSING and value == alternative:
            return True
    return False


def test_stream_filter_lets_through_new_outbox_items_only() -> None:
    # Given the items the ledger writes (serialized as the stream shows them)
    from chalicelib.adapters.dynamodb.models import CustomerItem, OutboxItem

    now = datetime(2026, 11, 25, tzinfo=timezone.utc)
    outbox = OutboxItem(pk="OUTBOX#3", sk="2026-11-25#msg_1", kind="outbox", id="msg_1", topic="event",
                        payload={"type": "invoice.issued"}, created_at=now)
    dead = OutboxItem(pk="OUTBOX#DEAD", sk="2026-11-25#msg_2", kind="outbox", id="msg_2", topic="event",
                      payload={}, created_at=now, dead=True)
    delayed = OutboxItem(pk="OUTBOX#1", sk="2026-11-25#msg_3", kind="outbox", id="msg_3", topic="event",
                         payload={}, created_at=now, not_before=now)
    customer = CustomerItem(pk="CUS#1", sk="CUSTOMER", kind="customer", id="1", name="x", data={},
                            created_at=now, updated_at=now)

    def record(item: Any, event_name: str = "INSERT") -> dict[str, Any]:
        image = item.serialize()
        return {"eventName": event_name,
                "dynamodb": {"Keys": {"pk": image["pk"], "sk": image["sk"]}, "NewImage": image}}

    # Then only the new, live outbox item passes the filter
    assert _matches(OUTBOX_STREAM_FILTER, record(outbox))
    assert not _matches(OUTBOX_STREAM_FILTER, record(dead))
    assert not _matches(OUTBOX_STREAM_FILTER, record(delayed))
    assert not _matches(OUTBOX_STREAM_FILTER, record(customer))
    assert not _matches(OUTBOX_STREAM_FILTER, record(outbox, "MODIFY"))
