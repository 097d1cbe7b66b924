"""Runs the soak: every emulator in its own process, the mixed load and hostile bursts from here, a sample of the
emulator process per interval, slopes and a verdict at the end."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from emulators.bench import process
from emulators.bench.process import EmulatorProcess
from emulators.soak.load import HealthProbe, MixedLoad, hostile_burst, rtsp_hostile
from emulators.soak.samples import DEFAULT_LIMITS, Sample, as_rows, process_figures, verdict


async def _state_figures(emulator: EmulatorProcess, session: aiohttp.ClientSession, held: dict[str, int]
                         ) -> tuple[int, float, int]:
    """Owned tasks summed over every emulator, the process's C heap in use in MB (one figure per process), and how
    many event logs are still filling: below both bounds, and more than 1 % of the capacity fuller than at the last
    sample (``held``, updated here). A log that hardly records anything is not filling."""
    total, heap, filling = 0, 0.0, 0
    for device in emulator.endpoints:
        state = await emulator.state(session, device)
        total += int(state.get("tasks", 0))
        heap = float(state.get("native_heap_bytes") or 0) / 1024**2
        log = state.get("event_log") or {}
        if log:
            below = log["events"] < log["capacity"] and log["bytes"] < log["max_bytes"]
            gained = log["events"] - held.get(device, 0)
            held[device] = log["events"]
            filling += below and gained > max(1, log["capacity"] // 100)
    return total, heap, filling


async def soak(args: argparse.Namespace) -> list[Sample]:
    devices = [d.strip() for d in (args.only or "").split(",") if d.strip()]
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="benchtwin-soak-") as workdir:
        timeout = aiohttp.ClientTimeout(total=10)
        config = {"event_log_capacity": args.event_log_capacity}
        async with EmulatorProcess(devices, Path(workdir), config=config) as emulator, aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=64)
        ) as session:
            load = MixedLoad(emulator, session)
            probe = HealthProbe(emulator, session)
            try:
                await load.start()
                probe.start()
                print(f"soak: {', '.join(sorted(emulator.endpoints))} in pid {emulator.pid}; load: "
                      f"{'; '.join(load.started) or 'control-plane polling only'}", flush=True)
                print(f"{'t_s':>7} {'rss_mb':>8} {'heap_mb':>8} {'fds':>5} {'threads':>7} {'tasks':>6} "
                      f"{'health_ms':>9} {'logs':>7}", flush=True)
                started = time.monotonic()
                deadline = started + args.minutes * 60.0
                next_sample = started + args.sample_seconds
                held: dict[str, int] = {}  # events each emulator's log held at the last sample
                while next_sample <= deadline + 1e-6:
                    await hostile_burst(emulator, session, idle=args.idle_connections)
                    if load.rtsp_url:
                        await rtsp_hostile(load.rtsp_url)
                    await asyncio.sleep(max(0.0, next_sample - time.monotonic()))  # the sampling period
                    rss_mb, fds, threads = process_figures(emulator.pid)
                    worst_ms, healthy = probe.take()
                    tasks, heap_mb, logs_filling = await _state_figures(emulator, session, held)
                    sample = Sample(t_s=round(time.monotonic() - started, 1), rss_mb=round(rss_mb, 2), fds=fds,
                                    threads=threads, tasks=tasks, heap_mb=round(heap_mb, 2),
                                    lateness_ms=round(worst_ms, 1), health_ok=healthy,
                                    logs_filling=logs_filling)
                    samples.append(sample)
                    print(f"{sample.t_s:7.1f} {sample.rss_mb:8.2f} {sample.heap_mb:8.2f} {sample.fds:5d} "
                          f"{sample.threads:7d} {sample.tasks:6d} {sample.lateness_ms:9.1f} "
                          f"{'filling' if logs_filling else 'steady':>7}"
                          f"{'' if healthy else '  HEALTH MISSED'}",
                          flush=True)
                    next_sample += args.sample_seconds
                print(f"received: {sum(v.messages for v in load.viewers)} video messages by the viewers, "
                      f"{load.rtsp_frames} interleaved packets by the RTSP client, "
                      f"{load.recall_sink.messages} by the Recall receiver, {load.signalwire_sink.messages} by the "
                      f"SignalWire receiver; VideoDB RTStream {await load.videodb_status() or 'not started'}",
                      flush=True)
            finally:
                await probe.aclose()
                await load.aclose()
    return samples


def main(args: argparse.Namespace) -> int:
    try:
        with process.children_stopped():  # SIGTERM too: the emulator process is never left behind
            samples = asyncio.run(soak(args))
    except KeyboardInterrupt:
        print("benchtwin soak: interrupted; the emulator process was stopped", file=sys.stderr)
        return 130
    result = verdict(samples, args.warmup_samples,
                     {**DEFAULT_LIMITS, "rss_mb": args.max_rss_slope, "heap_mb": args.max_heap_slope})
    slopes = ", ".join(f"{k} {v:+.3f}/min" for k, v in result["slopes_per_min"].items())
    print(f"slopes after {result['after_warmup']} samples: {slopes}; "
          f"worst health answer {result['lateness_ms_max']} ms")
    if result.get("note"):
        print(f"note: {result['note']}")
    for problem in result["growth"]:
        print(f"GROWTH: {problem}")
    print("soak: ok" if result["ok"] else "soak: FAILED")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"verdict": result, "samples": as_rows(samples)}, indent=2) + "\n")
    return 0 if result["ok"] else 1
