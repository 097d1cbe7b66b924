"""SignalWire Compatibility API state: accounts, conferences, participants, recordings and streams, with their rules.

Pure Python: no asyncio, no I/O, no clock. Every mutating call takes ``now`` (Unix seconds) from the caller.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from clients.signalwire_media import CHUNK_MS, DTMF_DIGITS, STREAM_CODECS, TRACKS
from emulators.signalwire.errors import (
    AuthenticationFailed,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from emulators.signalwire.fields import absolute_http_url, bool_field, choice_field, is_uri, text_field
from emulators.signalwire.paging import date_filters, date_matches
from emulators.signalwire.signing import signature_headers

API_VERSION = "2010-04-01"
API_ROOT = f"/api/laml/{API_VERSION}"
# Twilio-style clients given only the space host request the same API without the /api/laml prefix.
API_ROOTS = (API_ROOT, f"/{API_VERSION}")
# The query parameters each list knows (beyond Page/PageSize/PageToken); paging URIs carry only these.
CONFERENCE_FILTERS = ("Status", "FriendlyName", "DateCreated", "DateCreated<", "DateCreated>",
                      "DateUpdated", "DateUpdated<", "DateUpdated>")
PARTICIPANT_FILTERS = ("Muted", "Hold")
PARTICIPANT_UPDATES = ("Muted", "Hold", "Coaching", "CallSidToCoach", "AnnounceUrl", "AnnounceMethod", "HoldUrl",
                       "HoldMethod", "WaitUrl", "WaitMethod")
RECORDING_FILTERS = ("DateCreated", "DateCreated<", "DateCreated>")
CONFERENCE_EVENTS = (
    "conference-start",
    "conference-end",
    "participant-join",
    "participant-leave",
    "participant-mute",
    "participant-unmute",
    "participant-hold",
    "participant-unhold",
    "participant-speech-start",
    "participant-speech-stop",
)
RELAYED_DTMF_MS = 250  # a customer's key press, played into the conference, as the other streams report it
MAX_CUSTOM_PARAMETERS = 99
_PARAMETER_KEY = re.compile(r"Parameter(\d+)\.(Name|Value)")
S = TypeVar("S", bound=StrEnum)


def rfc2822(timestamp: float) -> str:
    """``Tue, 25 Sep 2018 20:00:00 +0000``."""
    return email.utils.format_datetime(dt.datetime.fromtimestamp(int(timestamp), dt.UTC))


def iso8601_ms(timestamp: float) -> str:
    """``2026-03-01T12:00:00.000Z``, the StatusCallback ``Timestamp``."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_sid() -> str:
    return str(uuid.uuid4())


# ----- statuses: enums with their transition tables ------------------------------------------------------
class ConferenceStatus(StrEnum):
    INIT = "init"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"


class ParticipantStatus(StrEnum):
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"


class RecordingStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in-progress"
    PAUSED = "paused"
    RESUMED = "resumed"
    COMPLETED = "completed"
    ABSENT = "absent"
    STOPPED = "stopped"


class StreamStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in-progress"
    STOPPED = "stopped"


