"""The kit's RTSP server against clients nobody here wrote: FFmpeg (ffprobe/ffmpeg), GStreamer
rtspsrc and PyAV, over TCP-interleaved and UDP, reading back the frame stamps painted at encode."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest

from clients.stamp import FrameStamp, StampError, StreamKind, read_stamp
from emulators.kit.codecs import AacEncoder, H264Encoder
from emulators.kit.rtsp import AacTrack, H264Track, LiveMedia, RtspRecorder, RtspServer
from emulators.kit.stamp import paint_stamp

pytestmark = pytest.mark.interop

WIDTH, HEIGHT, FPS, GOP = 320, 240, 30, 30
SAMPLE_RATE = 44100
STREAM_ID = 7
TOOL_TIMEOUT = 30.0
FRAMES = 30
# rtspsrc over TCP ends every branch when one ends; over UDP each branch ends on its own. Two
# seconds of audio outlast the video branch in both cases, so the video count decides over TCP.
AUDIO_BUFFERS = 2 * SAMPLE_RATE // 1024
FFMPEG_PACKAGE = "ffmpeg"
GST_PACKAGES = "gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-libav"
REPO_ROOT = Path(__file__).resolve().parents[2]


class Producer:
    """A camera stand-in on its own thread: renders a moving bar, paints the frame stamp, encodes
    H.264 + AAC once and publishes to the LiveMedia, paced by absolute deadlines."""

    def __init__(self, media: LiveMedia, video: H264Encoder, audio: AacEncoder) -> None:
        self.media, self.video, self.audio = media, video, audio
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtsp-interop-producer", daemon=True)
        self.frames = 0
        self.lateness: list[float] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        start = time.monotonic()
        samples_sent = 0
        tone = 2 * np.pi * 440 / SAMPLE_RATE
        while not self._stop.is_set():
            index = self.frames
            image = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
            x = (index * 4) % WIDTH
            image[:, x : x + 16] = (230, 60, 60)  # content that changes, so P-frames are not empty
            paint_stamp(image, FrameStamp(StreamKind.MISTY_AV, STREAM_ID, index, int(time.time() * 1000)))
            for packet in self.video.encode(image, index):
                self.media.publish_video(packet.data, packet.pts / FPS, packet.keyframe)
            target = round((index + 1) * SAMPLE_RATE / FPS)
            t = np.arange(samples_sent, target)
            samples = (8000 * np.sin(tone * t)).astype(np.int16)
            samples_sent = target
            for packet in self.audio.encode(samples):
                self.media.publish_audio(packet.data, packet.pts / SAMPLE_RATE)
            self.frames += 1
            deadline = start + self.frames / FPS
            late = time.monotonic() - deadline
            self.lateness.append(late)
            if late < 0:
                self._stop.wait(-late)


@dataclass
class LiveRig:
    """An RtspServer on its own event loop thread, fed by the Producer; the tests stay synchronous
    so that every external tool runs with a plain subprocess timeout."""

    media: LiveMedia
    producer: Producer
    events: list[tuple[str, dict]] = field(default_factory=list)
    port: int = 0
    server: RtspServer | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stopped: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    def url(self, path: str = "/video") -> str:
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="rtsp-interop-loop")
        self._thread.start()
        if not self._ready.wait(10.0) or self.error is not None:
            raise RuntimeError(f"RTSP server did not start: {self.error!r}")
        self.producer.start()

    async def _serve(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stopped = asyncio.Event()
            self.server = RtspServer(self.media, on_event=lambda kind, details: self.events.append((kind, details)))
            await self.server.start()
            self.port = self.server.port
        except BaseException as exc:  # reported to the starting thread
            self.error = exc
            self._ready.set()
            raise
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await self.server.aclose()

    def stop(self) -> None:
        self.producer.stop()
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10.0)


@pytest.fixture(scope="module")
def rig():
    video = H264Encoder(WIDTH, HEIGHT, FPS, 400_000, gop=GOP)
    audio = AacEncoder(SAMPLE_RATE, 64_000)
    media = LiveMedia(
        H264Track(WIDTH, HEIGHT, FPS, video.sps, video.pps), AacTrack(SAMPLE_RATE, 1, audio.audio_specific_config)
    )
    live = LiveRig(media, Producer(media, video, audio))
    live.start()
    yield live
    live.stop()
    media.close()


def need(*tools: str, package: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian package: {package})")


def run_tool(args: list[str], timeout: float = TOOL_TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    """Run an external client; subprocess.run kills it if it overruns, and a failure shows stderr."""
    result = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args[0]} exited {result.returncode}: {result.stderr.decode()[-2000:]}"
    return result


def stamps_in_order(frames: list[np.ndarray] | list[av.VideoFrame]) -> list[FrameStamp]:
    stamps = []
    for frame in frames:
        try:
            stamps.append(read_stamp(frame))
        except StampError as exc:
            pytest.fail(f"a decoded frame has no readable stamp: {exc}")
    indices = [s.frame_index for s in stamps]
    assert all(s.stream_id == STREAM_ID and s.stream_kind == StreamKind.MISTY_AV for s in stamps)
    assert indices == sorted(indices) and len(set(indices)) == len(indices), f"stamps out of order: {indices}"
    return stamps


def gray_frames(raw: bytes) -> list[np.ndarray]:
    size = WIDTH * HEIGHT
    assert len(raw) >= size and len(raw) % size == 0, f"{len(raw)} bytes is not whole {WIDTH}x{HEIGHT} frames"
    return [np.frombuffer(raw[i : i + size], np.uint8).reshape(HEIGHT, WIDTH) for i in range(0, len(raw), size)]


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_ffprobe_sees_h264_320x240_and_aac(rig: LiveRig, transport: str) -> None:
    need("ffprobe", package=FFMPEG_PACKAGE)
    result = run_tool(
        ["ffprobe", "-v", "error", "-rtsp_transport", transport, "-show_entries",
         "stream=codec_name,width,height,sample_rate,channels,profile", "-of", "json", rig.url()]
    )  # fmt: skip
    streams = {s["codec_name"]: s for s in json.loads(result.stdout)["streams"]}
    assert set(streams) == {"h264", "aac"}
    assert (streams["h264"]["width"], streams["h264"]["height"]) == (WIDTH, HEIGHT)
    assert (int(streams["aac"]["sample_rate"]), streams["aac"]["channels"]) == (SAMPLE_RATE, 1)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_ffmpeg_decodes_frames_whose_stamps_arrive_in_order(rig: LiveRig, transport: str) -> None:
    need("ffmpeg", package=FFMPEG_PACKAGE)
    result = run_tool(
        ["ffmpeg", "-v", "error", "-rtsp_transport", transport, "-i", rig.url("/"), "-map", "0:v",
         "-frames:v", str(FRAMES), "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    )  # fmt: skip
    frames = gray_frames(result.stdout)
    assert len(frames) == FRAMES
    stamps = stamps_in_order(frames)
    # A client joins at an IDR, so it sees whole GOPs without gaps on loopback.
    assert stamps[0].frame_index % GOP == 0
    assert [s.frame_index for s in stamps] == list(range(stamps[0].frame_index, stamps[0].frame_index + FRAMES))


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_gstreamer_rtspsrc_decodes_video_and_audio(rig: LiveRig, protocol: str) -> None:
    need("gst-launch-1.0", "gst-inspect-1.0", package=GST_PACKAGES)
    for element in ("rtspsrc", "rtph264depay", "rtpmp4gdepay", "avdec_h264", "avdec_aac"):
        if subprocess.run(["gst-inspect-1.0", element], capture_output=True, timeout=20).returncode != 0:
            pytest.skip(f"GStreamer element {element} missing (Debian packages: {GST_PACKAGES})")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "video.gray"
        run_tool(
            ["gst-launch-1.0", "-q", "rtspsrc", f"location={rig.url('/cam')}", f"protocols={protocol}",
             "latency=200", "name=src",
             "src.", "!", "application/x-rtp,media=video", "!", "rtph264depay", "!", "avdec_h264", "!",
             "videoconvert", "!", "video/x-raw,format=GRAY8", "!", "identity", f"eos-after={FRAMES + 1}", "!",
             "filesink", f"location={out}",
             "src.", "!", "application/x-rtp,media=audio", "!", "rtpmp4gdepay", "!", "avdec_aac", "!",
             "fakesink", f"num-buffers={AUDIO_BUFFERS}"]
        )  # fmt: skip
        frames = gray_frames(out.read_bytes())
    assert len(frames) >= FRAMES  # identity's eos-after counts the buffer it ends on differently across versions
    stamps_in_order(frames)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_pyav_pulls_with_stamps_in_order_and_audio(rig: LiveRig, transport: str) -> None:
    latencies: list[float] = []
    frames: list[av.VideoFrame] = []
    audio_frames = 0
    with av.open(rig.url(), options={"rtsp_transport": transport}, timeout=10.0) as container:
        for frame in container.decode(video=0, audio=0):
            if isinstance(frame, av.AudioFrame):
                audio_frames += 1
                assert frame.sample_rate == SAMPLE_RATE
                continue
            stamp = read_stamp(frame)
            latencies.append(time.time() * 1000 - stamp.capture_time_ms)
            frames.append(frame)
            if len(frames) == FRAMES:
                break
    stamps_in_order(frames)
    assert (frames[0].width, frames[0].height) == (WIDTH, HEIGHT)
    assert audio_frames > 0
    # Capture-to-decode latency on loopback: encode + packetize + PyAV's demux; generous bound.
    assert float(np.median(latencies)) < 5000.0, f"median latency {np.median(latencies):.0f} ms"


def test_two_clients_at_once_get_the_same_frames(rig: LiveRig) -> None:
    need("ffmpeg", package=FFMPEG_PACKAGE)
    commands = [
        ["ffmpeg", "-v", "error", "-rtsp_transport", transport, "-i", rig.url(f"/viewer{n}"), "-map", "0:v",
         "-frames:v", str(FRAMES * 2), "-f", "rawvideo", "-pix_fmt", "gray", "-"]
        for n, transport in enumerate(("tcp", "udp"))
    ]  # fmt: skip
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
    try:
        outputs = [p.communicate(timeout=TOOL_TIMEOUT) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(5)
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()[-2000:]
    first, second = ({s.frame_index for s in stamps_in_order(gray_frames(out))} for out, _ in outputs)
    assert first & second, "the two viewers never watched the same frames at the same time"
    plays = [d for kind, d in rig.events if kind == "play"]
    assert {d["transport"] for d in plays} >= {"tcp", "udp"}


# -- record mode: push clients publish to RtspRecorder ---------------------------------------------

# PyAV's muxer keeps the GIL while it waits on the network, so a PyAV pusher in a thread of this
# process would starve the recorder's event loop: it runs in its own interpreter instead.
PYAV_PUSHER = """
import sys, time
from fractions import Fraction
import av, numpy as np
from clients.stamp import FrameStamp, StreamKind
from emulators.kit.stamp import paint_stamp
url, frames, stream_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with av.open(url, mode="w", format="rtsp", options={"rtsp_transport": "tcp"}, timeout=10) as container:
    video = container.add_stream("libx264", rate=30)
    video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
    video.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "keyint=30"}
    for index in range(frames):
        image = np.full((240, 320, 3), 60, np.uint8)
        image[:, (index * 8) % 300 :][:, :20] = 200
        paint_stamp(image, FrameStamp(StreamKind.MISTY_AV, stream_id, index, int(time.time() * 1000)))
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = index, Fraction(1, 30)
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode(None):
        container.mux(packet)
