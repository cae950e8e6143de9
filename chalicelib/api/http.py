"""The HTTP edge: request parsing, authentication context, error mapping, responses.

A route is a few lines: ``@endpoint(bp, path, methods, role=...)`` gives it a
:class:`Ctx` (actor, parsed body, query parameters, idempotency key) and turns
whatever it raises into our JSON error shape, once, here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import uuid
from datetime import date
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from chalice import Blueprint, Response

from .. import wiring
from ..config import get_config
from ..domain.auth import Actor, role_allows
from ..domain.errors import (BadRequest, Conflict, DomainError, IdempotencyKeyReused, NotFound, PaymentGatewayError,
                             ServiceUnavailable, ValidationError)
from ..domain.fields import reject_unknown
from ..observability import logger
from ..services.common import IdempotencyRequest

JSON_HEADERS = {"Content-Type": "application/json"}


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


_STATUS: list[tuple[type[DomainError], int]] = [
    (Unauthorized, 401), (Forbidden, 403), (PayloadTooLarge, 413), (NotFound, 404),
    (IdempotencyKeyReused, 422), (Conflict, 409), (ValidationError, 422), (BadRequest, 400),
    (PaymentGatewayError, 502), (ServiceUnavailable, 503),
]


def status_for(error: DomainError) -> int:
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 400


def error_response(error: DomainError) -> Response:
    return Response(body=error.to_dict(), status_code=status_for(error), headers=dict(JSON_HEADERS))


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_SURROGATE = re.compile("[\ud800-\udfff]")


def refuse_lone_surrogates(data: Any) -> None:
    """JSON lets a string escape half a UTF-16 pair ("\\ud800"); Python keeps it as a lone surrogate that
    no UTF-8 encoder (DynamoDB, XML, e-mail) accepts. Refuse it here, naming the field (400)."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                raise BadRequest(
                    f"{path or 'request body'} contains a lone surrogate (\\u{ord(found.group()):04x}) at position "
                    f"{found.start()}: that is not a character; send valid Unicode (a complete pair such as "
                    "\\ud83d\\ude00, or the character itself in UTF-8)", field=path or None, code="invalid_text")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = key.encode("utf-8", "backslashreplace").decode("utf-8")
                child = f"{path}.{name}" if path else name
                if _SURROGATE.search(key):
                    stack.append((child, key))
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


class Ctx:
    """What a route needs from the current request."""

    def __init__(self, request: Any, actor: Actor | None) -> None:
        self.request = request
        self._actor = actor

    @property
    def actor(self) -> Actor:
        if self._actor is None:  # pragma: no cover - only public routes have no actor
            raise Unauthorized("this route needs an API key")
        return self._actor

    # -- body -------------------------------------------------------------------------------
    def body(self, allowed: Iterable[str] | None = None, *, required: bool = True) -> dict[str, Any]:
        """The JSON object body; unknown top-level fields are refused when ``allowed`` is given."""
        raw = self.request.raw_body or b""
        if len(raw) > get_config().max_body_bytes:
            raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {get_config().max_body_bytes}")
        if not raw.strip():
            if required:
                raise BadRequest("request body is empty: send a JSON object", code="invalid_json")
            return {}
        try:
            data = json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
        except RecursionError:
            raise BadRequest("request body is nested too deeply: send a flatter JSON object",
                             code="invalid_json") from None
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object ({...})", code="invalid_json")
        refuse_lone_surrogates(data)
        if allowed is not None:
            reject_unknown(data, allowed)
        return data

    def request_hash(self) -> str:
        h = hashlib.sha256()
        h.update(self.request.method.encode())
        h.update(self.request.context.get("resourcePath", "").encode())
        h.update(json.dumps(self.request.uri_params or {}, sort_keys=True).encode())
        h.update(self.request.raw_body or b"")
        return h.hexdigest()

    def idempotency(self) -> IdempotencyRequest | None:
        key = (self.request.headers or {}).get("idempotency-key")
        if key is None:
            return None
        return IdempotencyRequest(scope=self.actor.name, key=key, request_hash=self.request_hash())

    # -- query string ------------------------------------------------------------------------
    @property
    def query(self) -> Mapping[str, str]:
        return self.request.query_params or {}

    def check_query(self, allowed: Iterable[str]) -> None:
        unknown = sorted(set(self.query) - set(allowed))
        if unknown:
            raise BadRequest(f"unknown query parameter {unknown[0]!r}: allowed are {', '.join(sorted(allowed))}",
                             field=unknown[0], code="unknown_parameter")

    def q_str(self, name: str, max_len: int = 200) -> str | None:
        value = self.query.get(name)
        if value is not None and len(value) > max_len:
            raise BadRequest(f"{name} is too long", field=name)
        return value or None

    def q_int(self, name: str, default: int, low: int, high: int) -> int:
        value = self.query.get(name)
        if value is None or value == "":
            return default
        try:
            number = int(value)
        except ValueError:
            raise BadRequest(f"{name} must be a whole number between {low} and {high}", field=name) from None
        if not low <= number <= high:
            raise BadRequest(f"{name} must be between {low} and {high}", field=name)
        return number

    def q_bool(self, name: str) -> bool | None:
        value = self.query.get(name)
        if value is None or value == "":
            return None
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise BadRequest(f"{name} must be true or false", field=name)

    def q_date(self, name: str) -> date | None:
        value = self.query.get(name)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise BadRequest(f"{name} must be an ISO date such as 2026-03-31", field=name) from None

    def q_choice(self, name: str, choices: Iterable[str]) -> str | None:
        value = self.query.get(name)
        if value is None or value == "":
            return None
        options = tuple(choices)
        if value not in options:
            raise BadRequest(f"{name} must be one of {', '.join(options)}", field=name)
        return value


