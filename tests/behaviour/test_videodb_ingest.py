"""VideoDB behaviour with a real RTMP source (Debian's ffmpeg listening as an RTMP server): recording and HLS
playback, export, indexing with WebSocket delivery and alert webhooks, restart persistence, and a source
that dies, comes back, or sends garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import av
import jsonschema
import pytest

from clients.videodb import CollectionListener, VideoDBClient, VideoDBError
from contracts.asyncapi import schema_for, validate_message
from emulators.kit.events import Event

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory, WebhookReceiver

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian package: ffmpeg)")

FAST = {
    "segment_s": 1.0,
    "reconnect_initial_s": 0.2,
    "reconnect_max_s": 0.5,
    "error_after_s": 1.0,
    "read_timeout_s": 2.0,
    "webhook_retry_interval_s": 0.1,
}


def validate(message: dict[str, Any], name: str) -> None:
    validate_message("videodb", name, message)


def of_stream(rtstream_id: str, check: Callable[[dict[str, Any]], bool] = lambda d: True) -> Callable[[Event], bool]:
    """An event predicate: about this stream, and ``check`` holds for its detail."""
    return lambda e: e.detail.get("stream") == rtstream_id and check(e.detail)


def speech_wav(folder: Path) -> Path:
    """espeak-ng saying a sentence, then 1 s of silence (looped, each loop is one utterance)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng for a voice source (Debian package: espeak-ng)")
    said, padded = folder / "said.wav", folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(said), "A parcel was left at the front door."], check=True, timeout=30)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(said), "-af", "apad=pad_dur=1",
         str(padded)], check=True, timeout=30,
    )
    return padded


@contextlib.asynccontextmanager
async def ffmpeg_rtmp_source(
    port: int, *, seconds: float = 30.0, audio: tuple[str, ...] = ("-c:a", "aac", "-b:a", "32k"),
    voice: Path | None = None,
) -> AsyncIterator[str]:
    """A 320x240 10 fps test pattern with a 1 s on / 1 s off tone (or ``voice`` looped), served by ffmpeg as an
    RTMP listener."""
    url = f"rtmp://127.0.0.1:{port}/live/test"
    sound = (
        ("-stream_loop", "-1", "-i", str(voice), "-map", "0:v", "-map", "1:a", "-t", str(seconds))
        if voice is not None
        else (
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}",
            "-af", "volume='if(lt(mod(t,2),1),1,0)':eval=frame",
        )
    )
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", f"testsrc=size=320x240:rate=10:duration={seconds}",
        *sound,
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10", "-pix_fmt", "yuv420p",
        *audio, "-f", "flv", "-listen", "1", url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield url
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def ffprobe_duration(url: str) -> float:
    proc = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()[-500:]
    return float(json.loads(out)["format"]["duration"])


