"""HTTP helpers shared by the control plane and the device APIs: listening sockets, JSON bodies, field errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from emulators.kit.errors import FieldError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def method_not_allowed(allowed: list[str]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A catch-all route answering 405 with ``Allow`` (HEAD is served where GET is)."""

    async def handler(request: web.Request) -> web.Response:
        if request.method == "HEAD" and "GET" in allowed:
            return web.Response(status=200)
        return web.json_response(
            {"error": f"method: {request.method} is not allowed here; allowed: {', '.join(allowed)}",
             "field": "method"},
            status=405, headers={"Allow": ", ".join(allowed)},
        )

    return handler


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one. SO_REUSEADDR so a restart can rebind at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def field_error(exc: FieldError, status: int = 400) -> web.Response:
    return web.json_response(exc.as_dict(), status=status)


# Deeper than any vendor body we emulate; past it a request is an attack on the recursion limit, not a client.
MAX_JSON_DEPTH = 64


async def read_json_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; FieldError('body', ...) otherwise."""
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return {}
        raise FieldError("body", "must be a JSON object")
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise FieldError("body", f"must be a JSON object, got {type(value).__name__}")
    return value


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


def query_int(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise FieldError(name, f"must be an integer between {lo} and {hi}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise FieldError(name, f"must be between {lo} and {hi}, got {value}")
    return value
