"""Generic, type-hint driven codec between frozen domain dataclasses and JSON.

Storage needs every field of an entity back exactly (Decimal quantities, dates,
Money in minor units). Writing one mapper per entity would drift each time a
field is added; this codec reads the dataclass type hints instead. Missing keys
fall back to field defaults (old items keep loading after a field is added) and
unknown keys are ignored (after a field is removed).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from ..domain.money import Money


def encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Money):
        return {"amount": value.amount, "currency": value.currency}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, float):
        raise TypeError("floats are not stored: use Decimal or integer minor units")
    raise TypeError(f"cannot encode {type(value).__name__}")


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(tp: Any, raw: Any) -> Any:
    if raw is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return decode(args[0], raw)
        for arg in args:  # e.g. dict | list: pick the matching container
            if (arg is dict or typing.get_origin(arg) is dict) and isinstance(raw, dict):
                return decode(arg, raw)
        return raw
    if tp is Any:
        return raw
    if origin is tuple:
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        return tuple(decode(item_tp, v) for v in raw)
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [decode(item_tp, v) for v in raw]
    if origin is dict:
        args = typing.get_args(tp)
        value_tp = args[1] if len(args) == 2 else Any
        return {k: decode(value_tp, v) for k, v in raw.items()}
    if tp is Money:
        return Money(int(raw["amount"]), raw["currency"])
    if tp is Decimal:
        return Decimal(raw)
    if tp is datetime:
        return datetime.fromisoformat(raw)
    if tp is date:
        return date.fromisoformat(raw)
    if tp in (int, str, bool):
        return tp(raw)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        kwargs = {f.name: decode(hints[f.name], raw[f.name])
                  for f in dataclasses.fields(tp) if f.init and f.name in raw}
        return tp(**kwargs)
    return raw
