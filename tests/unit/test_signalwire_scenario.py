"""SignalWire scenario specs: conferences and participants are validated field by field (pure)."""

from __future__ import annotations

import pytest

from emulators.kit.errors import FieldError
from emulators.signalwire.scenario import conference_from_spec, participant_from_spec, voice_seed

ACCOUNTS = {"acct": "token"}


def _conference(spec: dict):
    return conference_from_spec(spec, "body", accounts=ACCOUNTS, taken={"taken"}, now=1.0, seed=7)


def test_a_conference_spec_keeps_its_ids_recordings_key_presses_and_callbacks():
    conference = _conference({"sid": "CF...", "friendly_name": "Room", "recordings": [{"sid": "RE1"}],
                              "dtmf": [{"at_ms": 500, "digit": "#"}], "status_callback": "http://127.0.0.1:1/cb"})
    assert (conference.sid, conference.account_sid, conference.status) == ("CF...", "acct", "init")
    assert list(conference.recordings) == ["RE1"] and conference.dtmf_timeline == [(500, "#", 200)]
    assert conference.status_callback_events == {"conference-start", "conference-end"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [({"account": "other"}, "body.account"), ({"friendly_name": "x" * 65}, "body.friendly_name"),
     ({"sid": "taken"}, "body.sid"), ({"recordings": [{"status": "lost"}]}, "body.recordings[0].status"),
     ({"dtmf": [{"digit": "X"}]}, "body.dtmf[0]"), ({"status_callback": "ftp://x"}, "body.status_callback"),
     ({"status_callback": "http://x", "status_callback_events": ["dance"]}, "body.status_callback_events")],
)
def test_a_bad_conference_spec_names_the_field(spec, field):
    with pytest.raises(FieldError) as failure:
        _conference(spec)
    assert failure.value.field == field


@pytest.mark.parametrize(
    ("spec", "field"),
    [({"speaking": [[5, 1]]}, "p.speaking"), ({"speaking": "always"}, "p.speaking"),
     ({"timeline_loop_ms": 5}, "p.timeline_loop_ms"), ({"muted": "yes"}, "p.muted")],
)
def test_a_bad_participant_spec_names_the_field(spec, field):
    with pytest.raises(FieldError) as failure:
        participant_from_spec(_conference({}), spec, "p", now=1.0, seed=7)
    assert failure.value.field == field


def test_voices_are_seeded_per_participant_and_stable_across_processes():
    person = participant_from_spec(_conference({}), {"call_sid": "CA1", "speaking": [[0, 100]]}, "p", now=1.0, seed=7)
    assert person.voice_seed == voice_seed(7, "CA1") != voice_seed(7, "CA2")
    assert voice_seed(7, "CA1") == 3064457228  # a constant: no per-process hash salt
