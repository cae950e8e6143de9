"""Least privilege: what each function of the app may do, as named capabilities.

Every function gets its own role built from the capabilities of its profile. A profile
is chosen by name (``FUNCTION_PROFILES``) or else by the kind of handler (``KIND_PROFILES``),
so a new scheduled job gets the "job" profile until someone gives it a narrower one here.

Rules the tests enforce: no wildcard action on DynamoDB or S3, no DynamoDB or S3
statement on Resource "*"; the data is reached only through the table (and its
indexes and stream), the document bucket, the bus, the secret, the SES identity and
configuration set, and the dead-letter queue of the stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_iam as iam

# Capabilities ---------------------------------------------------------------------------------
LEDGER_GET = "ledger_get"            # GetItem on the table (the authorizer reads one API key)
LEDGER_READ = "ledger_read"          # Get / BatchGet / Query on the table and its indexes
LEDGER_WRITE = "ledger_write"        # Put / Update / Delete / BatchWrite / ConditionCheck (transactions)
STREAM_READ = "stream_read"          # read the table's stream (event source mapping)
DOCUMENTS_READ = "documents_read"
DOCUMENTS_WRITE = "documents_write"
EVENTS_PUT = "events_put"            # business events on the application bus
MAIL_SEND = "mail_send"              # SES, from the configured identity, through the configuration set
SMS_SEND = "sms_send"                # SNS direct SMS (never to a topic)
SECRETS_READ = "secrets_read"        # the provider keys (Stripe)
DLQ_SEND = "dlq_send"                # on-failure destination of async and stream invocations

PROFILES: dict[str, frozenset[str]] = {
    # Every route runs here, including the admin outbox drain, hence events and mail.
    # (admin routes run the jobs by hand, e.g. POST /dunning/run, hence SMS too)
    "api": frozenset({LEDGER_READ, LEDGER_WRITE, DOCUMENTS_READ, DOCUMENTS_WRITE, EVENTS_PUT, MAIL_SEND,
                      SMS_SEND, SECRETS_READ}),
    "authorizer": frozenset({LEDGER_GET}),
    # The outbox stores issued documents in S3 and sends reminders (mail and SMS).
    "outbox": frozenset({LEDGER_READ, LEDGER_WRITE, DOCUMENTS_READ, DOCUMENTS_WRITE, EVENTS_PUT, MAIL_SEND,
                         SMS_SEND, SECRETS_READ, DLQ_SEND}),
    "outbox_stream": frozenset({LEDGER_READ, LEDGER_WRITE, DOCUMENTS_READ, DOCUMENTS_WRITE, EVENTS_PUT, MAIL_SEND,
                                SMS_SEND, SECRETS_READ, STREAM_READ, DLQ_SEND}),
    # Scheduled and event-driven jobs (dunning sweep, SEPA collections, recurring billing, ...).
    "job": frozenset({LEDGER_READ, LEDGER_WRITE, DOCUMENTS_READ, DOCUMENTS_WRITE, EVENTS_PUT, MAIL_SEND, SMS_SEND,
                      SECRETS_READ, DLQ_SEND}),
    # Jobs that only read and write the ledger: the aggregates check (it rewrites drifted cells), the
    # SES notifications (a bounce marks the invoice's delivery) and the SEPA run (it queues each debit in
    # the outbox, whose function calls the provider); what follows goes through the outbox.
    "ledger_job": frozenset({LEDGER_READ, LEDGER_WRITE, DLQ_SEND}),
}

KIND_PROFILES = {"api": "api", "authorizer": "authorizer", "schedule": "job", "event": "job", "poller": "job",
                 "lambda": "job"}

# Narrower profiles by function name; add a job here when it needs less than "job".
FUNCTION_PROFILES = {"outbox_drain": "outbox", "outbox_stream": "outbox_stream",
                     "reconcile_aggregates": "ledger_job", "ses_events": "ledger_job",
                     "sepa_collections": "ledger_job"}


def profile_for(name: str, kind: str) -> str:
    return FUNCTION_PROFILES.get(name) or KIND_PROFILES[kind]


@dataclass(frozen=True)
class DataResources:
    """ARNs (tokens) of what the stage's functions may touch."""

    table_arn: str
    table_name: str
    bucket_arn: str
    bus_arn: str
    secret_arn: str
    dlq_arn: str
    mail_identity_arns: tuple[str, ...]
    configuration_set_arn: str


