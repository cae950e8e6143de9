"""Optional WAF web ACL (``-c waf=true``): a per-IP rate limit on the public routes.

Public routes (no authorizer: health, webhooks, hosted pages, the OpenAPI document)
are read from the app, like everything else. A client over the limit gets our JSON
error (429, code throttled) rather than WAF's default 403 page. Priced apart: see
docs/cost.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import Fn
from aws_cdk import aws_wafv2 as wafv2

from chalicelib.api.gateway_responses import GATEWAY_RESPONSES, body

from .stack import API_STAGE

if TYPE_CHECKING:
    from .stack import ArBackendStack


def public_path_prefixes(paths: list[str]) -> list[str]:
    """Static prefixes of the public routes: /pay/{token} -> /pay/, /health -> /health."""
    prefixes = {p.split("{", 1)[0] for p in paths}
    # Drop a prefix already covered by a shorter one.
    return sorted(p for p in prefixes if not any(o != p and p.startswith(o) and o.endswith("/") for o in prefixes))


def _starts_with(prefix: str) -> dict[str, Any]:
    return {"byteMatchStatement": {
        "fieldToMatch": {"uriPath": {}}, "positionalConstraint": "STARTS_WITH", "searchString": prefix,
        "textTransformations": [{"priority": 0, "type": "NONE"}]}}


def add_public_routes_rate_limit(stack: ArBackendStack) -> wafv2.CfnWebACL:
    s = stack.settings
    prefixes = public_path_prefixes([r.path for r in stack.app_model.public_routes])
    # The stage appears in the path on the execute-api URL (/api/pay/...), not behind a custom domain.
    matches = [_starts_with(p) for prefix in prefixes for p in (prefix, f"/{API_STAGE}{prefix}")]
    scope_down = matches[0] if len(matches) == 1 else {"orStatement": {"statements": matches}}
    status, _code, _message = GATEWAY_RESPONSES["THROTTLED"]
    acl = wafv2.CfnWebACL(
        stack, "WebAcl", name=f"{s.prefix}-public", scope="REGIONAL", default_action={"allow": {}},
        visibility_config={"cloudWatchMetricsEnabled": True, "metricName": f"{s.prefix}-waf",
                           "sampledRequestsEnabled": True},
        custom_response_bodies={"throttled": {"contentType": "APPLICATION_JSON", "content": body("THROTTLED")}},
        rules=[{
            "name": "public-routes-rate-limit", "priority": 0,
            "statement": {"rateBasedStatement": {"limit": s.waf_public_rate_limit, "aggregateKeyType": "IP",
                                                 "scopeDownStatement": scope_down}},
            "action": {"block": {"customResponse": {"responseCode": status,
                                                    "customResponseBodyKey": "throttled"}}},
            "visibilityConfig": {"cloudWatchMetricsEnabled": True, "metricName": f"{s.prefix}-public-rate",
                                 "sampledRequestsEnabled": True},
        }])
    # ${RestAPI.Stage} is the stage SAM creates for the API (a reference, so it exists first).
    wafv2.CfnWebACLAssociation(
        stack, "WebAclAssociation", web_acl_arn=acl.attr_arn,
        resource_arn=Fn.sub("arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RestAPI}"
                            "/stages/${RestAPI.Stage}"))
    return acl
