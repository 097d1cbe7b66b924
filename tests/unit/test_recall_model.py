"""Recall bot rules: create validation, both API generations, leave_call by status, rate limits, idempotency."""

from __future__ import annotations

import random

import pytest
from multidict import MultiDict

from emulators.recall.create_request import CreateRules, parse_meeting_url, validate_create
from emulators.recall.errors import CommandRejected, IdempotencyConflict, ValidationFailed
from emulators.recall.model import (
    BotBook,
    IdempotencyBook,
    RateLimiter,
    StoredResponse,
    parse_list_query,
)

MEET = "https://meet.google.com/abc-defg-hij"


def create(body: dict, **rules: bool):
    return validate_create(body, CreateRules(**rules), random.Random(0))


def errors_of(body: dict, **rules: bool) -> dict:
    with pytest.raises(ValidationFailed) as info:
        create(body, **rules)
    return info.value.errors


@pytest.mark.parametrize(
    ("url", "platform", "meeting_id"),
    [
        (MEET, "google_meet", "abc-defg-hij"),
        ("https://us02web.zoom.us/j/81234567890?pwd=secret", "zoom", "81234567890"),
        ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_x/0", "microsoft_teams", None),
        ("https://acme.webex.com/meet/jane", "webex", "jane"),
    ],
)
def test_platform_comes_from_the_meeting_url(url: str, platform: str, meeting_id: str | None) -> None:
    parsed = parse_meeting_url(url)
    assert parsed.platform == platform
    if meeting_id:
        assert parsed.meeting_id == meeting_id


def test_zoom_meeting_url_object_carries_the_password() -> None:
    assert parse_meeting_url("https://zoom.us/j/1234567890?pwd=pw").as_json() == {
        "meeting_id": "1234567890", "meeting_password": "pw", "platform": "zoom"}


TEAMS_BUSINESS = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context="
                  "%7b%22Tid%22%3a%22tenant-1%22%2c%22Oid%22%3a%22organizer-2%22%7d")


@pytest.mark.parametrize(("url", "expected"), [
    (TEAMS_BUSINESS, {"meeting_id": None, "meeting_password": None, "organizer_id": "organizer-2",
                      "tenant_id": "tenant-1", "message_id": "0", "thread_id": "19:meeting_abc@thread.v2",
                      "business_meeting_id": None, "business_meeting_password": None, "platform": "microsoft_teams"}),
    ("https://teams.live.com/meet/9876543210?p=secret",
     {"meeting_id": "9876543210", "meeting_password": "secret", "organizer_id": None, "tenant_id": None,
      "message_id": None, "thread_id": None, "business_meeting_id": None, "business_meeting_password": None,
      "platform": "microsoft_teams"}),
    ("https://teams.microsoft.com/meet/2345678901?p=pw",
     {"meeting_id": None, "meeting_password": None, "organizer_id": None, "tenant_id": None, "message_id": None,
      "thread_id": None, "business_meeting_id": "2345678901", "business_meeting_password": "pw",
      "platform": "microsoft_teams"}),
    ("https://acme.webex.com/acme/j.php?MTID=m0123abc",
     {"meeting_subdomain": "acme", "meeting_mtid": "m0123abc", "meeting_path": "acme/j.php", "platform": "webex"}),
    ("https://acme.webex.com/meet/jane",
     {"meeting_subdomain": "acme", "meeting_mtid": None, "meeting_path": "meet/jane", "platform": "webex"}),
    ("https://meet.goto.com/680504437", {"meeting_id": "680504437", "platform": "goto_meeting"}),
    ("https://global.gotomeeting.com/join/680504437", {"meeting_id": "680504437", "platform": "goto_meeting"}),
    ("https://app.goto.com/meeting/680504437", {"meeting_id": "680504437", "platform": "goto_meeting"}),
])
def test_meeting_url_objects_follow_the_meeting_urls_page(url: str, expected: dict) -> None:
    assert parse_meeting_url(url).as_json() == expected


@pytest.mark.parametrize("url", ["https://meet.goto.com/12345", "https://teams.live.com/meet/",
                                 "https://teams.microsoft.com/l/other/x"])
def test_malformed_goto_and_teams_links_are_rejected(url: str) -> None:
    assert "GoTo Meeting" in errors_of({"meeting_url": url})["meeting_url"][0]


def test_missing_meeting_url_is_a_required_field_error() -> None:
    assert errors_of({}) == {"meeting_url": ["This field is required."]}


def test_unrecognised_meeting_url_is_rejected() -> None:
    assert "meeting_url" in errors_of({"meeting_url": "https://example.com/room"})


def test_bot_name_longer_than_100_characters_is_rejected() -> None:
    assert errors_of({"meeting_url": MEET, "bot_name": "x" * 101})["bot_name"][0].startswith("Ensure this field")