"""


async def run_pusher(args: list[str]) -> None:
    process = await asyncio.create_subprocess_exec(
        *args, cwd=REPO_ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(TOOL_TIMEOUT):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, f"{args[0]} exited {process.returncode}: {err.decode()[-2000:]}"


def decode_recorded(recorder: RtspRecorder) -> list[av.VideoFrame]:
    """Decode each recorded access unit as one packet, the SDP's parameter sets leading."""
    codec = av.CodecContext.create("h264", "r")
    headers = b"".join(b"\x00\x00\x00\x01" + nal for nal in recorder.parameter_sets())
    frames = []
    for index, unit in enumerate(recorder.video):
        frames += codec.decode(av.Packet((headers if index == 0 else b"") + unit.annexb))
    return frames + list(codec.decode(None))


async def test_pyav_rtsp_muxer_publishes_to_the_recorder_and_every_frame_decodes_in_order() -> None:
    recorder = RtspRecorder(seed=1)
    await recorder.start()
    try:
        url = f"rtsp://127.0.0.1:{recorder.port}/live"
        await run_pusher([sys.executable, "-c", PYAV_PUSHER, url, str(FRAMES), str(STREAM_ID)])
        await recorder.wait_for(lambda r: not r.recording and len(r.video) >= FRAMES, within=5.0)
        assert [r.method for r in recorder.requests] == ["OPTIONS", "ANNOUNCE", "SETUP", "RECORD", "TEARDOWN"]
        assert recorder.description is not None
        assert recorder.description.media[0].rtpmap == (96, "H264", 90000, None)
        frames = decode_recorded(recorder)
        assert len(frames) == FRAMES
        assert [s.frame_index for s in stamps_in_order(frames)] == list(range(FRAMES))
    finally:
        await recorder.aclose()


@pytest.mark.parametrize("scheme", ["basic", "digest"])
async def test_ffmpeg_publishes_after_an_auth_challenge(scheme: str) -> None:
    need("ffmpeg", package=FFMPEG_PACKAGE)
    recorder = RtspRecorder(credentials=("misty", "secret"), auth_scheme=scheme)
    await recorder.start()
    try:
        await run_pusher(
            ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}",
             "-frames:v", str(FRAMES), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
             "-pix_fmt", "yuv420p", "-f", "rtsp", "-rtsp_transport", "tcp",
             f"rtsp://misty:secret@127.0.0.1:{recorder.port}/live"]
        )  # fmt: skip
        await recorder.wait_for(lambda r: not r.recording and len(r.video) >= FRAMES, within=5.0)
        first, *rest = recorder.requests
        assert first.headers.get("Authorization") is None  # FFmpeg only sends credentials when challenged
        assert all(r.headers.get("Authorization", "").lower().startswith(scheme) for r in rest)
        assert "RECORD" in [r.method for r in rest]
        frames = decode_recorded(recorder)
        assert len(frames) == FRAMES and (frames[0].width, frames[0].height) == (WIDTH, HEIGHT)
    finally:
        await recorder.aclose()