def _table_stream_arn(stack: Stack, table_name: str) -> str:
    return stack.format_arn(service="dynamodb", resource="table", resource_name=f"{table_name}/stream/*")


def capability_statements(capability: str, res: DataResources, stack: Stack) -> list[iam.PolicyStatement]:
    table_and_indexes = [res.table_arn, f"{res.table_arn}/index/*"]
    if capability == LEDGER_GET:
        return [iam.PolicyStatement(sid="LedgerGet", actions=["dynamodb:GetItem", "dynamodb:DescribeTable"],
                                    resources=[res.table_arn])]
    if capability == LEDGER_READ:
        return [iam.PolicyStatement(sid="LedgerRead", actions=[
            "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:DescribeTable"],
            resources=table_and_indexes)]
    if capability == LEDGER_WRITE:
        return [iam.PolicyStatement(sid="LedgerWrite", actions=[
            "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
            "dynamodb:ConditionCheckItem"], resources=[res.table_arn])]
    if capability == STREAM_READ:
        return [iam.PolicyStatement(sid="LedgerStreamRead", actions=[
            "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
            resources=[_table_stream_arn(stack, res.table_name)])]
    if capability == DOCUMENTS_READ:
        return [iam.PolicyStatement(sid="DocumentsRead", actions=["s3:GetObject", "s3:GetObjectVersion"],
                                    resources=[f"{res.bucket_arn}/*"]),
                iam.PolicyStatement(sid="DocumentsList", actions=["s3:ListBucket"], resources=[res.bucket_arn])]
    if capability == DOCUMENTS_WRITE:
        # PutObjectRetention: the prod lock is set per object at write time (adapters/storage.py)
        return [iam.PolicyStatement(sid="DocumentsWrite", actions=["s3:PutObject", "s3:PutObjectRetention"],
                                    resources=[f"{res.bucket_arn}/*"])]
    if capability == EVENTS_PUT:
        return [iam.PolicyStatement(sid="EventsPut", actions=["events:PutEvents"], resources=[res.bus_arn])]
    if capability == MAIL_SEND:
        return [iam.PolicyStatement(sid="MailSend", actions=["ses:SendEmail", "ses:SendRawEmail"],
                                    resources=[*res.mail_identity_arns, res.configuration_set_arn])]
    if capability == SMS_SEND:
        # SMS to a phone number has no resource ARN, so the allow needs "*"; the deny keeps
        # it from reaching any topic (phone-number publishes carry no topic ARN).
        return [iam.PolicyStatement(sid="SmsSend", actions=["sns:Publish"], resources=["*"]),
                iam.PolicyStatement(sid="SmsNeverToTopics", effect=iam.Effect.DENY, actions=["sns:Publish"],
                                    resources=[stack.format_arn(service="sns", region="*", account="*",
                                                                resource="*")])]
    if capability == SECRETS_READ:
        return [iam.PolicyStatement(sid="SecretsRead", actions=["secretsmanager:GetSecretValue"],
                                    resources=[res.secret_arn])]
    if capability == DLQ_SEND:
        return [iam.PolicyStatement(sid="DeadLetterSend", actions=["sqs:SendMessage"], resources=[res.dlq_arn])]
    raise KeyError(f"unknown capability {capability!r}")


def runtime_statements(log_group_arn: str) -> list[iam.PolicyStatement]:
    """What every function needs to run: its own log group and X-Ray."""
    return [
        iam.PolicyStatement(sid="OwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[log_group_arn]),
        # X-Ray has no resource-level permissions.
        iam.PolicyStatement(sid="Tracing", actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                            resources=["*"]),
    ]


def function_policy(profile: str, res: DataResources, log_group_arn: str, stack: Stack) -> iam.PolicyDocument:
    statements = runtime_statements(log_group_arn)
    for capability in sorted(PROFILES[profile]):
        statements.extend(capability_statements(capability, res, stack))
    return iam.PolicyDocument(statements=statements)
