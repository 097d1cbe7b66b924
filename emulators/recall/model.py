"""RecallBackend: every rule of the Recall bots service as pure state, and each bot's life as a sans-I/O schedule.

No asyncio, no I/O and no clock reads: every operation that needs time takes ``now`` (Unix seconds). The
service drives ``advance(now)`` / ``next_wakeup()`` and acts on the changes it returns.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections import deque
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from clients.recall_wire import iso_utc
from emulators.kit.errors import FieldError
from emulators.recall.create_request import (
    PLATFORMS,
    BotSpec,
    CreateRules,
    Endpoint,
    _Errors,
    parse_datetime,
    validate_create,
)
from emulators.recall.errors import (
    BotNotFound,
    CommandRejected,
    DeleteRefused,
    IdempotencyConflict,
    IllegalTransition,
    NotAuthenticated,
    PageNotFound,
    PoolExhausted,
    Throttled,
    UpdateRefused,
    ValidationFailed,
)
from emulators.recall.meeting import (
    CLIENT_PLATFORMS,
    Meeting,
    MeetingEvent,
    Scenario,
    ScenarioParticipant,
    Script,
    parse_scenario,
    scenario_for,
    script_line,
)

if TYPE_CHECKING:
    from faker import Faker


# ----- statuses -----------------------------------------------------------------------------------------
class BotStatus(StrEnum):
    READY = "ready"
    JOINING_CALL = "joining_call"
    IN_WAITING_ROOM = "in_waiting_room"
    IN_CALL_NOT_RECORDING = "in_call_not_recording"
    RECORDING_PERMISSION_ALLOWED = "recording_permission_allowed"
    RECORDING_PERMISSION_DENIED = "recording_permission_denied"
    IN_CALL_RECORDING = "in_call_recording"
    CALL_ENDED = "call_ended"
    RECORDING_DONE = "recording_done"
    DONE = "done"
    FATAL = "fatal"
    MEDIA_EXPIRED = "media_expired"
    ANALYSIS_DONE = "analysis_done"
    ANALYSIS_FAILED = "analysis_failed"


S = BotStatus
# The real path (dossier §4): ready -> joining_call -> (in_waiting_room) -> in_call_not_recording ->
# in_call_recording -> call_ended -> (recording_done) -> done. A meeting can end (call_ended) at any point
# before the bot records; fatal ends a bot that could not get in or broke.
TRANSITIONS: dict[BotStatus, frozenset[BotStatus]] = {
    S.READY: frozenset({S.JOINING_CALL, S.CALL_ENDED}),
    S.JOINING_CALL: frozenset({S.IN_WAITING_ROOM, S.IN_CALL_NOT_RECORDING, S.CALL_ENDED, S.FATAL}),
    S.IN_WAITING_ROOM: frozenset({S.IN_CALL_NOT_RECORDING, S.CALL_ENDED, S.FATAL}),
    S.IN_CALL_NOT_RECORDING: frozenset({S.RECORDING_PERMISSION_ALLOWED, S.RECORDING_PERMISSION_DENIED,
                                        S.IN_CALL_RECORDING, S.CALL_ENDED, S.FATAL}),
    S.RECORDING_PERMISSION_ALLOWED: frozenset({S.IN_CALL_RECORDING, S.CALL_ENDED, S.FATAL}),
    S.RECORDING_PERMISSION_DENIED: frozenset({S.CALL_ENDED, S.FATAL}),
    S.IN_CALL_RECORDING: frozenset({S.CALL_ENDED, S.FATAL}),
    S.CALL_ENDED: frozenset({S.RECORDING_DONE, S.DONE}),
    S.RECORDING_DONE: frozenset({S.DONE}),
    S.DONE: frozenset({S.MEDIA_EXPIRED, S.ANALYSIS_DONE, S.ANALYSIS_FAILED}),
    S.FATAL: frozenset(),
    S.MEDIA_EXPIRED: frozenset(),
    S.ANALYSIS_DONE: frozenset(),
    S.ANALYSIS_FAILED: frozenset(),
}
# Statuses after which a bot takes no more commands.
COMPLETED = frozenset({S.CALL_ENDED, S.DONE, S.FATAL, S.RECORDING_DONE, S.MEDIA_EXPIRED, S.ANALYSIS_DONE,
                       S.ANALYSIS_FAILED})
IN_CALL = frozenset({S.JOINING_CALL, S.IN_WAITING_ROOM, S.IN_CALL_NOT_RECORDING, S.RECORDING_PERMISSION_ALLOWED,
                     S.RECORDING_PERMISSION_DENIED, S.IN_CALL_RECORDING})
# ----- bots ---------------------------------------------------------------------------------------------
@dataclass
class StatusChange:
    code: BotStatus
    created_at: float
    sub_code: str | None = None
    message: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "created_at": iso_utc(self.created_at),
                "sub_code": self.sub_code}


@dataclass
class MeetingParticipant:
    id: int
    name: str
    is_host: bool
    platform: str
    events: list[tuple[str, float]] = field(default_factory=list)

    def as_json(self, *, with_events: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if with_events:
            out["events"] = [{"code": code, "created_at": iso_utc(at)} for code, at in self.events]
        out.update(is_host=self.is_host, platform=self.platform, extra_data={})
        return out


@dataclass
class Recording:
    id: str
    created_at: float
    started_at: float
    completed_at: float | None = None

    def as_json(self, generation: str, participants_url: str, bot_metadata: dict[str, Any],
                video_url: str | None = None) -> dict[str, Any]:
        base: dict[str, Any] = {
            "id": self.id,
            "created_at": iso_utc(self.created_at),
            "started_at": iso_utc(self.started_at),
            "completed_at": iso_utc(self.completed_at) if self.completed_at else None,
        }
        if generation == "v1.10":
            return base
        done = self.completed_at is not None
        status_at = self.completed_at or self.started_at
        base.update(
            expires_at=iso_utc(status_at + 7 * 86400) if done else None,
            status={"code": "done" if done else "processing", "sub_code": None, "updated_at": iso_utc(status_at)},
            media_shortcuts={
                "video_mixed": None if video_url is None else {
                    "id": self.id, "format": "mp4", "data": {"download_url": video_url},
                    "status": {"code": "done", "sub_code": None, "updated_at": iso_utc(status_at)}},
                "transcript": None,
                "participant_events": {
                    "id": self.id,
                    "data": {
                        "participant_events_download_url": None,
                        "speaker_timeline_download_url": None,
                        "participants_download_url": participants_url,
                    },
                },
                "meeting_metadata": None,
            },
            metadata=dict(bot_metadata),
        )
        return base


@dataclass
class Bot:
    id: str
    spec: BotSpec
    created_at: float
    status_changes: list[StatusChange] = field(default_factory=list)
    participants: dict[int, MeetingParticipant] = field(default_factory=dict)
    recording: Recording | None = None
    meeting_title: str | None = None
    api_key: str = ""

    @property
    def status(self) -> BotStatus:
        return self.status_changes[-1].code

    @property
    def alive(self) -> bool:
        return self.status not in COMPLETED

    def record_status(self, code: str, now: float, sub_code: str | None = None,
                      message: str | None = None) -> StatusChange:
        """Append a status change; IllegalTransition when the state machine does not allow it."""
        status = BotStatus(code)
        if self.status_changes and status not in TRANSITIONS[self.status]:
            raise IllegalTransition(f"bot {self.id}: {self.status} -> {status} is not a transition")
        if not self.status_changes and status is not BotStatus.READY:
            raise IllegalTransition(f"bot {self.id}: a bot starts ready, not {status}")
        # created_at never goes backwards, even if the caller's clock does.
        at = max(now, self.status_changes[-1].created_at) if self.status_changes else now
        change = StatusChange(status, at, sub_code, message)
        self.status_changes.append(change)
        return change

    def check_can_leave(self) -> None:
        """leave_call is allowed from joining_call to in_call_recording; the rest answer with a coded 400."""
        status = self.status
        if status == "ready":
            raise CommandRejected(
                "cannot_command_unstarted_bot", "Cannot send a command to a bot which has not started yet."
            )
        if status in COMPLETED or status not in IN_CALL:
            raise CommandRejected(
                "cannot_command_completed_bot",
                "Cannot send a command to a bot which has completed(is shutting/has shut down/has errored).",
            )

    def participant_event(self, participant: MeetingParticipant, code: str, now: float) -> MeetingParticipant:
        known = self.participants.setdefault(
            participant.id,
            MeetingParticipant(participant.id, participant.name, participant.is_host, participant.platform),
        )
        known.events.append((code, now))
        return known

    def start_recording(self, recording_id: str, now: float) -> Recording:
        self.recording = Recording(recording_id, now, now)
        return self.recording

    def finish_recording(self, now: float) -> None:
        if self.recording is not None and self.recording.completed_at is None:
            self.recording.completed_at = now

    def as_json(self, base_url: str, video_url: str | None = None) -> dict[str, Any]:
        """The bot in its generation's shape; ``video_url`` is the signed link to its recording once done."""
        spec = self.spec
        participants_url = f"{base_url}/api/v1/bot/{self.id}/participants/"
        recordings = (
            [self.recording.as_json(spec.generation, participants_url, spec.metadata, video_url)]
            if self.recording else []
        )
        common: dict[str, Any] = {
            "id": self.id,
            "bot_name": spec.bot_name,
            "join_at": iso_utc(spec.join_at) if spec.join_at is not None and self.status == "ready" else None,
            "status_changes": [s.as_json() for s in self.status_changes],
            "recordings": recordings,
            "calendar_meetings": [],
            "metadata": dict(spec.metadata),
            "automatic_leave": spec.automatic_leave,
        }
        common.update(spec.echoed)
        if spec.generation == "v1.11":
            common["meeting_url"] = spec.meeting_url.as_json()
            common["recording_config"] = _recording_config_json(spec)
            common["slack_team"] = None
            return common
        ended_at = self.recording.completed_at if self.recording else None
        common.update(
            meeting_url=spec.meeting_url.raw,
            video_url=video_url,
            media_retention_end=iso_utc(ended_at + 7 * 86400) if ended_at else None,
            meeting_metadata={"title": self.meeting_title} if self.meeting_title else None,
            meeting_participants=[p.as_json() for p in self.participants.values()],
            recording=self.recording.id if self.recording else None,
            slack_huddle_observer=None,
            real_time_media=spec.real_time_media,
            recording_mode=spec.recording_mode,
            recording_mode_options=spec.recording_mode_options,
        )
        common.update(spec.legacy_extras)
        return common

    def participants_download(self) -> list[dict[str, Any]]:
        return [p.as_json(with_events=False) for p in self.participants.values()]