CONFERENCE_TRANSITIONS: dict[ConferenceStatus, frozenset[ConferenceStatus]] = {
    ConferenceStatus.INIT: frozenset({ConferenceStatus.IN_PROGRESS, ConferenceStatus.COMPLETED}),
    ConferenceStatus.IN_PROGRESS: frozenset({ConferenceStatus.COMPLETED}),
    ConferenceStatus.COMPLETED: frozenset(),
}
PARTICIPANT_TRANSITIONS: dict[ParticipantStatus, frozenset[ParticipantStatus]] = {
    ParticipantStatus.IN_PROGRESS: frozenset({ParticipantStatus.COMPLETED}),
    ParticipantStatus.COMPLETED: frozenset(),
}
# A live recording can be paused, resumed (in-progress), stopped, or completed with its conference; a finished
# one (completed, stopped, absent) cannot change.
_RECORDING_TARGETS = frozenset(
    {RecordingStatus.PAUSED, RecordingStatus.IN_PROGRESS, RecordingStatus.STOPPED, RecordingStatus.COMPLETED}
)
RECORDING_TRANSITIONS: dict[RecordingStatus, frozenset[RecordingStatus]] = {
    RecordingStatus.QUEUED: _RECORDING_TARGETS,
    RecordingStatus.IN_PROGRESS: _RECORDING_TARGETS,
    RecordingStatus.PAUSED: _RECORDING_TARGETS,
    RecordingStatus.RESUMED: _RECORDING_TARGETS,
    RecordingStatus.COMPLETED: frozenset(),
    RecordingStatus.ABSENT: frozenset(),
    RecordingStatus.STOPPED: frozenset(),
}
STREAM_TRANSITIONS: dict[StreamStatus, frozenset[StreamStatus]] = {
    StreamStatus.QUEUED: frozenset({StreamStatus.IN_PROGRESS, StreamStatus.STOPPED}),
    StreamStatus.IN_PROGRESS: frozenset({StreamStatus.STOPPED}),
    StreamStatus.STOPPED: frozenset(),
}
# Settable through the API (recording update); the scenario may also start one completed or stopped.
RECORDING_UPDATES = (RecordingStatus.PAUSED, RecordingStatus.IN_PROGRESS, RecordingStatus.STOPPED)


def _checked(kind: str, sid: str, table: dict[S, frozenset[S]], current: S, target: S) -> S:
    """``target`` when the table allows ``current -> target``; IllegalTransition otherwise."""
    if target not in table[current]:
        raise IllegalTransition(kind, sid, current, target)
    return target


# ----- entities ---------------------------------------------------------------------------------------------
@dataclass
class Participant:
    call_sid: str
    conference_sid: str
    account_sid: str
    date_created: float
    date_updated: float
    name: str = ""
    muted: bool = False
    hold: bool = False
    coaching: bool = False
    call_sid_to_coach: str | None = None
    end_conference_on_exit: bool = False
    start_conference_on_enter: bool = True
    status: ParticipantStatus = ParticipantStatus.IN_PROGRESS
    # Speaking timeline: [start_ms, end_ms) intervals on the conference's media clock; repeats every
    # ``timeline_loop_ms`` when set, so a short fixture keeps a long test busy.
    speaking: list[tuple[int, int]] = field(default_factory=list)
    timeline_loop_ms: int | None = None
    speaking_override: bool | None = None  # set by the set_speaker control; None follows the timeline
    voice_seed: int = 0

    def speaks_at(self, media_ms: int) -> bool:
        if self.status != ParticipantStatus.IN_PROGRESS or self.muted or self.hold:
            return False
        if self.speaking_override is not None:
            return self.speaking_override
        t = media_ms % self.timeline_loop_ms if self.timeline_loop_ms else media_ms
        return any(start <= t < end for start, end in self.speaking)

    def uri(self) -> str:
        conference = f"{API_ROOT}/Accounts/{self.account_sid}/Conferences/{self.conference_sid}"
        return f"{conference}/Participants/{self.call_sid}.json"

    def as_json(self) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "call_sid": self.call_sid,
            "call_sid_to_coach": self.call_sid_to_coach,
            "coaching": self.coaching,
            "conference_sid": self.conference_sid,
            "date_created": rfc2822(self.date_created),
            "status": self.status.value,
            "date_updated": rfc2822(self.date_updated),
            "end_conference_on_exit": self.end_conference_on_exit,
            "muted": self.muted,
            "hold": self.hold,
            "start_conference_on_enter": self.start_conference_on_enter,
            "uri": self.uri(),
        }


@dataclass
class Recording:
    sid: str
    account_sid: str
    conference_sid: str
    date_created: float
    date_updated: float
    start_time: float | None
    end_time: float | None = None
    status: RecordingStatus = RecordingStatus.IN_PROGRESS
    channels: str = "1"
    source: str = "Conference"
    price: str | None = None
    deleted: bool = False

    def duration(self, now: float) -> int:
        if self.start_time is None:
            return 0
        return max(0, int((self.end_time if self.end_time is not None else now) - self.start_time))

    def uri(self) -> str:
        return f"{API_ROOT}/Accounts/{self.account_sid}/Conferences/{self.conference_sid}/Recordings/{self.sid}.json"

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "call_sid": None,
            "conference_sid": self.conference_sid,
            "channel": self.channels,
            "channels": self.channels,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "start_time": None if self.start_time is None else rfc2822(self.start_time),
            "end_time": None if self.end_time is None else rfc2822(self.end_time),
            "duration": self.duration(now),
            "price": self.price,
            "price_unit": "USD",
            "source": self.source,
            "status": self.status.value,
            "error_code": None,
            "uri": self.uri(),
            "subresource_uris": {
                "transcriptions": f"{API_ROOT}/Accounts/{self.account_sid}/Recordings/{self.sid}/Transcriptions.json"
            },
            "encryption_details": None,
            "trim": "do-not-trim",
        }


