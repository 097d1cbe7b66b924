"""Recall bots API against a running emulator: auth, create/list/retrieve/leave_call, limits, idempotency, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from clients.recall import RecallClient, RecallError
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.recall.device import DEV_API_KEY, RecallEmulator
from tests.conftest import EmulatorFactory

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

MEET = "https://meet.google.com/abc-defg-hij"
SHORT = "https://meet.google.com/sho-rtme-eet"  # the short-meeting scenario: the default script, played once
LIFECYCLE = ["ready", "joining_call", "in_call_not_recording", "in_call_recording", "call_ended", "done"]


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory) -> AsyncIterator[RecallEmulator]:
    emu = await emulator_factory("recall")
    yield emu


@pytest.fixture
async def client(emulator: RecallEmulator) -> AsyncIterator[RecallClient]:
    async with RecallClient(DEV_API_KEY, emulator.url(), max_retries=0) as c:
        yield c


async def raw(emulator: RecallEmulator, method: str, path: str, **kwargs) -> tuple[int, dict, object]:
    async with aiohttp.ClientSession() as session, session.request(method, emulator.url() + path, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


@pytest.mark.parametrize("header", [f"Token {DEV_API_KEY}", DEV_API_KEY])
async def test_token_prefix_and_bare_key_both_authenticate(emulator: RecallEmulator, header: str) -> None:
    status, _, body = await raw(emulator, "GET", "/api/v1/bot/", headers={"Authorization": header})
    assert status == 200 and body["count"] == 0


async def test_wrong_key_is_401_invalid_token(emulator: RecallEmulator) -> None:
    status, _, body = await raw(emulator, "GET", "/api/v1/bot/", headers={"Authorization": "Token nope"})
    assert (status, body) == (401, {"detail": "Invalid token."})


async def test_missing_key_is_401_credentials_not_provided(emulator: RecallEmulator) -> None:
    status, _, body = await raw(emulator, "POST", "/api/v1/bot/", json={"meeting_url": MEET})
    assert (status, body) == (401, {"detail": "Authentication credentials were not provided."})


async def test_create_answers_201_with_a_ready_bot_and_echoed_defaults(client: RecallClient) -> None:
    bot = await client.create_bot(MEET, recording_mode="gallery_view", metadata={"team": "a"})
    assert len(bot["id"]) == 36
    assert bot["status_changes"][0] == {"code": "ready", "message": None, "created_at": bot["status_changes"][0][
        "created_at"], "sub_code": None}
    assert bot["bot_name"] == "Meeting Notetaker" and bot["recording_mode"] == "gallery_view"
    assert bot["metadata"] == {"team": "a"} and bot["video_url"] is None


async def test_field_errors_are_400_keyed_by_field(client: RecallClient) -> None:
    with pytest.raises(RecallError) as info:
        await client.create_bot(MEET, bot_name="x" * 101, recording_mode="tiles")
    assert info.value.status == 400
    assert set(info.value.body) == {"bot_name", "recording_mode"}


async def test_unknown_bot_and_unknown_path_are_404_not_found(emulator: RecallEmulator) -> None:
    auth = {"Authorization": f"Token {DEV_API_KEY}"}
    for path in ("/api/v1/bot/00000000-0000-4000-8000-000000000000/", "/api/v1/bot/not-a-uuid/", "/api/v1/bots/"):
        status, _, body = await raw(emulator, "GET", path, headers=auth)
        assert (status, body) == (404, {"detail": "Not found."})


async def test_bot_runs_the_documented_lifecycle_and_leave_call_ends_it(client: RecallClient) -> None:
    bot = await client.create_bot(MEET)
    await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
    left = await client.leave_call(bot["id"])
    assert left["id"] == bot["id"]
    done = await client.wait_for_status(bot["id"], "done", timeout_s=5)
    codes = [c["code"] for c in done["status_changes"]]
    assert codes == LIFECYCLE
    assert done["status_changes"][4]["sub_code"] == "bot_received_leave_call"
    stamps = [c["created_at"] for c in done["status_changes"]]
    assert stamps == sorted(stamps)
    with pytest.raises(RecallError) as info:
        await client.leave_call(bot["id"])
    assert info.value.status == 400 and info.value.code == "cannot_command_completed_bot"


async def test_participants_appear_in_meeting_participants_as_they_join(client: RecallClient) -> None:
    bot = await client.create_bot(MEET)
    bot = await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
    people = bot["meeting_participants"]
    assert [p["id"] for p in people][:2] == [100, 200]
    assert people[0]["is_host"] and people[0]["events"][0]["code"] == "join"


async def test_meeting_ending_ends_the_bot_by_host(client: RecallClient) -> None:
    bot = await client.create_bot(SHORT)  # the short meeting lasts 60 s x time scale 0.05
    done = await client.wait_for_status(bot["id"], "done", timeout_s=10)
    ended = next(c for c in done["status_changes"] if c["code"] == "call_ended")
    assert ended["sub_code"] == "call_ended_by_host"


async def test_a_missing_meeting_ends_fatal_meeting_not_found(client: RecallClient) -> None:
    bot = await client.create_bot("https://meet.google.com/zzz-zzzz-zzz")
    fatal = await client.wait_for_status(bot["id"], "fatal", timeout_s=5)
    assert [c["code"] for c in fatal["status_changes"]] == ["ready", "joining_call", "fatal"]
    assert fatal["status_changes"][-1]["sub_code"] == "meeting_not_found"
    assert fatal["recording"] is None


async def test_scheduled_bot_cannot_be_told_to_leave_before_it_starts(client: RecallClient) -> None:
    join_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    bot = await client.create_bot(MEET, join_at=join_at)
    assert bot["join_at"] is not None
    with pytest.raises(RecallError) as info:
        await client.leave_call(bot["id"])
    assert info.value.code == "cannot_command_unstarted_bot"


async def test_v111_bot_has_a_meeting_url_object_and_a_participants_download(client: RecallClient) -> None:
    bot = await client.create_bot("https://zoom.us/j/1234567890?pwd=pw", recording_config={})
    assert bot["meeting_url"] == {"meeting_id": "1234567890", "meeting_password": "pw", "platform": "zoom"}
    bot = await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
    url = bot["recordings"][0]["media_shortcuts"]["participant_events"]["data"]["participants_download_url"]
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        people = await resp.json()
    assert {p["id"] for p in people} >= {100, 200}


async def test_list_is_newest_first_paginated_and_filtered(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall", settings={"page_size": 2})
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        ids = [(await client.create_bot(MEET, metadata={"n": str(i)}))["id"] for i in range(3)]
        await client.create_bot("https://zoom.us/j/1234567890")
        first = await client.list_bots(platform="google_meet")
        assert first["count"] == 3 and first["previous"] is None and "page=2" in first["next"]
        walked = [b["id"] async for b in client.iter_bots(platform=["google_meet"])]
        assert walked == ids[::-1]
        assert [b["id"] for b in (await client.list_bots(metadata__n="1"))["results"]] == [ids[1]]
        assert (await client.list_bots(meeting_url="https://zoom.us/j/1234567890"))["count"] == 1
        for listed in (await client.list_bots(status=["joining_call", "in_call_recording"]))["results"]:
            assert listed["status_changes"][-1]["code"] in ("joining_call", "in_call_recording")
        with pytest.raises(RecallError) as info:
            await client.list_bots(page=9)
        assert info.value.status == 404


async def test_the_61st_create_in_a_minute_is_429_with_retry_after(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall", settings={"rate_limit_create_per_min": 3})
    auth = {"Authorization": DEV_API_KEY}
    for _ in range(3):
        assert (await raw(emu, "POST", "/api/v1/bot/", json={"meeting_url": MEET}, headers=auth))[0] == 201
    status, headers, body = await raw(emu, "POST", "/api/v1/bot/", json={"meeting_url": MEET}, headers=auth)
    assert status == 429 and body == {"detail": "Request was throttled."}
    assert 1 <= int(headers["Retry-After"]) <= 60


async def test_rate_limits_can_be_switched_off(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall", settings={"rate_limits": False, "rate_limit_list_per_min": 1})
    for _ in range(3):
        assert (await raw(emu, "GET", "/api/v1/bot/", headers={"Authorization": DEV_API_KEY}))[0] == 200


async def test_idempotent_replay_returns_the_same_bot_and_conflicts_are_409(emulator: RecallEmulator) -> None:
    headers = {"Authorization": DEV_API_KEY, "Idempotency-Key": "k1"}
    first = await raw(emulator, "POST", "/api/v1/bot/", json={"meeting_url": MEET}, headers=headers)
    again = await raw(emulator, "POST", "/api/v1/bot/", json={"meeting_url": MEET}, headers=headers)
    assert first[0] == again[0] == 201 and first[2]["id"] == again[2]["id"]
    assert len(emulator.backend.book) == 1
    changed = await raw(emulator, "POST", "/api/v1/bot/", json={"meeting_url": MEET, "bot_name": "B"},
                        headers=headers)
    assert changed[0] == 409


async def test_reject_legacy_fields_profile_refuses_v110_fields(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall", settings={"reject_legacy_fields": True})
    status, _, body = await raw(emu, "POST", "/api/v1/bot/", headers={"Authorization": DEV_API_KEY},
                                json={"meeting_url": MEET, "real_time_media": {}})
    assert (status, body) == (400, {"real_time_media": ["This field is not allowed."]})
    status, _, body = await raw(emu, "POST", "/api/v1/bot/", headers={"Authorization": DEV_API_KEY},
                                json={"meeting_url": MEET})
    assert status == 201 and isinstance(body["meeting_url"], dict)


async def test_delete_only_works_for_undispatched_scheduled_bots(
    client: RecallClient, emulator: RecallEmulator
) -> None:
    auth = {"Authorization": DEV_API_KEY}
    scheduled = await client.create_bot(MEET, join_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert (await raw(emulator, "DELETE", f"/api/v1/bot/{scheduled['id']}/", headers=auth))[0] == 204
    assert (await raw(emulator, "GET", f"/api/v1/bot/{scheduled['id']}/", headers=auth))[0] == 404
    live = await client.create_bot(MEET)
    status, _, _body = await raw(emulator, "DELETE", f"/api/v1/bot/{live['id']}/", headers=auth)
    assert status == 405


async def test_reset_forgets_every_bot_and_stops_their_tasks(emulator: RecallEmulator, client: RecallClient) -> None:
    await client.create_bot(MEET)
    await emulator.reset(seed=5)
    assert len(emulator.backend.book) == 0 and emulator.tasks.live == 0
    await asyncio.sleep(0)


async def test_waf_quirk_answers_html_403_to_localhost_urls(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall", settings={"quirk_waf_localhost": True})
    async with aiohttp.ClientSession() as session:
        async with session.post(emu.url() + "/api/v1/bot/", headers={"Authorization": DEV_API_KEY}, json={
                "meeting_url": MEET, "real_time_media": {"websocket_video_destination_url": "ws://localhost:1"}
        }) as resp:
            assert resp.status == 403 and resp.content_type == "text/html"
        async with session.post(emu.url() + "/api/v1/bot/", headers={"Authorization": DEV_API_KEY}, json={
                "meeting_url": MEET}) as resp:
            assert resp.status == 201


async def test_pool_exhausted_quirk_answers_507_for_ad_hoc_bots_only(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall", settings={"quirk_pool_exhausted": True})
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        with pytest.raises(RecallError) as info:
            await client.create_bot(MEET)
        assert info.value.status == 507 and "join_at" in info.value.body["detail"]
        scheduled = await client.create_bot(MEET, join_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
        assert scheduled["status_changes"][0]["code"] == "ready"
