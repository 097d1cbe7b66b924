"""What a Recall bot streams: participant tiles rendered and PNG-encoded off the loop, and the senders.

Senders: legacy video WebSocket (one connection per stream, binary header + PNG, 2 fps), legacy audio
WebSocket (S16LE 16 kHz mono, mixed or separate), the speaker timeline WebSocket and v1.11 realtime
endpoints (JSON events multiplexed on one connection). Each is a task owned by its bot's media.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np

from clients import recall_wire as wire
from emulators.kit import synth
from emulators.kit.codecs import PngEncoder
from emulators.kit.outbound import EgressRefused, OutboundFailed, OutboundWebSocket, RetryPolicy
from emulators.kit.pacer import Pacer
from emulators.kit.stamp import FrameStamp, StreamKind, paint_stamp, stamp_cell_size
from emulators.kit.tasks import TaskOwner
from emulators.recall.meeting import Meeting, MeetingEvent, ScenarioParticipant

if TYPE_CHECKING:
    from emulators.kit.emulator import Emulator
    from emulators.recall.model import Bot, Endpoint

VIDEO_PERIOD_S = 0.5  # 2 fps, every generation
# Frame sizes per profile (dossier Q4): participant, participant while a screenshare is on, screenshare.
VIDEO_DIMENSIONS: dict[str, dict[str, tuple[int, int]]] = {
    "seed": {"webcam": (1280, 720), "webcam_while_sharing": (256, 144), "screenshare": (1024, 576)},
    "v1.11": {"webcam": (480, 360), "webcam_while_sharing": (480, 360), "screenshare": (1280, 720)},
    "sample": {"webcam": (640, 360), "webcam_while_sharing": (640, 360), "screenshare": (1280, 720)},
}


# ----- tiles ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileSpec:
    """What one frame of one stream shows; the renderer turns it into pixels."""

    kind: StreamKind
    participant_id: int
    name: str
    width: int
    height: int
    speaking: bool = False


def _palette(participant_id: int) -> tuple[int, int, int]:
    # A stable, muted colour per participant (golden-angle hue walk).
    hue = (participant_id * 0.618034) % 1.0
    r, g, b = (0.5 + 0.35 * math.cos(2 * math.pi * (hue + k / 3)) for k in range(3))
    return int(r * 160) + 40, int(g * 160) + 40, int(b * 160) + 40


class TileRenderer:
    """Draws tiles fast: the static part (colour, name) once per (tile, size), the moving part per frame."""

    def __init__(self) -> None:
        self._backgrounds: dict[tuple[Any, ...], np.ndarray] = {}
        self._lock = threading.Lock()

    def background(self, spec: TileSpec) -> np.ndarray:
        key = (spec.kind, spec.participant_id, spec.name, spec.width, spec.height)
        background = self._backgrounds.get(key)
        if background is not None:
            return background
        w, h = spec.width, spec.height
        if spec.kind == StreamKind.RECALL_SCREENSHARE:
            background = synth.solid(w, h, (236, 238, 242))
            band = max(4, h // 10)
            synth.fill_rect(background, 0, h - band, w, band, _palette(spec.participant_id))
            for row in range(3):  # "slide" lines
                synth.fill_rect(background, w // 8, h // 3 + row * (h // 8), w * 5 // 8, max(2, h // 60), 150)
            label = f"{spec.name} is presenting"
        else:
            background = synth.vertical_gradient(w, h, _palette(spec.participant_id), (20, 20, 28))
            label = spec.name
        scale = max(1, min(w // 160, h // 60))
        text_w, text_h = synth.text_size(label, scale)
        synth.draw_text(background, max(4, (w - text_w) // 2), h - text_h - max(4, h // 12), label, 255, scale)
        with self._lock:
            if len(self._backgrounds) > 512:
                self._backgrounds.clear()
            self._backgrounds[key] = background
        return background

    def render(self, spec: TileSpec, frame_index: int, capture_ms: int) -> np.ndarray:
        frame = self.background(spec).copy()
        w, h = spec.width, spec.height
        # The changing scene: a bar sweeping across below the stamp, one step per frame.
        cell = stamp_cell_size(w, h)
        bar_w = max(4, w // 24)
        x = (frame_index * bar_w) % max(1, w - bar_w)
        synth.fill_rect(frame, x, 9 * cell, bar_w, max(4, h // 6), (250, 200, 60))
        if spec.speaking:
            synth.draw_rect_outline(frame, 0, 0, w, h, (60, 220, 90), thickness=max(2, h // 90))
        stamp = FrameStamp(spec.kind, spec.participant_id & 0xFFFF, frame_index & 0xFFFFFFFF, capture_ms)
        return paint_stamp(frame, stamp)


class Pulse:
    """Wakes whoever waits for "a sender made progress" (tests and benchmarks wait on it, never on sleeps)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def beat(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await self._event.wait()


@dataclass
class MediaContext:
    """What every sender of one bot shares: the emulator's services, the bot, its meeting and video clock."""

    emulator: Emulator
    bot: Bot
    meeting: Meeting
    session: aiohttp.ClientSession
    executor: Executor
    renderer: TileRenderer
    encoder: PngEncoder
    retry_interval_s: float
    video_profile: str
    clock0: float = 0.0  # monotonic time of video ms 0 (in_call_recording)
    wall0: float = 0.0  # Unix time of video ms 0
    pulse: Pulse = field(default_factory=Pulse)

    def stream_name(self, suffix: str) -> str:
        return f"{self.bot.id}/{suffix}"

    def grid_index(self, monotonic_s: float) -> int:
        """The first frame slot of the bot's 2 fps video clock at or after this moment."""
        return max(0, math.ceil((monotonic_s - self.clock0) / VIDEO_PERIOD_S - 1e-9))

    def tile_size(self, kind: str) -> tuple[int, int]:
        dims = VIDEO_DIMENSIONS[self.video_profile]
        if kind == "screenshare":
            return dims["screenshare"]
        return dims["webcam_while_sharing"] if self.meeting.screensharing else dims["webcam"]

    def webcam_tile(self, person: ScenarioParticipant, kind: StreamKind = StreamKind.RECALL_WEBCAM) -> TileSpec:
        w, h = self.tile_size("webcam")
        return TileSpec(kind, person.id, person.name, w, h, person.id in self.meeting.audible())

    def screenshare_tile(self, person: ScenarioParticipant) -> TileSpec:
        w, h = self.tile_size("screenshare")
        return TileSpec(StreamKind.RECALL_SCREENSHARE, person.id, person.name, w, h)

    async def render_png(self, spec: TileSpec, frame_index: int, *, give_up_late: bool = False) -> bytes | None:
        """The PNG of one frame slot, encoded in the pool; None when ``give_up_late`` and the slot is long gone."""
        capture_ms = int((self.wall0 + frame_index * VIDEO_PERIOD_S) * 1000)
        give_up_at = self.clock0 + (frame_index + 1) * VIDEO_PERIOD_S if give_up_late else math.inf
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, _render_and_encode, self, spec, frame_index, capture_ms, give_up_at
        )


