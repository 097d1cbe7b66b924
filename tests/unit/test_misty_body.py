"""Misty's body rules, pure: actuator ramps and ranges, drive odometry, the speech queue, playback, speech capture
and the object detector."""

from __future__ import annotations

import io
import math
import wave

import pytest

from emulators.misty.body import CAPTURE_FILE, MAX_LINEAR_M_S, TRACK_WIDTH_M, Body
from emulators.misty.model import BadArgument, MistyBackend


def pitch(body: Body, t: float) -> float:
    return next(m["value"] for m in body.actuator_positions(t, 0.0) if m["sensorId"] == "ahp")


def test_a_head_move_ramps_over_its_duration_and_stays():
    body = Body()
    body.move_head({"pitch": 20.0, "duration": 2.0}, t=10.0)
    assert [pitch(body, t) for t in (10.0, 11.0, 12.0, 50.0)] == [0.0, 10.0, 20.0, 20.0]


def test_velocity_sets_the_move_time_when_there_is_no_duration():
    body = Body()
    body.move_head({"yaw": -45.0, "velocity": 50.0}, t=0.0)  # 45 degrees at half of 90 deg/s: one second
    assert body.actuators["ahy"].t1 == pytest.approx(1.0)


def test_velocity_zero_moves_at_once_rather_than_at_the_default_speed():
    body = Body()
    body.move_head({"pitch": -30.0, "velocity": 0.0}, t=2.0)
    assert pitch(body, 2.0) == -30.0


def test_head_units_radians_and_position_map_onto_degrees():
    body = Body()
    body.move_head({"roll": math.radians(30), "units": "radians", "duration": 0}, t=0.0)
    body.move_head({"pitch": 5.0, "units": "position", "duration": 0}, t=0.0)
    assert body.actuators["ahr"].target == pytest.approx(30.0) and body.actuators["ahp"].target == 26.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"pitch": 30.0}, "Invalid value for parameter 'Pitch': 30. Must be between -40 and 26."),
        ({"yaw": 0.0, "velocity": 120.0}, "Invalid value for parameter 'Velocity': 120. Must be between 0 and 100."),
        ({"pitch": 0.0, "units": "steps"}, "Invalid value for parameter 'Units': 'steps'."),
        ({}, "Cannot move head - at least one of 'Pitch', 'Roll' or 'Yaw' is required."),
    ],
)
def test_head_moves_outside_the_robots_ranges_are_refused(values, message):
    with pytest.raises(BadArgument) as exc:
        Body().move_head(values, t=0.0)
    assert exc.value.message.startswith(message)


def test_move_arm_both_moves_each_arm_and_positions_outside_the_range_are_refused():
    body = Body()
    body.move_arm({"arm": "both", "position": 0.0, "duration": 0.0}, t=0.0)
    assert body.actuators["ala"].target == body.actuators["ara"].target == 0.0
    with pytest.raises(BadArgument, match=r"'LeftArmPosition': -45\. Must be between -29 and 90"):
        body.move_arms({"leftArmPosition": -45.0}, t=0.0)


def test_drive_time_moves_the_treads_for_its_time_then_stops():
    body = Body()
    locomotion = body.drive("DriveTime", {"linearVelocity": 50.0, "angularVelocity": 0.0, "timeMs": 2000}, t=0.0)
    assert locomotion["linearVelocity"] == pytest.approx(MAX_LINEAR_M_S / 2) and locomotion["actionId"] == 1
    assert body.odometry(1.0)[:2] == pytest.approx((MAX_LINEAR_M_S / 2, MAX_LINEAR_M_S / 2))
    assert body.odometry(9.0)[:2] == pytest.approx((MAX_LINEAR_M_S, MAX_LINEAR_M_S))
    assert body.velocities(9.0) == (0.0, 0.0)


