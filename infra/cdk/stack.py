"""One stack per stage: the data, the Chalice app (via ``chalice.cdk.Chalice``), its API and its monitoring.

What chalice packages (the API function, the authorizer, one function and one
EventBridge rule per ``@schedule``, pure lambdas) is included as a SAM template;
this stack then gives each function its own role, log group, limits and
environment, and configures the API stage (gateway responses, throttling, access
logs, tracing) on the included ``RestAPI``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from chalice.cdk import Chalice
from constructs import Construct

from chalicelib.adapters.dynamodb.schema import TABLE_ATTRS
from chalicelib.api.gateway_responses import GATEWAY_RESPONSES, body as gateway_response_body

from . import monitoring, permissions
from .app_model import API_HANDLER, AppFunction, AppModel
from .settings import StageSettings

API_STAGE = "api"                 # API Gateway stage name (same as .chalice/config.json)
METRICS_NAMESPACE = "ARBackend"   # the app's Powertools/EMF namespace (chalicelib/observability.py)
ROLE_PLACEHOLDER = "arn:aws:iam::000000000000:role/replaced-by-infra-cdk"

# Limits per kind of function; FUNCTION_LIMITS wins by name.
KIND_LIMITS: dict[str, dict[str, int]] = {
    "api": {"memory": 512, "timeout": 29},          # API Gateway gives up after 29 s
    "authorizer": {"memory": 256, "timeout": 10},
    "schedule": {"memory": 512, "timeout": 300},
    "event": {"memory": 512, "timeout": 300},
    "poller": {"memory": 512, "timeout": 120},
    "lambda": {"memory": 512, "timeout": 120},
}
# The outbox lease is 2 minutes (services/outbox.py): a drain must end before its lease does.
FUNCTION_LIMITS: dict[str, dict[str, int]] = {
    "outbox_drain": {"memory": 512, "timeout": 90},
    "outbox_stream": {"memory": 512, "timeout": 90},
}

# Stream consumers: chalice function name -> stream filter (Lambda event filtering).
OUTBOX_STREAM_FUNCTION = "outbox_stream"
SES_EVENTS_FUNCTION = "ses_events"
OUTBOX_STREAM_FILTER = {
    "eventName": ["INSERT"],
    "dynamodb": {
        "Keys": {"pk": {"S": [{"prefix": "OUTBOX#"}]}},
        "NewImage": {
            "dead": {"BOOL": [False]},                  # dead letters (OUTBOX#DEAD) are never drained
            "not_before": {"S": [{"exists": False}]},   # delayed messages wait for the scheduled drain
        },
    },
}

# No "$context.path": the pay-page and portal paths carry bearer tokens (/pay/{token}); the resource
# path names the route without them. No source IP either (personal data; the WAF rate rule needs no log).
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId", "time": "$context.requestTime",
    "method": "$context.httpMethod", "resource": "$context.resourcePath",
    "status": "$context.status", "length": "$context.responseLength", "latency": "$context.responseLatency",
    "integrationLatency": "$context.integration.latency", "integrationStatus": "$context.integration.status",
    "errorType": "$context.error.responseType", "authorizerError": "$context.authorizer.error",
    "principal": "$context.authorizer.principalId", "userAgent": "$context.identity.userAgent",
    "xrayTraceId": "$context.xrayTraceId",
})


class ArBackendStack(cdk.Stack):
    """Everything one stage of ar-backend needs on AWS."""

    def __init__(self, scope: Construct, settings: StageSettings, app_model: AppModel, project_dir: Path) -> None:
        # The stack id is the stage: chalice.cdk.Chalice packages the chalice stage named after its scope.
        super().__init__(
            scope, settings.stage, stack_name=settings.prefix,
            env=cdk.Environment(account=settings.account, region=settings.region),
            description=f"ar-backend ({settings.stage}): accounts-receivable API, jobs, data and monitoring",
            termination_protection=settings.production, analytics_reporting=False)
        self.settings = settings
        self.app_model = app_model
        cdk.Tags.of(self).add("project", "ar-backend")
        cdk.Tags.of(self).add("stage", settings.stage)
        retain = cdk.RemovalPolicy.RETAIN if settings.production else cdk.RemovalPolicy.DESTROY

        if settings.mail_domain.endswith("example.com"):
            cdk.Annotations.of(self).add_warning_v2(
                "ar-backend:mail-from", f"mail_from is {settings.mail_from}: set -c {settings.stage}:mail_from=... "
                "to a domain you own before deploying (docs/deploy.md)")
        self.table = self._table(retain)
        self.bucket = self._documents_bucket()
        self.bus = events.EventBus(self, "EventBus", event_bus_name=settings.prefix)
        self.secret = self._provider_secret()
        self.ses_events_topic, self.configuration_set, self.mail_identity = self._mail()
        self.dlq = sqs.Queue(self, "DeadLetterQueue", queue_name=f"{settings.prefix}-dlq",
                             retention_period=cdk.Duration.days(14), encryption=sqs.QueueEncryption.SQS_MANAGED,
                             enforce_ssl=True)
        self.alarm_topic = sns.Topic(self, "AlarmTopic", topic_name=f"{settings.prefix}-alarms", enforce_ssl=True)
        # A topic policy replaces SNS's default one: say explicitly that this account's alarms may publish.
        self.alarm_topic.add_to_resource_policy(iam.PolicyStatement(
            sid="AlarmsPublish", principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"], resources=[self.alarm_topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": self.account},
                        "ArnLike": {"aws:SourceArn": self.format_arn(service="cloudwatch", resource="alarm",
                                                                     resource_name="*",
                                                                     arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)}}))
        if settings.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))

        self.log_groups: dict[str, logs.LogGroup] = {}
        self.roles: dict[str, iam.Role] = {}
        self.function_names = {f.name: self._function_name(f) for f in app_model.functions}
        for fn in app_model.functions:
            self.log_groups[fn.name] = logs.LogGroup(
                self, f"{fn.logical_id}Logs", log_group_name=f"/aws/lambda/{self.function_names[fn.name]}",
                retention=_retention(settings.log_retention_days), removal_policy=retain)
            self.roles[fn.name] = self._function_role(fn)
        self.access_logs = logs.LogGroup(
            self, "ApiAccessLogs", log_group_name=f"/aws/apigateway/{settings.prefix}/access",
            retention=_retention(settings.log_retention_days), removal_policy=retain)

        self.chalice = Chalice(self, "ChaliceApp", source_dir=str(project_dir), stage_config=self._stage_config())
        self.sam = _read_packaged_template(self.chalice)
        self._configure_functions()
        self.api_url = self._configure_api()
        self._outbox_stream()
        self._ses_events()
        if settings.waf:
            self._waf()
        monitoring.add_monitoring(self)
        self._outputs()

    # -- data -----------------------------------------------------------------------------------
    def _table(self, retain: cdk.RemovalPolicy) -> dynamodb.Table:
        """The ledger table, derived from the layout the pynamodb models share (schema.py)."""
        table = dynamodb.Table(
            self, "LedgerTable", table_name=f"{self.settings.prefix}-ledger",
            partition_key=dynamodb.Attribute(name=TABLE_ATTRS["partition_key"], type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=TABLE_ATTRS["sort_key"], type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            deletion_protection=self.settings.production,
            stream=dynamodb.StreamViewType.NEW_IMAGE,   # the outbox is drained from the stream
            time_to_live_attribute=TABLE_ATTRS["ttl_attribute"],
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=retain)
        for index_name, (hash_key, range_key) in TABLE_ATTRS["indexes"].items():
            table.add_global_secondary_index(
                index_name=index_name,
                partition_key=dynamodb.Attribute(name=hash_key, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=range_key, type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.ALL)
        return table

    def _documents_bucket(self) -> s3.Bucket:
        """Issued documents (invoices, credit notes, letters): kept 10 years, never public.

        In prod Object Lock is on and the app sets a COMPLIANCE retention of DOCUMENTS_RETENTION_DAYS on
        each business record it stores (chalicelib/adapters/storage.py): French commercial law keeps
        accounting documents 10 years, and COMPLIANCE means nobody, root included, can delete or shorten
        it. Per object rather than a bucket default: evidence packs assembled on request are not records
        and must stay deletable (personal data)."""
        return s3.Bucket(
            self, "DocumentsBucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_lock_enabled=self.settings.production or None,
            lifecycle_rules=[s3.LifecycleRule(id="abort-incomplete-uploads",
                                              abort_incomplete_multipart_upload_after=cdk.Duration.days(1)),
                             # FEC exports and their work parts: regenerable, their jobs are kept 30 days
                             s3.LifecycleRule(id="expire-exports", prefix="exports/",
                                              expiration=cdk.Duration.days(30),
                                              noncurrent_version_expiration=cdk.Duration.days(1))],
            removal_policy=cdk.RemovalPolicy.RETAIN)

    def _provider_secret(self) -> secretsmanager.Secret:
        """Stripe keys, one JSON secret; created empty, values set out of band (docs/deploy.md)."""
        secret = secretsmanager.Secret(
            self, "ProviderSecret", secret_name=f"ar-backend/{self.settings.stage}",
            description="Stripe keys of ar-backend as JSON: stripe_secret_key, stripe_webhook_secret. "
                        "Set out of band (docs/deploy.md); never in code or templates.",
            removal_policy=cdk.RemovalPolicy.RETAIN)
        # An L2 secret generates a random value by default: declare it without any value instead.
        cfn = secret.node.default_child
        assert isinstance(cfn, secretsmanager.CfnSecret)
        cfn.add_property_deletion_override("GenerateSecretString")
        return secret

    def _mail(self) -> tuple[sns.Topic, ses.ConfigurationSet, ses.EmailIdentity | None]:
        """SES configuration set whose bounces and complaints go to a topic the app consumes."""
        topic = sns.Topic(self, "SesEventsTopic", topic_name=f"{self.settings.prefix}-ses-events", enforce_ssl=True)
        config_set = ses.ConfigurationSet(
            self, "MailConfigurationSet", configuration_set_name=self.settings.prefix, reputation_metrics=True,
            sending_enabled=True, suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS)
        config_set.add_event_destination(
            "BouncesAndComplaints", destination=ses.EventDestination.sns_topic(topic),
            events=[ses.EmailSendingEvent.BOUNCE, ses.EmailSendingEvent.COMPLAINT, ses.EmailSendingEvent.REJECT,
                    ses.EmailSendingEvent.DELIVERY_DELAY, ses.EmailSendingEvent.RENDERING_FAILURE])
        identity = None
        if self.settings.create_mail_identity:
            # Easy DKIM: the three CNAME records are stack outputs, to add to the domain's DNS.
            identity = ses.EmailIdentity(self, "MailIdentity", identity=ses.Identity.domain(self.settings.mail_domain),
                                         configuration_set=config_set)
        return topic, config_set, identity

    # -- functions ------------------------------------------------------------------------------
    def _function_name(self, fn: AppFunction) -> str:
        return f"{self.settings.prefix}-api" if fn.name == API_HANDLER else f"{self.settings.prefix}-{fn.name}"

    def _data_resources(self) -> permissions.DataResources:
        # In the SES sandbox the recipients are identities too: dev may send to any identity verified
        # in its account (test recipients); prod only from its own domain.
        names = ((self.settings.mail_domain, self.settings.mail_from) if self.settings.production else ("*",))
        identities = tuple(self.format_arn(service="ses", resource="identity", resource_name=n) for n in names)
        return permissions.DataResources(
            table_arn=self.table.table_arn, table_name=self.table.table_name, bucket_arn=self.bucket.bucket_arn,
            bus_arn=self.bus.event_bus_arn, secret_arn=self.secret.secret_arn, dlq_arn=self.dlq.queue_arn,
            mail_identity_arns=identities,
            configuration_set_arn=self.format_arn(service="ses", resource="configuration-set",
                                                  resource_name=self.configuration_set.configuration_set_name))

    def _function_role(self, fn: AppFunction) -> iam.Role:
        profile = permissions.profile_for(fn.name, fn.kind)
        return iam.Role(
            self, f"{fn.logical_id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self.settings.prefix} {fn.name} ({profile} profile)",
            inline_policies={"access": permissions.function_policy(
                profile, self._data_resources(), self.log_groups[fn.name].log_group_arn, self)})

    def _environment(self) -> dict[str, str]:
        s = self.settings
        return {
            "STAGE": s.stage,
            "TABLE_NAME": self.table.table_name,
            "DOCUMENTS_BUCKET": self.bucket.bucket_name,
            # prod: each stored business record is locked (COMPLIANCE) for 10 years
            "DOCUMENTS_RETENTION_DAYS": "3653" if s.production else "0",
            "EVENT_BUS_NAME": self.bus.event_bus_name,
            "MAIL_FROM": s.mail_from,
            "SECRETS_NAME": f"ar-backend/{s.stage}",   # a name, not a value: read at run time
            "SES_EVENTS_TOPIC_ARN": self.ses_events_topic.topic_arn,
            "SES_CONFIGURATION_SET": self.configuration_set.configuration_set_name,
            "LOG_LEVEL": s.log_level,
            "POWERTOOLS_LOG_LEVEL": s.log_level,
            "POWERTOOLS_SERVICE_NAME": s.prefix,       # one service dimension per stage
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_TRACE_DISABLED": "false",
        }

    def _stage_config(self) -> dict[str, Any]:
        """The chalice stage configuration (it wins over .chalice/config.json for this stage)."""
        return {
            "api_gateway_stage": API_STAGE,
            "api_gateway_endpoint_type": "REGIONAL",
            # Dependencies go to a layer cached by requirements.txt: app changes repackage in seconds.
            "automatic_layer": True,
            # Roles are made here, one per function; each function's Role is replaced below.
            "manage_iam_role": False,
            "iam_role_arn": ROLE_PLACEHOLDER,
            "xray": True,
            "environment_variables": self._environment(),
            "tags": {"project": "ar-backend", "stage": self.settings.stage},
        }

    def _configure_functions(self) -> None:
        packaged = {lid for lid, r in self.sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
        known = {fn.logical_id for fn in self.app_model.functions}
        if packaged != known:
            raise RuntimeError(f"chalice packaged functions {sorted(packaged)} but the app model found "
                               f"{sorted(known)}: infra/cdk/app_model.py must learn the new kind of handler")
        for fn in self.app_model.functions:
            cfn = self.chalice.get_resource(fn.logical_id)
            limits = {**KIND_LIMITS[fn.kind], **FUNCTION_LIMITS.get(fn.name, {})}
            cfn.add_property_override("FunctionName", self.function_names[fn.name])
            cfn.add_property_override("Role", self.roles[fn.name].role_arn)
            cfn.add_property_override("MemorySize", limits["memory"])
            cfn.add_property_override("Timeout", limits["timeout"])
            cfn.add_property_override("Tracing", "Active")
            cfn.add_property_override("LoggingConfig", {"LogGroup": self.log_groups[fn.name].log_group_name,
                                                        "LogFormat": "Text"})
            cfn.add_property_override("Environment.Variables.PUBLIC_BASE_URL", self._public_base_url())
            if fn.is_async:
                # Async invocations (EventBridge schedules, SNS, S3) that still fail after
                # two retries land in the dead-letter queue, with the error and the event.
                lambda_.CfnEventInvokeConfig(
                    self, f"{fn.logical_id}AsyncFailures", function_name=cdk.Fn.ref(fn.logical_id),
                    qualifier="$LATEST", maximum_retry_attempts=2, maximum_event_age_in_seconds=6 * 3600,
                    destination_config={"onFailure": {"destination": self.dlq.queue_arn}})

    def _public_base_url(self) -> str:
        if self.settings.public_base_url:
            return self.settings.public_base_url.rstrip("/")
        return cdk.Fn.sub(f"https://${{RestAPI}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{API_STAGE}")

    # -- API ------------------------------------------------------------------------------------
    def _configure_api(self) -> str:
        s = self.settings
        api = self.chalice.get_resource("RestAPI")
        account = self._api_gateway_logging_account()
        api.node.add_dependency(account)
        api.add_property_override("Name", s.prefix)
        api.add_property_override("TracingEnabled", True)
        api.add_property_override("AccessLogSetting", {
            "DestinationArn": self.format_arn(service="logs", resource="log-group",
                                              resource_name=self.access_logs.log_group_name,
                                              arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME),
            "Format": ACCESS_LOG_FORMAT})
        api.add_property_override("MethodSettings", [{
            "ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": s.throttle_rate,
            "ThrottlingBurstLimit": s.throttle_burst, "MetricsEnabled": False, "DataTraceEnabled": False}])
        api.add_property_override("GatewayResponses", gateway_responses())
        if not s.public_base_url:
            # The functions get the API's own URL. The swagger chalice writes points at them by
            # GetAtt (API -> functions -> API: a cycle); point it at their fixed names instead.
            api.add_property_override("DefinitionBody", self._definition_body_by_name())
        return self._public_base_url()

    def _definition_body_by_name(self) -> dict[str, Any]:
        by_logical_id = {fn.logical_id: self.function_names[fn.name] for fn in self.app_model.functions}

        def rewrite(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: rewrite(v) for k, v in node.items()}
            if isinstance(node, list):
                return [rewrite(v) for v in node]
            if isinstance(node, str):
                return re.sub(r"\$\{(\w+)\.Arn\}", lambda m: (
                    "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
                    + by_logical_id[m.group(1)]) if m.group(1) in by_logical_id else m.group(0), node)
            return node

        return rewrite(self.sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"])

    def _api_gateway_logging_account(self) -> apigw.CfnAccount:
        """API Gateway writes access logs through an account-wide role (one per account and region)."""
        role = iam.Role(self, "ApiGatewayLoggingRole", assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
                        managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(
                            "service-role/AmazonAPIGatewayPushToCloudWatchLogs")])
        # Kept on stack deletion: another stage of the same account may be using it.
        role.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        return apigw.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)

    def _outbox_stream(self) -> None:
        fn = self.app_model.function(OUTBOX_STREAM_FUNCTION)
        if fn is None:
            return
        lambda_.CfnEventSourceMapping(
            self, "OutboxStreamMapping", function_name=cdk.Fn.ref(fn.logical_id),
            event_source_arn=self.table.table_stream_arn, starting_position="LATEST", batch_size=10,
            maximum_batching_window_in_seconds=1, bisect_batch_on_function_error=True, maximum_retry_attempts=3,
            maximum_record_age_in_seconds=3600, function_response_types=["ReportBatchItemFailures"],
            filter_criteria={"filters": [{"pattern": json.dumps(OUTBOX_STREAM_FILTER)}]},
            destination_config={"onFailure": {"destination": self.dlq.queue_arn}})

    def _ses_events(self) -> None:
        """SES bounces and complaints (SNS topic of the configuration set) -> invoice delivery status."""
        fn = self.app_model.function(SES_EVENTS_FUNCTION)
        if fn is None:
            return
        lambda_.CfnPermission(self, "SesEventsInvoke", action="lambda:InvokeFunction",
                              function_name=cdk.Fn.ref(fn.logical_id), principal="sns.amazonaws.com",
                              source_arn=self.ses_events_topic.topic_arn)
        sns.CfnSubscription(self, "SesEventsSubscription", protocol="lambda",
                            topic_arn=self.ses_events_topic.topic_arn,
                            endpoint=cdk.Fn.get_att(fn.logical_id, "Arn").to_string())

    def _waf(self) -> None:
        from . import waf

        waf.add_public_routes_rate_limit(self)

    def _outputs(self) -> None:
        cdk.CfnOutput(self, "ApiUrl", value=self.api_url)
        cdk.CfnOutput(self, "TableName", value=self.table.table_name)
        cdk.CfnOutput(self, "DocumentsBucketName", value=self.bucket.bucket_name)
        cdk.CfnOutput(self, "SecretName", value=self.secret.secret_name)
        cdk.CfnOutput(self, "SesEventsTopicArn", value=self.ses_events_topic.topic_arn)
        cdk.CfnOutput(self, "DeadLetterQueueUrl", value=self.dlq.queue_url)
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        if self.mail_identity is not None:
            for i, (name, value) in enumerate(((self.mail_identity.dkim_dns_token_name1,
                                               self.mail_identity.dkim_dns_token_value1),
                                              (self.mail_identity.dkim_dns_token_name2,
                                               self.mail_identity.dkim_dns_token_value2),
                                              (self.mail_identity.dkim_dns_token_name3,
                                               self.mail_identity.dkim_dns_token_value3)), start=1):
                cdk.CfnOutput(self, f"DkimRecord{i}", value=cdk.Fn.join(" CNAME ", [name, value]),
                              description="add to the mail domain's DNS (SES Easy DKIM)")


def gateway_responses() -> dict[str, Any]:
    """SAM GatewayResponses from chalicelib/api/gateway_responses.py (the local server uses the same table)."""
    return {kind: {"StatusCode": str(status),
                   "ResponseParameters": {"Headers": {"Content-Type": "'application/json'"}},
                   "ResponseTemplates": {"application/json": gateway_response_body(kind)}}
            for kind, (status, _code, _message) in GATEWAY_RESPONSES.items()}


RETENTION = {7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
             90: logs.RetentionDays.THREE_MONTHS, 180: logs.RetentionDays.SIX_MONTHS,
             365: logs.RetentionDays.ONE_YEAR, 400: logs.RetentionDays.THIRTEEN_MONTHS}


def _retention(days: int) -> logs.RetentionDays:
    if days not in RETENTION:
        raise ValueError(f"log_retention_days must be one of {sorted(RETENTION)}, not {days}")
    return RETENTION[days]


def _read_packaged_template(construct: Chalice) -> dict[str, Any]:
    """The SAM template chalice just packaged (the construct keeps only its CfnInclude)."""
    path = Path(construct._sam_package_dir) / "sam.json"  # chalice 1.34 layout (pinned)
    return json.loads(path.read_text())
