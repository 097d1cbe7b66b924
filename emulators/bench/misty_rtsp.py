"""Scenario `misty-rtsp`: K PyAV pull clients on Misty's `rtspd:` stream (640x480, 30 fps), versus GStreamer.

Both servers are measured the same way, one after the other: one client for a window, then K clients for a
window, three rounds. Every decoded frame's stamp gives capture -> decoded latency at the client; the server's
CPU in the two windows gives the cost of one added client (the median of the rounds) and the total with K.
GStreamer's RTSP server runs from `gst_rtsp_server.py` with the system python, fed frames of the same Misty
scene pre-rendered here and stamped as it sends them. Both carry the robot's AAC track (the same tone, the same
FFmpeg encoder and bitrate), then both serve video only (`av_audio = false` for ours), so the audio's share of
the cost is seen on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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
AUDIO_RATE, AUDIO_BITRATE = 44_100, 128_000  # StartAvStreaming's defaults (AudioSampleRateHz, AudioBitRate)
TOTAL_CPU_TARGET = 1.2
LAUNCHER = Path(__file__).with_name("gst_rtsp_server.py")
# The same low-delay client for both servers: TCP interleaved, no demuxer buffering, no frame threads.
CLIENT_OPTIONS = {"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay", "max_delay": "0"}


@dataclass
class PullClient:
    """One PyAV RTSP client in its own thread, recording (arrival monotonic, latency ms) per decoded frame."""

    url: str
    stop: threading.Event
    decode: bool = True  # False: receive and depacketize only (a cheap client, to load the server, not us)
    packets: int = 0
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
                    self.packets += 1
                    if not self.decode:
                        self.first.set()
                        if self.stop.is_set() or time.monotonic() > deadline:
                            break
                        continue
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


async def measure(url: str, pid: int, clients_k: int, warmup_s: float, window_s: float, rounds: int
                  ) -> dict[str, Any]:
    """Alternating windows on ``url``: one client, K clients, one client, K clients... (``rounds`` pairs).

    Alternating cancels the slow drift of a shared machine out of the K-minus-one difference.
    """
    clients: list[PullClient] = []
    pulls: list[asyncio.Future[None]] = []
    limit_s = rounds * 2 * (warmup_s + window_s + 20) + 60
    # One thread per client ever started (the default executor has too few), owned and joined here.
    executor = ThreadPoolExecutor(max_workers=1 + rounds * (clients_k - 1), thread_name_prefix="rtsp-client")
    loop = asyncio.get_running_loop()

    def add_client(decode: bool = True) -> PullClient:
        client = PullClient(url, threading.Event(), decode=decode)
        clients.append(client)
        pulls.append(loop.run_in_executor(executor, client.pull, limit_s))
        return client

    async def window() -> tuple[float, float, float]:
        await asyncio.sleep(warmup_s)  # warm-up: a joining client's first GOP and buffers settle
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(window_s)  # the measurement window
        return (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0), t0, time.monotonic()

    cpu_one: list[float] = []
    cpu_many: list[float] = []
    one: list[float] = []
    many: list[float] = []
    fps: list[float] = []
    try:
        first = add_client()
        await _wait_first(clients, 20)
        for _ in range(rounds):
            cpu, t0, t1 = await window()
            cpu_one.append(cpu)
            one.extend(first.window(t0, t1))
            # One more decoding client for the latency figures; the rest only receive, so that many clients
            # load the server without the load generator's decoding taking the machine's two cores.
            extra = [add_client(decode=i == 0) for i in range(clients_k - 1)]
            await _wait_first(extra, 20)
            cpu, t0, t1 = await window()
            cpu_many.append(cpu)
            many.extend(lat for c in [first, *extra] for lat in c.window(t0, t1))
            fps.extend(len(c.window(t0, t1)) / (t1 - t0) for c in [first, *extra] if c.decode)
            for client in extra:  # back to one client for the next round
                client.stop.set()
    finally:
        for client in clients:
            client.stop.set()
        for pull in pulls:
            with contextlib.suppress(Exception):
                await pull
        executor.shutdown(wait=True)
    mean_one = sum(cpu_one) / len(cpu_one)
    mean_many = sum(cpu_many) / len(cpu_many)
    each_round = [(m - o) * 1000 / max(1, clients_k - 1) for o, m in zip(cpu_one, cpu_many, strict=True)]
    return {
        "latency_p50_ms": rounded(percentile(many, 50), 2),
        "latency_p99_ms": rounded(percentile(many, 99), 2),
        "latency_one_client_p50_ms": rounded(percentile(one, 50), 2),
        "fps_min": round(min(fps), 2),
        "cpu_one_client_ms_per_s": round(mean_one * 1000, 1),
        "cpu_all_clients_ms_per_s": round(mean_many * 1000, 1),
        # The median of the rounds: one round disturbed by the machine does not move it.
        "cpu_per_added_client_ms_per_s": round(statistics.median(each_round), 2),
        "cpu_per_added_client_each_round": [round(r, 2) for r in each_round],
    }


def render_frames(path: Path, count: int) -> None:
    """The Misty AV pictures at 640x480, as raw I420 frames for the GStreamer launcher (stamp painted there):
    drawn by the emulator's own ``AvPicture``, so both servers encode the same pictures."""
    from emulators.misty.av_picture import AvPicture
    from emulators.misty.scene import MistyScene

    picture = AvPicture(MistyScene(0), WIDTH, HEIGHT)
    with path.open("wb") as out:
        for index in range(count):
            out.write(picture.draw(index / FPS).tobytes())


