"""Data stays private and every function holds only what it needs."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Match
from infra_synth import Synth, as_list, iter_policy_statements

DATA_SERVICES = ("dynamodb:", "s3:")
SECRET_LOOKING = re.compile(r"\b(sk|rk|pk)_(live|test)_[0-9A-Za-z]{8,}|\bwhsec_[0-9A-Za-z]{8,}")


# -- documents bucket ---------------------------------------------------------------------------
def test_bucket_is_private_versioned_encrypted_and_tls_only(stage: Synth) -> None:
    stage.template.has_resource_properties("AWS::S3::Bucket", {
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "VersioningConfiguration": {"Status": "Enabled"},
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    })
    (policy,) = stage.resources("AWS::S3::BucketPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in statements)
    assert all(s["Effect"] == "Deny" for s in statements), "the bucket policy only denies: no public grant"


def test_prod_bucket_is_locked_in_compliance_mode_for_ten_years(synthesized: dict[str, Synth]) -> None:
    (bucket,) = synthesized["prod"].resources("AWS::S3::Bucket").values()
    props = bucket["Properties"]
    assert props["ObjectLockEnabled"] is True
    # the retention is set per object by the app (evidence packs stay deletable): no bucket default
    assert "DefaultRetention" not in (props.get("ObjectLockConfiguration") or {}).get("Rule", {})
    assert bucket["DeletionPolicy"] == "Retain"
    (dev_bucket,) = synthesized["dev"].resources("AWS::S3::Bucket").values()
    assert "ObjectLockEnabled" not in dev_bucket["Properties"]
    # exports (regenerable, unlocked) expire with their jobs; nothing else does
    for b in (bucket, dev_bucket):
        rules = {r["Id"]: r for r in b["Properties"]["LifecycleConfiguration"]["Rules"]}
        assert rules["expire-exports"]["Prefix"] == "exports/" and rules["expire-exports"]["ExpirationInDays"] == 30
        assert [r for r in rules.values() if "ExpirationInDays" in r] == [rules["expire-exports"]]
    for stage, days in (("prod", "3653"), ("dev", "0")):
        for fn in synthesized[stage].resources("AWS::Lambda::Function").values():
            variables = fn["Properties"].get("Environment", {}).get("Variables", {})
            if "DOCUMENTS_BUCKET" in variables:
                assert variables["DOCUMENTS_RETENTION_DAYS"] == days, stage
        writers = [s for r in synthesized[stage].resources("AWS::IAM::Role").values()
                   for p in r["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]
                   if s.get("Sid") == "DocumentsWrite"]
        assert writers and all("s3:PutObjectRetention" in s["Action"] for s in writers)


# -- IAM ----------------------------------------------------------------------------------------
def test_no_wildcard_action_on_data(stage: Synth) -> None:
    checked = 0
    for lid, statement in iter_policy_statements(stage.json):
        actions = as_list(statement.get("Action", []))
        assert "*" not in actions, f"{lid}: Action '*'"
        data_actions = [a for a in actions if isinstance(a, str) and a.startswith(DATA_SERVICES)]
        for action in data_actions:
            checked += 1
            assert "*" not in action, f"{lid}: wildcard data action {action}"
        if data_actions and statement["Effect"] == "Allow":
            assert "*" not in as_list(statement["Resource"]), f"{lid}: {data_actions} on Resource '*'"
    assert checked > 0


def test_every_function_has_its_own_role_from_this_stack(stage: Synth, app_model: Any) -> None:
    roles = stage.resources("AWS::IAM::Role")
    used = {}
    for lid, fn in stage.functions().items():
        role = fn["Properties"]["Role"]
        assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{lid} uses a role from outside the stack"
        role_id = role["Fn::GetAtt"][0]
        assert role_id in roles, lid
        assert role_id not in used, f"{lid} shares the role of {used.get(role_id)}"
        used[role_id] = lid
    assert set(used.values()) == {f.logical_id for f in app_model.functions}
    assert "DefaultRole" not in stage.json["Resources"], "chalice's shared role must not be created"


def _allowed_actions(synth: Synth, function_logical_id: str) -> set[str]:
    role_id = synth.functions()[function_logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = synth.json["Resources"][role_id]
    return {a for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]
            if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def test_roles_follow_the_function_profiles(stage: Synth, app_model: Any) -> None:
    authorizer = next(f for f in app_model.functions if f.kind == "authorizer")
    assert {a for a in _allowed_actions(stage, authorizer.logical_id) if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem", "dynamodb:DescribeTable"}
    assert not any(a.startswith(("s3:", "ses:", "events:", "secretsmanager:", "sns:"))
                   for a in _allowed_actions(stage, authorizer.logical_id))
    api = _allowed_actions(stage, "APIHandler")
    # the API may send SMS (admin routes run the dunning sweep by hand), never to topics (see below)
    assert "dynamodb:GetRecords" not in api and "dynamodb:Scan" not in api
    stream = _allowed_actions(stage, "OutboxStream")
    assert {"dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream",
            "dynamodb:ListStreams", "sqs:SendMessage", "events:PutEvents"} <= stream
    for fn in app_model.functions:
        assert "dynamodb:Scan" not in _allowed_actions(stage, fn.logical_id), "the ledger never scans"
    # jobs that only touch the ledger get nothing else: no mail, SMS, documents, events or secrets
    for name in ("reconcile_aggregates", "ses_events", "sepa_collections"):
        fn = app_model.function(name)
        allowed = _allowed_actions(stage, fn.logical_id)
        assert "dynamodb:TransactWriteItems" in allowed or "dynamodb:PutItem" in allowed, name
        assert not any(a.startswith(("s3:", "ses:", "events:", "secretsmanager:", "sns:")) for a in allowed), name


def test_sms_permission_cannot_publish_to_topics(stage: Synth) -> None:
    for lid, statement in iter_policy_statements(stage.json):
        if "sns:Publish" in as_list(statement["Action"]) and statement["Effect"] == "Allow":
            role = stage.json["Resources"][lid]
            denies = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]
                      if s["Effect"] == "Deny" and "sns:Publish" in as_list(s["Action"])]
            assert denies, f"{lid} may publish to any topic"


# -- secrets ------------------------------------------------------------------------------------
def test_secret_is_referenced_not_embedded(stage: Synth) -> None:
    (secret,) = stage.resources("AWS::SecretsManager::Secret").values()
    assert "SecretString" not in secret["Properties"] and "GenerateSecretString" not in secret["Properties"]
    name = secret["Properties"]["Name"]
    assert name == f"ar-backend/{stage.stage}"
    for lid, fn in stage.functions().items():
        env = fn["Properties"]["Environment"]["Variables"]
        assert env["SECRETS_NAME"] == name, lid
        assert not {"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"} & set(env), f"{lid} carries a secret value"
    assert not SECRET_LOOKING.search(json.dumps(stage.json)), "a secret-looking value is in the template"
    stage.template.has_resource_properties("AWS::IAM::Role", {"Policies": Match.array_with([Match.object_like({
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Action": "secretsmanager:GetSecretValue", "Resource": {"Ref": Match.any_value()}})])}})])})
