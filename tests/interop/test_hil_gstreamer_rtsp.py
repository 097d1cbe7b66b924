"""`benchtwin record --media` against a third-party RTSP server (GStreamer's gst-rtsp-server): SDP, transport and
RTP statistics captured, the first seconds remuxed without re-encoding, and the replayed stand-in read by ffprobe."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emulators.bench import peers
from emulators.hil.cassette import Cassette
from emulators.hil.replay import ReplayServer
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy

EGRESS = EgressPolicy(DEFAULT_ALLOWED)  # built where a configuration would build it

pytestmark = pytest.mark.interop

LAUNCHER = Path(peers.__file__).with_name("gst_rtsp_server.py")
WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 15, 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def gstreamer_rtsp(tmp_path_factory):
    """GStreamer's RTSP server (x264enc ! rtph264pay) on a free port, fed a second of grey ramps."""
    gst = peers.gstreamer()
    if not gst.available:
        pytest.skip(gst.detail)
    frames = tmp_path_factory.mktemp("gst") / "ramp.i420"
    with frames.open("wb") as out:
        for i in range(FPS):
            out.write(np.full(WIDTH * HEIGHT, (i * 16) % 256, np.uint8).tobytes())
            out.write(np.full(WIDTH * HEIGHT // 2, 128, np.uint8).tobytes())
    port = free_port()
    proc = subprocess.Popen([peers.SYSTEM_PYTHON, str(LAUNCHER), "--port", str(port), "--frames", str(frames),
                             "--width", str(WIDTH), "--height", str(HEIGHT), "--fps", str(FPS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), proc.stderr.read() if proc.poll() is not None else line
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def cassette_dir(gstreamer_rtsp, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rtsp") / "gst.cassette"
    proc = subprocess.run([sys.executable, "-m", "emulators", "record", "misty", "--target", "http://127.0.0.1:9",
                           "--media", gstreamer_rtsp, "--media-seconds", str(SECONDS), "--duration", "0.1",
                           "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "media capture failed" not in proc.stderr, proc.stderr
    return out


def test_the_capture_keeps_the_sdp_transport_and_rtp_timing(cassette_dir):
    capture = Cassette.load(cassette_dir).media_captures()[0]
    assert b"m=video 0 RTP/AVP 96" in capture.response_body and b"H264/90000" in capture.response_body
    assert capture.media["transport"][0]["transport"].startswith("RTP/AVP/TCP;unicast;interleaved=0-1")
    [rtp] = capture.media["rtp"].values()
    assert rtp["payload_type"] == 96 and rtp["clock_rate"] == 90000 and rtp["lost"] == 0
    assert abs(rtp["frame_rate"] - FPS) < 1.5
    assert 1.5 <= rtp["rtp_duration_s"] <= SECONDS + 0.2
    assert [step["method"] for step in capture.media["dialogue"]][:4] == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]


def test_the_first_seconds_are_remuxed_without_re_encoding(cassette_dir):
    capture = Cassette.load(cassette_dir).media_captures()[0]
    remuxed = cassette_dir / capture.media["remux"]["file"]
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
                                       str(remuxed)], capture_output=True, text=True, timeout=30).stdout)
    [video] = probe["streams"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", WIDTH, HEIGHT)
    assert video["profile"] == "Constrained Baseline"  # x264enc's profile, kept: nothing was re-encoded
    assert probe["format"]["format_name"] == "mpegts"
    assert float(probe["format"]["duration"]) <= SECONDS + 0.2


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed (apt-get install ffmpeg)")
async def test_the_replayed_stand_in_plays_to_ffprobe(cassette_dir):
    server = ReplayServer(Cassette.load(cassette_dir), egress=EGRESS)
    await server.start()
    try:
        [media] = server.media
        assert media.url.endswith("/live")
        proc = await asyncio.create_subprocess_exec(
            "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-count_frames", "-read_intervals", "%+1",
            "-show_streams", "-of", "json", media.url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        await server.aclose()
    assert proc.returncode == 0, err.decode()
    [video] = json.loads(out)["streams"]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", WIDTH, HEIGHT)
    assert int(video["nb_read_frames"]) >= FPS // 2
