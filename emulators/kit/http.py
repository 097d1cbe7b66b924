"""HTTP helpers shared by the control plane and the device APIs: listening sockets, JSON bodies, field errors."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from emulators.kit.errors import FieldError
from emulators.kit.json_limits import parse_json

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