def _recording_config_json(spec: BotSpec) -> dict[str, Any]:
    config = {k: v for k, v in spec.recording_config.items() if k != "realtime_endpoints"}
    config["realtime_endpoints"] = [e.as_json() for e in spec.endpoints]
    return config
# ----- the bot store: creation, listing, filters --------------------------------------------------------
@dataclass
class ListQuery:
    page: int = 1
    statuses: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    meeting_url: str | None = None
    join_at_after: float | None = None
    join_at_before: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def _multi(query: Any, name: str) -> tuple[str, ...]:
    values = list(query.getall(name, [])) + list(query.getall(f"{name}[]", []))
    out: list[str] = []
    for value in values:
        out.extend(v for v in value.split(",") if v)
    return tuple(out)


def parse_list_query(query: Any) -> ListQuery:
    """A ListQuery from a multidict of query parameters; ValidationFailed naming the bad parameter."""
    errors = _Errors()
    result = ListQuery()
    raw_page = query.get("page")
    if raw_page not in (None, ""):
        try:
            result.page = int(raw_page)
            if result.page < 1:
                raise ValueError
        except ValueError:
            errors.add("page", "A valid integer of at least 1 is required.")
    result.statuses = _multi(query, "status")
    result.platforms = _multi(query, "platform")
    bad = [p for p in result.platforms if p not in PLATFORMS]
    for platform in bad:
        errors.add("platform", f"Select a valid choice. {platform} is not one of the available choices: "
                   f"{', '.join(PLATFORMS)}.")
    result.meeting_url = query.get("meeting_url") or None
    for name in ("join_at_after", "join_at_before"):
        raw = query.get(name)
        if raw in (None, ""):
            continue
        try:
            setattr(result, name, parse_datetime(raw))
        except (ValueError, TypeError, OverflowError):
            errors.add(name, "Enter a valid date/time.")
    for key in query:
        if key.startswith("metadata__") and len(key) > len("metadata__"):
            result.metadata[key[len("metadata__"):]] = query.get(key)
    if errors.errors:
        raise ValidationFailed(errors.errors)
    return result


