"""Recall scenario controls, meeting-driven endings, the speaker timeline stream, and clean shutdown."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator

import aiohttp
import pytest

from clients.recall import RealtimeReceiver, RecallClient
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.recall.device import DEV_API_KEY, RecallEmulator
from tests.conftest import EmulatorFactory, WebhookReceiver

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

MEET = "https://meet.google.com/con-trol-sss"
SCENARIO = {"name": "controls", "meeting_urls": [MEET], "duration_s": 1000,
            "participants": [{"id": 100, "is_host": True, "name": "Ann Host"}, {"id": 200, "name": "Bo Guest"}]}


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory) -> AsyncIterator[RecallEmulator]:
    emu = await emulator_factory("recall", )
    await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
    yield emu


async def control(emu: RecallEmulator, name: str, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{emu.url()}/_emulator/scenario/{name}", json=body
    ) as resp:
        return resp.status, await resp.json()


@pytest.mark.control_plane
async def test_controls_name_the_bad_field(emulator: RecallEmulator) -> None:
    assert (await control(emulator, "start_screenshare", {"participant_id": 100}))[0] == 400  # no bot yet
    async with RecallClient(DEV_API_KEY, emulator.url()) as client:
        bot = await client.create_bot(MEET)
        await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        status, body = await control(emulator, "start_screenshare", {"participant_id": 999})
        assert status == 400 and body["field"] == "participant_id" and "present" in body["error"]
        status, body = await control(emulator, "remove_participant", {"participant_id": "100"})
        assert status == 400 and body["field"] == "participant_id"
        status, body = await control(emulator, "add_participant", {"platform": "fax"})
        assert status == 400 and body["field"] == "platform"
        status, body = await control(emulator, "end_meeting", {"bot_id": "nope"})
        assert status == 400 and body["field"] == "bot_id"
        await client.leave_call(bot["id"])


@pytest.mark.control_plane
async def test_end_meeting_ends_the_bot_by_host(emulator: RecallEmulator) -> None:
    async with RecallClient(DEV_API_KEY, emulator.url()) as client:
        bot = await client.create_bot(MEET)
        await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        status, body = await control(emulator, "end_meeting", {"bot_id": bot["id"]})
        assert status == 200 and body == {"ended": [bot["id"]]}
        done = await client.wait_for_status(bot["id"], "done", timeout_s=5)
    assert done["status_changes"][-2]["sub_code"] == "call_ended_by_host"


async def test_everyone_leaving_ends_the_bot_after_everyone_left_timeout(emulator: RecallEmulator) -> None:
    async with RecallClient(DEV_API_KEY, emulator.url()) as client:
        bot = await client.create_bot(MEET, automatic_leave={"everyone_left_timeout": 4})
        await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        for pid in (100, 200):
            await emulator.scenario_controls["remove_participant"]({"participant_id": pid})
        done = await client.wait_for_status(bot["id"], "done", timeout_s=5)
    ended = done["status_changes"][-2]
    assert (ended["code"], ended["sub_code"]) == ("call_ended", "timeout_exceeded_everyone_left")
    leave_events = [e["code"] for p in done["meeting_participants"] for e in p["events"]]
    assert leave_events.count("leave") == 2


async def test_waiting_room_longer_than_its_timeout_ends_the_bot(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall")
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        # The fixture scenario keeps the bot waiting 5 s; the minimum timeout is 30 s, so it is let in.
        bot = await client.create_bot("https://meet.google.com/wai-tinr-oom")
        admitted = await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        assert [c["code"] for c in admitted["status_changes"]][:4] == [
            "ready", "joining_call", "in_waiting_room", "in_call_not_recording"]
        await emu.scenario_controls["load_scenario"]({"scenario": {
            "name": "long-wait", "meeting_urls": [MEET], "waiting_room_s": 100, "participants": [{"id": 1}]}})
        refused = await client.create_bot(MEET, automatic_leave={"waiting_room_timeout": 30})
        ended = await client.wait_for_status(refused["id"], "done", timeout_s=5)
        assert ended["status_changes"][-2]["sub_code"] == "timeout_exceeded_waiting_room"
        await client.leave_call(bot["id"])


async def test_speaker_timeline_sends_one_message_per_speaker_change(emulator: RecallEmulator) -> None:
    async with RealtimeReceiver() as receiver, RecallClient(DEV_API_KEY, emulator.url()) as client:
        received: list[str] = []
        receiver.on_text = lambda record, text: received.append(text)  # plain JSON, not v1.11 envelopes
        bot = await client.create_bot(MEET, real_time_media={
            "websocket_speaker_timeline_destination_url": receiver.url})
        await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        media = emulator.service.lives[bot["id"]].media
        assert media is not None
        # Messages are real-time: only a connected stream carries them, so wait for the bot's side.
        await media.wait_for(lambda: media.snapshot()["speaker_timeline"]["state"] == "connected")
        await emulator.scenario_controls["set_active_speaker"]({"participant_id": 200})
        await emulator.scenario_controls["set_active_speaker"]({"participant_id": 100})
        await receiver.wait_for(lambda: len(received) >= 2)
        await client.leave_call(bot["id"])
    messages = [json.loads(t) for t in received]
    assert [(m["user_id"], m["name"]) for m in messages] == [(200, "Bo Guest"), (100, "Ann Host")]
    assert messages[0]["timestamp"] <= messages[1]["timestamp"]


async def test_closing_the_emulator_leaves_no_tasks_or_threads() -> None:
    before = {t.name for t in threading.enumerate()}
    async with RecallEmulator(egress=EGRESS, settings={"port": 0}) as emu, RealtimeReceiver() as receiver:
        await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
        async with RecallClient(DEV_API_KEY, emu.url()) as client:
            await client.create_bot(MEET, recording_mode="gallery_view",
                                    real_time_media={"websocket_video_destination_url": receiver.url})
            await receiver.wait_for(lambda: receiver.open_connections == 2)
    assert emu.tasks.live == 0
    leftover = {t.name for t in threading.enumerate()} - before
    assert not [name for name in leftover if name.startswith("recall")]


async def test_status_webhooks_report_every_status_change_in_order(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver
) -> None:
    emu = await emulator_factory("recall", settings={"status_webhook_url": webhook_receiver.url + "/hooks"})
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot("https://meet.google.com/abc-defg-hij")
        await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        await client.leave_call(bot["id"])
        received = [r.json() for r in await webhook_receiver.wait_for(6, timeout=5)]
    assert {m["event"] for m in received} == {"bot.status_change"}
    assert [m["data"]["status"]["code"] for m in received] == [
        "ready", "joining_call", "in_call_not_recording", "in_call_recording", "call_ended", "done"]
    assert all(m["data"]["bot_id"] == bot["id"] for m in received)