def test_bot_name_defaults_to_meeting_notetaker() -> None:
    assert create({"meeting_url": MEET}).bot_name == "Meeting Notetaker"


def test_automatic_leave_below_its_minimum_names_the_nested_field() -> None:
    errors = errors_of({"meeting_url": MEET, "automatic_leave": {"waiting_room_timeout": 5}})
    message = "Ensure this value is greater than or equal to 30."
    assert errors == {"automatic_leave": {"waiting_room_timeout": [message]}}


def test_automatic_leave_defaults_are_filled_in() -> None:
    spec = create({"meeting_url": MEET, "automatic_leave": {"everyone_left_timeout": 5}})
    assert spec.automatic_leave["everyone_left_timeout"] == 5
    assert spec.automatic_leave["waiting_room_timeout"] == 1200


def test_bad_recording_mode_lists_the_allowed_values() -> None:
    message = errors_of({"meeting_url": MEET, "recording_mode": "mosaic"})["recording_mode"][0]
    assert "speaker_view" in message and "gallery_view_v2" in message


def test_legacy_fields_make_a_v110_bot_with_defaults() -> None:
    spec = create({"meeting_url": MEET, "real_time_media": {"websocket_video_destination_url": "ws://127.0.0.1:1"}})
    assert spec.generation == "v1.10"
    assert spec.recording_mode == "speaker_view"
    assert spec.real_time_media["websocket_speaker_timeline_exclude_null_speaker"] is True


def test_video_destination_must_be_a_websocket_url() -> None:
    errors = errors_of({"meeting_url": MEET, "real_time_media": {"websocket_video_destination_url": "http://x"}})
    assert list(errors["real_time_media"]) == ["websocket_video_destination_url"]


def test_reject_legacy_fields_answers_this_field_is_not_allowed_per_field() -> None:
    errors = errors_of({"meeting_url": MEET, "recording_mode": "gallery_view", "transcription_options": {
        "provider": "deepgram"}}, reject_legacy_fields=True)
    assert errors == {"recording_mode": ["This field is not allowed."],
                      "transcription_options": ["This field is not allowed."]}


def test_mixing_generations_is_rejected_even_without_the_flag() -> None:
    errors = errors_of({"meeting_url": MEET, "recording_mode": "gallery_view", "recording_config": {}})
    assert errors == {"recording_mode": ["This field is not allowed."]}


def test_recording_config_makes_a_v111_bot_with_endpoint_ids() -> None:
    spec = create({"meeting_url": MEET, "recording_config": {
        "video_mixed_layout": "gallery_view_v2", "video_separate_png": {},
        "realtime_endpoints": [{"type": "websocket", "url": "ws://127.0.0.1:9/?token=a",
                                "events": ["video_separate_png.data", "participant_events.join"]}]}})
    assert spec.generation == "v1.11"
    assert spec.endpoints[0].url.endswith("?token=a")
    assert len(spec.endpoints[0].id) == 36


def test_event_without_its_artifact_is_rejected() -> None:
    errors = errors_of({"meeting_url": MEET, "recording_config": {"realtime_endpoints": [
        {"type": "websocket", "url": "ws://127.0.0.1:9/", "events": ["audio_mixed_raw.data"]}]}})
    assert "audio_mixed_raw" in errors["recording_config"]["realtime_endpoints"][0]["events"][0]


def test_webhook_endpoint_refuses_media_events_naming_the_websocket_alternative() -> None:
    errors = errors_of({"meeting_url": MEET, "recording_config": {"audio_mixed_raw": {}, "realtime_endpoints": [
        {"type": "webhook", "url": "https://example.com/rt", "events": ["audio_mixed_raw.data"]}]}})
    message = errors["recording_config"]["realtime_endpoints"][0]["events"][0]
    assert "audio_mixed_raw.data" in message and "websocket" in message


def test_webhook_endpoint_accepts_participant_and_transcript_events() -> None:
    spec = create({"meeting_url": MEET, "recording_config": {"participant_events": {}, "transcript": {},
                   "realtime_endpoints": [{"type": "webhook", "url": "https://example.com/rt",
                                           "events": ["participant_events.chat_message", "transcript.data"]}]}})
    assert spec.endpoints[0].type == "webhook"


def test_rtmp_endpoint_needs_video_mixed_flv() -> None:
    errors = errors_of({"meeting_url": MEET, "recording_config": {"realtime_endpoints": [
        {"type": "rtmp", "url": "rtmp://127.0.0.1/live/x", "events": []}]}})
    assert "video_mixed_flv" in errors["recording_config"]["realtime_endpoints"][0]["type"][0]


