"""The Prometheus side of ``/metrics``: a collector that reads one emulator's own counters at scrape time.

Imported at the first scrape, so prometheus_client is not loaded by an emulator nobody scrapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from emulators.kit.metrics_table import OUTBOUND_RESULTS, help_text


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


class Requests(Protocol):
    """What the collector reads of the request counter: counts by (method, route template, status)."""

    counts: Counter[tuple[str, str, str]]


class EmulatorCollector(Collector):
    """Reads one emulator's own counters when Prometheus scrapes."""

    def __init__(self, emulator: Measured, requests: Requests) -> None:
        self.emulator = emulator
        self.requests = requests

    def collect(self) -> Iterator[Any]:
        emu = self.emulator
        device = emu.device
        yield from self._http(device)
        yield from self._streams(device, emu)
        yield from self._events(device, emu)
        yield from self._rtsp(device, emu.rtsp_servers)
        workers = GaugeMetricFamily("benchtwin_workers", help_text("benchtwin_workers"), labels=["device"])
        workers.add_metric([device], len(emu.workers.as_list()))
        yield workers
        tasks = GaugeMetricFamily("benchtwin_tasks", help_text("benchtwin_tasks"), labels=["device"])
        tasks.add_metric([device], emu.tasks.live)
        yield tasks

    def _http(self, device: str) -> Iterator[Any]:
        family = CounterMetricFamily("benchtwin_http_requests", help_text("benchtwin_http_requests_total"),
                                     labels=["device", "method", "route", "status"])
        for (method, route, status), count in sorted(self.requests.counts.items()):
            family.add_metric([device, method, route, status], count)
        yield family

    def _streams(self, device: str, emu: Measured) -> Iterator[Any]:
        live = GaugeMetricFamily("benchtwin_streams", help_text("benchtwin_streams"), labels=["device", "stream"])
        for name in sorted(set(emu.live_streams())):
            live.add_metric([device, name], 1)
        yield live
        ticks = CounterMetricFamily("benchtwin_stream_ticks", help_text("benchtwin_stream_ticks_total"),
                                    labels=["device", "stream"])
        skipped = CounterMetricFamily("benchtwin_stream_skipped_ticks",
                                      help_text("benchtwin_stream_skipped_ticks_total"), labels=["device", "stream"])
        lateness = GaugeMetricFamily("benchtwin_stream_send_lateness_seconds",
                                     help_text("benchtwin_stream_send_lateness_seconds"),
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
        by_kind = CounterMetricFamily("benchtwin_events", help_text("benchtwin_events_total"),
                                      labels=["device", "kind"])
        for kind, count in sorted(kinds.items()):
            by_kind.add_metric([device, kind], count)
        yield by_kind
        applied = CounterMetricFamily("benchtwin_faults_applied", help_text("benchtwin_faults_applied_total"),
                                      labels=["device", "action"])
        for action, count in sorted(actions.items()):
            applied.add_metric([device, action], count)
        yield applied
        active = GaugeMetricFamily("benchtwin_faults_active", help_text("benchtwin_faults_active"), labels=["device"])
        active.add_metric([device], len(emu.faults))
        yield active
        results = CounterMetricFamily("benchtwin_outbound", help_text("benchtwin_outbound_total"),
                                      labels=["device", "result"])
        for result in ("connected", "delivered", "retried", "failed", "refused"):
            results.add_metric([device, result], outbound[result])
        yield results
        checks = CounterMetricFamily("benchtwin_egress_checks", help_text("benchtwin_egress_checks_total"),
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
            family = kind(name.removesuffix("_total"), help_text(name), labels=["device", "transport"])
            for transport, value in sorted(values.items()):
                family.add_metric([device, transport], value)
            yield family


def emulator_registry(emulator: Measured, requests: Requests) -> CollectorRegistry:
    """A registry of its own for one emulator, holding its collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EmulatorCollector(emulator, requests))
    return registry
