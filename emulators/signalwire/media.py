"""One outbound media stream: wss connection, ``connected``/``start``, paced media, customer messages, ``stop``.

The shared MediaClock drives every stream; each stream's task wakes on its tick, sends the chunks it owes
back-to-back (never skipping, timestamps nominal) and handles the customer's bidirectional messages on a
reader task.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

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
from emulators.kit.faults import FaultBook
from emulators.kit.outbound import EgressPolicy, EgressRefused, describe_connect_error
from emulators.kit.pacer import LatenessStats
from emulators.kit.tasks import TaskOwner, first_completed
from emulators.signalwire.audio import ConferenceAudio, PlayoutQueue, pilot_b64, pilot_value
from emulators.signalwire.callbacks import StatusCallbacks
from emulators.signalwire.dialout import OverrideResolver, connection_error_kind
from emulators.signalwire.media_clock import MediaClock
from emulators.signalwire.model import Stream

log = logging.getLogger("benchtwin.signalwire")

CONNECT_TIMEOUT_S = 5.0
BACKLOG_LIMIT_S = 5.0


@dataclass
class StreamOptions:
    media_format: MediaFormat
    call_sid: str
    fault_name: str
    ssl: ssl.SSLContext | bool
    always_custom_parameters: bool = False
    omit_streamsid_in_dtmf_mark: bool = False
    pilot: bool = True
    max_playout_s: float = 60.0


@dataclass
class SessionHooks:
    """What a stream tells its owner (the device) as its life goes on; each returns nothing."""

    started: Callable[[Stream], None]
    stopped: Callable[[Stream, str | None], None]
    dtmf_received: Callable[[Stream, str], None]


class StreamSession:
    """One conference stream: connect, ``connected``/``start``, paced media, bidirectional messages, ``stop``."""

    def __init__(
        self,
        stream: Stream,
        audio: ConferenceAudio,
        clock: MediaClock,
        options: StreamOptions,
        *,
        session: aiohttp.ClientSession,
        egress: EgressPolicy,
        resolver: OverrideResolver,
        events: EventLog,
        faults: FaultBook,
        stats: LatenessStats,
        callbacks: StatusCallbacks,
        hooks: SessionHooks,
        now: Callable[[], float],
    ) -> None:
        self.stream = stream
        self.audio = audio
        self.clock = clock
        self.options = options
        self.session = session
        self.egress = egress
        self.resolver = resolver
        self.events = events
        self.faults = faults
        self.stats = stats
        self.callbacks = callbacks
        self.hooks = hooks
        self.now = now
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
        self.tasks = TaskOwner(f"signalwire:{stream.sid}")
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.first_tick: int | None = None
        self.last_tick: int | None = None
        self.sent_media = 0
        self.stall_until = 0.0
        self.pending_dtmf: list[tuple[str, int]] = []
        self.pending_marks: list[str] = []
        self.stop_reason: str | None = None  # "api", "conference", "shutdown"
        self._stop = asyncio.Event()
        self._conference_started = asyncio.Event()

    # --- control from the device ---
    def conference_started(self) -> None:
        self._conference_started.set()

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
            "status": self.stream.status,
            "codec": self.fmt.codec,
            "tracks": list(self.tracks),
            "media_sent": self.sent_media,
            "sequence": self.sequencer.sequence,
            "playout_queued_ms": self.playout.queued * 1000 // self.fmt.sample_rate,
        }

    # --- the life of the stream ---
    async def run(self, *, conference_live: bool, duplicate_name: bool) -> None:
        callbacks = self.tasks.spawn(self.callbacks.run(), name="callbacks")
        error: str | None = None
        try:
            error = await self._lifecycle(conference_live, duplicate_name)
        finally:
            # Bookkeeping first (synchronous), so even a cancelled stream is marked stopped; the reader and
            # the callback worker are always closed, whatever interrupts the polite part in between.
            self.hooks.stopped(self.stream, error)
            self.callbacks.close()
            try:
                await self._close_socket(1000)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(15):
                        await asyncio.wait({callbacks})  # the worker ends once its queue is drained
            finally:
                await self.tasks.aclose()

    async def _lifecycle(self, conference_live: bool, duplicate_name: bool) -> str | None:
        stream = self.stream
        if duplicate_name:
            self._error("Duplicated stream name")
            return "Duplicated stream name"
        if not conference_live:
            # Mirrors streamStartConferenceOnEnter: connect once the conference is in progress.
            await first_completed(self._conference_started.wait(), self._stop.wait())
            if self._stop.is_set():
                return None
        # Voice loops take tens of milliseconds to render: never on the loop that paces everyone else.
        await asyncio.to_thread(self.audio.prepare, self.fmt)
        kind = await self._connect()
        if kind is not None:
            return kind
        if self._stop.is_set():
            return None
        assert self.ws is not None
        await self.ws.send_str(self.sequencer.connected())
        await self.ws.send_str(self.sequencer.start())
        self.hooks.started(stream)
        self.callbacks.send("stream-started")
        self.events.record("stream.started", stream=stream.sid, conference=stream.conference_sid,
                           codec=self.fmt.codec, track=stream.request.track, url=stream.request.url)
        self.tasks.spawn(self._read_loop(), name="reader")
        return await self._send_loop()

    async def _connect(self) -> str | None:
        request = self.stream.request
        url = request.url
        headers = {}
        if request.bearer_token:
            headers["Authorization"] = f"Bearer {request.bearer_token}"
        parts = urlsplit(url)
        try:
            target = self.resolver.target(parts.hostname or "", parts.port or (443 if parts.scheme == "wss" else 80))
            # The allowlist check may resolve a name: never block the loop that paces every stream on DNS.
            await asyncio.to_thread(self.egress.check, f"https://{target[0]}:{target[1]}/" if target else url)
        except (EgressRefused, ValueError) as exc:
            self.events.record("outbound.failed", stream=self.stream.sid, url=url, error=str(exc))
            self._error("connection_refused")
            return "connection_refused"
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                self.ws = await self.session.ws_connect(
                    url,
                    headers=headers,
                    ssl=self.options.ssl,
                    autoping=True,
                    compress=0,
                    max_msg_size=16 * 1024**2,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                )
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as exc:
            kind = connection_error_kind(exc)
            self.events.record("outbound.failed", stream=self.stream.sid, url=url,
                               error=describe_connect_error(exc), stream_error=kind)
            self._error(kind)
            return kind
        self.events.record("outbound.connected", stream=self.stream.sid, url=url)
        return None

    def _error(self, kind: str) -> None:
        self.callbacks.send("stream-error", kind)
        self.events.record("stream.error", stream=self.stream.sid, conference=self.stream.conference_sid,
                           error=kind)

    async def _send_loop(self) -> str | None:
        ws = self.ws
        assert ws is not None
        clock = self.clock
        clock.listen()
        try:
            self.first_tick = self.last_tick = max(clock.tick, clock.current_index())
            while not self._stop.is_set():
                newest = await clock.wait_after(self.last_tick)
                if self._stop.is_set():
                    break
                if ws.closed:
                    self._stop_by_client()
                    break
                if newest > self.last_tick:
                    try:
                        outcome = await self._send_due(newest)
                    except (ConnectionError, aiohttp.ClientError):
                        self._stop_by_client()  # the customer's side vanished mid-write
                        break
                    if outcome is not None:
                        return outcome
        finally:
            clock.unlisten()
        if self.stop_reason == "client":
            self.callbacks.send("stream-stopped")
            self.events.record("client.disconnected", stream=self.stream.sid, code=ws.close_code)
            self.events.record("stream.stopped", stream=self.stream.sid, reason="client closed")
            return None
        # Asked to stop (API, conference end, shutdown): stop is the last frame, then close 1000.
        if not ws.closed:
            with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
                await ws.send_str(self.sequencer.stop())
        await self._close_socket(1000)
        if self.stop_reason != "shutdown":
            self.callbacks.send("stream-stopped")
        self.events.record("stream.stopped", stream=self.stream.sid, reason=self.stop_reason)
        return None

    async def _send_due(self, newest: int) -> str | None:
        """Send every chunk owed up to tick ``newest``; a non-None result ends the stream ("" = quietly)."""
        ws = self.ws
        assert ws is not None and self.last_tick is not None
        now = time.monotonic()
        if now < self.stall_until:
            return None
        if (newest - self.last_tick) * self.clock.period > BACKLOG_LIMIT_S:
            self._error("general_error")
            self.events.record("stream.stopped", stream=self.stream.sid, reason="backlog")
            await self._close_socket(1011)
            return "general_error"
        for tick in range(self.last_tick + 1, newest + 1):
            rule = self.faults.for_stream(self.options.fault_name) if len(self.faults) else None
            payloads = self._payloads(tick)
            if rule is not None:
                outcome = await self._apply_fault(rule, tick, payloads)
                if outcome is not None:
                    return outcome
                if rule.action.type == "stall":
                    return None
            else:
                for track, payload in payloads:
                    await ws.send_str(self.sequencer.media(track, payload))
                self.sent_media += len(payloads)
            self.last_tick = tick
            self.stats.record(max(0.0, time.monotonic() - self.clock.deadline(tick)))
            if self.pending_dtmf:
                pending, self.pending_dtmf = self.pending_dtmf, []
                for digit, duration in pending:
                    await ws.send_str(self.sequencer.dtmf(digit, duration))
            if self.pending_marks:
                pending_marks, self.pending_marks = self.pending_marks, []
                for name in pending_marks:
                    await ws.send_str(self.sequencer.mark(name))
        return None

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

    async def _apply_fault(self, rule: Any, tick: int, payloads: list[tuple[str, str]]) -> str | None:
        ws = self.ws
        assert ws is not None
        action = rule.action
        self.events.record("fault.applied", rule=rule.id, action=action.type, stream=self.options.fault_name,
                           tick=tick)
        if action.type == "drop":
            for track, _ in payloads:
                self.sequencer.skip(track)
            return None
        if action.type == "corrupt":
            for track, payload in payloads:
                damaged = base64.b64encode(self.faults.corrupt(base64.b64decode(payload))).decode("ascii")
                await ws.send_str(self.sequencer.media(track, damaged))
            self.sent_media += len(payloads)
            return None
        if action.type == "stall":
            # The sender pauses; afterwards it bursts the owed chunks (dossier 4.4: never skipped).
            self.stall_until = time.monotonic() + action.seconds
            for track, payload in payloads:
                await ws.send_str(self.sequencer.media(track, payload))
            self.sent_media += len(payloads)
            self.last_tick = tick
            return None
        if action.type == "close":
            await self._close_socket(action.code, action.reason)
        else:  # disconnect: the TCP connection vanishes without a close frame
            self._abort_socket()
        self._error("general_error")
        self.events.record("stream.stopped", stream=self.stream.sid, reason=f"fault {action.type}")
        return "general_error"

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
        if self.stop_reason is None:
            self.stop_reason = "client"
        self._stop.set()
        self.clock.wake()

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
            self.hooks.dtmf_received(self.stream, parsed.digit)

    async def _close_socket(self, code: int, reason: str = "") -> None:
        ws = self.ws
        if ws is None or ws.closed:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await ws.close(code=code, message=reason.encode())

    def _abort_socket(self) -> None:
        ws = self.ws
        if ws is None:
            return
        sock = ws.get_extra_info("socket")
        if sock is not None:
            # No close frame: the peer just sees the connection end (a source disconnect).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


