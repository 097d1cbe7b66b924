"""Scenario `misty-rtsp`: K PyAV pull clients on Misty's `rtspd:` stream (640x480, 30 fps), versus GStreamer.

Both servers are measured the same way, one after the other: one client for a window, then K clients for a
window. Every decoded frame's stamp gives capture -> decoded latency at the client; the server's CPU in the
two windows gives the cost of one added client. GStreamer's RTSP server runs from `gst_rtsp_server.py`
with the system python, fed frames of the same Misty scene pre-rendered here and stamped as it sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av

from clients.stamp import StampError, read_stamp
from emulators.bench import peers
from emulators.bench.process import BenchError, EmulatorProcess, cpu_seconds, free_port, spawn, stop, wait_for_port
from emulators.bench.stats import BenchOptions, percentile, ratio, rounded
from emulators.bench.table import target

WIDTH, HEIGHT, FPS = 640, 480, 30
BITRATE = 2_000_000
LAUNCHER = Path(__file__).with_name("gst_rtsp_server.py")
# The same low-delay client for both servers: TCP interleaved, no demuxer buffering, no frame threads.
CLIENT_OPTIONS = {"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay", "max_delay": "0"}


@dataclass
class PullClient:
    """One PyAV RTSP client in its own thread, recording (arrival monotonic, latency ms) per decoded frame."""

    url: str
    stop: threading.Event
    samples: list[tuple[float, float]] = field(default_factory=list)
    error: str | None = None
    first: threading.Event = field(default_factory=threading.Event)

    def pull(self, limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        try:
            with av.open(self.url, options=CLIENT_OPTIONS, timeout=(10.0, 5.0)) as container:
                stream = container.streams.video[0]
                stream.codec_context.thread_type = "SLICE"  # frame threads would add a frame of delay
                for packet in container.demux(stream):
                    for frame in packet.decode():
                        now_ms = time.time() * 1000.0
                        try:
                            stamp = read_stamp(frame)
                        except StampError:
                            continue
                        self.samples.append((time.monotonic(), now_ms - stamp.capture_time_ms))
                        self.first.set()
                    if self.stop.is_set() or time.monotonic() > deadline:
                        break
        except (av.error.FFmpegError, OSError) as exc:
            self.error = str(exc)
            self.first.set()

    def window(self, t0: float, t1: float) -> list[float]:
        return [lat for t, lat in self.samples if t0 <= t < t1]


async def _wait_first(clients: list[PullClient], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        for client in clients:
            await asyncio.to_thread(client.first.wait, timeout_s)
    failed = [c.error for c in clients if c.error]
    if failed:
        raise BenchError(f"an RTSP client failed: {failed[0]}")


async def measure(url: str, pid: int, clients_k: int, warmup_s: float, window_s: float) -> dict[str, Any]:
    """One client, then K clients, on ``url``; CPU of process ``pid`` in both windows."""
    stop_event = threading.Event()
    clients: list[PullClient] = []
    threads: list[asyncio.Task[None]] = []
    limit_s = 4 * (warmup_s + window_s) + 60

    def add_client() -> PullClient:
        client = PullClient(url, stop_event)
        clients.append(client)
        threads.append(asyncio.create_task(asyncio.to_thread(client.pull, limit_s)))
        return client

    try:
        add_client()
        await _wait_first(clients, 20)
        await asyncio.sleep(warmup_s)  # warm-up: the first GOP and the client's buffers settle
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(window_s)  # window 1: one client
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        one = clients[0].window(t0, t1)
        for _ in range(clients_k - 1):
            add_client()
        await _wait_first(clients, 20)
        await asyncio.sleep(warmup_s)
        cpu2, t2 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(window_s)  # window 2: K clients
        cpu3, t3 = cpu_seconds(pid), time.monotonic()
        many = [lat for c in clients for lat in c.window(t2, t3)]
        fps = [len(c.window(t2, t3)) / (t3 - t2) for c in clients]
    finally:
        stop_event.set()
        for task in threads:
            with contextlib.suppress(Exception):
                await task
    cpu_one = (cpu1 - cpu0) / (t1 - t0)
    cpu_many = (cpu3 - cpu2) / (t3 - t2)
    return {
        "latency_p50_ms": rounded(percentile(many, 50), 2),
        "latency_p99_ms": rounded(percentile(many, 99), 2),
        "latency_one_client_p50_ms": rounded(percentile(one, 50), 2),
        "fps_min": round(min(fps), 2),
        "cpu_one_client_ms_per_s": round(cpu_one * 1000, 1),
        "cpu_all_clients_ms_per_s": round(cpu_many * 1000, 1),
        "cpu_per_added_client_ms_per_s": round((cpu_many - cpu_one) * 1000 / max(1, clients_k - 1), 2),
    }


def render_frames(path: Path, count: int) -> None:
    """The Misty AV scene at 640x480, as raw I420 frames for the GStreamer launcher (stamp painted there)."""
    from emulators.misty.scene import MistyScene

    scene = MistyScene(0)
    with path.open("wb") as out:
        for index in range(count):
            native = scene.native_frame(index / FPS)
            frame = av.VideoFrame.from_ndarray(native, format="rgb24").reformat(
                width=WIDTH, height=HEIGHT, format="yuv420p", interpolation="BILINEAR")
            sizes = [(WIDTH, HEIGHT), (WIDTH // 2, HEIGHT // 2), (WIDTH // 2, HEIGHT // 2)]
            for plane, (w, h) in zip(frame.planes, sizes, strict=True):
                data = memoryview(plane)
                for row in range(h):
                    out.write(data[row * plane.line_size : row * plane.line_size + w])


async def _ours(options: BenchOptions, k: int, warmup_s: float, window_s: float) -> dict[str, Any]:
    async with EmulatorProcess(["misty"], options.workdir) as emulator, aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=20)
    ) as session:
        base = emulator.rest("misty")
        port = free_port()
        for path, body in (("services/avstreaming/enable", {}),
                           ("avstreaming/start", {"URL": f"rtspd:{port}", "Width": WIDTH, "Height": HEIGHT,
                                                  "FrameRate": FPS, "VideoBitRate": BITRATE})):
            async with session.post(f"{base}/api/{path}", json=body) as resp:
                answer = await resp.json(content_type=None)
                if resp.status != 200 or answer.get("result") is not True:
                    raise BenchError(f"misty /api/{path} answered {resp.status}: {answer}")
        try:
            return await measure(f"rtsp://127.0.0.1:{port}/", emulator.pid, k, warmup_s, window_s)
        finally:
            async with session.post(f"{base}/api/avstreaming/stop", json={}) as resp:
                await resp.read()


async def _gstreamer(options: BenchOptions, k: int, warmup_s: float, window_s: float) -> dict[str, Any]:
    frames = options.workdir / "misty-640x480.i420"
    await asyncio.to_thread(render_frames, frames, FPS)
    port = free_port()
    argv = [peers.SYSTEM_PYTHON, str(LAUNCHER), "--port", str(port), "--frames", str(frames), "--width", str(WIDTH),
            "--height", str(HEIGHT), "--fps", str(FPS), "--bitrate-kbps", str(BITRATE // 1000)]
    proc: subprocess.Popen[bytes] = spawn(argv, log=options.workdir / "gst.log")
    try:
        await wait_for_port(port, timeout_s=30, proc=proc)
        return await measure(f"rtsp://127.0.0.1:{port}/live", proc.pid, k, warmup_s, window_s)
    finally:
        await asyncio.to_thread(stop, proc)


async def run(options: BenchOptions) -> dict[str, Any]:
    k = 2 if options.quick else 5
    warmup_s, window_s = (0.5, 1.5) if options.quick else (1.5, 5.0)
    notes: list[str] = []
    ours = await _ours(options, k, warmup_s, window_s)
    gst_peer = peers.gstreamer() if options.use_peers else peers.Peer("gstreamer", False, "peers disabled (--no-peers)")
    theirs: dict[str, Any] = {}
    if gst_peer.available:
        theirs = await _gstreamer(options, k, warmup_s, window_s)
    else:
        notes.append(f"GStreamer not measured: {gst_peer.detail}")
    latency_ratio = ratio(ours["latency_p50_ms"], theirs.get("latency_p50_ms"))
    cpu_ratio = None
    cpu_why = None if theirs else "GStreamer not measured"
    if theirs:
        per_ours, per_theirs = ours["cpu_per_added_client_ms_per_s"], theirs["cpu_per_added_client_ms_per_s"]
        if per_ours > 0 and per_theirs > 0:
            cpu_ratio = ratio(per_ours, per_theirs)
        else:
            # A client that costs less than the window-to-window drift of a shared machine shows as 0 or below.
            cpu_why = "a per-client cost is below this run's measurement noise"
            notes.append(f"per added client: ours {per_ours} ms/s, GStreamer {per_theirs} ms/s; {cpu_why}")
    notes.append("ours also encodes and sends the AAC audio track; the GStreamer peer serves video only")
    return {
        "clients": k,
        **ours,
        "gstreamer": theirs or None,
        "latency_ratio_vs_gstreamer": latency_ratio,
        "cpu_per_client_ratio_vs_gstreamer": cpu_ratio,
        "notes": notes,
        "targets": {
            "latency_ratio_vs_gstreamer": target(
                "<= 1.2", None if latency_ratio is None else latency_ratio <= 1.2,
                None if theirs else "GStreamer not measured"),
            "cpu_per_client_ratio_vs_gstreamer": target(
                "<= 1.0", None if cpu_ratio is None else cpu_ratio <= 1.0, cpu_why),
        },
    }