class BotBook:
    """Every bot of the emulator, newest first, with seeded ids."""

    def __init__(self, seed: int) -> None:
        self._bots: dict[str, Bot] = {}
        self.ids = random.Random(seed)

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    def create(self, spec: BotSpec, now: float, api_key: str = "") -> Bot:
        bot = Bot(id=self.new_id(), spec=spec, created_at=now, api_key=api_key)
        bot.record_status("ready", now)
        self._bots[bot.id] = bot
        return bot

    def get(self, bot_id: str) -> Bot:
        bot = self._bots.get(bot_id)
        if bot is None:
            raise BotNotFound(bot_id)
        return bot

    def remove(self, bot_id: str) -> None:
        self._bots.pop(bot_id, None)

    def all(self) -> list[Bot]:
        return list(self._bots.values())

    def __len__(self) -> int:
        return len(self._bots)

    def search(self, query: ListQuery, api_key: str | None = None) -> list[Bot]:
        bots = [b for b in reversed(self._bots.values()) if api_key is None or b.api_key == api_key]
        out = []
        for bot in bots:
            spec = bot.spec
            if query.statuses and bot.status not in query.statuses:
                continue
            if query.platforms and spec.meeting_url.platform not in query.platforms:
                continue
            if query.meeting_url and spec.meeting_url.raw != query.meeting_url:
                continue
            if query.join_at_after is not None and (spec.join_at is None or spec.join_at < query.join_at_after):
                continue
            if query.join_at_before is not None and (spec.join_at is None or spec.join_at > query.join_at_before):
                continue
            if any(spec.metadata.get(k) != v for k, v in query.metadata.items()):
                continue
            out.append(bot)
        return out


# ----- rate limits and idempotency ---------------------------------------------------------------------
class RateLimiter:
    """Sliding one-minute windows per (API key, bucket); ``hit`` answers the Retry-After seconds or None."""

    WINDOW_S = 60.0

    def __init__(self) -> None:
        self._hits: dict[tuple[str, str], deque[float]] = {}

    def hit(self, key: str, bucket: str, limit: int, now: float) -> int | None:
        hits = self._hits.setdefault((key, bucket), deque())
        while hits and hits[0] <= now - self.WINDOW_S:
            hits.popleft()
        if len(hits) >= limit:
            return max(1, math.ceil(hits[0] + self.WINDOW_S - now))
        hits.append(now)
        return None


@dataclass
class StoredResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _IdempotencyEntry:
    fingerprint: str
    at: float
    response: StoredResponse | None = None  # None while the first request is in flight


class IdempotencyBook:
    """Idempotency-Key handling: replay a completed response for an hour, 409 while in flight or reused."""

    TTL_S = 3600.0

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _IdempotencyEntry] = {}

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> str:
        return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()

    def begin(self, api_key: str, key: str, fingerprint: str, now: float) -> StoredResponse | None:
        """The cached response to replay, or None when this request is the first (now in flight)."""
        for k in [k for k, e in self._entries.items() if e.at <= now - self.TTL_S]:
            del self._entries[k]
        entry = self._entries.get((api_key, key))
        if entry is None:
            self._entries[(api_key, key)] = _IdempotencyEntry(fingerprint, now)
            return None
        if entry.response is None:
            raise IdempotencyConflict("A request with this Idempotency-Key is already in progress.")
        if entry.fingerprint != fingerprint:
            raise IdempotencyConflict("This Idempotency-Key was already used with a different request.")
        return entry.response

    def finish(self, api_key: str, key: str, response: StoredResponse) -> None:
        entry = self._entries.get((api_key, key))
        if entry is not None:
            entry.response = response

    def abandon(self, api_key: str, key: str) -> None:
        self._entries.pop((api_key, key), None)


