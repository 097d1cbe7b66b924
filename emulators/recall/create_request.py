"""A bot create request, parsed and validated: meeting URLs, both API generations, endpoints, automatic_leave.

Pure: the answer is a BotSpec or a ValidationFailed carrying the DRF-style ``{field: [message]}`` body.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from clients.recall_wire import REALTIME_EVENTS
from emulators.recall.errors import ValidationFailed

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
PLATFORMS = ("zoom", "google_meet", "microsoft_teams", "webex", "goto_meeting")
ENDPOINT_TYPES = ("websocket", "webhook", "rtmp")
# The real-time webhook endpoints page lists participant and transcript events only; buffers need a websocket.
WEBSOCKET_ONLY_ARTIFACTS = frozenset({"audio_mixed_raw", "audio_separate_raw", "video_separate_png",
                                      "video_separate_h264"})
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
NOT_ALLOWED = "This field is not allowed."
REQUIRED = "This field is required."

# ----- meeting URLs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeetingUrl:
    """A meeting link as the v1.11 API shows it: the platform's own fields (meeting-URLs page) and the platform.
    ``meeting_id`` identifies the meeting inside the emulator for every platform."""

    raw: str
    platform: str
    meeting_id: str
    meeting_password: str | None = None
    fields: dict[str, str | None] | None = None  # Teams and Webex: the page's field set instead of meeting_id

    def as_json(self) -> dict[str, Any]:
        if self.fields is not None:
            return {**self.fields, "platform": self.platform}
        out: dict[str, Any] = {"meeting_id": self.meeting_id}
        if self.platform == "zoom":
            out["meeting_password"] = self.meeting_password
        out["platform"] = self.platform
        return out


_TEAMS_FIELDS = ("meeting_id", "meeting_password", "organizer_id", "tenant_id", "message_id", "thread_id",
                 "business_meeting_id", "business_meeting_password")


def _teams(raw: str, host: str, path: str, query: str) -> MeetingUrl | None:
    """Teams for business (meetup-join thread links, or /meet/<id>?p=) and Teams for personal use (teams.live.com)."""
    fields: dict[str, str | None] = dict.fromkeys(_TEAMS_FIELDS)
    params = parse_qs(query)
    password = params.get("p", [None])[0]
    segments = [unquote(p) for p in path.strip("/").split("/")]
    if host == "teams.live.com":
        if len(segments) != 2 or segments[0] != "meet" or not segments[1]:
            return None
        fields.update(meeting_id=segments[1], meeting_password=password)
    elif len(segments) >= 2 and segments[0] == "meet" and segments[1]:
        fields.update(business_meeting_id=segments[1], business_meeting_password=password)
    elif len(segments) >= 3 and segments[:2] == ["l", "meetup-join"] and segments[2]:
        fields.update(thread_id=segments[2], message_id=segments[3] if len(segments) > 3 else None)
        try:
            context = json.loads(params.get("context", ["{}"])[0])
        except ValueError:
            context = {}
        if isinstance(context, dict):
            fields.update(tenant_id=_str_or_none(context.get("Tid")), organizer_id=_str_or_none(context.get("Oid")))
    else:
        return None
    identity = hashlib.sha1(path.encode()).hexdigest()[:16]
    return MeetingUrl(raw, "microsoft_teams", identity, fields=fields)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _webex(raw: str, host: str, path: str, query: str) -> MeetingUrl | None:
    tail = path.rstrip("/").rsplit("/", 1)[-1] or parse_qs(query).get("MTID", [""])[0]
    if not tail:
        return None
    subdomain = host.removesuffix(".webex.com") if host != "webex.com" else ""
    fields: dict[str, str | None] = {"meeting_subdomain": subdomain,
                                     "meeting_mtid": parse_qs(query).get("MTID", [None])[0],
                                     "meeting_path": path.strip("/")}
    return MeetingUrl(raw, "webex", tail, fields=fields)


_MEET_ID = re.compile(r"^/([a-z]{3}-[a-z]{4}-[a-z]{3})/?$")
_ZOOM_PATH = re.compile(r"^/(?:j|w|s|wc/join|wc)/(\d{9,11})(?:/.*)?$")
# GoTo Meeting: meet.goto.com/<id>, app.goto.com/meeting/<id>, global.gotomeeting.com/join/<id> (9-digit ids).
_GOTO_HOSTS = {"meet.goto.com": "", "app.goto.com": "meeting/", "global.gotomeeting.com": "join/"}
_GOTO_ID = re.compile(r"^\d{9}$")


def parse_meeting_url(raw: str) -> MeetingUrl:
    """The platform and meeting fields of a Zoom, Google Meet, Microsoft Teams, Webex or GoTo Meeting link."""
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
        teams = _teams(raw, host, parts.path, parts.query)
        if teams is not None:
            return teams
    elif host == "webex.com" or host.endswith(".webex.com"):
        webex = _webex(raw, host, parts.path, parts.query)
        if webex is not None:
            return webex
    elif host in _GOTO_HOSTS:
        meeting_id = parts.path.strip("/").removeprefix(_GOTO_HOSTS[host])
        if _GOTO_ID.match(meeting_id):
            return MeetingUrl(raw, "goto_meeting", meeting_id)
    raise ValueError("Meeting URL is not a recognised Zoom, Google Meet, Microsoft Teams, Webex or GoTo Meeting "
                     "link.")


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
    media = [e for e in events if isinstance(e, str) and e.split(".")[0] in WEBSOCKET_ONLY_ARTIFACTS]
    if kind == "webhook" and media:
        problems.setdefault("events", []).extend(
            f'"{e}" is media: webhook endpoints carry participant_events.* and transcript.* only; '
            "use a websocket endpoint." for e in media)
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
