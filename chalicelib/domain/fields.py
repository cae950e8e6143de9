"""Input shape checks shared by the domain builders."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .errors import ValidationError


def reject_unknown(data: Mapping[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    """Unknown fields are an error, not silently ignored: a typo must not lose data."""
    allowed_set = set(allowed)
    unknown = sorted(k for k in data if k not in allowed_set)
    if unknown:
        name = f"{prefix}{unknown[0]}"
        raise ValidationError(
            f"unknown field {name!r}: allowed fields are {', '.join(sorted(allowed_set))}",
            field=name, code="unknown_field")
