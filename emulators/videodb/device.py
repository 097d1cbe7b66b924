"""The VideoDB RTStream emulator: the model, the REST routes, one pull worker per connected stream, the
emulated indexing, alerts (WebSocket + webhooks) and recordings on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import yaml
from aiohttp import web

from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.outbound import OutboundFailed, RetryPolicy, WebhookSender
from emulators.videodb import hls
from emulators.videodb.alerts import AlertFiring
from emulators.videodb.api import VideoDBApi
from emulators.videodb.indexing import (
    AudioBatcher,
    VisualWindow,
    VoiceActivity,
    describe_window,
    render_for_prompt,
    speech_text,
    word_timestamps,
)
from emulators.videodb.ingest import (
    AudioLevels,
    FaultApplied,
    FrameSampled,
    IngestConfig,
    IngestSignal,
    IngestWorker,
    SegmentDone,
    SourceDown,
    SourceUp,
)
from emulators.videodb.model import (
    URL_SCHEMES,
    RTStream,
    SceneIndex,
    SceneRecord,
    TranscriptRecord,
    VideoDBService,
    bad,
    naive_iso,
)
from emulators.videodb.ws import CollectionSockets

log = logging.getLogger("benchtwin.videodb")
SCENARIO_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "videodb"
STATE_FILE = "state.json"
PERSIST_DELAY_S = 1.0  # index records arrive every few seconds; one state write per second is plenty


@dataclass
class StreamRuntime:
    """What a connected stream has beyond the model: its worker and its indexing state."""

    worker: IngestWorker | None = None
    windows: dict[str, VisualWindow] = field(default_factory=dict)
    batchers: dict[str, AudioBatcher] = field(default_factory=dict)
    vad: VoiceActivity = field(default_factory=VoiceActivity)
    speech_count: int = 0
    first_frame_at: float | None = None
    reported_error: bool = False
    outage_timer: asyncio.TimerHandle | None = None  # fires when an outage outlasts error_after_s

    def cancel_outage_timer(self) -> None:
        if self.outage_timer is not None:
            self.outage_timer.cancel()
            self.outage_timer = None


class VideoDBEmulator(Emulator):
    device = "videodb"
    title = "VideoDB RTStreams (ingest, recording, HLS, indexing, alerts, WebSocket)"
    default_port = 9084
    settings_defaults: ClassVar[dict[str, Any]] = {
        "port": 9084,
        "api_key": "sk-benchtwin-videodb-dev",
        "data_dir": "",  # empty: a temporary directory removed at shutdown
        "public_base_url": "",  # empty: URLs follow the request's Host
        "segment_s": 2.0,
        "open_timeout_s": 5.0,
        "read_timeout_s": 3.0,
        "reconnect_initial_s": 1.0,
        "reconnect_max_s": 30.0,
        "error_after_s": 10.0,
        "rolling_window_s": 120.0,
        "webhook_attempts": 3,
        "webhook_retry_interval_s": 1.0,
        "credits_limit": 0,
        "extraction_config_native": False,
        "webhook_times_as_seconds": False,
        "visual_index_channel": False,
        "scene_record_text_alias": False,
        "rtstream_search_empty_list": False,
        "no_error_status": False,
        # Where sources may live (comma-separated CIDRs); only loopback/private so nothing leaves the site.
        "source_networks": "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
    }

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.sockets: CollectionSockets
        self.runtimes: dict[str, StreamRuntime] = {}
        self.capture_sessions: dict[str, dict[str, Any]] = {}
        self._data_dir: Path | None = None
        self._temporary = False
        self._session: aiohttp.ClientSession | None = None
        self._persist_timer: asyncio.TimerHandle | None = None
        self._webhooks: asyncio.Queue[AlertFiring] = asyncio.Queue()
        super().__init__(settings, **kwargs)
        self.service = VideoDBService(self.seed, self.clock.now())
        self.sessions: dict[str, str] = {}
        self._register_scenarios()

    # ----- kit hooks -----------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        self.sockets = CollectionSockets(self.events, self._connection_id)
        VideoDBApi(self).add_routes(app)

    async def on_start(self) -> None:
        configured = str(self.settings["data_dir"])
        if configured:
            self._data_dir = Path(configured)
            self._data_dir.mkdir(parents=True, exist_ok=True)
            self._temporary = False
        elif self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="benchtwin-videodb-"))
            self._temporary = True
        self._session = aiohttp.ClientSession()
        self._webhooks = asyncio.Queue()
        self.tasks.spawn(self._deliver_webhooks(), name="webhooks")
        state = self._data_dir / STATE_FILE
        if configured and state.exists():
            self._restore(state)

    async def on_stop(self) -> None:
        await self._stop_all_ingest()
        await self.sockets.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.flush_state()

    async def aclose(self) -> None:
        await super().aclose()
        if self._temporary and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    async def on_reset(self, seed: int) -> None:
        if self._persist_timer is not None:
            self._persist_timer.cancel()
            self._persist_timer = None
        self.runtimes.clear()
        self.capture_sessions.clear()
        self.sockets.clear()
        if self._data_dir is not None:
            for path in self._data_dir.glob("rts-*"):
                shutil.rmtree(path, ignore_errors=True)
            (self._data_dir / STATE_FILE).unlink(missing_ok=True)
        self.service = VideoDBService(seed, self.clock.now())

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.settings["api_key"]}

    def extra_endpoints(self) -> dict[str, str]:
        if "rest" not in self.ports:
            return {}
        return {"base_url": self.url(), "websocket": f"ws://{self.host}:{self.ports['rest']}/ws"}

    def state(self) -> dict[str, Any]:
        now = self.clock.now()
        streams = {}
        for stream in self.service.streams.values():
            runtime = self.runtimes.get(stream.id)
            worker = runtime.worker if runtime else None
            streams[stream.id] = {
                "name": stream.name,
                "status": self.status_of(stream, now),
                "receiving": stream.receiving,
                "recordings": len(stream.recordings),
                "segments": len(stream.all_segments()),
                "transcripts": len(stream.transcripts),
                "packets": worker.packets if worker else 0,
                "connections": worker.connections if worker else 0,
                "decode_errors": worker.decode_errors if worker else 0,
            }
        return {
            "data_dir": str(self._data_dir) if self._data_dir else None,
            "rtstreams": streams,
            "indexes": len(self.service.indexes),
            "events": len(self.service.events),
            "alerts": len(self.service.alerts),
            "videos": len(self.service.videos),
            "websocket_connections": sorted(self.sockets.connections),
        }

    # ----- small helpers used by the API ---------------------------------------------------------------
    @property
    def error_after_s(self) -> float:
        return float(self.settings["error_after_s"])

    def token_valid(self, token: str) -> bool:
        return bool(token) and (secrets.compare_digest(token, str(self.settings["api_key"])) or token in self.sessions)

    def new_token(self) -> str:
        return secrets.token_urlsafe(24)

    def _connection_id(self) -> str:
        return f"conn-{secrets.token_hex(8)}"

    def base_url(self, request: web.Request | None = None) -> str:
        configured = str(self.settings["public_base_url"]).rstrip("/")
        if configured:
            return configured
        if request is not None:
            return f"{request.scheme}://{request.host}"
        return self.url()

    def stream_directory(self, rtstream_id: str) -> Path:
        assert self._data_dir is not None
        return self._data_dir / rtstream_id

    def status_of(self, stream: RTStream, now: float) -> str:
        return stream.effective_status(now, self.error_after_s, error_status=not self.settings["no_error_status"])

    def rtstream_wire(self, stream: RTStream) -> dict[str, Any]:
        return {
            "id": stream.id,
            "name": stream.name,
            "collection_id": stream.collection_id,
            "created_at": naive_iso(stream.created_at),
            "updated_at": naive_iso(stream.updated_at),
            "sample_rate": stream.sample_rate,
            "status": self.status_of(stream, self.clock.now()),
            "media_types": stream.media_types,
            "store": stream.store,
            "enable_transcript": stream.enable_transcript,
            "url": stream.url,
            "channel_id": None,
            "stream_url": stream.stream_url,
            "player_url": stream.player_url,
        }

    def persist(self) -> None:
        """Schedule a write of the account's state; changes within PERSIST_DELAY_S share one write."""
        if self._persist_timer is not None or self._data_dir is None:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: the final flush in on_stop covers it
            self._persist_timer = asyncio.get_running_loop().call_later(PERSIST_DELAY_S, self.flush_state)

    def flush_state(self) -> None:
        """Write the account's state next to the recordings so a restart with the same data_dir keeps them."""
        if self._persist_timer is not None:
            self._persist_timer.cancel()
            self._persist_timer = None
        if self._data_dir is None or not self._data_dir.exists():
            return
        path = self._data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.service.snapshot()))
        tmp.replace(path)

    def _restore(self, path: Path) -> None:
        try:
            self.service.restore(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            return
        for stream in self.service.streams.values():
            if stream.status == "connected":
                # The service keeps pulling live streams; a restart opens a new recording.
                self.service._open_recording(stream, self.clock.now())
                self._start_ingest(stream)

    # ----- rtstream lifecycle --------------------------------------------------------------------------
    async def create_rtstream(self, body: dict[str, Any]) -> RTStream:
        url = body.get("url")
        if isinstance(url, str) and url.lower().startswith(URL_SCHEMES):
            self._check_source_host(url)
        stream = self.service.create_rtstream(
            body, self.clock.now(), max_streams=int(self.settings["credits_limit"])
        )
        self._start_ingest(stream)
        self.persist()
        return stream

    async def set_rtstream_status(self, rtstream_id: str, body: dict[str, Any]) -> None:
        stream, changed = self.service.set_rtstream_status(rtstream_id, body, self.clock.now())
        if changed and stream.status == "stopped":
            await self._stop_ingest(stream.id)
            self.events.record("stream.stopped", stream=stream.id)
        elif changed:
            self._start_ingest(stream)
        self.persist()

    def _check_source_host(self, url: str) -> None:
        """The emulator pulls only from local sources: IP literals inside ``source_networks`` or localhost.

        Names other than localhost are refused rather than resolved, so no lookup leaves the machine.
        """
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        if not host:
            raise bad(f"'url' has no host: {url!r}")
        if host.lower() == "localhost":
            return
        allowed = [n.strip() for n in str(self.settings["source_networks"]).split(",") if n.strip()]
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise bad(
                f"'url' host {host!r} is a name; this emulator pulls only from IP addresses in "
                f"{', '.join(allowed)} or localhost (setting source_networks)"
            ) from None
        if not any(address in ipaddress.ip_network(n, strict=False) for n in allowed):
            raise bad(
                f"'url' host {host} is outside the emulator's source networks {', '.join(allowed)} "
                "(setting source_networks)"
            )

    def _start_ingest(self, stream: RTStream) -> None:
        runtime = self.runtimes.setdefault(stream.id, StreamRuntime())
        if runtime.worker is not None:
            return
        recording = stream.current_recording
        config = IngestConfig(
            rtstream_id=stream.id,
            url=stream.url,
            media_types=stream.media_types,
            sample_rate=stream.sample_rate,
            store=recording is not None,
            directory=self.stream_directory(stream.id),
            recording=recording.number if recording else None,
            first_sequence=stream.next_sequence,
            segment_s=float(self.settings["segment_s"]),
            open_timeout_s=float(self.settings["open_timeout_s"]),
            read_timeout_s=float(self.settings["read_timeout_s"]),
            reconnect_initial_s=float(self.settings["reconnect_initial_s"]),
            reconnect_max_s=float(self.settings["reconnect_max_s"]),
            fault_stream=f"rtstream:{stream.id}",
        )
        loop = asyncio.get_running_loop()
        worker: IngestWorker

        def post(signal: IngestSignal) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closing: the worker is being joined
                loop.call_soon_threadsafe(self._on_signal, stream.id, worker, signal)

        worker = IngestWorker(config, post, self.faults.for_stream, self.faults.corrupt)
        runtime.worker = worker
        runtime.windows.clear()
        runtime.batchers.clear()
        runtime.reported_error = False
        self._refresh_wants(stream.id)
        worker.start()
        self.events.record("ingest.started", stream=stream.id, url=stream.url, recording=config.recording)

    async def _stop_ingest(self, rtstream_id: str) -> None:
        runtime = self.runtimes.get(rtstream_id)
        if runtime is None or runtime.worker is None:
            return
        worker = runtime.worker
        runtime.cancel_outage_timer()
        await asyncio.to_thread(worker.stop)
        runtime.worker = None
        stream = self.service.streams.get(rtstream_id)
        if stream is not None:
            stream.receiving = False

    async def _stop_all_ingest(self) -> None:
        workers = [r.worker for r in self.runtimes.values() if r.worker is not None]
        for worker in workers:
            worker._stopping.set()
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))
        for runtime in self.runtimes.values():
            runtime.worker = None
            runtime.cancel_outage_timer()

    def _refresh_wants(self, rtstream_id: str) -> None:
        runtime = self.runtimes.get(rtstream_id)
        stream = self.service.streams.get(rtstream_id)
        if runtime is None or runtime.worker is None or stream is None:
            return
        running = [i for i in self.service.indexes.values() if i.rtstream_id == rtstream_id and i.status == "running"]
        runtime.worker.wants_frames = any(i.is_visual for i in running)
        runtime.worker.wants_audio = stream.transcript_status == "running" or any(not i.is_visual for i in running)

    # ----- signals from the worker thread ---------------------------------------------------------------
    def _on_signal(self, rtstream_id: str, worker: IngestWorker, signal: IngestSignal) -> None:
        stream = self.service.streams.get(rtstream_id)
        runtime = self.runtimes.get(rtstream_id)
        if stream is None or runtime is None:
            return
        if isinstance(signal, SegmentDone):
            self._file_segment(stream, signal)
            return
        if runtime.worker is not worker or stream.status != "connected":
            return  # a stopped worker's late news
        now = self.clock.now()
        if isinstance(signal, SourceUp):
            self.service.source_receiving(stream.id, now)
            runtime.reported_error = False
            runtime.cancel_outage_timer()
            self.events.record("stream.started", stream=stream.id, codecs=signal.codecs)
        elif isinstance(signal, SourceDown):
            first = stream.source_down_since is None
            self.service.source_down(stream.id, now)
            self.events.record(
                "ingest.retry", stream=stream.id, reason=signal.reason, attempt=signal.attempt,
                retry_in_s=signal.retry_in_s,
            )
            if first and not runtime.reported_error:
                runtime.cancel_outage_timer()
                runtime.outage_timer = asyncio.get_running_loop().call_later(
                    self.error_after_s, self._report_outage, stream.id, signal.reason
                )
        elif isinstance(signal, FaultApplied):
            self.events.record("fault.applied", stream=f"rtstream:{stream.id}", action=signal.action)
        elif isinstance(signal, FrameSampled):
            self._index_frame(stream, runtime, signal)
        elif isinstance(signal, AudioLevels):
            self._index_audio(stream, runtime, signal)

    def _report_outage(self, rtstream_id: str, reason: str) -> None:
        """The grace period ran out while the source stayed down: the status now reads error."""
        stream = self.service.streams.get(rtstream_id)
        runtime = self.runtimes.get(rtstream_id)
        if stream is None or runtime is None:
            return
        runtime.outage_timer = None
        if self.status_of(stream, self.clock.now()) == "error" and not runtime.reported_error:
            runtime.reported_error = True
            self.events.record("stream.error", stream=rtstream_id, reason=reason)

    def _file_segment(self, stream: RTStream, signal: SegmentDone) -> None:
        segment = signal.segment
        stream.next_sequence = max(stream.next_sequence, segment.sequence + 1)
        if not self.service.add_segment(stream.id, segment):
            return
        if not stream.store:
            # Without store the service keeps only a rolling window for live playback.
            horizon = segment.end - float(self.settings["rolling_window_s"])
            for recording in stream.recordings:
                old = [s for s in recording.segments if s.end < horizon]
                for s in old:
                    (self.stream_directory(stream.id) / s.file).unlink(missing_ok=True)
                recording.segments = [s for s in recording.segments if s.end >= horizon]
        self.persist()

    # ----- indexing ------------------------------------------------------------------------------------
    def _index_frame(self, stream: RTStream, runtime: StreamRuntime, signal: FrameSampled) -> None:
        sample = signal.sample
        if runtime.first_frame_at is None:
            runtime.first_frame_at = sample.time
        for index in list(self.service.indexes.values()):
            if index.rtstream_id != stream.id or not index.is_visual or index.status != "running":
                continue
            window = runtime.windows.get(index.id)
            if window is None:
                config = index.extraction_config
                window = VisualWindow(float(config["time"]), int(config["frame_count"]))
                runtime.windows[index.id] = window
            closed = window.feed(sample)
            if closed is None:
                continue
            start, end, frames = closed
            script = self._scripted_visual(stream, runtime, start)
            analysis = describe_window(frames, script)
            text = render_for_prompt(index.prompt, analysis)
            self._file_record(stream, index, SceneRecord(round(start, 3), round(end, 3), text, analysis.facts))

    def _scripted_visual(self, stream: RTStream, runtime: StreamRuntime, start: float) -> str | None:
        entries = stream.script.get("visual") or []
        if not entries or runtime.first_frame_at is None:
            return None
        offset = start - runtime.first_frame_at
        chosen = None
        for entry in entries:
            if float(entry["at"]) <= offset + 1e-6:
                chosen = str(entry["text"])
        return chosen

    def _index_audio(self, stream: RTStream, runtime: StreamRuntime, signal: AudioLevels) -> None:
        for speech in runtime.vad.feed(signal.start, signal.rms):
            text = speech_text(stream.id, runtime.speech_count, speech.end - speech.start, stream.script.get("speech"))
            runtime.speech_count += 1
            words = word_timestamps(text, speech.start, speech.end)
            record = TranscriptRecord(round(speech.start, 3), round(speech.end, 3), text, words)
            if stream.transcript_status == "running" or stream.enable_transcript:
                if stream.transcript_status == "running":
                    stream.transcripts.append(record)
                    self.sockets.send(
                        stream.transcript_ws_connection_id or stream.ws_connection_id,
                        {
                            "channel": "transcript",
                            "rtstream_id": stream.id,
                            "rtstream_name": stream.name,
                            "data": {
                                "text": text,
                                "is_final": True,
                                "start": int(speech.start * 1000),
                                "end": int(speech.end * 1000),
                            },
                        },
                    )
            for index in list(self.service.indexes.values()):
                if index.rtstream_id != stream.id or index.is_visual or index.status != "running":
                    continue
                batcher = runtime.batchers.get(index.id)
                if batcher is None:
                    config = index.extraction_config
                    batcher = AudioBatcher(str(config["segmenter"]), int(config["segmentation_value"]))
                    runtime.batchers[index.id] = batcher
                for start, end, batch in batcher.feed(words):
                    self._file_record(stream, index, SceneRecord(start, end, batch))

    def _file_record(self, stream: RTStream, index: SceneIndex, record: SceneRecord) -> None:
        base = self.base_url()
        stream_url = base + hls.manifest_path(stream.id, record.start, record.end)
        firings = self.service.add_scene_record(
            index, record, self.clock.now(), urls=(stream_url, hls.player_url(base, stream_url))
        )
        if index.is_visual:
            channel = "visual_index" if self.settings["visual_index_channel"] else "scene_index"
        else:
            channel = "audio_index"
        self.sockets.send(
            index.ws_connection_id,
            {
                "channel": channel,
                "rtstream_id": stream.id,
                "rtstream_name": stream.name,
                "index_id": index.id,
                "data": {"text": record.description, "start": int(record.start * 1000), "end": int(record.end * 1000)},
            },
        )
        for firing in firings:
            self.events.record("alert.fired", alert=firing.alert_id, label=firing.label, confidence=firing.confidence)
            self.sockets.send(firing.ws_connection_id, firing.ws_message())
            if firing.callback_url:
                self._webhooks.put_nowait(firing)
        self.persist()

    async def _deliver_webhooks(self) -> None:
        assert self._session is not None
        sender = WebhookSender(
            self._session,
            retry=RetryPolicy(
                interval_s=float(self.settings["webhook_retry_interval_s"]),
                max_attempts=int(self.settings["webhook_attempts"]),
            ),
            egress=self.egress,
            events=self.events,
            ssl=self.client_ssl,
        )
        as_seconds = bool(self.settings["webhook_times_as_seconds"])
        while True:
            firing = await self._webhooks.get()
            assert firing.callback_url is not None
            try:
                await sender.deliver(firing.callback_url, json=firing.webhook_body(times_as_seconds=as_seconds))
            except OutboundFailed as exc:
                log.info("alert webhook to %s failed: %s", firing.callback_url, exc)
            except Exception as exc:  # an egress refusal or a bad URL must not end the delivery loop
                self.events.record("outbound.failed", url=firing.callback_url, error=str(exc))

    # ----- index / transcript / export / search entry points used by the API ----------------------------
    def create_index(self, rtstream_id: str, body: dict[str, Any]) -> SceneIndex:
        index = self.service.create_index(rtstream_id, body, self.clock.now())
        self._refresh_wants(rtstream_id)
        self.persist()
        return index

    def set_index_status(self, rtstream_id: str, index_id: str, body: dict[str, Any]) -> SceneIndex:
        index = self.service.set_index_status(rtstream_id, index_id, body)
        runtime = self.runtimes.get(rtstream_id)
        if runtime is not None:
            runtime.windows.pop(index_id, None)
            runtime.batchers.pop(index_id, None)
        self._refresh_wants(rtstream_id)
        self.persist()
        return index

    def transcription_action(self, rtstream_id: str, body: dict[str, Any]) -> RTStream:
        stream = self.service.transcription_action(rtstream_id, body, self.clock.now())
        self._refresh_wants(rtstream_id)
        self.persist()
        return stream

    def export(self, rtstream_id: str, name: Any) -> Any:
        video, created = self.service.export(rtstream_id, name, self.clock.now())
        if created:
            self.events.record("rtstream.exported", stream=rtstream_id, video=video.id, duration=video.length)
            self.persist()
        return video

    def search(self, body: dict[str, Any], rtstream_ids: list[str]) -> list[dict[str, Any]]:
        return self.service.search(
            body, rtstream_ids=rtstream_ids, empty_is_error=not self.settings["rtstream_search_empty_list"]
        )

    # ----- scenario controls ---------------------------------------------------------------------------
    def _register_scenarios(self) -> None:
        self.scenario_controls["script"] = self._scenario_script
        self.scenario_controls["capture_session"] = self._scenario_capture_session

    async def _scenario_script(self, body: dict[str, Any]) -> dict[str, Any]:
        """Attach scripted visual descriptions and speech lines to a stream (inline or a fixture by name)."""
        rts = body.get("rtstream_id")
        if not isinstance(rts, str) or rts not in self.service.streams:
            raise FieldError("rtstream_id", f"must be the id of an existing RTStream, got {rts!r}")
        script: dict[str, Any] = {}
        name = body.get("scenario")
        if name is not None:
            available = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
            if name not in available:
                raise FieldError("scenario", f"must be one of {', '.join(available) or 'none'}, got {name!r}")
            script = yaml.safe_load((SCENARIO_DIR / f"{name}.yaml").read_text()) or {}
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
        stream = self.service.streams[rts]
        stream.script = {"visual": sorted(visual, key=lambda v: v["at"]), "speech": speech}
        self.persist()
        return {"rtstream_id": rts, "visual": len(visual), "speech": len(speech)}

    async def _scenario_capture_session(self, body: dict[str, Any]) -> dict[str, Any]:
        """A desktop capture session whose channels mic/screen/system_audio are existing RTStreams."""
        channels = body.get("channels")
        if not isinstance(channels, dict) or not channels:
            raise FieldError("channels", "must map mic/screen/system_audio to RTStream ids")
        rtstreams = []
        for channel_id, rts in channels.items():
            if channel_id not in ("mic", "screen", "system_audio"):
                raise FieldError(f"channels.{channel_id}", "must be one of mic, screen, system_audio")
            stream = self.service.streams.get(rts) if isinstance(rts, str) else None
            if stream is None:
                raise FieldError(f"channels.{channel_id}", f"must be the id of an existing RTStream, got {rts!r}")
            rtstreams.append(
                {"rtstream_id": stream.id, "name": stream.name, "media_types": stream.media_types,
                 "channel_id": channel_id}
            )
        session_id = f"cap-{self.service.ids.uuid7(self.clock.now())}"
        session = {
            "session_id": session_id,
            "collection_id": self.service.default_collection_id,
            "end_user_id": str(body.get("end_user_id") or "user-benchtwin"),
            "status": "active",
            "callback_url": body.get("callback_url"),
            "metadata": body.get("metadata") or {},
            "channels": [{"channel_id": r["channel_id"], "type": r["media_types"][0]} for r in rtstreams],
            "rtstreams": rtstreams,
        }
        self.capture_sessions[session_id] = session
        return session


EMULATOR = VideoDBEmulator
