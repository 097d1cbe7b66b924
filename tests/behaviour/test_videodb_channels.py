"""VideoDB WebSocket, scenario scripts, alerts and capture sessions, driven by frames handed to the
emulator the way its ingest worker hands them over (no source needed): delivery goes only to the
registered connection, scripted scenes are deterministic, disabled alerts stay silent.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np
import pytest
import yaml

from clients.videodb import CollectionListener, VideoDBClient, VideoDBError
from contracts.asyncapi import validate_message
from emulators.videodb.device import VideoDBEmulator
from emulators.videodb.indexing import analyse_frame
from emulators.videodb.ingest import FrameSampled

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

# Port 9 on loopback refuses at once: the stream exists and retries quietly in the background.
DEAD_SOURCE = "rtsp://127.0.0.1:9/none"
T0 = 1_800_000_000.0


def validate(message: dict[str, Any], name: str) -> None:
    validate_message("videodb", name, message)


def feed_frames(emu: VideoDBEmulator, rtstream_id: str, seconds: float, fps: float = 4.0) -> None:
    """Hand decoded frames to the emulator exactly as the ingest worker's signals do."""
    worker = emu.service.pipeline.runtimes[rtstream_id].worker
    assert worker is not None
    for i in range(int(seconds * fps)):
        shade = 40 + (i * 25) % 200
        frame = np.full((120, 160, 3), (shade, 30, 200), dtype=np.uint8)
        emu.service.pipeline.on_signal(rtstream_id, worker, FrameSampled(analyse_frame(frame, T0 + i / fps)))


async def next_message(listener: CollectionListener, within_s: float = 5.0) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for message in listener:
            return message.raw
        raise AssertionError("the WebSocket closed")

    return await asyncio.wait_for(first(), within_s)


async def test_the_websocket_refuses_a_bad_token_and_greets_with_a_connection_id(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("videodb")
    async with VideoDBClient(emu.settings.api_key, emu.url()) as c:
        url = await c.websocket_url()
        assert url.startswith("ws://127.0.0.1:") and "token=" in url
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url.split("token=")[0] + "token=forged")
            assert refused.value.status == 401
        async with CollectionListener(url) as first, CollectionListener(url) as second:
            validate({"type": "connected", "connection_id": first.connection_id}, "Connected")
            assert first.connection_id != second.connection_id  # a fresh id per connection, token reusable


