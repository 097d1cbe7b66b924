"""Scenario `recall-video`: ramp concurrent legacy video streams (2 fps, 1280x720 PNG, gallery view) until
a step fails, then bisect to the largest sustained count (emulators.bench.ramp).

Each step resets the emulator, loads a meeting with N participants over the control plane and creates one
gallery-view bot over the bots API, so N WebSocket streams arrive at our receiver. After a warm-up, one
window is measured: lateness of every frame at the receiver (arrival wall time minus the capture time the
frame's stamp and header give), frames skipped by the emulator's pacer, and the emulator's CPU per frame.
A step is sustained when p99 lateness <= 50 ms and no frame was skipped or lost. The floor is plain
`zlib.compress(level=1)` of the same frame's PNG scanlines, timed in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiohttp import web

from clients.stamp import StampError, read_stamp
from emulators.bench.process import BenchError, EmulatorProcess
from emulators.bench.ramp import RampOutcome, RampPlan, reasons, run_ramp, scaling, scaling_target
from emulators.bench.stats import BenchOptions, percentile, ratio, rounded
from emulators.bench.table import target

PERIOD_MS = 500
LATENESS_LIMIT_MS = 50.0
TARGET_STREAMS = 150
MOONSHOT_STREAMS = 250
QUICK_RAMP = RampPlan(start=2, factor=2.0, ceiling=4, budget_s=30.0)
FULL_RAMP = RampPlan(start=30, factor=1.5, ceiling=800, budget_s=150.0, resolution=0.1)
HEADER = struct.Struct("<II")  # participant id, timestamp ms (the legacy video header)


@dataclass
class Arrival:
    monotonic: float
    stream: str  # bot id / participant id
    timestamp_ms: int
    lateness_ms: float | None


@dataclass
class VideoSink:
    """Our receiver: accepts the bots' connections, keeps one record per frame (not the PNG)."""

    arrivals: list[Arrival] = field(default_factory=list)
    connections: int = 0
    # Per bot: capture_time_ms - header timestamp_ms, the same for every stream of one bot.
    offsets_ms: dict[str, float] = field(default_factory=dict)
    bot_ids: set[str] = field(default_factory=set)  # the bots of the current step
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def reset(self) -> None:
        self.arrivals.clear()
        self.connections = 0
        self.offsets_ms.clear()
        self.bot_ids.clear()

    def _offset_from(self, bot_id: str, png: bytes, timestamp_ms: int) -> None:
        # A fresh decoder, flushed, so the frame comes out now rather than after the next packet.
        decoder = av.CodecContext.create("png", "r")
        try:
            for frame in [*decoder.decode(av.Packet(png)), *decoder.decode(None)]:
                capture_ms = read_stamp(frame.to_ndarray(format="rgb24")).capture_time_ms
                self.offsets_ms[bot_id] = capture_ms - timestamp_ms
        except (StampError, av.error.FFmpegError):
            pass

    async def accept(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=64 * 1024**2)
        await ws.prepare(request)
        self.connections += 1
        self.changed.set()
        bot_id = None
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    bot_id = json.loads(message.data).get("bot_id")  # the connection's hello
                continue
            # Only the current step's bots count: a frame still in flight from the previous one does not.
            if message.type != aiohttp.WSMsgType.BINARY or bot_id is None or bot_id not in self.bot_ids:
                continue
            arrived_wall_ms = time.time() * 1000.0
            arrived = time.monotonic()
            participant_id, timestamp_ms = HEADER.unpack_from(message.data)
            if bot_id not in self.offsets_ms:
                self._offset_from(bot_id, message.data[HEADER.size :], timestamp_ms)
            offset = self.offsets_ms.get(bot_id)
            lateness = None if offset is None else arrived_wall_ms - (offset + timestamp_ms)
            self.arrivals.append(Arrival(arrived, f"{bot_id}/{participant_id}", timestamp_ms, lateness))
            self.changed.set()
        return ws

    async def wait(self, predicate: Any, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def zlib_floor_seconds(repeats: int) -> tuple[float, int]:
    """CPU seconds of zlib level 1 over one 1280x720 tile's PNG scanlines (the floor of any PNG writer)."""
    from emulators.kit.stamp import StreamKind
    from emulators.recall.tiles import TileRenderer, TileSpec

    frame = TileRenderer().render(TileSpec(StreamKind.RECALL_WEBCAM, 100, "Ada Lovelace", 1280, 720), 7,
                                  int(time.time() * 1000))
    scanlines = np.zeros((720, 1 + 1280 * 3), dtype=np.uint8)
    scanlines[:, 1:] = frame.reshape(720, -1)
    raw = scanlines.tobytes()
    best = float("inf")
    size = 0
    for _ in range(repeats):
        t0 = time.thread_time()
        size = len(zlib.compress(raw, 1))
        best = min(best, time.thread_time() - t0)
    return best, size


def _pacing(state: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(state.get("pacing", {}).get(name, {}))


async def _start_bot(emulator: EmulatorProcess, session: aiohttp.ClientSession, name: str, receiver_url: str,
                     count: int) -> str:
    """Reset one Recall emulator, load a meeting of ``count`` participants, send a gallery-view bot; its id."""
    await emulator.control(session, name, "reset", {})
    state = await emulator.state(session, name)
    time_scale = float(state.get("time_scale") or 1.0)
    letters = "".join(chr(ord("a") + (count // 26**i) % 26) for i in range(4))
    meeting_url = f"https://meet.google.com/ben-{letters}-chm"
    scenario = {
        "name": f"bench-{count}",
        "meeting_urls": [meeting_url],
        # Scenario time is multiplied by the time scale; long enough that the meeting outlives the step.
        "duration_s": 3600.0 / max(time_scale, 1e-6),
        "participants": [{"id": 100 * (i + 1)} for i in range(count)],
    }
    await emulator.control(session, name, "scenario/load_scenario", {"name": scenario["name"], "scenario": scenario})
    key = emulator.credentials(name)["api_key"]
    body = {"meeting_url": meeting_url, "recording_mode": "gallery_view",
            "real_time_media": {"websocket_video_destination_url": receiver_url}}
    async with session.post(f"{emulator.rest(name)}/api/v1/bot/", json=body,
                            headers={"Authorization": f"Token {key}"}) as resp:
        created = await resp.json(content_type=None)
        if resp.status >= 300:
            raise BenchError(f"creating the bot answered {resp.status}: {created}")
    return str(created["id"])


async def _step(emulator: EmulatorProcess, session: aiohttp.ClientSession, sink: VideoSink, receiver_url: str,
                count: int, warmup_s: float, window_s: float) -> dict[str, Any]:
    """``count`` streams, dealt evenly over the emulators of the run (a bot each), then one window."""
    sink.reset()
    names = list(emulator.endpoints)
    share, extra = divmod(count, len(names))
    shares = [(name, share + (1 if n < extra else 0)) for n, name in enumerate(names)]
    bot_ids = await asyncio.gather(*(_start_bot(emulator, session, name, receiver_url, k)
                                     for name, k in shares if k > 0))
    sink.bot_ids.update(bot_ids)

    def every_stream_delivering() -> bool:
        return len({a.stream for a in sink.arrivals}) >= count and len(sink.offsets_ms) >= len(bot_ids)

    try:
        await sink.wait(every_stream_delivering, timeout_s=20 + count * 0.2)
    except TimeoutError:
        got = len({a.stream for a in sink.arrivals})
        return {"streams": count, "sustained": False, "reason": f"only {got} of {count} streams delivered frames"}
    await asyncio.sleep(warmup_s)  # warm-up before the window: connections and first encodes settle
    before = [await emulator.state(session, name) for name in names]
    own0 = time.process_time()  # the load generator's (this process's) CPU, receivers included
    cpu0, wait0, t0 = emulator.cpu_seconds(), emulator.wait_seconds(), time.monotonic()
    await asyncio.sleep(window_s)  # the measurement window
    cpu1, wait1, t1 = emulator.cpu_seconds(), emulator.wait_seconds(), time.monotonic()
    own1 = time.process_time()
    after = [await emulator.state(session, name) for name in names]
    window = [a for a in sink.arrivals if t0 <= a.monotonic < t1]
    lateness = [a.lateness_ms for a in window if a.lateness_ms is not None]
    skipped = sum(int(_pacing(a, "video").get("skipped", 0)) - int(_pacing(b, "video").get("skipped", 0))
                  for a, b in zip(after, before, strict=True))
    lost = 0
    by_stream: dict[str, list[int]] = {}
    for a in window:
        by_stream.setdefault(a.stream, []).append(a.timestamp_ms)
    for stamps in by_stream.values():
        stamps.sort()
        lost += sum(max(0, (b - a) // PERIOD_MS - 1) for a, b in itertools.pairwise(stamps))
    expected = count * (t1 - t0) * 1000 / PERIOD_MS
    p99 = percentile(lateness, 99)
    frames = len(window)
    cpu_cores = (cpu1 - cpu0) / (t1 - t0)
    failed = reasons([
        (p99 is None or p99 > LATENESS_LIMIT_MS, f"p99 lateness {rounded(p99, 1)} ms > {LATENESS_LIMIT_MS:g} ms"),
        (skipped > 0, f"{skipped} frames skipped by the pacer"),
        (lost > 0, f"{lost} frames lost"),
        (len(by_stream) < count, f"{count - len(by_stream)} streams silent"),
        (frames < expected - count, f"{frames} of {round(expected)} frames delivered"),
    ], cpu_cores / emulator.processes)
    return {
        "streams": count,
        "processes": emulator.processes,
        "sustained": failed is None,
        **({"reason": failed} if failed else {}),
        "frames": frames,
        "frames_expected": round(expected),
        "lateness_p50_ms": rounded(percentile(lateness, 50), 2),
        "lateness_p99_ms": rounded(p99, 2),
        "lateness_max_ms": rounded(max(lateness) if lateness else None, 2),
        "skipped_frames": skipped,
        "lost_frames": lost,
        "cpu_s_per_frame": rounded((cpu1 - cpu0) / frames if frames else None, 5),
        "cpu_cores": round(cpu_cores, 3),
        # Threads runnable but waiting for a core, in cores: high means the machine, not the emulator, was full.
        "runqueue_wait_cores": round((wait1 - wait0) / (t1 - t0), 3),
        "load_generator_cpu_cores": round((own1 - own0) / (t1 - t0), 3),
        "emulator_send_lateness_p99_ms": max((_pacing(a, "video.send").get("lateness_p99_ms") or 0.0
                                              for a in after), default=None),
    }


async def _ramp(options: BenchOptions, processes: int, sink: VideoSink, receiver_url: str) -> RampOutcome:
    """One ramp against `up` in ``processes`` processes (a fleet of that many Recall emulators when more than one,
    the participants dealt evenly, one bot each)."""
    plan = QUICK_RAMP if options.quick else FULL_RAMP
    warmup_s, window_s = (0.5, 1.5) if options.quick else (1.5, 5.0)
    fleet = {"recall": processes} if processes > 1 else None
    async with EmulatorProcess(["recall"], options.workdir, processes=processes, fleet=fleet) as emulator, \
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        async def probe(count: int) -> dict[str, Any]:
            return await _step(emulator, session, sink, receiver_url, count, warmup_s, window_s)

        options.progress(f"recall in {processes} process(es)")
        outcome = await run_ramp(plan, probe, progress=options.progress)
        for name in emulator.endpoints:
            await emulator.control(session, name, "reset", {})
    return outcome


async def run(options: BenchOptions) -> dict[str, Any]:
    floor_s, floor_bytes = await asyncio.to_thread(zlib_floor_seconds, 3 if options.quick else 15)
    sink = VideoSink()
    app = web.Application()
    app.router.add_get("/{tail:.*}", sink.accept)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    cores = EmulatorProcess.cores()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        receiver_url = f"ws://127.0.0.1:{port}/video"
        one = await _ramp(options, 1, sink, receiver_url)
        many = await _ramp(options, cores, sink, receiver_url) if cores > 1 else None
    finally:
        await runner.cleanup()
    outcome = one if many is None or many.sustained <= one.sustained else many
    scaled = scaling(one, many)
    best = one.best_step("streams")  # the cost per frame is one process's
    cpu_per_frame = best.get("cpu_s_per_frame") if best.get("sustained") else None
    held = outcome.best_step("streams")
    count = outcome.sustained
    return {
        "sustained_streams": count,
        "sustained_streams_one_process": one.sustained,
        "processes": held.get("processes", 1),
        "scaling_vs_one_process": scaled,
        "lateness_p50_ms": held.get("lateness_p50_ms"),
        "lateness_p99_ms": held.get("lateness_p99_ms"),
        "lateness_max_ms": held.get("lateness_max_ms"),
        "cpu_s_per_frame": cpu_per_frame,
        "zlib_floor_s_per_frame": round(floor_s, 5),
        "cost_vs_zlib_floor": ratio(cpu_per_frame, floor_s),
        "zlib_floor_png_bytes": floor_bytes,
        # What one idle core would carry at the measured cost (2 frames per stream per second): a projection,
        # shown next to the measured count because a shared machine rarely gives the emulator a whole core.
        "projected_streams_per_core": None if not cpu_per_frame else int(1.0 / (cpu_per_frame * 1000 / PERIOD_MS)),
        **outcome.figures(),
        "first_failing_step_one_process": one.first_failing,
        "steps": [*one.steps, *(many.steps if many else [])],
        "targets": {
            "sustained_streams": target(f">= {TARGET_STREAMS} streams (moonshot {MOONSHOT_STREAMS})",
                                        count >= TARGET_STREAMS),
            "scaling_vs_one_process": scaling_target(one, many, cores),
        },
    }
