"""Domain errors: small classes the HTTP edge maps to status codes in one place.

Every error carries a machine-readable ``code``, a message that says what was
wrong *and how to fix it*, and optionally the offending ``field`` (a dotted path
such as ``lines[2].quantity``).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class of every error the core raises on purpose."""

    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class ValidationError(DomainError):
    """Input that is well-formed but breaks a business rule (HTTP 422)."""

    code = "validation_error"


class BadRequest(DomainError):
    """Input that cannot be parsed at all (HTTP 400)."""

    code = "bad_request"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The request is valid but clashes with the current state (HTTP 409)."""

    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class ConcurrencyConflict(Conflict):
    """Someone else changed the same records first; the use case may be retried."""

    code = "concurrent_update"


class ServiceUnavailable(DomainError):
    """Our side is not ready (a secret not set yet, a dependency down): HTTP 503, retry later."""

    code = "service_unavailable"


class Gone(DomainError):
    """A rotated link (HTTP 410): a newer one replaced it."""

    code = "link_replaced"


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key was sent with a different request (HTTP 422)."""

    code = "idempotency_key_reused"


class CurrencyError(ValidationError):
    code = "currency_error"


class PaymentGatewayError(DomainError):
    """The payment provider failed or refused (HTTP 502)."""

    code = "payment_provider_error"


class WebhookSignatureError(DomainError):
    """A webhook whose signature is missing, wrong or stale (HTTP 400)."""

    code = "invalid_signature"
