"""The bot's rtmp_destination_url output, received by a real RTMP server (nginx-rtmp) and read back with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from clients.recall import RecallClient
from clients.stamp import StreamKind, read_stamp
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.recall.device import DEV_API_KEY, RecallEmulator
from tests.conftest import EmulatorFactory
from tests.interop.rtmp_server import rtmp_server

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

pytestmark = [pytest.mark.interop, pytest.mark.xdist_group("recall-rtmp")]

MEET = "https://meet.google.com/rtm-pout-put"
SCENARIO = {"name": "rtmp", "meeting_urls": [MEET], "duration_s": 1000,
            "participants": [{"id": 100, "is_host": True}, {"id": 200}],
            "speaking": [{"participant": 100, "start_s": 0, "end_s": 900}]}


def read_flv(path: Path) -> tuple[list[str], list[object], int]:
    with av.open(str(path)) as container:
        kinds = sorted(s.codec_context.name for s in container.streams)
        frames = []
        audio = 0
        for frame in container.decode(video=0, audio=0):
            if isinstance(frame, av.VideoFrame):
                frames.append(frame.to_ndarray(format="rgb24"))
            else:
                audio += frame.samples
        return kinds, frames, audio


@pytest.mark.parametrize("layout", ["speaker_view", "gallery_view"])
async def test_rtmp_output_is_h264_and_aac_in_flv_with_readable_stamps(layout: str) -> None:
    settings = {"port": 0, "rtmp_width": 640, "rtmp_height": 360, "rtmp_fps": 15}
    with rtmp_server() as server:
        async with (
            RecallEmulator(egress=EGRESS, settings=settings) as emu,
            RecallClient(DEV_API_KEY, emu.url()) as client,
        ):
            await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
            bot = await client.create_bot(MEET, recording_mode=layout,
                                          real_time_media={"rtmp_destination_url": server.url(key=layout)})
            await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
            media = emu.service.lives[bot["id"]].media
            assert media is not None
            await media.wait_for(lambda: media.rtmp is not None and media.rtmp.frames_sent >= 20, timeout_s=10)
            await client.leave_call(bot["id"])
            await client.wait_for_status(bot["id"], "done", timeout_s=10)
        kinds, frames, audio_samples = read_flv(server.wait_for_recording(layout))
    assert kinds == ["aac", "h264"]
    assert len(frames) >= 15 and frames[0].shape == (360, 640, 3)
    assert audio_samples > 0
    stamps = [read_stamp(f) for f in frames[-5:]]
    assert {s.stream_kind for s in stamps} == {StreamKind.RECALL_MIXED}
    indexes = [s.frame_index for s in stamps]
    assert indexes == sorted(indexes)
    if layout == "speaker_view":
        assert stamps[-1].stream_id == 100  # the active speaker


async def test_rtmp_push_reaches_an_address_outside_the_defaults_when_the_allowlist_lists_it() -> None:
    # ::ffff:127.0.0.1 is loopback through an IPv4-mapped address: outside the default allowlist, still local.
    egress = EgressPolicy(allow=[*DEFAULT_ALLOWED, "::ffff:127.0.0.0/104"])
    settings = {"port": 0, "rtmp_width": 320, "rtmp_height": 180, "rtmp_fps": 10}
    with rtmp_server() as server:
        async with RecallEmulator(settings=settings, egress=egress) as emu, \
                RecallClient(DEV_API_KEY, emu.url()) as client:
            await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
            url = server.url(key="widened").replace("127.0.0.1", "[::ffff:127.0.0.1]")
            bot = await client.create_bot(MEET, real_time_media={"rtmp_destination_url": url})
            await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
            media = emu.service.lives[bot["id"]].media
            assert media is not None
            await media.wait_for(lambda: media.rtmp is not None and media.rtmp.frames_sent >= 10, timeout_s=10)
            await client.leave_call(bot["id"])
            await client.wait_for_status(bot["id"], "done", timeout_s=10)
        _kinds, frames, _audio = read_flv(server.wait_for_recording("widened"))
    assert frames


async def test_a_close_fault_drops_the_rtmp_connection_and_the_push_reconnects(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("recall", settings={"rtmp_width": 320, "rtmp_height": 180, "rtmp_fps": 10,
                                                     "retry_interval_s": 0.2})
    await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
    with rtmp_server() as server:
        async with RecallClient(DEV_API_KEY, emu.url()) as client:
            bot = await client.create_bot(MEET, real_time_media={"rtmp_destination_url": server.url(key="fault")})
            first = await emu.events.wait_for("stream.started", timeout=10)
            emu.faults.add({"match": {"stream": "*/rtmp"}, "action": {"type": "close", "code": 4001}, "count": 1})
            applied = await emu.events.wait_for("fault.applied", timeout=10)
            again = await emu.events.wait_for("stream.started", lambda e: e.detail["connection"] == 2, timeout=10)
            await client.leave_call(bot["id"])
            await client.wait_for_status(bot["id"], "done", timeout_s=10)
    assert first.detail["connection"] == 1 and applied.detail["stream"].endswith("/rtmp")
    assert again.id > applied.id and emu.events.query(kind="outbound.retry")