def _render_and_encode(
    ctx: MediaContext, spec: TileSpec, frame_index: int, capture_ms: int, give_up_at: float
) -> bytes | None:
    # Runs in the encode pool: numpy copies and zlib release the GIL, so streams encode in parallel.
    if time.monotonic() > give_up_at:
        return None  # the pool is behind: a frame a whole period late is dropped, not encoded
    # The tile identity keys the encoder's band cache: only the rows that changed since the last frame
    # of this tile (stamp, moving bar) are compressed again.
    return ctx.encoder.encode(ctx.renderer.render(spec, frame_index, capture_ms), cache_key=spec)


# ----- a connection to the customer's endpoint ----------------------------------------------------------
class StreamClosed(Exception):
    """The connection ended (peer closed, fault, network); the sender decides whether to retry."""


class Connection:
    """One live outbound WebSocket plus the task that reads it (pings, the peer's close)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.reader = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        async for _message in self.ws:
            pass  # the customer's server has nothing to say; reading keeps pings and closes flowing

    @property
    def lost(self) -> bool:
        return self.reader.done() or self.ws.closed

    async def send_bytes(self, data: bytes) -> None:
        if self.lost:
            raise StreamClosed("peer closed the connection")
        try:
            await self.ws.send_bytes(data)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise StreamClosed(str(exc)) from None

    async def send_str(self, text: str) -> None:
        if self.lost:
            raise StreamClosed("peer closed the connection")
        try:
            await self.ws.send_str(text)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise StreamClosed(str(exc)) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.ws.close(code=code, message=reason.encode())
        self.reader.cancel()
        with contextlib.suppress(BaseException):
            await self.reader

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a source disconnect)."""
        conn = self.ws._response.connection
        if conn is not None and conn.transport is not None:
            conn.transport.abort()