@dataclass(frozen=True)
class StreamRequest:
    """A validated create-stream body."""

    url: str
    name: str | None = None
    track: str = "both_tracks"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    codec: str = "PCMU"
    real_time: bool = False
    parameters: tuple[tuple[str, str], ...] = ()
    bearer_token: str | None = None


@dataclass
class Stream:
    sid: str
    account_sid: str
    conference_sid: str
    request: StreamRequest
    date_created: float
    date_updated: float
    status: StreamStatus = StreamStatus.QUEUED
    stream_error: str | None = None

    @property
    def name(self) -> str | None:
        return self.request.name

    @property
    def live(self) -> bool:
        return self.status != StreamStatus.STOPPED

    def uri(self) -> str:
        return f"{API_ROOT}/Accounts/{self.account_sid}/Conferences/{self.conference_sid}/Streams/{self.sid}.json"

    def as_json(self) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "conference_sid": self.conference_sid,
            "date_updated": rfc2822(self.date_updated),
            "name": self.request.name,
            "sid": self.sid,
            "status": self.status.value,
            "uri": self.uri(),
        }


@dataclass
class Conference:
    sid: str
    account_sid: str
    friendly_name: str
    date_created: float
    date_updated: float
    status: ConferenceStatus = ConferenceStatus.INIT
    region: str = "us1"
    participants: dict[str, Participant] = field(default_factory=dict)
    recordings: dict[str, Recording] = field(default_factory=dict)
    streams: dict[str, Stream] = field(default_factory=dict)
    announce_url: str | None = None
    started_at: float | None = None  # when it went in-progress: media time 0 of its audio
    # Conference status callbacks (opt-in per fixture): where, how, and which StatusCallbackEvent values.
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset()
    outbound_prompt: bool = False
    seed: int = 0
    # Scenario key presses: (media_ms, digit, duration_ms), sent as dtmf messages on the streams.
    dtmf_timeline: list[tuple[int, str, int]] = field(default_factory=list)

    def uri(self) -> str:
        return f"{API_ROOT}/Accounts/{self.account_sid}/Conferences/{self.sid}.json"

    def active_participants(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.status == ParticipantStatus.IN_PROGRESS]

    def live_streams(self) -> list[Stream]:
        return [s for s in self.streams.values() if s.live]

    def wants(self, event: str) -> bool:
        """Whether this conference's status callback subscribed to ``event``."""
        return bool(self.status_callback) and event in self.status_callback_events

    def media_ms(self, now: float) -> int:
        """Milliseconds of media time: since it went in progress (0 before)."""
        return 0 if self.started_at is None else int((now - self.started_at) * 1000)

    def dtmf_due(self, media_ms: int) -> list[tuple[str, int]]:
        """The scenario key presses (digit, duration_ms) that fall in the 20 ms chunk starting at ``media_ms``."""
        return [(digit, duration) for at_ms, digit, duration in self.dtmf_timeline
                if media_ms <= at_ms < media_ms + CHUNK_MS]

    def speech_changes(self, media_ms: int, speaking: dict[str, bool]) -> list[tuple[str, Participant]]:
        """Speech start/stop events since the last look (``speaking``, updated in place, is what was heard)."""
        out = []
        for participant in self.participants.values():
            now_speaking = participant.speaks_at(media_ms)
            if now_speaking != speaking.get(participant.call_sid, False):
                speaking[participant.call_sid] = now_speaking
                out.append(("participant-speech-start" if now_speaking else "participant-speech-stop", participant))
        return out

    def as_json(self) -> dict[str, Any]:
        base = f"{API_ROOT}/Accounts/{self.account_sid}/Conferences/{self.sid}"
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "friendly_name": self.friendly_name,
            "status": self.status.value,
            "api_version": API_VERSION,
            "region": self.region,
            "uri": self.uri(),
            "subresource_uris": {"participants": f"{base}/Participants.json", "recordings": f"{base}/Recordings.json"},
        }


