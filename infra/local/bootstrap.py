"""Creates, on the local moto server, every AWS resource the app expects.

On AWS the CDK stack in infra/ creates the same resources; here they are made
with the same names the configuration points at.
"""

from __future__ import annotations

import json
import os
from typing import Any

LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "eu-west-3",
    "AWS_REGION": "eu-west-3",
    "STAGE": "local",
    "TABLE_NAME": "ar-ledger",
    "DOCUMENTS_BUCKET": "ar-documents",
    "EVENT_BUS_NAME": "ar-events",
    "MAIL_FROM": "factures@demo-seller.example",
    "SECRETS_NAME": "ar-backend/local",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}

# Local only: every event on the app bus is copied to this queue so a developer
# (or a test) can read what subscribers would receive.
EVENTS_TAP_QUEUE = "ar-events-tap"


def local_env(endpoint: str, public_base_url: str, **extra: str) -> dict[str, str]:
    """Environment for the app and tools pointing at the local stack."""
    return {**LOCAL_ENV, "AWS_ENDPOINT_URL": endpoint, "PUBLIC_BASE_URL": public_base_url, **extra}


def _client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client(service, region_name=LOCAL_ENV["AWS_REGION"], endpoint_url=endpoint,
                                          aws_access_key_id="local", aws_secret_access_key="local")


def create_resources(endpoint: str, env: dict[str, str] | None = None) -> None:
    """Idempotently create the table, bucket, mail identity, event bus and secret."""
    env = env or LOCAL_ENV
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    from chalicelib.adapters.dynamodb.models import TableItem, configure
    from chalicelib.adapters.dynamodb.schema import TABLE_ATTRS

    configure(table_name=env["TABLE_NAME"], region=env["AWS_REGION"], host=endpoint)
    if not TableItem.exists():
        TableItem.create_table(wait=True)
        _client("dynamodb", endpoint).update_time_to_live(
            TableName=env["TABLE_NAME"],
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TABLE_ATTRS["ttl_attribute"]})

    s3 = _client("s3", endpoint)
    bucket = env["DOCUMENTS_BUCKET"]
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": env["AWS_REGION"]})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    ses = _client("sesv2", endpoint)
    identities = {i["IdentityName"] for i in ses.list_email_identities().get("EmailIdentities", [])}
    if env["MAIL_FROM"] not in identities:
        ses.create_email_identity(EmailIdentity=env["MAIL_FROM"])

    events = _client("events", endpoint)
    buses = {b["Name"] for b in events.list_event_buses().get("EventBuses", [])}
    if env["EVENT_BUS_NAME"] not in buses:
        events.create_event_bus(Name=env["EVENT_BUS_NAME"])
        sqs = _client("sqs", endpoint)
        queue_url = sqs.create_queue(QueueName=EVENTS_TAP_QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        events.put_rule(Name="tap-all", EventBusName=env["EVENT_BUS_NAME"],
                        EventPattern=json.dumps({"source": ["ar-backend"]}))
        events.put_targets(Rule="tap-all", EventBusName=env["EVENT_BUS_NAME"],
                           Targets=[{"Id": "tap", "Arn": queue_arn}])

    secrets = _client("secretsmanager", endpoint)
    try:
        secrets.describe_secret(SecretId=env["SECRETS_NAME"])
    except secrets.exceptions.ResourceNotFoundException:
        secrets.create_secret(Name=env["SECRETS_NAME"], SecretString=json.dumps({}))


def read_tapped_events(endpoint: str, max_messages: int = 10) -> list[dict[str, Any]]:
    """Events published on the bus so far (local tap queue), oldest first; consumes them."""
    sqs = _client("sqs", endpoint)
    url = sqs.get_queue_url(QueueName=EVENTS_TAP_QUEUE)["QueueUrl"]
    out: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return out
        for msg in batch:
            out.append(json.loads(msg["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
        if len(out) >= max_messages:
            return out
