"""Stripe-shaped API errors raised anywhere in the emulator and rendered once by the server."""

from __future__ import annotations

from typing import Any


class StripeApiError(Exception):
    """An error the emulator answers with ``{"error": {...}}`` like Stripe's API.

    ``status`` is the HTTP status (400, 401, 402, 404, ...); ``cacheable`` says whether the
    idempotency layer may store the answer (Stripe stores results once an endpoint started
    executing, e.g. a declined payment, but not validation failures).
    """

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, cacheable: bool = False,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.cacheable = cacheable
        self.extra = extra

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, param: str | None = None, code: str | None = "parameter_invalid") -> StripeApiError:
    return StripeApiError(400, message, code=code, param=param)


def missing(param: str) -> StripeApiError:
    return StripeApiError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def no_such(kind: str, object_id: str, param: str = "id", status: int = 404) -> StripeApiError:
    """``No such customer: 'cus_x'`` (404 for an id in the path, 400 for an id given as a parameter)."""
    return StripeApiError(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)
