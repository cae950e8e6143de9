"""Alarms on what hurts (5xx, webhooks, dead letters, failing jobs) and a dashboard."""

from __future__ import annotations

from typing import Any

from infra_synth import Synth


def _alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {a["Properties"]["AlarmName"].removeprefix(f"ar-backend-{synth.stage}-"): a["Properties"]
            for a in synth.resources("AWS::CloudWatch::Alarm").values()}


def test_required_alarms_exist_and_notify(stage: Synth) -> None:
    alarms = _alarms(stage)
    assert {"Api5xxRate", "WebhookFailures", "DeadLetterQueueDepth", "OutboxDeadLetters"} <= set(alarms)
    (topic_id,) = [lid for lid, t in stage.resources("AWS::SNS::Topic").items()
                   if t["Properties"]["TopicName"] == f"ar-backend-{stage.stage}-alarms"]
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}], name


def test_api_5xx_rate_alarm_reads_this_api(stage: Synth) -> None:
    alarm = _alarms(stage)["Api5xxRate"]
    metrics = {m["MetricStat"]["Metric"]["MetricName"]: m["MetricStat"]["Metric"]["Dimensions"]
               for m in alarm["Metrics"] if "MetricStat" in m}
    assert set(metrics) == {"5XXError", "Count"}
    for dims in metrics.values():
        assert {"Name": "ApiName", "Value": f"ar-backend-{stage.stage}"} in dims
        assert {"Name": "Stage", "Value": "api"} in dims


def test_webhook_failures_alarm_reads_the_apps_emf_metric(stage: Synth) -> None:
    alarm = _alarms(stage)["WebhookFailures"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("ARBackend", "WebhookFailed")
    # Powertools adds the service dimension; the stack sets POWERTOOLS_SERVICE_NAME per stage.
    assert alarm["Dimensions"] == [{"Name": "service", "Value": f"ar-backend-{stage.stage}"}]


def test_dunning_send_failures_alarm_reads_the_jobs_emf_metric(stage: Synth) -> None:
    from chalicelib.jobs import DUNNING_SEND_FAILED

    alarm = _alarms(stage)["DunningSendFailures"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("ARBackend", DUNNING_SEND_FAILED)
    assert alarm["Dimensions"] == [{"Name": "service", "Value": f"ar-backend-{stage.stage}"}]


def test_every_scheduled_and_event_function_alarms_on_errors(stage: Synth, app_model: Any) -> None:
    alarms = _alarms(stage)
    watched = {a["Dimensions"][0]["Value"] for a in alarms.values()
               if a.get("MetricName") == "Errors" and a.get("Namespace") == "AWS/Lambda"}
    expected = {f"ar-backend-{stage.stage}-{f.name}" for f in app_model.functions if f.kind != "api"}
    assert {f"ar-backend-{stage.stage}-{f.name}" for f in app_model.scheduled} <= expected
    assert watched == expected


def test_outbox_dead_letters_are_counted_from_the_logs(stage: Synth) -> None:
    filters = stage.resources("AWS::Logs::MetricFilter")
    assert filters
    for f in filters.values():
        assert "outbox message dead-lettered" in f["Properties"]["FilterPattern"]
    alarm = _alarms(stage)["OutboxDeadLetters"]
    assert alarm["MetricName"] == "OutboxDeadLettered"


def test_dashboard_exists(stage: Synth) -> None:
    (dashboard,) = stage.resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == f"ar-backend-{stage.stage}"


def test_alarms_may_publish_to_the_alarm_topic(stage: Synth) -> None:
    # The topic policy (TLS only) replaces SNS's default policy: CloudWatch needs its own allow.
    (topic_id,) = [lid for lid, t in stage.resources("AWS::SNS::Topic").items()
                   if t["Properties"]["TopicName"] == f"ar-backend-{stage.stage}-alarms"]
    statements = [s for p in stage.resources("AWS::SNS::TopicPolicy").values()
                  if {"Ref": topic_id} in p["Properties"]["Topics"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert any(s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
               and s["Action"] == "sns:Publish" for s in statements)
