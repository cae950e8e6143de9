"""Secrets, fetched lazily (first use, not at import) and cached for 5 minutes.

On AWS they live in one Secrets Manager secret (JSON, name from SECRETS_NAME)
whose values are set out of band; locally and in CI they may come from the
environment through ``config``. Values are never logged.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from ..config import get_config
from ..domain.errors import ServiceUnavailable

_TTL_S = 300.0
_lock = threading.Lock()
_cache: dict[str, Any] = {}


class SecretUnavailable(ServiceUnavailable):
    """A configuration gap on our side (503, never the caller's fault): the provider retries webhooks."""

    code = "secret_unavailable"


def _from_secrets_manager() -> dict[str, str]:
    from .aws import client

    with _lock:
        if _cache and time.monotonic() - _cache["at"] < _TTL_S:
            return _cache["values"]
    secrets = client("secretsmanager")
    try:
        raw = secrets.get_secret_value(SecretId=get_config().secrets_name)["SecretString"]
    except secrets.exceptions.ResourceNotFoundException:
        # the secret exists but has no value yet (set out of band after deploying)
        raise SecretUnavailable(f"secret {get_config().secrets_name} has no value yet: set the provider keys "
                                "in Secrets Manager (see docs/deploy.md)") from None
    values = json.loads(raw or "{}")
    with _lock:
        _cache.update({"at": time.monotonic(), "values": values})
    return values


def get_secret(name: str) -> str:
    """``name`` is one of: stripe_secret_key, stripe_webhook_secret. Raises SecretUnavailable."""
    cfg = get_config()
    from_env = {"stripe_secret_key": cfg.stripe_secret_key, "stripe_webhook_secret": cfg.stripe_webhook_secret}
    if from_env.get(name):
        return str(from_env[name])
    value = _from_secrets_manager().get(name)
    if not value:
        raise SecretUnavailable(f"secret {name} is not configured: set it in Secrets Manager ({cfg.secrets_name})")
    return str(value)


def forget() -> None:
    with _lock:
        _cache.clear()