def test_a_turn_in_place_turns_the_heading_and_runs_the_treads_opposite_ways():
    body = Body()
    body.drive("Drive", {"linearVelocity": 0.0, "angularVelocity": 100.0}, t=0.0)
    left, right, yaw = body.odometry(1.0)
    assert yaw == pytest.approx(90.0) and left == pytest.approx(-right)
    assert right == pytest.approx(math.radians(90.0) * TRACK_WIDTH_M / 2)
    body.drive("Stop", {}, t=1.0)
    assert body.odometry(5.0)[2] == pytest.approx(90.0)


def test_drive_heading_turns_to_the_absolute_heading_in_time_ms():
    body = Body()
    body.drive("DriveHeading", {"heading": -90.0, "distance": 1.0, "timeMs": 2000.0, "reverse": True}, t=0.0)
    left, right, yaw = body.odometry(2.0)
    assert yaw == pytest.approx(-90.0) and (left + right) / 2 == pytest.approx(-1.0)


def test_drive_without_its_required_arguments_names_them():
    with pytest.raises(BadArgument) as exc:
        Body().drive("Drive", {"angularVelocity": 10.0}, t=0.0)
    assert exc.value.message == "Cannot drive - Missing required double parameter 'LinearVelocity'."


def test_utterances_queue_and_a_flush_cancels_what_was_queued():
    body = Body()
    first = body.speak({"text": "one two three four"}, t=0.0)
    second = body.speak({"text": "five", "utteranceId": "b"}, t=0.0)
    assert first.due == pytest.approx(1.4) and second.due == pytest.approx(1.8)
    third = body.speak({"text": "now", "flush": True, "utteranceId": "c"}, t=0.5)
    assert body.fire(first.key, 0.0) is None and body.fire(second.key, 0.0) is None
    kind, message = body.fire(third.key, 0.0)
    assert kind == "TextToSpeechComplete" and message["utteranceId"] == "c" and third.due == pytest.approx(0.9)


def test_play_audio_completes_after_the_files_length_and_unknown_files_are_refused():
    body = Body()
    done = body.play_audio({"fileName": "s_Joy.wav"}, t=3.0)
    assert done.due == pytest.approx(4.2)
    with pytest.raises(BadArgument, match=r"no audio file named 'x\.wav'"):
        body.play_audio({"fileName": "x.wav"}, t=0.0)
    with pytest.raises(BadArgument, match="'Volume': 101"):
        body.play_audio({"fileName": "s_Joy.wav", "volume": 101}, t=0.0)


def test_speech_capture_generates_its_recording_and_reports_it_when_capture_ends():
    body = Body(seed=4)
    done = body.capture_speech(1500, until=7.5)
    with wave.open(io.BytesIO(body.audio[CAPTURE_FILE])) as w:
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (1, 16000, 24000)
    kind, message = body.fire(done.key, 0.0)
    assert (kind, done.due, message["filename"], message["success"]) == ("VoiceRecord", 7.5, CAPTURE_FILE, True)
    again = Body(seed=4)
    again.capture_speech(1500, until=0.0)
    assert again.audio[CAPTURE_FILE] == body.audio[CAPTURE_FILE]  # seeded: the same boot records the same


def test_the_object_detector_sees_the_disc_only_when_it_runs_and_it_is_in_view():
    body = Body()
    assert body.detect_objects((240.0, 500.0, 36.0), (480, 640), 0.0) == []
    body.start_object_detector({"minimumConfidence": 0.5})
    (seen,) = body.detect_objects((240.0, 500.0, 36.0), (480, 640), 0.0)
    assert seen["description"] == "sports ball" and seen["imageLocationLeft"] == 204.0
    assert body.detect_objects((600.0, 500.0, 36.0), (480, 640), 0.0) == []
    body.start_object_detector({"minimumConfidence": 0.9})
    assert body.detect_objects((240.0, 500.0, 36.0), (480, 640), 0.0) == []


def test_a_command_without_a_model_is_remembered_and_read_back_by_its_getter():
    robot = MistyBackend()
    assert robot.remembered("GetLogLevel", "get", {}) == {}
    assert robot.remembered("SetLogLevel", "post", {"localLogLevel": "Debug", "remoteLogLevel": None}) is True
    assert robot.remembered("GetLogLevel", "get", {}) == {"localLogLevel": "Debug"}
