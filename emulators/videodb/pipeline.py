"""The ingest -> segment -> index pipeline of live RTStreams: one pull worker per stream, whose signals are
filed into the backend (source up/down, segments, sampled frames, audio levels) and whose results are
delivered (WebSocket channels, alert webhooks). The backend decides; this module moves data and records events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from emulators.kit.clock import Clock
from emulators.kit.events import EventLog
from emulators.kit.faults import SEND, Abort, Close, FaultRule, Send, Skip, Stall, StreamVerdict
from emulators.kit.outbound import EgressPolicy
from emulators.kit.preview import PreviewHub
from emulators.kit.tasks import TaskOwner
from emulators.kit.workers import MediaWorker, WorkerFailed
from emulators.videodb import media
from emulators.videodb.alerts import AlertFiring
from emulators.videodb.indexing import (
    AudioBatcher,
    FrameSample,
    VisualWindow,
    VoiceActivity,
    describe_window,
    render_for_prompt,
    speech_text,
    word_timestamps,
)
from emulators.videodb.ingest import (
    Armed,
    AudioLevels,
    FrameSampled,
    IngestConfig,
    IngestSignal,
    PullCounters,
    SegmentDone,
    SourceDown,
    SourceUp,
    VerdictWanted,
    Wants,
    egress_lists,
    pull_rtstream,
    source_refusal,
)
from emulators.videodb.model import RTStream, SceneIndex, SceneRecord, TranscriptRecord, VideoDBBackend
from emulators.videodb.persistence import DataDirectory
from emulators.videodb.ws import CollectionSockets

READER_DRAIN_S = 2.0  # how long a stopped worker's remaining messages may take to be filed
# Frames reach the loop a little after their capture time (decode, IPC): a window whose time is over waits
# this long for its last frames before it is closed without a next frame.
WINDOW_GRACE_S = 0.5


async def answer_for_worker(verdict: StreamVerdict) -> StreamVerdict:
    """The answer a worker gets for a packet's verdict: what it can apply itself (a stall cannot cross into the
    process, so it is served here by answering late)."""
    match verdict:
        case Stall() as stall:
            await stall.wait()  # the worker waits for this answer: the pull pauses like a slow source
            return SEND
        case Close():
            # A pulled source has no close code: the worker cuts the connection, as for a disconnect.
            return Abort()
        case Send() | Skip() | Abort():
            return verdict  # applied by the worker to its packet (a corrupt Send damages it first)


@dataclass(frozen=True)
class PullTimings:
    """How the workers cut segments and treat a source that is slow or gone (settings of the same names)."""

    segment_s: float = 2.0
    open_timeout_s: float = 5.0
    read_timeout_s: float = 3.0
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 2.0


@dataclass
class StreamRuntime:
    """What a live stream has beyond the backend: its worker, the task reading it, and its indexing state."""

    worker: MediaWorker | None = None
    tasks: TaskOwner | None = None
    reader: asyncio.Task[None] | None = None
    armed: bool = False  # told the worker that a stream fault rule may match
    packets: int = 0
    connections: int = 0
    decode_errors: int = 0
    windows: dict[str, VisualWindow] = field(default_factory=dict)
    window_timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    batchers: dict[str, AudioBatcher] = field(default_factory=dict)
    vad: VoiceActivity = field(default_factory=VoiceActivity)
    speech_count: int = 0
    first_frame_at: float | None = None


class IngestPipeline:
    """Starts and stops the pull workers and turns what they report into backend calls and deliveries."""

    def __init__(
        self,
        backend: VideoDBBackend,
        data: DataDirectory,
        *,
        sockets: CollectionSockets,
        events: EventLog,
        tasks: TaskOwner,
        media_worker: Callable[..., MediaWorker],
        fault_rules: Callable[[], list[FaultRule]],
        stream_verdict: Callable[[str], StreamVerdict],
        egress: EgressPolicy,
        clock: Clock,
        timings: PullTimings,
        public_url: Callable[[], str],
        deliver_alert: Callable[[AlertFiring], None],
        previews: PreviewHub,
        visual_index_channel: bool = False,
    ) -> None:
        self.backend = backend
        self.previews = previews
        self.data = data
        self.sockets = sockets
        self.events = events
        self.tasks = tasks
        self.media_worker = media_worker
        self.fault_rules = fault_rules
        self.stream_verdict = stream_verdict
        self.egress = egress
        self.clock = clock
        self.timings = timings
        self.public_url = public_url
        self.deliver_alert = deliver_alert
        self.visual_channel = "visual_index" if visual_index_channel else "scene_index"
        self.runtimes: dict[str, StreamRuntime] = {}
        self._outage_timer: asyncio.TimerHandle | None = None

    # ----- workers ---------------------------------------------------------------------------------------
    def start(self, stream: RTStream) -> None:
        """Start pulling a live stream (nothing happens when its worker already runs)."""
        runtime = self.runtimes.setdefault(stream.id, StreamRuntime())
        if runtime.worker is not None:
            return
        refusal = source_refusal(self.egress, stream.url, resolve=None)  # names: the worker checks each connection
        if refusal is not None:
            # A restored stream whose source the (narrowed) policy no longer admits: an outage, not a pull.
            self.events.record("ingest.refused", stream=stream.id, reason=refusal)
            self.backend.source_down(stream.id, self.clock.now(), refusal)
            self._schedule_outages()
            return
        recording = stream.current_recording
        t = self.timings
        networks, hosts = egress_lists(self.egress)
        config = IngestConfig(
            rtstream_id=stream.id,
            url=stream.url,
            media_types=stream.media_types,
            sample_rate=stream.sample_rate,
            store=recording is not None,
            directory=self.data.stream_directory(stream.id),
            recording=recording.number if recording else None,
            first_sequence=stream.next_sequence,
            segment_s=t.segment_s,
            open_timeout_s=t.open_timeout_s,
            read_timeout_s=t.read_timeout_s,
            reconnect_initial_s=t.reconnect_initial_s,
            reconnect_max_s=t.reconnect_max_s,
            egress_networks=networks,
            egress_hosts=hosts,
        )
        # The worker checks its stop flag between packets; PyAV's own timeouts bound how long one read blocks.
        stop_timeout_s = max(t.open_timeout_s, t.read_timeout_s) + 2.0
        worker = self.media_worker(
            f"rtstream:{stream.id}", pull_rtstream, config, self.clock, stop_timeout_s=stop_timeout_s
        )
        runtime.worker = worker
        runtime.armed = False
        self._forget_windows(runtime)
        runtime.batchers.clear()
        worker.start()
        self.refresh_wants(stream.id)
        self._arm(stream.id, runtime)
        runtime.tasks = self.tasks.child(stream.id)
        runtime.reader = runtime.tasks.spawn(self._read(stream.id, worker), name="pull")
        self.events.record("ingest.started", stream=stream.id, url=stream.url, recording=config.recording)

    async def stop(self, rtstream_id: str) -> None:
        """End a stream's pull: stop its worker process, then the task that read it."""
        runtime = self.runtimes.get(rtstream_id)
        if runtime is None or runtime.worker is None:
            return
        await self._close(runtime)
        stream = self.backend.streams.get(rtstream_id)
        if stream is not None:
            stream.receiving = False
            self._flush_windows(stream, runtime)
        self._schedule_outages()

    async def stop_all(self) -> None:
        live = [r for r in self.runtimes.values() if r.worker is not None]
        await asyncio.gather(*(self._close(r) for r in live))  # the processes wind down side by side
        self._cancel_outage_timer()

    async def _close(self, runtime: StreamRuntime) -> None:
        worker, tasks, reader = runtime.worker, runtime.tasks, runtime.reader
        runtime.worker, runtime.tasks, runtime.reader = None, None, None
        if worker is not None:
            await worker.aclose()
        if reader is not None:
            # The worker's last messages (the segment it closed on the way out) are still to be filed.
            await asyncio.wait({reader}, timeout=READER_DRAIN_S)
        if tasks is not None:
            await tasks.aclose()

    def forget(self) -> None:
        """Reset: every worker has been stopped; drop their runtimes."""
        for runtime in self.runtimes.values():
            self._forget_windows(runtime)
        self.runtimes.clear()
        self._cancel_outage_timer()

    def refresh_wants(self, rtstream_id: str) -> None:
        """Tell a worker whether it must decode frames and audio (the backend knows who needs them)."""
        runtime = self.runtimes.get(rtstream_id)
        if runtime is None or runtime.worker is None or rtstream_id not in self.backend.streams:
            return
        frames, audio = self.backend.media_wanted(rtstream_id)
        runtime.worker.send(Wants(frames=frames, audio=audio))

    def _arm(self, rtstream_id: str, runtime: StreamRuntime) -> None:
        """Tell the worker whether packets must ask for verdicts: only while a stream rule may match."""
        name = f"rtstream:{rtstream_id}"
        armed = any(rule.matches_stream(name) for rule in self.fault_rules())
        if armed != runtime.armed and runtime.worker is not None:
            runtime.armed = armed
            runtime.worker.send(Armed(armed))

    def forget_index(self, rtstream_id: str, index_id: str) -> None:
        """An index stopped or started: its open window or word batch starts afresh."""
        runtime = self.runtimes.get(rtstream_id)
        if runtime is not None:
            runtime.windows.pop(index_id, None)
            timer = runtime.window_timers.pop(index_id, None)
            if timer is not None:
                timer.cancel()
            runtime.batchers.pop(index_id, None)
        self.refresh_wants(rtstream_id)

    # ----- messages from the worker process --------------------------------------------------------------
    async def _read(self, rtstream_id: str, worker: MediaWorker) -> None:
        name = f"rtstream:{rtstream_id}"
        try:
            async for message in worker.messages():
                if isinstance(message, VerdictWanted):
                    worker.send(await answer_for_worker(self.stream_verdict(name)))
                else:
                    self.on_signal(rtstream_id, worker, message)
        except WorkerFailed as exc:
            # The pull itself survives every source error, so this is a crash: report it as an outage.
            self.events.record("ingest.failed", stream=rtstream_id, error=str(exc)[:300])
            stream = self.backend.streams.get(rtstream_id)
            if stream is not None and stream.live:
                self.backend.source_down(rtstream_id, self.clock.now(), "the ingest worker failed")
                self._schedule_outages()

    def on_signal(self, rtstream_id: str, worker: MediaWorker, signal: IngestSignal) -> None:
        stream = self.backend.streams.get(rtstream_id)
        runtime = self.runtimes.get(rtstream_id)
        if stream is None or runtime is None:
            return
        if isinstance(signal, SegmentDone):
            self._file_segment(stream, signal)
            return
        if isinstance(signal, PullCounters):
            if runtime.worker is worker:
                runtime.packets, runtime.connections = signal.packets, signal.connections
                runtime.decode_errors = signal.decode_errors
                self._arm(stream.id, runtime)  # a few times a second: new or deleted fault rules take effect
            return
        if runtime.worker is not worker or not stream.live:
            return  # a stopped worker's late news
        now = self.clock.now()
        if isinstance(signal, SourceUp):
            self.backend.source_receiving(stream.id, now)
            self.events.record("stream.started", stream=stream.id, codecs=signal.codecs)
            self._schedule_outages()
        elif isinstance(signal, SourceDown):
            self.backend.source_down(stream.id, now, signal.reason)
            self.events.record(
                "ingest.retry", stream=stream.id, reason=signal.reason, attempt=signal.attempt,
                retry_in_s=signal.retry_in_s,
            )
            self._schedule_outages()
        elif isinstance(signal, FrameSampled):
            self._index_frame(stream, runtime, signal)
        elif isinstance(signal, AudioLevels):
            self._index_audio(stream, runtime, signal)

    # ----- the outage schedule: the backend's advance/next_wakeup, driven by one timer ------------------
    def _schedule_outages(self) -> None:
        self._cancel_outage_timer()
        wakeup = self.backend.next_wakeup()
        if wakeup is None:
            return
        delay = max(0.0, wakeup - self.clock.now())
        self._outage_timer = asyncio.get_running_loop().call_later(delay, self._advance_outages)

    def _advance_outages(self) -> None:
        self._outage_timer = None
        for change in self.backend.advance(self.clock.now()):
            self.events.record("stream.error", stream=change.rtstream_id, reason=change.reason)
        self._schedule_outages()

    def _cancel_outage_timer(self) -> None:
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None

    # ----- segments ------------------------------------------------------------------------------------
    def _file_segment(self, stream: RTStream, signal: SegmentDone) -> None:
        segment = signal.segment
        expired = self.backend.file_segment(stream.id, segment)
        if expired is None:
            return
        self.events.record(
            "rtstream.segment", stream=stream.id, recording=segment.recording, sequence=segment.sequence,
            duration=segment.duration, expired=len(expired),
        )
        self.data.unlink(stream.id, [s.file for s in expired])
        self.data.persist()

    # ----- indexing ------------------------------------------------------------------------------------
    def _index_frame(self, stream: RTStream, runtime: StreamRuntime, signal: FrameSampled) -> None:
        sample = signal.sample
        if signal.picture is not None:
            self.previews.offer_frame(f"{stream.id}/ingest", signal.picture)
        if runtime.first_frame_at is None:
            runtime.first_frame_at = sample.time
        for index in self.backend.running_indexes(stream.id, visual=True):
            window = runtime.windows.get(index.id)
            if window is None:
                config = index.extraction_config
                window = VisualWindow(float(config["time"]), int(config["frame_count"]))
                runtime.windows[index.id] = window
            closed = window.feed(sample)
            if closed is not None:
                self._file_window(stream, runtime, index, closed)
            self._arm_window_timer(stream.id, runtime, index.id, window)

    def _file_window(
        self, stream: RTStream, runtime: StreamRuntime, index: SceneIndex,
        closed: tuple[float, float, list[FrameSample]],
    ) -> None:
        start, end, frames = closed
        first = runtime.first_frame_at if runtime.first_frame_at is not None else start
        script = self.backend.scripted_visual(stream.id, start - first)
        analysis = describe_window(frames, script)
        text = render_for_prompt(index.prompt, analysis)
        self._file_record(stream, index, SceneRecord(round(start, 3), round(end, 3), text, analysis.facts))

    def _arm_window_timer(self, rtstream_id: str, runtime: StreamRuntime, index_id: str, window: VisualWindow) -> None:
        """Close the open window when its time is over, whether or not another frame comes."""
        previous = runtime.window_timers.pop(index_id, None)
        if previous is not None:
            previous.cancel()
        closes_at = window.closes_at
        if closes_at is None:
            return
        delay = max(0.0, closes_at + WINDOW_GRACE_S - self.clock.now())
        runtime.window_timers[index_id] = asyncio.get_running_loop().call_later(
            delay, self._window_time_over, rtstream_id, index_id
        )

    def _window_time_over(self, rtstream_id: str, index_id: str) -> None:
        stream = self.backend.streams.get(rtstream_id)
        runtime = self.runtimes.get(rtstream_id)
        index = self.backend.indexes.get(index_id)
        if stream is None or runtime is None or index is None:
            return
        runtime.window_timers.pop(index_id, None)
        window = runtime.windows.get(index_id)
        if window is None:
            return
        closed = window.close_due(self.clock.now() - WINDOW_GRACE_S)
        if closed is not None:
            self._file_window(stream, runtime, index, closed)

    def _flush_windows(self, stream: RTStream, runtime: StreamRuntime) -> None:
        """At stop: the last, partial window of each visual index is emitted."""
        now = self.clock.now()
        for index_id, window in list(runtime.windows.items()):
            index = self.backend.indexes.get(index_id)
            closed = window.flush(now)
            if index is not None and closed is not None:
                self._file_window(stream, runtime, index, closed)
        self._forget_windows(runtime)

    @staticmethod
    def _forget_windows(runtime: StreamRuntime) -> None:
        for timer in runtime.window_timers.values():
            timer.cancel()
        runtime.window_timers.clear()
        runtime.windows.clear()

    def _index_audio(self, stream: RTStream, runtime: StreamRuntime, signal: AudioLevels) -> None:
        for speech in runtime.vad.feed(signal.start, signal.rms, signal.flux):
            if not speech.is_speech:
                # A steady tone or music: sound, but nobody speaking (no transcript, no audio index text).
                self.events.record(
                    "audio.not_speech", stream=stream.id, start=round(speech.start, 3), end=round(speech.end, 3),
                    flux=speech.flux,
                )
                continue
            text = speech_text(stream.id, runtime.speech_count, speech.end - speech.start, stream.script.get("speech"))
            runtime.speech_count += 1
            words = word_timestamps(text, speech.start, speech.end)
            record = TranscriptRecord(round(speech.start, 3), round(speech.end, 3), text, words)
            if self.backend.file_transcript(stream.id, record):
                self.events.record("transcript.record", stream=stream.id, start=record.start, end=record.end)
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
            for index in self.backend.running_indexes(stream.id, visual=False):
                batcher = runtime.batchers.get(index.id)
                if batcher is None:
                    config = index.extraction_config
                    batcher = AudioBatcher(str(config["segmenter"]), int(config["segmentation_value"]))
                    runtime.batchers[index.id] = batcher
                for start, end, batch in batcher.feed(words):
                    self._file_record(stream, index, SceneRecord(start, end, batch))

    def _file_record(self, stream: RTStream, index: SceneIndex, record: SceneRecord) -> None:
        base = self.public_url()
        stream_url = base + media.manifest_path(stream.id, record.start, record.end)
        firings = self.backend.add_scene_record(
            index, record, self.clock.now(), urls=(stream_url, media.player_url(base, stream_url))
        )
        self.events.record("index.record", stream=stream.id, index=index.id, start=record.start, end=record.end)
        self.sockets.send(
            index.ws_connection_id,
            {
                "channel": self.visual_channel if index.is_visual else "audio_index",
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
                self.deliver_alert(firing)
        self.data.persist()
