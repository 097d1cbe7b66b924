"""Scenario `misty-ws`: V viewers of Misty's JPEG video WebSocket at 30 fps (encode once, fan out).

Two windows on one stream: one viewer, then V viewers. The emulator's CPU in each gives the cost of one
added viewer; each viewer's delivered frame rate shows whether the fan-out keeps up. One viewer decodes a
sample of frames to read the stamp, for the capture -> received latency.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import av

from clients.stamp import StampError, read_stamp
from emulators.bench.process import BenchError, EmulatorProcess, free_port
from emulators.bench.stats import BenchOptions, percentile, rounded
from emulators.bench.table import target
from emulators.bench.viewers import ViewerCount, cancel_all, watch
from emulators.misty.video import STREAM_NAME

FRAME_RATE = 30.0


class StampSampler:
    """Decodes every n-th JPEG of one viewer and keeps capture -> arrival latency in ms."""

    def __init__(self, every: int = 5) -> None:
        self.every = every
        self.seen = 0
        self.latencies_ms: list[float] = []
        self.decoder = av.CodecContext.create("mjpeg", "r")

    def __call__(self, jpeg: bytes, _monotonic: float) -> None:
        arrived_ms = time.time() * 1000.0
        self.seen += 1
        if self.seen % self.every:
            return
        try:
            for frame in self.decoder.decode(av.Packet(jpeg)):
                stamp = read_stamp(frame)
                self.latencies_ms.append(arrived_ms - stamp.capture_time_ms)
        except (StampError, av.error.FFmpegError):
            pass


async def _window(emulator: EmulatorProcess, counts: list[ViewerCount], seconds: float) -> tuple[float, list[int]]:
    """Emulator CPU seconds per second, and each viewer's frames, over one window."""
    cpu0, t0 = emulator.cpu_seconds(), time.monotonic()
    await asyncio.sleep(seconds)  # the measurement window itself, not a synchronisation
    cpu1, t1 = emulator.cpu_seconds(), time.monotonic()
    return (cpu1 - cpu0) / (t1 - t0), [c.in_window(t0, t1) for c in counts]


async def run(options: BenchOptions) -> dict[str, Any]:
    viewers = 3 if options.quick else 20
    window_s = 1.5 if options.quick else 6.0
    async with EmulatorProcess(["misty"], options.workdir) as emulator, aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=15)
    ) as session:
        port = free_port()
        async with session.post(f"{emulator.rest('misty')}/api/videostreaming/start", json={"Port": port}) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200 or body.get("result") is not True:
                raise BenchError(f"StartVideoStreaming answered {resp.status}: {body}")
        url = f"ws://127.0.0.1:{port}/"
        sampler = StampSampler()
        counts = [ViewerCount()]
        tasks = [asyncio.create_task(watch(session, url, counts[0], on_message=sampler))]
        try:
            async with asyncio.timeout(10):
                await counts[0].first.wait()
            await asyncio.sleep(0.5)  # warm-up: the encoder and the first viewer's buffers settle
            cpu_one, _ = await _window(emulator, counts, window_s)
            for _ in range(viewers - 1):
                counts.append(ViewerCount())
                tasks.append(asyncio.create_task(watch(session, url, counts[-1])))
            async with asyncio.timeout(10):
                await asyncio.gather(*(c.first.wait() for c in counts))
            await asyncio.sleep(0.5)
            cpu_many, frames = await _window(emulator, counts, window_s)
            state = await emulator.state(session, "misty")
        finally:
            await cancel_all(tasks)
    fps = [n / window_s for n in frames]
    pacing = state.get("pacing", {}).get(STREAM_NAME, {})
    fps_min = min(fps)
    per_viewer_ms = (cpu_many - cpu_one) / (viewers - 1) * 1000.0
    return {
        "viewers": viewers,
        "fps_min": round(fps_min, 2),
        "fps_mean": round(sum(fps) / len(fps), 2),
        "cpu_one_viewer_ms_per_s": round(cpu_one * 1000.0, 1),
        "cpu_all_viewers_ms_per_s": round(cpu_many * 1000.0, 1),
        "cpu_per_added_viewer_ms_per_s": round(per_viewer_ms, 2),
        "cpu_per_viewer_ratio_vs_first": rounded(per_viewer_ms / (cpu_one * 1000.0) if cpu_one else None),
        "latency_p50_ms": rounded(percentile(sampler.latencies_ms, 50), 1),
        "latency_p99_ms": rounded(percentile(sampler.latencies_ms, 99), 1),
        "frame_bytes": counts[0].bytes // max(1, counts[0].messages),
        "lateness_p99_ms": pacing.get("lateness_p99_ms"),
        "skipped_ticks": pacing.get("skipped"),
        "window_s": window_s,
        "targets": {"fps_min": target(f">= {FRAME_RATE * 0.95:.1f} fps to every viewer", fps_min >= FRAME_RATE * 0.95)},
    }
