"""Capture-accurate times: the Misty emulator's rtspd stream stamps each frame with its capture time; the
VideoDB recording's PROGRAM-DATE-TIME (reached through the videodb 0.5.1 SDK) is that time within 100 ms.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import av
import pytest
from rtmp_server import free_loopback_port
from test_videodb_sdk import SETTINGS, _misty_api, wait_for_event  # the SDK workflow's helpers next to this file

from clients.stamp import read_stamp
from emulators.pytest_plugin import start_emulator

videodb = pytest.importorskip("videodb")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian package: ffmpeg)"),
]

WITHIN_S = 0.1


def first_frame_capture_s(segment_url: str, folder: Path) -> float:
    """The capture time the robot stamped into the first frame of a recorded segment."""
    path = folder / "first.ts"
    with urllib.request.urlopen(segment_url, timeout=15) as response:
        path.write_bytes(response.read())
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return read_stamp(frame).capture_time_ms / 1000


def test_program_date_time_is_the_frame_stamps_capture_time(tmp_path: Path) -> None:
    port = free_loopback_port()
    with start_emulator("misty") as robot, start_emulator("videodb", settings=SETTINGS) as target:
        assert _misty_api(robot, "services/avstreaming/enable")["result"] is True
        reply = _misty_api(
            robot, "avstreaming/start", url=f"rtspd:{port}", width=320, height=240, frameRate=10,
            videoBitRate=300_000, audioBitRate=32_000, audioSampleRateHz=16_000,
        )
        assert reply["result"] is True, reply
        try:
            conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
            rts = conn.get_collection().connect_rtstream(
                url=f"rtsp://127.0.0.1:{port}/", name="Misty", media_types=["video"], store=True,
            )
            started = time.time() - 5
            wait_for_event(target, "rtstream.segment", rts.id, minimum=2)
            rts.generate_stream(int(started), int(time.time()) + 1)
            with urllib.request.urlopen(rts.stream_url, timeout=15) as response:
                playlist = response.read().decode()
        finally:
            _misty_api(robot, "avstreaming/stop")
        stamp = re.search(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", playlist)
        first = re.search(r"^(/segments/\S+\.ts)$", playlist, re.MULTILINE)
        assert stamp and first, playlist
        program_date_time = datetime.fromisoformat(stamp.group(1)).timestamp()
        captured = first_frame_capture_s(target.url + first.group(1), tmp_path)
        assert abs(program_date_time - captured) <= WITHIN_S, (program_date_time, captured)
