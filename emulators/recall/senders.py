"""What every Recall sender shares: the bot's media context, the outbound connection with Recall's reconnect
rule, stream faults per frame, the JSON event connection, and the synthetic audio mix.

The senders themselves live in legacy.py (v1.10) and realtime.py (v1.11); media.py opens and closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import aiohttp

from clients.stamp import StreamKind
from emulators.kit.codecs import PngEncoder
from emulators.kit.emulator import Emulator
from emulators.kit.faults import Abort, Close, Send, Skip, Stall, corrupt_payload
from emulators.kit.outbound import EgressPolicy, EgressRefused, OutboundFailed, OutboundWebSocket, RetryPolicy
from emulators.kit.tasks import TaskOwner
from emulators.recall.meeting import Meeting
from emulators.recall.model import Bot
from emulators.recall.tiles import VIDEO_PERIOD_S, TileLayout, TileRenderer, TileSpec


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

    emulator: Emulator  # the kit services: event log, stream faults, pacing statistics
    bot: Bot
    meeting: Meeting
    session: aiohttp.ClientSession
    executor: Executor
    renderer: TileRenderer
    encoder: PngEncoder
    retry_interval_s: float
    layout: TileLayout
    tasks: TaskOwner  # the bot's owner: every sender task is its child
    clock0: float = 0.0  # monotonic time of video ms 0 (in_call_recording)
    wall0: float = 0.0  # Unix time of video ms 0
    pulse: Pulse = field(default_factory=Pulse)

    def stream_name(self, suffix: str) -> str:
        return f"{self.bot.id}/{suffix}"

    def grid_index(self, monotonic_s: float) -> int:
        """The first frame slot of the bot's 2 fps video clock at or after this moment."""
        return max(0, math.ceil((monotonic_s - self.clock0) / VIDEO_PERIOD_S - 1e-9))

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
    if ctx.emulator.clock.monotonic() > give_up_at:
        return None  # the pool is behind: a frame a whole period late is dropped, not encoded
    # The tile identity keys the encoder's band cache: only the rows that changed since the last frame
    # of this tile (stamp, moving bar) are compressed again.
    frame = ctx.renderer.render(spec, frame_index, capture_ms)
    tile = "screenshare" if spec.kind is StreamKind.RECALL_SCREENSHARE else "participant"
    ctx.emulator.previews.offer_frame(ctx.stream_name(f"{tile}/{spec.participant_id}"), frame)
    return ctx.encoder.encode(frame, cache_key=spec)


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
    """The kit's verdict for this frame/chunk: the payload to send, None to skip it, or StreamClosed."""
    match ctx.emulator.stream_verdict(name):
        case Send(corrupt=corrupt):
            return corrupt_payload(payload) if corrupt else payload
        case Skip():
            return None
        case Stall() as stall:
            await stall.wait()  # the pacer then skips the ticks that passed; the stalled frame is not sent
            return None
        case Close(code=code, reason=reason):
            await conn.close(code, reason)
            raise StreamClosed(f"fault closed the connection with {code}")
        case Abort():
            conn.abort()
            raise StreamClosed("fault disconnected the source")


# ----- senders ------------------------------------------------------------------------------------------
class OutboundStream:
    """A sender with Recall's reconnect rule: connect, stream until the connection is lost, wait, reconnect."""

    max_attempts: int | None = None  # legacy: unbounded while the bot is alive

    def __init__(self, ctx: MediaContext, url: str, suffix: str, *, egress: EgressPolicy) -> None:
        self.ctx = ctx
        self.url = url
        self.egress = egress
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
                    self.url, session=self.ctx.session, retry=retry, egress=self.egress,
                    events=events, name=self.name, ssl=self.ctx.emulator.client_ssl,
                )
                try:
                    ws = await outbound.connect()
                except (EgressRefused, OutboundFailed) as exc:
                    self.state = "failed"
                    events.record("stream.error", stream=self.name, error=str(exc))
                    self.ctx.pulse.beat()
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


class JsonEventStream(OutboundStream):
    """A connection that carries JSON text messages put on its queue (speaker timeline, realtime events)."""

    def __init__(self, ctx: MediaContext, url: str, suffix: str, *, egress: EgressPolicy) -> None:
        super().__init__(ctx, url, suffix, egress=egress)
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=256)
        self.messages_sent = 0

    def publish(self, message: str) -> None:
        """Queue a message for the live connection; while disconnected, real-time messages are dropped."""
        if self.conn is None or self.queue.full():
            return
        self.queue.put_nowait(message)

    def greeting(self) -> list[str]:
        """Messages a fresh connection starts with, before any live event; none by default."""
        return []

    async def stream(self, conn: Connection) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()  # nothing stale from before this connection
        for message in self.greeting():
            self.publish(message)
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

