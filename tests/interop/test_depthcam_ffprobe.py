"""The video WebSocket's fMP4, captured to a file, is what Debian's ffprobe and PyAV's demuxer expect."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import av
import pytest

from clients.stamp import read_stamp
from emulators.depthcam.device import DepthCamEmulator
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

MXID = "14442C10D13EABCE00"
pytestmark = pytest.mark.interop

COLOR_SMALL = {
    "resolution": "THE_720_P",
    "still_size": [1280, 720],
    "preview_size": [300, 300],
    "video_size": [640, 360],
    "sensor_crop": [0.0, 0.0],
    "fps": 30.0,
}


async def capture(stream: str, messages: int, path: Path, config: dict | None = None) -> None:
    async with DepthCamEmulator(egress=EGRESS, settings={"port": 0}) as emu, aiohttp.ClientSession() as http:
        if config is not None:
            url = f"{emu.url()}/cameras/{MXID}/streams/{stream}/config"
            async with http.post(url, json=config) as response:
                assert response.status == 200
        async with http.ws_connect(f"{emu.url()}/cameras/{MXID}/streams/{stream}/video") as ws:
            with path.open("wb") as out:
                for _ in range(messages):
                    message = await ws.receive(timeout=10)
                    assert message.type == aiohttp.WSMsgType.BINARY
                    out.write(message.data)


async def ffprobe(path: Path) -> dict:
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)["streams"][0]


@pytest.mark.parametrize(
    ("stream", "config", "size"),
    [("CAM_B", None, (640, 400)), ("CAM_A", COLOR_SMALL, (640, 360))],
)
async def test_ffprobe_reads_constrained_baseline_h264_at_the_configured_size(
    tmp_path: Path, stream: str, config: dict | None, size: tuple[int, int]
) -> None:
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe is missing: install the Debian package ffmpeg")
    path = tmp_path / f"{stream}.mp4"
    await capture(stream, 1 + 8, path, config)
    info = await ffprobe(path)
    assert info["codec_name"] == "h264"
    assert info["profile"] == "Constrained Baseline"
    assert (info["width"], info["height"]) == size
    assert int(info["nb_read_frames"]) == 8


async def test_pyav_demuxes_the_captured_file_and_every_frame_keeps_its_stamp(tmp_path: Path) -> None:
    path = tmp_path / "CAM_C.mp4"
    await capture("CAM_C", 1 + 5, path)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 5
    indices = [read_stamp(frame).frame_index for frame in frames]
    assert indices == sorted(indices)
