"""Bounded JSON parsing (pure: no aiohttp), for the control plane and every device that reads a JSON body or message:
a body nested past MAX_JSON_DEPTH is a FieldError naming the field, never a RecursionError (an HTTP 500)."""

from __future__ import annotations

import json
from typing import Any

from emulators.kit.errors import FieldError

# Deeper than any vendor body we emulate; past it a request is an attack on the recursion limit, not a client.
MAX_JSON_DEPTH = 64


def parse_json(raw: bytes | str, field: str = "body") -> Any:
    """Any JSON value, nested at most MAX_JSON_DEPTH deep; FieldError naming ``field`` otherwise (never a
    RecursionError: devices with their own body readers call this instead of json.loads)."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise FieldError(field, f"is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FieldError(field, f"is not valid JSON: {exc}") from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise FieldError(field, f"is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
