"""The official videodb 0.5.1 SDK runs the RTStream workflow against the emulator, fed by Debian's ffmpeg
pushing a test pattern with a tone to a real nginx-rtmp server that the emulator pulls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rtmp_server import free_loopback_port, rtmp_server  # the shared nginx-rtmp helper next to this file

from emulators.kit.events import Event
from emulators.pytest_plugin import Target, start_emulator

videodb = pytest.importorskip("videodb")
InvalidRequestError = videodb.exceptions.InvalidRequestError

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian package: ffmpeg)"),
    pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe (Debian package: ffmpeg)"),
]

SETTINGS = {"segment_s": 1.0, "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0}
CHANNELS = {"scene_index", "audio_index", "transcript", "alert"}


def speech_wav(folder: Path) -> Path:
    """espeak-ng saying a sentence, then 1 s of silence (looped, each loop is one utterance)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng for a voice source (Debian package: espeak-ng)")
    said, padded = folder / "said.wav", folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(said), "The lobby is bright and busy today."], check=True, timeout=30)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(said), "-af", "apad=pad_dur=1",
         str(padded)], check=True, timeout=30,
    )
    return padded


@contextlib.contextmanager
def ffmpeg_push(url: str, seconds: int = 40, voice: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """ffmpeg publishing 320x240 at 10 fps with a 1 s on / 1 s off 440 Hz tone, or ``voice`` looped."""
    sound = (
        ["-stream_loop", "-1", "-i", str(voice), "-map", "0:v", "-map", "1:a", "-t", str(seconds)]
        if voice is not None
        else [
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}",
            "-af", "volume='if(lt(mod(t,2),1),1,0)':eval=frame",
        ]
    )
    proc = subprocess.Popen(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc=size=320x240:rate=10:duration={seconds}",
            *sound,
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "32k", "-f", "flv", url,
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


def ffprobe_duration(url: str) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", url],
        capture_output=True, text=True, timeout=20, check=True,
    )
    return float(json.loads(out.stdout)["format"]["duration"])


def wait_for_event(target: Target, kind: str, stream: str, minimum: int = 0, timeout: float = 20.0) -> Event:
    """From the SDK's (blocking) thread: the first ``kind`` event of ``stream`` whose sequence (segments) or
    count of earlier such events (index records) reaches ``minimum``; the emulator records it on its own loop."""
    seen: list[Event] = []

    def wanted(event: Event) -> bool:
        if event.detail.get("stream") != stream:
            return False
        seen.append(event)
        return len(seen) > minimum

    return asyncio.run(target.emulator.events.wait_for(kind, wanted, timeout=timeout))


