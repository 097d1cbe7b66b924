"""The SignalWire emulator: Compatibility API over HTTPS (and plain HTTP), conference streams, scenario controls."""

from __future__ import annotations

import asyncio
import math
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from clients.signalwire_media import CHUNK_MS, STREAM_CODECS, media_format
from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.outbound import WebhookSender
from emulators.kit.resources import shelf
from emulators.kit.tls import client_ssl_context, ensure_dev_certs, server_ssl_context
from emulators.signalwire.api import ConferenceApi
from emulators.signalwire.audio import ConferenceAudio
from emulators.signalwire.callbacks import CallbackSettings, StatusCallbacks, default_retry
from emulators.signalwire.conference_events import ConferenceCallbacks
from emulators.signalwire.dialout import OverrideResolver
from emulators.signalwire.media import SessionHooks, StreamOptions, StreamSession
from emulators.signalwire.media_clock import MediaClock
from emulators.signalwire.model import (
    API_ROOT,
    Conference,
    Participant,
    SignalWireBackend,
    SignalWireError,
    Stream,
    StreamRequest,
    validate_dtmf,
)
from emulators.signalwire.scenario import conference_from_spec, participant_from_spec

SCENARIO_DIR = shelf("signalwire")  # packaged scenarios + the scenario_dirs setting's signalwire/ folders


