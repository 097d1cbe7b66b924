"""Request routing as the Robopipe server's Starlette router does it, without I/O: path -> handler or refusal.

A full match runs the handler; a path match with the wrong method is 405 with ``Allow``; the path with its
trailing slash toggled is a 307; anything else 404. An unrouted WebSocket handshake is refused with 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

H = TypeVar("H")

# The controller's path parameter ``device_type`` (the PLC's device kinds, wider than the typed routes).
DEVICE_TYPE_PATTERN = "di|ro|do|ai|ao|sensor|led|watchdog|modbus_slave|owpower|register|data_point|owbus|device_info"
# Paths whose route matches are remembered; past this many distinct paths (fuzzers) the memory starts over.
ROUTE_MEMORY = 4096


@dataclass
class Route(Generic[H]):
    """A path template such as ``/cameras/{mxid}/`` with its handlers per method (and for a WebSocket)."""

    template: str
    methods: dict[str, H]
    websocket: H | None = None
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        parts = re.split(r"\{(\w+(?::int)?)\}", self.template)
        # A parameter is one path segment; decoded paths may contain newlines, which it matches too. Starlette's
        # ``:int`` convertor takes digits only.
        pattern = "".join(re.escape(p) if i % 2 == 0 else _parameter(p) for i, p in enumerate(parts))
        self.regex = re.compile(pattern)

    def match(self, path: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(path)
        return m.groupdict() if m else None


def _parameter(spec: str) -> str:
    name, _, convertor = spec.partition(":")
    return f"(?P<{name}>[0-9]+)" if convertor == "int" else f"(?P<{name}>[^/]+)"


@dataclass(frozen=True)
class Matched(Generic[H]):
    handler: H
    params: dict[str, str]


@dataclass(frozen=True)
class MethodNotAllowed:
    allow: str  # the matched path's methods, as the Allow header lists them


@dataclass(frozen=True)
class Redirect:
    path: str  # the same path with its trailing slash toggled (307, query kept)


@dataclass(frozen=True)
class NotFound:
    pass


@dataclass(frozen=True)
class WebSocketRefused:
    pass


Resolution = Matched[H] | MethodNotAllowed | Redirect | NotFound | WebSocketRefused


class Router(Generic[H]):
    """Routes in routing order (the first full match wins, as in Starlette)."""

    def __init__(self, routes: list[Route[H]], *, allow_first_method_only: bool = False) -> None:
        self.routes = routes
        # The server's main registers one route per method, so its 405 names only the first route's method.
        self.allow_first_method_only = allow_first_method_only
        # path -> every route whose template matches it, in routing order, with its path parameters.
        self._memory: dict[str, tuple[tuple[Route[H], dict[str, str]], ...]] = {}

    def matches(self, path: str) -> tuple[tuple[Route[H], dict[str, str]], ...]:
        """Every route matching ``path`` in routing order; the regex walk runs once per distinct path."""
        found = self._memory.get(path)
        if found is None:
            found = tuple((route, params) for route in self.routes if (params := route.match(path)) is not None)
            if len(self._memory) >= ROUTE_MEMORY:
                self._memory.clear()
            self._memory[path] = found
        return found

    def resolve(self, method: str, path: str, *, websocket: bool = False) -> Resolution[H]:
        matches = self.matches(path)
        if websocket:
            for route, params in matches:
                if route.websocket is not None:
                    return Matched(route.websocket, dict(params))
            return WebSocketRefused()
        partial: Route[H] | None = None
        for route, params in matches:
            handler = route.methods.get(method)
            if handler is not None:
                return Matched(handler, dict(params))  # a copy: the remembered one stays as matched
            if partial is None and route.methods:
                partial = route
        if partial is not None:
            methods = list(partial.methods)
            return MethodNotAllowed(methods[0] if self.allow_first_method_only else ", ".join(methods))
        toggled = path[:-1] if path.endswith("/") else path + "/"
        if toggled and any(r.match(toggled) is not None and r.methods for r in self.routes):
            return Redirect(toggled)
        return NotFound()
