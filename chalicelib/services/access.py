"""API keys: authentication (cached) and administration."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from ..domain.auth import Actor, ApiKey, check_role, generate_key, hash_key
from ..domain.errors import NotFound, ValidationError
from .common import IdempotencyRequest, idempotent
from .ports import Clock, Ledger, UnitOfWork


class AccessService:
    """Turns a bearer token into an :class:`Actor`.

    Lookups are cached in memory for ``ttl_s`` (60 s): the API Gateway authorizer
    also caches per token, and a revoked key stops working within that delay.
    """

    def __init__(self, ledger: Ledger, clock: Clock, ttl_s: float = 60.0, max_entries: int = 10_000) -> None:
        self._ledger = ledger
        self._clock = clock
        self._ttl = ttl_s
        self._max = max_entries
        self._cache: dict[str, tuple[float, Actor | None]] = {}
        self._lock = threading.Lock()

    def authenticate(self, token: str | None) -> Actor | None:
        """The actor behind ``token``, or None for a missing, unknown or revoked key."""
        if not token or len(token) > 200:
            return None
        digest = hash_key(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit and now - hit[0] < self._ttl:
            return hit[1]
        key = self._ledger.get_api_key(digest)
        actor = Actor(name=key.name, role=key.role) if key and key.active else None
        with self._lock:
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[digest] = (now, actor)
        return actor

    def create_key(self, name: str, role: str, actor: Actor,
                   idempotency: IdempotencyRequest | None = None) -> tuple[ApiKey, str | None]:
        """Create a key; the secret is returned once and never stored.

        With ``idempotency``, a repeat of the same request returns the key it created with ``None``
        for the secret: only its hash is stored, and a replay must never mint a second key."""
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 64:
            raise ValidationError("name must be 1 to 64 characters, e.g. 'erp-sync' or 'alice'", field="name")
        role = check_role(role)
        secrets: list[str] = []

        def run() -> ApiKey:
            secret = generate_key()
            now = self._clock.now()
            key = ApiKey(key_hash=hash_key(secret), name=name.strip(), role=role, created_at=now,
                         created_by=actor.name, hint=secret[-4:])
            uow = UnitOfWork(actor=actor, now=now)
            key = uow.create(key)
            uow.audit("api_key.create", "api_key", key.key_hash[:16], None, key.to_dict())
            if idempotency:
                uow.claim_idempotency(idempotency.record("api_key", key.key_hash[:16], now))
            self._ledger.commit(uow)
            secrets.append(secret)
            return key

        key, replayed = idempotent(self._ledger, idempotency, "api_key", run, self._key_by_id)
        return key, None if replayed else secrets[-1]

    def _key_by_id(self, key_id: str) -> ApiKey:
        matches = [k for k in self._ledger.list_api_keys() if k.key_hash[:16] == key_id]
        if not matches:
            raise NotFound(f"api key {key_id} does not exist", code="api_key_not_found")
        return matches[0]

    def list_keys(self) -> list[ApiKey]:
        return self._ledger.list_api_keys()

    def revoke(self, key_id: str, actor: Actor) -> ApiKey:
        """Revoke by the public id (first 16 hex characters of the hash)."""
        matches = [k for k in self._ledger.list_api_keys() if k.key_hash[:16] == key_id]
        if not matches:
            raise NotFound(f"api key {key_id} does not exist", code="api_key_not_found")
        key = matches[0]
        if not key.active:
            return key
        now = self._clock.now()
        uow = UnitOfWork(actor=actor, now=now)
        saved = uow.save(replace(key, revoked_at=now))
        uow.audit("api_key.revoke", "api_key", key_id, {"revoked_at": None}, {"revoked_at": now.isoformat()})
        self._ledger.commit(uow)
        with self._lock:
            self._cache.pop(key.key_hash, None)
        return saved
