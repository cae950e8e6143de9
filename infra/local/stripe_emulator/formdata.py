"""Stripe's form encoding: ``a[b][0][c]=v`` pairs to a nested tree of dicts of strings.

Arrays stay dicts keyed by their index strings here; the schema (``schema.py``) knows
which nodes are arrays and turns them into lists, so ``metadata[0]=x`` stays a map key.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def split_key(key: str) -> list[str]:
    match = _KEY.match(key)
    if not match:
        return [key]
    return [match.group(1), *_PART.findall(match.group(2))]


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = split_key(key)
        node = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if part == "":  # legacy ``expand[]=a&expand[]=b``
                part = str(len(node))
            if last:
                if isinstance(node.get(part), dict):
                    raise invalid(f"Invalid value for {key}: expected an object, got a string.", key)
                node[part] = value
            else:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                elif not isinstance(child, dict):
                    raise invalid(f"Invalid value for {key}: a string was also given for this parameter.", key)
                node = child
    return root


def parse_body(body: bytes) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    return parse_pairs(pairs), pairs


def parse_query(query: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    pairs = parse_qsl(query, keep_blank_values=True)
    return parse_pairs(pairs), pairs


def param_path(parts: list[str]) -> str:
    if not parts:
        return ""
    return parts[0] + "".join(f"[{p}]" for p in parts[1:])