async def test_scene_records_and_alerts_reach_only_the_registered_connection(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("videodb")
    async with VideoDBClient(emu.settings.api_key, emu.url()) as c:
        url = await c.websocket_url()
        async with CollectionListener(url) as mine, CollectionListener(url) as other:
            rts = await c.connect_rtstream(DEAD_SOURCE, "Lobby", ws_connection_id=mine.connection_id)
            index = await c.index_visuals(rts["id"], time_s=2, frame_count=3, ws_connection_id=mine.connection_id)
            event = await c.create_event("bright blue scene", "blue")
            alert = await c.create_alert(rts["id"], index["rtstream_index_id"], event, None,
                                         ws_connection_id=mine.connection_id)
            feed_frames(emu, rts["id"], seconds=4.5)
            scene = await next_message(mine)
            validate(scene, "SceneIndex")
            assert scene["channel"] == "scene_index" and scene["data"]["end"] - scene["data"]["start"] == 2000
            fired = await next_message(mine)
            validate(fired, "Alert")
            assert fired["alert_id"] == alert and fired["data"]["label"] == "blue"
            with pytest.raises(TimeoutError):
                await next_message(other, within_s=0.3)

            await c.set_alert(rts["id"], index["rtstream_index_id"], alert, enabled=False)
            before = len(emu.events.query(kind="alert.fired"))
            feed_frames(emu, rts["id"], seconds=3)
            assert len(emu.events.query(kind="alert.fired")) == before


async def test_a_scenario_script_drives_descriptions_and_the_visual_index_channel_flag(
    emulator_factory: EmulatorFactory,
) -> None:
    settings = {"visual_index_channel": True}
    emu = await emulator_factory("videodb", settings=settings)
    async with VideoDBClient(emu.settings.api_key, emu.url()) as c:
        listener_url = await c.websocket_url()
        async with CollectionListener(listener_url) as ws:
            rts = await c.connect_rtstream(DEAD_SOURCE, "Lobby")
            index = await c.index_visuals(rts["id"], time_s=2, frame_count=2, ws_connection_id=ws.connection_id)
            loaded = await emu.scenario_controls["script"]({"rtstream_id": rts["id"], "scenario": "lobby"})
            assert loaded["visual"] == 4
            feed_frames(emu, rts["id"], seconds=8.5)
            message = await next_message(ws)
            assert message["channel"] == "visual_index"
            scenes = await c.get_scenes(rts["id"], index["rtstream_index_id"])
            texts = [s["description"] for s in reversed(scenes["scene_index_records"])]
            assert texts == [
                "An empty hotel lobby with a reception desk and two armchairs.",
                "An empty hotel lobby with a reception desk and two armchairs.",
                "A person pushes a luggage trolley past the reception desk.",
                "A person pushes a luggage trolley past the reception desk.",
            ]
            hits = await c.search(rts["id"], "luggage trolley")
            assert hits and hits[0]["scene_index_id"] == index["rtstream_index_id"]
        with pytest.raises(Exception, match="scenario"):
            await emu.scenario_controls["script"]({"rtstream_id": rts["id"], "scenario": "nowhere"})


async def test_the_same_frames_and_seed_give_the_same_ids_and_descriptions(emulator_factory: EmulatorFactory) -> None:
    async def run() -> tuple[str, list[str]]:
        emu = await emulator_factory("videodb", seed=3)
        async with VideoDBClient(emu.settings.api_key, emu.url()) as c:
            rts = await c.connect_rtstream(DEAD_SOURCE, "Cam")
            index = await c.index_visuals(rts["id"], time_s=1, frame_count=2,
                                          prompt='Answer in JSON: {"description": "", "motion": "", "people": 0}')
            feed_frames(emu, rts["id"], seconds=3.5)
            scenes = await c.get_scenes(rts["id"], index["rtstream_index_id"])
            return index["rtstream_index_id"], [s["description"] for s in scenes["scene_index_records"]]

    first, second = await run(), await run()
    assert first == second and len(first[1]) == 3
    assert set(yaml.safe_load(first[1][0])) == {"description", "motion", "people"}


async def test_a_capture_session_exposes_its_channels_as_rtstreams_to_the_sdk(
    emulator_factory: EmulatorFactory,
) -> None:
    videodb = pytest.importorskip("videodb")
    emu = await emulator_factory("videodb")
    async with VideoDBClient(emu.settings.api_key, emu.url()) as c:
        mic = await c.connect_rtstream(DEAD_SOURCE, "mic:default", media_types=["audio"])
        screen = await c.connect_rtstream(DEAD_SOURCE, "display:1")
        channels = {"mic": mic["id"], "screen": screen["id"]}
        session = await emu.scenario_controls["capture_session"]({"channels": channels})

        def sdk() -> tuple[list[Any], list[Any]]:
            conn = videodb.connect(api_key=emu.settings.api_key, base_url=emu.url())
            capture = conn.get_capture_session(session["session_id"])
            return capture.get_rtstream("mic"), capture.get_rtstream("system_audio")

        mics, system = await asyncio.to_thread(sdk)
        assert [m.id for m in mics] == [mic["id"]] and system == []
        with pytest.raises(VideoDBError) as missing:
            await c.request("GET", "collection/default/capture/session/cap-nope")
        assert missing.value.status == 404


async def test_reset_stops_every_ingest_thread_and_forgets_the_account(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("videodb")
    async with VideoDBClient(emu.settings.api_key, emu.url()) as c:
        rts = await c.connect_rtstream(DEAD_SOURCE, "Cam", store=True)
        worker = emu.service.pipeline.runtimes[rts["id"]].worker
        assert worker is not None and worker.alive
        await emu.reset(seed=5)
        assert not worker.alive
        assert emu.backend.streams == {} and emu.service.pipeline.runtimes == {}
        assert emu.tasks.names() == ["videodb:webhooks"]
        with pytest.raises(VideoDBError) as gone:
            await c.get_rtstream(rts["id"])
        assert gone.value.status == 404


async def test_reset_keeps_a_persistent_data_dir_unless_asked_to_wipe_it(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "account"
    emu = await emulator_factory("videodb", settings={"data_dir": str(data_dir)})
    async with VideoDBClient(emu.settings.api_key, emu.url()) as c, aiohttp.ClientSession() as http:
        rts = await c.connect_rtstream(DEAD_SOURCE, "Cam", store=True)

        async def reset(body: dict[str, Any]) -> dict[str, Any]:
            async with http.post(f"{emu.url()}/_emulator/reset", json=body) as response:
                return {"status": response.status, **(await response.json())}

        assert (await reset({"seed": 5}))["reset"] is True
        assert (await c.get_rtstream(rts["id"]))["name"] == "Cam"  # boot state of a persistent account: itself
        assert (data_dir / "state.json").exists()
        refused = await reset({"wipe_data": "yes"})
        assert refused["status"] == 400 and "wipe_data" in json.dumps(refused)
        assert (await reset({"wipe_data": True}))["reset"] is True
        assert emu.backend.streams == {} and not (data_dir / "state.json").exists()
        assert data_dir.is_dir()


async def test_a_segment_cut_short_by_a_kill_is_removed_at_the_next_start(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "account"
    settings = {"data_dir": str(data_dir)}
    emu = await emulator_factory("videodb", settings=settings)
    async with VideoDBClient(emu.settings.api_key, emu.url()) as c:
        rts = await c.connect_rtstream(DEAD_SOURCE, "Cam", store=True)
    await emu.aclose()
    # What a SIGKILL leaves: the segment being written (never filed) and a stream created after the last save.
    partial = data_dir / rts["id"] / "rec-1" / "0.ts"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"\x47" + b"\x00" * 187 * 3)
    unsaved = data_dir / "rts-unsaved" / "rec-1" / "0.ts"
    unsaved.parent.mkdir(parents=True)
    unsaved.write_bytes(b"\x47")
    again = await emulator_factory("videodb", settings=settings)
    assert not partial.exists() and not unsaved.parent.parent.exists()
    cleaned = again.events.query(kind="recording.cleaned")
    assert cleaned and sorted(cleaned[0].detail["removed"]) == sorted(["rts-unsaved", f"{rts['id']}/rec-1/0.ts"])
    assert rts["id"] in again.backend.streams