def status_webhook(bot: Bot, change: StatusChange) -> dict[str, Any] | None:
    """The status-change webhook body of the bot's generation (dossier §2.6), or None when that generation
    sends none: v1.11 names each event ``bot.<code>`` and documents no ``bot.ready`` (an internal status)."""
    at = iso_utc(change.created_at)
    if bot.spec.generation == "v1.10":
        return {"event": "bot.status_change", "data": {"bot_id": bot.id, "status": {
            "code": change.code, "created_at": at, "sub_code": change.sub_code, "message": change.message}}}
    if change.code is BotStatus.READY:
        return None
    metadata = {k: v for k, v in bot.spec.metadata.items() if v is not None}
    return {"event": f"bot.{change.code}", "data": {
        "data": {"code": change.code, "sub_code": change.sub_code, "updated_at": at},
        "bot": {"id": bot.id, "metadata": metadata}}}


# ----- what a recording bot streams (layout rules) -------------------------------------------------------
@dataclass(frozen=True)
class PlannedStream:
    """One outbound stream the bot should have open now; ``key`` also names it (``<bot_id>/<key>``)."""

    key: str
    kind: str  # legacy_video | legacy_audio | speaker_timeline | realtime | realtime_webhook | rtmp
    url: str
    participant_id: int | None = None  # legacy video header id, separate audio prefix
    source: str = ""  # legacy video: speaker | webcam | screenshare
    endpoint: Endpoint | None = None
    separate_png: bool = False  # realtime: video_separate_png is produced
    gallery: bool = False  # rtmp: gallery mix instead of the active speaker


def stream_plan(bot: Bot, meeting: Meeting, *, audio_separate_streams: bool) -> dict[str, PlannedStream]:
    """Every stream a bot has open in its current state; empty unless it is recording.

    Legacy (v1.10): speaker_view is one stream (id 0); gallery views are one stream per present participant
    plus one per screenshare (the sharer's id); audio is one mixed stream or one per present participant.
    v1.11: one connection per websocket endpoint, one POST queue per webhook endpoint; video_separate_png only
    with gallery_view_v2 (Q5).
    """
    if bot.status is not BotStatus.IN_CALL_RECORDING:
        return {}
    spec = bot.spec
    plan: list[PlannedStream] = []
    if spec.generation == "v1.10":
        rtm = spec.real_time_media
        video = rtm.get("websocket_video_destination_url")
        if video and spec.recording_mode == "speaker_view":
            plan.append(PlannedStream("video/speaker", "legacy_video", video, 0, "speaker"))
        elif video and spec.recording_mode in ("gallery_view", "gallery_view_v2"):
            plan.extend(PlannedStream(f"video/{pid}", "legacy_video", video, pid, "webcam") for pid in meeting.present)
            plan.extend(PlannedStream(f"video/screenshare-{pid}", "legacy_video", video, pid, "screenshare")
                        for pid in meeting.sharing if pid in meeting.present)
        audio = rtm.get("websocket_audio_destination_url")
        if audio and audio_separate_streams:
            plan.extend(PlannedStream(f"audio/{pid}", "legacy_audio", audio, pid) for pid in meeting.present)
        elif audio:
            plan.append(PlannedStream("audio", "legacy_audio", audio))
        timeline_url = rtm.get("websocket_speaker_timeline_destination_url")
        if timeline_url:
            plan.append(PlannedStream("speaker_timeline", "speaker_timeline", timeline_url))
        rtmp_url = rtm.get("rtmp_destination_url")
    else:
        config = spec.recording_config
        separate_png = (config.get("video_separate_png") is not None
                        and config.get("video_mixed_layout") == "gallery_view_v2")
        for endpoint in spec.endpoints:
            if endpoint.type == "websocket":
                plan.append(PlannedStream(f"realtime/{endpoint.id}", "realtime", endpoint.url, endpoint=endpoint,
                                          separate_png=separate_png and "video_separate_png.data" in endpoint.events))
            elif endpoint.type == "webhook":
                plan.append(PlannedStream(f"realtime/{endpoint.id}", "realtime_webhook", endpoint.url,
                                          endpoint=endpoint))
        rtmp_url = next((e.url for e in spec.endpoints if e.type == "rtmp"), None)
    if rtmp_url:
        plan.append(PlannedStream("rtmp", "rtmp", rtmp_url, gallery=spec.layout != "speaker_view"))
    return {p.key: p for p in plan}


# ----- the bot schedule (sans-I/O) -----------------------------------------------------------------------
# Offsets from creation, in seconds before the time scale (dossier §4).
JOINING_AT_S = 0.2
IN_CALL_AT_S = 0.6
RECORDING_AT_S = 1.0
PARTICIPANT_EVENT_CODES = frozenset({"join", "leave", "speech_on", "speech_off", "screenshare_on", "screenshare_off"})


@dataclass(frozen=True)
class StatusChanged:
    """A bot's status changed: the service sends its webhook, opens media at in_call_recording, closes at
    call_ended (then calls ``release``), and forgets the bot's I/O at done or fatal."""

    bot: Bot
    change: StatusChange


