"""Conference and stream orchestration: joins and leaves, dial-out, media sessions, status callbacks, the media clock.

The API and the scenario controls call this; it performs the I/O and owns the tasks, and asks the backend for
every decision (who may join, when a conference starts or ends, which streams stop, which events it causes).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from clients.signalwire_media import media_format
from emulators.kit.clock import Clock
from emulators.kit.errors import FieldError
from emulators.kit.events import EventLog
from emulators.kit.outbound import EgressPolicy, RetryPolicy, WebhookSender
from emulators.kit.pacer import LatenessStats, Pacer
from emulators.kit.preview import PreviewHub
from emulators.kit.tasks import TaskOwner
from emulators.signalwire.audio import ConferenceAudio
from emulators.signalwire.callbacks import CallbackQueue, Signer, conference_fields, stream_fields
from emulators.signalwire.dialout import OverrideResolver, dial
from emulators.signalwire.errors import SignalWireError
from emulators.signalwire.media import StreamEnd, StreamOptions, StreamSession, StreamVerdicts
from emulators.signalwire.media_clock import MediaClock
from emulators.signalwire.model import (
    RELAYED_DTMF_MS,
    SHUTDOWN,
    Conference,
    ConferenceStatus,
    Participant,
    SignalWireBackend,
    Stream,
    StreamRequest,
    stream_end_event,
)
from emulators.signalwire.scenario import conference_from_spec, participant_from_spec
from emulators.signalwire.settings import SignalWireSettings

SPEECH_POLL_S = 0.1  # how often a conference's speaking timeline is sampled for speech-start/-stop callbacks
CALLBACK_TIMEOUT_S = 5.0
STREAM_CALLBACK_DRAIN_S = 15.0  # a stopped stream waits this long for its last callbacks
CONFERENCE_CALLBACK_DRAIN_S = 2.0  # on shutdown or reset


@dataclass
class _ConferenceWatch:
    """A conference's status-callback delivery and its speech watcher."""

    callbacks: CallbackQueue
    tasks: TaskOwner


