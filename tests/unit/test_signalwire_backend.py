"""SignalWire backend rules, pure: status transitions, error shapes, quirks, conference events, key presses, speech."""

from __future__ import annotations

import pytest

from emulators.signalwire.errors import (
    AuthenticationFailed,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    RateLimited,
    SignalWireError,
    ValidationFailed,
)
from emulators.signalwire.model import (
    CONFERENCE_TRANSITIONS,
    RECORDING_TRANSITIONS,
    SHUTDOWN,
    STREAM_TRANSITIONS,
    Conference,
    ConferenceStatus,
    Participant,
    Recording,
    RecordingStatus,
    SignalWireBackend,
    StreamStatus,
    stream_end_event,
    validate_dtmf,
    validate_stream_request,
)
from emulators.signalwire.paging import page_request

NOW = 1_700_000_000.0
WSS = {"Url": "wss://h/x"}


def _backend(**settings) -> tuple[SignalWireBackend, Conference]:
    backend = SignalWireBackend(accounts={"acct": "token"}, **settings)
    conference = backend.add_conference(Conference("conf", "acct", "Room", NOW, NOW))
    backend.add_participant(conference, Participant("call-1", "conf", "acct", NOW, NOW), NOW)
    return backend, conference


# ----- transitions -------------------------------------------------------------------------------------------
def test_every_status_has_a_row_in_its_transition_table_and_final_states_lead_nowhere():
    assert set(STREAM_TRANSITIONS) == set(StreamStatus) and not STREAM_TRANSITIONS[StreamStatus.STOPPED]
    assert set(CONFERENCE_TRANSITIONS) == set(ConferenceStatus)
    assert not CONFERENCE_TRANSITIONS[ConferenceStatus.COMPLETED]
    assert set(RECORDING_TRANSITIONS) == set(RecordingStatus)
    assert all(not RECORDING_TRANSITIONS[s] for s in ("completed", "stopped", "absent"))


def test_a_stream_goes_queued_in_progress_stopped_and_an_illegal_change_raises():
    backend, conference = _backend()
    stream = backend.create_stream(conference, validate_stream_request(WSS), NOW)
    assert stream.status == StreamStatus.QUEUED and stream.as_json()["status"] == "queued"
    assert backend.mark_in_progress(stream, NOW + 1) is True and stream.status == "in-progress"
    assert backend.mark_in_progress(stream, NOW + 2) is False  # only a queued stream starts
    assert backend.mark_stopped(stream, NOW + 3, "general_error") is True
    assert (stream.status, stream.stream_error, stream.date_updated) == ("stopped", "general_error", NOW + 3)
    assert backend.mark_stopped(stream, NOW + 4) is False and stream.stream_error == "general_error"


def test_an_illegal_transition_raises_instead_of_changing_the_status():
    backend, conference = _backend()
    person = conference.participants["call-1"]
    backend.remove_participant(conference, person, NOW + 1)
    with pytest.raises(IllegalTransition, match="participant call-1 cannot go from completed to completed") as bad:
        backend.remove_participant(conference, person, NOW + 2)
    assert bad.value.status == 409 and person.date_updated == NOW + 1


def test_a_queued_stream_may_stop_without_ever_starting():
    backend, conference = _backend()
    stream = backend.create_stream(conference, validate_stream_request(WSS), NOW)
    assert backend.stop_stream(stream, {"Status": "stopped"}, NOW) is True and stream.status == "stopped"


def test_ending_a_conference_completes_people_and_live_recordings_and_stops_every_live_stream():
    backend, conference = _backend()
    live = backend.create_stream(conference, validate_stream_request(WSS), NOW)
    gone = backend.create_stream(conference, validate_stream_request(WSS), NOW)
    backend.mark_stopped(gone, NOW)
    conference.recordings["r1"] = Recording("r1", "acct", "conf", NOW, NOW, NOW, status=RecordingStatus.PAUSED)
    conference.recordings["r2"] = Recording("r2", "acct", "conf", NOW, NOW, NOW, status=RecordingStatus.STOPPED)
    ended = backend.end_conference(conference, NOW + 9)
    assert ended == [live] and live.status == "stopped" and conference.status == "completed"
    assert conference.participants["call-1"].status == "completed"
    assert conference.recordings["r1"].status == "completed" and conference.recordings["r1"].end_time == NOW + 9
    assert conference.recordings["r2"].status == "stopped"
    assert backend.end_conference(conference, NOW + 10) == []  # once