# ----- stream validation --------------------------------------------------------------------------------------
def validate_stream_request(
    fields: dict[str, Any], *, allow_ws: bool = False, disabled_codecs: tuple[str, ...] = ()
) -> StreamRequest:
    """The create-stream body as a StreamRequest; ValidationFailed lists every problem (one string each)."""
    errors: list[str] = []
    stream_error: str | None = None

    def problem(message: str, error: str) -> None:
        nonlocal stream_error
        errors.append(message)
        stream_error = stream_error or error

    def string(name: str) -> str | None:
        value = fields.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            problem(f"{name} must be a string, got {type(value).__name__}", "general_error")
            return None
        return str(value)

    url = string("Url")
    if url is None or url == "":
        problem("Url is required: the wss:// address of your WebSocket server", "missing_url")
    elif not is_uri(url):
        problem(f"Url must be a URI (RFC 3986 characters only), got {url!r}", "invalid_url")
    else:
        parts = urlsplit(url)
        allowed = ("wss", "ws") if allow_ws else ("wss",)
        if parts.scheme.lower() not in allowed:
            problem(f"Url must use the wss scheme (ws is not supported), got {url!r}", "invalid_url")
        elif not parts.hostname:
            problem(f"Url must be an absolute wss:// URL with a host, got {url!r}", "invalid_url")
        if "?" in url:
            problem("Url must not contain a query string; pass values as custom parameters instead", "invalid_url")
        try:
            parts.port  # noqa: B018 - raises for a malformed port
        except ValueError:
            problem(f"Url has an invalid port: {url!r}", "invalid_url")
    track = string("Track") or "both_tracks"
    if track not in TRACKS:
        problem(f"Track must be one of {', '.join(TRACKS)}, got {track!r}", "invalid_track")
    codec = string("StreamCodec") or "PCMU"
    if codec not in STREAM_CODECS:
        problem(f"StreamCodec must be one of {', '.join(STREAM_CODECS)}, got {codec!r}", "codec_error")
    elif codec in disabled_codecs:
        problem(f"StreamCodec {codec} is not enabled for your account", "codec_error")
    method = string("StatusCallbackMethod") or "POST"
    if method not in ("GET", "POST"):
        problem(f"StatusCallbackMethod must be GET or POST, got {method!r}", "general_error")
    callback = string("StatusCallback")
    if callback is not None and not absolute_http_url(callback):
        problem(f"StatusCallback must be an absolute http(s) URL, got {callback!r}", "general_error")
    real_time_raw = fields.get("StreamRealTime")
    real_time = False
    if real_time_raw is not None:
        if isinstance(real_time_raw, bool):
            real_time = real_time_raw
        elif isinstance(real_time_raw, str) and real_time_raw.lower() in ("true", "false"):
            real_time = real_time_raw.lower() == "true"
        else:
            problem(f"StreamRealTime must be true or false, got {real_time_raw!r}", "general_error")
    name = string("Name")
    bearer = string("AuthorizationBearerToken")
    names: dict[int, str] = {}
    values: dict[int, str] = {}
    for key in fields:
        match = _PARAMETER_KEY.fullmatch(key)
        if not match:
            continue
        index = int(match.group(1))
        if not 1 <= index <= MAX_CUSTOM_PARAMETERS:
            problem(f"{key}: custom parameters run from Parameter1 to Parameter{MAX_CUSTOM_PARAMETERS}",
                    "general_error")
            continue
        value = string(key)
        if value is None:
            continue
        (names if match.group(2) == "Name" else values)[index] = value
    if errors:
        raise ValidationFailed(errors, stream_error or "general_error")
    # An orphan Value is ignored; a Name without a Value gets "" (quirk 15).
    parameters = tuple((names[i], values.get(i, "")) for i in sorted(names) if names[i] != "")
    return StreamRequest(
        url=str(url),
        name=name or None,
        track=track,
        status_callback=callback,
        status_callback_method=method,
        codec=codec,
        real_time=real_time,
        parameters=parameters,
        bearer_token=bearer or None,
    )