async def apply_stream_fault(ctx: MediaContext, name: str, payload: bytes, conn: Connection) -> bytes | None:
    """The kit's stream faults, once per frame/chunk: the payload to send, None to skip it, or StreamClosed."""
    rule = ctx.emulator.stream_fault(name)
    if rule is None:
        return payload
    action = rule.action
    if action.type == "drop":
        return None
    if action.type == "corrupt":
        return ctx.emulator.faults.corrupt(payload)
    if action.type == "stall":
        await asyncio.sleep(action.seconds)  # the pacer then skips the ticks that passed
        return None
    if action.type == "close":
        await conn.close(action.code, action.reason)
        raise StreamClosed(f"fault closed the connection with {action.code}")
    conn.abort()
    raise StreamClosed("fault disconnected the source")


# ----- senders ------------------------------------------------------------------------------------------
class OutboundStream:
    """A sender with Recall's reconnect rule: connect, stream until the connection is lost, wait, reconnect."""

    max_attempts: int | None = None  # legacy: unbounded while the bot is alive

    def __init__(self, ctx: MediaContext, url: str, suffix: str) -> None:
        self.ctx = ctx
        self.url = url
        self.name = ctx.stream_name(suffix)
        self.connections = 0
        self.state = "connecting"
        self.conn: Connection | None = None

    async def run(self) -> None:
        events = self.ctx.emulator.events
        retry = RetryPolicy(self.ctx.retry_interval_s, self.max_attempts)
        try:
            while True:
                outbound = OutboundWebSocket(
                    self.url, session=self.ctx.session, retry=retry, egress=self.ctx.emulator.egress,
                    events=events, name=self.name, ssl=self.ctx.emulator.client_ssl,
                )
                try:
                    ws = await outbound.connect()
                except EgressRefused as exc:
                    self.state = "failed"
                    events.record("stream.error", stream=self.name, error=str(exc))
                    return
                except OutboundFailed as exc:
                    self.state = "failed"
                    events.record("stream.error", stream=self.name, error=str(exc))
                    return
                self.conn = Connection(ws)
                self.connections += 1
                self.state = "connected"
                events.record("stream.started", stream=self.name, url=self.url, connection=self.connections)
                self.ctx.pulse.beat()
                try:
                    await self.stream(self.conn)
                except StreamClosed as exc:
                    events.record("stream.error", stream=self.name, error=str(exc))
                finally:
                    conn, self.conn = self.conn, None
                    if conn is not None:
                        await conn.close()
                self.state = "retrying"
                events.record("stream.stopped", stream=self.name, reason="connection lost")
                self.ctx.pulse.beat()
                await asyncio.sleep(self.ctx.retry_interval_s)
        except asyncio.CancelledError:
            # The inner finally has closed a live connection with 1000 already.
            if self.conn is not None:
                await self.conn.close(1000)
            if self.state == "connected":
                events.record("stream.stopped", stream=self.name, reason="stream ended")
            self.state = "closed"
            raise

    async def stream(self, conn: Connection) -> None:
        raise NotImplementedError


