"""Input shape checks shared by the domain builders."""

from __future__ import annotations

import re
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


# Characters no XML 1.0 document may hold (C0 controls but tab, LF, CR; lone surrogates; U+FFFE/U+FFFF),
# plus DEL and the C1 controls: text fields end up in the Factur-X/CII XML, the PDF and e-mails, where a
# "\x00" or "\x07" either breaks the document (lxml refuses it) or is invisible garbage.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_BREAKS = re.compile("[\t\n\r\u2028\u2029]")


def check_chars(value: str, name: str, *, multiline: bool = False) -> str:
    """Refuse control characters (and, unless ``multiline``, tabs and line breaks) in a text field."""
    bad = _CONTROL.search(value) or (None if multiline else _BREAKS.search(value))
    if bad:
        allowed = "tabs and line breaks are fine, other " if multiline else "line breaks, tabs and other "
        raise ValidationError(
            f"{name} contains the control character U+{ord(bad.group()):04X} at position {bad.start()}: "
            f"{allowed}control characters cannot be printed on an invoice; remove it",
            field=name, code="invalid_character")
    return value