@dataclass(frozen=True)
class MeetingChanged:
    """Something happened in a bot's meeting at ``at`` (Unix seconds); its media follows."""

    bot: Bot
    event: MeetingEvent
    at: float


Change = StatusChanged | MeetingChanged


class Phase(StrEnum):
    SCHEDULED = "scheduled"  # ready; joining_call is due
    JOINING = "joining"  # joining_call; in_call_not_recording is due
    WAITING_ROOM = "waiting_room"  # in_waiting_room; admitted or timed out when due
    ENTERED = "entered"  # in_call_not_recording; in_call_recording is due
    RECORDING = "recording"  # in_call_recording until an ending
    RELEASING = "releasing"  # call_ended; waiting for the service to close the media (``release``)
    OVER = "over"  # done or fatal


@dataclass
class Ending:
    sub_code: str
    at: float


@dataclass(frozen=True)
class LifecycleRules:
    """Settings that shape every bot's schedule."""

    time_scale: float = 0.05
    leave_delay_s: float = 0.5
    extra_status_codes: bool = False  # Q10: recording_permission_allowed before in_call_recording
    emit_recording_done: bool = False


class BotRun:
    """One bot's life: its lifecycle steps, its meeting's script, automatic-leave deadlines and its ending."""

    def __init__(self, bot: Bot, scenario: Scenario, rules: LifecycleRules, seed: int) -> None:
        self.bot = bot
        self.scenario = scenario
        self.meeting = Meeting(scenario)
        self.rules = rules
        self.seed = seed
        self.phase = Phase.SCHEDULED
        start = bot.created_at if bot.spec.join_at is None else max(bot.created_at, bot.spec.join_at)
        # join_at is a date, not a scaled delay: the bot dispatches at it, then takes the usual steps.
        self.due: float | None = start + self._scaled(JOINING_AT_S)
        self.ending: Ending | None = None
        self.meeting0: float | None = None  # Unix time of scenario second 0 (in_call_not_recording)
        self.script: Script | None = None
        # Automatic-leave deadlines (Unix seconds) by the call_ended sub_code they produce.
        self.deadlines: dict[str, float] = {}
        self._speech_started: dict[int, float] = {}
        self._faker: Faker | None = None  # made on first use: only control-plane speech needs it

    def _scaled(self, seconds: float) -> float:
        return max(0.0, seconds * self.rules.time_scale)

    @property
    def leave_rules(self) -> dict[str, Any]:
        return self.bot.spec.automatic_leave

    # ----- commands ----------------------------------------------------------------------------------------
    def request_leave(self, now: float) -> None:
        self.bot.check_can_leave()
        if self.ending is None:
            self.ending = Ending("bot_received_leave_call", now + self._scaled(self.rules.leave_delay_s))

    def end_meeting(self, now: float) -> None:
        if self.ending is None and self.phase not in (Phase.RELEASING, Phase.OVER):
            self.ending = Ending("call_ended_by_host", now)

    # ----- the schedule ------------------------------------------------------------------------------------
    def _script_due(self) -> float | None:
        if self.script is None or self.meeting0 is None:
            return None
        at = self.script.next_at()
        return None if at is None else self.meeting0 + self._scaled(at)

    def next_wakeup(self) -> float | None:
        if self.phase in (Phase.RELEASING, Phase.OVER):
            return None
        times = [self.due, self._script_due(), self.ending.at if self.ending else None, *self.deadlines.values()]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def advance(self, now: float) -> list[Change]:
        """Every step due by ``now``, in time order: script events, then lifecycle steps, then deadlines."""
        out: list[Change] = []
        while self.phase not in (Phase.RELEASING, Phase.OVER):
            steps = [
                (self._script_due(), 0, self._play_script),
                (self.ending.at if self.ending else None, 1, self._end),
                (None if self.ending else self.due, 1, self._step),
                (min(self.deadlines.values()) if self.deadlines and not self.ending else None, 2, self._deadline),
            ]
            due = [(at, rank, act) for at, rank, act in steps if at is not None and at <= now]
            if not due:
                break
            at, _rank, act = min(due, key=lambda s: (s[0], s[1]))
            out.extend(act(at))
        return out

    def _status(self, code: BotStatus, at: float, sub_code: str | None = None,
                message: str | None = None) -> StatusChanged:
        return StatusChanged(self.bot, self.bot.record_status(code, at, sub_code, message))

    def _step(self, at: float) -> list[Change]:
        scenario, limits = self.scenario, self.leave_rules
        if self.phase is Phase.SCHEDULED:
            out: list[Change] = [self._status(S.JOINING_CALL, at)]
            if scenario.missing:
                out.append(self._status(S.FATAL, at, "meeting_not_found", "The meeting could not be found."))
                self.phase, self.due = Phase.OVER, None
            elif scenario.waiting_room_s > 0:
                out.append(self._status(S.IN_WAITING_ROOM, at))
                self.phase = Phase.WAITING_ROOM
                self.due = at + self._scaled(min(scenario.waiting_room_s, limits["waiting_room_timeout"]))
            else:
                self.phase, self.due = Phase.JOINING, at + self._scaled(IN_CALL_AT_S - JOINING_AT_S)
            return out
        if self.phase is Phase.WAITING_ROOM:
            if scenario.waiting_room_s > limits["waiting_room_timeout"]:
                self.ending = Ending("timeout_exceeded_waiting_room", at)
                return []
            self.phase, self.due = Phase.JOINING, at + self._scaled(IN_CALL_AT_S - JOINING_AT_S)
            return []
        if self.phase is Phase.JOINING:
            out = [self._status(S.IN_CALL_NOT_RECORDING, at)]
            self.bot.meeting_title = scenario.title
            self.meeting0 = at
            # A looping meeting needs time to pass between cycles: at time scale 0 it plays once.
            self.script = Script(scenario, repeat=self.rules.time_scale > 0)
            self._arm("timeout_exceeded_noone_joined", "noone_joined_timeout", at, when=not self.meeting.present)
            self.phase, self.due = Phase.ENTERED, at + self._scaled(RECORDING_AT_S - IN_CALL_AT_S)
            return out
        # ENTERED: recording starts (start_recording_on: call_join).
        out = []
        if self.rules.extra_status_codes:
            out.append(self._status(S.RECORDING_PERMISSION_ALLOWED, at))
        self.bot.start_recording(_uuid(random.Random(f"{self.seed}:{self.bot.id}")), at)
        out.append(self._status(S.IN_CALL_RECORDING, at))
        self._arm("timeout_exceeded_in_call_recording", "in_call_recording_timeout", at)
        self.phase, self.due = Phase.RECORDING, None
        return out

    def _arm(self, sub_code: str, rule: str, at: float, *, when: bool = True) -> None:
        timeout = self.leave_rules.get(rule)
        if when and timeout is not None:
            self.deadlines[sub_code] = at + self._scaled(timeout)

    def _deadline(self, at: float) -> list[Change]:
        sub_code = min(self.deadlines, key=lambda k: self.deadlines[k])
        self.ending = Ending(sub_code, at)
        return []

    def _end(self, at: float) -> list[Change]:
        assert self.ending is not None
        self.phase, self.due = Phase.RELEASING, None
        self.deadlines.clear()
        return [self._status(S.CALL_ENDED, at, self.ending.sub_code)]

    def release(self, now: float) -> list[Change]:
        """The service closed the bot's media after call_ended: the recording completes and the bot is done."""
        if self.phase is not Phase.RELEASING:
            return []
        self.bot.finish_recording(now)
        out: list[Change] = []
        if self.rules.emit_recording_done and self.bot.recording is not None:
            out.append(self._status(S.RECORDING_DONE, now))
        out.append(self._status(S.DONE, now))
        self.phase = Phase.OVER
        return out

    # ----- the meeting -----------------------------------------------------------------------------------
    def scenario_time(self, now: float) -> float:
        if self.meeting0 is None or self.rules.time_scale <= 0:
            return 0.0
        return (now - self.meeting0) / self.rules.time_scale

    def _play_script(self, at: float) -> list[Change]:
        assert self.script is not None and self.meeting0 is not None
        out: list[Change] = []
        # The events of the next script instant (by scenario time, not by re-deriving it from ``at``: floats).
        next_s = self.script.next_at()
        for event in self.script.pop_due(next_s if next_s is not None else -math.inf):
            out.extend(self.apply(event, at))
        return out

    def apply(self, event: MeetingEvent, at: float) -> list[Change]:
        """Apply a meeting event (script or control plane) at ``at``; no change when it changes nothing."""
        if event.code == "speech_off" and event.text is None:
            event = self._with_script(event, at)
        if not self.meeting.apply(event):
            return []
        if event.code == "end":
            self.end_meeting(at)
            return []
        if event.code == "speech_on" and event.participant is not None:
            self._speech_started[event.participant] = self.scenario_time(at)
        person = self.meeting.roster.get(event.participant or -1)
        if person is not None and event.code in PARTICIPANT_EVENT_CODES:
            self.bot.participant_event(_as_bot_participant(person), event.code, at)
        if self.meeting.present:
            self.deadlines.pop("timeout_exceeded_everyone_left", None)
            self.deadlines.pop("timeout_exceeded_noone_joined", None)
        elif event.code == "leave" and self.phase in (Phase.ENTERED, Phase.RECORDING):
            self._arm("timeout_exceeded_everyone_left", "everyone_left_timeout", at)
        return [MeetingChanged(self.bot, event, at)]

    def _with_script(self, event: MeetingEvent, at: float) -> MeetingEvent:
        """A speech_off from the control plane: the words come from the script line due now, else from Faker."""
        pid = event.participant
        now_s = self.scenario_time(at)
        start = self._speech_started.get(pid or -1, now_s)
        end = max(start, now_s)
        line = script_line(self.scenario, pid, start, end)
        if line is None:
            if self._faker is None:
                from faker import Faker  # imported when first needed: it is not needed to start

                self._faker = Faker()
                self._faker.seed_instance(self.seed ^ int(self.bot.id.replace("-", "")[:8], 16))
            line = self._faker.sentence(nb_words=max(3, min(20, int((end - start) * 2))))
        return MeetingEvent(event.at_s, event.code, pid, line, (start, end))