class LegacyVideoStream(OutboundStream):
    """One legacy video stream: a text hello, then uint32 LE id + uint32 LE ms + PNG at 2 fps."""

    def __init__(
        self, ctx: MediaContext, url: str, suffix: str, header_id: int, source: Callable[[], TileSpec | None]
    ) -> None:
        super().__init__(ctx, url, f"video/{suffix}")
        self.header_id = header_id
        self.source = source
        self.frames_sent = 0

    async def _frame(self, index: int) -> tuple[int, bytes | None]:
        spec = self.source()
        return index, (None if spec is None else await self.ctx.render_png(spec, index, give_up_late=True))

    async def stream(self, conn: Connection) -> None:
        ctx = self.ctx
        await conn.send_str(wire.video_hello(ctx.bot.id))
        start_index = ctx.grid_index(time.monotonic())
        pacer = Pacer(VIDEO_PERIOD_S, stats=ctx.emulator.pacing_stats("video"))
        send_stats = ctx.emulator.pacing_stats("video.send")
        # Encode one frame ahead: frame n+1 renders while we wait for n's deadline, so sends are on time.
        pending = asyncio.ensure_future(self._frame(start_index))
        try:
            async for tick in pacer.ticks(start=ctx.clock0 + start_index * VIDEO_PERIOD_S):
                index, png = await pending
                # When behind (a busy machine), skip ahead to the current slot; every encoded frame is still
                # sent, with its own timestamp, so no work is thrown away exactly when CPU is short.
                pending = asyncio.ensure_future(self._frame(max(index, start_index + tick.index) + 1))
                if png is None:
                    if self.source() is not None:
                        send_stats.skipped += 1  # encoded too late to be worth sending
                    continue
                message = wire.pack_video_frame(self.header_id, index * 500, png)
                payload = await apply_stream_fault(ctx, self.name, message, conn)
                if payload is None:
                    continue
                await conn.send_bytes(payload)
                send_stats.record(max(0.0, time.monotonic() - (ctx.clock0 + index * VIDEO_PERIOD_S)))
                self.frames_sent += 1
                ctx.pulse.beat()
        finally:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


AUDIO_CHUNK_S = 0.1


class AudioMixer:
    """One tone per participant while audible (speaking, present, unmuted), summed; continuous phase."""

    def __init__(self, meeting: Meeting) -> None:
        self.meeting = meeting
        self._generators: dict[int, synth.ToneGenerator] = {}

    def _generator(self, pid: int) -> synth.ToneGenerator:
        gen = self._generators.get(pid)
        if gen is None:
            index = sorted(self.meeting.roster).index(pid) if pid in self.meeting.roster else 0
            gen = self._generators[pid] = synth.ToneGenerator(220.0 + 110.0 * index, wire.AUDIO_SAMPLE_RATE, 0.25)
        return gen

    def mixed(self, n: int) -> bytes:
        audible = self.meeting.audible()
        if not audible:
            return bytes(2 * n)
        signal = synth.mix(*(self._generator(pid).read(n) for pid in audible))
        return synth.to_int16(signal).astype("<i2").tobytes()

    def single(self, pid: int, n: int) -> bytes | None:
        """A participant's own audio; None while muted (no packets), zeros while silent."""
        if pid in self.meeting.muted:
            return None
        if pid not in self.meeting.audible():
            return bytes(2 * n)
        return self._generator(pid).read_int16(n).astype("<i2").tobytes()