def write_tone(path: Path, sample_rate: int) -> None:
    """One second of the AV tone (440 Hz and the 1 kHz beep at the second's start: periodic in one second), as
    S16LE samples for the GStreamer launcher to loop."""
    from emulators.misty.media import AvTone

    path.write_bytes(AvTone(sample_rate, FPS).one_second().astype("<i2").tobytes())


async def _ours(options: BenchOptions, k: int, warmup_s: float, window_s: float, rounds: int, *, audio: bool
                ) -> dict[str, Any]:
    settings = {"misty": {"av_audio": audio}}
    async with EmulatorProcess(["misty"], options.workdir, settings=settings) as emulator, aiohttp.ClientSession(
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
            return await measure(f"rtsp://127.0.0.1:{port}/", emulator.pid, k, warmup_s, window_s, rounds)
        finally:
            async with session.post(f"{base}/api/avstreaming/stop", json={}) as resp:
                await resp.read()


async def _gstreamer(options: BenchOptions, k: int, warmup_s: float, window_s: float, rounds: int, *, audio: bool
                     ) -> dict[str, Any]:
    frames = options.workdir / "misty-640x480.i420"
    if not frames.exists():
        await asyncio.to_thread(render_frames, frames, FPS)
    port = free_port()
    argv = [peers.SYSTEM_PYTHON, str(LAUNCHER), "--port", str(port), "--frames", str(frames), "--width", str(WIDTH),
            "--height", str(HEIGHT), "--fps", str(FPS), "--bitrate-kbps", str(BITRATE // 1000)]
    if audio:
        tone = options.workdir / f"misty-tone-{AUDIO_RATE}.s16"
        await asyncio.to_thread(write_tone, tone, AUDIO_RATE)
        argv += ["--audio", str(tone), "--audio-rate", str(AUDIO_RATE), "--audio-bitrate", str(AUDIO_BITRATE)]
    proc: subprocess.Popen[bytes] = spawn(argv, log=options.workdir / "gst.log")
    try:
        await wait_for_port(port, timeout_s=30, proc=proc)
        return await measure(f"rtsp://127.0.0.1:{port}/live", proc.pid, k, warmup_s, window_s, rounds)
    finally:
        await asyncio.to_thread(stop, proc)


async def _pair(options: BenchOptions, k: int, warmup_s: float, window_s: float, rounds: int, *, audio: bool,
                gst_peer: peers.Peer) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = await _ours(options, k, warmup_s, window_s, rounds, audio=audio)
    theirs = await _gstreamer(options, k, warmup_s, window_s, rounds, audio=audio) if gst_peer.available else {}
    return ours, theirs


def _total_ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> float | None:
    return ratio(ours["cpu_all_clients_ms_per_s"], theirs.get("cpu_all_clients_ms_per_s")) if theirs else None


async def run(options: BenchOptions) -> dict[str, Any]:
    k = 2 if options.quick else 12
    warmup_s, window_s = (0.5, 1.5) if options.quick else (1.0, 4.0)
    rounds = 1 if options.quick else 3
    notes: list[str] = []
    gst_peer = peers.gstreamer() if options.use_peers else peers.Peer("gstreamer", False, "peers disabled (--no-peers)")
    if not gst_peer.available:
        notes.append(f"GStreamer not measured: {gst_peer.detail}")
    ours, theirs = await _pair(options, k, warmup_s, window_s, rounds, audio=True, gst_peer=gst_peer)
    video_only: dict[str, Any] | None = None
    if not options.quick:
        ours_v, theirs_v = await _pair(options, k, warmup_s, window_s, rounds, audio=False, gst_peer=gst_peer)
        video_only = {"ours": ours_v, "gstreamer": theirs_v or None,
                      "total_cpu_ratio_vs_gstreamer": _total_ratio(ours_v, theirs_v)}
    else:
        notes.append("--quick: the video-only comparison is left out")
    latency_ratio = ratio(ours["latency_p50_ms"], theirs.get("latency_p50_ms"))
    total_ratio = _total_ratio(ours, theirs)
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
    notes.append("both servers carry the same AAC track (FFmpeg's encoder, 44.1 kHz, 128 kbit/s), then both serve "
                 "video only (video_only); ours renders every frame, the peer reads frames rendered in advance")
    video_total = video_only["total_cpu_ratio_vs_gstreamer"] if video_only else None
    return {
        "clients": k,
        **ours,
        "gstreamer": theirs or None,
        "latency_ratio_vs_gstreamer": latency_ratio,
        "cpu_per_client_ratio_vs_gstreamer": cpu_ratio,
        "total_cpu_ratio_vs_gstreamer": total_ratio,
        "video_only_total_cpu_ratio_vs_gstreamer": video_total,
        "video_only": video_only,
        "notes": notes,
        "targets": {
            "latency_ratio_vs_gstreamer": target(
                "<= 1.2", None if latency_ratio is None else latency_ratio <= 1.2,
                None if theirs else "GStreamer not measured"),
            "cpu_per_client_ratio_vs_gstreamer": target(
                "<= 1.0", None if cpu_ratio is None else cpu_ratio <= 1.0, cpu_why),
            "total_cpu_ratio_vs_gstreamer": target(
                f"<= {TOTAL_CPU_TARGET}", None if total_ratio is None else total_ratio <= TOTAL_CPU_TARGET,
                None if theirs else "GStreamer not measured"),
            "video_only_total_cpu_ratio_vs_gstreamer": target(
                f"<= {TOTAL_CPU_TARGET}", None if video_total is None else video_total <= TOTAL_CPU_TARGET,
                "GStreamer not measured" if not theirs else ("--quick" if video_only is None else None)),
        },
    }
