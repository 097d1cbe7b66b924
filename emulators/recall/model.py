"""Recall.ai bots as pure state: request validation, the bot lifecycle, participants, list filters, rate limits.

No asyncio and no clock reads: every operation that needs time takes ``now`` (Unix seconds).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from clients.recall_wire import REALTIME_EVENTS, iso_utc

DEFAULT_BOT_NAME = "Meeting Notetaker"
BOT_NAME_MAX = 100
LEGACY_FIELDS = (
    "real_time_media",
    "recording_mode",
    "recording_mode_options",
    "transcription_options",
    "real_time_transcription",
)
ECHOED_FIELDS = (
    "chat",
    "output_media",
    "automatic_video_output",
    "automatic_audio_output",
    "variant",
    "zoom",
    "google_meet",
    "include_bot_in_recording",
)
RECORDING_MODES = ("speaker_view", "gallery_view", "gallery_view_v2", "audio_only")
SCREENSHARE_PLACEMENTS = ("hide", "beside", "overlap")
START_RECORDING_ON = ("call_join", "participant_join", "participant_speak", "manual")
TRANSCRIPTION_PROVIDERS = (
    "deepgram",
    "assembly_ai_async_chunked",
    "assembly_ai",
    "rev",
    "aws_transcribe",
    "speechmatics",
    "symbl",
    "gladia",
    "gladia_v2",
    "meeting_captions",
    "none",
)
PLATFORMS = ("zoom", "google_meet", "microsoft_teams", "webex")
ENDPOINT_TYPES = ("websocket", "webhook", "rtmp")
# automatic_leave: field -> (minimum, default); None default = no timeout.
AUTOMATIC_LEAVE: dict[str, tuple[int, int | None]] = {
    "waiting_room_timeout": (30, 1200),
    "noone_joined_timeout": (30, 1200),
    "everyone_left_timeout": (1, 2),
    "in_call_not_recording_timeout": (1, 3600),
    "in_call_recording_timeout": (1, None),
    "recording_permission_denied_timeout": (1, 3600),
}
SILENCE_DETECTION = {"timeout": (10, 3600), "activate_after": (1, 1200)}
# Which recording_config artifact an event family needs before it can be subscribed to.
EVENT_ARTIFACT = {
    "participant_events": "participant_events",
    "transcript": "transcript",
    "audio_mixed_raw": "audio_mixed_raw",
    "audio_separate_raw": "audio_separate_raw",
    "video_separate_png": "video_separate_png",
}
# Statuses after which a bot takes no more commands.
COMPLETED_CODES = frozenset({"call_ended", "done", "fatal", "recording_done", "media_expired", "analysis_done",
                             "analysis_failed"})
IN_CALL_CODES = frozenset({"joining_call", "in_waiting_room", "in_call_not_recording", "recording_permission_allowed",
                           "recording_permission_denied", "in_call_recording"})
NOT_ALLOWED = "This field is not allowed."
REQUIRED = "This field is required."


class ValidationFailed(Exception):
    """A request body is invalid; ``errors`` is the DRF-style ``{field: [message, ...]}`` map."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(json.dumps(errors))
        self.errors = errors


