"""The call sequences real Misty clients use (misty.md §4.3), replayed byte for byte against the emulator."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import av
import pytest

from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.misty.device import MistyEmulator

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)


@pytest.fixture
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def robot():
    async with MistyEmulator(egress=EGRESS, settings={"port": 0}) as emu, aiohttp.ClientSession() as http:
        yield emu.url(), http


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    frame = av.CodecContext.create("mjpeg", "r").decode(av.Packet(jpeg))[0]
    return frame.width, frame.height


async def test_teleop_enables_av_stops_defensively_and_starts_rtspd_all_in_the_query_string(robot, free_port):
    base, http = robot
    async with http.post(f"{base}/api/services/avstreaming/enable") as resp:
        assert resp.status == 200
    async with http.post(f"{base}/api/avstreaming/stop") as resp:
        assert resp.status == 200
    query = (f"url=rtspd:{free_port}&width=640&height=480&frameRate=30&audioBitRate=32000"
             "&audioSampleRateHz=11025")
    async with http.post(f"{base}/api/avstreaming/start?{query}") as resp:
        assert resp.status == 200, await resp.text()
    reader, writer = await asyncio.open_connection("127.0.0.1", free_port)
    writer.write(f"DESCRIBE rtsp://127.0.0.1:{free_port}/ RTSP/1.0\r\nCSeq: 2\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    length = int(next(v for k, v in headers.items() if k.strip().lower() == b"content-length"))
    sdp = await asyncio.wait_for(reader.readexactly(length), 5)
    writer.close()
    assert b"H264/90000" in sdp and b"MPEG4-GENERIC/11025" in sdp
    async with http.post(f"{base}/api/avstreaming/stop") as resp:
        assert resp.status == 200


async def test_retico_retries_enable_and_start_until_2xx(robot, free_port):
    base, http = robot
    for endpoint in ("services/avstreaming/enable", f"avstreaming/start?url=rtspd:{free_port}&width=320&height=240"):
        for _ in range(3):
            async with http.post(f"{base}/api/{endpoint}") as resp:
                if resp.status // 100 == 2:
                    break
        assert resp.status == 200
    async with http.post(f"{base}/api/avstreaming/stop") as resp:
        assert resp.status == 200


async def test_harmoni_loops_stop_then_start_until_200(robot, free_port):
    base, http = robot
    await http.post(f"{base}/api/services/avstreaming/enable")
    for _ in range(2):
        async with http.post(f"{base}/api/avstreaming/stop") as stop:
            assert stop.status == 200
        async with http.post(f"{base}/api/avstreaming/start",
                             json={"URL": f"rtspd:{free_port}", "Width": 320, "Height": 240}) as start:
            assert start.status == 200
    await http.post(f"{base}/api/avstreaming/stop")


async def test_pose_script_enables_the_camera_and_starts_an_upright_500x625_stream(robot, free_port):
    base, http = robot
    async with http.post(f"{base}/api/services/camera/enable") as resp:
        assert resp.status == 200
    body = {"Port": free_port, "Rotation": 90, "Width": 500, "Height": 625, "Quality": 20}
    async with http.post(f"{base}/api/videostreaming/start", json=body) as resp:
        assert (await resp.json())["status"] == "Success"
    async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        msg = await asyncio.wait_for(ws.receive(), 5)
    assert jpeg_size(msg.data) == (500, 625)


async def test_html_feed_posts_text_plain_json_then_opens_the_socket(robot, free_port):
    base, http = robot
    text = f'{{"Port":{free_port},"Rotation":90,"Width":400,"Height":540,"Quality":5}}'
    async with http.post(f"{base}/api/videostreaming/start", data=text, headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 200
    async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.BINARY and jpeg_size(msg.data) == (400, 540)
    # ... and stops the stream from its onclose handler.
    async with http.post(f"{base}/api/videostreaming/stop") as resp:
        assert resp.status == 200
