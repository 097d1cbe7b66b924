"""Misty's whole command surface over real HTTP and /pubsub: every table command answers in the robot's envelope,
arguments are validated from the table, each call is logged, and body/voice commands fire the robot's events."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave

import aiohttp
import pytest

from emulators.misty.body import CAPTURE_FILE
from emulators.misty.help import COMMANDS
from emulators.misty.pubsub import REGISTERED

TIMEOUT = 10.0
# Started with defaults these would bind the robot's fixed ports or push media; test_misty_rest covers them.
STREAM_STARTS = {"StartVideoStreaming", "StartAvStreaming"}


@pytest.fixture
async def emu(emulator_factory):
    return await emulator_factory("misty")


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http, emu, method: str, path: str, body: dict | None = None):
    async with http.request(method, emu.url() + path, json=body) as resp:
        raw = await resp.read()
        return resp, (json.loads(raw) if resp.content_type == "application/json" else raw)


async def subscribe(http, emu, event_type: str, name: str, **extra):
    ws = await http.ws_connect(emu.endpoints()["pubsub"])
    await ws.send_str(json.dumps({"Operation": "subscribe", "Type": event_type, "EventName": name, **extra}))
    reply = json.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)
    assert reply["message"] == REGISTERED
    return ws


async def next_event(ws, predicate=lambda message: True) -> dict:
    """The next event whose message satisfies ``predicate`` (events that do not are skipped)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            event = json.loads(msg.data)
            if predicate(event["message"]):
                return event


# ----- the surface ---------------------------------------------------------------------------------------------
async def test_every_command_of_the_table_answers_in_the_robots_envelope(emu, http):
    for command in COMMANDS:
        if command.name in STREAM_STARTS:
            continue
        resp, body = await call(http, emu, command.verb.upper(), f"/api/{command.endpoint}")
        assert resp.status in (200, 400), (command.name, resp.status, body)
        if isinstance(body, dict):
            assert body["status"] == ("Success" if resp.status == 200 else "Failed"), (command.name, body)
    logged = {e.detail["command"] for e in emu.events.query("command", limit=0)}
    assert logged == {c.name for c in COMMANDS} - STREAM_STARTS


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/api/drive", {"LinearVelocity": "fast", "AngularVelocity": 0}, "'LinearVelocity': 'fast'. Must be a number"),
        ("/api/led", {"Red": 256, "Green": 0, "Blue": 0}, "'Red': 256. Must be between 0 and 255"),
        ("/api/tts/speak", {"Text": "hi", "Flush": "maybe"}, "'Flush': 'maybe'. Must be true or false"),
        ("/api/head", {"Pitch": 60}, "'Pitch': 60. Must be between -40 and 26"),
        ("/api/drive", {"AngularVelocity": 10}, "Cannot drive - Missing required double parameter 'LinearVelocity'"),
        ("/api/logs", None, None),  # GET below: a DateTime that is not one
    ],
)
async def test_bad_arguments_are_a_400_naming_the_parameter(emu, http, path, body, needle):
    if needle is None:
        resp, answer = await call(http, emu, "GET", f"{path}?date=yesterday")
        needle = "'Date': 'yesterday'. Must be an ISO 8601 date"
    else:
        resp, answer = await call(http, emu, "POST", path, body)
    assert resp.status == 400 and answer["status"] == "Failed"
    assert needle in answer["error"]


async def test_each_call_is_in_the_event_log_with_the_arguments_the_app_sent(emu, http):
    resp, _ = await call(http, emu, "POST", "/api/led", {"red": 255, "Green": "10", "blue": None})
    assert resp.status == 200
    event = await emu.events.wait_for("command", lambda e: e.detail["command"] == "ChangeLED")
    assert event.detail["arguments"] == {"red": 255, "green": 10}


async def test_a_command_without_a_model_remembers_what_it_was_told(emu, http):
    await call(http, emu, "POST", "/api/logs/level", {"LocalLogLevel": "Debug", "RemoteLogLevel": "Info"})
    _, body = await call(http, emu, "GET", "/api/logs/level")
    assert body == {"result": {"localLogLevel": "Debug", "remoteLogLevel": "Info"}, "status": "Success"}


# ----- body and voice: the events a robot fires ---------------------------------------------------------------
async def test_move_head_moves_the_actuator_that_actuator_position_reports(emu, http):
    ws = await subscribe(http, emu, "ActuatorPosition", "pitch", DebounceMs=0,
                         EventConditions=[{"Property": "SensorId", "Inequality": "=", "Value": "ahp"}])  # fmt: skip
    try:
        first = await next_event(ws)
        assert first["message"]["value"] == 0 and first["message"]["sensorName"] == "Actuator_HeadPitch"
        _, body = await call(http, emu, "POST", "/api/head", {"Pitch": 20, "Duration": 0.3})
        assert body == {"result": True, "status": "Success"}
        moving = await next_event(ws, lambda m: 0 < m["value"] < 20)
        assert moving["eventName"] == "pitch"
        await next_event(ws, lambda m: m["value"] == 20)
    finally:
        await ws.close()


async def test_move_arms_reports_both_arms(emu, http):
    ws = await subscribe(http, emu, "ActuatorPosition", "arms", DebounceMs=0)
    try:
        await call(http, emu, "POST", "/api/arms/set", {"LeftArmPosition": -29, "RightArmPosition": 0, "Duration": 0})
        await next_event(ws, lambda m: m["sensorId"] == "ala" and m["value"] == -29)
        await next_event(ws, lambda m: m["sensorId"] == "ara" and m["value"] == 0)
    finally:
        await ws.close()


