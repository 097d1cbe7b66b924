"""The seed's Complete Workflow through the videodb 0.5.1 SDK with a voice source: espeak-ng speech looped by
ffmpeg into nginx-rtmp, the RTStream transcribed with a scripted line, exported, ``index_spoken_words``,
``video.search`` and ``results.compile()``, and ffprobe playing the compiled HLS stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rtmp_server import rtmp_server  # the shared nginx-rtmp helper next to this file

from emulators.pytest_plugin import Target, start_emulator

videodb = pytest.importorskip("videodb")
InvalidRequestError = videodb.exceptions.InvalidRequestError

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian package: ffmpeg)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (Debian package: espeak-ng)"),
]

SETTINGS = {"segment_s": 1.0, "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0}
LINE = "The delivery truck has arrived at the loading dock."
PHRASE = "delivery truck"


def speech_wav(folder: Path) -> Path:
    """espeak-ng saying LINE, followed by 1.5 s of silence so each loop is one utterance."""
    said, padded = folder / "said.wav", folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(said), LINE], check=True, timeout=30)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(said), "-af", "apad=pad_dur=1.5",
         str(padded)],
        check=True, timeout=30,
    )
    return padded


@contextlib.contextmanager
def voice_push(url: str, wav: Path, seconds: int = 40) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc=size=320x240:rate=10:duration={seconds}",
            "-stream_loop", "-1", "-i", str(wav),
            "-map", "0:v", "-map", "1:a", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "10", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-ar", "22050", "-b:a", "48k", "-f", "flv", url,
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(5)


def probe(url: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type", "-of", "json", url],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return json.loads(out.stdout)


def wait_for(target: Target, kind: str, stream: str, count: int, timeout: float = 30.0) -> None:
    seen = 0

    def wanted(event: Any) -> bool:
        nonlocal seen
        if event.detail.get("stream") == stream:
            seen += 1
        return seen >= count

    asyncio.run(target.emulator.events.wait_for(kind, wanted, timeout=timeout))


def scripted_voice_stream(target: Target, url: str, name: str, *, enable_transcript: bool) -> tuple[Any, Any]:
    """Through the SDK: the default collection and a stored video+audio RTStream of ``url``, scripted to hear LINE."""
    conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
    coll = conn.get_collection()
    rts = coll.connect_rtstream(
        url=url, name=name, media_types=["video", "audio"], store=True, enable_transcript=enable_transcript,
    )

    async def script() -> Any:
        return await target.emulator.scenario_controls["script"]({"rtstream_id": rts.id, "speech": [LINE]})

    target.call(script)
    return coll, rts


def test_the_seeds_complete_workflow_searches_spoken_words_and_compiles_a_playable_stream(tmp_path: Path) -> None:
    wav = speech_wav(tmp_path)
    with rtmp_server() as rtmp, voice_push(rtmp.url(), wav), start_emulator("videodb", settings=SETTINGS) as target:
        coll, rts = scripted_voice_stream(target, rtmp.url(), "Loading Dock", enable_transcript=True)
        rts.start_transcript()
        wait_for(target, "transcript.record", rts.id, count=2)
        rts.stop()

        exported = rts.export()
        video = coll.get_video(exported.video_id)
        recorded = probe(exported.stream_url)
        assert {s["codec_type"] for s in recorded["streams"]} == {"video", "audio"}  # the export keeps its audio

        video.index_spoken_words(force=True)
        results = video.search(PHRASE)
        shots = results.get_shots()
        assert shots and all(PHRASE in shot.text.lower() for shot in shots)
        assert all(0 <= shot.start < shot.end <= video.length and shot.search_score > 0 for shot in shots)
        with pytest.raises(InvalidRequestError, match="No results found"):
            video.search("purple elephant")

        compiled = results.compile()
        assert compiled.startswith(target.url) and compiled.endswith(".m3u8")
        played = probe(compiled)
        assert {s["codec_type"] for s in played["streams"]} == {"video", "audio"}
        assert float(played["format"]["duration"]) > 0


def test_without_a_transcript_index_spoken_words_hears_the_exports_own_audio(tmp_path: Path) -> None:
    wav = speech_wav(tmp_path)
    with rtmp_server() as rtmp, voice_push(rtmp.url(), wav), start_emulator("videodb", settings=SETTINGS) as target:
        coll, rts = scripted_voice_stream(target, rtmp.url(), "Quiet Dock", enable_transcript=False)
        wait_for(target, "rtstream.segment", rts.id, count=8)  # two loops of the sentence recorded
        rts.stop()
        assert rts.get_transcript()["transcription_records"] == []  # no transcript ran

        video = coll.get_video(rts.export().video_id)
        video.index_spoken_words(force=True)
        shots = video.search(PHRASE).get_shots()
        assert shots and all(PHRASE in shot.text.lower() and shot.end <= video.length for shot in shots)
