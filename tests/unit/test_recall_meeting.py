"""Simulated meetings: scenario parsing with seeded names, the timeline order, and meeting state."""

from __future__ import annotations

import pytest

from emulators.kit.errors import FieldError
from emulators.recall.meeting import Meeting, MeetingEvent, load_scenarios, parse_scenario, scenario_for, timeline


def test_fixture_scenarios_load_with_a_default() -> None:
    scenarios = load_scenarios(seed=0)
    assert {"default", "missing-meeting", "waiting-room"} <= set(scenarios)
    default = scenarios["default"]
    assert [p.id for p in default.participants] == [100, 200, 300]
    assert len(default.screenshares) == 1


def test_participant_names_are_seeded_faker_names() -> None:
    first = [p.name for p in load_scenarios(seed=3)["default"].participants]
    again = [p.name for p in load_scenarios(seed=3)["default"].participants]
    other = [p.name for p in load_scenarios(seed=4)["default"].participants]
    assert first == again and first != other
    assert all(" " in name for name in first)


def test_scenario_is_chosen_by_meeting_url_ignoring_the_query_string() -> None:
    scenarios = load_scenarios(seed=0)
    assert scenario_for("https://meet.google.com/zzz-zzzz-zzz?authuser=1", scenarios).missing
    assert scenario_for("https://meet.google.com/abc-defg-hij", scenarios).name == "default"


def test_timeline_orders_leaves_before_joins_and_ends_last() -> None:
    scenario = parse_scenario({"duration_s": 5, "participants": [{"id": 1, "leave_s": 2}, {"id": 2, "join_s": 2}],
                               "speaking": [{"participant": 1, "start_s": 0, "end_s": 2}]}, seed=0)
    codes = [(e.at_s, e.code) for e in timeline(scenario)]
    assert codes[0] == (0, "join")
    at_two = [c for t, c in codes if t == 2]
    assert at_two.index("leave") < at_two.index("join")
    assert codes[-1] == (5, "end")


def test_speech_without_a_script_line_gets_faker_text() -> None:
    scenario = parse_scenario({"participants": [{"id": 1}], "speaking": [{"participant": 1, "start_s": 0,
                                                                          "end_s": 3}]}, seed=0)
    assert scenario.speaking[0].text


def test_bad_scenario_names_the_field() -> None:
    with pytest.raises(FieldError, match=r"screenshares\[0\].participant"):
        parse_scenario({"participants": [{"id": 1}], "screenshares": [{"participant": 9, "start_s": 0,
                                                                       "end_s": 1}]}, seed=0)
    with pytest.raises(FieldError, match="end_s"):
        parse_scenario({"participants": [{"id": 1}], "speaking": [{"participant": 1, "start_s": 3,
                                                                   "end_s": 1}]}, seed=0)


def _meeting() -> Meeting:
    return Meeting(parse_scenario({"participants": [{"id": 1, "is_host": False}, {"id": 2, "is_host": True}]}, seed=0))


def test_active_speaker_is_the_host_before_anyone_speaks() -> None:
    meeting = _meeting()
    meeting.apply(MeetingEvent(0, "join", 1))
    meeting.apply(MeetingEvent(0, "join", 2))
    assert meeting.active_speaker.id == 2
    meeting.apply(MeetingEvent(1, "speech_on", 1))
    assert meeting.active_speaker.id == 1
    meeting.apply(MeetingEvent(2, "speech_off", 1))
    assert meeting.active_speaker.id == 1  # the last speaker stays on screen


def test_leaving_ends_a_participants_speech_and_share() -> None:
    meeting = _meeting()
    for code in ("join", "speech_on", "screenshare_on"):
        assert meeting.apply(MeetingEvent(0, code, 1))
    assert meeting.screensharing and meeting.audible() == [1]
    assert meeting.apply(MeetingEvent(1, "leave", 1))
    assert not meeting.screensharing and meeting.audible() == []
    assert not meeting.apply(MeetingEvent(2, "leave", 1))  # nothing changes twice


def test_muted_speakers_are_not_audible() -> None:
    meeting = _meeting()
    for code in ("join", "speech_on", "mute"):
        meeting.apply(MeetingEvent(0, code, 1))
    assert meeting.audible() == []


LIVELY = {"participants": [{"id": 100, "name": "Ann"}, {"id": 200, "name": "Bo", "webcam_off": [[2, 4]]}],
          "chat": [{"participant": 100, "at_s": 1, "text": "hi all"},
                   {"participant": 200, "at_s": 3, "text": "psst", "to": "only_bot"}],
          "renames": [{"participant": 200, "at_s": 5, "name": "Bo (mobile)"}]}


def test_scenario_webcam_toggles_chat_lines_and_renames_become_timeline_events() -> None:
    events = [(e.at_s, e.code, e.participant, e.text, e.to) for e in timeline(parse_scenario(LIVELY, seed=0))
              if e.code not in ("join", "end")]
    assert events == [
        (1.0, "chat_message", 100, "hi all", "everyone"),
        (2.0, "webcam_off", 200, None, None),
        (3.0, "chat_message", 200, "psst", "only_bot"),
        (4.0, "webcam_on", 200, None, None),
        (5.0, "update", 200, "Bo (mobile)", None),
    ]


def test_meeting_tracks_cameras_and_renames_and_ignores_no_op_toggles() -> None:
    meeting = Meeting(parse_scenario(LIVELY, seed=0))
    meeting.apply(MeetingEvent(0, "join", 200))
    assert meeting.apply(MeetingEvent(2, "webcam_off", 200)) and meeting.camera_off == {200}
    assert not meeting.apply(MeetingEvent(2.5, "webcam_off", 200))
    assert meeting.apply(MeetingEvent(4, "webcam_on", 200)) and meeting.camera_off == set()
    assert meeting.apply(MeetingEvent(5, "update", 200, "Bo (mobile)"))
    assert meeting.present[200].name == meeting.roster[200].name == "Bo (mobile)"
    assert not meeting.apply(MeetingEvent(6, "update", 200, "Bo (mobile)"))


@pytest.mark.parametrize(("raw", "field"), [
    ({"chat": [{"participant": 100, "at_s": 1}]}, "chat[0].text"),
    ({"chat": [{"participant": 999, "text": "x"}]}, "chat[0].participant"),
    ({"chat": [{"participant": 100, "text": "x", "to": 5}]}, "chat[0].to"),
    ({"renames": [{"participant": 100, "at_s": -1, "name": "x"}]}, "renames[0].at_s"),
    ({"renames": [{"participant": 100, "name": ""}]}, "renames[0].name"),
])
def test_bad_chat_and_rename_entries_name_the_field(raw: dict, field: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_scenario({"participants": [{"id": 100}], **raw}, seed=0)
    assert info.value.field == field


def test_bad_webcam_toggle_names_the_field() -> None:
    with pytest.raises(FieldError) as info:
        parse_scenario({"participants": [{"id": 100, "webcam_off": [[1]]}]}, seed=0)
    assert info.value.field == "participants[0].webcam_off[0]"


def test_the_fixture_meetings_have_webcam_toggles_chat_lines_and_a_rename() -> None:
    for name in ("default", "short-meeting"):
        codes = {e.code for e in timeline(load_scenarios(seed=0)[name])}
        assert {"webcam_off", "webcam_on", "chat_message", "update"} <= codes
