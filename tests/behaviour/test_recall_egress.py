"""Every Recall sender obeys the configured egress allowlist: it narrows (loopback refused when excluded) and
widens (an address outside the defaults admitted when listed).

The widened address is ``::ffff:127.0.0.1``: loopback reached through an IPv4-mapped IPv6 address, which the
default allowlist does not contain, so the tests stay on loopback.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clients.recall import AudioReceiver, RealtimeReceiver, RecallClient, VideoReceiver
from emulators.config import Config
from emulators.kit.outbound import DEFAULT_ALLOWED
from emulators.recall.device import DEV_API_KEY, RecallEmulator
from emulators.recall.media import BotMedia
from tests.conftest import EmulatorFactory, WebhookReceiver

MEET = "https://meet.google.com/egr-esss-out"
SCENARIO = {"name": "egress", "meeting_urls": [MEET], "duration_s": 1000,
            "participants": [{"id": 100, "is_host": True}, {"id": 200}]}
NARROW = Config(egress_allow=["10.0.0.0/8"])
WIDE = Config(egress_allow=[*DEFAULT_ALLOWED, "::ffff:127.0.0.0/104"])
MAPPED = "[::ffff:127.0.0.1]"


def mapped(url: str) -> str:
    return url.replace("127.0.0.1", MAPPED)


async def emulator(factory: EmulatorFactory, config: Config, **settings: Any) -> RecallEmulator:
    emu = await factory("recall", settings={"retry_interval_s": 0.2, **settings}, config=config)
    assert isinstance(emu, RecallEmulator)
    await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
    return emu


async def recording_media(emu: RecallEmulator, client: RecallClient, **body: Any) -> tuple[str, BotMedia]:
    bot = await client.create_bot(MEET, **body)
    await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
    media = emu.service.lives[bot["id"]].media
    assert media is not None
    return bot["id"], media


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[VideoReceiver, AudioReceiver, RealtimeReceiver]]:
    async with VideoReceiver() as video, AudioReceiver() as audio, RealtimeReceiver() as timeline:
        yield video, audio, timeline


def legacy_body(video: str, audio: str, timeline: str) -> dict[str, Any]:
    return {"recording_mode": "speaker_view", "real_time_media": {
        "websocket_video_destination_url": video, "websocket_audio_destination_url": audio,
        "websocket_speaker_timeline_destination_url": timeline}}


def realtime_body(url: str) -> dict[str, Any]:
    return {"recording_config": {"participant_events": {}, "realtime_endpoints": [
        {"type": "websocket", "url": url, "events": ["participant_events.join"]}]}}


async def test_legacy_websockets_to_loopback_are_refused_when_the_allowlist_excludes_it(
    emulator_factory: EmulatorFactory, receivers: tuple[VideoReceiver, AudioReceiver, RealtimeReceiver],
) -> None:
    video, audio, timeline = receivers
    emu = await emulator(emulator_factory, NARROW)
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot_id, media = await recording_media(emu, client, **legacy_body(video.url, audio.url, timeline.url))
        await media.wait_for(lambda: len(media.streams) == 3 and all(
            s.state == "failed" for s, _task in media.streams.values()))
        await client.leave_call(bot_id)
    errors = [e.detail["error"] for e in emu.events.query(kind="stream.error")]
    assert len(errors) == 3 and all("egress allowlist" in e for e in errors)
    assert video.attempts == audio.attempts == timeline.attempts == []


async def test_legacy_websockets_reach_an_address_outside_the_defaults_when_it_is_listed(
    emulator_factory: EmulatorFactory, receivers: tuple[VideoReceiver, AudioReceiver, RealtimeReceiver],
) -> None:
    video, audio, timeline = receivers
    emu = await emulator(emulator_factory, WIDE)
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot_id, _media = await recording_media(
            emu, client, **legacy_body(mapped(video.url), mapped(audio.url), mapped(timeline.url)))
        await video.wait_for(lambda: len(video.frames) >= 1)
        await audio.wait_for(lambda: len(audio.connections) == 1)
        await timeline.wait_for(lambda: len(timeline.connections) == 1)
        await client.leave_call(bot_id)


async def test_realtime_endpoint_to_loopback_is_refused_when_the_allowlist_excludes_it(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator(emulator_factory, NARROW)
    async with RealtimeReceiver() as receiver, RecallClient(DEV_API_KEY, emu.url()) as client:
        bot_id, media = await recording_media(emu, client, **realtime_body(receiver.url))
        await media.wait_for(lambda: media.realtime != [] and media.realtime[0].state == "failed")
        await client.leave_call(bot_id)
    assert receiver.attempts == []


async def test_realtime_endpoint_reaches_an_address_outside_the_defaults_when_it_is_listed(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator(emulator_factory, WIDE)
    async with RealtimeReceiver() as receiver, RecallClient(DEV_API_KEY, emu.url()) as client:
        bot_id, _media = await recording_media(emu, client, **realtime_body(mapped(receiver.url)))
        await receiver.wait_for(lambda: len(receiver.connections) == 1)
        await client.leave_call(bot_id)


async def test_status_webhooks_to_loopback_are_refused_when_the_allowlist_excludes_it(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver,
) -> None:
    emu = await emulator(emulator_factory, NARROW, status_webhook_url=webhook_receiver.url + "/hooks")
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot_id, _media = await recording_media(emu, client)
        await client.leave_call(bot_id)
        refusals = itertools.count(1)  # the predicate sees each refusal once: the sixth is the done webhook's
        await emu.events.wait_for("webhook.refused", lambda _e: next(refusals) == 6, timeout=5)
    refused = emu.events.query(kind="webhook.refused")
    assert "egress allowlist" in refused[0].detail["error"]
    assert webhook_receiver.requests == []


async def test_status_webhooks_reach_an_address_outside_the_defaults_when_it_is_listed(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver,
) -> None:
    emu = await emulator(emulator_factory, WIDE, status_webhook_url=mapped(webhook_receiver.url) + "/hooks")
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot_id, _media = await recording_media(emu, client)
        await client.leave_call(bot_id)
        hooks = await webhook_receiver.wait_for(6, timeout=5)
    assert [h.json()["data"]["status"]["code"] for h in hooks][-1] == "done"


async def test_rtmp_push_to_loopback_is_refused_when_the_allowlist_excludes_it(
    emulator_factory: EmulatorFactory,
) -> None:
    body = {"recording_mode": "speaker_view", "real_time_media": {"rtmp_destination_url": "rtmp://127.0.0.1:9/live/x"}}
    emu = await emulator(emulator_factory, NARROW, rtmp_width=160, rtmp_height=96, rtmp_fps=5)
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot_id, _media = await recording_media(emu, client, **body)
        error = await emu.events.wait_for("stream.error", timeout=5)
        await client.leave_call(bot_id)
    assert "egress allowlist" in error.detail["error"]
    assert emu.events.query(kind="stream.started") == [] and emu.events.query(kind="worker.started") == []
