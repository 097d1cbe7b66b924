"""Capture sessions through the videodb 0.5.1 SDK: created with ``create_capture_session``, started by the
desktop client (the emulator's ``capture_session`` scenario control maps its channels to RTStreams), stopped and
exported, each step announced as a ``capture_session.*`` WebSocket message."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest
from rtmp_server import rtmp_server  # the shared nginx-rtmp helper next to this file
from test_videodb_sdk import ffmpeg_push, ffprobe_duration, wait_for_event  # helpers next to this file

from contracts.asyncapi import validate_message
from emulators.pytest_plugin import start_emulator

videodb = pytest.importorskip("videodb")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe (Debian package: ffmpeg)"),
]

SETTINGS = {"segment_s": 1.0}


async def capture_events(ws: Any, until: str) -> list[dict[str, Any]]:
    seen = []
    async for message in ws.receive():
        if message.get("channel") == "capture_session":
            validate_message("videodb", "CaptureSession", message)
            seen.append(message)
            if message["event"] == until:
                return seen
    raise AssertionError(f"the WebSocket closed before {until}")


async def test_a_capture_session_is_created_started_stopped_and_exported_through_the_sdk() -> None:
    with rtmp_server() as rtmp, ffmpeg_push(rtmp.url()), start_emulator("videodb", settings=SETTINGS) as target:
        conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
        ws = await asyncio.to_thread(conn.connect_websocket)
        await ws.connect()
        try:
            coll = await asyncio.to_thread(conn.get_collection)
            screen = await asyncio.to_thread(
                coll.connect_rtstream, url=rtmp.url(), name="display:1", media_types=["video"], store=True
            )
            mic = await asyncio.to_thread(
                coll.connect_rtstream, url="rtsp://127.0.0.1:9/none", name="mic:default", media_types=["audio"]
            )
            session = await asyncio.to_thread(
                coll.create_capture_session, "user-7", ws_connection_id=ws.connection_id, metadata={"desk": 4}
            )
            assert session.id.startswith("cap-") and session.status == "created"
            assert [e["event"] for e in await asyncio.wait_for(capture_events(ws, "capture_session.created"), 10)] \
                == ["capture_session.created"]

            async def desktop_client_starts() -> dict[str, Any]:
                control = target.emulator.scenario_controls["capture_session"]
                return await control({"session_id": session.id, "channels": {"screen": screen.id, "mic": mic.id}})

            await asyncio.to_thread(target.call, desktop_client_starts)
            started = await asyncio.wait_for(capture_events(ws, "capture_session.active"), 10)
            assert [e["event"] for e in started] == ["capture_session.starting", "capture_session.active"]
            assert {r["rtstream_id"] for r in started[-1]["data"]["rtstreams"]} == {screen.id, mic.id}

            active = await asyncio.to_thread(conn.get_capture_session, session.id)
            assert active.status == "active"
            assert [s.id for s in active.get_rtstream("screen")] == [screen.id]
            assert [s.id for s in active.get_rtstream("mic")] == [mic.id] and active.get_rtstream("system_audio") == []

            await asyncio.to_thread(wait_for_event, target, "rtstream.segment", screen.id, 1)  # two segments
            await asyncio.to_thread(conn.post, path=f"capture/session/{session.id}/stop")
            stopped = await asyncio.wait_for(capture_events(ws, "capture_session.stopped"), 10)
            assert [e["event"] for e in stopped] == ["capture_session.stopping", "capture_session.stopped"]
            assert (await asyncio.to_thread(coll.get_rtstream, screen.id)).status == "stopped"

            exported = await asyncio.to_thread(active.export)
            assert exported["export_status"] == "exported" and exported["video_channel_id"] == "screen"
            done = (await asyncio.wait_for(capture_events(ws, "capture_session.exported"), 10))[-1]
            assert done["data"]["exported_video_id"] == exported["video_id"]
            assert (await asyncio.to_thread(conn.get_capture_session, session.id)).exported_video_id == \
                exported["video_id"]
            assert await asyncio.to_thread(ffprobe_duration, exported["stream_url"]) > 0
        finally:
            await ws.close()
