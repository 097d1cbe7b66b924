"""The recall emulator (or the real service via --target) passes schemathesis against contracts/openapi/recall.yaml,
and the emulator's streams pass the AsyncAPI documents and the binary frame validator.

Fuzzing setup, with reasons:
- The emulator runs with rate limits off (a fuzzer sends hundreds of creates a minute) and every meeting
  "missing" (bots end fatal/meeting_not_found), so generated destination URLs are never dialled.
- Excluded check ``positive_data_acceptance``: two rules span fields and cannot be said in JSON Schema
  (one API generation per request; a subscribed event needs its artifact), so some schema-valid bodies are 400.
- Excluded check ``negative_data_rejection``: the service ignores unknown fields and accepts null for optional
  objects (Django REST framework behaviour), so some schema-invalid bodies are rightly accepted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from clients.recall import AudioReceiver, RealtimeReceiver, RecallClient, VideoReceiver
from contracts.asyncapi import load as load_asyncapi
from contracts.asyncapi import schema_for
from contracts.recall_frames import FrameValidator
from contracts.runner import openapi_path, run_schemathesis
from emulators.kit.emulator import kit_path
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.pytest_plugin import Target, start_emulator
from emulators.recall.device import DEV_API_KEY, RecallEmulator
from tests.conftest import EmulatorFactory

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

EXCLUDED_CHECKS = ("positive_data_acceptance", "negative_data_rejection")


@pytest.fixture(scope="module")
def asyncapi() -> dict:
    return load_asyncapi("recall")


def message_schema(asyncapi: dict, name: str) -> dict:
    return schema_for("recall", f"messages/{name}/payload")


@pytest.fixture(scope="module")
def fuzz_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """--target recall=URL (with --target-credential recall.api_key=...) or an emulator set up for fuzzing."""
    if any(spec.startswith("recall=") for spec in request.config.getoption("benchtwin_targets") or []):
        yield request.getfixturevalue("recall_target_module")
        return
    with start_emulator("recall", settings={"rate_limits": False, "scenario": "missing-meeting"}) as target:
        yield target


def test_recall_api_passes_schemathesis_with_zero_failures(fuzz_target: Target) -> None:
    # Against the real service every create sends a real bot to a meeting: fuzz only the reading operations.
    writes = () if fuzz_target.is_emulator else (
        "bot_create", "bot_leave_call_create", "bot_destroy", "bot_partial_update")
    result = run_schemathesis(
        "recall", fuzz_target.url, max_examples=5, seed=5, exclude_checks=EXCLUDED_CHECKS,
        headers={"Authorization": f"Token {fuzz_target.credentials['api_key']}"}, exclude_operation_ids=writes,
    )
    assert result.ok, result.output[-6000:]
    assert requests.get(f"{fuzz_target.url}/api/v1/bot/", timeout=10,
                        headers={"Authorization": fuzz_target.credentials["api_key"]}).status_code == 200


def test_every_route_is_in_the_document() -> None:
    document = yaml.safe_load(Path(openapi_path("recall")).read_text())
    emulator = RecallEmulator(egress=EGRESS, settings={"port": 0})
    for resource in emulator.build_app().router.resources():
        path = resource.canonical.replace("{bot_id}", "{id}")
        if not kit_path(path):  # the kit's own routes (control plane, /metrics) are in the control-plane document
            assert path in document["paths"], path


MEET = "https://meet.google.com/con-trac-tss"
SCENARIO = {"name": "contract", "meeting_urls": [MEET], "duration_s": 1000,
            "participants": [{"id": 100, "is_host": True}, {"id": 200}],
            "speaking": [{"participant": 100, "start_s": 1, "end_s": 20, "text": "contract check"}]}


async def test_legacy_video_frames_pass_the_validator_and_the_hello_schema(
    emulator_factory: EmulatorFactory, asyncapi: dict
) -> None:
    emu = await emulator_factory("recall")
    async with VideoReceiver() as receiver:
        await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
        async with RecallClient(DEV_API_KEY, emu.url()) as client:
            bot = await client.create_bot(MEET, recording_mode="gallery_view", real_time_media={
                "websocket_video_destination_url": receiver.url})
            await receiver.wait_for(lambda: len(receiver.frames) >= 8)
            await emu.scenario_controls["start_screenshare"]({"participant_id": 100})
            await receiver.wait_for(lambda: any(f.width == 1024 for f in receiver.frames))
            await receiver.wait_for(lambda: sum(1 for f in receiver.frames if f.width == 256) >= 2)
            await client.leave_call(bot["id"])
    for connection in receiver.connections:
        jsonschema.validate(connection.hello, message_schema(asyncapi, "VideoHello"))
    validator = FrameValidator(preset="seed", participant_ids={100, 200})
    for frame in receiver.frames:
        validator.feed(frame.connection, frame.received_at, bytes(frame.participant_id.to_bytes(4, "little")
                       + frame.timestamp_ms.to_bytes(4, "little") + frame.png), decode=True)
    report = validator.finish()
    assert report.ok, report.problems
    assert report.sizes >= {(1280, 720), (1024, 576), (256, 144)}


async def test_audio_and_realtime_messages_match_the_asyncapi_schemas(asyncapi: dict) -> None:
    async with (
        RecallEmulator(egress=EGRESS, settings={"port": 0}) as emu,
        AudioReceiver() as audio,
        RealtimeReceiver() as rt,
    ):
        await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
        async with RecallClient(DEV_API_KEY, emu.url()) as client:
            legacy = await client.create_bot(MEET, real_time_media={"websocket_audio_destination_url": audio.url})
            current = await client.create_bot(MEET, recording_config={
                "video_mixed_layout": "gallery_view_v2", "video_separate_png": {}, "audio_mixed_raw": {},
                "audio_separate_raw": {}, "transcript": {}, "realtime_endpoints": [{"type": "websocket",
                "url": rt.url, "events": ["video_separate_png.data", "audio_mixed_raw.data",
                                          "audio_separate_raw.data", "participant_events.speech_on",
                    "participant_events.speech_off", "participant_events.leave", "transcript.data"]}]})
            await audio.wait_for(lambda: len(audio.chunks) >= 5)
            await rt.wait_for(lambda: len(rt.of("video_separate_png.data")) >= 2 and len(rt.of(
                "audio_mixed_raw.data")) >= 2)
            await emu.scenario_controls["set_active_speaker"]({"participant_id": 200, "bot_id": current["id"]})
            await emu.scenario_controls["remove_participant"]({"participant_id": 200, "bot_id": current["id"]})
            await rt.wait_for(lambda: bool(rt.of("participant_events.leave")) and bool(rt.of("transcript.data")))
            await client.leave_call(legacy["id"])
            await client.leave_call(current["id"])
    jsonschema.validate(audio.connections[0].hello, message_schema(asyncapi, "AudioHello"))
    assert all(len(c.pcm) % 2 == 0 for c in audio.chunks)
    names = {"video_separate_png.data": "VideoSeparatePng", "audio_mixed_raw.data": "AudioMixedRaw",
             "audio_separate_raw.data": "AudioSeparateRaw",
             "transcript.data": "TranscriptData"}
    for event in rt.events:
        name = names.get(event.event, "ParticipantEvent")
        jsonschema.validate({"event": event.event, "data": event.data}, message_schema(asyncapi, name))
    assert not rt.errors
    json.dumps(rt.counts())
    await asyncio.sleep(0)


LIVELY = {"name": "contract-lively", "meeting_urls": ["https://meet.google.com/liv-elyc-ont"], "duration_s": 1000,
          "participants": [{"id": 100, "is_host": True}, {"id": 200, "webcam_off": [[2, 3]]}],
          "speaking": [{"participant": 100, "start_s": 1, "end_s": 4, "text": "contract check"}],
          "chat": [{"participant": 200, "at_s": 4, "text": "hello"}],
          "renames": [{"participant": 200, "at_s": 5, "name": "Renamed"}]}


async def test_every_v111_event_matches_the_asyncapi_schemas(asyncapi: dict, emulator_factory: EmulatorFactory) -> None:
    events = ["participant_events.join", "participant_events.update", "participant_events.webcam_on",
              "participant_events.webcam_off", "participant_events.chat_message", "transcript.partial_data",
              "transcript.data"]
    emu = await emulator_factory("recall")
    await emu.scenario_controls["load_scenario"]({"scenario": LIVELY})
    async with RealtimeReceiver() as rt, RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(LIVELY["meeting_urls"][0], recording_config={
            "participant_events": {}, "transcript": {},
            "realtime_endpoints": [{"type": "websocket", "url": rt.url, "events": events}]})
        await rt.wait_for(lambda: bool(rt.of("participant_events.update")))
        await client.leave_call(bot["id"])
    assert set(rt.counts()) == set(events) and not rt.errors
    for event in rt.events:
        name = "TranscriptData" if event.event.startswith("transcript.") else "ParticipantEvent"
        jsonschema.validate({"event": event.event, "data": event.data}, message_schema(asyncapi, name))