async def receive_channels(ws: Any, wanted: set[str]) -> dict[str, dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    async for message in ws.receive():
        seen.setdefault(message.get("channel"), message)
        if wanted <= set(seen):
            break
    return seen


async def test_official_sdk_runs_the_rtstream_workflow_from_an_nginx_rtmp_source(tmp_path: Path) -> None:
    with (
        rtmp_server() as rtmp,
        ffmpeg_push(rtmp.url(), voice=speech_wav(tmp_path)),  # a tone is not speech: a voice is transcribed
        start_emulator("videodb", settings=SETTINGS) as target,
    ):
        conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
        ws = await asyncio.to_thread(conn.connect_websocket)
        await ws.connect()
        try:
            assert ws.connection_id and ws.connection_id.startswith("conn-")
            run = await asyncio.to_thread(_workflow_until_indexed, conn, rtmp.url(), ws.connection_id)
            seen = await asyncio.wait_for(receive_channels(ws, CHANNELS), 20)
        finally:
            await ws.close()
        assert seen["alert"]["data"]["label"] == "bright"
        assert seen["scene_index"]["rtstream_id"] == run["rts"].id
        await asyncio.to_thread(_workflow_after_indexing, conn, run, target)


def _workflow_until_indexed(conn: Any, url: str, ws_id: str) -> dict[str, Any]:
    coll = conn.get_collection()
    rts = coll.connect_rtstream(
        url=url, name="SDK Lobby", media_types=["video", "audio"], sample_rate=5, store=True,
        enable_transcript=True, ws_connection_id=ws_id,
    )
    assert rts.status == "connected" and rts.id.startswith("rts-")
    assert coll.get_rtstream(rts.id).name == "SDK Lobby"
    assert [s.id for s in coll.list_rtstreams(limit=5, status="connected")] == [rts.id]
    scene_index = rts.index_visuals(
        prompt="Describe the scene", batch_config={"type": "time", "value": 1, "frame_count": 2},
        name="Visual", ws_connection_id=ws_id,
    )
    audio_index = rts.index_audio(
        prompt="Summarize the discussion", batch_config={"type": "word", "value": 5}, name="Audio",
        ws_connection_id=ws_id,
    )
    assert rts.start_transcript(ws_connection_id=ws_id)["status"] == "running"
    event_id = conn.create_event(event_prompt="a bright scene", label="bright")
    alert_id = scene_index.create_alert(event_id, callback_url="", ws_connection_id=ws_id)
    assert {e["event_id"] for e in conn.list_events()} == {event_id}
    assert [a["alert_id"] for a in scene_index.list_alerts()] == [alert_id]
    return {"coll": coll, "rts": rts, "scene_index": scene_index, "audio_index": audio_index, "alert_id": alert_id,
            "started": time.time()}


def _workflow_after_indexing(conn: Any, run: dict[str, Any], target: Any) -> None:
    coll, rts, scene_index, audio_index = run["coll"], run["rts"], run["scene_index"], run["audio_index"]
    scenes = scene_index.get_scenes()
    assert scenes["scenes"] and scenes["scenes"][0]["description"].startswith("A bright scene")
    assert rts.get_scene_index(scene_index.rtstream_index_id).extraction_config == {"time": "1", "frame_count": "2"}
    assert {i.rtstream_index_id for i in rts.list_scene_indexes()} == {
        scene_index.rtstream_index_id, audio_index.rtstream_index_id,
    }
    transcript = rts.get_transcript(page_size=10)
    assert transcript["transcription_records"] and transcript["transcription_records"][0]["text"]
    scene_index.disable_alert(run["alert_id"])
    assert scene_index.list_alerts()[0]["status"] == "disabled"
    scene_index.enable_alert(run["alert_id"])

    shots = rts.search("bright scene").get_shots()
    assert shots and shots[0].generate_stream().endswith(".m3u8")
    assert coll.search("bright scene", namespace="rtstream").get_shots()

    wait_for_event(target, "rtstream.segment", rts.id, minimum=2, timeout=15)  # three segments recorded
    assert target.control.state()["device_state"]["rtstreams"][rts.id]["segments"] >= 3
    rts.stop()
    assert coll.get_rtstream(rts.id).status == "stopped"

    player_url = rts.generate_stream(int(run["started"]) - 5, int(time.time()) + 1)
    assert rts.stream_url in player_url
    exported = rts.export()
    video = coll.get_video(exported.video_id)
    assert video.length == exported.duration and exported.name == "SDK Lobby - Recording"
    segment_s = 2.0  # segments are cut at the first keyframe after 1 s; the source has one per second
    assert abs(ffprobe_duration(exported.stream_url) - exported.duration) <= segment_s
    assert abs(ffprobe_duration(rts.stream_url) - exported.duration) <= segment_s
    # The seed's last steps touch the Video API; a phrase nobody said finds nothing (the voice-source workflow
    # test searches and compiles what was said).
    video.index_spoken_words(force=True)
    with pytest.raises(InvalidRequestError, match="No results found"):
        video.search("zyxwvut quokka")


def _misty_api(robot: Any, endpoint: str, **query: object) -> dict[str, Any]:
    """POST /api/<endpoint> with the arguments in the query string, as Misty's own SDKs do."""
    url = f"{robot.url}/api/{endpoint}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, method="POST")
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.load(response)


def test_official_sdk_indexes_and_records_the_misty_emulators_rtspd_stream() -> None:
    port = free_loopback_port()
    with start_emulator("misty") as robot, start_emulator("videodb", settings=SETTINGS) as target:
        assert _misty_api(robot, "services/avstreaming/enable")["result"] is True
        reply = _misty_api(
            robot, "avstreaming/start", url=f"rtspd:{port}", width=320, height=240, frameRate=10,
            videoBitRate=300_000, audioBitRate=32_000, audioSampleRateHz=16_000,
        )
        assert reply["result"] is True, reply
        try:
            conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
            coll = conn.get_collection()
            rts = coll.connect_rtstream(
                url=f"rtsp://127.0.0.1:{port}/", name="Misty", media_types=["video", "audio"], sample_rate=5,
                store=True,
            )
            scene_index = rts.index_visuals(batch_config={"type": "time", "value": 1, "frame_count": 2})
            wait_for_event(target, "index.record", rts.id, minimum=1)  # two scenes described
            wait_for_event(target, "rtstream.segment", rts.id, minimum=2)  # three segments recorded
            scenes = scene_index.get_scenes()["scenes"]
            assert len(scenes) >= 2 and target.control.state()["device_state"]["rtstreams"][rts.id]["segments"] >= 3
            # The robot paints a frame stamp into every frame; the emulated AI reads it back.
            assert any("frame stamp of stream" in s["description"] for s in scenes), scenes
            rts.stop()
            exported = rts.export()
            assert abs(ffprobe_duration(exported.stream_url) - exported.duration) <= 2.0
        finally:
            _misty_api(robot, "avstreaming/stop")


def test_a_steady_tone_gives_no_transcript_and_no_audio_index_text() -> None:
    with rtmp_server() as rtmp, ffmpeg_push(rtmp.url()), start_emulator("videodb", settings=SETTINGS) as target:
        conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
        rts = conn.get_collection().connect_rtstream(url=rtmp.url(), name="Tone", media_types=["video", "audio"])
        audio_index = rts.index_audio(batch_config={"type": "word", "value": 2})
        rts.start_transcript()
        wait_for_event(target, "audio.not_speech", rts.id, minimum=1)  # two bursts of tone heard and judged
        assert rts.get_transcript()["transcription_records"] == []
        assert audio_index.get_scenes()["scenes"] == []
