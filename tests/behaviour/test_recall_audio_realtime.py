"""Legacy audio WebSocket (mixed and separate streams) and v1.11 realtime endpoints (JSON events, 30 retries)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import numpy as np
import pytest

from clients.recall import AudioReceiver, RealtimeReceiver, RecallClient, decode_png
from clients.recall_wire import png_dimensions
from clients.stamp import StreamKind, read_stamp
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.recall.device import DEV_API_KEY, RecallEmulator
from tests.conftest import EmulatorFactory

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

MEET = "https://meet.google.com/aud-iote-sts"
# Times are scenario seconds x 0.05: Ann speaks from 0.15 s to 1.5 s of the call, Bo joins at 0.5 s.
SCENARIO = {
    "name": "audio-tests",
    "meeting_urls": [MEET],
    "duration_s": 1000,
    "participants": [{"id": 100, "is_host": True, "name": "Ann Host"}, {"id": 200, "name": "Bo Guest", "join_s": 10}],
    "speaking": [{"participant": 100, "start_s": 3, "end_s": 30, "text": "hello there everyone"}],
}


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory) -> AsyncIterator[RecallEmulator]:
    emu = await emulator_factory("recall", settings={"retry_interval_s": 0.05})
    await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
    yield emu


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


async def test_mixed_audio_sends_a_hello_then_s16le_chunks_that_carry_the_speaker(emulator: RecallEmulator) -> None:
    async with AudioReceiver() as receiver, RecallClient(DEV_API_KEY, emulator.url()) as client:
        bot = await client.create_bot(MEET, real_time_media={"websocket_audio_destination_url": receiver.url})
        await receiver.wait_for(lambda: len(receiver.chunks) >= 12)
        await client.leave_call(bot["id"])
        bot_now = await client.get_bot(bot["id"])
    hello = receiver.connections[0].hello
    assert hello["protocol_version"] == 1 and hello["bot_id"] == bot["id"]
    assert hello["separate_streams"] is False and hello["recording_id"] == bot_now["recording"]
    assert isinstance(hello["offset"], float)
    assert {len(c.pcm) for c in receiver.chunks} == {3200}  # 100 ms of 16 kHz S16LE
    assert rms(receiver.samples()[-8000:]) > 1000  # Ann's tone while she speaks


async def test_separate_audio_streams_open_one_connection_per_participant_with_id_prefix(
    emulator_factory: EmulatorFactory
) -> None:
    emu = await emulator_factory("recall", settings={"audio_separate_streams": True})
    await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
    async with AudioReceiver() as receiver, RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(MEET, real_time_media={"websocket_audio_destination_url": receiver.url})
        await receiver.wait_for(lambda: {c.participant_id for c in receiver.chunks} == {100, 200})
        await client.leave_call(bot["id"])
    assert all(c.hello["separate_streams"] is True for c in receiver.connections)
    assert len(receiver.connections) == 2
    assert {len(c.pcm) for c in receiver.chunks} == {3200}


def _endpoint(url: str, events: list[str]) -> dict:
    return {"type": "websocket", "url": url, "events": events, "metadata": {"site": "test"}}


async def test_realtime_endpoint_multiplexes_subscribed_events_on_one_connection(emulator: RecallEmulator) -> None:
    events = ["video_separate_png.data", "audio_mixed_raw.data", "participant_events.join",
              "participant_events.speech_off", "transcript.data"]
    async with RealtimeReceiver() as receiver, RecallClient(DEV_API_KEY, emulator.url()) as client:
        bot = await client.create_bot(MEET, recording_config={
            "video_mixed_layout": "gallery_view_v2", "video_separate_png": {}, "audio_mixed_raw": {},
            "transcript": {}, "realtime_endpoints": [_endpoint(receiver.url + "?token=abc", events)]})
        await receiver.wait_for(lambda: bool(receiver.of("transcript.data"))
                                and len(receiver.of("video_separate_png.data")) >= 4, timeout_s=8)
        await client.leave_call(bot["id"])
    assert len(receiver.connections) == 1 and receiver.query == {"token": "abc"}
    assert set(receiver.counts()) <= set(events) and not receiver.errors
    png_event = receiver.of("video_separate_png.data")[-1]
    assert png_event.payload["type"] in ("webcam", "screenshare")
    assert png_dimensions(png_event.png()) == (480, 360)
    stamp = read_stamp(decode_png(png_event.png()))
    assert stamp.stream_kind == StreamKind.RECALL_WEBCAM and stamp.stream_id == png_event.payload["participant"]["id"]
    assert png_event.data["bot"]["id"] == bot["id"]
    assert png_event.data["realtime_endpoint"]["metadata"] == {"site": "test"}
    assert isinstance(png_event.payload["timestamp"]["relative"], float)
    joins = {e.payload["participant"]["id"] for e in receiver.of("participant_events.join")}
    assert 200 in joins  # Bo joins after the endpoint is connected
    words = receiver.of("transcript.data")[0].payload["words"]
    assert [w["text"] for w in words] == ["hello", "there", "everyone"]
    assert words[0]["start_timestamp"]["relative"] <= words[-1]["end_timestamp"]["relative"]


async def test_separate_png_without_gallery_view_v2_is_accepted_but_never_sends_video(
    emulator: RecallEmulator,
) -> None:
    async with RealtimeReceiver() as receiver, RecallClient(DEV_API_KEY, emulator.url()) as client:
        bot = await client.create_bot(MEET, recording_config={
            "video_separate_png": {}, "audio_mixed_raw": {},
            "realtime_endpoints": [_endpoint(receiver.url, ["video_separate_png.data", "audio_mixed_raw.data"])]})
        await receiver.wait_for(lambda: len(receiver.of("audio_mixed_raw.data")) >= 5)
        await client.leave_call(bot["id"])
    assert receiver.of("video_separate_png.data") == []


async def test_an_unreachable_realtime_endpoint_is_marked_failed_after_30_attempts(
    emulator: RecallEmulator, free_port: int
) -> None:
    port = free_port
    async with RecallClient(DEV_API_KEY, emulator.url()) as client:
        bot = await client.create_bot(MEET, recording_config={
            "realtime_endpoints": [_endpoint(f"ws://127.0.0.1:{port}/", ["participant_events.join"])]})

        await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        media = emulator.service.lives[bot["id"]].media
        assert media is not None
        stream, task = next(iter(media.streams.values()))
        async with asyncio.timeout(10):
            await asyncio.shield(task)  # the sender gives up by itself
        assert stream.state == "failed"
        endpoint_id = next(iter(emulator.state()["bots"][bot["id"]]["realtime_endpoints"]))
        assert emulator.state()["bots"][bot["id"]]["realtime_endpoints"][endpoint_id]["state"] == "failed"
        retries = [e for e in emulator.events.query(kind="outbound.retry") if e.detail["stream"] == stream.name]
        assert len(retries) == 29
        assert emulator.events.query(kind="outbound.failed")[0].detail["attempts"] == 30
        await client.leave_call(bot["id"])


async def test_separate_raw_audio_events_carry_each_participant(emulator: RecallEmulator) -> None:
    async with RealtimeReceiver() as receiver, RecallClient(DEV_API_KEY, emulator.url()) as client:
        bot = await client.create_bot(MEET, recording_config={
            "audio_separate_raw": {}, "realtime_endpoints": [_endpoint(receiver.url, ["audio_separate_raw.data"])]})
        await receiver.wait_for(lambda: {e.payload["participant"]["id"] for e in receiver.of(
            "audio_separate_raw.data")} == {100, 200})
        await client.leave_call(bot["id"])
    assert set(receiver.counts()) == {"audio_separate_raw.data"}
    event = receiver.of("audio_separate_raw.data")[-1]
    assert len(base64.b64decode(event.payload["buffer"])) == 3200
    assert event.data["audio_separate"]["id"].endswith("audio-separate")
