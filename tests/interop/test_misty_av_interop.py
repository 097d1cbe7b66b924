"""Misty AV streaming against tools nobody here wrote: ffprobe, ffmpeg and GStreamer rtspsrc pull the
`rtspd:` stream over TCP and UDP; pushes land in nginx-rtmp and in FFmpeg's own RTSP listener.

Everything is driven through the robot's REST API the way SRI drives it (misty.md §4.3): enable the AV
service, a defensive stop, then StartAvStreaming with every argument in the query string.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from rtmp_server import rtmp_server  # the shared nginx-rtmp helper next to this file

from clients.stamp import FrameStamp, StreamKind, read_stamp
from emulators.pytest_plugin import Target, start_emulator

pytestmark = pytest.mark.interop

WIDTH, HEIGHT = 320, 240
FRAME_RATE = 15
SAMPLE_RATE = 11_025
TOOL_TIMEOUT = 20.0
FFMPEG_PACKAGE = "ffmpeg"
GST_PACKAGES = "gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-libav"


def require(tool: str, packages: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"needs {tool} (Debian package: {packages})")
    return path


def api(target: Target, endpoint: str, **query: object) -> dict:
    """POST /api/<endpoint> with the arguments in the query string and no body, as SRI does."""
    url = f"{target.url}/api/{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


def start_av(target: Target, url: str, **extra: object) -> dict:
    arguments: dict[str, object] = {
        "url": url,
        "width": WIDTH,
        "height": HEIGHT,
        "frameRate": FRAME_RATE,
        "videoBitRate": 300_000,
        "audioBitRate": 32_000,
        "audioSampleRateHz": SAMPLE_RATE,
    }
    arguments.update(extra)
    return api(target, "avstreaming/start", **arguments)


@pytest.fixture
def robot() -> Iterator[Target]:
    with start_emulator("misty") as target:
        assert api(target, "services/avstreaming/enable")["result"] is True
        assert api(target, "avstreaming/stop")["result"] is True  # SRI stops defensively first
        yield target


@pytest.fixture
def rtspd(robot: Target, free_port: int) -> Iterator[str]:
    port = free_port
    reply = start_av(robot, f"rtspd:{port}")
    assert reply == {"result": True, "status": "Success"}, reply
    yield f"rtsp://127.0.0.1:{port}/"
    api(robot, "avstreaming/stop")


def gray_frames(data: bytes, count: int) -> list[np.ndarray]:
    size = WIDTH * HEIGHT
    return [np.frombuffer(data[i * size : (i + 1) * size], np.uint8).reshape(HEIGHT, WIDTH) for i in range(count)]


def assert_av_stamps_in_order(stamps: list[FrameStamp]) -> None:
    assert stamps, "no frames decoded"
    assert {s.stream_kind for s in stamps} == {StreamKind.MISTY_AV}
    indexes = [s.frame_index for s in stamps]
    assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes), indexes


def ffmpeg_pull(url: str, transport: str, frames: int) -> subprocess.Popen[bytes]:
    ffmpeg = require("ffmpeg", FFMPEG_PACKAGE)
    return subprocess.Popen(
        [ffmpeg, "-v", "error", "-rtsp_transport", transport, "-i", url, "-an", "-frames:v", str(frames),
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stamps_from(process: subprocess.Popen[bytes], frames: int) -> list[FrameStamp]:
    out, err = process.communicate(timeout=TOOL_TIMEOUT)
    assert process.returncode == 0, err.decode(errors="replace")[-800:]
    assert len(out) == frames * WIDTH * HEIGHT
    return [read_stamp(frame) for frame in gray_frames(out, frames)]


# ----- rtspd: pull --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_ffprobe_sees_h264_and_aac_at_the_requested_size_rate_and_sample_rate(rtspd: str, transport: str) -> None:
    ffprobe = require("ffprobe", FFMPEG_PACKAGE)
    result = subprocess.run(
        [ffprobe, "-v", "error", "-rtsp_transport", transport, "-show_streams", "-of", "json", rtspd],
        capture_output=True, timeout=TOOL_TIMEOUT, check=True,
    )
    streams = {s["codec_type"]: s for s in json.loads(result.stdout)["streams"]}
    video, audio = streams["video"], streams["audio"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", WIDTH, HEIGHT)
    assert video["r_frame_rate"] == f"{FRAME_RATE}/1"
    assert (audio["codec_name"], int(audio["sample_rate"]), audio["channels"]) == ("aac", SAMPLE_RATE, 1)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_ffmpeg_decodes_rtspd_frames_whose_stamps_read_back_in_order(rtspd: str, transport: str) -> None:
    assert_av_stamps_in_order(stamps_from(ffmpeg_pull(rtspd, transport, 10), 10))


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_gstreamer_rtspsrc_decodes_rtspd_frames(rtspd: str, protocol: str) -> None:
    gst = require("gst-launch-1.0", GST_PACKAGES)
    inspect = require("gst-inspect-1.0", GST_PACKAGES)
    for element in ("rtspsrc", "rtph264depay", "avdec_h264"):
        if subprocess.run([inspect, "--exists", element], timeout=TOOL_TIMEOUT).returncode != 0:
            pytest.skip(f"needs the GStreamer element {element} (Debian packages: {GST_PACKAGES})")
    frames = 8
    pipeline = (
        f"rtspsrc location={rtspd} protocols={protocol} latency=0 ! rtph264depay ! avdec_h264 ! videoconvert"
        f" ! video/x-raw,format=GRAY8,width={WIDTH},height={HEIGHT} ! fdsink fd=1"
    )
    process = subprocess.Popen([gst, "-q", *pipeline.split()], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wanted = frames * WIDTH * HEIGHT
        data = b""
        deadline = time.monotonic() + TOOL_TIMEOUT
        assert process.stdout is not None
        while len(data) < wanted and time.monotonic() < deadline:
            chunk = process.stdout.read1(wanted - len(data))  # type: ignore[attr-defined]
            if not chunk:
                break
            data += chunk
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    detail = err.decode(errors="replace")[-800:]
    assert len(data) >= wanted, f"GStreamer delivered {len(data)} of {wanted} bytes: {detail}"
    assert_av_stamps_in_order([read_stamp(frame) for frame in gray_frames(data, frames)])


def test_two_clients_pull_rtspd_at_once(rtspd: str) -> None:
    over_tcp = ffmpeg_pull(rtspd, "tcp", 12)
    over_udp = ffmpeg_pull(rtspd, "udp", 12)
    assert_av_stamps_in_order(stamps_from(over_tcp, 12))
    assert_av_stamps_in_order(stamps_from(over_udp, 12))


def test_stopping_av_streaming_drops_rtsp_clients_and_frees_the_port(robot: Target, free_port: int) -> None:
    ffmpeg = require("ffmpeg", FFMPEG_PACKAGE)
    port = free_port
    assert start_av(robot, f"rtspd:{port}")["result"] is True
    viewer = subprocess.Popen(
        [ffmpeg, "-v", "error", "-rtsp_transport", "tcp", "-i", f"rtsp://127.0.0.1:{port}/video", "-f", "null", "-"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert robot.control is not None
        deadline = time.monotonic() + TOOL_TIMEOUT
        while not robot.control.events(kind="rtsp.play") and time.monotonic() < deadline:
            time.sleep(0.05)  # the control plane's event log is polled: it has no push channel
        assert robot.control.events(kind="rtsp.play"), "the viewer never started playing"
        assert api(robot, "avstreaming/stop")["result"] is True
        viewer.wait(timeout=10)  # the stop ended its session: ffmpeg sees the end of the stream
    finally:
        if viewer.poll() is None:
            viewer.kill()
            viewer.wait()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


# ----- push ---------------------------------------------------------------------------------------------------
def recorded_stamps(path: Path) -> tuple[dict[str, dict], list[FrameStamp]]:
    with av.open(str(path)) as container:
        streams = {
            s.type: {"codec": s.codec_context.name, "width": getattr(s.codec_context, "width", None),
                     "sample_rate": getattr(s.codec_context, "sample_rate", None)}
            for s in container.streams
        }
        stamps = [read_stamp(frame) for frame in container.decode(video=0)]
    return streams, stamps


def beep_onsets(path: Path) -> list[float]:
    """Media times (s) where the 1 kHz beep starts in a recording's audio track."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks, start = [], None
        for frame in container.decode(stream):
            if start is None:
                start = float(frame.pts * frame.time_base)
            chunks.append(frame.to_ndarray().reshape(-1))
        rate = stream.codec_context.sample_rate
    samples = np.concatenate(chunks).astype(np.float64)
    window = rate // 100  # 10 ms steps
    frequencies = np.fft.rfftfreq(window, 1 / rate)
    beep_bin, tone_bin = int(np.argmin(abs(frequencies - 1000))), int(np.argmin(abs(frequencies - 440)))
    onsets, beeping = [], False
    for i in range(len(samples) // window):
        spectrum = np.abs(np.fft.rfft(samples[i * window : (i + 1) * window]))
        now_beeping = spectrum[beep_bin] > 2 * spectrum[tone_bin]
        if now_beeping and not beeping:
            onsets.append((start or 0.0) + i * window / rate)
        beeping = now_beeping
    return onsets


def second_marks(path: Path) -> list[float]:
    """Media times (s) of the video frames whose stamp index is a multiple of the frame rate."""
    with av.open(str(path)) as container:
        return [
            float(frame.pts * frame.time_base)
            for frame in container.decode(video=0)
            if read_stamp(frame).frame_index % FRAME_RATE == 0
        ]


def flv_tags(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag type, tag body) of an FLV file: 8 audio, 9 video, 18 script data."""
    assert data[:3] == b"FLV", "not an FLV file"
    offset = int.from_bytes(data[5:9], "big") + 4  # header, then PreviousTagSize0
    while offset + 11 <= len(data):
        size = int.from_bytes(data[offset + 1 : offset + 4], "big")
        yield data[offset] & 0x1F, data[offset + 11 : offset + 11 + size]
        offset += 11 + size + 4


def test_rtmp_push_lands_in_nginx_rtmp_as_h264_and_aac(robot: Target) -> None:
    ffprobe = require("ffprobe", FFMPEG_PACKAGE)
    with rtmp_server() as server:
        reply = start_av(robot, server.url(key="misty"), userName="robot", password="secret")
        assert reply == {"result": True, "status": "Success"}, reply
        server.wait_for_recording("misty", closed=False)
        deadline = time.monotonic() + TOOL_TIMEOUT
        while server.recording("misty").stat().st_size < 50_000 and time.monotonic() < deadline:
            time.sleep(0.05)  # over two seconds of media; nginx offers nothing to wait on
        assert api(robot, "avstreaming/stop")["result"] is True
        path = server.wait_for_recording("misty")
        probe = subprocess.run(
            [ffprobe, "-v", "error", "-show_streams", "-of", "json", str(path)],
            capture_output=True, timeout=TOOL_TIMEOUT, check=True,
        )
        streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
        _, stamps = recorded_stamps(path)
        tags = list(flv_tags(path.read_bytes()))
        beeps, marks = beep_onsets(path), second_marks(path)
    first_video = next(body for kind, body in tags if kind == 9)
    first_audio = next(body for kind, body in tags if kind == 8)
    assert first_video[:2] == b"\x17\x00"  # keyframe + AVC sequence header (avcC) before any picture
    assert first_audio[:2] == b"\xaf\x00"  # AAC sequence header (AudioSpecificConfig) before any frame
    assert (streams["video"]["codec_name"], streams["video"]["width"], streams["video"]["height"]) == (
        "h264", WIDTH, HEIGHT)
    assert (streams["audio"]["codec_name"], int(streams["audio"]["sample_rate"])) == ("aac", SAMPLE_RATE)
    assert len(stamps) >= FRAME_RATE
    assert_av_stamps_in_order(stamps)
    assert stamps[0].frame_index == 0  # the push starts with the first frame, an IDR
    # A/V sync (misty.md §3.2): a beep starts with every frame whose index is a multiple of FrameRate.
    assert len(marks) >= 2 and len(beeps) >= 2, (marks, beeps)
    for mark in marks:
        assert min(abs(beep - mark) for beep in beeps) < 0.05, (mark, beeps)


def test_rtsp_push_lands_in_ffmpegs_rtsp_listener(robot: Target, free_port: int) -> None:
    ffmpeg = require("ffmpeg", FFMPEG_PACKAGE)
    port = free_port
    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "robot.mkv"
        listener = subprocess.Popen(
            [ffmpeg, "-v", "error", "-rtsp_flags", "listen", "-i",
             f"rtsp://127.0.0.1:{port}/robot", "-c", "copy", "-t", "2", str(recording)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            reply: dict = {}
            deadline = time.monotonic() + TOOL_TIMEOUT
            while time.monotonic() < deadline:  # retried like RET does until the listener is up
                reply = start_av(robot, f"rtsp://127.0.0.1:{port}/robot")
                if reply.get("result") is True:
                    break
                time.sleep(0.2)
            assert reply.get("result") is True, reply
            _, err = listener.communicate(timeout=TOOL_TIMEOUT)  # it stops after 2 s of media
        finally:
            api(robot, "avstreaming/stop")
            if listener.poll() is None:
                listener.kill()
                listener.wait()
        assert listener.returncode == 0, err.decode(errors="replace")[-800:]
        streams, stamps = recorded_stamps(recording)
    assert streams["video"]["codec"] == "h264" and streams["video"]["width"] == WIDTH
    assert streams["audio"]["codec"] == "aac" and streams["audio"]["sample_rate"] == SAMPLE_RATE
    assert_av_stamps_in_order(stamps)


def test_push_to_nobody_fails_with_500_and_the_robot_stays_idle(robot: Target, free_port: int) -> None:
    url = f"rtmp://127.0.0.1:{free_port}/live/robot"
    reply = start_av(robot, url)
    assert reply["status"] == "Failed"
    assert reply["error"].startswith(f"Cannot connect to {url}: ")
    port = free_port  # nobody listened there: free for the robot's own server now
    assert start_av(robot, f"rtspd:{port}")["result"] is True  # idle: a new start is accepted