def _as_bot_participant(person: ScenarioParticipant) -> MeetingParticipant:
    return MeetingParticipant(person.id, person.name, person.is_host, person.platform)


def _uuid(ids: random.Random) -> str:
    return str(uuid.UUID(int=ids.getrandbits(128), version=4))


# ----- the backend ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceRules:
    """Settings of the REST service: keys, limits, page size, quirks."""

    api_keys: frozenset[str]
    rate_limits: bool = True
    rate_limit_per_min: dict[str, int] = field(default_factory=lambda: {"create": 60, "list": 60, "bot": 300})
    page_size: int = 50
    quirk_pool_exhausted: bool = False  # Q8: 507 for ad-hoc bots
    quirk_waf_localhost: bool = False  # Q9: HTML 403 for 'localhost' in a payload or a GET with a body
    default_scenario: str = "default"


@dataclass
class Page:
    count: int
    page: int
    pages: int
    bots: list[Bot]


class RecallBackend:
    """Every bot, meeting and limit of one emulator, and every rule about them."""

    def __init__(self, *, seed: int, scenarios: MutableMapping[str, Scenario], create_rules: CreateRules,
                 service_rules: ServiceRules, lifecycle_rules: LifecycleRules) -> None:
        self.create_rules = create_rules
        self.service_rules = service_rules
        self.lifecycle_rules = lifecycle_rules
        if service_rules.default_scenario not in scenarios:
            raise FieldError("recall.scenario", f"must be one of {', '.join(sorted(scenarios))}")
        self.reset(seed, scenarios)

    def reset(self, seed: int, scenarios: MutableMapping[str, Scenario]) -> None:
        self.seed = seed
        self.scenarios = scenarios
        self.book = BotBook(seed)
        self.runs: dict[str, BotRun] = {}
        self.requests: dict[str, dict[str, Any]] = {}  # each bot's create body as PATCH last left it
        self.rate_limiter = RateLimiter()
        self.idempotency = IdempotencyBook()

    # ----- access rules --------------------------------------------------------------------------------
    def authenticate(self, header: str | None) -> str:
        """The API key of an Authorization header ("Token <key>", or the bare key as the vendor's samples send)."""
        if not header or not header.strip():
            raise NotAuthenticated("Authentication credentials were not provided.")
        parts = header.strip().split()
        if len(parts) == 2 and parts[0].lower() == "token":
            key = parts[1]
        elif len(parts) == 1:
            key = parts[0]
        else:
            raise NotAuthenticated("Invalid token header. Token string should not contain spaces.")
        if key not in self.service_rules.api_keys:
            raise NotAuthenticated("Invalid token.")
        return key

    def throttle(self, api_key: str, bucket: str, now: float) -> None:
        """Count a request against the key's sliding minute; Throttled (429 + Retry-After) beyond the limit."""
        if not self.service_rules.rate_limits:
            return
        retry_after = self.rate_limiter.hit(api_key, bucket, self.service_rules.rate_limit_per_min[bucket], now)
        if retry_after is not None:
            raise Throttled(retry_after)

    def waf_blocks(self, method: str, body: bytes) -> bool:
        """Q9: the service's firewall answers an HTML 403 to 'localhost' in a payload and to GETs with a body."""
        if not self.service_rules.quirk_waf_localhost:
            return False
        if method == "GET":
            return bool(body)
        return b"localhost" in body.lower()

    def bot(self, bot_id: str, api_key: str) -> Bot:
        """A bot as the key's workspace sees it: other workspaces' bots do not exist."""
        bot = self.book.get(bot_id)
        if bot.api_key != api_key:
            raise BotNotFound(bot.id)
        return bot

    # ----- operations ---------------------------------------------------------------------------------
    def create_bot(self, body: Any, api_key: str, now: float) -> Bot:
        spec = validate_create(body, self.create_rules, self.book.ids)
        if self.service_rules.quirk_pool_exhausted and spec.join_at is None:
            raise PoolExhausted()
        bot = self.book.create(spec, now, api_key)
        scenario = scenario_for(spec.meeting_url.raw, self.scenarios, self.service_rules.default_scenario)
        self.runs[bot.id] = BotRun(bot, scenario, self.lifecycle_rules, self.seed)
        self.requests[bot.id] = dict(body)
        return bot

    def update_bot(self, bot_id: str, patch: Any, api_key: str, now: float) -> Bot:
        """PATCH a scheduled bot: the given top-level fields replace the create request's, the result is
        validated as a create, and the bot is rescheduled (same id, same ``ready`` status)."""
        bot = self.bot(bot_id, api_key)
        if bot.status != BotStatus.READY or bot.spec.join_at is None:
            raise UpdateRefused()
        if not isinstance(patch, dict):
            raise ValidationFailed({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        body = {**self.requests.get(bot.id, {}), **patch}
        spec = validate_create(body, self.create_rules, self.book.ids)
        bot.spec = spec
        scenario = scenario_for(spec.meeting_url.raw, self.scenarios, self.service_rules.default_scenario)
        self.runs[bot.id] = BotRun(bot, scenario, self.lifecycle_rules, self.seed)
        self.requests[bot.id] = body
        return bot

    def list_bots(self, query: ListQuery, api_key: str) -> Page:
        bots = self.book.search(query, api_key)
        size = self.service_rules.page_size
        pages = max(1, -(-len(bots) // size))
        if query.page > pages:
            raise PageNotFound()
        start = (query.page - 1) * size
        return Page(len(bots), query.page, pages, bots[start:start + size])

    def leave_call(self, bot_id: str, api_key: str, now: float) -> Bot:
        bot = self.bot(bot_id, api_key)
        run = self.runs.get(bot.id)
        if run is None:
            bot.check_can_leave()
        else:
            run.request_leave(now)
        return bot

    def delete_bot(self, bot_id: str, api_key: str) -> None:
        """Only a scheduled bot that never dispatched can be deleted; it goes without any further status."""
        bot = self.bot(bot_id, api_key)
        if bot.status != BotStatus.READY or bot.spec.join_at is None:
            raise DeleteRefused()
        self.runs.pop(bot.id, None)
        self.requests.pop(bot.id, None)
        self.book.remove(bot.id)

    def scenario_name(self, bot_id: str) -> str:
        return self.runs[bot_id].scenario.name

    # ----- the schedule -------------------------------------------------------------------------------
    def advance(self, now: float) -> list[Change]:
        """Every lifecycle step, script event and automatic leave due by ``now``, across all bots, in order."""
        out: list[Change] = []
        for run in list(self.runs.values()):
            out.extend(run.advance(now))
        return out

    def next_wakeup(self) -> float | None:
        """When ``advance`` next has something to do; None when only commands can change anything."""
        times = [t for t in (run.next_wakeup() for run in self.runs.values()) if t is not None]
        return min(times) if times else None

    def release(self, bot_id: str, now: float) -> list[Change]:
        run = self.runs.get(bot_id)
        return [] if run is None else run.release(now)

    def meeting(self, bot_id: str) -> Meeting:
        return self.runs[bot_id].meeting

    def streams_of(self, bot_id: str, *, audio_separate_streams: bool) -> dict[str, PlannedStream]:
        run = self.runs.get(bot_id)
        if run is None:
            return {}
        return stream_plan(run.bot, run.meeting, audio_separate_streams=audio_separate_streams)

    # ----- scenario controls ------------------------------------------------------------------------------
    def targets(self, body: dict[str, Any]) -> list[BotRun]:
        bot_id = body.get("bot_id")
        if bot_id is not None:
            run = self.runs.get(bot_id) if isinstance(bot_id, str) else None
            if run is None or not run.bot.alive:
                raise FieldError("bot_id", f"no live bot {bot_id!r}")
            return [run]
        runs = [run for run in self.runs.values() if run.bot.alive]
        if not runs:
            raise FieldError("bot_id", "no live bot to apply this to; create a bot first")
        return runs

    @staticmethod
    def _participant_id(body: dict[str, Any]) -> int:
        pid = body.get("participant_id")
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise FieldError("participant_id", f"must be an integer participant id, got {pid!r}")
        return pid

    def control_event(self, body: dict[str, Any], code: str, now: float) -> tuple[dict[str, Any], list[Change]]:
        """remove_participant, start/stop_screenshare: one participant event in every targeted meeting."""
        pid = self._participant_id(body)
        runs = self.targets(body)
        for run in runs:
            if pid not in run.meeting.present:
                raise FieldError("participant_id", f"participant {pid} is not in the meeting of bot {run.bot.id}; "
                                 f"present: {sorted(run.meeting.present)}")
        changes: list[Change] = []
        applied = []
        for run in runs:
            done = run.apply(MeetingEvent(0.0, code, pid), now)
            if done:
                applied.append(run.bot.id)
            changes.extend(done)
        return {"applied": applied, "participant_id": pid, "event": code}, changes

    def set_active_speaker(self, body: dict[str, Any], now: float) -> tuple[dict[str, Any], list[Change]]:
        """Everyone else stops speaking (their transcript follows), then this participant speaks."""
        pid = self._participant_id(body)
        changes: list[Change] = []
        for run in self.targets(body):
            if pid not in run.meeting.present:
                raise FieldError("participant_id", f"participant {pid} is not in the meeting of bot {run.bot.id}")
            for other in [p for p in run.meeting.speaking if p != pid]:
                changes.extend(run.apply(MeetingEvent(0.0, "speech_off", other), now))
        result, more = self.control_event(body, "speech_on", now)
        return result, changes + more

    def add_participant(self, body: dict[str, Any], now: float) -> tuple[dict[str, Any], list[Change]]:
        runs = self.targets(body)
        platform = body.get("platform", "desktop")
        if platform not in CLIENT_PLATFORMS:
            raise FieldError("platform", f"must be one of {', '.join(CLIENT_PLATFORMS)}, got {platform!r}")
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise FieldError("name", "must be a non-empty string")
        out, changes = [], []
        for run in runs:
            pid = body.get("participant_id")
            if pid is None:
                pid = max([0, *run.meeting.roster]) // 100 * 100 + 100
            elif isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid < 2**16:
                raise FieldError("participant_id", f"must be an integer in 1..65535, got {pid!r}")
            if pid not in run.meeting.roster:
                generated = parse_scenario({"participants": [{"id": pid}]}, seed=self.seed + pid).participants[0]
                run.meeting.add_participant(ScenarioParticipant(
                    id=pid, name=name or generated.name, is_host=bool(body.get("is_host", False)), platform=platform))
            changes.extend(run.apply(MeetingEvent(0.0, "join", pid), now))
            out.append({"bot_id": run.bot.id, "participant_id": pid, "name": run.meeting.roster[pid].name})
        return {"joined": out}, changes

    def end_meeting(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        runs = self.targets(body)
        for run in runs:
            run.end_meeting(now)
        return {"ended": [run.bot.id for run in runs]}

    def load_scenario(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add (or replace) a scenario; bots created afterwards for its meeting_urls follow it."""
        scenario = parse_scenario(body.get("scenario"), seed=self.seed, name=str(body.get("name", "custom")))
        self.scenarios[scenario.name] = scenario
        return {"scenario": scenario.name, "participants": [p.name for p in scenario.participants]}
