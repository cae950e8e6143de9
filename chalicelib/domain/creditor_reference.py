"""ISO 11649 structured creditor references ("RF" references).

An RF reference is ``RF`` + two check digits + 1 to 21 letters or digits, checked
with ISO 7064 MOD 97-10 exactly like an IBAN: move the first four characters to
the end, replace each letter by two digits (A=10 ... Z=35), and the number must
be 1 modulo 97. Check digits therefore range from 02 to 98.

The reference of an invoice is derived from its number, deterministically:
``F2026-000001`` -> ``RF`` + check + ``F2026000001``. The number stays readable
inside the reference, and the same invoice always gets the same reference (no
storage needed, no counter).

:func:`find_in_text` looks for references in free remittance text as people and
banks actually write them: lower case, printed in groups of four
(``RF47 F202 6000 0001``), after a ``/ROC/`` or ``REF:`` prefix.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .errors import ValidationError

MAX_BODY = 21  # characters after "RF" + check digits
MAX_LENGTH = 4 + MAX_BODY

_ALNUM = re.compile(r"[A-Z0-9]+")
# "RF" at the start of a word, then the two check digits (a space may slip in).
_RF_START = re.compile(r"(?<![A-Z0-9])RF ?([0-9]) ?([0-9])")
_SPACES = re.compile(r"[ \t\u00a0\u202f]{1,2}")


def _to_number(text: str) -> int:
    """ISO 7064 letter substitution (A=10 ... Z=35) of an upper-case alphanumeric string."""
    return int("".join(str(int(ch, 36)) for ch in text))


def _mod97(body: str, check: str) -> int:
    return _to_number(body + "RF" + check) % 97


def compact(value: str) -> str:
    """Upper case without spaces (the electronic form of a reference)."""
    return "".join(value.split()).upper()


def _normalise_source(value: str) -> str:
    """Letters and digits of an invoice number, upper case, accents stripped."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii").upper()
    return "".join(_ALNUM.findall(folded))


def check_digits(body: str) -> str:
    """The two check digits of ``body`` (upper-case alphanumerics)."""
    return f"{98 - _mod97(body, '00'):02d}"


def generate(source: str) -> str:
    """The RF reference (compact form) of an invoice number or id.

    Keeps the letters and digits of ``source`` (``F2026-000001`` -> ``F2026000001``)
    and prefixes ``RF`` and the check digits. Raises :class:`ValidationError` if
    nothing alphanumeric is left or more than 21 characters remain (use a shorter
    key, e.g. the invoice number rather than its id).
    """
    if not isinstance(source, str):
        raise ValidationError("a creditor reference is generated from a string (an invoice number)",
                              field="reference")
    body = _normalise_source(source)
    if not body:
        raise ValidationError(f"cannot build a creditor reference from {source!r}: it has no letters or digits",
                              field="reference")
    if len(body) > MAX_BODY:
        raise ValidationError(
            f"cannot build a creditor reference from {source!r}: ISO 11649 allows at most {MAX_BODY} letters or "
            f"digits after RF and the check digits, this has {len(body)}", field="reference")
    return "RF" + check_digits(body) + body


def for_invoice(number: str | None, invoice_id: str) -> str:
    """The reference printed on an invoice: from its number, else from its id.

    Imported invoices may carry external numbers longer than 21 characters; their
    reference then comes from the last 21 alphanumerics of the id (the random
    part of a ULID), which is still unique and deterministic.
    """
    if number:
        body = _normalise_source(number)
        if 0 < len(body) <= MAX_BODY:
            return generate(body)
    body = _normalise_source(invoice_id)[-MAX_BODY:]
    return generate(body)