async def test_a_recorded_stream_is_indexed_alerted_played_back_and_exported(
    tmp_path: Path, free_port: int, emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver
) -> None:
    settings = {**FAST, "data_dir": str(tmp_path / "data")}
    hook_url = webhook_receiver.url + "/alerts"
    webhook_receiver.status = 503  # the first delivery is retried
    emu = await emulator_factory("videodb", settings=settings)
    async with (
        ffmpeg_rtmp_source(free_port, voice=speech_wav(tmp_path)) as source,  # a tone is not speech: a voice
        VideoDBClient(emu.settings.api_key, emu.url()) as client,
        CollectionListener(await client.websocket_url()) as listener,
    ):
        validate({"type": "connected", "connection_id": listener.connection_id}, "Connected")
        ws_id = listener.connection_id
        rts = await client.connect_rtstream(
            source, "Lobby", media_types=["video", "audio"], store=True, sample_rate=5, ws_connection_id=ws_id
        )
        index = await client.index_visuals(rts["id"], time_s=1, frame_count=2, ws_connection_id=ws_id)
        audio = await client.index_audio(rts["id"], segmenter="word", value=3, ws_connection_id=ws_id)
        event_id = await client.create_event("a bright scene", "bright")
        await client.create_alert(rts["id"], index["rtstream_index_id"], event_id, hook_url, ws_connection_id=ws_id)

        seen: dict[str, dict[str, Any]] = {}

        async def collect() -> None:
            async for message in listener:
                seen.setdefault(message.channel, message.raw)
                if {"scene_index", "alert", "transcript", "audio_index"} <= set(seen):
                    return

        await asyncio.wait_for(collect(), 15)
        validate(seen["scene_index"], "SceneIndex")
        validate(seen["alert"], "Alert")
        validate(seen["transcript"], "Transcript")
        validate(seen["audio_index"], "AudioIndex")
        assert seen["scene_index"]["data"]["text"].startswith("A bright scene")

        await webhook_receiver.wait_for(1, timeout=10)
        webhook_receiver.status = 204  # the retry (after webhook_retry_interval_s) is accepted
        body = (await webhook_receiver.wait_for(2, timeout=10))[1].json()
        jsonschema.validate(body, schema_for("videodb", "schemas/AlertWebhook"))
        assert body["event_id"] == f"event-{event_id}" and body["label"] == "bright"

        scenes = await client.get_scenes(rts["id"], index["rtstream_index_id"])
        starts = [s["start"] for s in scenes["scene_index_records"]]
        assert starts == sorted(starts, reverse=True) and len(starts) >= 1
        assert (await client.get_transcript(rts["id"]))["total_count"] >= 1
        assert (await client.get_scenes(rts["id"], audio["rtstream_index_id"]))["scene_index_records"]

        with pytest.raises(VideoDBError, match="No recordings available"):
            await client.export(rts["id"])
        await emu.events.wait_for("rtstream.segment", of_stream(rts["id"], lambda d: d["sequence"] >= 2), timeout=12)
        assert len(emu.backend.rtstream(rts["id"]).all_segments()) >= 3
        live = await client.generate_stream(rts["id"], time.time() - 60, time.time() + 60)
        async with aiohttp.ClientSession() as http, http.get(live["stream_url"]) as resp:
            playlist = await resp.text()
        assert resp.status == 200 and resp.content_type == "application/vnd.apple.mpegurl"
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist and "#EXT-X-ENDLIST" not in playlist
        await client.stop(rts["id"])
        assert (await client.get_rtstream(rts["id"]))["status"] == "stopped"

        now = time.time()
        window = await client.generate_stream(rts["id"], now - 60, now)
        assert window["stream_url"] in window["player_url"]
        exported = await client.export(rts["id"])
        assert exported["video_id"].startswith("m-")
        assert (await client.export(rts["id"]))["video_id"] == exported["video_id"]
        segment_s = max(s.duration for s in emu.backend.rtstream(rts["id"]).all_segments())
        played = await ffprobe_duration(exported["stream_url"]) if shutil.which("ffprobe") else exported["duration"]
        assert abs(played - exported["duration"]) <= segment_s
        assert abs(await ffprobe_duration(window["stream_url"]) - exported["duration"]) <= segment_s

        export_id, rts_id = exported["video_id"], rts["id"]

    # The same data directory after a restart: the recording and the exported video are still served.
    await emu.aclose()
    again = await emulator_factory("videodb", settings=settings)
    async with VideoDBClient(again.settings.api_key, again.url()) as client:
        assert (await client.get_rtstream(rts_id))["status"] == "stopped"
        video = await client.request("GET", f"video/{export_id}")
        assert video["length"] == exported["duration"]
        assert abs(await ffprobe_duration(video["stream_url"]) - video["length"]) <= segment_s


async def test_a_killed_source_turns_the_stream_to_error_and_back_to_connected_when_it_returns(
    free_port: int, emulator_factory: EmulatorFactory
) -> None:
    emu = await emulator_factory("videodb", settings=FAST)
    async with VideoDBClient(emu.settings.api_key, emu.url()) as client:
        async with ffmpeg_rtmp_source(free_port) as source:
            rts = await client.connect_rtstream(source, "Door", store=True)
            await emu.events.wait_for("stream.started", of_stream(rts["id"]), timeout=12)
            assert emu.backend.rtstream(rts["id"]).receiving
        # ffmpeg is gone: the worker retries with backoff and the status says so after the grace period.

        async def status() -> str:
            return (await client.get_rtstream(rts["id"]))["status"]

        await emu.events.wait_for("stream.error", of_stream(rts["id"]), timeout=12)
        assert await status() == "error"
        assert emu.events.query(kind="stream.error")
        since = emu.events.last_id
        async with ffmpeg_rtmp_source(free_port):
            await emu.events.wait_for("stream.started", of_stream(rts["id"]), since=since, timeout=12)
            assert await status() == "connected"
            assert emu.backend.rtstream(rts["id"]).receiving
        await client.stop(rts["id"])
        assert (await client.get_rtstream(rts["id"]))["status"] == "stopped"
        assert all(r.worker is None for r in emu.service.pipeline.runtimes.values())