async def test_drive_fires_locomotion_command_and_moves_encoders_and_imu_yaw(emu, http):
    locomotion = await subscribe(http, emu, "LocomotionCommand", "loco", DebounceMs=0)
    encoders = await subscribe(http, emu, "DriveEncoders", "enc", DebounceMs=0)
    imu = await subscribe(http, emu, "IMU", "imu", DebounceMs=0)
    try:
        start_yaw = (await next_event(imu))["message"]["yaw"]
        resp, _ = await call(http, emu, "POST", "/api/drive/time", {"LinearVelocity": 50, "AngularVelocity": 100,
                                                                    "TimeMs": 400})  # fmt: skip
        assert resp.status == 200
        command = (await next_event(locomotion))["message"]
        assert command["linearVelocity"] == pytest.approx(0.175) and command["angularVelocity"] == 90
        moved = await next_event(encoders, lambda m: m["leftDistance"] > 0 and m["rightDistance"] > m["leftDistance"])
        assert moved["message"]["sensorId"] == "enc"
        # 90 deg/s for 0.4 s: the heading turns by 36 degrees (plus the gyro's drift and noise).
        turned = await next_event(imu, lambda m: (m["yaw"] - start_yaw) % 360 > 30)
        assert (turned["message"]["yaw"] - start_yaw) % 360 < 40
    finally:
        for ws in (locomotion, encoders, imu):
            await ws.close()


async def test_speak_fires_text_to_speech_complete_with_the_utterance_id(emu, http):
    ws = await subscribe(http, emu, "TextToSpeechComplete", "tts", DebounceMs=0)
    try:
        await call(http, emu, "POST", "/api/tts/speak", {"Text": "Hello there", "UtteranceId": "greeting"})
        event = await next_event(ws)
        assert event["message"]["utteranceId"] == "greeting" and "created" in event["message"]
    finally:
        await ws.close()


async def test_play_audio_fires_audio_play_complete_and_an_unknown_file_is_a_400(emu, http):
    _, listing = await call(http, emu, "GET", "/api/audio/list")
    names = [a["name"] for a in listing["result"]]
    assert "s_Acceptance.wav" in names
    resp, body = await call(http, emu, "POST", "/api/audio/play", {"FileName": "nope.wav"})
    assert resp.status == 400 and "nope.wav" in body["error"]
    ws = await subscribe(http, emu, "AudioPlayComplete", "played", DebounceMs=0)
    try:
        await call(http, emu, "POST", "/api/audio/play", {"FileName": "s_SystemCameraShutter.wav", "Volume": 40})
        event = await next_event(ws)
        assert event["message"]["metaData"] == {"name": "s_SystemCameraShutter.wav", "durationMs": 400}
    finally:
        await ws.close()


async def test_capture_speech_fires_voice_record_with_a_generated_recording(emu, http):
    ws = await subscribe(http, emu, "VoiceRecord", "voice", DebounceMs=0)
    try:
        resp, _ = await call(http, emu, "POST", "/api/audio/speech/capture", {"MaxSpeechLength": 500})
        assert resp.status == 200
        event = await next_event(ws)
        assert event["message"]["success"] is True and event["message"]["filename"] == CAPTURE_FILE
    finally:
        await ws.close()
    _, body = await call(http, emu, "GET", "/api/audio", {"FileName": CAPTURE_FILE, "Base64": True})
    recording = base64.b64decode(body["result"]["base64"])
    with wave.open(io.BytesIO(recording)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(0.5)
    resp, raw = await call(http, emu, "GET", "/api/audio", {"FileName": CAPTURE_FILE})
    assert resp.content_type == "audio/wav" and raw == recording


async def test_the_object_detector_reports_the_scenes_disc(emu, http):
    ws = await subscribe(http, emu, "ObjectDetection", "things", DebounceMs=0)
    try:
        resp, _ = await call(http, emu, "POST", "/api/objects/detection/start", {"MinimumConfidence": 0.6})
        assert resp.status == 200
        event = await next_event(ws)
        assert event["message"]["description"] == "sports ball" and event["message"]["confidence"] >= 0.6
    finally:
        await ws.close()


async def test_the_client_moves_drives_and_speaks_and_the_log_shows_what_it_said(emu):
    from clients.misty import MistyClient

    async with MistyClient(emu.url()) as misty:
        assert await misty.move_head(pitch=-10, duration=0)
        assert await misty.move_arms(left=45, right=45, duration=0)
        assert await misty.drive(20, 0, time_ms=100)
        assert await misty.stop()
        assert await misty.speak("hello", utterance_id="u1")
        assert await misty.play_audio("s_Joy.wav", volume=30)
        assert "s_Joy.wav" in [a["name"] for a in await misty.get_audio_list()]
    told = [(e.detail["command"], e.detail["arguments"]) for e in emu.events.query("command", limit=0)]
    assert told == [
        ("MoveHead", {"pitch": -10.0, "duration": 0.0}),
        ("MoveArms", {"leftArmPosition": 45.0, "rightArmPosition": 45.0, "duration": 0.0}),
        ("DriveTime", {"linearVelocity": 20.0, "angularVelocity": 0.0, "timeMs": 100}),
        ("Stop", {}),
        ("Speak", {"text": "hello", "utteranceId": "u1"}),
        ("PlayAudio", {"fileName": "s_Joy.wav", "volume": 30}),
        ("GetAudioList", {}),
    ]
