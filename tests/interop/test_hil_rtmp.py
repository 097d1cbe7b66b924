"""`benchtwin record --media rtmp://...` against nginx-rtmp (a third-party RTMP server) fed by FFmpeg: the first
seconds of the stream remuxed into the cassette without re-encoding."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from emulators.hil.cassette import Cassette
from tests.interop.rtmp_server import rtmp_server

pytestmark = pytest.mark.interop

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 15, 1.5


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (apt-get install ffmpeg)")
def test_an_rtmp_stream_is_remuxed_into_the_cassette(tmp_path):
    out = tmp_path / "rtmp.cassette"
    with rtmp_server() as server:
        publisher = subprocess.Popen(
            ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}",
             "-t", "20", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(FPS),
             "-f", "flv", server.url()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            server.wait_for_recording(closed=False)  # the publisher is live
            proc = subprocess.run([sys.executable, "-m", "emulators", "record", "recall", "--target",
                                   "http://127.0.0.1:9", "--media", server.url(), "--media-seconds", str(SECONDS),
                                   "--duration", "0.1", "--out", str(out)], capture_output=True, text=True,
                                  timeout=60)
        finally:
            publisher.terminate()
            publisher.wait(10)
    assert proc.returncode == 0 and "media capture failed" not in proc.stderr, proc.stderr
    [capture] = Cassette.load(out).media_captures()
    assert capture.method == "PLAY" and capture.response_body == b""  # RTMP has no SDP
    [video] = capture.media["remux"]["properties"]["streams"]
    assert (video["codec"], video["width"], video["height"]) == ("h264", WIDTH, HEIGHT)
    assert capture.media["remux"]["packets"] >= FPS  # at least a second of frames
    assert (out / capture.media["remux"]["file"]).stat().st_size > 0
