"""Every Recall sender obeys the configured egress allowlist: it narrows (loopback refused when excluded) and
widens (an address outside the defaults admitted when listed).

The widened address is ``::ffff:127.0.0.1``: loopback reached through an IPv4-mapped IPv6 address, which the
default allowlist does not contain, so the tests stay on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from clients.recall import AudioReceiver, RealtimeReceiver, RecallClient, VideoReceiver
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.recall.device import DEV_API_KEY, RecallEmulator
from emulators.recall.media import BotMedia

MEET = "https://meet.google.com/egr-esss-out"
SCENARIO = {"name": "egress", "meeting_urls": [MEET], "duration_s": 1000,
            "participants": [{"id": 100, "is_host": True}, {"id": 200}]}
NARROW = EgressPolicy(allow=["10.0.0.0/8"], allow_hosts=())
WIDE = EgressPolicy(allow=[*DEFAULT_ALLOWED, "::ffff:127.0.0.0/104"])
MAPPED = "[::ffff:127.0.0.1]"


def mapped(url: str) -> str:
    return url.replace("127.0.0.1", MAPPED)


async def emulator(egress: EgressPolicy, **settings: Any) -> RecallEmulator:
    emu = RecallEmulator(settings={"port": 0, "retry_interval_s": 0.2, **settings}, egress=egress)
    await emu.start()
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
    receivers: tuple[VideoReceiver, AudioReceiver, RealtimeReceiver],
) -> None:
    video, audio, timeline = receivers
    emu = await emulator(NARROW)
    try:
        async with RecallClient(DEV_API_KEY, emu.url()) as client:
            bot_id, media = await recording_media(emu, client, **legacy_body(video.url, audio.url, timeline.url))
            await media.wait_for(lambda: len(media.streams) == 3 and all(
                s.state == "failed" for s, _task in media.streams.values()))
            await client.leave_call(bot_id)
    finally:
        await emu.aclose()
    errors = [e.detail["error"] for e in emu.events.query(kind="stream.error")]
    assert len(errors) == 3 and all("egress allowlist" in e for e in errors)
    assert video.attempts == audio.attempts == timeline.attempts == []


async def test_legacy_websockets_reach_an_address_outside_the_defaults_when_it_is_listed(
    receivers: tuple[VideoReceiver, AudioReceiver, RealtimeReceiver],
) -> None:
    video, audio, timeline = receivers
    emu = await emulator(WIDE)
    try:
        async with RecallClient(DEV_API_KEY, emu.url()) as client:
            bot_id, _media = await recording_media(
                emu, client, **legacy_body(mapped(video.url), mapped(audio.url), mapped(timeline.url)))
            await video.wait_for(lambda: len(video.frames) >= 1)
            await audio.wait_for(lambda: len(audio.connections) == 1)
            await timeline.wait_for(lambda: len(timeline.connections) == 1)
            await client.leave_call(bot_id)
    finally:
        await emu.aclose()


async def test_realtime_endpoint_obeys_the_allowlist_both_ways() -> None:
    async with RealtimeReceiver() as receiver:
        emu = await emulator(NARROW)
        try:
            async with RecallClient(DEV_API_KEY, emu.url()) as client:
                bot_id, media = await recording_media(emu, client, **realtime_body(receiver.url))
                await media.wait_for(lambda: media.realtime != [] and media.realtime[0].state == "failed")
                await client.leave_call(bot_id)
        finally:
            await emu.aclose()
        assert receiver.attempts == []
        emu = await emulator(WIDE)
        try:
            async with RecallClient(DEV_API_KEY, emu.url()) as client:
                bot_id, _media = await recording_media(emu, client, **realtime_body(mapped(receiver.url)))
                await receiver.wait_for(lambda: len(receiver.connections) == 1)
                await client.leave_call(bot_id)
        finally:
            await emu.aclose()


class HookServer:
    """A loopback webhook receiver that knows when the bot's last status (done) arrived."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.done = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        if self.received[-1]["data"]["status"]["code"] == "done":
            self.done.set()
        return web.Response(status=204)

    async def __aenter__(self) -> HookServer:
        app = web.Application()
        app.router.add_post("/hooks", self._hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_status_webhooks_obey_the_allowlist_both_ways() -> None:
    async with HookServer() as hooks:
        emu = await emulator(NARROW, status_webhook_url=f"http://127.0.0.1:{hooks.port}/hooks")
        try:
            async with RecallClient(DEV_API_KEY, emu.url()) as client:
                bot_id, _media = await recording_media(emu, client)
                sender = emu.service.lives[bot_id].webhook_task
                await client.leave_call(bot_id)
                await client.wait_for_status(bot_id, "done", timeout_s=5)
                assert sender is not None
                await asyncio.wait([sender], timeout=5)  # the bot retires its sender once its queue is empty
        finally:
            await emu.aclose()
        refused = emu.events.query(kind="webhook.refused")
        assert len(refused) == 6 and "egress allowlist" in refused[0].detail["error"]
        assert hooks.received == []
        emu = await emulator(WIDE, status_webhook_url=f"http://{MAPPED}:{hooks.port}/hooks")
        try:
            async with RecallClient(DEV_API_KEY, emu.url()) as client:
                bot_id, _media = await recording_media(emu, client)
                await client.leave_call(bot_id)
                async with asyncio.timeout(5):
                    await hooks.done.wait()
        finally:
            await emu.aclose()
        assert [m["data"]["status"]["code"] for m in hooks.received][-1] == "done"


async def test_rtmp_push_to_loopback_is_refused_when_the_allowlist_excludes_it() -> None:
    body = {"recording_mode": "speaker_view", "real_time_media": {"rtmp_destination_url": "rtmp://127.0.0.1:9/live/x"}}
    emu = await emulator(NARROW, rtmp_width=160, rtmp_height=96, rtmp_fps=5)
    try:
        async with RecallClient(DEV_API_KEY, emu.url()) as client:
            bot_id, media = await recording_media(emu, client, **body)
            await media.wait_for(lambda: media.rtmp is not None and media.rtmp.state == "failed")
            await client.leave_call(bot_id)
    finally:
        await emu.aclose()
    [error] = emu.events.query(kind="stream.error")
    assert "egress allowlist" in error.detail["error"]
    assert emu.events.query(kind="stream.started") == []