def test_nested_endpoint_config_is_accepted_unless_strict() -> None:
    body = {"meeting_url": MEET, "recording_config": {"realtime_endpoints": [
        {"type": "websocket", "config": {"url": "ws://127.0.0.1:9/", "events": ["participant_events.join"]}}]}}
    assert create(body).endpoints[0].nested
    assert "config" in errors_of(body, strict_endpoint_shape=True)["recording_config"]["realtime_endpoints"][0]


def test_separate_png_without_gallery_v2_is_accepted_unless_strict_layout() -> None:
    body = {"meeting_url": MEET, "recording_config": {"video_separate_png": {}}}
    assert create(body).generation == "v1.11"
    assert "video_separate_png" in errors_of(body, strict_layout_validation=True)["recording_config"]


# A legal walk through the state machine to each status the leave_call tests need.
PATH_TO = {"call_ended": ["call_ended"], "done": ["call_ended", "done"], "fatal": ["fatal"]}


def _bot(status_path: list[str]):
    book = BotBook(0)
    bot = book.create(create({"meeting_url": MEET}), 1000.0)
    for code in status_path:
        bot.record_status(code, 1001.0)
    return bot


def test_leave_call_is_refused_before_the_bot_starts() -> None:
    with pytest.raises(CommandRejected) as info:
        _bot([]).check_can_leave()
    assert info.value.code == "cannot_command_unstarted_bot"


@pytest.mark.parametrize("path", [["joining_call"], ["joining_call", "in_call_not_recording", "in_call_recording"]])
def test_leave_call_is_allowed_while_joining_or_in_call(path: list[str]) -> None:
    _bot(path).check_can_leave()


@pytest.mark.parametrize("last", ["call_ended", "done", "fatal"])
def test_leave_call_is_refused_after_the_bot_completed(last: str) -> None:
    with pytest.raises(CommandRejected) as info:
        _bot(["joining_call", *PATH_TO[last]]).check_can_leave()
    assert info.value.code == "cannot_command_completed_bot"


def test_status_changes_never_go_back_in_time() -> None:
    bot = _bot([])
    bot.record_status("joining_call", 10.0)  # a clock step backwards
    assert bot.status_changes[1].created_at >= bot.status_changes[0].created_at


def test_v110_bot_echoes_request_objects_and_v111_bot_shows_meeting_url_object() -> None:
    book = BotBook(0)
    legacy = book.create(create({"meeting_url": MEET, "recording_mode": "gallery_view"}), 1.0).as_json("http://h")
    assert legacy["meeting_url"] == MEET and legacy["recording_mode"] == "gallery_view"
    assert legacy["video_url"] is None and legacy["status_changes"][0]["sub_code"] is None
    current = book.create(create({"meeting_url": MEET, "recording_config": {}}), 1.0).as_json("http://h")
    assert current["meeting_url"] == {"meeting_id": "abc-defg-hij", "platform": "google_meet"}
    assert "meeting_participants" not in current


def test_bot_ids_are_seeded_uuids() -> None:
    assert BotBook(7).new_id() == BotBook(7).new_id()


def test_rate_limiter_answers_retry_after_when_the_minute_is_full() -> None:
    limiter = RateLimiter()
    for i in range(60):
        assert limiter.hit("k", "create", 60, 100.0 + i * 0.1) is None
    assert limiter.hit("k", "create", 60, 106.0) == 54
    assert limiter.hit("other", "create", 60, 106.0) is None
    assert limiter.hit("k", "create", 60, 160.01) is None  # the oldest hit left the window


def test_idempotency_replays_completed_and_refuses_in_flight_or_changed_requests() -> None:
    book = IdempotencyBook()
    fp = book.fingerprint("POST", "/api/v1/bot/", b"{}")
    assert book.begin("k", "idem", fp, 0.0) is None
    with pytest.raises(IdempotencyConflict, match="in progress"):
        book.begin("k", "idem", fp, 1.0)
    book.finish("k", "idem", StoredResponse(201, {"id": "x"}))
    assert book.begin("k", "idem", fp, 2.0).body == {"id": "x"}
    with pytest.raises(IdempotencyConflict, match="different request"):
        book.begin("k", "idem", book.fingerprint("POST", "/api/v1/bot/", b"{ }"), 3.0)
    assert book.begin("k", "idem", fp, 3700.0) is None  # an hour later the key is fresh


def test_list_query_accepts_repeated_bracketed_and_comma_forms() -> None:
    query = parse_list_query(MultiDict([("status", "done"), ("status[]", "fatal"), ("platform", "zoom,webex"),
                                        ("metadata__team", "a")]))
    assert query.statuses == ("done", "fatal")
    assert query.platforms == ("zoom", "webex")
    assert query.metadata == {"team": "a"}


def test_list_query_names_bad_parameters() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_list_query(MultiDict([("page", "0"), ("join_at_after", "yesterday"), ("platform", "skype")]))
    assert set(info.value.errors) == {"page", "join_at_after", "platform"}
