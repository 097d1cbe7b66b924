"""``/metrics``: each emulator's figures in the Prometheus text format, one registry per emulator.

Nothing here runs per frame. Senders already count what they do (the pacer's ``LatenessStats``, the event log's
totals by kind, the egress policy's attempts, each RTSP session's RTP counters); a custom collector reads those
at scrape time (``metrics_collector``, imported with prometheus_client at the first scrape). The one counter kept
for metrics alone is per HTTP request (a dict increment in a middleware).
Names follow MediaMTX where the idea is the same (``rtsp_sessions``, ``rtsp_sessions_bytes_sent``); the rest
are ``benchtwin_*``, every one labelled with ``device``.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from emulators.kit.metrics_table import METRICS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from emulators.kit.metrics_collector import Measured

__all__ = ["CONTENT_TYPE", "METRICS", "METRICS_PATH", "Metrics", "RequestCounter", "markdown_table",
           "route_template", "rtsp_server_set"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH = "/metrics"


class RequestCounter:
    """Counts answered requests by (method, route template, status): one dict increment per request."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def count(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                self.counts[(request.method, route_template(request), str(status))] += 1

        return count


def route_template(request: web.Request) -> str:
    """The matched route's template (``/api/v1/bot/{bot_id}/``), never the raw path: bounded cardinality."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    canonical = getattr(resource, "canonical", None)
    return str(canonical) if canonical else "unmatched"


class Metrics:
    """One emulator's registry and its ``/metrics`` handler. The registry (and prometheus_client) is made at the
    first scrape; the request counter counts from the start."""

    def __init__(self, emulator: Measured) -> None:
        self.requests = RequestCounter()
        self._emulator = emulator
        self._registry: CollectorRegistry | None = None

    @property
    def registry(self) -> CollectorRegistry:
        if self._registry is None:
            from emulators.kit.metrics_collector import emulator_registry

            self._registry = emulator_registry(self._emulator, self.requests)
        return self._registry

    async def handle(self, request: web.Request) -> web.Response:
        from prometheus_client import generate_latest

        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def rtsp_server_set() -> weakref.WeakSet[Any]:
    """The RTSP servers an emulator runs now (each adds itself; a stopped one drops out when it is collected)."""
    return weakref.WeakSet()


def markdown_table() -> str:
    """The metrics as a Markdown table (docs pages; a test keeps them equal)."""
    rows = ["| metric | type | meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {kind} | {text} |" for name, kind, text in METRICS]
    return "\n".join(rows) + "\n"