class LegacyAudioStream(OutboundStream):
    """Legacy audio: JSON hello, then raw S16LE 16 kHz mono chunks (mixed, or one participant's with an id prefix)."""

    def __init__(self, ctx: MediaContext, url: str, chunk_s: float, participant_id: int | None = None) -> None:
        super().__init__(ctx, url, "audio" if participant_id is None else f"audio/{participant_id}")
        self.chunk_s = chunk_s
        self.participant_id = participant_id
        self.mixer = AudioMixer(ctx.meeting)
        self.chunks_sent = 0

    async def stream(self, conn: Connection) -> None:
        ctx = self.ctx
        offset = max(0.0, time.monotonic() - ctx.clock0)
        separate = self.participant_id is not None
        recording_id = ctx.bot.recording.id if ctx.bot.recording else None
        await conn.send_str(wire.audio_hello(ctx.bot.id, recording_id, separate_streams=separate, offset_s=offset))
        samples = round(self.chunk_s * wire.AUDIO_SAMPLE_RATE)
        async for _tick in Pacer(self.chunk_s, stats=ctx.emulator.pacing_stats("audio")).ticks():
            if separate:
                pcm = self.mixer.single(self.participant_id or 0, samples)
                if pcm is None:
                    continue
            else:
                pcm = self.mixer.mixed(samples)
            payload = await apply_stream_fault(ctx, self.name, wire.pack_audio_chunk(pcm, self.participant_id), conn)
            if payload is None:
                continue
            await conn.send_bytes(payload)
            self.chunks_sent += 1
            ctx.pulse.beat()


class JsonEventStream(OutboundStream):
    """A connection that carries JSON text messages put on its queue (speaker timeline, realtime events)."""

    def __init__(self, ctx: MediaContext, url: str, suffix: str) -> None:
        super().__init__(ctx, url, suffix)
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=256)
        self.messages_sent = 0

    def publish(self, message: str) -> None:
        """Queue a message for the live connection; while disconnected, real-time messages are dropped."""
        if self.conn is None or self.queue.full():
            return
        self.queue.put_nowait(message)

    async def stream(self, conn: Connection) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()  # nothing stale from before this connection
        while True:
            try:
                async with asyncio.timeout(0.5):
                    message = await self.queue.get()
            except TimeoutError:
                if conn.lost:
                    raise StreamClosed("peer closed the connection") from None
                continue
            payload = await apply_stream_fault(self.ctx, self.name, message.encode(), conn)
            if payload is None:
                continue
            await conn.send_str(payload.decode("utf-8", "replace"))
            self.messages_sent += 1
            self.ctx.pulse.beat()


