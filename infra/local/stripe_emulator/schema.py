"""Parameter validation from the installed ``stripe`` package's typed parameter classes.

``stripe.params.*Params`` are TypedDicts generated from Stripe's OpenAPI spec for the
pinned API version: ``__required_keys__`` / ``__optional_keys__`` and the (nested)
annotations say which parameters an endpoint knows, recursively, and their types. The
emulator rejects what the real API would reject at that version (unknown or missing
parameters, wrong scalar types, empty strings for what cannot be unset) and converts
the form-encoded strings to Python values (int, bool, list, dict). Rules that depend on
other parameters (e.g. checkout ``mode``) live in the endpoint code.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, Union

from stripe._request_options import RequestOptions
from stripe._stripe_object import UntypedStripeObject

from .errors import StripeApiError
from .formdata import param_path

UNSET = None  # an empty string posted for a parameter that can be unset
_INT = re.compile(r"^-?\d+$")
_NUM = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")
_REQUEST_OPTION_KEYS = frozenset(RequestOptions.__annotations__)


@dataclass
class Node:
    """One parameter's accepted shapes (a union collapses into one node)."""

    kinds: set[str] = field(default_factory=set)  # scalar kinds: str int bool float decimal any
    enum: set[str] = field(default_factory=set)  # literal string values (when no plain str)
    empty_ok: bool = False  # Literal[''] in the union: "" unsets the parameter
    obj: type | None = None  # a TypedDict class
    list_item: "Node | None" = None
    map_value: "Node | None" = None

    @property
    def is_scalar(self) -> bool:
        return bool(self.kinds or self.enum)


@dataclass
class ObjSpec:
    fields: dict[str, Node]
    required: frozenset[str]


def _type_hints(cls: type) -> dict[str, Any]:
    skip = _REQUEST_OPTION_KEYS if RequestOptions in getattr(cls, "__orig_bases__", ()) else frozenset()
    annotations = {k: v for k, v in cls.__annotations__.items() if k not in skip}
    # TypedDicts flatten inherited annotations into the subclass: evaluate them all in the
    # declaring module (RequestOptions' own keys, evaluated elsewhere, were dropped above).
    holder = type("_Holder", (), {"__annotations__": annotations, "__module__": cls.__module__})
    return typing.get_type_hints(holder, globalns=vars(sys.modules[cls.__module__]))


@lru_cache(maxsize=None)
def object_spec(cls: type) -> ObjSpec:
    hints = _type_hints(cls)
    required = frozenset(k for k in getattr(cls, "__required_keys__", ()) if k in hints)
    return ObjSpec(fields={k: node_for(t) for k, t in hints.items()}, required=required)


def _merge(into: Node, other: Node) -> None:
    into.kinds |= other.kinds
    into.enum |= other.enum
    into.empty_ok = into.empty_ok or other.empty_ok
    into.obj = into.obj or other.obj
    into.list_item = into.list_item or other.list_item
    into.map_value = into.map_value or other.map_value


def node_for(tp: Any) -> Node:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    node = Node()
    if origin in (typing.Required, typing.NotRequired):
        return node_for(args[0])
    if origin is Union or origin is types.UnionType:
        for arg in args:
            if arg is type(None):
                continue
            _merge(node, node_for(arg))
        return node
    if origin is Literal:
        for value in args:
            if value == "":
                node.empty_ok = True
            elif isinstance(value, str):
                node.enum.add(value)
            elif isinstance(value, bool):
                node.kinds.add("bool")
            elif isinstance(value, int):
                node.kinds.add("int")
        return node
    if origin in (list, typing.List):
        node.list_item = node_for(args[0]) if args else Node(kinds={"any"})
        return node
    if origin in (dict, typing.Dict) or origin is UntypedStripeObject or tp is UntypedStripeObject:
        value_type = args[-1] if args else str
        node.map_value = node_for(value_type)
        return node
    if isinstance(tp, type) and hasattr(tp, "__required_keys__"):
        node.obj = tp
        return node
    if tp is str:
        node.kinds.add("str")
    elif tp is bool:
        node.kinds.add("bool")
    elif tp is int:
        node.kinds.add("int")
    elif tp is float:
        node.kinds.add("float")
    elif tp is Decimal:
        node.kinds.add("decimal")
    else:
        node.kinds.add("any")
    return node


@lru_cache(maxsize=None)
def params_class(dotted: str) -> type:
    """``"PaymentLinkCreateParams"`` or ``"checkout.SessionCreateParams"`` -> the class."""
    module, _, name = dotted.rpartition(".")
    mod = importlib.import_module("stripe.params" + (f".{module}" if module else ""))
    return getattr(mod, name)


class _Errors:
    def __init__(self) -> None:
        self.unknown: list[StripeApiError] = []
        self.missing: list[StripeApiError] = []
        self.invalid: list[StripeApiError] = []

    def first(self) -> StripeApiError | None:
        for bucket in (self.unknown, self.missing, self.invalid):
            if bucket:
                return bucket[0]
        return None