class SignalWireEmulator(Emulator):
    device = "signalwire"
    title = "SignalWire Compatibility API: conferences and their outbound audio streams"
    default_port = 9083
    port_settings = ("port", "tls_port")
    settings_defaults = {
        "port": 9083,  # plain HTTP (tests, curl); the official SDK only speaks HTTPS
        "tls_port": 9443,  # HTTPS with the dev certificate
        "scenario": "default",  # fixtures/scenarios/signalwire/<name>.yaml, or a path to a YAML file
        "ca_bundle": "",  # outbound wss/https trust: "" = the dev CA + system store, else this PEM file only
        "tls_insecure": False,  # tests only: do not verify the receiver's certificate (quirk 10)
        "allow_ws_scheme": False,  # tests only: accept ws:// stream URLs (quirk 11)
        "async_validation_errors": False,  # quirk 5: 200 queued, then a stream-error callback
        "disabled_codecs": [],  # quirk 6: StreamCodec values "not enabled for your account"
        "l16_byte_order": "big",  # quirk 7: big | little
        "pcma_encoding": "audio/x-alaw",  # quirk 8
        "plain_l16_rate": 16000,  # quirk 9: sample rate of bare "L16"
        "always_custom_parameters": False,  # quirk 3: send customParameters {} when there are none
        "omit_streamsid_in_dtmf_mark": False,  # quirk 4
        "strict_stream_sid": False,  # quirk 18: refuse a stream Name in place of its sid
        "conference_call_sid": "conference",  # quirk 19: conference | empty | first_participant
        "pilot": True,  # the continuity marker on the first chunk of every second
        "media_speedup": 1.0,  # tests only: run the 20 ms clock faster; timestamps stay nominal
        "max_streams_per_conference": 0,  # 0 = unlimited
        "status_callback_attempts": 3,  # StatusCallback delivery attempts (connection errors and 5xx)
        "status_callback_retry_s": 0.5,
        "resolve": {},  # {"stream.example.com[:443]": "127.0.0.1:8765"}, like curl --resolve
        "rate_limit": 0,  # quirk 17: requests per second per account before 429; 0 = no limit (undocumented)
    }

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._check_settings()
        if self.certs is None:
            # The SDK only speaks https, so this emulator always has a certificate.
            self.certs = ensure_dev_certs()
            self.server_ssl = server_ssl_context(self.certs)
            self.client_ssl = client_ssl_context(self.certs.ca)
        self.backend = SignalWireBackend()
        self.sessions: dict[str, StreamSession] = {}
        self.conference_sessions: dict[str, set[str]] = {}
        self.audio: dict[str, ConferenceAudio] = {}
        self.media_clock: MediaClock | None = None
        self._session_tasks: dict[str, asyncio.Task[Any]] = {}
        self.conference_callbacks: dict[str, ConferenceCallbacks] = {}
        self.http: aiohttp.ClientSession | None = None
        self.resolver = OverrideResolver(dict(self.settings["resolve"]))
        self.callback_settings = CallbackSettings(
            attempts=int(self.settings["status_callback_attempts"]),
            retry_interval_s=float(self.settings["status_callback_retry_s"]),
        )
        self._load_scenario()
        for name, control in {
            "create_conference": self._control_create_conference,
            "add_participant": self._control_add_participant,
            "remove_participant": self._control_remove_participant,
            "set_speaker": self._control_set_speaker,
            "end_conference": self._control_end_conference,
            "press_dtmf": self._control_press_dtmf,
        }.items():
            self.scenario_controls[name] = control

    # ----- settings and scenario ---------------------------------------------------------------------------
    def _check_settings(self) -> None:
        s = self.settings
        enums = {
            "l16_byte_order": ("big", "little"),
            "conference_call_sid": ("conference", "empty", "first_participant"),
        }
        for key, allowed in enums.items():
            if s[key] not in allowed:
                raise FieldError(f"signalwire.{key}", f"must be one of {', '.join(allowed)}, got {s[key]!r}")
        if s["plain_l16_rate"] not in (16000, 24000):
            raise FieldError("signalwire.plain_l16_rate", f"must be 16000 or 24000, got {s['plain_l16_rate']!r}")
        if not isinstance(s["disabled_codecs"], list) or any(c not in STREAM_CODECS for c in s["disabled_codecs"]):
            raise FieldError("signalwire.disabled_codecs", f"must be a list of {', '.join(STREAM_CODECS)}")
        if not isinstance(s["resolve"], dict) or any(
            not isinstance(v, str) or not v.rpartition(":")[2].isdigit() for v in s["resolve"].values()
        ):
            raise FieldError("signalwire.resolve", "must map host[:port] to 'ip:port'")
        if not 0.1 <= s["media_speedup"] <= 100:
            raise FieldError("signalwire.media_speedup", f"must be between 0.1 and 100, got {s['media_speedup']}")
        if not 1 <= s["status_callback_attempts"] <= 20:
            raise FieldError("signalwire.status_callback_attempts", "must be between 1 and 20")

    def _scenario_path(self) -> Path:
        name = str(self.settings["scenario"])
        path = Path(name) if name.endswith((".yaml", ".yml")) else SCENARIO_DIR / f"{name}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
            raise FieldError("signalwire.scenario", f"no scenario {name!r}; known: {known}, or a path to a YAML file")
        return path

    def _load_scenario(self) -> None:
        raw = yaml.safe_load(self._scenario_path().read_text()) or {}
        backend = SignalWireBackend(
            strict_stream_sid=self.settings["strict_stream_sid"],
            max_streams_per_conference=int(self.settings["max_streams_per_conference"]),
        )
        for account in raw.get("accounts", []):
            backend.accounts[str(account["project"])] = str(account["token"])
        self.backend = backend
        for index, spec in enumerate(raw.get("conferences", [])):
            self._create_conference(spec, where=f"conferences[{index}]")

    def _create_conference(self, spec: dict[str, Any], where: str) -> Conference:
        conference = conference_from_spec(spec, where, accounts=self.backend.accounts,
                                          taken=self.backend.conferences.keys(), now=self.clock.now(), seed=self.seed)
        self.backend.add_conference(conference)
        self._watch_conference(conference)
        for i, person in enumerate(spec.get("participants", []) or []):
            self._join(conference, person, where=f"{where}.participants[{i}]")
        return conference

    def _watch_conference(self, conference: Conference) -> None:
        """Start the conference's callback worker (once the emulator runs; boot-time events are not sent)."""
        if self.http is None or not conference.status_callback or conference.sid in self.conference_callbacks:
            return
        sender = WebhookSender(
            self.http, retry=default_retry(self.callback_settings), egress=self.egress, events=self.events,
            ssl=self.outbound_ssl() or None, timeout_s=self.callback_settings.timeout_s,
        )
        callbacks = ConferenceCallbacks(conference, sender, self.events, self.clock.now,
                                        lambda: self._media_ms_now(conference))
        self.conference_callbacks[conference.sid] = callbacks
        callbacks.start()

    def _media_ms_now(self, conference: Conference) -> int:
        if conference.started_at is None:
            return 0
        return int((self.clock.now() - conference.started_at) * 1000)

    def _conference_event(self, conference: Conference, event: str, participant: Participant | None = None) -> None:
        callbacks = self.conference_callbacks.get(conference.sid)
        if callbacks is not None:
            callbacks.emit(event, participant)

    def participant_left(self, conference: Conference, participant: Participant, ended: list[Stream]) -> None:
        self._conference_event(conference, "participant-leave", participant)
        if conference.status == "completed":
            self.conference_ended(conference, ended)

    def participant_updated(self, conference: Conference, participant: Participant, muted: bool, hold: bool) -> None:
        """Mute and hold changes (given the flags before the update) as conference events."""
        if participant.muted != muted:
            self._conference_event(conference, "participant-mute" if participant.muted else "participant-unmute",
                                   participant)
        if participant.hold != hold:
            self._conference_event(conference, "participant-hold" if participant.hold else "participant-unhold",
                                   participant)

    def _join(self, conference: Conference, spec: dict[str, Any], where: str) -> Participant:
        participant = participant_from_spec(conference, spec, where, now=self.clock.now(), seed=self.seed)
        try:
            started = self.backend.add_participant(conference, participant, self.clock.now())
        except SignalWireError as exc:
            raise FieldError(where, str(exc)) from None
        self._conference_event(conference, "participant-join", participant)
        if started:
            self._conference_started(conference)
        return participant

    # ----- kit hooks ----------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        ConferenceApi(self).add_routes(app)

    def extra_listeners(self) -> dict[str, tuple[int, bool]]:
        return {"rest_tls": (int(self.settings["tls_port"]), True)}

    def extra_endpoints(self) -> dict[str, str]:
        if "rest_tls" not in self.ports:
            return {}
        return {"compat_api": f"{self.url('rest_tls')}{API_ROOT}"}

    def credentials(self) -> dict[str, Any]:
        project, token = next(iter(self.backend.accounts.items()), ("", ""))
        return {
            "project": project,
            "token": token,
            "account_sid": project,
            "space_url": f"{self.host}:{self.ports.get('rest_tls', self.settings['tls_port'])}",
            "ca_bundle": str(self.certs.ca) if self.certs else "",
        }

    async def on_start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, resolver=self.resolver, force_close=False)
        self.http = aiohttp.ClientSession(connector=connector)
        self.media_clock = MediaClock(
            self.pacing_stats("media-clock"), speedup=float(self.settings["media_speedup"]), on_tick=self._on_tick
        )
        self.tasks.spawn(self.media_clock.run(), name="media-clock")
        for conference in self.backend.conferences.values():
            self._watch_conference(conference)

    async def on_stop(self) -> None:
        for session in list(self.sessions.values()):
            session.request_stop("shutdown")
        pending = [t for t in self._session_tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for callbacks in self.conference_callbacks.values():
            await callbacks.aclose(drain_s=2.0)
        self.conference_callbacks.clear()
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def on_reset(self, seed: int) -> None:
        self.sessions.clear()
        self.conference_sessions.clear()
        self.audio.clear()
        self._session_tasks = {}
        self._load_scenario()

    def state(self) -> dict[str, Any]:
        return {
            "conferences": [
                {
                    "sid": c.sid,
                    "friendly_name": c.friendly_name,
                    "status": c.status,
                    "participants": [p.call_sid for p in c.active_participants()],
                    "streams": {s.sid: s.status for s in c.streams.values()},
                }
                for c in self.backend.conferences.values()
            ],
            "streams": [session.state() for session in self.sessions.values()],
            "media_tick": self.media_clock.tick if self.media_clock else None,
        }

    # ----- streams ------------------------------------------------------------------------------------------
    def outbound_ssl(self) -> ssl.SSLContext | bool:
        if self.settings["tls_insecure"]:
            return False
        if self.settings["ca_bundle"]:
            return client_ssl_context(self.settings["ca_bundle"], trust_dev_ca=False)
        return self.client_ssl

    def call_sid_for(self, conference: Conference) -> str:
        mode = self.settings["conference_call_sid"]
        if mode == "empty":
            return ""
        if mode == "first_participant":
            active = conference.active_participants()
            return active[0].call_sid if active else ""
        return conference.sid

    def conference_audio(self, conference: Conference) -> ConferenceAudio:
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
        started = conference.started_at if conference.started_at is not None else self.clock.now()
        return clock.current_index() - math.floor((self.clock.now() - started) / clock.period)

    def _callbacks(self, stream: Stream, call_sid: str) -> StatusCallbacks:
        assert self.http is not None, "the emulator is not started"
        sender = WebhookSender(
            self.http, retry=default_retry(self.callback_settings), egress=self.egress, events=self.events,
            ssl=self.outbound_ssl() or None, timeout_s=self.callback_settings.timeout_s,
        )
        return StatusCallbacks(stream, call_sid, sender, self.events, self.clock.now)

    def launch_stream(self, conference: Conference, stream: Stream) -> StreamSession:
        """Start connecting a freshly created stream (or wait for its conference to start)."""
        assert self.http is not None and self.media_clock is not None, "the emulator is not started"
        s = self.settings
        fmt = media_format(stream.request.codec, plain_l16_rate=int(s["plain_l16_rate"]),
                           pcma_encoding=s["pcma_encoding"], l16_byte_order=s["l16_byte_order"])
        call_sid = self.call_sid_for(conference)
        options = StreamOptions(
            media_format=fmt, call_sid=call_sid, fault_name=f"{conference.sid}/{stream.sid}",
            ssl=self.outbound_ssl(), always_custom_parameters=s["always_custom_parameters"],
            omit_streamsid_in_dtmf_mark=s["omit_streamsid_in_dtmf_mark"], pilot=s["pilot"],
        )
        session = StreamSession(
            stream, self.conference_audio(conference), self.media_clock, options,
            session=self.http, egress=self.egress, resolver=self.resolver, events=self.events, faults=self.faults,
            stats=self.pacing_stats("media"), callbacks=self._callbacks(stream, call_sid),
            hooks=SessionHooks(started=self._stream_started, stopped=self._stream_stopped,
                               dtmf_received=self._dtmf_received),
            now=self.clock.now,
        )
        duplicate = self.backend.duplicate_name(conference, stream)
        self.sessions[stream.sid] = session
        self.conference_sessions.setdefault(conference.sid, set()).add(stream.sid)
        task = self.tasks.spawn(
            session.run(conference_live=conference.status == "in-progress", duplicate_name=duplicate),
            name=f"stream:{stream.sid}",
        )
        self._session_tasks[stream.sid] = task
        task.add_done_callback(lambda _t, sid=stream.sid: self._session_tasks.pop(sid, None))
        return session

    def fail_stream(self, stream: Stream, error: str) -> None:
        """An accepted-but-invalid stream (async validation): stopped at once, reported by callback only."""
        self.backend.mark_stopped(stream, self.clock.now(), error)
        conference = self.backend.conferences[stream.conference_sid]
        callbacks = self._callbacks(stream, self.call_sid_for(conference))
        callbacks.send("stream-error", error)
        callbacks.close()
        self.events.record("stream.error", stream=stream.sid, conference=stream.conference_sid, error=error)
        self.tasks.spawn(callbacks.run(), name=f"callbacks:{stream.sid}")

    def stop_stream_media(self, stream: Stream, reason: str) -> None:
        session = self.sessions.get(stream.sid)
        if session is not None:
            session.request_stop(reason)

    def conference_ended(self, conference: Conference, streams: list[Stream]) -> None:
        now = self.clock.now()
        for stream in streams:
            self.backend.mark_stopped(stream, now)
            self.stop_stream_media(stream, "conference")
        self.events.record("conference.ended", conference=conference.sid, streams=[s.sid for s in streams])
        self._conference_event(conference, "conference-end")

    def _conference_started(self, conference: Conference) -> None:
        if conference.sid in self.audio:
            self.audio[conference.sid].origin_tick = self._origin_tick(conference)
        for sid in self.conference_sessions.get(conference.sid, ()):
            self.sessions[sid].conference_started()
        self.events.record("conference.started", conference=conference.sid)
        self._conference_event(conference, "conference-start")

    def _stream_started(self, stream: Stream) -> None:
        self.backend.mark_in_progress(stream, self.clock.now())
        session = self.sessions.get(stream.sid)
        if session is not None:
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
        # A customer's key press is injected into the conference: the other streams report it.
        for sid in self.conference_sessions.get(stream.conference_sid, ()):
            if sid != stream.sid:
                self.sessions[sid].queue_dtmf(digit, 250)

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
            timeline = audio.conference.dtmf_timeline
            if timeline:
                media_ms = audio.media_ms(tick)
                for at_ms, digit, duration in timeline:
                    if media_ms <= at_ms < media_ms + CHUNK_MS:
                        for sid in members:
                            self.sessions[sid].queue_dtmf(digit, duration)

    # ----- benchmark helper ----------------------------------------------------------------------------------
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
        """Start ``count`` streams of one conference to ``url`` (call on the emulator's loop)."""
        conference = (
            self.backend.conferences[conference_sid]
            if conference_sid
            else next(c for c in self.backend.conferences.values() if c.status == "in-progress")
        )
        out = []
        for i in range(count):
            request = StreamRequest(url=url, name=f"{name_prefix}-{i}", track=track, codec=codec)
            stream = self.backend.create_stream(conference, request, self.clock.now())
            self.launch_stream(conference, stream)
            out.append(stream)
        return out

    # ----- scenario controls ---------------------------------------------------------------------------------
    def _control_conference(self, body: dict[str, Any]) -> Conference:
        sid = body.get("conference_sid")
        if not isinstance(sid, str) or sid not in self.backend.conferences:
            known = ", ".join(self.backend.conferences) or "none"
            raise FieldError("conference_sid", f"must name an existing conference; known: {known}")
        return self.backend.conferences[sid]

    def _control_participant(self, conference: Conference, body: dict[str, Any]) -> Participant:
        call_sid = body.get("call_sid")
        participant = conference.participants.get(call_sid) if isinstance(call_sid, str) else None
        if participant is None or participant.status != "in-progress":
            active = ", ".join(p.call_sid for p in conference.active_participants()) or "none"
            raise FieldError("call_sid", f"must name an active participant of {conference.sid}; active: {active}")
        return participant

    async def _control_create_conference(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._create_conference(body, where="body")
        return conference.as_json()

    async def _control_add_participant(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._control_conference(body)
        spec = {k: v for k, v in body.items() if k != "conference_sid"}
        participant = self._join(conference, spec, where="body")
        audio = self.audio.get(conference.sid)
        if audio is not None:
            for sid in list(self.conference_sessions.get(conference.sid, ())):
                await asyncio.to_thread(audio.prepare, self.sessions[sid].fmt)
        return participant.as_json()

    async def _control_remove_participant(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._control_conference(body)
        participant = self._control_participant(conference, body)
        ended = self.backend.remove_participant(conference, participant, self.clock.now())
        self.participant_left(conference, participant, ended)
        return {"participant": participant.as_json(), "conference_status": conference.status}

    async def _control_set_speaker(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._control_conference(body)
        participant = self._control_participant(conference, body)
        speaking = body.get("speaking", True)
        if speaking is not None and not isinstance(speaking, bool):
            raise FieldError("speaking", "must be true (speaks now), false (silent) or null (follow the timeline)")
        participant.speaking_override = speaking
        return {"call_sid": participant.call_sid, "speaking": speaking}

    async def _control_end_conference(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._control_conference(body)
        ended = self.backend.end_conference(conference, self.clock.now())
        self.conference_ended(conference, ended)
        return {"conference": conference.as_json(), "stopped_streams": [s.sid for s in ended]}

    async def _control_press_dtmf(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._control_conference(body)
        try:
            digit, duration = validate_dtmf(body.get("digit"), body.get("duration_ms", 200))
        except SignalWireError as exc:
            raise FieldError("digit" if "digit" in str(exc) else "duration_ms", str(exc)) from None
        members = self.conference_sessions.get(conference.sid, set())
        for sid in members:
            self.sessions[sid].queue_dtmf(digit, duration)
        return {"digit": digit, "duration_ms": duration, "streams": len(members)}


EMULATOR = SignalWireEmulator
