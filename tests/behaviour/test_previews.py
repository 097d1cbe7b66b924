"""Previews of what each emulator sends, for the dashboard: the latest frame of every video stream as a small JPEG
with the stamp read from the frame's own pixels, and a level and waveform per audio stream. Nothing is encoded for
previews while nobody asks."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image
from signalwire_helpers import CONFERENCE, rig

from clients.misty import MistyClient
from clients.recall import RecallClient, VideoReceiver
from clients.videodb import VideoDBClient
from emulators.recall.device import DEV_API_KEY
from tests.conftest import EmulatorFactory

TIMEOUT = 10.0
MXID = "14442C10D13EABCE00"
MEET = "https://meet.google.com/pre-view-tst"


async def listing(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/_emulator/previews") as resp:
        assert resp.status == 200
        return dict(await resp.json())


async def wait_listed(http: aiohttp.ClientSession, base: str, kind: str, prefix: str) -> dict[str, Any]:
    """The first listed preview whose stream starts with ``prefix`` (polled: previews appear as frames are sent)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            for item in (await listing(http, base))[kind]:
                if item["stream"].startswith(prefix):
                    return item
            await asyncio.sleep(0.1)  # poll cadence of the dashboard, not synchronisation


async def frame(http: aiohttp.ClientSession, base: str, item: dict[str, Any]) -> tuple[np.ndarray, Any]:
    async with http.get(base + item["url"]) as resp:
        assert resp.status == 200 and resp.content_type == "image/jpeg"
        assert resp.headers["Cache-Control"] == "no-store"
        picture = np.asarray(Image.open(io.BytesIO(await resp.read())).convert("RGB"))
        return picture, json.loads(resp.headers["X-Frame-Stamp"])


async def two_frames(http: aiohttp.ClientSession, base: str, item: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    first, stamp = await frame(http, base, item)
    async with asyncio.timeout(TIMEOUT):
        while True:
            second, later = await frame(http, base, item)
            if later != stamp:
                return first, stamp, second, later
            await asyncio.sleep(0.05)


async def test_misty_video_preview_is_the_sent_jpeg_with_its_stamp_and_nothing_is_encoded_unasked(
    emulator_factory: EmulatorFactory, free_port: int
) -> None:
    emu = await emulator_factory("misty")
    base = emu.url()
    async with MistyClient(base) as misty, aiohttp.ClientSession() as http:
        await misty.start_video_streaming(port=free_port)
        async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
            for _ in range(5):
                await ws.receive(timeout=TIMEOUT)
            assert emu.previews.encodes == 0 and emu.previews.held_frames == 0  # nobody watching: nothing kept
            item = await wait_listed(http, base, "video", "video")
            first, stamp, second, later = await two_frames(http, base, item)
    assert max(first.shape[:2]) <= 320
    assert stamp["stream"] == "video" and later["index"] > stamp["index"]
    assert abs(later["lateness_ms"]) < 5000
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 0.1  # the scene moves


async def test_an_unknown_preview_is_a_404_naming_the_stream(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("misty")
    async with aiohttp.ClientSession() as http, http.get(f"{emu.url()}/_emulator/preview?stream=nope") as resp:
        assert resp.status == 404
        assert (await resp.json())["field"] == "stream"


async def test_depthcam_viewer_stream_has_a_preview_of_the_rendered_frame(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("depthcam", settings={"profile": "documented"})
    base = emu.url()
    async with aiohttp.ClientSession() as http:
        url = base.replace("http", "ws", 1) + f"/cameras/{MXID}/streams/CAM_B/video"
        async with http.ws_connect(url) as ws:
            await ws.receive(timeout=TIMEOUT)
            item = await wait_listed(http, base, "video", f"{MXID}/CAM_B")
            _first, stamp, _second, later = await two_frames(http, base, item)
    assert later["index"] > stamp["index"]


async def test_recall_participant_tiles_and_audio_have_previews(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall", settings={"retry_interval_s": 0.2})
    scenario = {"name": "preview", "meeting_urls": [MEET], "duration_s": 1000,
                "participants": [{"id": 100, "is_host": True}, {"id": 200}]}
    await emu.scenario_controls["load_scenario"]({"scenario": scenario})
    async with VideoReceiver() as video, RecallClient(DEV_API_KEY, emu.url()) as client, \
            aiohttp.ClientSession() as http:
        audio_url = video.url.replace("127.0.0.1", "localhost")  # any receiver: only what is sent matters
        bot = await client.create_bot(MEET, recording_mode="gallery_view", real_time_media={
            "websocket_video_destination_url": video.url, "websocket_audio_destination_url": audio_url})
        await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        tile = await wait_listed(http, emu.url(), "video", f"{bot['id']}/participant/")
        picture, stamp = await frame(http, emu.url(), tile)
        assert picture.size and stamp is not None and stamp["index"] >= 0
        audio = await wait_listed(http, emu.url(), "audio", f"{bot['id']}/audio")
    assert len(audio["waveform"]) == 64 and -120 <= audio["level_dbfs"] <= 0


async def test_signalwire_tracks_have_a_level_and_a_waveform() -> None:
    async with rig() as r, aiohttp.ClientSession() as http:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StreamCodec="PCMU", Track="both_tracks")
        stream = await r.receiver.next_stream()
        await stream.wait_media(10)
        inbound = await wait_listed(http, r.emulator.url(), "audio", "")
    assert inbound["stream"].endswith(("/inbound", "/outbound"))
    assert len(inbound["waveform"]) == 64 and all(-1.0 <= w <= 1.0 for w in inbound["waveform"])
    assert -120 <= inbound["level_dbfs"] <= 0


@pytest.mark.timeout(120)
async def test_videodb_ingest_previews_the_frames_it_decodes_for_a_visual_index(
    emulator_factory: EmulatorFactory, free_port: int
) -> None:
    misty = await emulator_factory("misty")
    videodb = await emulator_factory("videodb")
    async with MistyClient(misty.url()) as robot:
        await robot.enable_av_streaming_service()
        await robot.start_av_streaming(f"rtspd:{free_port}", width=320, height=240)
    async with VideoDBClient(videodb.settings.api_key, videodb.url()) as client, aiohttp.ClientSession() as http:
        rts = (await client.connect_rtstream(f"rtsp://127.0.0.1:{free_port}/", "Robot"))["id"]
        # The ingest decodes frames for its visual indexes (at their sample rate); those are what it previews.
        await client.index_visuals(rts, time_s=1, frame_count=2)
        av = await wait_listed(http, misty.url(), "video", "av")
        _picture, stamp = await frame(http, misty.url(), av)
        assert stamp is not None
        ingest = await wait_listed(http, videodb.url(), "video", f"{rts}/ingest")
        picture, _ = await frame(http, videodb.url(), ingest)
    assert picture.shape[1] <= 320