class RealtimeEndpointStream(JsonEventStream):
    """A v1.11 websocket realtime endpoint: every subscribed event on one connection; 30 tries per incident."""

    max_attempts = 30

    def __init__(self, ctx: MediaContext, endpoint: Endpoint, *, separate_png: bool, audio_chunk_s: float) -> None:
        super().__init__(ctx, endpoint.url, f"realtime/{endpoint.id}")
        self.endpoint = endpoint
        self.separate_png = separate_png and "video_separate_png.data" in endpoint.events
        self.audio_chunk_s = audio_chunk_s
        self.mixer = AudioMixer(ctx.meeting)

    def subscribed(self, event: str) -> bool:
        return event in self.endpoint.events

    def resources(self, **extra: dict[str, Any] | None) -> dict[str, dict[str, Any] | None]:
        bot = self.ctx.bot
        recording_id = bot.recording.id if bot.recording else None
        out: dict[str, dict[str, Any] | None] = {
            "realtime_endpoint": wire.resource_ref(self.endpoint.id, self.endpoint.metadata),
            "recording": wire.resource_ref(recording_id, {}),
            "bot": wire.resource_ref(bot.id, {k: v for k, v in bot.spec.metadata.items() if v is not None}),
        }
        out.update(extra)
        return out

    def timestamp(self, monotonic_s: float) -> dict[str, Any]:
        relative = max(0.0, monotonic_s - self.ctx.clock0)
        return wire.event_timestamp(relative, self.ctx.wall0 + relative)

    def participant(self, pid: int) -> dict[str, Any]:
        person = self.ctx.meeting.roster.get(pid)
        if person is None:
            return wire.participant_payload(pid, None, is_host=False, platform=None)
        return wire.participant_payload(pid, person.name, is_host=person.is_host, platform=person.platform)

    def on_meeting_event(self, event: MeetingEvent, at: float) -> None:
        if event.participant is None or self.conn is None:
            return
        name = f"participant_events.{event.code}"
        if self.subscribed(name):
            data = {"participant": self.participant(event.participant), "timestamp": self.timestamp(at), "data": None}
            self.publish(wire.realtime_event(name, data, self.resources(participant_events=wire.resource_ref(
                self.ctx.bot.recording.id if self.ctx.bot.recording else None))))
        if event.code == "speech_off" and event.text and self.subscribed("transcript.data"):
            self.publish(self._transcript(event, at))

    def _transcript(self, event: MeetingEvent, at: float) -> str:
        words = event.text.split() if event.text else []
        scale = self.ctx.emulator.clock.time_scale
        start_s, end_s = event.interval_s or (0.0, 0.0)
        span = max(0.001, (end_s - start_s) * scale)
        begin = at - span
        step = span / max(1, len(words))
        out = []
        for i, word in enumerate(words):
            out.append({
                "text": word,
                "start_timestamp": self.timestamp(begin + i * step),
                "end_timestamp": self.timestamp(begin + (i + 1) * step),
            })
        data = {"words": out, "participant": self.participant(event.participant or 0)}
        return wire.realtime_event("transcript.data", data, self.resources(transcript=wire.resource_ref(None)))

    async def stream(self, conn: Connection) -> None:
        owner = TaskOwner(self.name)
        try:
            if self.separate_png:
                owner.spawn(self._video(), name="video_separate_png")
            if self.subscribed("audio_mixed_raw.data") or self.subscribed("audio_separate_raw.data"):
                owner.spawn(self._audio(), name="audio_raw")
            await super().stream(conn)
        finally:
            await owner.aclose()

    async def _video(self) -> None:
        ctx = self.ctx
        start_index = ctx.grid_index(time.monotonic())
        pacer = Pacer(VIDEO_PERIOD_S, stats=ctx.emulator.pacing_stats("realtime.video"))
        video_ref = wire.resource_ref(f"{ctx.bot.id}-video-separate", {})
        async for tick in pacer.ticks(start=ctx.clock0 + start_index * VIDEO_PERIOD_S):
            index = start_index + tick.index
            tiles: list[tuple[str, TileSpec]] = []
            for person in list(ctx.meeting.present.values()):
                tiles.append(("webcam", ctx.webcam_tile(person)))
            for pid in list(ctx.meeting.sharing):
                person = ctx.meeting.present.get(pid)
                if person is not None:
                    tiles.append(("screenshare", ctx.screenshare_tile(person)))
            pngs = await asyncio.gather(*(ctx.render_png(spec, index) for _kind, spec in tiles))
            stamp = self.timestamp(tick.deadline)
            for (kind, spec), png in zip(tiles, pngs, strict=True):
                data = wire.png_event_data(png, kind=kind, participant=self.participant(spec.participant_id),
                                           timestamp=stamp)
                self.publish(wire.realtime_event("video_separate_png.data", data,
                                                 self.resources(video_separate=video_ref)))

    async def _audio(self) -> None:
        samples = round(self.audio_chunk_s * wire.AUDIO_SAMPLE_RATE)
        mixed_ref = wire.resource_ref(f"{self.ctx.bot.id}-audio-mixed", {})
        separate_ref = wire.resource_ref(f"{self.ctx.bot.id}-audio-separate", {})
        separate = AudioMixer(self.ctx.meeting)  # its own tone phases: the mix and the singles are separate streams
        async for tick in Pacer(self.audio_chunk_s, stats=self.ctx.emulator.pacing_stats("realtime.audio")).ticks():
            stamp = self.timestamp(tick.deadline)
            if self.subscribed("audio_mixed_raw.data"):
                data = wire.audio_event_data(self.mixer.mixed(samples), timestamp=stamp)
                self.publish(wire.realtime_event("audio_mixed_raw.data", data, self.resources(audio_mixed=mixed_ref)))
            if self.subscribed("audio_separate_raw.data"):
                for pid in list(self.ctx.meeting.present):
                    pcm = separate.single(pid, samples)
                    if pcm is None:
                        continue  # muted participants send nothing
                    data = wire.audio_event_data(pcm, timestamp=stamp, participant=self.participant(pid))
                    self.publish(wire.realtime_event("audio_separate_raw.data", data,
                                                     self.resources(audio_separate=separate_ref)))