class ConferenceService:
    """Everything the SignalWire emulator does over time and over the network."""

    def __init__(
        self,
        backend: SignalWireBackend,
        settings: SignalWireSettings,
        *,
        clock: Clock,
        events: EventLog,
        tasks: TaskOwner,
        egress: EgressPolicy,
        verdict: StreamVerdicts,
        outbound_ssl: Callable[[], ssl.SSLContext | bool],
        resolver: OverrideResolver,
        pacing: Callable[[str], LatenessStats],
        seed: int,
        previews: PreviewHub,
    ) -> None:
        self.backend = backend
        self.previews = previews
        self.settings = settings  # the device settings: media formats, quirk flags, callback retries
        self.clock = clock
        self.events = events
        self.tasks = tasks
        self.egress = egress
        self.verdict = verdict
        self._outbound_ssl = outbound_ssl  # asked at each connection: the context is made at the first
        self.resolver = resolver
        self.pacing = pacing
        self.seed = seed
        self.http: aiohttp.ClientSession | None = None
        self.media_clock: MediaClock | None = None
        self.sessions: dict[str, StreamSession] = {}
        self.session_tasks: dict[str, asyncio.Task[Any]] = {}
        self.conference_sessions: dict[str, set[str]] = {}
        self.audio: dict[str, ConferenceAudio] = {}
        self.watches: dict[str, _ConferenceWatch] = {}

    @property
    def outbound_ssl(self) -> ssl.SSLContext | bool:
        """TLS for status callbacks and media streams (False: not verified)."""
        return self._outbound_ssl()

    # ----- life of the emulator ------------------------------------------------------------------------------
    def load(self, scenario: dict[str, Any], seed: int) -> None:
        """Boot state from a scenario document: its accounts and conferences (participants joined)."""
        self.seed = seed
        self.backend.clear()
        for account in scenario.get("accounts", []):
            self.backend.accounts[str(account["project"])] = str(account["token"])
        for index, spec in enumerate(scenario.get("conferences", [])):
            self.create_conference(spec, where=f"conferences[{index}]")

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, resolver=self.resolver, force_close=False)
        # The connector's resolver checks every name through the egress policy and pins the address (names the
        # `resolve` setting maps go to their mapped address, which dial() checks); webhooks add their own checks.
        self.http = aiohttp.ClientSession(connector=connector)
        self.media_clock = MediaClock(self.pacing("media-clock"), monotonic=self.clock.monotonic,
                                      speedup=self.settings.media_speedup, on_tick=self._on_tick)
        self.tasks.spawn(self.media_clock.run(), name="media-clock")
        for conference in self.backend.conferences.values():
            self._watch(conference)

    async def aclose(self) -> None:
        """Stop every stream (``stop``, close 1000, no callback), deliver queued conference callbacks (bounded)."""
        for session in list(self.sessions.values()):
            session.request_stop(SHUTDOWN)
        pending = [t for t in self.session_tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for watch in self.watches.values():
            watch.callbacks.close()
            await watch.callbacks.drain(CONFERENCE_CALLBACK_DRAIN_S)
            await watch.tasks.aclose()
        self.watches.clear()
        if self.http is not None:
            await self.http.close()
            self.http = None

    def clear(self) -> None:
        """Forget the streams of the previous state (a reset; they were stopped by ``aclose``)."""
        self.sessions.clear()
        self.session_tasks.clear()
        self.conference_sessions.clear()
        self.audio.clear()

    def state(self) -> dict[str, Any]:
        return {
            "conferences": [
                {
                    "sid": c.sid,
                    "friendly_name": c.friendly_name,
                    "status": c.status.value,
                    "participants": [p.call_sid for p in c.active_participants()],
                    "streams": {s.sid: s.status.value for s in c.streams.values()},
                }
                for c in self.backend.conferences.values()
            ],
            "streams": [session.state() for session in self.sessions.values()],
            "media_tick": self.media_clock.tick if self.media_clock else None,
        }

    def live_streams(self) -> list[str]:
        """The fault-rule names of the streams that are live now (``<ConferenceSid>/<StreamSid>``)."""
        return [session.options.fault_name for session in self.sessions.values()]

    # ----- conferences and participants ----------------------------------------------------------------------
    def create_conference(self, spec: dict[str, Any], where: str) -> Conference:
        now = self.clock.now()
        conference = conference_from_spec(spec, where, accounts=self.backend.accounts,
                                          taken=self.backend.conferences.keys(), now=now, seed=self.seed)
        self.backend.add_conference(conference)
        self._watch(conference)
        for i, person in enumerate(spec.get("participants", []) or []):
            self.join(conference, person, where=f"{where}.participants[{i}]")
        return conference

    def join(self, conference: Conference, spec: dict[str, Any], where: str) -> Participant:
        now = self.clock.now()
        participant = participant_from_spec(conference, spec, where, now=now, seed=self.seed)
        try:
            started = self.backend.add_participant(conference, participant, now)
        except SignalWireError as exc:
            raise FieldError(where, exc.message) from None
        self._conference_event(conference, "participant-join", participant)
        if started:
            self._conference_started(conference)
        return participant

    async def add_participant(self, conference: Conference, spec: dict[str, Any], where: str) -> Participant:
        """Join, then render the newcomer's voice for the formats the conference streams (off the loop)."""
        participant = self.join(conference, spec, where)
        audio = self.audio.get(conference.sid)
        if audio is not None:
            for sid in list(self.conference_sessions.get(conference.sid, ())):
                await asyncio.to_thread(audio.prepare, self.sessions[sid].fmt)
        return participant

    def update_participant(self, conference: Conference, participant: Participant, fields: dict[str, Any]) -> None:
        for event in self.backend.update_participant(participant, fields, self.clock.now()):
            self._conference_event(conference, event, participant)

    def remove_participant(self, conference: Conference, participant: Participant) -> None:
        ended = self.backend.remove_participant(conference, participant, self.clock.now())
        self._conference_event(conference, "participant-leave", participant)
        if conference.status == ConferenceStatus.COMPLETED:
            self._conference_ended(conference, ended)

    def update_conference(self, conference: Conference, fields: dict[str, Any]) -> None:
        ended = self.backend.update_conference(conference, fields, self.clock.now())
        if conference.status == ConferenceStatus.COMPLETED:
            self._conference_ended(conference, ended)

    def end_conference(self, conference: Conference) -> list[Stream]:
        ended = self.backend.end_conference(conference, self.clock.now())
        self._conference_ended(conference, ended)
        return ended

    def press_dtmf(self, conference: Conference, digit: str, duration_ms: int) -> int:
        """A key press in the conference: a ``dtmf`` message on each of its streams; returns how many."""
        members = self.conference_sessions.get(conference.sid, set())
        for sid in members:
            self.sessions[sid].queue_dtmf(digit, duration_ms)
        return len(members)

    def _conference_started(self, conference: Conference) -> None:
        if conference.sid in self.audio:
            self.audio[conference.sid].origin_tick = self._origin_tick(conference)
        for sid in self.conference_sessions.get(conference.sid, ()):
            self.sessions[sid].conference_started()
        self.events.record("conference.started", conference=conference.sid)
        self._conference_event(conference, "conference-start")

    def _conference_ended(self, conference: Conference, streams: list[Stream]) -> None:
        for stream in streams:
            self.stop_media(stream, "conference")
        self.events.record("conference.ended", conference=conference.sid, streams=[s.sid for s in streams])
        self._conference_event(conference, "conference-end")

    # ----- conference status callbacks -----------------------------------------------------------------------
    def _watch(self, conference: Conference) -> None:
        """Start the conference's callback worker (once the emulator runs; boot-time events are not sent)."""
        if self.http is None or not conference.status_callback or conference.sid in self.watches:
            return
        callbacks = CallbackQueue(conference.status_callback, conference.status_callback_method,
                                  self._webhook_sender(), self.events, subject={"conference": conference.sid},
                                  event_field="StatusCallbackEvent", sign=self._signer(conference.account_sid))
        watch = _ConferenceWatch(callbacks, self.tasks.child(f"conference-{conference.sid}"))
        self.watches[conference.sid] = watch
        watch.tasks.spawn(callbacks.run(), name="deliver")
        watch.tasks.spawn(self._watch_speech(conference), name="speech")

    def _conference_event(self, conference: Conference, event: str, participant: Participant | None = None) -> None:
        watch = self.watches.get(conference.sid)
        if watch is not None and conference.wants(event):
            watch.callbacks.send(conference_fields(conference, event, self.clock.now(), participant))

    async def _watch_speech(self, conference: Conference) -> None:
        if not (conference.wants("participant-speech-start") or conference.wants("participant-speech-stop")):
            return
        heard: dict[str, bool] = {}
        async for _tick in Pacer(SPEECH_POLL_S, monotonic=self.clock.monotonic).ticks():
            if conference.status == ConferenceStatus.COMPLETED:
                return
            if conference.status != ConferenceStatus.IN_PROGRESS:
                continue
            for event, participant in conference.speech_changes(conference.media_ms(self.clock.now()), heard):
                self._conference_event(conference, event, participant)

    def _webhook_sender(self) -> WebhookSender:
        assert self.http is not None, "the emulator is not started"
        retry = RetryPolicy(interval_s=self.settings.status_callback_retry_s,
                            max_attempts=self.settings.status_callback_attempts)
        return WebhookSender(self.http, retry=retry, egress=self.egress, events=self.events,
                             ssl=self.outbound_ssl or None, timeout_s=CALLBACK_TIMEOUT_S)

    # ----- streams ---------------------------------------------------------------------------------------------
    def launch_stream(self, conference: Conference, stream: Stream) -> StreamSession:
        """Start connecting a freshly created stream (or wait for its conference to start)."""
        assert self.media_clock is not None, "the emulator is not started"
        s = self.settings
        fmt = media_format(stream.request.codec, plain_l16_rate=s.plain_l16_rate, pcma_encoding=s.pcma_encoding,
                           l16_byte_order=s.l16_byte_order)
        call_sid = self.backend.call_sid_for(conference)
        options = StreamOptions(
            media_format=fmt, call_sid=call_sid, fault_name=f"{conference.sid}/{stream.sid}",
            always_custom_parameters=s.always_custom_parameters,
            omit_streamsid_in_dtmf_mark=s.omit_streamsid_in_dtmf_mark, pilot=s.pilot,
        )
        owner = self.tasks.child(f"stream-{stream.sid}")  # the stream's life, its callbacks and its reader
        session = StreamSession(
            stream, self._conference_audio(conference), self.media_clock, options,
            events=self.events, verdict=self.verdict, stats=self.pacing("media"), monotonic=self.clock.monotonic,
            tasks=owner.child("media"), dtmf_received=self._dtmf_received, previews=self.previews,
        )
        duplicate = self.backend.duplicate_name(conference, stream)
        self.sessions[stream.sid] = session
        self.conference_sessions.setdefault(conference.sid, set()).add(stream.sid)
        task = owner.spawn(
            self._stream_life(session, self._stream_callbacks(stream), call_sid, owner,
                              conference_live=conference.status == ConferenceStatus.IN_PROGRESS,
                              duplicate_name=duplicate),
            name="life",
        )
        self.session_tasks[stream.sid] = task
        task.add_done_callback(lambda _t, sid=stream.sid: self.session_tasks.pop(sid, None))
        return session

    def fail_stream(self, stream: Stream, error: str) -> None:
        """An accepted-but-invalid stream (quirk 5): stopped at once, reported by callback only."""
        self.backend.mark_stopped(stream, self.clock.now(), error)
        conference = self.backend.conferences[stream.conference_sid]
        callbacks = self._stream_callbacks(stream)
        callbacks.send(stream_fields(stream, self.backend.call_sid_for(conference), "stream-error",
                                     self.clock.now(), error))
        callbacks.close()
        self.events.record("stream.error", stream=stream.sid, conference=stream.conference_sid, error=error)
        self.tasks.spawn(callbacks.run(), name=f"callbacks:{stream.sid}")

    def stop_media(self, stream: Stream, reason: str) -> None:
        session = self.sessions.get(stream.sid)
        if session is not None:
            session.request_stop(reason)

    def start_streams(
        self,
        count: int,
        url: str,
        *,
        conference_sid: str | None = None,
        codec: str = "PCMU",
        track: str = "inbound_track",
        name_prefix: str = "bench",
    ) -> list[Stream]:
        """Start ``count`` streams of one conference to ``url`` (call on the emulator's loop; for load runs)."""
        conference = (
            self.backend.conferences[conference_sid]
            if conference_sid
            else next(c for c in self.backend.conferences.values() if c.status == ConferenceStatus.IN_PROGRESS)
        )
        out = []
        for i in range(count):
            request = StreamRequest(url=url, name=f"{name_prefix}-{i}", track=track, codec=codec)
            stream = self.backend.create_stream(conference, request, self.clock.now())
            self.launch_stream(conference, stream)
            out.append(stream)
        return out

    def _stream_callbacks(self, stream: Stream) -> CallbackQueue:
        return CallbackQueue(stream.request.status_callback, stream.request.status_callback_method,
                             self._webhook_sender(), self.events, subject={"stream": stream.sid},
                             event_field="StreamEvent", sign=self._signer(stream.account_sid))

    def _signer(self, account_sid: str) -> Signer:
        return lambda url, params: self.backend.webhook_headers(account_sid, url, params)

    async def _stream_life(self, session: StreamSession, callbacks: CallbackQueue, call_sid: str, owner: TaskOwner,
                           *, conference_live: bool, duplicate_name: bool) -> None:
        """The whole life of one stream, on its own task owner (closed, and so detached, when it ends)."""
        stream = session.stream
        deliver = owner.spawn(callbacks.run(), name="callbacks")

        def report(event: str, error: str | None = None) -> None:
            callbacks.send(stream_fields(stream, call_sid, event, self.clock.now(), error))

        end: StreamEnd | None = None
        try:
            end = await self._stream_lifecycle(session, report, conference_live, duplicate_name)
        finally:
            # Bookkeeping first (synchronous), so even a cancelled stream is marked stopped; the socket and the
            # callback worker are always closed, whatever interrupts the polite part in between.
            self._stream_stopped(stream, end.error if end else None)
            callbacks.close()
            try:
                await session.close_socket(1000)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STREAM_CALLBACK_DRAIN_S):
                        await asyncio.wait({deliver})  # the worker ends once its queue is drained
            finally:
                await owner.aclose()

    async def _stream_lifecycle(self, session: StreamSession, report: Callable[..., None], conference_live: bool,
                                duplicate_name: bool) -> StreamEnd | None:
        stream = session.stream
        if duplicate_name:
            return self._stream_failed(stream, report, StreamEnd("duplicate name", "Duplicated stream name"))
        if not conference_live:
            # Mirrors streamStartConferenceOnEnter: connect once the conference is in progress.
            self.events.record("stream.waiting", stream=stream.sid, conference=stream.conference_sid)
            if not await session.wait_for_conference():
                return None  # stopped while waiting: no callbacks for a stream that never started
        # Voice loops take tens of milliseconds to render: never on the loop that paces everyone else.
        await asyncio.to_thread(session.audio.prepare, session.fmt)
        assert self.http is not None
        result = await dial(self.http, stream.request.url, egress=self.egress, resolver=self.resolver,
                            ssl_context=self.outbound_ssl, bearer_token=stream.request.bearer_token,
                            events=self.events, stream_sid=stream.sid)
        if isinstance(result, str):
            return self._stream_failed(stream, report, StreamEnd("connect failed", result))
        if session.stopping:
            with contextlib.suppress(Exception):
                await result.close()
            return None
        await session.open(result)
        self._stream_started(stream, session)
        report("stream-started")
        self.events.record("stream.started", stream=stream.sid, conference=stream.conference_sid,
                           codec=session.fmt.codec, track=stream.request.track, url=stream.request.url)
        end = await session.run()
        event = stream_end_event(end.reason, end.error)
        if event is not None:
            report(event, end.error)
        if end.error is not None:
            self.events.record("stream.error", stream=stream.sid, conference=stream.conference_sid, error=end.error)
        self.events.record("stream.stopped", stream=stream.sid, reason=end.reason)
        return end

    def _stream_failed(self, stream: Stream, report: Callable[..., None], end: StreamEnd) -> StreamEnd:
        """A stream that never started (duplicate name, failed dial): ``stream-error`` only."""
        report("stream-error", end.error)
        self.events.record("stream.error", stream=stream.sid, conference=stream.conference_sid, error=end.error)
        return end

    def _stream_started(self, stream: Stream, session: StreamSession) -> None:
        self.backend.mark_in_progress(stream, self.clock.now())
        session.audio.queues[stream.sid] = session.playout

    def _stream_stopped(self, stream: Stream, error: str | None) -> None:
        self.backend.mark_stopped(stream, self.clock.now(), error)
        session = self.sessions.pop(stream.sid, None)
        if session is not None:
            session.audio.queues.pop(stream.sid, None)
        members = self.conference_sessions.get(stream.conference_sid)
        if members is not None:
            members.discard(stream.sid)

    def _dtmf_received(self, stream: Stream, digit: str) -> None:
        # A customer's key press is played into the conference: the other streams report it.
        for sid in self.conference_sessions.get(stream.conference_sid, ()):
            if sid != stream.sid:
                self.sessions[sid].queue_dtmf(digit, RELAYED_DTMF_MS)

    # ----- conference audio and the media clock ---------------------------------------------------------------
    def _conference_audio(self, conference: Conference) -> ConferenceAudio:
        audio = self.audio.get(conference.sid)
        if audio is None:
            audio = ConferenceAudio(conference, origin_tick=self._origin_tick(conference))
            self.audio[conference.sid] = audio
        return audio

    def _origin_tick(self, conference: Conference) -> int:
        """The media-clock tick at which the conference went in progress (its media time 0)."""
        clock = self.media_clock
        if clock is None:
            return 0
        now = self.clock.now()
        started = conference.started_at if conference.started_at is not None else now
        return clock.current_index() - math.floor((now - started) / clock.period)

    def _on_tick(self, tick: int) -> None:
        """Once per 20 ms, before streams send: customer playout advances and scheduled key presses fire."""
        for conference_sid, members in self.conference_sessions.items():
            if not members:
                continue
            audio = self.audio.get(conference_sid)
            if audio is None:
                continue
            if audio.queues:
                for sid, names in audio.play_tick(tick).items():
                    session = self.sessions.get(sid)
                    if session is not None:
                        session.queue_marks(names)
            if audio.conference.dtmf_timeline:
                for digit, duration in audio.conference.dtmf_due(audio.media_ms(tick)):
                    for sid in members:
                        self.sessions[sid].queue_dtmf(digit, duration)
