"""Misty's argument binding: query and body merged, names case-insensitive, JSON whatever the Content-Type.

Pure Python (no aiohttp): ``bind_arguments(query_pairs, body)`` builds ``Arguments``, whose typed getters
apply the robot's lenient coercion (null/"null"/"" = default, "false" and 0/1 are bools, "5678" and
5678.0 are ints) and raise ``ArgumentError`` naming the parameter when a value cannot be coerced;
``validate_arguments`` types a command's declared arguments from the command table.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulators.kit.errors import FieldError
from emulators.kit.json_limits import parse_json

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
# Exactly what the contract's lenient schemas allow: ASCII digits, an optional sign, an optional ".0".
_INT_TEXT = re.compile(r"[+-]?[0-9]+(\.0*)?")
# A decimal number as text, as the contract's DoubleText pattern allows (no "inf", "nan", "_" or spaces).
_DOUBLE_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class ArgumentError(ValueError):
    """A request argument is malformed or out of range: answered with HTTP 400 and this text."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def _is_unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.lower() in ("", "null"))


@dataclass
class Arguments:
    """A command's merged arguments, keyed by lower-cased name (Misty: "parameter strings are not" case sensitive)."""

    values: dict[str, Any] = field(default_factory=dict)

    def raw(self, name: str) -> Any:
        """The value as sent, or None when it is absent or one of the "use the default" spellings."""
        value = self.values.get(name.lower())
        return None if _is_unset(value) else value

    def integer(self, name: str, default: int | None) -> int | None:
        value = self.raw(name)
        if value is None:
            return default
        return coerce_int(name, value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        return coerce_bool(name, value)

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ArgumentError(name, f"Invalid value for parameter '{name}': {_show(value)}. Must be a string.")
        return value

    def required_string(self, name: str, command: str) -> str:
        value = self.string(name)
        if value is None:
            raise ArgumentError(name, f"Cannot {command} - Missing required string parameter '{name}'.")
        return value


def coerce_int(name: str, value: Any) -> int:
    """An int from an int, an integral float or a numeric string; anything else names the parameter."""
    if isinstance(value, bool):
        raise ArgumentError(name, f"Invalid value for parameter '{name}': {_show(value)}. Must be an integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if _INT_TEXT.fullmatch(value):
            return int(value.split(".")[0])
        raise ArgumentError(name, f"Invalid value for parameter '{name}': {_show(value)}. Must be an integer.")
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise ArgumentError(name, f"Invalid value for parameter '{name}': {_show(value)}. Must be an integer.")


def coerce_bool(name: str, value: Any) -> bool:
    """true/false (any case, as JSON or strings) and 0/1; anything else names the parameter."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ArgumentError(name, f"Invalid value for parameter '{name}': {_show(value)}. Must be true or false.")


def parse_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object whatever the Content-Type; empty means no arguments."""
    if not body.strip():
        return {}
    try:
        value = parse_json(body)
    except FieldError as exc:
        raise ArgumentError("body", f"The request body must be a JSON object of command arguments: it {exc.message}."
                            ) from None
    if not isinstance(value, dict):
        raise ArgumentError(
            "body", f"The request body must be a JSON object of command arguments, got a JSON {_json_type(value)}."
        )
    return value


def bind_arguments(query: Iterable[tuple[str, str]], body: bytes) -> Arguments:
    """Merge query and body arguments; the body wins when both name the same argument."""
    merged: dict[str, Any] = {}
    for key, value in query:
        merged[key.lower()] = value
    for key, value in parse_body(body).items():
        merged[str(key).lower()] = value
    return Arguments(merged)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "number"


# ----- table-driven validation ---------------------------------------------------------------------------------
_INT32 = (-(2**31), 2**31 - 1)
_DOC_NAMES = {"url": "URL"}  # the few names the docs do not write as camelCase with a capital first letter


def doc_name(name: str) -> str:
    """A parameter's name as the docs and error texts write it: "linearVelocity" -> "LinearVelocity"."""
    return _DOC_NAMES.get(name.lower(), name[:1].upper() + name[1:])


def coerce_double(name: str, value: Any) -> float:
    """A finite number from a number or a numeric string; anything else names the parameter."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and _DOUBLE_TEXT.fullmatch(value):
        number = float(value)
        if math.isfinite(number):
            return number
    raise ArgumentError(name, f"Invalid value for parameter '{name}': {_show(value)}. Must be a number.")


def _typed(name: str, kind: str, value: Any) -> Any:
    if kind == "Int32":
        number = coerce_int(name, value)
        if not _INT32[0] <= number <= _INT32[1]:
            raise ArgumentError(name, f"Invalid value for parameter '{name}': {number}. Must be a 32-bit integer.")
        return number
    if kind in ("Double", "Single"):
        return coerce_double(name, value)
    if kind == "Boolean":
        return coerce_bool(name, value)
    if kind == "Byte":
        number = coerce_int(name, value)
        if not 0 <= number <= 255:
            raise ArgumentError(name, f"Invalid value for parameter '{name}': {number}. Must be between 0 and 255.")
        return number
    if kind == "DateTime":
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
            except ValueError:
                pass
        raise ArgumentError(name, f"Invalid value for parameter '{name}': {_show(value)}. Must be an ISO 8601 date.")
    if kind == "Byte[]":
        if isinstance(value, str) or (isinstance(value, list) and all(_is_byte(b) for b in value)):
            return value
        raise ArgumentError(
            name, f"Invalid value for parameter '{name}': {_show(value)}. Must be base64 text or an array of bytes."
        )
    if kind == "String":
        if not isinstance(value, str):
            raise ArgumentError(name, f"Invalid value for parameter '{name}': {_show(value)}. Must be a string.")
        return value
    return value  # Object (and GridCell): any JSON value


def _is_byte(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


def validate_arguments(arguments: Iterable[tuple[str, str]], args: Arguments) -> dict[str, Any]:
    """Each declared argument (camelCase name, .NET type) bound and typed; None where unset. Names in errors are
    the docs' PascalCase. Arguments a command does not declare are ignored, as the robot ignores them."""
    out: dict[str, Any] = {}
    for name, kind in arguments:
        value = args.raw(name)
        out[name] = None if value is None else _typed(doc_name(name), kind, value)
    return out