def created(body: dict[str, Any], replayed: bool, status: int = 201) -> Response:
    headers = dict(JSON_HEADERS)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(body=body, status_code=status, headers=headers)


def page_body(items: list[dict[str, Any]], next_cursor: str | None, scanned: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "list", "data": items, "has_more": next_cursor is not None,
                            "next_cursor": next_cursor}
    if scanned is not None:
        body["items_read"] = scanned
    return body


def resolve_actor(request: Any) -> Actor | None:
    """The authorizer's verdict from the request context; re-checked here when it is absent
    (direct invocation, tests without the gateway): the app never trusts a missing context."""
    context = (request.context or {}).get("authorizer") or {}
    if context.get("role") and context.get("key_name"):
        return Actor(name=context["key_name"], role=context["role"])
    return wiring.access().authenticate(bearer_token((request.headers or {}).get("authorization")))


def endpoint(bp: Blueprint, path: str, methods: list[str], *, role: str | None,
             content_types: list[str] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a route; ``role=None`` makes it public (no API key, no authorizer)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def view(**params: Any) -> Any:
            request = bp.current_request
            try:
                actor = None
                if role is not None:
                    actor = resolve_actor(request)
                    if actor is None:
                        raise Unauthorized("missing or invalid API key: send 'Authorization: Bearer <key>'")
                    if not role_allows(actor.role, role):
                        raise Forbidden(f"the {actor.role} role may not do this: it needs the {role} role",
                                        details={"required_role": role, "your_role": actor.role})
                    logger.append_keys(actor=actor.name)
                return fn(Ctx(request, actor), **params)
            except DomainError as exc:
                if status_for(exc) >= 500:
                    logger.warning("dependency error", extra={"code": exc.code})
                return error_response(exc)
            except Exception:  # noqa: BLE001 - the one place an unexpected error becomes a 500
                request_id = str(uuid.uuid4())
                logger.exception("unhandled error", extra={"error_id": request_id, "path": path})
                return Response(body={"code": "internal_error",
                                      "message": f"an unexpected error occurred; it was logged as {request_id}"},
                                status_code=500, headers=dict(JSON_HEADERS))

        route_kwargs: dict[str, Any] = {"methods": methods}
        if role is not None:
            from .authorizer import api_key_authorizer

            route_kwargs["authorizer"] = api_key_authorizer
        if content_types:
            route_kwargs["content_types"] = content_types
        bp.route(path, **route_kwargs)(view)
        return fn

    return decorate
