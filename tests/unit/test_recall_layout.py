"""Which streams a recording bot opens (the backend's stream plan) and which tile sizes they carry."""

from __future__ import annotations

import random
from typing import Any

import pytest

from emulators.kit.errors import FieldError
from emulators.recall.create_request import CreateRules, validate_create
from emulators.recall.meeting import Meeting, MeetingEvent, parse_scenario
from emulators.recall.model import BotBook, BotStatus, stream_plan
from emulators.recall.tiles import TileLayout

MEET = "https://meet.google.com/abc-defg-hij"
WS = "ws://127.0.0.1:9/"


def recording(body: dict[str, Any]) -> tuple[Any, Meeting]:
    bot = BotBook(0).create(validate_create({"meeting_url": MEET, **body}, CreateRules(), random.Random(0)), 1.0)
    for code in ("joining_call", "in_call_not_recording", "in_call_recording"):
        bot.record_status(code, 2.0)
    meeting = Meeting(parse_scenario({"participants": [{"id": 100}, {"id": 200}]}, seed=0))
    for pid in (100, 200):
        meeting.apply(MeetingEvent(0.0, "join", pid))
    return bot, meeting


def test_nothing_streams_before_the_bot_records() -> None:
    bot, meeting = recording({"recording_mode": "speaker_view", "real_time_media": {
        "websocket_video_destination_url": WS}})
    bot.status_changes[-1].code = BotStatus.IN_CALL_NOT_RECORDING
    assert stream_plan(bot, meeting, audio_separate_streams=False) == {}


def test_speaker_view_is_one_stream_with_id_zero() -> None:
    bot, meeting = recording({"recording_mode": "speaker_view", "real_time_media": {
        "websocket_video_destination_url": WS}})
    plan = stream_plan(bot, meeting, audio_separate_streams=False)
    assert list(plan) == ["video/speaker"] and plan["video/speaker"].participant_id == 0


def test_gallery_is_one_stream_per_participant_plus_one_per_share() -> None:
    bot, meeting = recording({"recording_mode": "gallery_view", "real_time_media": {
        "websocket_video_destination_url": WS}})
    meeting.apply(MeetingEvent(0.0, "screenshare_on", 200))
    plan = stream_plan(bot, meeting, audio_separate_streams=False)
    assert sorted(plan) == ["video/100", "video/200", "video/screenshare-200"]
    assert plan["video/screenshare-200"].participant_id == 200  # the sharer's id
    meeting.apply(MeetingEvent(0.0, "leave", 200))
    assert sorted(stream_plan(bot, meeting, audio_separate_streams=False)) == ["video/100"]


def test_audio_only_opens_no_video() -> None:
    bot, meeting = recording({"recording_mode": "audio_only", "real_time_media": {
        "websocket_video_destination_url": WS, "websocket_audio_destination_url": WS}})
    assert list(stream_plan(bot, meeting, audio_separate_streams=False)) == ["audio"]


def test_separate_audio_is_one_stream_per_present_participant() -> None:
    bot, meeting = recording({"real_time_media": {"websocket_audio_destination_url": WS}})
    assert sorted(stream_plan(bot, meeting, audio_separate_streams=True)) == ["audio/100", "audio/200"]


@pytest.mark.parametrize(("layout", "separate"), [("gallery_view_v2", True), ("speaker_view", False)])
def test_separate_png_needs_gallery_view_v2(layout: str, separate: bool) -> None:
    bot, meeting = recording({"recording_config": {
        "video_mixed_layout": layout, "video_separate_png": {},
        "realtime_endpoints": [{"type": "websocket", "url": WS, "events": ["video_separate_png.data"]}]}})
    [planned] = stream_plan(bot, meeting, audio_separate_streams=False).values()
    assert planned.kind == "realtime" and planned.separate_png is separate


def test_rtmp_mixes_the_gallery_unless_speaker_view() -> None:
    bot, meeting = recording({"recording_mode": "gallery_view", "real_time_media": {
        "rtmp_destination_url": "rtmp://127.0.0.1/live/x"}})
    assert stream_plan(bot, meeting, audio_separate_streams=False)["rtmp"].gallery


def test_participant_tiles_shrink_while_a_screenshare_is_on() -> None:
    _bot, meeting = recording({})
    layout = TileLayout("seed")
    assert layout.size("webcam", meeting) == (1280, 720)
    meeting.apply(MeetingEvent(0.0, "screenshare_on", 200))
    assert layout.size("webcam", meeting) == (256, 144)
    assert layout.size("screenshare", meeting) == (1024, 576)
    assert layout.share(meeting, 100) is None and layout.share(meeting, 200) is not None


def test_loop_must_be_a_boolean() -> None:
    with pytest.raises(FieldError) as info:
        parse_scenario({"loop": "yes", "participants": []}, seed=0)
    assert info.value.field == "scenario.loop"


def test_a_webhook_realtime_endpoint_is_planned_as_a_post_queue() -> None:
    bot, meeting = recording({"recording_config": {"participant_events": {}, "realtime_endpoints": [
        {"type": "webhook", "url": "https://example.com/rt", "events": ["participant_events.join"]}]}})
    [planned] = stream_plan(bot, meeting, audio_separate_streams=False).values()
    assert (planned.kind, planned.url) == ("realtime_webhook", "https://example.com/rt")
