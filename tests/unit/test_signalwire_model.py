"""SignalWire model rules: stream validation, stream lookup and stop, conference lifecycle, paging (pure)."""

from __future__ import annotations

import pytest

from emulators.signalwire.errors import AuthenticationFailed, InvalidRequest, NotFound, ValidationFailed
from emulators.signalwire.model import (
    Conference,
    Participant,
    SignalWireBackend,
    rfc2822,
    validate_stream_request,
)
from emulators.signalwire.paging import page_envelope, page_request

NOW = 1_700_000_000.0


def test_dates_are_rfc_2822_with_an_english_month():
    assert rfc2822(1537905600) == "Tue, 25 Sep 2018 20:00:00 +0000"


@pytest.mark.parametrize(
    ("fields", "stream_error"),
    [({}, "missing_url"), ({"Url": "ws://h/x"}, "invalid_url"), ({"Url": "https://h/x"}, "invalid_url"),
     ({"Url": "wss://h/x?a=1"}, "invalid_url"), ({"Url": "wss:///x"}, "invalid_url"),
     ({"Url": "wss://h/x", "Track": "both"}, "invalid_track"),
     ({"Url": "wss://h/x", "StreamCodec": "G729"}, "codec_error"),
     ({"Url": "wss://h/x", "StatusCallbackMethod": "PUT"}, "general_error"),
     ({"Url": "wss://h/x", "StatusCallback": "ftp://h"}, "general_error")],
)
def test_invalid_stream_requests_fail_with_a_message_and_the_matching_stream_error(fields, stream_error):
    with pytest.raises(ValidationFailed) as failure:
        validate_stream_request(fields)
    assert failure.value.stream_error == stream_error and failure.value.errors


def test_ws_is_accepted_only_with_the_test_flag_and_disabled_codecs_are_codec_errors():
    assert validate_stream_request({"Url": "ws://h/x"}, allow_ws=True).url == "ws://h/x"
    with pytest.raises(ValidationFailed) as failure:
        validate_stream_request({"Url": "wss://h/x", "StreamCodec": "PCMA"}, disabled_codecs=("PCMA",))
    assert failure.value.stream_error == "codec_error"


def test_defaults_and_up_to_99_custom_parameters_in_index_order():
    fields = {"Url": "wss://h/x", "Parameter2.Name": "b", "Parameter2.Value": "2", "Parameter1.Name": "a",
              "Parameter99.Name": "z", "Parameter5.Value": "orphan", "StreamRealTime": "true"}
    request = validate_stream_request(fields)
    assert (request.track, request.codec, request.status_callback_method) == ("both_tracks", "PCMU", "POST")
    assert request.parameters == (("a", ""), ("b", "2"), ("z", ""))
    assert request.real_time is True and request.name is None
    with pytest.raises(ValidationFailed, match="Parameter100"):
        validate_stream_request({"Url": "wss://h/x", "Parameter100.Name": "x"})


def _backend() -> tuple[SignalWireBackend, Conference]:
    backend = SignalWireBackend(accounts={"acct": "token"})
    conference = backend.add_conference(Conference("conf", "acct", "Room", NOW, NOW))
    backend.add_participant(conference, Participant("call-1", "conf", "acct", NOW, NOW), NOW)
    return backend, conference


def test_a_participant_who_starts_the_conference_puts_it_in_progress_and_the_last_to_leave_ends_it():
    backend, conference = _backend()
    assert conference.status == "in-progress" and conference.started_at == NOW
    stream = backend.create_stream(conference, validate_stream_request({"Url": "wss://h/x"}), NOW)
    ended = backend.remove_participant(conference, conference.participants["call-1"], NOW + 5)
    assert conference.status == "completed" and ended == [stream]
    with pytest.raises(ValidationFailed, match="not in progress"):
        backend.create_stream(conference, validate_stream_request({"Url": "wss://h/x"}), NOW)


def test_streams_are_found_by_sid_or_by_the_newest_live_name_and_stop_idempotently():
    backend, conference = _backend()
    request = validate_stream_request({"Url": "wss://h/x", "Name": "rec"})
    first = backend.create_stream(conference, request, NOW)
    assert backend.stream(conference, first.sid) is first
    assert backend.stream(conference, "rec") is first
    assert backend.stop_stream(first, {"Status": "stopped"}, NOW) is True
    assert backend.stop_stream(first, {"Status": "stopped"}, NOW) is False
    with pytest.raises(ValidationFailed):
        backend.stop_stream(first, {"Status": "started"}, NOW)
    second = backend.create_stream(conference, request, NOW + 1)
    assert backend.stream(conference, "rec") is second and not backend.duplicate_name(conference, second)
    strict = SignalWireBackend(conferences={"conf": conference}, strict_stream_sid=True)
    with pytest.raises(NotFound):
        strict.stream(conference, "rec")


def test_auth_requires_the_token_and_the_project_as_account_sid():
    backend, _ = _backend()
    backend.authenticate("acct", "acct", "token")
    for account, user, password in (("acct", "acct", "nope"), ("other", "acct", "token"), ("acct", None, None)):
        with pytest.raises(AuthenticationFailed):
            backend.authenticate(account, user, password)


def test_paging_envelope_links_pages_and_rejects_out_of_range_sizes():
    items = [{"n": i} for i in range(5)]
    page = page_envelope("things", items, page_request({"PageSize": "2", "Page": "1"}), "/p", {"PageSize": "2"})
    assert page["things"] == [{"n": 2}, {"n": 3}] and page["page"] == 1
    assert page["next_page_uri"] == "/p?Page=2&PageSize=2&PageToken=PA2"
    assert page["previous_page_uri"] == "/p?Page=0&PageSize=2&PageToken=PB0"
    for bad in ({"PageSize": "0"}, {"PageSize": "1001"}, {"Page": "x"}, {"PageToken": "ZZ"}):
        with pytest.raises(InvalidRequest):
            page_request(bad)


def test_paging_uris_are_in_the_vendor_form_without_json_and_with_known_parameters_only():
    items = [{"n": i} for i in range(3)]
    query = {"PageSize": "2", "Status": "completed", "Junk": "x"}
    page = page_envelope("things", items, page_request(query), "/r/Things.json", query, known=("Status",))
    assert page["uri"] == "/r/Things?PageSize=2&Status=completed"
    assert page["first_page_uri"] == "/r/Things?Status=completed&Page=0&PageSize=2"
    assert page["next_page_uri"] == "/r/Things?Status=completed&Page=1&PageSize=2&PageToken=PA1"
    assert (page["start"], page["end"]) == (0, 1)
    last = page_envelope("things", items, page_request({"Page": "1", "PageSize": "2"}), "/r/Things", {}, known=())
    assert (last["start"], last["end"], last["next_page_uri"]) == (2, 2, None)
    assert last["first_page_uri"] == "/r/Things?Page=0&PageSize=2"


def test_speaking_follows_the_looping_timeline_unless_muted_held_or_overridden():
    person = Participant("c", "conf", "acct", NOW, NOW, speaking=[(0, 100)], timeline_loop_ms=1000)
    assert person.speaks_at(50) and not person.speaks_at(500) and person.speaks_at(1050)
    person.muted = True
    assert not person.speaks_at(50)
    person.muted, person.speaking_override = False, True
    assert person.speaks_at(500)