def validate(value: str, field: str = "reference") -> str:
    """Return the compact form of a valid RF reference, or raise :class:`ValidationError`.

    Spaces and lower case are accepted (``rf18 5390 0754 7034``).
    """
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string such as \"RF18 5390 0754 7034\"", field=field)
    ref = compact(value)
    if not ref.startswith("RF"):
        raise ValidationError(f"{field} {value!r} is not a creditor reference: it must start with RF "
                              "(ISO 11649, e.g. RF18 5390 0754 7034)", field=field)
    if not 5 <= len(ref) <= MAX_LENGTH:
        raise ValidationError(f"{field} {value!r} must have 5 to {MAX_LENGTH} characters without spaces "
                              f"(RF, 2 check digits, then 1 to {MAX_BODY} letters or digits)", field=field)
    if not ref[2:4].isdigit():
        raise ValidationError(f"{field} {value!r}: the two characters after RF must be the check digits",
                              field=field)
    body = ref[4:]
    if not body.isascii() or not body.isalnum():
        raise ValidationError(f"{field} {value!r} may only contain letters A-Z and digits after the check digits",
                              field=field)
    if not 2 <= int(ref[2:4]) <= 98 or _mod97(body, ref[2:4]) != 1:
        raise ValidationError(f"{field} {value!r} has wrong check digits: it was probably mistyped "
                              f"(the expected form is {format_reference('RF' + check_digits(body) + body)} "
                              "if the rest is right)", field=field, code="invalid_check_digits")
    return ref


def is_valid(value: str) -> bool:
    try:
        validate(value)
    except ValidationError:
        return False
    return True


def format_reference(value: str) -> str:
    """Print form: groups of four characters (``RF18 5390 0754 7034``)."""
    ref = compact(value)
    return " ".join(ref[i:i + 4] for i in range(0, len(ref), 4))


# -- finding references in remittance text ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class FoundReference:
    """An ``RF..`` occurrence in a text.

    ``candidates`` are the valid readings, best first (usually one; a reference
    printed in groups followed by more text can have a second valid reading by
    chance, 1 in 97). Empty when the occurrence looks like a reference but no
    reading passes the check digits: a mistyped reference. ``span`` covers the
    longest plausible extent in the text, so callers can ignore it when looking
    for other things (an invoice number inside a mistyped RF reference must not
    be trusted).
    """

    span: tuple[int, int]
    candidates: tuple[str, ...]

    @property
    def reference(self) -> str | None:
        return self.candidates[0] if self.candidates else None


def _fold(text: str) -> str:
    """Upper case, accents removed, one character out per character in (positions are kept)."""
    out = []
    for ch in text:
        base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode("ascii")
        out.append(base[:1].upper() if base else (" " if ch.isspace() else "?"))
    return "".join(out)


def scan(text: str) -> list[FoundReference]:
    """Every ``RF`` occurrence in ``text`` with its valid readings (see :class:`FoundReference`)."""
    if not text:
        return []
    upper = _fold(text)
    found: list[FoundReference] = []
    pos = 0
    while True:
        m = _RF_START.search(upper, pos)
        if m is None:
            break
        check = m.group(1) + m.group(2)
        i = m.end()
        runs: list[tuple[str, int]] = []  # (alphanumeric run, end position in text)
        glued = True  # the first run may be glued to the check digits (RF47F2026...)
        prev_len = 0
        while True:
            j = i
            if not glued:
                sp = _SPACES.match(upper, i)
                if sp is None:
                    break
                j = sp.end()
            run = _ALNUM.match(upper, j)
            if run is None:
                if glued:
                    # "RF47 F202..." : the first group is separated from the check digits
                    sp = _SPACES.match(upper, i)
                    run = _ALNUM.match(upper, sp.end()) if sp else None
                    if run is None:
                        break
                else:
                    break
            token = run.group(0)
            total = sum(len(r) for r, _ in runs) + len(token)
            # Continue past a space only while the text looks like groups of four.
            if runs and (prev_len % 4 != 0 or len(token) > 4):
                break
            if total > MAX_BODY:
                break
            runs.append((token, run.end()))
            prev_len = len(token)
            i = run.end()
            glued = False
        if not runs:
            pos = m.end()
            continue
        candidates: list[str] = []
        body = ""
        for token, _end in runs:
            body += token
            ref = "RF" + check + body
            if 2 <= int(check) <= 98 and _mod97(body, check) == 1:
                candidates.append(ref)
        # Longest valid reading first: a shorter one is a prefix that happens to pass the check.
        candidates.sort(key=len, reverse=True)
        found.append(FoundReference(span=(m.start(), runs[-1][1]), candidates=tuple(candidates)))
        pos = runs[-1][1]
    return found


def find_in_text(text: str) -> list[str]:
    """Valid RF references found in ``text`` (compact form, in order, without duplicates)."""
    out: list[str] = []
    for f in scan(text):
        if f.reference and f.reference not in out:
            out.append(f.reference)
    return out