async def test_a_source_sending_garbage_leaves_the_stream_in_error_and_the_emulator_serving(
    emulator_factory: EmulatorFactory,
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(os.urandom(4096))
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    emu = await emulator_factory("videodb", settings=FAST)
    async with server, VideoDBClient(emu.settings.api_key, emu.url()) as c:
        rts = await c.connect_rtstream(f"rtmp://127.0.0.1:{port}/live/garbage", "Garbage", store=True)
        await emu.events.wait_for("stream.error", of_stream(rts["id"]), timeout=12)
        assert (await c.get_rtstream(rts["id"]))["status"] == "error"
        retries = emu.events.query(kind="ingest.retry")
        assert len(retries) >= 2 and all(r.detail["stream"] == rts["id"] for r in retries)
        started = time.monotonic()
        await c.stop(rts["id"])
        assert time.monotonic() - started < 8
        assert (await c.get_collection())["id"].startswith("c-")


async def test_kit_stream_faults_corrupt_and_disconnect_the_source_without_killing_the_stream(
    free_port: int, emulator_factory: EmulatorFactory
) -> None:
    settings = {**FAST, "error_after_s": 30.0}  # the retry after the disconnect must not read as an outage
    emu = await emulator_factory("videodb", settings=settings)
    async with VideoDBClient(emu.settings.api_key, emu.url()) as client:
        async with ffmpeg_rtmp_source(free_port) as source:
            rts = await client.connect_rtstream(source, "Faulty", store=True, sample_rate=5)
            await client.index_visuals(rts["id"], time_s=1, frame_count=2)
            await emu.events.wait_for("stream.started", of_stream(rts["id"]), timeout=12)
            emu.faults.add({"match": {"stream": "rtstream:*"}, "action": {"type": "corrupt"}, "count": 15})
            await emu.events.wait_for("fault.applied", timeout=12)
            # A slow source: the pull stalls for a second, then carries on where it was.
            emu.faults.add({"match": {"stream": "rtstream:*"}, "action": {"type": "stall", "seconds": 1.0},
                            "count": 1})
            runtime = emu.service.pipeline.runtimes[rts["id"]]
            packets = runtime.packets
            stalled = await emu.events.wait_for("fault.applied", lambda e: e.detail["action"] == "stall", timeout=12)
            # The pull carries on: every segment it cuts after the stall brings its packet count up to date.
            since = stalled.id
            while runtime.packets <= packets + 20:
                cut = await emu.events.wait_for("rtstream.segment", of_stream(rts["id"]), since=since, timeout=12)
                since = cut.id
            assert runtime.packets > packets + 20
            assert (await client.get_rtstream(rts["id"]))["status"] == "connected"
            # ffmpeg's listener serves one connection, so the disconnect comes last.
            emu.faults.add({"match": {"stream": f"rtstream:{rts['id']}"}, "action": {"type": "disconnect"},
                            "count": 1})
            await emu.events.wait_for(
                "ingest.retry", of_stream(rts["id"], lambda d: "fault rule" in d.get("reason", "")), timeout=12
            )
            assert (await client.get_rtstream(rts["id"]))["status"] == "connected"
        await client.stop(rts["id"])
        assert emu.backend.rtstream(rts["id"]).all_segments()


def decoded_seconds(url: str) -> dict[str, float]:
    """Seconds of decodable video and audio in an HLS playlist, per codec."""
    seconds: dict[str, float] = {}
    with av.open(url, timeout=(10, 10)) as container:
        for frame in container.decode(*container.streams):
            name = f"{frame.__class__.__name__}"
            if isinstance(frame, av.AudioFrame):
                seconds[name] = seconds.get(name, 0.0) + frame.samples / frame.sample_rate
            else:
                seconds[name] = seconds.get(name, 0.0) + 0.1  # the source runs at 10 fps
        codecs = {s.type: s.codec_context.name for s in container.streams}
    return {**seconds, **{f"codec:{k}": 0.0 for k in codecs.values()}}


async def test_g711_audio_that_mpeg_ts_cannot_carry_is_recorded_as_aac(
    free_port: int, emulator_factory: EmulatorFactory
) -> None:
    ulaw = ("-c:a", "pcm_mulaw", "-ar", "8000")
    emu = await emulator_factory("videodb", settings=FAST)
    async with (
        ffmpeg_rtmp_source(free_port, audio=ulaw) as source,
        VideoDBClient(emu.settings.api_key, emu.url()) as client,
    ):
        rts = await client.connect_rtstream(source, "Camera", media_types=["video", "audio"], store=True)
        await emu.events.wait_for("rtstream.segment", of_stream(rts["id"], lambda d: d["sequence"] >= 2), timeout=12)
        assert len(emu.backend.rtstream(rts["id"]).all_segments()) >= 3
        await client.stop(rts["id"])
        exported = await client.export(rts["id"])
        seconds = await asyncio.to_thread(decoded_seconds, exported["stream_url"])
        assert "codec:aac" in seconds and "codec:h264" in seconds, seconds
        segment_s = max(s.duration for s in emu.backend.rtstream(rts["id"]).all_segments())
        assert abs(seconds["AudioFrame"] - exported["duration"]) <= segment_s
        assert abs(seconds["VideoFrame"] - exported["duration"]) <= segment_s