def salvage_stream_request(fields: dict[str, Any]) -> StreamRequest:
    """What can be kept of an invalid create body, so its stream-error callback still reaches the customer."""

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) and value else None

    callback = text("StatusCallback")
    if callback is not None and not callback.startswith(("http://", "https://")):
        callback = None
    method = text("StatusCallbackMethod")
    track = text("Track")
    return StreamRequest(
        url=text("Url") or "",
        name=text("Name"),
        track=track if track in TRACKS else "both_tracks",
        status_callback=callback,
        status_callback_method=method if method in ("GET", "POST") else "POST",
    )


def validate_dtmf(digit: Any, duration_ms: Any) -> tuple[str, int]:
    if not isinstance(digit, str) or digit not in DTMF_DIGITS:
        raise InvalidRequest(f"digit must be one of 0-9 * # A-D, got {digit!r}", status=400, field="digit")
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, int) or not 40 <= duration_ms <= 10_000:
        raise InvalidRequest(f"duration_ms must be an integer between 40 and 10000, got {duration_ms!r}",
                             status=400, field="duration_ms")
    return digit, duration_ms


CALL_SID_MODES = ("conference", "empty", "first_participant")
SHUTDOWN = "shutdown"  # why a stream stops when the emulator itself stops or resets


def stream_end_event(reason: str, error: str | None) -> str | None:
    """The StatusCallback event a started stream's end sends: ``stream-error`` (with its StreamError),
    ``stream-stopped`` (stopped by the API, its conference or the customer), or none when the emulator itself
    shut it down."""
    if error is not None:
        return "stream-error"
    return None if reason == SHUTDOWN else "stream-stopped"


