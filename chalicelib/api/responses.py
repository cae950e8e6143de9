"""Keeps every error body in our ``{"code", "message"}`` shape, even chalice's own."""

from __future__ import annotations


from chalice import Response

_CHALICE_CODES = {
    "BadRequestError": "bad_request", "NotFoundError": "not_found", "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type", "RequestTimeoutError": "timeout",
    "TooManyRequestsError": "throttled", "ForbiddenError": "forbidden", "UnauthorizedError": "unauthorized",
    "ConflictError": "conflict", "UnprocessableEntityError": "validation_error",
    "InternalServerError": "internal_error",
}


def normalise_error(response: Response) -> Response:
    """Rewrite chalice's ``{"Code", "Message"}`` errors (unsupported media type, 405...) to ours."""
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body and "code" not in body:
        code = _CHALICE_CODES.get(str(body.get("Code")), "error")
        message = str(body.get("Message") or code)
        if code == "unsupported_media_type":
            message += ": send JSON with 'Content-Type: application/json'"
        response.body = {"code": code, "message": message}
    return response