class CommandRejected(Exception):
    """A command a bot cannot take in its current state (400 with ``code`` and ``detail``)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class BotNotFound(LookupError):
    pass


# ----- meeting URLs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeetingUrl:
    """A meeting link as the v1.11 API shows it: the platform and the meeting id (plus a Zoom password)."""

    raw: str
    platform: str
    meeting_id: str
    meeting_password: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"meeting_id": self.meeting_id}
        if self.platform == "zoom":
            out["meeting_password"] = self.meeting_password
        out["platform"] = self.platform
        return out


_MEET_ID = re.compile(r"^/([a-z]{3}-[a-z]{4}-[a-z]{3})/?$")
_ZOOM_PATH = re.compile(r"^/(?:j|w|s|wc/join|wc)/(\d{9,11})(?:/.*)?$")


def parse_meeting_url(raw: str) -> MeetingUrl:
    """The platform and meeting id of a Zoom, Google Meet, Microsoft Teams or Webex link."""
    parts = urlsplit(raw.strip())
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError("Enter a valid URL.")
    if host == "meet.google.com":
        match = _MEET_ID.match(parts.path)
        if match:
            return MeetingUrl(raw, "google_meet", match.group(1))
    elif host == "zoom.us" or host.endswith(".zoom.us") or host.endswith(".zoomgov.com"):
        match = _ZOOM_PATH.match(parts.path)
        if match:
            password = parse_qs(parts.query).get("pwd", [None])[0]
            return MeetingUrl(raw, "zoom", match.group(1), password)
    elif host in ("teams.microsoft.com", "teams.live.com") or host.endswith(".teams.microsoft.com"):
        tail = parts.path.rstrip("/").rsplit("/", 1)[-1]
        if tail:
            return MeetingUrl(raw, "microsoft_teams", hashlib.sha1(parts.path.encode()).hexdigest()[:16])
    elif host.endswith("webex.com"):
        tail = parts.path.rstrip("/").rsplit("/", 1)[-1] or parse_qs(parts.query).get("MTID", [""])[0]
        if tail:
            return MeetingUrl(raw, "webex", tail)
    raise ValueError("Meeting URL is not a recognised Zoom, Google Meet, Microsoft Teams or Webex link.")


# ----- request validation ------------------------------------------------------------------------------
@dataclass
class Endpoint:
    """A v1.11 realtime endpoint (or a legacy destination, in the same shape)."""

    id: str
    type: str
    url: str
    events: tuple[str, ...]
    metadata: dict[str, str]
    nested: bool = False  # given as config: {url, events}

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"url": self.url, "events": list(self.events)}
        if self.nested:
            return {"id": self.id, "type": self.type, "config": body, "metadata": self.metadata}
        return {"id": self.id, "type": self.type, **body, "metadata": self.metadata}


@dataclass
class BotSpec:
    """A validated create request: everything the bot echoes and everything its media needs."""

    generation: str  # "v1.10" or "v1.11"
    meeting_url: MeetingUrl
    bot_name: str
    join_at: float | None
    metadata: dict[str, str | None]
    automatic_leave: dict[str, Any]
    echoed: dict[str, Any]
    # v1.10
    real_time_media: dict[str, Any] = field(default_factory=dict)
    recording_mode: str = "speaker_view"
    recording_mode_options: dict[str, Any] = field(default_factory=dict)
    legacy_extras: dict[str, Any] = field(default_factory=dict)
    # v1.11
    recording_config: dict[str, Any] = field(default_factory=dict)
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def layout(self) -> str:
        if self.generation == "v1.11":
            return str(self.recording_config.get("video_mixed_layout", "speaker_view"))
        return self.recording_mode


@dataclass(frozen=True)
class CreateRules:
    """Profile flags that change what a create request may contain."""

    reject_legacy_fields: bool = False
    strict_layout_validation: bool = False
    strict_endpoint_shape: bool = False


_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$"
)


def parse_datetime(raw: Any) -> float:
    """Unix seconds from an ISO 8601 / RFC 3339 datetime; naive values are UTC. ValueError otherwise."""
    if not isinstance(raw, str):
        raise ValueError("not a string")
    match = _DATETIME.match(raw.strip())
    if not match:
        raise ValueError("not an ISO 8601 datetime")
    year, month, day, hour, minute = (int(match.group(i)) for i in range(1, 6))
    second = min(59, int(match.group(6) or 0))  # a leap second reads as :59
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    offset = 0
    if match.group(9):
        offset = (int(match.group(10)) * 60 + int(match.group(11))) * 60 * (1 if match.group(9) == "+" else -1)
    value = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    return value.timestamp() - offset


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, Any] = {}

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def nested(self, name: str, sub: dict[str, Any]) -> None:
        if sub:
            self.errors[name] = sub


def _url_error(value: Any, schemes: tuple[str, ...]) -> str | None:
    if not isinstance(value, str):
        return "Not a valid string."
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        return f"Enter a valid URL with scheme {' or '.join(schemes)}."
    return None


def _validate_metadata(value: Any, errors: _Errors, name: str = "metadata") -> dict[str, str | None]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(name, f'Expected a dictionary of items but got type "{type(value).__name__}".')
        return {}
    bad = [k for k, v in value.items() if v is not None and not isinstance(v, str)]
    if bad:
        errors.nested(name, {k: ["Not a valid string."] for k in bad})
    return {str(k): v for k, v in value.items()}


def _validate_automatic_leave(value: Any, errors: _Errors) -> dict[str, Any]:
    out: dict[str, Any] = {k: d for k, (_m, d) in AUTOMATIC_LEAVE.items()}
    out["silence_detection"] = {k: d for k, (_m, d) in SILENCE_DETECTION.items()}
    out["bot_detection"] = {"using_participant_events": {"timeout": 600, "activate_after": 1200}}
    if value is None:
        return out
    if not isinstance(value, dict):
        errors.add("automatic_leave", f'Invalid data. Expected a dictionary, but got {type(value).__name__}.')
        return out
    sub: dict[str, Any] = {}
    for key, (minimum, _default) in AUTOMATIC_LEAVE.items():
        if key not in value or value[key] is None:
            continue
        v = value[key]
        if isinstance(v, bool) or not isinstance(v, int):
            sub[key] = ["A valid integer is required."]
        elif v < minimum:
            sub[key] = [f"Ensure this value is greater than or equal to {minimum}."]
        else:
            out[key] = v
    silence = value.get("silence_detection")
    if silence is not None:
        if not isinstance(silence, dict):
            sub["silence_detection"] = ["Invalid data. Expected a dictionary."]
        else:
            ssub: dict[str, Any] = {}
            for key, (minimum, _d) in SILENCE_DETECTION.items():
                v = silence.get(key)
                if v is None:
                    continue
                if isinstance(v, bool) or not isinstance(v, int):
                    ssub[key] = ["A valid integer is required."]
                elif v < minimum:
                    ssub[key] = [f"Ensure this value is greater than or equal to {minimum}."]
                else:
                    out["silence_detection"][key] = v
            if ssub:
                sub["silence_detection"] = ssub
    if isinstance(value.get("bot_detection"), dict):
        out["bot_detection"] = value["bot_detection"]
    errors.nested("automatic_leave", sub)
    return out


def _choice(value: Any, choices: tuple[str, ...]) -> str | None:
    if not isinstance(value, str) or value not in choices:
        return f'"{value}" is not a valid choice. Allowed: {", ".join(choices)}.'
    return None


_RTM_WS_FIELDS = (
    "websocket_video_destination_url",
    "websocket_audio_destination_url",
    "websocket_speaker_timeline_destination_url",
)
_RTM_HTTP_FIELDS = ("webhook_call_events_destination_url", "webhook_chat_messages_destination_url")


def _validate_legacy(body: dict[str, Any], spec: BotSpec, errors: _Errors) -> None:
    rtm = body.get("real_time_media")
    out: dict[str, Any] = {name: None for name in (*_RTM_WS_FIELDS, "rtmp_destination_url", *_RTM_HTTP_FIELDS)}
    out["websocket_speaker_timeline_exclude_null_speaker"] = True
    if rtm is not None:
        if not isinstance(rtm, dict):
            errors.add("real_time_media", "Invalid data. Expected a dictionary.")
        else:
            sub: dict[str, list[str]] = {}
            for name, schemes in (
                *((n, ("ws", "wss")) for n in _RTM_WS_FIELDS),
                ("rtmp_destination_url", ("rtmp", "rtmps")),
                *((n, ("http", "https")) for n in _RTM_HTTP_FIELDS),
            ):
                value = rtm.get(name)
                if value is None:
                    continue
                problem = _url_error(value, schemes)
                if problem:
                    sub[name] = [problem]
                else:
                    out[name] = value
            flag = rtm.get("websocket_speaker_timeline_exclude_null_speaker")
            if flag is not None:
                if not isinstance(flag, bool):
                    sub["websocket_speaker_timeline_exclude_null_speaker"] = ["Must be a valid boolean."]
                else:
                    out["websocket_speaker_timeline_exclude_null_speaker"] = flag
            errors.nested("real_time_media", sub)
    spec.real_time_media = out
    mode = body.get("recording_mode")
    if mode is not None:
        problem = _choice(mode, RECORDING_MODES)
        if problem:
            errors.add("recording_mode", problem)
        else:
            spec.recording_mode = mode
    options = body.get("recording_mode_options")
    spec.recording_mode_options = {"participant_video_when_screenshare": "overlap", "start_recording_on": "call_join"}
    if options is not None:
        if not isinstance(options, dict):
            errors.add("recording_mode_options", "Invalid data. Expected a dictionary.")
        else:
            sub = {}
            for key, choices in (
                ("participant_video_when_screenshare", SCREENSHARE_PLACEMENTS),
                ("start_recording_on", START_RECORDING_ON),
            ):
                if options.get(key) is None:
                    continue
                problem = _choice(options[key], choices)
                if problem:
                    sub[key] = [problem]
                else:
                    spec.recording_mode_options[key] = options[key]
            errors.nested("recording_mode_options", sub)
    transcription = body.get("transcription_options")
    if transcription is not None:
        if not isinstance(transcription, dict) or "provider" not in transcription:
            errors.nested("transcription_options", {"provider": [REQUIRED]})
        else:
            problem = _choice(transcription["provider"], TRANSCRIPTION_PROVIDERS)
            if problem:
                errors.nested("transcription_options", {"provider": [problem]})
        spec.legacy_extras["transcription_options"] = transcription
    rtt = body.get("real_time_transcription")
    if rtt is not None:
        if not isinstance(rtt, dict):
            errors.add("real_time_transcription", "Invalid data. Expected a dictionary.")
        else:
            sub = {}
            problem = _url_error(rtt.get("destination_url"), ("http", "https", "ws", "wss"))
            if "destination_url" not in rtt:
                sub["destination_url"] = [REQUIRED]
            elif problem:
                sub["destination_url"] = [problem]
            for flag in ("partial_results", "enhanced_diarization"):
                if flag in rtt and not isinstance(rtt[flag], bool):
                    sub[flag] = ["Must be a valid boolean."]
            errors.nested("real_time_transcription", sub)
            spec.legacy_extras["real_time_transcription"] = {
                "partial_results": False,
                "enhanced_diarization": False,
                **rtt,
            }


_RECORDING_CONFIG_DEFAULTS: dict[str, Any] = {
    "video_mixed_layout": "speaker_view",
    "participant_events": {},
    "meeting_metadata": {},
    "video_mixed_mp4": {},
    "retention": {"type": "timed", "hours": 168},
    "start_recording_on": "call_join",
    "video_mixed_participant_video_when_screenshare": "overlap",
}
_ARTIFACTS = (
    "video_separate_png",
    "video_separate_mp4",
    "video_mixed_flv",
    "video_mixed_mp4",
    "audio_mixed_raw",
    "audio_separate_raw",
    "transcript",
    "participant_events",
    "meeting_metadata",
)


def _validate_recording_config(
    value: Any, spec: BotSpec, errors: _Errors, rules: CreateRules, endpoint_ids: random.Random
) -> None:
    if not isinstance(value, dict):
        errors.add("recording_config", "Invalid data. Expected a dictionary.")
        return
    config = {**_RECORDING_CONFIG_DEFAULTS, **{k: v for k, v in value.items() if v is not None or k == "transcript"}}
    sub: dict[str, Any] = {}
    problem = _choice(config["video_mixed_layout"], RECORDING_MODES)
    if problem:
        sub["video_mixed_layout"] = [problem]
    for artifact in _ARTIFACTS:
        if artifact in config and config[artifact] is not None and not isinstance(config[artifact], dict):
            sub[artifact] = ["Invalid data. Expected a dictionary."]
    problem = _choice(config["start_recording_on"], START_RECORDING_ON)
    if problem:
        sub["start_recording_on"] = [problem]
    problem = _choice(config["video_mixed_participant_video_when_screenshare"], SCREENSHARE_PLACEMENTS)
    if problem:
        sub["video_mixed_participant_video_when_screenshare"] = [problem]
    if (
        rules.strict_layout_validation
        and config.get("video_separate_png") is not None
        and config["video_mixed_layout"] != "gallery_view_v2"
    ):
        sub.setdefault("video_separate_png", []).append(
            "Only supported with video_mixed_layout='gallery_view_v2'."
        )
    raw_endpoints = config.get("realtime_endpoints", [])
    endpoints: list[Endpoint] = []
    if not isinstance(raw_endpoints, list):
        sub["realtime_endpoints"] = [f'Expected a list of items but got type "{type(raw_endpoints).__name__}".']
    else:
        item_errors: list[dict[str, Any]] = []
        for raw in raw_endpoints:
            endpoint, problems = _validate_endpoint(raw, config, rules, endpoint_ids)
            item_errors.append(problems)
            if endpoint is not None:
                endpoints.append(endpoint)
        if any(item_errors):
            sub["realtime_endpoints"] = item_errors
    errors.nested("recording_config", sub)
    spec.recording_config = config
    spec.endpoints = endpoints


def _validate_endpoint(
    raw: Any, config: dict[str, Any], rules: CreateRules, ids: random.Random
) -> tuple[Endpoint | None, dict[str, Any]]:
    problems: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return None, {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    kind = raw.get("type")
    problem = _choice(kind, ENDPOINT_TYPES) if "type" in raw else REQUIRED
    if problem:
        problems["type"] = [problem]
    nested = isinstance(raw.get("config"), dict)
    if nested and rules.strict_endpoint_shape:
        problems["config"] = [NOT_ALLOWED + " Put url and events on the endpoint itself."]
    source = raw["config"] if nested else raw
    url, events = source.get("url"), source.get("events", [])
    schemes = {"websocket": ("ws", "wss"), "webhook": ("http", "https"), "rtmp": ("rtmp", "rtmps")}.get(
        kind if isinstance(kind, str) else "", ("ws", "wss", "http", "https", "rtmp", "rtmps")
    )
    if url is None:
        problems["url"] = [REQUIRED]
    else:
        problem = _url_error(url, schemes)
        if problem:
            problems["url"] = [problem]
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        problems["events"] = ["Expected a list of event names."]
        events = []
    else:
        bad = [e for e in events if e not in REALTIME_EVENTS]
        if bad:
            problems["events"] = [f'"{e}" is not a valid choice. Allowed: {", ".join(REALTIME_EVENTS)}.' for e in bad]
        else:
            for event in events:
                artifact = EVENT_ARTIFACT[event.split(".")[0]]
                if config.get(artifact) is None:
                    problems.setdefault("events", []).append(
                        f'"{event}" needs recording_config.{artifact} to be enabled (set it to {{}}).'
                    )
    if kind == "rtmp" and config.get("video_mixed_flv") is None:
        problems.setdefault("type", []).append("rtmp endpoints need recording_config.video_mixed_flv to be enabled.")
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        problems["metadata"] = ["Invalid data. Expected a dictionary."]
        metadata = {}
    if problems:
        return None, problems
    endpoint_id = str(uuid.UUID(int=ids.getrandbits(128), version=4))
    return Endpoint(endpoint_id, kind, url, tuple(dict.fromkeys(events)), metadata, nested), {}


def validate_create(body: Any, rules: CreateRules, ids: random.Random) -> BotSpec:
    """A BotSpec from a create request body; ValidationFailed with every field problem otherwise."""
    if not isinstance(body, dict):
        raise ValidationFailed({"non_field_errors": ["Invalid data. Expected a dictionary."]})
    errors = _Errors()
    legacy_given = [name for name in LEGACY_FIELDS if body.get(name) is not None]
    has_config = body.get("recording_config") is not None
    if legacy_given and (rules.reject_legacy_fields or has_config):
        for name in legacy_given:
            errors.add(name, NOT_ALLOWED)
    generation = "v1.11" if has_config or (rules.reject_legacy_fields and not legacy_given) else "v1.10"
    meeting_url = MeetingUrl("", "zoom", "")
    raw_url = body.get("meeting_url")
    if raw_url is None:
        errors.add("meeting_url", REQUIRED)
    elif not isinstance(raw_url, str) or not raw_url.strip():
        message = "Not a valid string." if not isinstance(raw_url, str) else "This field may not be blank."
        errors.add("meeting_url", message)
    else:
        try:
            meeting_url = parse_meeting_url(raw_url)
        except ValueError as exc:
            errors.add("meeting_url", str(exc))
    bot_name = body.get("bot_name", DEFAULT_BOT_NAME)
    if bot_name is None:
        bot_name = DEFAULT_BOT_NAME
    if not isinstance(bot_name, str):
        errors.add("bot_name", "Not a valid string.")
    elif len(bot_name) > BOT_NAME_MAX:
        errors.add("bot_name", f"Ensure this field has no more than {BOT_NAME_MAX} characters.")
    elif not bot_name.strip():
        errors.add("bot_name", "This field may not be blank.")
    join_at = None
    if body.get("join_at") is not None:
        try:
            join_at = parse_datetime(body["join_at"])
        except (ValueError, TypeError, OverflowError):
            errors.add("join_at", "Datetime has wrong format. Use ISO 8601: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|Z].")
    metadata = _validate_metadata(body.get("metadata"), errors)
    automatic_leave = _validate_automatic_leave(body.get("automatic_leave"), errors)
    echoed = {}
    for name in ECHOED_FIELDS:
        if name in body:
            value = body[name]
            if value is not None and not isinstance(value, dict):
                errors.add(name, "Invalid data. Expected a dictionary.")
            echoed[name] = value
    spec = BotSpec(
        generation=generation,
        meeting_url=meeting_url,
        bot_name=bot_name if isinstance(bot_name, str) else DEFAULT_BOT_NAME,
        join_at=join_at,
        metadata=metadata,
        automatic_leave=automatic_leave,
        echoed=echoed,
    )
    if generation == "v1.10":
        _validate_legacy(body, spec, errors)
    elif has_config:
        _validate_recording_config(body["recording_config"], spec, errors, rules, ids)
    else:
        spec.recording_config = dict(_RECORDING_CONFIG_DEFAULTS)
    if errors.errors:
        raise ValidationFailed(errors.errors)
    return spec


# ----- bots ---------------------------------------------------------------------------------------------
@dataclass
class StatusChange:
    code: str
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

    def as_json(self, generation: str, participants_url: str, bot_metadata: dict[str, Any]) -> dict[str, Any]:
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
                "video_mixed": None,
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
    def status(self) -> str:
        return self.status_changes[-1].code

    @property
    def alive(self) -> bool:
        return self.status not in COMPLETED_CODES

    def record_status(self, code: str, now: float, sub_code: str | None = None, message: str | None = None) -> None:
        # created_at never goes backwards, even if the caller's clock does.
        at = max(now, self.status_changes[-1].created_at) if self.status_changes else now
        self.status_changes.append(StatusChange(code, at, sub_code, message))

    def check_can_leave(self) -> None:
        """leave_call is allowed from joining_call to in_call_recording; the rest answer with a coded 400."""
        status = self.status
        if status == "ready":
            raise CommandRejected(
                "cannot_command_unstarted_bot", "Cannot send a command to a bot which has not started yet."
            )
        if status in COMPLETED_CODES or status not in IN_CALL_CODES:
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

    def as_json(self, base_url: str) -> dict[str, Any]:
        spec = self.spec
        participants_url = f"{base_url}/api/v1/bot/{self.id}/participants/"
        recordings = (
            [self.recording.as_json(spec.generation, participants_url, spec.metadata)] if self.recording else []
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
            video_url=None,
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


class IdempotencyConflict(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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
