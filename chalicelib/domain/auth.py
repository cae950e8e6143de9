"""API keys and roles.

A key is at least 128 random bits; only its SHA-256 is stored, as the item key,
so authenticating is one GetItem and a leaked table does not leak keys.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import ValidationError

READER, CLERK, ADMIN = "reader", "clerk", "admin"
ROLES = (READER, CLERK, ADMIN)
_RANK = {READER: 1, CLERK: 2, ADMIN: 3}
KEY_PREFIX = "ark_"


def role_allows(role: str, required: str) -> bool:
    return _RANK.get(role, 0) >= _RANK[required]


def generate_key() -> str:
    """A new secret API key: 32 random bytes (256 bits), URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_hash: str
    name: str
    role: str
    created_at: datetime
    created_by: str
    hint: str  # the last 4 characters, to recognise a key without storing it
    revoked_at: datetime | None = None
    version: int = 0

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.key_hash[:16], "name": self.name, "role": self.role, "hint": "..." + self.hint,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


def check_role(role: object) -> str:
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
    return str(role)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is making a change: recorded on every audit entry."""

    name: str
    role: str

    @classmethod
    def system(cls, job: str) -> Actor:
        return cls(name=f"system:{job}", role=ADMIN)
