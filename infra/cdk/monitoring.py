"""Alarms (to the stage's alarm topic) and one dashboard per stage.

Alarms: API 5xx rate, webhook failures (the app's EMF metric WebhookFailed), the
dead-letter queue depth, errors of every scheduled or event-driven function (the
dunning sweep among them), outbox messages dead-lettered, and the outbox stream's age.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_logs as logs

if TYPE_CHECKING:
    from .stack import ArBackendStack

FIVE_MINUTES = cdk.Duration.minutes(5)
OUTBOX_DEAD_LETTER_LOG = "outbox message dead-lettered"   # logged by services/outbox.py
OUTBOX_FUNCTIONS = ("outbox_drain", "outbox_stream")       # and the API's admin drain
DUNNING_SEND_FAILED_METRIC = "DunningSendFailed"             # EMF metric of the dunning_sweep job
WEBHOOK_FAILED_METRIC = "WebhookFailed"                      # EMF metric of the webhook route


def add_monitoring(stack: ArBackendStack) -> None:
    s = stack.settings
    action = cw_actions.SnsAction(stack.alarm_topic)
    alarms: list[cw.Alarm] = []

    def alarm(id_: str, metric: cw.IMetric, threshold: float, description: str, *,
              comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
              periods: int = 1) -> cw.Alarm:
        created = cw.Alarm(stack, id_, alarm_name=f"{s.prefix}-{id_}", metric=metric, threshold=threshold,
                           evaluation_periods=periods, datapoints_to_alarm=periods, comparison_operator=comparison,
                           treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=description)
        created.add_alarm_action(action)
        created.add_ok_action(action)
        alarms.append(created)
        return created

    # -- API ------------------------------------------------------------------------------------
    api_dims = {"ApiName": s.prefix, "Stage": "api"}

    def api_metric(name: str, statistic: str = "Sum") -> cw.Metric:
        return cw.Metric(namespace="AWS/ApiGateway", metric_name=name, dimensions_map=api_dims,
                         statistic=statistic, period=FIVE_MINUTES)

    requests, errors_5xx, errors_4xx = api_metric("Count"), api_metric("5XXError"), api_metric("4XXError")
    rate_5xx = cw.MathExpression(expression="IF(requests >= 20, 100 * errors / requests, 0)",
                                 using_metrics={"errors": errors_5xx, "requests": requests},
                                 label="5xx rate (%)", period=FIVE_MINUTES)
    alarm("Api5xxRate", rate_5xx, s.api_5xx_rate_percent,
          f"More than {s.api_5xx_rate_percent}% of API answers are 5xx (over 5 minutes, at least 20 requests)",
          comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD, periods=2)

    # -- webhooks (EMF metric of the app: namespace ARBackend, dimension service) ---------------
    webhook_failed = cw.Metric(namespace="ARBackend", metric_name=WEBHOOK_FAILED_METRIC,
                               dimensions_map={"service": s.prefix}, statistic="Sum", period=FIVE_MINUTES)
    alarm("WebhookFailures", webhook_failed, 1, "A payment-provider webhook failed (the provider will retry)")
    dunning_failed = cw.Metric(namespace="ARBackend", metric_name=DUNNING_SEND_FAILED_METRIC,
                               dimensions_map={"service": s.prefix}, statistic="Sum", period=cdk.Duration.hours(1))
    alarm("DunningSendFailures", dunning_failed, 1,
          "Reminders of the hourly dunning sweep could not be sent (SES/SNS refused or throttled; retried next hour)")

    # -- dead letters -----------------------------------------------------------------------------
    dlq_depth = stack.dlq.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum")
    alarm("DeadLetterQueueDepth", dlq_depth, 1,
          "Failed asynchronous work (scheduled jobs, outbox stream batches) waits in the dead-letter queue")

    outbox_dead = cw.Metric(namespace=f"ARBackend/{s.prefix}", metric_name="OutboxDeadLettered",
                            statistic="Sum", period=FIVE_MINUTES)
    for name in (*OUTBOX_FUNCTIONS, "api_handler"):
        if name in stack.log_groups:
            logs.MetricFilter(stack, f"OutboxDeadLettered{_camel(name)}", log_group=stack.log_groups[name],
                              metric_namespace=outbox_dead.namespace, metric_name=outbox_dead.metric_name,
                              filter_pattern=logs.FilterPattern.literal(f'"{OUTBOX_DEAD_LETTER_LOG}"'),
                              metric_value="1", default_value=0)
    alarm("OutboxDeadLetters", outbox_dead, 1,
          "An outbox message exhausted its retries (GET /admin/outbox/dead lists them)")

    # -- functions --------------------------------------------------------------------------------
    function_metrics: dict[str, tuple[cw.Metric, cw.Metric, cw.Metric]] = {}
    for fn in stack.app_model.functions:
        dims = {"FunctionName": stack.function_names[fn.name]}
        errors = cw.Metric(namespace="AWS/Lambda", metric_name="Errors", dimensions_map=dims, statistic="Sum",
                           period=FIVE_MINUTES)
        function_metrics[fn.name] = (
            cw.Metric(namespace="AWS/Lambda", metric_name="Invocations", dimensions_map=dims, statistic="Sum",
                      period=FIVE_MINUTES),
            errors,
            cw.Metric(namespace="AWS/Lambda", metric_name="Duration", dimensions_map=dims, statistic="p95",
                      period=FIVE_MINUTES))
        if fn.kind != "api":   # the API's errors show in the 5xx rate
            alarm(f"{_camel(fn.name)}Errors", errors, 1, f"{fn.name} ({fn.kind}) failed")
    stream_fn = stack.app_model.function("outbox_stream")
    iterator_age = None
    if stream_fn is not None:
        iterator_age = cw.Metric(namespace="AWS/Lambda", metric_name="IteratorAge", statistic="Maximum",
                                 dimensions_map={"FunctionName": stack.function_names[stream_fn.name]},
                                 period=FIVE_MINUTES)
        alarm("OutboxStreamLag", iterator_age, 5 * 60 * 1000, "The outbox stream is more than 5 minutes behind",
              periods=2)

    # -- dashboard --------------------------------------------------------------------------------
    table_name = stack.table.table_name
    dash = cw.Dashboard(stack, "Dashboard", dashboard_name=s.prefix, default_interval=cdk.Duration.days(1))
    dash.add_widgets(
        cw.TextWidget(markdown=f"# ar-backend {s.stage}\nAPI, functions, data and dead letters.", width=24, height=2))
    dash.add_widgets(
        cw.GraphWidget(title="API requests and errors", left=[requests, errors_4xx, errors_5xx], width=8),
        cw.GraphWidget(title="API 5xx rate (%)", left=[rate_5xx], width=8),
        cw.GraphWidget(title="API latency", left=[api_metric("Latency", "p50"), api_metric("Latency", "p99"),
                                                  api_metric("IntegrationLatency", "p99")], width=8))
    dash.add_widgets(
        cw.GraphWidget(title="Invocations", left=[m[0].with_(label=n) for n, m in function_metrics.items()],
                       width=8),
        cw.GraphWidget(title="Errors", left=[m[1].with_(label=n) for n, m in function_metrics.items()], width=8),
        cw.GraphWidget(title="Duration p95 (ms)", left=[m[2].with_(label=n) for n, m in function_metrics.items()],
                       width=8))
    dynamo = [cw.Metric(namespace="AWS/DynamoDB", metric_name=name, dimensions_map={"TableName": table_name},
                        statistic="Sum", period=FIVE_MINUTES)
              for name in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")]
    throttles = [cw.Metric(namespace="AWS/DynamoDB", metric_name="ThrottledRequests",
                           dimensions_map={"TableName": table_name, "Operation": op}, statistic="Sum",
                           period=FIVE_MINUTES) for op in ("TransactWriteItems", "Query", "PutItem", "UpdateItem")]
    dash.add_widgets(
        cw.GraphWidget(title="DynamoDB consumed units", left=dynamo, width=8),
        cw.GraphWidget(title="DynamoDB throttles", left=throttles, width=8),
        cw.GraphWidget(title="Webhooks failed / outbox dead letters / DLQ",
                       left=[webhook_failed, outbox_dead], right=[dlq_depth], width=8))
    if iterator_age is not None:
        dash.add_widgets(cw.GraphWidget(title="Outbox stream iterator age (ms)", left=[iterator_age], width=8))
    dash.add_widgets(cw.AlarmStatusWidget(title="Alarms", alarms=alarms, width=24))


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
