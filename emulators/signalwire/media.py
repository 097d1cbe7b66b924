"""One outbound media stream over an open WebSocket: ``connected``/``start``, paced media, customer messages, ``stop``.

The shared MediaClock drives every stream; each stream wakes on its tick, sends the chunks it owes back-to-back
(never skipping, timestamps nominal), acts on the emulator's stream-fault verdict for every chunk, and handles the
customer's bidirectional messages on a reader task. Dialling out and status callbacks belong to the service.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from clients.signalwire_media import (
    TRACK_NAMES,
    ClientClear,
    ClientDtmf,
    ClientMark,
    ClientMedia,
    IgnoredMessage,
    MediaFormat,
    MediaSequencer,
    decode,
    parse_client_message,
)
from emulators.kit.events import EventLog
from emulators.kit.faults import Abort, Close, Send, Skip, Stall, StreamVerdict, corrupt_payload
from emulators.kit.pacer import LatenessStats
from emulators.kit.preview import PreviewHub
from emulators.kit.tasks import TaskOwner, first_completed
from emulators.signalwire.audio import ConferenceAudio, PlayoutQueue, pilot_b64, pilot_value
from emulators.signalwire.media_clock import MediaClock
from emulators.signalwire.model import Stream

BACKLOG_LIMIT_S = 5.0

StreamVerdicts = Callable[..., StreamVerdict]  # the emulator's verdict for one chunk of a named stream


@dataclass
class StreamOptions:
    media_format: MediaFormat
    call_sid: str
    fault_name: str
    always_custom_parameters: bool = False
    omit_streamsid_in_dtmf_mark: bool = False
    pilot: bool = True
    max_playout_s: float = 60.0


@dataclass(frozen=True)
class StreamEnd:
    """How the media part of a stream ended: ``reason`` as the event log words it, ``error`` its StreamError."""

    reason: str  # "api", "conference", "shutdown", "client closed", "backlog", "fault close", "fault disconnect"
    error: str | None = None
    close_code: int | None = None  # the customer's close code when they closed


class StreamSession:
    """The media of one conference stream once its WebSocket is open, until it stops."""

    def __init__(
        self,
        stream: Stream,
        audio: ConferenceAudio,
        clock: MediaClock,
        options: StreamOptions,
        *,
        events: EventLog,
        verdict: StreamVerdicts,
        stats: LatenessStats,
        monotonic: Callable[[], float],
        tasks: TaskOwner,
        dtmf_received: Callable[[Stream, str], None],
        previews: PreviewHub,
    ) -> None:
        self.stream = stream
        self.previews = previews
        self.audio = audio
        self.clock = clock
        self.options = options
        self.events = events
        self.verdict = verdict
        self.stats = stats
        self.monotonic = monotonic
        self.dtmf_received = dtmf_received
        request = stream.request
        self.fmt = options.media_format
        self.tracks = TRACK_NAMES[request.track]
        self.sequencer = MediaSequencer(
            stream_sid=stream.sid,
            account_sid=stream.account_sid,
            call_sid=options.call_sid,
            tracks=self.tracks,
            media_format=self.fmt,
            custom_parameters=dict(request.parameters),
            always_custom_parameters=options.always_custom_parameters,
            omit_streamsid_in_dtmf_mark=options.omit_streamsid_in_dtmf_mark,
        )
        cap_s = 0.2 if request.real_time else options.max_playout_s
        self.playout = PlayoutQueue(rate=self.fmt.sample_rate, max_samples=int(self.fmt.sample_rate * cap_s))
        self.tasks = tasks
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.last_tick: int | None = None
        self.sent_media = 0
        self.pending_dtmf: list[tuple[str, int]] = []
        self.pending_marks: list[str] = []
        self.stop_reason: str | None = None  # "api", "conference", "shutdown", "client closed"
        self._stop = asyncio.Event()
        self._conference_started = asyncio.Event()
        # The backlog watchdog: the media clock calls check_backlog every tick; a send blocked past the limit
        # (the receiver stopped reading) is cancelled. No timer per chunk: a send that returns costs nothing here.
        self._in_send = False
        self._blocked = False
        self._task: asyncio.Task[object] | None = None

    # --- control from the service ---
    def conference_started(self) -> None:
        self._conference_started.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()
        self.clock.wake()

    def queue_dtmf(self, digit: str, duration_ms: int) -> None:
        self.pending_dtmf.append((digit, duration_ms))

    def queue_marks(self, names: list[str]) -> None:
        self.pending_marks.extend(names)

    def state(self) -> dict[str, Any]:
        return {
            "sid": self.stream.sid,
            "status": self.stream.status.value,
            "codec": self.fmt.codec,
            "tracks": list(self.tracks),
            "media_sent": self.sent_media,
            "sequence": self.sequencer.sequence,
            "playout_queued_ms": self.playout.queued * 1000 // self.fmt.sample_rate,
        }

    async def wait_for_conference(self) -> bool:
        """Wait until the conference is in progress (streamStartConferenceOnEnter); False when stopped first."""
        await first_completed(self._conference_started.wait(), self._stop.wait())
        return not self._stop.is_set()

    # --- the media ---
    async def open(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Take the dialled socket and send ``connected`` and ``start``."""
        self.ws = ws
        await ws.send_str(self.sequencer.connected())
        await ws.send_str(self.sequencer.start())

    async def run(self) -> StreamEnd:
        """Paced media and the customer's messages until the stream stops; the socket is closed on return."""
        try:
            self.tasks.spawn(self._read_loop(), name="reader")
            return await self._send_loop()
        finally:
            try:
                await self.close_socket(1000)
            finally:
                await self.tasks.aclose()

    async def _send_loop(self) -> StreamEnd:
        ws = self.ws
        assert ws is not None
        clock = self.clock
        self._task = asyncio.current_task()
        clock.listen(self)
        try:
            self.last_tick = max(clock.tick, clock.current_index())
            while not self._stop.is_set():
                newest = await clock.wait_after(self.last_tick)
                if self._stop.is_set():
                    break
                if ws.closed:
                    self._stop_by_client()
                    break
                if newest > self.last_tick:
                    try:
                        end = await self._send_due_watched(newest)
                    except (ConnectionError, aiohttp.ClientError):
                        self._stop_by_client()  # the customer's side vanished mid-write
                        break
                    if end is not None:
                        return end
        finally:
            clock.unlisten(self)
        if self.stop_reason == "client closed":
            self.events.record("client.disconnected", stream=self.stream.sid, code=ws.close_code)
            return StreamEnd("client closed", close_code=ws.close_code)
        # Asked to stop (API, conference end, shutdown): stop is the last frame, then close 1000.
        if not ws.closed:
            with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
                await ws.send_str(self.sequencer.stop())
        await self.close_socket(1000)
        return StreamEnd(self.stop_reason or "api")

    async def _send_due_watched(self, newest: int) -> StreamEnd | None:
        """``_send_due`` under the backlog watchdog: a write that blocks (the receiver stopped reading, its TCP
        window is shut) until the stream is more than the backlog limit behind ends the stream like any other
        backlog."""
        self._in_send = True
        try:
            return await self._send_due(newest)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._blocked or task is None:
                raise
            task.uncancel()  # the watchdog's own cancellation, taken back: the stream ends normally
            # The receiver's window has been shut for the whole backlog: it would not take a close frame either.
            self.events.record("stream.backlog", stream=self.stream.sid, blocked_writing=True,
                               sent_media=self.sent_media)
            self._abort_socket(reset=True)  # an RST frees the kernel's buffers at once instead of lingering
            return StreamEnd("backlog", "general_error")
        finally:
            self._in_send = False

    def check_backlog(self, now: float) -> None:
        """Every clock tick: a send still blocked when the oldest chunk owed is more than the backlog limit late is
        cancelled (and the stream ends, see ``_send_due_watched``)."""
        if (self._in_send and not self._blocked and self.last_tick is not None and self._task is not None
                and now > self.clock.deadline(self.last_tick + 1) + BACKLOG_LIMIT_S):
            self._blocked = True
            self._task.cancel()

    async def _send_due(self, newest: int) -> StreamEnd | None:
        """Send every chunk owed up to tick ``newest``; a StreamEnd result ends the stream."""
        ws = self.ws
        assert ws is not None and self.last_tick is not None
        if (newest - self.last_tick) * self.clock.period > BACKLOG_LIMIT_S:
            await self.close_socket(1011)
            return StreamEnd("backlog", "general_error")
        for tick in range(self.last_tick + 1, newest + 1):
            payloads = self._payloads(tick)
            match self.verdict(self.options.fault_name, tick=tick):
                case Send(corrupt=False):
                    await self._send_media(payloads)
                case Send(corrupt=True):
                    # Only the audio is damaged: the JSON message around it stays valid.
                    await self._send_media([(track, _corrupted(payload)) for track, payload in payloads])
                case Skip():
                    for track, _ in payloads:
                        self.sequencer.skip(track)  # the chunk's counters are used: receivers see the gap
                case Stall() as stall:
                    # SignalWire never skips a chunk (dossier 4.4): this one goes out, the sender pauses (until the
                    # stall ends, its rule is deleted, or the stream stops), and the owed chunks follow as a burst.
                    await self._send_media(payloads)
                    self.last_tick = tick
                    self._in_send = False  # the emulator's own pause; the backlog is judged after it
                    await first_completed(stall.wait(), self._stop.wait())
                    return None
                case Close(code=code, reason=reason):
                    await self.close_socket(code, reason)
                    return StreamEnd("fault close", "general_error")
                case Abort():
                    self._abort_socket()  # the TCP connection vanishes without a close frame
                    return StreamEnd("fault disconnect", "general_error")
            self.last_tick = tick
            self.stats.record(max(0.0, self.monotonic() - self.clock.deadline(tick)))
            if self.pending_dtmf:
                pending, self.pending_dtmf = self.pending_dtmf, []
                for digit, duration in pending:
                    await ws.send_str(self.sequencer.dtmf(digit, duration))
            if self.pending_marks:
                pending_marks, self.pending_marks = self.pending_marks, []
                for name in pending_marks:
                    await ws.send_str(self.sequencer.mark(name))
        return None

    async def _send_media(self, payloads: list[tuple[str, str]]) -> None:
        ws = self.ws
        assert ws is not None
        for track, payload in payloads:
            await ws.send_str(self.sequencer.media(track, payload))
            # The payload as sent; it is decoded only when the dashboard asks for the level.
            self.previews.offer_audio(f"{self.stream.sid}/{track}", payload, self._decode_payload)
        self.sent_media += len(payloads)

    def _decode_payload(self, payload: str) -> np.ndarray:
        return decode(base64.b64decode(payload), self.fmt)

    def _payloads(self, tick: int) -> list[tuple[str, str]]:
        chunk = self.sequencer.chunks.get(self.tracks[0], 0) + 1
        pilot = pilot_value(chunk) if self.options.pilot else None
        out = []
        for track in self.tracks:
            if pilot is not None:
                out.append((track, pilot_b64(pilot, self.fmt)))
            elif track == "inbound":
                out.append((track, self.audio.inbound(tick, self.fmt)))
            else:
                out.append((track, self.audio.outbound(tick, self.fmt)))
        return out

    async def _read_loop(self) -> None:
        ws = self.ws
        assert ws is not None
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                self.events.record("ws.ignored", stream=self.stream.sid, reason=f"{message.type.name} frame")
                continue
            self._on_client_message(message.data)
        # The customer closed (or the connection broke): wake the sender so the stream ends.
        if self.stop_reason is None:
            self._stop_by_client()

    def _stop_by_client(self) -> None:
        self.request_stop("client closed")

    def _on_client_message(self, text: str) -> None:
        parsed = parse_client_message(text, self.stream.sid)
        if isinstance(parsed, IgnoredMessage):
            self.events.record("ws.ignored", stream=self.stream.sid, reason=parsed.reason)
        elif isinstance(parsed, ClientMedia):
            self.queue_marks(self.playout.push(decode(parsed.payload, self.fmt)))
        elif isinstance(parsed, ClientMark):
            if self.playout.mark(parsed.name):
                self.queue_marks([parsed.name])
        elif isinstance(parsed, ClientClear):
            self.queue_marks(self.playout.clear())
        elif isinstance(parsed, ClientDtmf):
            self.events.record("dtmf.received", stream=self.stream.sid, digit=parsed.digit)
            self.dtmf_received(self.stream, parsed.digit)

    async def close_socket(self, code: int, reason: str = "") -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await ws.close(code=code, message=reason.encode())

    def _abort_socket(self, *, reset: bool = False) -> None:
        ws = self.ws
        if ws is None:
            return
        sock = ws.get_extra_info("socket")
        if sock is not None:
            # No close frame: the peer just sees the connection end (a source disconnect); with ``reset`` the
            # close is an RST that discards unsent data.
            with contextlib.suppress(OSError):
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)


def _corrupted(payload_b64: str) -> str:
    return base64.b64encode(corrupt_payload(base64.b64decode(payload_b64))).decode("ascii")
