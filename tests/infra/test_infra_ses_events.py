"""SES bounces and complaints reach the app: the topic is subscribed to the ses_events function."""

from __future__ import annotations

from typing import Any


def test_ses_events_topic_is_subscribed_to_its_function(stage: Any) -> None:
    subscriptions = stage.resources("AWS::SNS::Subscription")
    lambda_subs = [s for s in subscriptions.values() if s["Properties"]["Protocol"] == "lambda"]
    assert lambda_subs, "the SES events topic must deliver to a function"
    endpoint = lambda_subs[0]["Properties"]["Endpoint"]
    logical_id = endpoint["Fn::GetAtt"][0]
    handler = stage.functions()[logical_id]["Properties"]["Handler"]
    assert handler.endswith("ses_events")
    permissions = [p for p in stage.resources("AWS::Lambda::Permission").values()
                   if p["Properties"]["Principal"] == "sns.amazonaws.com"]
    assert permissions and permissions[0]["Properties"]["SourceArn"] == lambda_subs[0]["Properties"]["TopicArn"]


def test_outbox_functions_may_store_documents(stage: Any) -> None:
    from infra.cdk.permissions import DOCUMENTS_WRITE, PROFILES

    assert DOCUMENTS_WRITE in PROFILES["outbox"] and DOCUMENTS_WRITE in PROFILES["outbox_stream"]
