"""``/metrics``: each emulator's figures in the Prometheus text format, one registry per emulator.

Nothing here runs per frame. Senders already count what they do (the pacer's ``LatenessStats``, the event log's
totals by kind, the egress policy's attempts, each RTSP session's RTP counters); a custom collector reads those
at scrape time. The one counter kept for metrics alone is per HTTP request (a dict increment in a middleware).
Names follow MediaMTX where the idea is the same (``rtsp_sessions``, ``rtsp_sessions_bytes_sent``); the rest
are ``benchtwin_*``, every one labelled with ``device``.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH = "/metrics"

# Event kinds that are outbound connection outcomes (webhooks, dial-outs, pushes), by result.
OUTBOUND_RESULTS = {
    "outbound.connected": "connected",
    "webhook.delivered": "delivered",
    "outbound.retry": "retried",
    "outbound.failed": "failed",
    "webhook.failed": "failed",
    "callback.failed": "failed",
    "webhook.refused": "refused",
}

# (name, type, help) of every metric, the one definition the docs table is generated from.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("benchtwin_http_requests_total", "counter", "HTTP requests answered, by method, route template and status"),
    ("benchtwin_streams", "gauge", "streams running now, by stream name (the names fault rules match)"),
    ("benchtwin_stream_ticks_total", "counter", "frames, chunks or messages paced out, by stream"),
    ("benchtwin_stream_skipped_ticks_total", "counter", "ticks skipped because the sender fell a period behind"),
    ("benchtwin_stream_send_lateness_seconds", "gauge",
     "send lateness after each tick's deadline over the recent window (quantiles 0.5, 0.99), by stream"),
    ("benchtwin_faults_applied_total", "counter", "fault rules that fired, by action"),
    ("benchtwin_faults_active", "gauge", "fault rules in force"),
    ("benchtwin_events_total", "counter", "events recorded, by kind"),
    ("benchtwin_outbound_total", "counter",
     "outbound connection outcomes (webhooks, dial-outs, pushes), by result: connected, delivered, retried, "
     "failed, refused"),
    ("benchtwin_egress_checks_total", "counter", "addresses checked against the egress allowlist, by verdict"),
    ("benchtwin_workers", "gauge", "media worker processes alive"),
    ("benchtwin_tasks", "gauge", "asyncio tasks owned by the emulator"),
    ("rtsp_sessions", "gauge", "RTSP sessions playing, by transport (tcp, udp)"),
    ("rtsp_sessions_rtp_packets_sent", "counter", "RTP packets sent to RTSP sessions playing now, by transport"),
    ("rtsp_sessions_bytes_sent", "counter", "RTP payload bytes sent to RTSP sessions playing now, by transport"),
)


class Measured(Protocol):
    """What the collector reads: an Emulator, seen from /metrics."""

    @property
    def device(self) -> str: ...

    pacing: dict[str, Any]
    events: Any
    faults: Any
    egress: Any
    workers: Any
    tasks: Any
    rtsp_servers: Any

    def live_streams(self) -> list[str]: ...


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


class EmulatorCollector(Collector):
    """Reads one emulator's own counters when Prometheus scrapes."""

    def __init__(self, emulator: Measured, requests: RequestCounter) -> None:
        self.emulator = emulator
        self.requests = requests

    def collect(self) -> Iterator[Any]:
        emu = self.emulator
        device = emu.device
        yield from self._http(device)
        yield from self._streams(device, emu)
        yield from self._events(device, emu)
        yield from self._rtsp(device, emu.rtsp_servers)
        workers = GaugeMetricFamily("benchtwin_workers", _help("benchtwin_workers"), labels=["device"])
        workers.add_metric([device], len(emu.workers.as_list()))
        yield workers
        tasks = GaugeMetricFamily("benchtwin_tasks", _help("benchtwin_tasks"), labels=["device"])
        tasks.add_metric([device], emu.tasks.live)
        yield tasks

    def _http(self, device: str) -> Iterator[Any]:
        family = CounterMetricFamily("benchtwin_http_requests", _help("benchtwin_http_requests_total"),
                                     labels=["device", "method", "route", "status"])
        for (method, route, status), count in sorted(self.requests.counts.items()):
            family.add_metric([device, method, route, status], count)
        yield family

    def _streams(self, device: str, emu: Measured) -> Iterator[Any]:
        live = GaugeMetricFamily("benchtwin_streams", _help("benchtwin_streams"), labels=["device", "stream"])
        for name in sorted(set(emu.live_streams())):
            live.add_metric([device, name], 1)
        yield live
        ticks = CounterMetricFamily("benchtwin_stream_ticks", _help("benchtwin_stream_ticks_total"),
                                    labels=["device", "stream"])
        skipped = CounterMetricFamily("benchtwin_stream_skipped_ticks", _help("benchtwin_stream_skipped_ticks_total"),
                                      labels=["device", "stream"])
        lateness = GaugeMetricFamily("benchtwin_stream_send_lateness_seconds",
                                     _help("benchtwin_stream_send_lateness_seconds"),
                                     labels=["device", "stream", "quantile"])
        for name, stats in sorted(emu.pacing.items()):
            ticks.add_metric([device, name], stats.ticks)
            skipped.add_metric([device, name], stats.skipped)
            for quantile, percent in (("0.5", 50), ("0.99", 99)):
                lateness.add_metric([device, name, quantile], stats.percentile_ms(percent) / 1000)
        yield ticks
        yield skipped
        yield lateness

    def _events(self, device: str, emu: Measured) -> Iterator[Any]:
        kinds: Counter[str] = Counter()
        actions: Counter[str] = Counter()
        outbound: Counter[str] = Counter()
        for (kind, action), count in emu.events.totals().items():
            kinds[kind] += count
            if kind == "fault.applied":
                actions[action] += count
            if kind in OUTBOUND_RESULTS:
                outbound[OUTBOUND_RESULTS[kind]] += count
        by_kind = CounterMetricFamily("benchtwin_events", _help("benchtwin_events_total"), labels=["device", "kind"])
        for kind, count in sorted(kinds.items()):
            by_kind.add_metric([device, kind], count)
        yield by_kind
        applied = CounterMetricFamily("benchtwin_faults_applied", _help("benchtwin_faults_applied_total"),
                                      labels=["device", "action"])
        for action, count in sorted(actions.items()):
            applied.add_metric([device, action], count)
        yield applied
        active = GaugeMetricFamily("benchtwin_faults_active", _help("benchtwin_faults_active"), labels=["device"])
        active.add_metric([device], len(emu.faults))
        yield active
        results = CounterMetricFamily("benchtwin_outbound", _help("benchtwin_outbound_total"),
                                      labels=["device", "result"])
        for result in ("connected", "delivered", "retried", "failed", "refused"):
            results.add_metric([device, result], outbound[result])
        yield results
        checks = CounterMetricFamily("benchtwin_egress_checks", _help("benchtwin_egress_checks_total"),
                                     labels=["device", "verdict"])
        checks.add_metric([device, "allowed"], emu.egress.allowed)
        checks.add_metric([device, "refused"], emu.egress.refused)
        yield checks

    def _rtsp(self, device: str, servers: Iterable[Any]) -> Iterator[Any]:
        sessions: Counter[str] = Counter({"tcp": 0, "udp": 0})
        packets: Counter[str] = Counter({"tcp": 0, "udp": 0})
        octets: Counter[str] = Counter({"tcp": 0, "udp": 0})
        for server in list(servers):
            for session in server.sending_counters():
                transport = session["transport"]
                sessions[transport] += 1
                packets[transport] += session["packets"]
                octets[transport] += session["octets"]
        for name, values, kind in (("rtsp_sessions", sessions, GaugeMetricFamily),
                                   ("rtsp_sessions_rtp_packets_sent", packets, CounterMetricFamily),
                                   ("rtsp_sessions_bytes_sent", octets, CounterMetricFamily)):
            family = kind(name.removesuffix("_total"), _help(name), labels=["device", "transport"])
            for transport, value in sorted(values.items()):
                family.add_metric([device, transport], value)
            yield family


def _help(name: str) -> str:
    return next(text for metric, _, text in METRICS if metric == name)


class Metrics:
    """One emulator's registry and its ``/metrics`` handler."""

    def __init__(self, emulator: Measured) -> None:
        self.requests = RequestCounter()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EmulatorCollector(emulator, self.requests))

    async def handle(self, request: web.Request) -> web.Response:
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
