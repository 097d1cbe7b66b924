"""Hardware in the loop on Misty's built-in RTSP server (`rtspd:`): the stream a request starts is captured into
the cassette, replayed over RTSP, and compared with the emulator's by SDP formats, decoded properties and RTP."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import av
import pytest

from emulators.hil.cassette import Cassette
from emulators.hil.parity import ParityRun
from emulators.hil.replay import ReplayServer
from emulators.hil.rules import load_rules
from emulators.pytest_plugin import start_emulator
from tests.behaviour.hil_helpers import EGRESS, recording

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 15, 1.5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_request(port: int) -> dict:
    return {"url": f"rtspd:{port}", "width": WIDTH, "height": HEIGHT, "frameRate": FPS, "videoBitRate": 300_000,
            "audioBitRate": 32_000, "audioSampleRateHz": 16_000}


@pytest.fixture(scope="module")
def cassette_dir(tmp_path_factory):
    """Enable AV streaming, start the robot's RTSP server, capture it for 1.5 s, stop it."""
    out = tmp_path_factory.mktemp("misty-rtsp") / "rtspd.cassette"

    async def record() -> None:
        with start_emulator("misty") as stand_in:
            async with recording(stand_in, {}, out) as session, aiohttp.ClientSession() as http:
                api = session.proxy.url + "/api/"
                port = free_port()
                for path, body in (("services/avstreaming/enable", {}), ("avstreaming/start", start_request(port))):
                    async with http.post(api + path, json=body) as resp:
                        assert (await resp.json())["result"] is True
                session.capture(f"rtsp://127.0.0.1:{port}/", SECONDS)
                await session.captures_done()
                assert not session.media_errors, session.media_errors
                async with http.post(api + "avstreaming/stop", json={}) as resp:
                    assert (await resp.json())["result"] is True

    asyncio.run(record())
    return out


def test_the_stream_a_request_started_is_in_the_cassette(cassette_dir):
    cassette = Cassette.load(cassette_dir)
    [capture] = cassette.media_captures()
    assert [e.label() for e in cassette.device_exchanges()] == [
        "POST /api/services/avstreaming/enable", "POST /api/avstreaming/start", "POST /api/avstreaming/stop"]
    kinds = sorted(s["type"] for s in capture.media["remux"]["properties"]["streams"])
    assert kinds == ["audio", "video"]
    video = next(s for s in capture.media["remux"]["properties"]["streams"] if s["type"] == "video")
    assert (video["codec"], video["width"], video["height"]) == ("h264", WIDTH, HEIGHT)


async def test_parity_captures_the_emulators_stream_and_finds_it_the_same(cassette_dir):
    with start_emulator("misty") as reference:
        run = ParityRun(Cassette.load(cassette_dir), reference.url, load_rules("misty"),
                        credentials=reference.credentials)
        differences = await run.run()
    assert differences == [], "\n".join(str(d.as_dict()) for d in differences)


async def test_a_device_stream_of_another_size_and_rate_is_reported_by_decoded_properties(cassette_dir):
    cassette = Cassette.load(cassette_dir)
    [capture] = cassette.media_captures()
    streams = capture.media["remux"]["properties"]["streams"]
    n = next(i for i, s in enumerate(streams) if s["type"] == "video")
    streams[n].update(width=640, height=480)  # as if the robot had streamed 640x480 at 30 fps
    video_rtp = next(k for k in capture.media["rtp"] if "H264" in k)
    capture.media["rtp"][video_rtp]["frame_rate"] = 30.0
    with start_emulator("misty") as reference:
        run = ParityRun(cassette, reference.url, load_rules("misty"), credentials=reference.credentials)
        differences = await run.run()
    found = {d.where: (d.recorded, d.emulator) for d in differences}
    rtp_index = list(capture.media["rtp"]).index(video_rtp)
    assert set(found) == {f"media stream {n} width", f"media stream {n} height", f"media rtp {rtp_index} frame_rate"}, \
        "\n".join(str(d.as_dict()) for d in differences)
    assert found[f"media stream {n} width"] == (640, WIDTH)
    assert abs(found[f"media rtp {rtp_index} frame_rate"][1] - FPS) < FPS * 0.1


async def test_replay_serves_the_captured_stream_on_the_port_the_start_request_named(cassette_dir):
    cassette = Cassette.load(cassette_dir)
    recorded_url = cassette.media_captures()[0].url
    server = ReplayServer(cassette, egress=EGRESS)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            body = json.loads(cassette.device_exchanges()[1].request_body)
            async with http.post(server.url + "/api/avstreaming/start", json=body) as resp:
                assert (await resp.json())["result"] is True
        assert server.media[0].url == recorded_url
        container = await asyncio.to_thread(av.open, recorded_url, options={"rtsp_transport": "tcp"}, timeout=10)
        try:
            video = next(s for s in container.streams if s.type == "video")
            assert (video.codec_context.width, video.codec_context.height) == (WIDTH, HEIGHT)
        finally:
            container.close()
    finally:
        await server.aclose()
