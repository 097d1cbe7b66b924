"""The bot schedule on a manual clock: lifecycle offsets, every automatic-leave rule, endings, the looping meeting.

Pure: RecallBackend.advance(now) / next_wakeup() with ``now`` from a ManualClock; nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from emulators.kit.clock import ManualClock
from emulators.recall.create_request import CreateRules
from emulators.recall.errors import BotNotFound, DeleteRefused, IllegalTransition
from emulators.recall.meeting import load_scenarios, parse_scenario
from emulators.recall.model import (
    Bot,
    BotStatus,
    LifecycleRules,
    MeetingChanged,
    RecallBackend,
    ServiceRules,
    StatusChanged,
)

KEY = "k"
SCALE = 0.05
MEET = "https://meet.google.com/abc-defg-hij"  # the default (looping) meeting
SHORT = "https://meet.google.com/sho-rtme-eet"
PAIR = "https://meet.google.com/two-peop-lee"


def backend(**lifecycle: Any) -> RecallBackend:
    scenarios = load_scenarios(seed=0)
    pair = parse_scenario({"name": "pair", "meeting_urls": [PAIR], "duration_s": 1000,
                           "participants": [{"id": 100, "is_host": True}, {"id": 200}]}, seed=0)
    scenarios[pair.name] = pair
    rules = LifecycleRules(**{"time_scale": SCALE, **lifecycle})
    return RecallBackend(seed=0, scenarios=scenarios, create_rules=CreateRules(),
                         service_rules=ServiceRules(api_keys=frozenset({KEY})), lifecycle_rules=rules)


def run_until(b: RecallBackend, clock: ManualClock, until: float) -> list[Any]:
    """Advance to each wakeup up to ``until`` seconds from now, collecting the changes; releases ended bots."""
    end = clock.now() + until
    out: list[Any] = []
    while True:
        wake = b.next_wakeup()
        if wake is None or wake > end:
            break
        clock.advance(max(0.0, wake - clock.now()))
        changes = b.advance(clock.now())
        out.extend(changes)
        for change in changes:
            if isinstance(change, StatusChanged) and change.change.code is BotStatus.CALL_ENDED:
                out.extend(b.release(change.bot.id, clock.now()))
    clock.advance(max(0.0, end - clock.now()))
    return out


def codes(bot: Bot) -> list[str]:
    return [str(c.code) for c in bot.status_changes]


def ended(bot: Bot) -> str | None:
    return next((c.sub_code for c in bot.status_changes if c.code is BotStatus.CALL_ENDED), None)


def test_statuses_follow_at_their_scaled_offsets() -> None:
    clock, b = ManualClock(), backend()
    t0 = clock.now()
    bot = b.create_bot({"meeting_url": PAIR}, KEY, t0)
    assert b.next_wakeup() == pytest.approx(t0 + 0.2 * SCALE)
    run_until(b, clock, 1.0 * SCALE)
    assert codes(bot) == ["ready", "joining_call", "in_call_not_recording", "in_call_recording"]
    offsets = [c.created_at - t0 for c in bot.status_changes]
    assert offsets == pytest.approx([0.0, 0.2 * SCALE, 0.6 * SCALE, 1.0 * SCALE])
    assert bot.recording is not None and bot.recording.started_at == pytest.approx(t0 + SCALE)


def test_nothing_happens_before_its_time() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": PAIR}, KEY, clock.now())
    clock.advance(0.19 * SCALE)
    assert b.advance(clock.now()) == [] and codes(bot) == ["ready"]


def test_leave_call_ends_after_the_leave_delay_and_done_waits_for_the_media() -> None:
    clock, b = ManualClock(), backend(leave_delay_s=0.5)
    bot = b.create_bot({"meeting_url": PAIR}, KEY, clock.now())
    run_until(b, clock, 2 * SCALE)
    b.leave_call(bot.id, KEY, clock.now())
    due = b.next_wakeup()
    assert due == pytest.approx(clock.now() + 0.5 * SCALE)
    clock.advance(0.49 * SCALE)
    assert b.advance(clock.now()) == []
    clock.advance(due - clock.now())
    [change] = b.advance(clock.now())
    assert (change.change.code, change.change.sub_code) == ("call_ended", "bot_received_leave_call")
    assert b.next_wakeup() is None  # the service closes the media, then releases the bot
    assert [str(c.change.code) for c in b.release(bot.id, clock.now())] == ["done"]
    assert bot.recording is not None and bot.recording.completed_at == clock.now()


def test_recording_done_comes_before_done_when_enabled() -> None:
    clock, b = ManualClock(), backend(emit_recording_done=True, extra_status_codes=True)
    bot = b.create_bot({"meeting_url": PAIR}, KEY, clock.now())
    run_until(b, clock, 2 * SCALE)
    b.end_meeting({"bot_id": bot.id}, clock.now())
    run_until(b, clock, 0.0)
    assert codes(bot) == ["ready", "joining_call", "in_call_not_recording", "recording_permission_allowed",
                          "in_call_recording", "call_ended", "recording_done", "done"]
    assert ended(bot) == "call_ended_by_host"


def test_a_scheduled_bot_joins_at_join_at_unscaled() -> None:
    clock, b = ManualClock(), backend()
    join_at = datetime.fromtimestamp(clock.now() + 100, UTC).isoformat()
    bot = b.create_bot({"meeting_url": PAIR, "join_at": join_at}, KEY, clock.now())
    assert b.next_wakeup() == pytest.approx(clock.now() + 100 + 0.2 * SCALE)
    run_until(b, clock, 99)
    assert codes(bot) == ["ready"]
    run_until(b, clock, 2)
    assert codes(bot)[:2] == ["ready", "joining_call"]


def test_a_missing_meeting_is_fatal_after_joining() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": "https://meet.google.com/zzz-zzzz-zzz"}, KEY, clock.now())
    run_until(b, clock, 10)
    assert codes(bot) == ["ready", "joining_call", "fatal"]
    assert bot.status_changes[-1].sub_code == "meeting_not_found" and b.next_wakeup() is None


def test_waiting_room_shorter_than_its_timeout_admits_the_bot() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": "https://meet.google.com/wai-tinr-oom"}, KEY, clock.now())
    run_until(b, clock, 10 * SCALE)  # the fixture waits 5 s
    assert codes(bot)[:4] == ["ready", "joining_call", "in_waiting_room", "in_call_not_recording"]


def test_waiting_room_timeout_ends_the_bot() -> None:
    clock, b = ManualClock(), backend()
    b.load_scenario({"scenario": {"name": "long", "meeting_urls": [MEET], "waiting_room_s": 100,
                                  "participants": [{"id": 1}]}})
    bot = b.create_bot({"meeting_url": MEET, "automatic_leave": {"waiting_room_timeout": 30}}, KEY, clock.now())
    run_until(b, clock, (0.2 + 29.9) * SCALE)
    assert bot.status is BotStatus.IN_WAITING_ROOM
    run_until(b, clock, 0.2 * SCALE)
    assert ended(bot) == "timeout_exceeded_waiting_room" and bot.status is BotStatus.DONE
    assert bot.recording is None


def test_noone_joined_timeout_ends_a_bot_alone_in_the_call() -> None:
    clock, b = ManualClock(), backend()
    b.load_scenario({"scenario": {"name": "empty", "meeting_urls": [MEET], "duration_s": 10_000,
                                  "participants": [{"id": 1, "join_s": 5000}]}})
    bot = b.create_bot({"meeting_url": MEET, "automatic_leave": {"noone_joined_timeout": 40}}, KEY, clock.now())
    run_until(b, clock, (0.6 + 39.9) * SCALE)
    assert bot.status is BotStatus.IN_CALL_RECORDING
    run_until(b, clock, 0.2 * SCALE)
    assert ended(bot) == "timeout_exceeded_noone_joined"


def test_someone_joining_disarms_noone_joined() -> None:
    clock, b = ManualClock(), backend()
    b.load_scenario({"scenario": {"name": "late", "meeting_urls": [MEET], "duration_s": 10_000,
                                  "participants": [{"id": 1, "join_s": 20}]}})
    bot = b.create_bot({"meeting_url": MEET, "automatic_leave": {"noone_joined_timeout": 40}}, KEY, clock.now())
    run_until(b, clock, 100 * SCALE)
    assert bot.status is BotStatus.IN_CALL_RECORDING and 1 in b.meeting(bot.id).present


def test_everyone_left_timeout_counts_from_the_last_leave() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": PAIR, "automatic_leave": {"everyone_left_timeout": 4}}, KEY, clock.now())
    run_until(b, clock, 2 * SCALE)
    b.control_event({"participant_id": 100}, "leave", clock.now())
    clock.advance(10 * SCALE)
    b.advance(clock.now())
    b.control_event({"participant_id": 200}, "leave", clock.now())
    run_until(b, clock, 3.9 * SCALE)
    assert bot.status is BotStatus.IN_CALL_RECORDING
    run_until(b, clock, 0.2 * SCALE)
    assert ended(bot) == "timeout_exceeded_everyone_left"
    assert [e for p in bot.participants.values() for e, _at in p.events].count("leave") == 2


def test_a_rejoin_disarms_everyone_left() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": PAIR, "automatic_leave": {"everyone_left_timeout": 4}}, KEY, clock.now())
    run_until(b, clock, 2 * SCALE)
    for pid in (100, 200):
        b.control_event({"participant_id": pid}, "leave", clock.now())
    b.add_participant({"participant_id": 100}, clock.now())
    run_until(b, clock, 100 * SCALE)
    assert bot.status is BotStatus.IN_CALL_RECORDING


def test_in_call_recording_timeout_ends_the_recording() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": MEET, "automatic_leave": {"in_call_recording_timeout": 90}}, KEY,
                       clock.now())
    run_until(b, clock, (1.0 + 89.9) * SCALE)
    assert bot.status is BotStatus.IN_CALL_RECORDING
    run_until(b, clock, 0.2 * SCALE)
    assert ended(bot) == "timeout_exceeded_in_call_recording"


def test_a_short_meeting_ends_by_host_at_its_duration() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": SHORT}, KEY, clock.now())
    run_until(b, clock, (0.6 + 59.9) * SCALE)
    assert bot.status is BotStatus.IN_CALL_RECORDING
    run_until(b, clock, 0.2 * SCALE)
    assert ended(bot) == "call_ended_by_host" and bot.status is BotStatus.DONE


def test_the_default_meeting_loops_its_script_and_never_ends_by_itself() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": MEET}, KEY, clock.now())
    changes = run_until(b, clock, (0.6 + 3 * 60 + 30) * SCALE)
    assert bot.status is BotStatus.IN_CALL_RECORDING
    events = [(c.event.code, c.event.participant) for c in changes if isinstance(c, MeetingChanged)]
    # The screenshare (20..35 s of each minute) ran in all four cycles; 200 speaks at 9 and 46 s of each.
    assert events.count(("screenshare_on", 200)) == 4 and events.count(("screenshare_off", 200)) == 3
    assert events.count(("speech_on", 200)) == 2 + 2 + 2 + 1
    # People join and leave once: 300 left at 50 s and does not speak in later cycles.
    assert events.count(("join", 300)) == 1 and events.count(("leave", 300)) == 1
    assert events.count(("speech_on", 300)) == 1
    assert b.next_wakeup() is not None


def test_looped_speech_keeps_its_script_words_in_later_cycles() -> None:
    clock, b = ManualClock(), backend()
    b.create_bot({"meeting_url": MEET}, KEY, clock.now())
    changes = run_until(b, clock, (0.6 + 60 + 56) * SCALE)
    words = [c.event.text for c in changes if isinstance(c, MeetingChanged) and c.event.code == "speech_off"
             and c.event.participant == 200]
    assert words[-1] == words[1] == "Thanks, I will send the notes after the call."
    intervals = [c.event.interval_s for c in changes if isinstance(c, MeetingChanged)
                 and c.event.code == "speech_off" and c.event.participant == 100]
    assert intervals[-1] == (96.0, 105.0)  # the second cycle's 36..45 s


def test_at_time_scale_zero_a_looping_meeting_plays_once() -> None:
    clock, b = ManualClock(), backend(time_scale=0.0)
    bot = b.create_bot({"meeting_url": MEET}, KEY, clock.now())
    changes = b.advance(clock.now())
    assert bot.status is BotStatus.IN_CALL_RECORDING and b.next_wakeup() is None
    assert sum(1 for c in changes if isinstance(c, MeetingChanged) and c.event.code == "screenshare_on") == 1


def test_an_illegal_transition_raises() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": PAIR}, KEY, clock.now())
    with pytest.raises(IllegalTransition):
        bot.record_status("in_call_recording", clock.now())
    with pytest.raises(ValueError):
        bot.record_status("napping", clock.now())


def test_only_an_undispatched_scheduled_bot_can_be_deleted() -> None:
    clock, b = ManualClock(), backend()
    join_at = datetime.fromtimestamp(clock.now() + 3600, UTC).isoformat()
    scheduled = b.create_bot({"meeting_url": PAIR, "join_at": join_at}, KEY, clock.now())
    live = b.create_bot({"meeting_url": PAIR}, KEY, clock.now())
    with pytest.raises(DeleteRefused):
        b.delete_bot(live.id, KEY)
    b.delete_bot(scheduled.id, KEY)
    with pytest.raises(BotNotFound):
        b.bot(scheduled.id, KEY)
    run_until(b, clock, 2 * SCALE)
    assert live.status is BotStatus.IN_CALL_RECORDING


def test_another_workspaces_bot_does_not_exist() -> None:
    clock, b = ManualClock(), backend()
    bot = b.create_bot({"meeting_url": PAIR}, KEY, clock.now())
    with pytest.raises(BotNotFound):
        b.bot(bot.id, "other-key")
    with pytest.raises(BotNotFound):
        b.leave_call(bot.id, "other-key", clock.now())


def test_fixture_scenarios_are_checked_when_loaded_and_built_alike_when_first_used(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest as _pytest

    from emulators.kit.errors import FieldError
    from emulators.kit.yaml_text import load_yaml
    from emulators.recall.meeting import SCENARIO_DIR

    scenarios = load_scenarios(seed=3)
    text = (SCENARIO_DIR / "default.yaml").read_text()
    assert scenarios["default"] == parse_scenario(load_yaml(text), seed=3, name="default")
    assert scenarios["default"].participants[1].name  # invented by the seeded Faker
    (tmp_path / "broken.yaml").write_text("name: broken\nparticipants: [{id: 0}]\n")
    with _pytest.raises(FieldError, match=r"participants\[0\]\.id"):
        load_scenarios(tmp_path, seed=3)
