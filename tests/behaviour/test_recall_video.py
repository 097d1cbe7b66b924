"""Legacy real-time video: one WebSocket per stream, LE header + PNG at 2 fps, sizes, layouts, reconnects, faults."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from clients.recall import RecallClient, VideoReceiver
from clients.stamp import StreamKind, read_stamp
from contracts.recall_frames import png_problems
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.recall.device import DEV_API_KEY, RecallEmulator
from tests.conftest import EmulatorFactory

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

MEET = "https://meet.google.com/vid-eote-sts"
# A long meeting (1000 s x time scale 0.05 = 50 s) with two people present from the start; the host speaks.
SCENARIO = {
    "name": "video-tests",
    "meeting_urls": [MEET],
    "duration_s": 1000,
    "participants": [{"id": 100, "is_host": True, "name": "Ann Host"}, {"id": 200, "name": "Bo Guest"}],
}


@pytest.fixture
async def emulator(emulator_factory: EmulatorFactory) -> AsyncIterator[RecallEmulator]:
    emu = await emulator_factory("recall", settings={"retry_interval_s": 0.2})
    await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
    yield emu


@pytest.fixture
async def receiver() -> AsyncIterator[VideoReceiver]:
    async with VideoReceiver() as r:
        yield r


async def start_bot(emu: RecallEmulator, url: str, mode: str = "speaker_view") -> tuple[RecallClient, str]:
    client = RecallClient(DEV_API_KEY, emu.url())
    bot = await client.create_bot(MEET, recording_mode=mode, real_time_media={"websocket_video_destination_url": url})
    return client, bot["id"]


async def test_speaker_view_sends_one_stream_with_id_zero_showing_the_active_speaker(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    client, bot_id = await start_bot(emulator, receiver.url)
    await receiver.wait_for(lambda: len(receiver.frames) >= 4)
    await client.leave_call(bot_id)
    await receiver.wait_for(lambda: receiver.open_connections == 0)
    await client.aclose()
    assert len(receiver.connections) == 1
    assert receiver.connections[0].hello == {"protocol_version": 1, "bot_id": bot_id}
    assert {f.participant_id for f in receiver.frames} == {0}
    assert {(f.width, f.height) for f in receiver.frames} == {(1280, 720)}
    stamp = read_stamp(receiver.frames[0].image())
    assert stamp.stream_kind == StreamKind.RECALL_SPEAKER and stamp.stream_id == 100  # the host, before speech
    assert stamp.frame_index * 500 == receiver.frames[0].timestamp_ms


async def test_gallery_view_opens_one_connection_per_participant(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    client, bot_id = await start_bot(emulator, receiver.url, "gallery_view_v2")
    await receiver.wait_for(lambda: all(len(receiver.by_participant().get(p, [])) >= 3 for p in (100, 200)))
    await client.leave_call(bot_id)
    await client.aclose()
    assert len(receiver.connections) == 2
    assert all(c.hello == {"protocol_version": 1, "bot_id": bot_id} for c in receiver.connections)
    for pid, frames in receiver.by_participant().items():
        assert len({f.connection for f in frames}) == 1
        assert {(f.width, f.height) for f in frames} == {(1280, 720)}
        stamp = read_stamp(frames[-1].image())
        assert (stamp.stream_kind, stamp.stream_id) == (StreamKind.RECALL_WEBCAM, pid)
    for report in receiver.report().values():
        assert report.out_of_order == 0 and not report.gaps
        assert all(ts % 500 == 0 for ts in (f.timestamp_ms for f in receiver.frames))


async def test_screenshare_opens_a_1024x576_stream_and_shrinks_participants_to_256x144(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    client, bot_id = await start_bot(emulator, receiver.url, "gallery_view")
    await receiver.wait_for(lambda: len(receiver.connections) == 2 and len(receiver.frames) >= 2)
    await emulator.scenario_controls["start_screenshare"]({"participant_id": 200})
    await receiver.wait_for(lambda: any((f.width, f.height) == (1024, 576) for f in receiver.frames))
    mark = len(receiver.frames)
    await receiver.wait_for(lambda: sum(1 for f in receiver.frames[mark:] if f.width == 256) >= 2)
    share = [f for f in receiver.frames if (f.width, f.height) == (1024, 576)]
    assert {f.participant_id for f in share} == {200}  # the sharer's id
    assert read_stamp(share[-1].image()).stream_kind == StreamKind.RECALL_SCREENSHARE
    assert len(receiver.connections) == 3
    small = [f for f in receiver.frames[mark:] if f.width == 256]
    assert {(f.width, f.height) for f in small} == {(256, 144)}
    assert read_stamp(small[-1].image()).stream_id in (100, 200)

    await emulator.scenario_controls["stop_screenshare"]({"participant_id": 200})
    await receiver.wait_for(lambda: receiver.open_connections == 2)
    mark = len(receiver.frames)
    await receiver.wait_for(lambda: len(receiver.frames) >= mark + 4)
    assert {(f.width, f.height) for f in receiver.frames[mark + 2:]} == {(1280, 720)}
    await client.leave_call(bot_id)
    await client.aclose()


async def test_leave_call_closes_every_stream_with_1000_and_sends_nothing_after(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    client, bot_id = await start_bot(emulator, receiver.url, "gallery_view")
    await receiver.wait_for(lambda: len(receiver.connections) == 2 and len(receiver.frames) >= 2)
    await client.leave_call(bot_id)
    await receiver.wait_for(lambda: receiver.open_connections == 0, timeout_s=5)
    await client.wait_for_status(bot_id, "done", timeout_s=5)
    count = len(receiver.frames)
    assert {c.close_code for c in receiver.connections} == {1000}
    await client.get_bot(bot_id)
    assert len(receiver.frames) == count and len(receiver.attempts) == 2
    await client.aclose()


async def test_participant_leaving_closes_their_stream(emulator: RecallEmulator, receiver: VideoReceiver) -> None:
    client, bot_id = await start_bot(emulator, receiver.url, "gallery_view")
    await receiver.wait_for(lambda: receiver.open_connections == 2)
    await emulator.scenario_controls["remove_participant"]({"participant_id": 200})
    await receiver.wait_for(lambda: receiver.open_connections == 1)
    joined = await emulator.scenario_controls["add_participant"]({"name": "Cy New"})
    assert joined["joined"][0]["participant_id"] == 300
    await receiver.wait_for(lambda: 300 in receiver.by_participant())
    await client.leave_call(bot_id)
    await client.aclose()


async def test_frames_arrive_at_two_per_second(emulator: RecallEmulator, receiver: VideoReceiver) -> None:
    client, bot_id = await start_bot(emulator, receiver.url)
    await receiver.wait_for(lambda: len(receiver.frames) >= 7, timeout_s=8)
    await client.leave_call(bot_id)
    await client.aclose()
    report = receiver.report()[0]
    assert 1.6 <= report.fps <= 2.4
    gaps = [b.timestamp_ms - a.timestamp_ms for a, b in zip(receiver.frames, receiver.frames[1:], strict=False)]
    assert set(gaps) == {500}


async def test_audio_only_opens_no_video_connection(emulator: RecallEmulator, receiver: VideoReceiver) -> None:
    client, bot_id = await start_bot(emulator, receiver.url, "audio_only")
    await client.wait_for_status(bot_id, "in_call_recording", timeout_s=5)
    await client.leave_call(bot_id)
    await client.wait_for_status(bot_id, "done", timeout_s=5)
    await client.aclose()
    assert receiver.attempts == []


async def test_a_receiver_that_starts_late_is_reached_by_the_retries(emulator: RecallEmulator, free_port: int) -> None:
    port = free_port
    client, bot_id = await start_bot(emulator, f"ws://127.0.0.1:{port}/")
    await client.wait_for_status(bot_id, "in_call_recording", timeout_s=5)
    async with VideoReceiver(port=port) as late:
        await late.wait_for(lambda: len(late.frames) >= 1, timeout_s=5)
        assert late.connections[0].hello["bot_id"] == bot_id
        await client.leave_call(bot_id)
    retries = emulator.events.query(kind="outbound.retry")
    assert retries and all(e.detail["retry_in_s"] == 0.2 for e in retries)
    await client.aclose()


async def test_a_dropped_connection_is_reopened_with_a_new_hello_on_the_same_clock(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    receiver.drop_after = 2
    client, bot_id = await start_bot(emulator, receiver.url)
    await receiver.wait_for(lambda: len(receiver.connections) >= 2 and receiver.connections[1].messages >= 1)
    receiver.drop_after = None
    await client.leave_call(bot_id)
    await client.aclose()
    assert all(c.hello == {"protocol_version": 1, "bot_id": bot_id} for c in receiver.connections[:2])
    first = [f.timestamp_ms for f in receiver.frames if f.connection == 0]
    second = [f.timestamp_ms for f in receiver.frames if f.connection == 1]
    assert min(second) > max(first)  # one video clock per bot, kept across reconnects


@pytest.mark.parametrize("refused", [2])
async def test_refused_connections_are_retried_every_3_seconds_by_default(
    emulator_factory: EmulatorFactory, refused: int
) -> None:
    emu = await emulator_factory("recall")
    async with VideoReceiver() as receiver:
        await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
        receiver.refuse_next = refused
        client, bot_id = await start_bot(emu, receiver.url)
        await receiver.wait_for(lambda: len(receiver.frames) >= 1, timeout_s=12)
        await client.leave_call(bot_id)
        await client.aclose()
    intervals = [b - a for a, b in zip(receiver.attempts, receiver.attempts[1:], strict=False)][:refused]
    assert len(intervals) == refused
    assert all(2.8 <= gap <= 3.6 for gap in intervals), intervals


async def test_dropped_frames_fault_leaves_a_gap_in_timestamps(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    client, bot_id = await start_bot(emulator, receiver.url)
    await receiver.wait_for(lambda: len(receiver.frames) >= 1)
    emulator.faults.add({"match": {"stream": "*/video/speaker"}, "action": {"type": "drop"}, "count": 2})
    await receiver.wait_for(lambda: len(receiver.frames) >= 3, timeout_s=6)
    await client.leave_call(bot_id)
    await client.aclose()
    assert receiver.report()[0].gaps
    assert len(emulator.events.query(kind="fault.applied")) == 2


async def test_close_fault_closes_with_its_code_and_the_bot_reconnects(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    emulator.faults.add({"match": {"stream": "*/video/*"}, "action": {"type": "close", "code": 4001}, "count": 1})
    client, bot_id = await start_bot(emulator, receiver.url)
    await receiver.wait_for(lambda: len(receiver.connections) >= 2 and receiver.connections[1].messages >= 1)
    await client.leave_call(bot_id)
    await client.aclose()
    assert receiver.connections[0].close_code == 4001


async def test_corrupt_fault_keeps_the_header_and_damages_the_png(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    emulator.faults.add({"match": {"stream": "*/video/*"}, "action": {"type": "corrupt"}, "count": 1})
    client, bot_id = await start_bot(emulator, receiver.url)
    await receiver.wait_for(lambda: len(receiver.frames) >= 2)
    await client.leave_call(bot_id)
    await client.aclose()
    assert receiver.frames[0].participant_id == 0  # the header survives
    assert png_problems(receiver.frames[0].png)  # the PNG does not
    assert png_problems(receiver.frames[1].png) == []


async def test_disconnect_fault_drops_the_connection_and_the_bot_reconnects(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    client, bot_id = await start_bot(emulator, receiver.url)
    await receiver.wait_for(lambda: len(receiver.frames) >= 1)
    emulator.faults.add({"match": {"stream": "*/video/*"}, "action": {"type": "disconnect"}, "count": 1})
    await receiver.wait_for(lambda: len(receiver.connections) >= 2 and receiver.connections[1].messages >= 1)
    await client.leave_call(bot_id)
    await client.aclose()
    assert receiver.connections[0].close_code != 1000  # no close frame: the TCP connection was dropped


async def test_control_plane_state_shows_streams_and_pacing(emulator: RecallEmulator, receiver: VideoReceiver) -> None:
    client, bot_id = await start_bot(emulator, receiver.url, "gallery_view")
    await receiver.wait_for(lambda: len(receiver.frames) >= 4)
    streams = emulator.state()["bots"][bot_id]["streams"]
    assert {k: v["state"] for k, v in streams.items()} == {"video/100": "connected", "video/200": "connected"}
    assert emulator.pacing["video.send"].ticks >= 4
    await client.leave_call(bot_id)
    await client.aclose()
    json.dumps(emulator.state())
    assert time.monotonic() > 0


@pytest.mark.control_plane
async def test_control_plane_state_lists_the_live_stream_names(
    emulator: RecallEmulator, receiver: VideoReceiver
) -> None:
    client, bot_id = await start_bot(emulator, receiver.url, "gallery_view")
    await receiver.wait_for(lambda: receiver.open_connections == 2)
    async with aiohttp.ClientSession() as session, session.get(emulator.url() + "/_emulator/state") as resp:
        state = await resp.json()
    assert state["streams"] == [f"{bot_id}/video/100", f"{bot_id}/video/200"]
    await emulator.scenario_controls["remove_participant"]({"participant_id": 200})
    await receiver.wait_for(lambda: receiver.open_connections == 1)
    assert emulator.live_streams() == [f"{bot_id}/video/100"]
    await client.leave_call(bot_id)
    await client.wait_for_status(bot_id, "done", timeout_s=5)
    await client.aclose()
    assert emulator.live_streams() == []
