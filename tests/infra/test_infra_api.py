"""API Gateway: authorizer on finance routes, our JSON errors, throttling, access logs, optional WAF."""

from __future__ import annotations

import json
from typing import Any

from infra_synth import Synth

from chalicelib.api.gateway_responses import GATEWAY_RESPONSES
from infra.cdk.waf import public_path_prefixes


def _api(synth: Synth) -> dict[str, Any]:
    return synth.json["Resources"]["RestAPI"]["Properties"]


def test_gateway_responses_use_our_json_error_shape(stage: Synth) -> None:
    responses = _api(stage)["GatewayResponses"]
    assert set(responses) == set(GATEWAY_RESPONSES)
    for kind, (status, code, message) in GATEWAY_RESPONSES.items():
        assert responses[kind]["StatusCode"] == str(status), kind
        assert json.loads(responses[kind]["ResponseTemplates"]["application/json"]) == {
            "code": code, "message": message}
    # The authorizer denies unknown keys: API Gateway answers ACCESS_DENIED, which must read as a 401.
    assert responses["ACCESS_DENIED"]["StatusCode"] == "401"
    assert responses["THROTTLED"]["StatusCode"] == "429"


def test_finance_routes_need_the_authorizer_and_public_routes_do_not(stage: Synth, app_model: Any) -> None:
    paths = _api(stage)["DefinitionBody"]["paths"]
    assert app_model.public_routes, "at least /health is public"
    for route in app_model.routes:
        security = paths[route.path][route.method.lower()].get("security")
        if route.authorizer:
            assert security == [{route.authorizer: []}], f"{route.method} {route.path} is not protected"
        else:
            assert not security, f"{route.method} {route.path} should be public"
    authorizers = _api(stage)["DefinitionBody"]["securityDefinitions"]
    assert authorizers["api_key_authorizer"]["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"] == 60


def test_stage_is_throttled_traced_and_access_logged(stage: Synth) -> None:
    props = _api(stage)
    (settings,) = props["MethodSettings"]
    assert settings["ResourcePath"] == "/*" and settings["HttpMethod"] == "*"
    assert 0 < settings["ThrottlingRateLimit"] and 0 < settings["ThrottlingBurstLimit"]
    assert props["TracingEnabled"] is True
    access = props["AccessLogSetting"]
    assert "$context.requestId" in access["Format"] and "$context.status" in access["Format"]
    # pay-page and portal paths carry bearer tokens; source IPs are personal data: neither is logged
    assert "$context.path" not in access["Format"] and "sourceIp" not in access["Format"]
    logs_id = next(lid for lid, r in stage.resources("AWS::Logs::LogGroup").items()
                   if r["Properties"]["LogGroupName"] == f"/aws/apigateway/ar-backend-{stage.stage}/access")
    assert {"Ref": logs_id} in access["DestinationArn"]["Fn::Join"][1]
    assert props["Name"] == f"ar-backend-{stage.stage}"
    # API Gateway can only write logs through the account's CloudWatch role.
    assert "ApiGatewayAccount" in stage.json["Resources"]["RestAPI"]["DependsOn"]


def test_functions_know_the_api_url_without_a_dependency_cycle(stage: Synth) -> None:
    body = json.dumps(_api(stage)["DefinitionBody"])
    assert ".Arn}" not in body, "the swagger must name the functions, not GetAtt them (cycle with PUBLIC_BASE_URL)"
    assert f"function:ar-backend-{stage.stage}-api/invocations" in body
    for lid, fn in stage.functions().items():
        url = fn["Properties"]["Environment"]["Variables"]["PUBLIC_BASE_URL"]
        assert url == {"Fn::Sub": "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/api"}, lid


def test_a_custom_public_url_keeps_chalices_references(with_waf: Synth) -> None:
    for fn in with_waf.functions().values():
        assert fn["Properties"]["Environment"]["Variables"]["PUBLIC_BASE_URL"] == "https://pay.example.com"
    assert "${APIHandler.Arn}" in json.dumps(_api(with_waf)["DefinitionBody"])


def test_waf_is_off_by_default(stage: Synth) -> None:
    assert not stage.resources("AWS::WAFv2::WebACL")


def test_waf_rate_limits_the_public_routes(with_waf: Synth, app_model: Any) -> None:
    (acl,) = with_waf.resources("AWS::WAFv2::WebACL").values()
    (rule,) = acl["Properties"]["Rules"]
    rate = rule["Statement"]["RateBasedStatement"]
    assert rate["AggregateKeyType"] == "IP" and rate["Limit"] == 300
    searched = {s["ByteMatchStatement"]["SearchString"] for s in rate["ScopeDownStatement"]["OrStatement"]["Statements"]}
    for prefix in public_path_prefixes([r.path for r in app_model.public_routes]):
        assert {prefix, f"/api{prefix}"} <= searched
    assert rule["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    (association,) = with_waf.resources("AWS::WAFv2::WebACLAssociation").values()
    assert "${RestAPI.Stage}" in association["Properties"]["ResourceArn"]["Fn::Sub"]
    assert with_waf.resources("AWS::SNS::Subscription"), "alarm_email subscribes to the alarm topic"


def test_public_prefixes() -> None:
    assert public_path_prefixes(["/health", "/pay/{token}", "/pay/{token}/pdf", "/webhooks/stripe"]) == [
        "/health", "/pay/", "/webhooks/stripe"]