# ----- the backend ----------------------------------------------------------------------------------------------
@dataclass
class SignalWireBackend:
    """Every account's conferences and what hangs off them, with the account-level quirk settings."""

    accounts: dict[str, str] = field(default_factory=dict)  # project id -> API token
    conferences: dict[str, Conference] = field(default_factory=dict)
    strict_stream_sid: bool = False  # quirk 18: refuse a stream Name in place of its sid
    max_streams_per_conference: int = 0  # 0 = unlimited
    allow_ws_scheme: bool = False  # quirk 11 (tests only): accept ws:// stream URLs
    disabled_codecs: tuple[str, ...] = ()  # quirk 6: "not enabled for your account"
    async_validation_errors: bool = False  # quirk 5: accept an invalid create, report it by callback
    conference_call_sid: str = "conference"  # quirk 19: what start.callSid carries (CALL_SID_MODES)
    rate_limit: int = 0  # quirk 17: requests per second per account; 0 = no limit
    _recent: dict[str, deque[float]] = field(default_factory=dict, repr=False)  # account -> request times

    def clear(self) -> None:
        """Back to no accounts and no conferences (a reset; the scenario is loaded again)."""
        self.accounts.clear()
        self.conferences.clear()
        self._recent.clear()

    # --- auth and the opt-in rate limit ---
    def authenticate(self, account_sid: str, username: str | None, password: str | None) -> None:
        token = self.accounts.get(username or "")
        if token is None or token != password or account_sid != username:
            raise AuthenticationFailed()

    def admit(self, account_sid: str, now: float) -> None:
        """Quirk 17 (opt-in): more than ``rate_limit`` requests within a sliding second answer 429."""
        if self.rate_limit <= 0:
            return
        recent = self._recent.setdefault(account_sid, deque())
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= self.rate_limit:
            raise RateLimited()
        recent.append(now)

    # --- conferences ---
    def add_conference(self, conference: Conference) -> Conference:
        if conference.sid in self.conferences:
            raise InvalidRequest(f"conference {conference.sid} exists already", status=409)
        self.conferences[conference.sid] = conference
        return conference

    def conference(self, account_sid: str, sid: str) -> Conference:
        conference = self.conferences.get(sid)
        if conference is None or conference.account_sid != account_sid:
            raise NotFound(f"Conference {sid}")
        return conference

    def webhook_headers(self, account_sid: str, url: str, params: dict[str, str]) -> dict[str, str]:
        """The signature headers of a webhook on behalf of ``account_sid``, keyed with the project's token."""
        return signature_headers(self.accounts.get(account_sid, ""), url, params)

    def list_conferences(self, account_sid: str, query: dict[str, str]) -> list[Conference]:
        status = query.get("Status")
        allowed = [s.value for s in ConferenceStatus]
        if status is not None and status not in allowed:
            raise InvalidRequest(f"Status must be one of {', '.join(allowed)}, got {status!r}")
        friendly = query.get("FriendlyName")
        if friendly is not None and len(friendly) > 64:
            raise InvalidRequest("FriendlyName must be at most 64 characters")
        created, updated = date_filters(query, "DateCreated"), date_filters(query, "DateUpdated")
        out = []
        for conference in self.conferences.values():
            if conference.account_sid != account_sid:
                continue
            if status is not None and conference.status != status:
                continue
            if friendly is not None and conference.friendly_name != friendly:
                continue
            if not date_matches(created, conference.date_created):
                continue
            if not date_matches(updated, conference.date_updated):
                continue
            out.append(conference)
        return out

    def update_conference(self, conference: Conference, fields: dict[str, Any], now: float) -> list[Stream]:
        """Apply an update; returns the streams that stopped because the conference ended."""
        status = choice_field(fields, "Status", ("completed",))
        announce = text_field(fields, "AnnounceUrl")
        choice_field(fields, "AnnounceMethod", ("GET", "POST"))
        if announce is not None and not absolute_http_url(announce):
            raise InvalidRequest(f"AnnounceUrl must be an absolute http(s) URL, got {announce!r}")
        if announce is not None:
            conference.announce_url = announce  # stored, never requested (dossier 4.2)
        conference.date_updated = now
        if status == "completed":
            return self.end_conference(conference, now)
        return []

    def start_conference(self, conference: Conference, now: float) -> bool:
        """``init`` -> ``in-progress``; True when it changed."""
        if conference.status != ConferenceStatus.INIT:
            return False
        conference.status = _checked("conference", conference.sid, CONFERENCE_TRANSITIONS, conference.status,
                                     ConferenceStatus.IN_PROGRESS)
        conference.started_at = now
        conference.date_updated = now
        return True

    def end_conference(self, conference: Conference, now: float) -> list[Stream]:
        """Every participant completes, live recordings complete and every live stream stops; returns those
        streams (queued ones included), whose media the caller then stops."""
        if conference.status == ConferenceStatus.COMPLETED:
            return []
        conference.status = _checked("conference", conference.sid, CONFERENCE_TRANSITIONS, conference.status,
                                     ConferenceStatus.COMPLETED)
        conference.date_updated = now
        for participant in conference.participants.values():
            if participant.status != ParticipantStatus.COMPLETED:
                self._complete(participant, now)
        for recording in conference.recordings.values():
            if RecordingStatus.COMPLETED in RECORDING_TRANSITIONS[recording.status]:
                recording.status = RecordingStatus.COMPLETED
                recording.end_time = now
                recording.date_updated = now
        ended = conference.live_streams()
        for stream in ended:
            self.mark_stopped(stream, now)
        return ended

    # --- participants ---
    def add_participant(self, conference: Conference, participant: Participant, now: float) -> bool:
        """Join a participant; True when the conference started because of it."""
        if conference.status == ConferenceStatus.COMPLETED:
            raise InvalidRequest(f"Conference {conference.sid} has ended", status=409)
        if participant.call_sid in conference.participants:
            raise InvalidRequest(f"participant {participant.call_sid} is in the conference already", status=409)
        conference.participants[participant.call_sid] = participant
        if participant.start_conference_on_enter:
            return self.start_conference(conference, now)
        return False

    def participant(self, conference: Conference, call_sid: str) -> Participant:
        participant = conference.participants.get(call_sid)
        if participant is None or participant.status == ParticipantStatus.COMPLETED:
            raise NotFound(f"Participant {call_sid}")
        return participant

    def list_participants(self, conference: Conference, query: dict[str, str]) -> list[Participant]:
        muted = bool_field(query, "Muted")
        hold = bool_field(query, "Hold")
        return [
            p
            for p in conference.active_participants()
            if (muted is None or p.muted == muted) and (hold is None or p.hold == hold)
        ]

    def update_participant(self, participant: Participant, fields: dict[str, Any], now: float) -> list[str]:
        """Apply an update; returns the conference events it causes (mute/unmute, hold/unhold), in that order."""
        if not fields:
            # The vendor's document marks this request body required (unlike a conference update's).
            raise InvalidRequest("a request body is required: send at least one of " + ", ".join(PARTICIPANT_UPDATES))
        muted = bool_field(fields, "Muted")
        hold = bool_field(fields, "Hold")
        coaching = bool_field(fields, "Coaching")
        coach = text_field(fields, "CallSidToCoach")
        for name in ("AnnounceUrl", "HoldUrl", "WaitUrl"):
            value = text_field(fields, name)
            if value is not None and not absolute_http_url(value):
                raise InvalidRequest(f"{name} must be an absolute http(s) URL, got {value!r}")
        for name in ("AnnounceMethod", "HoldMethod", "WaitMethod"):
            choice_field(fields, name, ("GET", "POST"))
        if coaching and not coach:  # the vendor document: required (in the request) when Coaching is true
            raise InvalidRequest("Coaching=true requires CallSidToCoach in the same request")
        if coach is not None:
            try:
                uuid.UUID(coach)
            except ValueError:
                raise InvalidRequest(f"CallSidToCoach must be a call sid (UUID), got {coach!r}") from None
        events = []
        if muted is not None:
            if muted != participant.muted:
                events.append("participant-mute" if muted else "participant-unmute")
            participant.muted = muted
        if hold is not None:
            if hold != participant.hold:
                events.append("participant-hold" if hold else "participant-unhold")
            participant.hold = hold
        if coaching is not None:
            participant.coaching = coaching
            if not coaching:
                participant.call_sid_to_coach = None
        if coach is not None:
            participant.call_sid_to_coach = coach
        participant.date_updated = now
        return events

    def set_speaker(self, participant: Participant, speaking: bool | None) -> None:
        """Speak now (True), stay silent (False), or follow the speaking timeline again (None)."""
        participant.speaking_override = speaking

    def remove_participant(self, conference: Conference, participant: Participant, now: float) -> list[Stream]:
        """The participant leaves; the conference ends when it was the last one or ends-on-exit (then the
        streams that stopped are returned)."""
        self._complete(participant, now)
        conference.date_updated = now
        if participant.end_conference_on_exit or not conference.active_participants():
            return self.end_conference(conference, now)
        return []

    def _complete(self, participant: Participant, now: float) -> None:
        participant.status = _checked("participant", participant.call_sid, PARTICIPANT_TRANSITIONS,
                                      participant.status, ParticipantStatus.COMPLETED)
        participant.date_updated = now

    # --- recordings ---
    def recording(self, conference: Conference, sid: str) -> Recording:
        recording = conference.recordings.get(sid)
        if recording is None or recording.deleted:
            raise NotFound(f"Recording {sid}")
        return recording

    def list_recordings(self, conference: Conference, query: dict[str, str]) -> list[Recording]:
        created = date_filters(query, "DateCreated")
        return [r for r in conference.recordings.values() if not r.deleted and date_matches(created, r.date_created)]

    def update_recording(self, recording: Recording, fields: dict[str, Any], now: float) -> None:
        status = fields.get("Status")
        allowed = [s.value for s in RECORDING_UPDATES]
        if status is None:
            raise ValidationFailed([f"Status is required: one of {', '.join(allowed)}"])
        if status not in allowed:
            raise ValidationFailed([f"Status must be one of {', '.join(allowed)}, got {status!r}"])
        behavior = fields.get("PauseBehavior")
        if behavior is not None and behavior not in ("skip", "silence"):
            raise ValidationFailed([f"PauseBehavior must be skip or silence, got {behavior!r}"])
        if not RECORDING_TRANSITIONS[recording.status]:
            raise ValidationFailed([f"Recording {recording.sid} is {recording.status} and cannot change"])
        recording.status = _checked("recording", recording.sid, RECORDING_TRANSITIONS, recording.status,
                                    RecordingStatus(status))
        if recording.status == RecordingStatus.STOPPED:
            recording.end_time = now
        recording.date_updated = now

    def delete_recording(self, recording: Recording, now: float) -> None:
        recording.deleted = True
        recording.date_updated = now

    # --- streams ---
    def stream_request(self, fields: dict[str, Any]) -> StreamRequest:
        """A create body validated under this account's settings (ws:// allowed? codecs disabled?)."""
        return validate_stream_request(fields, allow_ws=self.allow_ws_scheme, disabled_codecs=self.disabled_codecs)

    def accept_stream(self, conference: Conference, fields: dict[str, Any], now: float) -> tuple[Stream, str | None]:
        """Create a stream from a create body: ``(stream, None)`` to connect, or, under quirk 5, an invalid body
        accepted as ``(stream, StreamError)``: the stream answers ``queued`` and then fails by callback only."""
        try:
            request = self.stream_request(fields)
        except ValidationFailed as exc:
            if not self.async_validation_errors:
                raise
            return self.create_stream(conference, salvage_stream_request(fields), now), exc.stream_error
        return self.create_stream(conference, request, now), None

    def create_stream(self, conference: Conference, request: StreamRequest, now: float) -> Stream:
        if conference.status == ConferenceStatus.COMPLETED:
            raise ValidationFailed(["Conference is not in progress"])
        live = conference.live_streams()
        if self.max_streams_per_conference and len(live) >= self.max_streams_per_conference:
            raise ValidationFailed(
                [f"Conference already has {len(live)} streams (limit {self.max_streams_per_conference})"]
            )
        stream = Stream(
            sid=new_sid(),
            account_sid=conference.account_sid,
            conference_sid=conference.sid,
            request=request,
            date_created=now,
            date_updated=now,
        )
        conference.streams[stream.sid] = stream
        return stream

    def duplicate_name(self, conference: Conference, stream: Stream) -> bool:
        """True when another non-stopped stream of the conference uses this stream's Name."""
        if stream.name is None:
            return False
        return any(s is not stream and s.live and s.name == stream.name for s in conference.streams.values())

    def stream(self, conference: Conference, sid_or_name: str) -> Stream:
        """By sid; else (quirk 18) the newest non-stopped stream with that Name, else the newest with it."""
        stream = conference.streams.get(sid_or_name)
        if stream is not None:
            return stream
        if not self.strict_stream_sid:
            named = [s for s in conference.streams.values() if s.name == sid_or_name]
            live = [s for s in named if s.live]
            if live or named:
                return (live or named)[-1]
        raise NotFound(f"Stream {sid_or_name}")

    def stop_stream(self, stream: Stream, fields: dict[str, Any], now: float) -> bool:
        """Apply ``Status=stopped``; True when the stream was live (the caller then stops its media)."""
        status = fields.get("Status")
        if status is None:
            raise ValidationFailed(["Status is required; only 'stopped' is allowed"])
        if status != "stopped":
            raise ValidationFailed([f"Status must be 'stopped' (the only allowed value), got {status!r}"])
        return self.mark_stopped(stream, now)

    def mark_stopped(self, stream: Stream, now: float, error: str | None = None) -> bool:
        """Stop a stream (idempotent: False when it had stopped already), keeping its StreamError."""
        if not stream.live:
            return False
        stream.status = _checked("stream", stream.sid, STREAM_TRANSITIONS, stream.status, StreamStatus.STOPPED)
        stream.stream_error = error
        stream.date_updated = now
        return True

    def mark_in_progress(self, stream: Stream, now: float) -> bool:
        """A queued stream connected and sent ``start``; False when it was no longer queued."""
        if stream.status != StreamStatus.QUEUED:
            return False
        stream.status = _checked("stream", stream.sid, STREAM_TRANSITIONS, stream.status, StreamStatus.IN_PROGRESS)
        stream.date_updated = now
        return True

    def call_sid_for(self, conference: Conference) -> str:
        """Quirk 19: ``start.callSid`` (and the callbacks' CallSid) of a conference's streams."""
        if self.conference_call_sid == "empty":
            return ""
        if self.conference_call_sid == "first_participant":
            active = conference.active_participants()
            return active[0].call_sid if active else ""
        return conference.sid
