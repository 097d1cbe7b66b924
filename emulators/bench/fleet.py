"""Scenario `fleet`: the largest fleet of idle Misty robots, each with one pubsub subscriber to IMU at 10 Hz
(DebounceMs 100), whose p99 event lateness stays under 50 ms; and the largest fleet of depth cameras, each serving
one viewer of its 640x400 `CAM_B` video (fMP4 over WebSocket, 30 fps). Each is ramped (emulators.bench.ramp) with
the fleet in one process and spread over one process per core, so the ratio shows what the second core buys.

Each step starts `benchtwin up --fleet DEVICE=N --processes P` afresh, connects one client per member, and after a
warm-up measures one window. A Misty event's lateness is its arrival (wall clock) minus its ``created`` sample
time; a video fragment's is its arrival minus its decode time (tfdt), against the stream's earliest such offset
(delay variation, as the SignalWire scenario). Deliveries are counted against 10 events or 30 frames per member
per second. A step is sustained when p99 lateness <= 50 ms and >= 95% arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from calendar import timegm
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from emulators.bench.process import EmulatorProcess
from emulators.bench.ramp import RampOutcome, RampPlan, reasons, run_ramp, scaling, scaling_target
from emulators.bench.stats import BenchOptions, percentile, rounded
from emulators.bench.table import target
from emulators.depthcam.media import split_boxes
from emulators.fleet import MAX_MEMBERS
from emulators.kit.listeners import raise_open_files_limit

EVENT_HZ = 10.0
LATENESS_LIMIT_MS = 50.0
DELIVERED_SHARE = 0.95
TARGET_ROBOTS = 200
VIDEO_FPS = 30.0
VIDEO_STREAM = "CAM_B"  # the OAK-D's left mono camera, 640x400 at 30 fps by default
QUICK_RAMPS = {"misty": RampPlan(start=4, factor=2.0, ceiling=4, budget_s=40.0),
               "depthcam": RampPlan(start=1, factor=2.0, ceiling=1, budget_s=40.0)}
# A fleet has at most MAX_MEMBERS members per device: the ramps stop there.
FULL_RAMPS = {"misty": RampPlan(start=100, factor=1.6, ceiling=MAX_MEMBERS, budget_s=150.0, resolution=0.1),
              "depthcam": RampPlan(start=2, factor=1.5, ceiling=64, budget_s=120.0, resolution=0.1)}
CREATED = '"created":"'


@dataclass
class Arrivals:
    """What every member's client received: per delivery its arrival (monotonic) and lateness in ms."""

    arrivals: list[float] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)
    heard_from: set[int] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, member: int, lateness_ms: float) -> None:
        self.arrivals.append(time.monotonic())
        self.lateness_ms.append(lateness_ms)
        if member not in self.heard_from:
            self.heard_from.add(member)
            self.changed.set()

    async def wait_heard(self, count: int, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.heard_from) < count:
                self.changed.clear()
                await self.changed.wait()


class CreatedReader:
    """``created`` of a Misty event message (the robot's 7-digit ISO time) in Unix ms, read by position."""

    def __init__(self) -> None:
        self._seconds: dict[str, int] = {}

    def __call__(self, text: str) -> float | None:
        start = text.find(CREATED)
        if start < 0:
            return None
        stamp = text[start + len(CREATED): start + len(CREATED) + 28]  # 2026-12-06T18:14:40.1234567Z
        whole = stamp[:19]
        seconds = self._seconds.get(whole)
        if seconds is None:
            seconds = self._seconds[whole] = timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
        return (seconds + float("0" + stamp[19:27])) * 1000.0


async def _misty_subscriber(session: aiohttp.ClientSession, entry: dict[str, Any], n: int, log: Arrivals,
                            created: CreatedReader) -> None:
    async with session.ws_connect(entry["pubsub"], heartbeat=None, max_msg_size=1024 * 1024) as ws:
        await ws.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "DebounceMs": int(1000 / EVENT_HZ),
                                      "EventName": f"bench-imu-{n}"}))
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                arrived_ms = time.time() * 1000.0
                sampled = created(message.data)
                if sampled is not None:
                    log.add(n, arrived_ms - sampled)


def _payload(data: bytes, path: list[bytes]) -> bytes | None:
    """The payload of a nested ISO-BMFF box (moof/traf/tfdt), or None."""
    for kind, raw in split_boxes(data)[0]:
        if kind == path[0]:
            header = 16 if struct.unpack_from(">I", raw)[0] == 1 else 8
            return raw[header:] if len(path) == 1 else _payload(raw[header:], path[1:])
    return None


def _full_box_number(payload: bytes, v0_offset: int, v1_offset: int) -> int:
    """A full box's 32-bit (version 0) or 64-bit (version 1) field."""
    if payload[0] == 1:
        return int(struct.unpack_from(">Q", payload, v1_offset)[0])
    return int(struct.unpack_from(">I", payload, v0_offset)[0])


async def _depthcam_viewer(session: aiohttp.ClientSession, entry: dict[str, Any], n: int, log: Arrivals) -> None:
    url = entry["video_ws"].replace("{stream_name}", VIDEO_STREAM)
    timescale = 0
    best: float | None = None  # the stream's earliest arrival-minus-decode-time offset, in seconds
    async with session.ws_connect(url, heartbeat=None, max_msg_size=16 * 1024 * 1024) as ws:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            arrived = time.monotonic()
            if not timescale:
                mdhd = _payload(message.data, [b"moov", b"trak", b"mdia", b"mdhd"])
                timescale = _full_box_number(mdhd, 12, 20) if mdhd else 0
                continue
            tfdt = _payload(message.data, [b"moof", b"traf", b"tfdt"])
            if tfdt is None:
                continue
            offset = arrived - _full_box_number(tfdt, 4, 4) / timescale
            best = offset if best is None else min(best, offset)
            log.add(n, (offset - best) * 1000.0)


