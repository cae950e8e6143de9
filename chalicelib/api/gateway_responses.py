"""What API Gateway answers by itself (before our code runs), in our JSON error shape.

Used twice so the two stay identical: by infra/ to configure the gateway's
GatewayResponses on AWS, and by the local API server (infra/local) which applies
the same mapping to chalice's local gateway.
"""

from __future__ import annotations

import json

# gateway response type -> (status code, our error code, message)
GATEWAY_RESPONSES: dict[str, tuple[int, str, str]] = {
    "UNAUTHORIZED": (401, "unauthorized",
                     "missing API key: send the header 'Authorization: Bearer <key>'"),
    "ACCESS_DENIED": (401, "unauthorized",
                      "invalid or revoked API key: send 'Authorization: Bearer <key>' with an active key"),
    "MISSING_AUTHENTICATION_TOKEN": (404, "not_found", "no such route: see GET /openapi.json for the API"),
    "THROTTLED": (429, "throttled", "too many requests: slow down and retry after a short pause"),
    "REQUEST_TOO_LARGE": (413, "payload_too_large", "the request body is too large"),
    "DEFAULT_5XX": (502, "gateway_error", "the API is temporarily unavailable: retry shortly"),
}


def body(response_type: str) -> str:
    status, code, message = GATEWAY_RESPONSES[response_type]
    return json.dumps({"code": code, "message": message})