def test_a_finished_recording_cannot_change_and_a_live_one_pauses_and_stops():
    backend, _ = _backend()
    recording = Recording("r1", "acct", "conf", NOW, NOW, NOW)
    backend.update_recording(recording, {"Status": "paused"}, NOW + 1)
    assert recording.status == "paused"
    backend.update_recording(recording, {"Status": "stopped"}, NOW + 2)
    assert recording.status == "stopped" and recording.end_time == NOW + 2
    with pytest.raises(ValidationFailed, match="is stopped and cannot change"):
        backend.update_recording(recording, {"Status": "in-progress"}, NOW + 3)


def test_a_conference_without_a_starter_stays_init_until_someone_starts_it():
    backend = SignalWireBackend(accounts={"acct": "token"})
    conference = backend.add_conference(Conference("conf", "acct", "Room", NOW, NOW))
    quiet = Participant("call-1", "conf", "acct", NOW, NOW, start_conference_on_enter=False)
    assert backend.add_participant(conference, quiet, NOW) is False and conference.status == "init"
    assert backend.add_participant(conference, Participant("call-2", "conf", "acct", NOW, NOW), NOW + 2) is True
    assert conference.status == "in-progress" and conference.media_ms(NOW + 2.5) == 500


def test_no_one_joins_an_ended_conference():
    backend, conference = _backend()
    backend.end_conference(conference, NOW)
    with pytest.raises(InvalidRequest) as refused:
        backend.add_participant(conference, Participant("call-2", "conf", "acct", NOW, NOW), NOW)
    assert refused.value.status == 409


# ----- errors carry their wire shape ---------------------------------------------------------------------------
def test_every_domain_error_carries_its_status_code_and_body_shape():
    cases: list[tuple[SignalWireError, int, dict]] = [
        (AuthenticationFailed(), 401, {"code": 20003, "message": "Authentication failed", "status": 401}),
        (NotFound("Conference x"), 404, {"code": 20404, "message": "The requested resource /p was not found"}),
        (InvalidRequest("bad", status=400), 400, {"code": 400, "message": "bad", "status": 400}),
        (RateLimited(), 429, {"code": 20429, "message": "Too Many Requests", "status": 429}),
    ]
    for error, status, subset in cases:
        body = error.body("/p")
        assert error.status == status and subset.items() <= body.items() and "more_info" in body
    assert ValidationFailed(["a", "b"]).body("/p") == {"errors": ["a", "b"]}
    assert AuthenticationFailed.headers == {"WWW-Authenticate": 'Basic realm="SignalWire"'}
    assert RateLimited.headers == {"Retry-After": "1"}


def test_dtmf_validation_names_the_offending_field():
    assert validate_dtmf("#", 40) == ("#", 40)
    for digit, duration, field in (("x", 200, "digit"), ("1", 39, "duration_ms"), ("1", True, "duration_ms")):
        with pytest.raises(InvalidRequest) as refused:
            validate_dtmf(digit, duration)
        assert refused.value.field == field and refused.value.status == 400


# ----- quirks ---------------------------------------------------------------------------------------------------
def test_the_rate_limit_counts_requests_per_account_over_a_sliding_second():
    backend, _ = _backend(rate_limit=2)
    backend.admit("acct", 10.0)
    backend.admit("acct", 10.5)
    with pytest.raises(RateLimited):
        backend.admit("acct", 10.9)
    backend.admit("other", 10.9)  # per account
    backend.admit("acct", 11.0)  # the first request left the window
    unlimited, _ = _backend()
    for i in range(100):
        unlimited.admit("acct", 10.0 + i / 1000)


def test_an_invalid_create_is_refused_or_under_quirk_5_accepted_queued_with_its_stream_error():
    backend, conference = _backend()
    with pytest.raises(ValidationFailed):
        backend.accept_stream(conference, {"Url": "ws://h/x", "StatusCallback": "http://cb/x"}, NOW)
    assert not conference.streams
    lenient, conference = _backend(async_validation_errors=True)
    stream, error = lenient.accept_stream(conference, {"Url": "ws://h/x", "StatusCallback": "http://cb/x"}, NOW)
    assert error == "invalid_url" and stream.status == "queued" and stream.request.status_callback == "http://cb/x"
    valid, error = lenient.accept_stream(conference, WSS, NOW)
    assert error is None and valid.request.url == "wss://h/x"


def test_account_settings_allow_ws_and_disable_codecs():
    backend, conference = _backend(allow_ws_scheme=True, disabled_codecs=("PCMA",))
    stream, error = backend.accept_stream(conference, {"Url": "ws://h/x"}, NOW)
    assert error is None and stream.request.url == "ws://h/x"
    with pytest.raises(ValidationFailed) as refused:
        backend.accept_stream(conference, {"Url": "wss://h/x", "StreamCodec": "PCMA"}, NOW)
    assert refused.value.stream_error == "codec_error"


