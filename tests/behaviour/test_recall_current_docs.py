"""Limits and shapes from Recall's current docs: 120 creates a minute per workspace, 507 with Retry-After,
meeting_url objects for Teams, Webex and GoTo Meeting, PATCH of a scheduled bot, and the recording links."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from clients.recall import RecallClient, RecallError
from emulators.recall.device import DEV_API_KEY
from tests.conftest import EmulatorFactory

MEET = "https://meet.google.com/abc-defg-hij"
GOTO = "https://meet.goto.com/680504437"


def later(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def test_a_workspace_may_create_120_bots_a_minute_and_the_121st_is_429(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("recall")
    body = {"meeting_url": MEET, "join_at": later(1)}  # scheduled: nothing dispatches during the test
    async with aiohttp.ClientSession(headers={"Authorization": f"Token {DEV_API_KEY}"}) as session:
        statuses = []
        for _ in range(121):
            async with session.post(emu.url() + "/api/v1/bot/", json=body) as resp:
                statuses.append(resp.status)
                retry_after = resp.headers.get("Retry-After")
    assert statuses[:120] == [201] * 120
    assert statuses[120] == 429 and retry_after is not None and 1 <= int(retry_after) <= 60


async def test_an_empty_ad_hoc_pool_is_507_with_retry_after_30(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall", settings={"quirk_pool_exhausted": True})
    async with aiohttp.ClientSession() as session, session.post(
        emu.url() + "/api/v1/bot/", json={"meeting_url": MEET}, headers={"Authorization": DEV_API_KEY}
    ) as resp:
        assert (resp.status, resp.headers.get("Retry-After")) == (507, "30")


async def test_a_goto_meeting_bot_shows_its_meeting_url_object_and_the_platform_filter_finds_it(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("recall")
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        goto = await client.create_bot(GOTO, join_at=later(1), recording_config={"participant_events": {}})
        await client.create_bot(MEET, join_at=later(1))
        listed = await client.list_bots(platform="goto_meeting")
    assert goto["meeting_url"] == {"meeting_id": "680504437", "platform": "goto_meeting"}
    assert [b["id"] for b in listed["results"]] == [goto["id"]]


async def test_patch_moves_a_scheduled_bot_and_renames_it(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall")
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(MEET, join_at=later(1), bot_name="Notetaker")
        patched = await client.update_bot(bot["id"], bot_name="Renamed", join_at=later(-0.001))
        assert (patched["id"], patched["bot_name"]) == (bot["id"], "Renamed")
        assert patched["meeting_url"] == bot["meeting_url"]  # fields not in the PATCH are kept
        # The new join_at is already due: the bot dispatches without waiting for the old hour.
        joined = await client.wait_for_status(bot["id"], "joining_call", timeout_s=5)
        assert joined["bot_name"] == "Renamed"
        with pytest.raises(RecallError) as info:
            await client.update_bot(bot["id"], bot_name="Too late")
        assert info.value.status == 400 and info.value.body["code"] == "cannot_update_dispatched_bot"


async def test_patch_validates_like_create_naming_the_field(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall")
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(MEET, join_at=later(1))
        with pytest.raises(RecallError) as info:
            await client.update_bot(bot["id"], bot_name="x" * 101)
        assert info.value.status == 400 and "bot_name" in info.value.body
        assert (await client.get_bot(bot["id"]))["bot_name"] == bot["bot_name"]


async def fetch(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.content_type, await resp.read()


async def test_after_done_video_url_and_video_mixed_point_at_an_mp4_ffprobe_plays(
    emulator_factory: EmulatorFactory, tmp_path,
) -> None:
    emu = await emulator_factory("recall")
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        legacy = await client.create_bot(MEET)
        current = await client.create_bot(MEET, recording_config={"participant_events": {}})
        for bot in (legacy, current):
            await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        assert (await client.get_bot(legacy["id"]))["video_url"] is None  # null until the recording is done
        for bot in (legacy, current):
            await client.leave_call(bot["id"])
        legacy = await client.wait_for_status(legacy["id"], "done", timeout_s=10)
        current = await client.wait_for_status(current["id"], "done", timeout_s=10)
    links = [legacy["video_url"], current["recordings"][0]["media_shortcuts"]["video_mixed"]["data"]["download_url"]]
    for index, link in enumerate(links):
        status, content_type, body = await fetch(link)
        assert (status, content_type) == (200, "video/mp4")
        path = tmp_path / f"{index}.mp4"
        path.write_bytes(body)
        probe = await asyncio.create_subprocess_exec(
            "ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(path),
            stdout=asyncio.subprocess.PIPE)
        out, _ = await probe.communicate()
        assert probe.returncode == 0 and out.decode().split() == ["h264", "aac"]
    tampered = links[0].replace("expires=", "expires=1")
    status, _, body = await fetch(tampered)
    assert status == 403 and b"signature" in body
