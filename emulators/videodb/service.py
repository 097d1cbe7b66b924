"""What the REST API and the scenario controls ask of the VideoDB emulator beyond reading the backend: sources
checked against the configured egress policy, streams started and stopped (their pull workers), index and
transcript changes the workers must follow, exports, and the account's persistence and restoration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulators.kit.clock import Clock
from emulators.kit.errors import FieldError
from emulators.kit.events import EventLog
from emulators.kit.outbound import EgressPolicy
from emulators.kit.tasks import TaskOwner
from emulators.kit.yaml_text import load_yaml
from emulators.videodb.capture import CAPTURE_CHANNELS, CaptureSession
from emulators.videodb.indexing import speech_text
from emulators.videodb.ingest import source_refusal
from emulators.videodb.model import (
    URL_SCHEMES,
    Alert,
    Event,
    RTStream,
    SceneIndex,
    TranscriptRecord,
    Video,
    VideoDBBackend,
    bad,
)
from emulators.videodb.persistence import DataDirectory
from emulators.videodb.pipeline import IngestPipeline
from emulators.videodb.recorded_audio import speech_in
from emulators.videodb.webhooks import AlertWebhooks

log = logging.getLogger("benchtwin.videodb")


class RTStreamService:
    """Every state change goes through here so the workers follow it and the account is saved."""

    def __init__(
        self,
        backend: VideoDBBackend,
        pipeline: IngestPipeline,
        data: DataDirectory,
        webhooks: AlertWebhooks,
        *,
        events: EventLog,
        egress: EgressPolicy,
        clock: Clock,
        tasks: TaskOwner,
        scenario_dir: Path,
    ) -> None:
        self.backend = backend
        self.pipeline = pipeline
        self.data = data
        self.webhooks = webhooks
        self.events = events
        self.egress = egress
        self.clock = clock
        self.tasks = tasks
        self.scenario_dir = scenario_dir

    # ----- lifetime ------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the data directory (restoring a saved account), the webhook sender, and resume live streams."""
        saved = self.data.open()
        self.webhooks.open(self.tasks)  # one task for the emulator's lifetime, owned by the emulator itself
        if saved is None:
            return
        try:
            self.backend.restore(saved)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring an unreadable saved account: %s", exc)
            return
        # A segment cut short by a kill (or filed after the last save) is not in the account: it goes.
        removed = await asyncio.to_thread(self.data.remove_unrecorded, self.backend.recorded_files())
        if removed:
            self.events.record("recording.cleaned", removed=removed)
        for stream in self.backend.resume_after_restart(self.clock.now()):
            self.pipeline.start(stream)

    async def close(self) -> None:
        await self.pipeline.stop_all()
        await self.webhooks.close()
        self.data.flush()

    def reset(self, seed: int, *, wipe_data: bool = False) -> None:
        """Back to boot state (workers are stopped by ``close`` before this): an empty account, which ``open``
        then fills from a configured data directory as at start. Its files are deleted only with ``wipe_data``
        (a temporary directory always starts empty)."""
        self.pipeline.forget()
        if wipe_data or not self.data.persistent:
            self.data.forget()
        self.backend.reset(seed, self.clock.now())

    # ----- rtstreams -----------------------------------------------------------------------------------
    async def create_rtstream(self, body: dict[str, Any]) -> RTStream:
        url = body.get("url")
        if isinstance(url, str) and url.lower().startswith(URL_SCHEMES):
            refusal = await asyncio.to_thread(source_refusal, self.egress, url)  # a name's lookup blocks
            if refusal is not None:
                raise bad(refusal)
        stream = self.backend.create_rtstream(body, self.clock.now())
        self.pipeline.start(stream)
        self.data.persist()
        return stream

    def update_rtstream(self, rtstream_id: str, body: dict[str, Any]) -> RTStream:
        stream = self.backend.update_rtstream(rtstream_id, body, self.clock.now())
        self.data.persist()
        return stream

    async def set_rtstream_status(self, rtstream_id: str, body: dict[str, Any]) -> None:
        stream, changed = self.backend.set_rtstream_status(rtstream_id, body, self.clock.now())
        if changed and not stream.live:
            await self.pipeline.stop(stream.id)
            self.events.record("stream.stopped", stream=stream.id)
        elif changed:
            self.pipeline.start(stream)
        self.data.persist()

    def segment_path(self, rtstream_id: str, recording: int, sequence: int) -> Path | None:
        """Where a recorded segment's file is (it may be gone: the rolling window deletes old ones); None when
        the recorded name resolves outside the data directory (a tampered state or a symlink)."""
        return self.data.recorded_file(rtstream_id, self.backend.segment_file(rtstream_id, recording, sequence))

    async def index_video(self, video_id: str, body: dict[str, Any]) -> Video:
        """A video's spoken-word index; when its stream ran no transcript, the recording's own audio is heard
        (decoded off the event loop) and each utterance gets the scripted line or seeded words."""
        self.backend.check_index_request(video_id, body)  # before the (slow) listening
        heard: list[TranscriptRecord] = []
        if not self.backend.transcribed(video_id):
            video = self.backend.video(video_id)
            stream = self.backend.rtstream(video.rtstream_id)
            confined = [(self.data.recorded_file(stream.id, file), start)
                        for file, start in self.backend.video_files(video_id)]
            files = [(path, start) for path, start in confined if path is not None]
            for number, speech in enumerate(await asyncio.to_thread(speech_in, files)):
                text = speech_text(stream.id, number, speech.end - speech.start, stream.script.get("speech"))
                heard.append(TranscriptRecord(round(speech.start, 3), round(speech.end, 3), text))
        return self.backend.index_video(video_id, body, heard)

    def export(self, rtstream_id: str, name: Any) -> Video:
        video, created = self.backend.export(rtstream_id, name, self.clock.now())
        if created:
            self.events.record("rtstream.exported", stream=rtstream_id, video=video.id, duration=video.length)
            self.data.persist()
        return video

    # ----- indexes, events, alerts, transcription -------------------------------------------------------
    def create_index(self, rtstream_id: str, body: dict[str, Any]) -> SceneIndex:
        index = self.backend.create_index(rtstream_id, body, self.clock.now())
        self.pipeline.refresh_wants(rtstream_id)
        self.data.persist()
        return index

    def set_index_status(self, rtstream_id: str, index_id: str, body: dict[str, Any]) -> SceneIndex:
        index = self.backend.set_index_status(rtstream_id, index_id, body)
        self.pipeline.forget_index(rtstream_id, index_id)
        self.data.persist()
        return index

    def update_index_prompt(self, rtstream_id: str, index_id: str, body: dict[str, Any]) -> SceneIndex:
        index = self.backend.update_index_prompt(rtstream_id, index_id, body)
        self.data.persist()
        return index

    def create_event(self, body: dict[str, Any]) -> Event:
        event = self.backend.create_event(body, self.clock.now())
        self.data.persist()
        return event

    def create_alert(self, rtstream_id: str, index_id: str, body: dict[str, Any]) -> Alert:
        alert = self.backend.create_alert(rtstream_id, index_id, body)
        self.data.persist()
        return alert

    def set_alert_status(self, rtstream_id: str, index_id: str, alert_id: str, body: dict[str, Any]) -> Alert:
        alert = self.backend.set_alert_status(rtstream_id, index_id, alert_id, body)
        self.data.persist()
        return alert

    def transcription_action(self, rtstream_id: str, body: dict[str, Any]) -> RTStream:
        stream = self.backend.transcription_action(rtstream_id, body, self.clock.now())
        self.pipeline.refresh_wants(rtstream_id)
        self.data.persist()
        return stream

    # ----- scenario controls ---------------------------------------------------------------------------
    async def load_script(self, body: dict[str, Any]) -> dict[str, Any]:
        """Attach scripted visual descriptions and speech lines to a stream (inline or a fixture by name)."""
        rts = body.get("rtstream_id")
        if not isinstance(rts, str) or rts not in self.backend.streams:
            raise FieldError("rtstream_id", f"must be the id of an existing RTStream, got {rts!r}")
        script: dict[str, Any] = {}
        name = body.get("scenario")
        if name is not None:
            available = sorted(p.stem for p in self.scenario_dir.glob("*.yaml"))
            if name not in available:
                raise FieldError("scenario", f"must be one of {', '.join(available) or 'none'}, got {name!r}")
            script = load_yaml((self.scenario_dir / f"{name}.yaml").read_text()) or {}
        for key in ("visual", "speech"):
            if key in body:
                script[key] = body[key]
        visual = script.get("visual", [])
        if not isinstance(visual, list) or any(
            not isinstance(v, dict) or not isinstance(v.get("at"), int | float) or not isinstance(v.get("text"), str)
            for v in visual
        ):
            raise FieldError("visual", "must be a list of {at: seconds since the first frame, text: description}")
        speech = script.get("speech", [])
        if not isinstance(speech, list) or any(not isinstance(s, str) for s in speech):
            raise FieldError("speech", "must be a list of strings, one per detected utterance")
        self.backend.set_script(rts, visual, speech)
        self.data.persist()
        return {"rtstream_id": rts, "visual": len(visual), "speech": len(speech)}

    def create_capture_session(self, collection_id: str, body: dict[str, Any]) -> CaptureSession:
        session = self.backend.create_capture_session(collection_id, body, self.clock.now())
        self._announce(session, {})
        return session

    async def open_capture_session(self, body: dict[str, Any]) -> dict[str, Any]:
        """The desktop client of a session starts streaming: its mic/screen/system_audio are existing RTStreams.
        Without ``session_id`` a session is created for it first."""
        channels = body.get("channels")
        if not isinstance(channels, dict) or not channels:
            raise FieldError("channels", "must map mic/screen/system_audio to RTStream ids")
        for channel_id, rts in channels.items():
            if channel_id not in CAPTURE_CHANNELS:
                raise FieldError(f"channels.{channel_id}", "must be one of mic, screen, system_audio")
            if not isinstance(rts, str) or rts not in self.backend.streams:
                raise FieldError(f"channels.{channel_id}", f"must be the id of an existing RTStream, got {rts!r}")
        session_id = body.get("session_id")
        if session_id is None:
            request = {"end_user_id": "user-benchtwin", **{k: v for k, v in body.items() if k != "channels"}}
            session_id = self.create_capture_session("default", request).id
        elif not isinstance(session_id, str) or session_id not in self.backend.capture_sessions:
            raise FieldError("session_id", f"must be the id of a created capture session, got {session_id!r}")
        session = self.backend.capture_session_by_id(session_id)
        for status in self.backend.start_capture(session.id, channels):
            data = {"rtstreams": session.rtstreams(self.backend.streams)} if status == "active" else {}
            self._announce(session, data, status=status)
        return session.wire(self.backend.streams)

    async def stop_capture_session(self, session_id: str) -> CaptureSession:
        """Stop a capture: its channels' RTStreams stop (their recordings close), then the session is stopped."""
        session = self.backend.capture_session_by_id(session_id)
        self.backend.stop_capture(session.id)
        for rtstream_id in session.channels.values():
            if rtstream_id in self.backend.streams and self.backend.streams[rtstream_id].live:
                await self.set_rtstream_status(rtstream_id, {"action": "stop"})
        self._announce(session, {}, status="stopping")
        self._announce(session, {})
        return session

    def export_capture_session(
        self, collection_id: str, session_id: str, body: dict[str, Any], urls: Callable[[Video], tuple[str, str]]
    ) -> tuple[CaptureSession, Video]:
        video = self.backend.export_capture(collection_id, session_id, body, self.clock.now())
        session = self.backend.capture_session(collection_id, session_id)
        stream_url, player_url = urls(video)
        connection = body.get("connection_id") if isinstance(body.get("connection_id"), str) else None
        self._announce(
            session, {"exported_video_id": video.id, "stream_url": stream_url, "player_url": player_url},
            connection_id=connection,
        )
        self.data.persist()
        return session, video

    def _announce(
        self, session: CaptureSession, data: dict[str, Any], *, status: str | None = None,
        connection_id: str | None = None,
    ) -> None:
        """A ``capture_session.*`` message to the session's WebSocket connection and its callback URL."""
        message = session.message(data)
        if status is not None:
            message["event"], message["status"] = f"capture_session.{status}", status
        self.events.record("capture_session", session=session.id, event=message["event"])
        self.pipeline.sockets.send(connection_id or session.ws_connection_id, message)
        if session.callback_url:
            self.webhooks.post(session.callback_url, message)