def test_the_streams_call_sid_follows_quirk_19():
    for mode, expected in (("conference", "conf"), ("empty", ""), ("first_participant", "call-1")):
        backend, conference = _backend(conference_call_sid=mode)
        assert backend.call_sid_for(conference) == expected


def test_a_conference_limits_its_live_streams_when_configured():
    backend, conference = _backend(max_streams_per_conference=1)
    first = backend.create_stream(conference, validate_stream_request(WSS), NOW)
    with pytest.raises(ValidationFailed, match="limit 1"):
        backend.create_stream(conference, validate_stream_request(WSS), NOW)
    backend.mark_stopped(first, NOW)
    backend.create_stream(conference, validate_stream_request(WSS), NOW)


# ----- conference events ------------------------------------------------------------------------------------
def test_participant_updates_report_mute_and_hold_changes_only_when_they_change():
    backend, conference = _backend()
    person = conference.participants["call-1"]
    assert backend.update_participant(person, {"Muted": "true", "Hold": "true"}, NOW) == [
        "participant-mute", "participant-hold"]
    assert backend.update_participant(person, {"Muted": "true"}, NOW) == []
    assert backend.update_participant(person, {"Muted": "false", "Hold": "false"}, NOW) == [
        "participant-unmute", "participant-unhold"]


def test_a_conference_wants_only_the_events_it_subscribed_to():
    conference = Conference("conf", "acct", "Room", NOW, NOW)
    assert not conference.wants("conference-start")  # no status callback at all
    conference.status_callback = "http://127.0.0.1:1/cb"
    conference.status_callback_events = frozenset({"conference-start"})
    assert conference.wants("conference-start") and not conference.wants("participant-join")


def test_scenario_key_presses_fire_in_the_chunk_that_contains_them():
    conference = Conference("conf", "acct", "Room", NOW, NOW, dtmf_timeline=[(500, "#", 200), (519, "1", 100)])
    assert conference.dtmf_due(480) == []
    assert conference.dtmf_due(500) == [("#", 200), ("1", 100)]
    assert conference.dtmf_due(520) == []


def test_speech_changes_follow_the_timeline_once_per_change():
    backend, conference = _backend()
    person = conference.participants["call-1"]
    person.speaking = [(100, 300)]
    heard: dict[str, bool] = {}
    assert conference.speech_changes(0, heard) == []
    assert conference.speech_changes(100, heard) == [("participant-speech-start", person)]
    assert conference.speech_changes(200, heard) == []
    backend.set_speaker(person, False)
    assert conference.speech_changes(250, heard) == [("participant-speech-stop", person)]


def test_a_started_streams_end_reports_an_error_or_a_stop_but_nothing_when_the_emulator_shuts_it_down():
    assert stream_end_event("fault close", "general_error") == "stream-error"
    assert stream_end_event("backlog", "general_error") == "stream-error"
    for reason in ("api", "conference", "client closed"):
        assert stream_end_event(reason, None) == "stream-stopped"
    assert stream_end_event(SHUTDOWN, None) is None


def test_webhooks_are_signed_with_the_accounts_token_over_the_url_and_sorted_parameters():
    import base64
    import hashlib
    import hmac

    backend = SignalWireBackend(accounts={"acct": "token", "other": "token2"})
    url = "https://hooks.example.com/status?tenant=a"
    headers = backend.webhook_headers("acct", url, {"StreamSid": "MZ1", "AccountSid": "acct"})
    expected = base64.b64encode(hmac.new(b"token", (url + "AccountSidacctStreamSidMZ1").encode(),
                                         hashlib.sha1).digest()).decode()
    assert headers == {"X-SignalWire-Signature": expected, "X-Twilio-Signature": expected}
    assert backend.webhook_headers("other", url, {"StreamSid": "MZ1", "AccountSid": "acct"}) != headers


def test_a_participant_update_needs_a_field_and_coaching_names_its_call_in_the_same_request():
    backend, conference = _backend()
    person = conference.participants["call-1"]
    with pytest.raises(InvalidRequest, match="request body is required"):
        backend.update_participant(person, {}, NOW)
    coach = "3b1e7a9c-2d4f-4a6b-8c0e-1f3a5b7c9d2e"
    backend.update_participant(person, {"Coaching": "true", "CallSidToCoach": coach}, NOW)
    with pytest.raises(InvalidRequest, match="CallSidToCoach"):
        backend.update_participant(person, {"Coaching": "true"}, NOW)  # a coach set earlier does not count


def test_empty_paging_tokens_and_date_filters_are_no_filter():
    backend, _ = _backend()
    assert [c.sid for c in backend.list_conferences("acct", {"DateCreated": "", "DateUpdated<": ""})] == ["conf"]
    assert page_request({"PageToken": "", "Page": ""}) == page_request({})