# ----- a bot's media, assembled -------------------------------------------------------------------------
@dataclass
class BotMediaSettings:
    retry_interval_s: float = 3.0
    audio_chunk_s: float = AUDIO_CHUNK_S
    audio_separate_streams: bool = False
    legacy_video_dimensions: str = "seed"
    realtime_video_dimensions: str = "v1.11"


@dataclass
class BotMedia:
    """Starts and stops a bot's senders as the meeting changes; closes them all (1000) when the bot leaves."""

    ctx: MediaContext
    settings: BotMediaSettings
    owner: TaskOwner = field(init=False)
    streams: dict[str, tuple[OutboundStream, asyncio.Task[Any]]] = field(default_factory=dict)
    realtime: list[RealtimeEndpointStream] = field(default_factory=list)
    timeline_stream: JsonEventStream | None = None
    extra_tasks: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.owner = TaskOwner(f"recall-bot-{self.ctx.bot.id}")

    @property
    def spec(self) -> Any:
        return self.ctx.bot.spec

    def _start(self, key: str, stream: OutboundStream) -> None:
        if key in self.streams:
            return
        task = self.owner.spawn(stream.run(), name=key)
        self.streams[key] = (stream, task)

    async def _stop(self, key: str) -> None:
        entry = self.streams.pop(key, None)
        if entry is None:
            return
        _stream, task = entry
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        self.ctx.pulse.beat()

    # --- legacy
    def _video_url(self) -> str | None:
        if self.spec.generation != "v1.10":
            return None
        return self.spec.real_time_media.get("websocket_video_destination_url")

    def _speaker_source(self) -> TileSpec | None:
        meeting = self.ctx.meeting
        speaker = meeting.active_speaker
        w, h = self.ctx.tile_size("webcam")
        if speaker is None:
            return TileSpec(StreamKind.RECALL_SPEAKER, 0, "Waiting for others to join", w, h)
        return self.ctx.webcam_tile(speaker, StreamKind.RECALL_SPEAKER)

    def _webcam_source(self, pid: int) -> Callable[[], TileSpec | None]:
        def source() -> TileSpec | None:
            person = self.ctx.meeting.present.get(pid)
            return None if person is None else self.ctx.webcam_tile(person)
        return source

    def _share_source(self, pid: int) -> Callable[[], TileSpec | None]:
        def source() -> TileSpec | None:
            person = self.ctx.meeting.present.get(pid)
            if person is None or pid not in self.ctx.meeting.sharing:
                return None
            return self.ctx.screenshare_tile(person)
        return source

    def start(self) -> None:
        """Open every connection the bot's configuration asks for (at in_call_recording)."""
        spec, ctx = self.spec, self.ctx
        if spec.generation == "v1.10":
            url = self._video_url()
            if url and spec.recording_mode == "speaker_view":
                self._start("video/speaker", LegacyVideoStream(ctx, url, "speaker", 0, self._speaker_source))
            elif url and spec.recording_mode in ("gallery_view", "gallery_view_v2"):
                for pid in list(ctx.meeting.present):
                    self._start_participant_video(url, pid)
                for pid in list(ctx.meeting.sharing):
                    self._start_share_video(url, pid)
            audio_url = spec.real_time_media.get("websocket_audio_destination_url")
            if audio_url:
                if self.settings.audio_separate_streams:
                    for pid in list(ctx.meeting.present):
                        self._start(f"audio/{pid}", LegacyAudioStream(ctx, audio_url, self.settings.audio_chunk_s, pid))
                else:
                    self._start("audio", LegacyAudioStream(ctx, audio_url, self.settings.audio_chunk_s))
            timeline_url = spec.real_time_media.get("websocket_speaker_timeline_destination_url")
            if timeline_url:
                self.timeline_stream = JsonEventStream(ctx, timeline_url, "speaker_timeline")
                self._start("speaker_timeline", self.timeline_stream)
        else:
            separate_png = (
                spec.recording_config.get("video_separate_png") is not None
                and spec.recording_config.get("video_mixed_layout") == "gallery_view_v2"
            )
            for endpoint in spec.endpoints:
                if endpoint.type != "websocket":
                    continue
                stream = RealtimeEndpointStream(
                    ctx, endpoint, separate_png=separate_png, audio_chunk_s=self.settings.audio_chunk_s
                )
                self.realtime.append(stream)
                self._start(f"realtime/{endpoint.id}", stream)

    def _start_participant_video(self, url: str, pid: int) -> None:
        self._start(f"video/{pid}", LegacyVideoStream(self.ctx, url, str(pid), pid, self._webcam_source(pid)))

    def _start_share_video(self, url: str, pid: int) -> None:
        key = f"video/screenshare-{pid}"
        self._start(key, LegacyVideoStream(self.ctx, url, f"screenshare-{pid}", pid, self._share_source(pid)))

    async def on_meeting_event(self, event: MeetingEvent, at: float) -> None:
        """Follow the meeting: streams open and close with their participant or share."""
        spec, pid = self.spec, event.participant
        for stream in self.realtime:
            stream.on_meeting_event(event, at)
        if spec.generation != "v1.10" or pid is None:
            return
        url = self._video_url()
        gallery = spec.recording_mode in ("gallery_view", "gallery_view_v2")
        if event.code == "join":
            if url and gallery:
                self._start_participant_video(url, pid)
            audio_url = spec.real_time_media.get("websocket_audio_destination_url")
            if audio_url and self.settings.audio_separate_streams:
                self._start(f"audio/{pid}", LegacyAudioStream(self.ctx, audio_url, self.settings.audio_chunk_s, pid))
        elif event.code == "leave":
            await self._stop(f"video/{pid}")
            await self._stop(f"video/screenshare-{pid}")
            await self._stop(f"audio/{pid}")
        elif event.code == "screenshare_on" and url and gallery:
            self._start_share_video(url, pid)
        elif event.code == "screenshare_off":
            await self._stop(f"video/screenshare-{pid}")
        if self.timeline_stream is not None and event.code == "speech_on":
            person = self.ctx.meeting.roster.get(pid)
            self.timeline_stream.publish(
                wire.speaker_timeline_message(person.name if person else None, pid, max(0.0, at - self.ctx.clock0))
            )

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checked whenever a sender makes progress."""
        await self.ctx.pulse.wait_for(predicate, timeout_s)

    def frames_sent(self) -> dict[str, int]:
        return {key: getattr(stream, "frames_sent", 0) for key, (stream, _task) in self.streams.items()}

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, (stream, _task) in self.streams.items():
            out[key] = {"state": stream.state, "connections": stream.connections, "url": stream.url}
        return out

    async def aclose(self) -> None:
        for key in list(self.streams):
            await self._stop(key)
        await self.owner.aclose()