# Parameters removed by the pinned API version, with the error Stripe documents for them
# (changelog 2026-09-30.endive: "Removes the payment method types parameter from Payment
# Intents and Setup Intents" / "... from Checkout Sessions").
REMOVED_PARAMS: dict[str, dict[str, tuple[str, str]]] = {
    name: {"payment_method_types": (
        "payment_method_types_no_longer_supported",
        "payment_method_types is no longer supported on this API version: use allowed_payment_method_types "
        "(a filter on dynamic payment methods) or excluded_payment_method_types.")}
    for name in ("checkout.SessionCreateParams", "PaymentIntentCreateParams", "PaymentIntentUpdateParams",
                 "PaymentIntentConfirmParams")
}


def validate_params(dotted_class: str, tree: dict[str, Any]) -> dict[str, Any]:
    """Check ``tree`` (from formdata) against the params class; return converted values.

    Raises the first problem as Stripe would: parameters this API version removed, unknown
    parameters, then missing required ones, then invalid values.
    """
    for key, (code, message) in REMOVED_PARAMS.get(dotted_class, {}).items():
        if key in tree:
            raise StripeApiError(400, message, code=code, param=key)
    errors = _Errors()
    root = Node(obj=params_class(dotted_class))
    result = _validate(root, tree, [], errors)
    problem = errors.first()
    if problem is not None:
        raise problem
    return result or {}


def _validate(node: Node, value: Any, path: list[str], errors: _Errors) -> Any:
    name = param_path(path)
    if isinstance(value, str):
        if value == "":
            if node.empty_ok or (node.map_value is not None and not node.obj) or (
                    node.kinds & {"any"}):
                return UNSET
            errors.invalid.append(StripeApiError(
                400, f"You passed an empty string for '{name}'. We assume empty values are an attempt to "
                     f"unset a parameter; however '{name}' cannot be unset. You should remove '{name}' "
                     f"from your request or supply a non-empty value.",
                code="parameter_invalid_empty", param=name))
            return None
        if node.is_scalar:
            return _coerce(node, value, name, errors)
        kind = "array" if node.list_item else "object" if node.obj or node.map_value else "value"
        errors.invalid.append(StripeApiError(400, f"Invalid {kind}", code=None, param=name))
        return None
    # a dict: an object, a map, or an array given as {"0": ..., "1": ...}
    if node.list_item is not None and (not value or all(k.isdigit() for k in value)):
        return [_validate(node.list_item, value[k], [*path, k], errors)
                for k in sorted(value, key=int)]
    if node.obj is not None:
        spec = object_spec(node.obj)
        out: dict[str, Any] = {}
        for key, sub in value.items():
            child = spec.fields.get(key)
            if child is None:
                unknown = param_path([*path, key])
                message = f"Received unknown parameter: {unknown}"
                close = difflib.get_close_matches(key, list(spec.fields), n=1, cutoff=0.8)
                if close:
                    message += f". Did you mean {close[0]}?"
                errors.unknown.append(StripeApiError(400, message, code="parameter_unknown", param=unknown))
                continue
            out[key] = _validate(child, sub, [*path, key], errors)
        for key in sorted(spec.required - set(value)):
            missing = param_path([*path, key])
            errors.missing.append(StripeApiError(400, f"Missing required param: {missing}.",
                                                 code="parameter_missing", param=missing))
        return out
    if node.map_value is not None:
        # metadata[key]="" unsets that key
        return {k: UNSET if v == "" else _validate(node.map_value, v, [*path, k], errors) for k, v in value.items()}
    if "any" in node.kinds:
        return value
    kind = "array" if node.list_item else _kind_name(node)
    errors.invalid.append(StripeApiError(400, f"Invalid {kind}", code=None, param=name))
    return None


def _kind_name(node: Node) -> str:
    for kind, label in (("int", "integer"), ("bool", "boolean"), ("float", "decimal"),
                        ("decimal", "decimal"), ("str", "string")):
        if kind in node.kinds:
            return label
    return "string"


def _coerce(node: Node, value: str, name: str, errors: _Errors) -> Any:
    kinds = node.kinds
    if "bool" in kinds and value in ("true", "false"):
        return value == "true"
    if "int" in kinds and _INT.match(value):
        return int(value)
    if "float" in kinds and _NUM.match(value):
        return float(value)
    if "decimal" in kinds and _NUM.match(value):
        return value
    if "str" in kinds or "any" in kinds:
        return value
    if node.enum and value in node.enum:
        return value
    if "int" in kinds:
        errors.invalid.append(StripeApiError(400, f"Invalid integer: {value}", code="parameter_invalid_integer",
                                             param=name))
    elif "bool" in kinds:
        errors.invalid.append(StripeApiError(400, f"Invalid boolean: {value}", code=None, param=name))
    elif kinds & {"float", "decimal"}:
        errors.invalid.append(StripeApiError(400, f"Invalid decimal: {value}", code=None, param=name))
    else:
        allowed = ", ".join(sorted(node.enum))
        errors.invalid.append(StripeApiError(400, f"Invalid {name}: must be one of {allowed}",
                                             code=None, param=name))
    return None