async def _step(options: BenchOptions, device: str, members: int, processes: int, warmup_s: float,
                window_s: float) -> dict[str, Any]:
    log = Arrivals()
    created = CreatedReader()
    async with EmulatorProcess([device], options.workdir, fleet={device: members}, processes=processes,
                               ) as emulator, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0)) as session:
        entries = list(emulator.endpoints.values())
        clients = [asyncio.create_task(_misty_subscriber(session, entry, n, log, created) if device == "misty"
                                       else _depthcam_viewer(session, entry, n, log))
                   for n, entry in enumerate(entries)]
        try:
            try:
                await log.wait_heard(len(entries), timeout_s=20 + members * 0.05)
            except TimeoutError:
                return {"members": members, "sustained": False,
                        "reason": f"{len(log.heard_from)} of {members} clients received anything"}
            await asyncio.sleep(warmup_s)  # the last clients' first deliveries settle
            own0 = time.process_time()
            cpu0, wait0, t0 = emulator.cpu_seconds(), emulator.wait_seconds(), time.monotonic()
            first = len(log.arrivals)
            await asyncio.sleep(window_s)  # the measurement window
            last = len(log.arrivals)
            cpu1, wait1, t1 = emulator.cpu_seconds(), emulator.wait_seconds(), time.monotonic()
            own1 = time.process_time()
        finally:
            for task in clients:
                task.cancel()
            for task in clients:
                with contextlib.suppress(BaseException):
                    await task
    lateness = log.lateness_ms[first:last]
    expected = members * (EVENT_HZ if device == "misty" else VIDEO_FPS) * (t1 - t0)
    p99 = percentile(lateness, 99)
    cpu_cores = (cpu1 - cpu0) / (t1 - t0)
    what = "events" if device == "misty" else "frames"
    failed = reasons([
        (p99 is None or p99 > LATENESS_LIMIT_MS, f"p99 lateness {rounded(p99, 1)} ms > {LATENESS_LIMIT_MS:g} ms"),
        (len(lateness) < DELIVERED_SHARE * expected, f"{len(lateness)} of {round(expected)} {what} delivered"),
    ], cpu_cores / processes)
    return {
        "members": members,
        "sustained": failed is None,
        **({"reason": failed} if failed else {}),
        f"{what}_per_s": round(len(lateness) / (t1 - t0), 1),
        "lateness_p50_ms": rounded(percentile(lateness, 50), 2),
        "lateness_p99_ms": rounded(p99, 2),
        "cpu_cores": round(cpu_cores, 3),
        "runqueue_wait_cores": round((wait1 - wait0) / (t1 - t0), 3),
        "load_generator_cpu_cores": round((own1 - own0) / (t1 - t0), 3),
    }


async def _ramp(options: BenchOptions, device: str, processes: int) -> RampOutcome:
    plan = (QUICK_RAMPS if options.quick else FULL_RAMPS)[device]
    warmup_s, window_s = (0.5, 1.5) if options.quick else (1.0, 4.0)

    async def probe(members: int) -> dict[str, Any]:
        return {**await _step(options, device, members, processes, warmup_s, window_s), "device": device,
                "processes": processes}

    options.progress(f"{device} fleet in {processes} process(es)")
    return await run_ramp(plan, probe, progress=options.progress)


async def _device(options: BenchOptions, device: str, cores: int
                  ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The device's figures, every step, and its scaling target."""
    one = await _ramp(options, device, 1)
    many = await _ramp(options, device, cores) if cores > 1 else None
    best = many or one
    scaled = scaling(one, many)
    held = best.best_step("members")
    figures = {
        "sustained": best.sustained,
        "sustained_one_process": one.sustained,
        "scaling_vs_one_process": scaled,
        "lateness_p99_ms": held.get("lateness_p99_ms"),
        "first_failing_step": best.first_failing,
        "failed_because": best.failed_because,
        "ramp_stopped_by": best.stopped_by,
        "first_failing_step_one_process": one.first_failing,
    }
    return figures, [*one.steps, *(many.steps if many else [])], scaling_target(one, many, cores)


async def run(options: BenchOptions) -> dict[str, Any]:
    raise_open_files_limit()  # a client per fleet member: hundreds of sockets in this process
    cores = EmulatorProcess.cores()
    misty, misty_steps, misty_scaling = await _device(options, "misty", cores)
    depthcam, depthcam_steps, depthcam_scaling = await _device(options, "depthcam", cores)
    return {
        "processes": cores,
        **{f"misty_{k}": v for k, v in misty.items()},
        **{f"depthcam_{k}": v for k, v in depthcam.items()},
        "steps": [*misty_steps, *depthcam_steps],
        "notes": [f"misty: one pubsub subscriber to IMU at {EVENT_HZ:g} Hz per robot; depthcam: one {VIDEO_STREAM} "
                  "640x400 viewer per camera; the load generator runs on the same cores"],
        "targets": {
            "misty_sustained": target(f">= {TARGET_ROBOTS} robots at p99 <= {LATENESS_LIMIT_MS:g} ms",
                                      misty["sustained"] >= TARGET_ROBOTS),
            "misty_scaling_vs_one_process": misty_scaling,
            "depthcam_scaling_vs_one_process": depthcam_scaling,
        },
    }
