"""The VideoDB backend: one account's state and every rule of the RTStream service (validation, statuses and
their transitions, the outage schedule, recordings and the rolling window, indexes, alerts, search, playback).
Pure Python: no I/O, no clock; every mutation takes ``now`` (unix seconds).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, TypeVar

from emulators.videodb import videos
from emulators.videodb.alerts import AlertFiring, explanation, match_event, tokens
from emulators.videodb.capture import (
    CAPTURE_CHANNELS,
    CaptureSession,
    CaptureStatus,
    export_channel,
    session_request,
)
from emulators.videodb.records import (
    INDEX_TRANSITIONS,
    MODEL_TIERS,
    RTSTREAM_TRANSITIONS,
    TRANSCRIPT_TRANSITIONS,
    Alert,
    Collection,
    Event,
    IdMaker,
    IndexStatus,
    Recording,
    RTStream,
    RTStreamStatus,
    SceneIndex,
    SceneRecord,
    Segment,
    TranscriptRecord,
    TranscriptStatus,
    Video,
    VideoDBError,
    bad,
    naive_iso,
)

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://")
MEDIA_TYPES = ("video", "audio")
ORDERING_FIELDS = ("created_at", "name", "status", "updated_at")
SEGMENTERS = ("word", "sentence", "time")
DEFAULT_VISUAL_CONFIG = {"time": 2, "frame_count": 5}
DEFAULT_AUDIO_CONFIG = {"segmenter": "word", "segmentation_value": 10}


class IllegalTransition(VideoDBError):
    """A status change the transition table does not allow (a bug in the caller, answered as 409)."""

    def __init__(self, what: str, current: StrEnum, wanted: StrEnum) -> None:
        super().__init__(409, f"{what} cannot go from {current} to {wanted}.", "INVALID_STATE")


def not_found(what: str) -> VideoDBError:
    return VideoDBError(404, f"{what} not found.", "NOT_FOUND")


S = TypeVar("S", bound=StrEnum)


def checked(what: str, table: dict[S, frozenset[S]], current: S, wanted: S) -> S:
    """``wanted`` if the table allows it from ``current``; raises IllegalTransition otherwise."""
    if wanted not in table[current]:
        raise IllegalTransition(what, current, wanted)
    return wanted


# ----- validation helpers -----------------------------------------------------------------------------
def _int_in(body: dict[str, Any], key: str, lo: int, hi: int, default: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise bad(f"'{key}' must be an integer between {lo} and {hi}, got {value!r}")
    if not lo <= value <= hi:
        raise bad(f"'{key}' must be between {lo} and {hi}, got {value}")
    return int(value)


def _bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(f"'{key}' must be true or false, got {value!r}")
    return value


def _str(body: dict[str, Any], key: str, default: str | None, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bad(f"'{key}' is required")
        return default
    if not isinstance(value, str):
        raise bad(f"'{key}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise bad(f"'{key}' must not be empty")
    return value


def _action(body: dict[str, Any], allowed: tuple[str, ...], key: str = "action") -> str:
    value = body.get(key)
    if value not in allowed:
        raise bad(f"'{key}' must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _positive_int(value: Any, key: str) -> int:
    # Strings are accepted because the service itself returns these values as strings.
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value <= 0:
        raise bad(f"'{key}' in the extraction_config must be a positive integer")
    return int(value)


# ----- the backend ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountRules:
    """The settings that change the backend's decisions (the device reads them from its configuration)."""

    error_after_s: float = 10.0  # outage length after which a connected stream reads error
    report_error: bool = True  # False: never report error (the vendor OpenAPI enum has only connected/stopped)
    rolling_window_s: float = 120.0  # history kept for store=false streams
    max_streams: int = 0  # >0: creating more streams than this answers 402
    empty_search_is_error: bool = True  # the service answers an empty search with 400 "No results found."


@dataclass(frozen=True)
class StreamErrored:
    """``advance`` moved a stream to error: its source stayed down past the grace period."""

    rtstream_id: str
    reason: str


class VideoDBBackend:
    """Everything one account sees, and every rule; the service drives ingest and indexing through it."""

    def __init__(
        self, seed: int, now: float, *, rules: AccountRules | None = None, owner: str = "u-benchtwin"
    ) -> None:
        self.rules = rules or AccountRules()
        self.owner = owner
        self.reset(seed, now)

    def reset(self, seed: int, now: float) -> None:
        """Forget the account: a new seed, only the default collection."""
        self.ids = IdMaker(seed)
        owner = self.owner
        default_id = f"c-{self.ids.uuid4()}"
        self.default_collection_id = default_id
        self.collections: dict[str, Collection] = {
            default_id: Collection(default_id, "Default Collection", "Default collection", owner, now)
        }
        self.streams: dict[str, RTStream] = {}
        self.indexes: dict[str, SceneIndex] = {}
        self.events: dict[str, Event] = {}
        self.alerts: dict[str, Alert] = {}
        self.videos: dict[str, Video] = {}
        self.capture_sessions: dict[str, CaptureSession] = {}
        self.compilations: dict[str, list[tuple[str, list[Segment]]]] = {}  # id -> (rtstream, segments) per shot
        self._outage_reasons: dict[str, str] = {}  # why each stream's current outage began

    # --- collections ---
    def collection(self, collection_id: str) -> Collection:
        if collection_id == "default":
            collection_id = self.default_collection_id
        found = self.collections.get(collection_id)
        if found is None:
            raise not_found("Collection")
        return found

    # --- rtstreams ---
    def create_rtstream(self, body: dict[str, Any], now: float) -> RTStream:
        url = _str(body, "url", None, required=True)
        assert url is not None
        if not url.lower().startswith(URL_SCHEMES):
            raise bad(f"'url' must be an rtsp://, rtsps://, rtmp:// or rtmps:// URL, got {url!r}")
        collection = self.collection(_str(body, "collection_id", "default") or "default")
        name = _str(body, "name", "RTStream") or "RTStream"
        media_types = body.get("media_types", ["video"])
        if media_types is None:
            media_types = ["video"]
        if (
            not isinstance(media_types, list)
            or not media_types
            or any(m not in MEDIA_TYPES for m in media_types)
        ):
            raise bad(f"'media_types' must be a non-empty list of 'video' and/or 'audio', got {media_types!r}")
        if self.rules.max_streams and len(self.streams) >= self.rules.max_streams:
            raise VideoDBError(402, "Insufficient credits to create another RTStream.", "INSUFFICIENT_CREDITS")
        ws = _str(body, "ws_connection_id", None)
        enable_transcript = _bool(body, "enable_transcript", True)
        stream = RTStream(
            id=f"rts-{self.ids.uuid7(now)}",
            name=name,
            collection_id=collection.id,
            url=url,
            media_types=list(dict.fromkeys(media_types)),
            sample_rate=_int_in(body, "sample_rate", 1, 60, 30),
            store=_bool(body, "store", False),
            enable_transcript=enable_transcript,
            ws_connection_id=ws,
            created_at=now,
            updated_at=now,
        )
        if enable_transcript and "audio" in stream.media_types:
            stream.transcript_status = checked(
                "The transcript", TRANSCRIPT_TRANSITIONS, stream.transcript_status, TranscriptStatus.RUNNING
            )
            stream.transcript_created_at = now
            stream.transcript_updated_at = now
        self.streams[stream.id] = stream
        self._open_recording(stream, now)
        return stream

    def rtstream(self, rtstream_id: str) -> RTStream:
        found = self.streams.get(rtstream_id)
        if found is None:
            raise not_found("RTStream")
        return found

    def status_of(self, stream: RTStream, now: float) -> RTStreamStatus:
        return stream.effective_status(now, self.rules.error_after_s, error_status=self.rules.report_error)

    def rtstream_wire(self, stream: RTStream, now: float) -> dict[str, Any]:
        return {
            "id": stream.id,
            "name": stream.name,
            "collection_id": stream.collection_id,
            "created_at": naive_iso(stream.created_at),
            "updated_at": naive_iso(stream.updated_at),
            "sample_rate": stream.sample_rate,
            "status": str(self.status_of(stream, now)),
            "media_types": stream.media_types,
            "store": stream.store,
            "enable_transcript": stream.enable_transcript,
            "url": stream.url,
            "channel_id": None,
            "stream_url": stream.stream_url,
            "player_url": stream.player_url,
        }

    def list_rtstreams(self, query: dict[str, str], now: float) -> tuple[list[RTStream], int]:
        limit = _query_int(query, "limit", 10, 1, 1000)
        offset = _query_int(query, "offset", 0, 0, 10**9)
        status = query.get("status")
        if status is not None and status not in RTStreamStatus.__members__.values():
            raise bad(f"'status' must be one of connected, stopped, error, got {status!r}")
        name = query.get("name")
        ordering = query.get("ordering") or "-created_at"
        key = ordering.lstrip("-")
        if key not in ORDERING_FIELDS or ordering.count("-") > 1:
            allowed = ", ".join(ORDERING_FIELDS)
            raise bad(f"'ordering' must be one of {allowed}, optionally prefixed with '-', got {ordering!r}")
        items = list(self.streams.values())
        if status:
            items = [s for s in items if self.status_of(s, now) == status]
        if name:
            items = [s for s in items if name.lower() in s.name.lower()]
        items.sort(key=lambda s: (getattr(s, key), s.id), reverse=ordering.startswith("-"))
        return items[offset : offset + limit], len(items)

    def update_rtstream(self, rtstream_id: str, body: dict[str, Any], now: float) -> RTStream:
        stream = self.rtstream(rtstream_id)
        if "name" in body:
            stream.name = _str(body, "name", stream.name, required=True) or stream.name
        if "sample_rate" in body:
            stream.sample_rate = _int_in(body, "sample_rate", 1, 60, stream.sample_rate)
        stream.updated_at = now
        return stream

    def set_rtstream_status(self, rtstream_id: str, body: dict[str, Any], now: float) -> tuple[RTStream, bool]:
        """Start or stop; returns whether anything changed (both are idempotent)."""
        stream = self.rtstream(rtstream_id)
        action = _action(body, ("start", "stop"))
        if action == "stop":
            if not stream.live:
                return stream, False
            self._move(stream, RTStreamStatus.STOPPED)
            stream.receiving = False
            recording = stream.current_recording
            if recording is not None:
                recording.ended_at = now
            stream.updated_at = now
            return stream, True
        if stream.live:
            return stream, False
        self._move(stream, RTStreamStatus.CONNECTED)
        stream.updated_at = now
        self._open_recording(stream, now)
        return stream, True

    def _move(self, stream: RTStream, wanted: RTStreamStatus) -> None:
        stream.status = checked(f"RTStream {stream.id}", RTSTREAM_TRANSITIONS, stream.status, wanted)
        if wanted != RTStreamStatus.ERROR:
            # Connected again or stopped: the outage (if any) is over.
            stream.source_down_since = None
            self._outage_reasons.pop(stream.id, None)

    def _open_recording(self, stream: RTStream, now: float) -> None:
        # Without store the service still keeps a rolling window for live playback, but never exports it.
        stream.recordings.append(Recording(number=len(stream.recordings) + 1, started_at=now))

    # --- ingest signals and the outage schedule ---
    def source_receiving(self, rtstream_id: str, now: float) -> None:
        stream = self.rtstream(rtstream_id)
        stream.receiving = True
        if stream.status == RTStreamStatus.ERROR:
            self._move(stream, RTStreamStatus.CONNECTED)
        stream.source_down_since = None
        self._outage_reasons.pop(stream.id, None)

    def source_down(self, rtstream_id: str, now: float, reason: str = "") -> None:
        stream = self.rtstream(rtstream_id)
        stream.receiving = False
        if stream.source_down_since is None:
            stream.source_down_since = now
            self._outage_reasons[stream.id] = reason

    def advance(self, now: float) -> list[StreamErrored]:
        """Move every connected stream whose outage outlasted the grace period to error (once per outage)."""
        changes = []
        for stream in self.streams.values():
            if self._outage_due(stream) and stream.outage_expired(now, self.rules.error_after_s):
                self._move(stream, RTStreamStatus.ERROR)
                changes.append(StreamErrored(stream.id, self._outage_reasons.get(stream.id, "")))
        return changes

    def next_wakeup(self) -> float | None:
        """When ``advance`` next has something to do: the earliest end of a running grace period."""
        due = [
            s.source_down_since + self.rules.error_after_s
            for s in self.streams.values()
            if self._outage_due(s) and s.source_down_since is not None
        ]
        return min(due, default=None)

    def _outage_due(self, stream: RTStream) -> bool:
        return self.rules.report_error and stream.status == RTStreamStatus.CONNECTED and (
            stream.source_down_since is not None
        )

    def file_segment(self, rtstream_id: str, segment: Segment) -> list[Segment] | None:
        """File a finished segment; returns the segments that fell out of a store=false stream's rolling window
        (whose files the service deletes), or None when the segment's recording is gone (reset).
        """
        stream = self.streams.get(rtstream_id)
        if stream is None:
            return None
        stream.next_sequence = max(stream.next_sequence, segment.sequence + 1)
        if not self.add_segment(rtstream_id, segment):
            return None
        if stream.store:
            return []
        # Without store the service keeps only a rolling window for live playback.
        horizon = segment.end - self.rules.rolling_window_s
        expired: list[Segment] = []
        for recording in stream.recordings:
            expired += [s for s in recording.segments if s.end < horizon]
            recording.segments = [s for s in recording.segments if s.end >= horizon]
        return expired

    def add_segment(self, rtstream_id: str, segment: Segment) -> bool:
        """File a finished segment under its recording; False when that recording is gone (reset)."""
        stream = self.streams.get(rtstream_id)
        if stream is None:
            return False
        for recording in stream.recordings:
            if recording.number == segment.recording:
                recording.segments.append(segment)
                return True
        return False

    # --- playback and export ---
    def segments_in(self, rtstream_id: str, start: float, end: float) -> list[Segment]:
        """Every segment overlapping [start, end], untrimmed, in time order."""
        stream = self.rtstream(rtstream_id)
        return [s for s in stream.all_segments() if s.end > start and s.start < end]

    def export(self, rtstream_id: str, name: str | None, now: float) -> tuple[Video, bool]:
        """The latest completed recording as a video; returns (video, created)."""
        stream = self.rtstream(rtstream_id)
        if name is not None and not isinstance(name, str):
            raise bad(f"'name' must be a string, got {type(name).__name__}")
        if not stream.store:
            raise bad("No recordings available: the stream was connected with store=false")
        if stream.live:
            raise bad("No recordings available. Stop the stream before exporting.")
        completed = [r for r in stream.recordings if r.ended_at is not None and r.segments]
        if not completed:
            raise bad("No recordings available")
        recording = completed[-1]
        if recording.video_id is not None and recording.video_id in self.videos:
            return self.videos[recording.video_id], False
        video = Video(
            id=f"m-{self.ids.uuid7(now)}",
            name=name or f"{stream.name} - Recording",
            collection_id=stream.collection_id,
            rtstream_id=stream.id,
            recording=recording.number,
            length=recording.duration,
            window_start=recording.segments[0].start,
            window_end=recording.segments[-1].end,
            created_at=now,
        )
        recording.video_id = video.id
        self.videos[video.id] = video
        return video, True

    def video(self, video_id: str) -> Video:
        found = self.videos.get(video_id)
        if found is None:
            raise not_found("Video")
        return found

    def index_video(self, video_id: str, body: dict[str, Any], heard: list[TranscriptRecord] | None = None) -> Video:
        """``index_spoken_words``: the video's utterances, from its stream's transcript for the window, else from
        ``heard`` (the speech the service found in the recording's own audio)."""
        video = self.check_index_request(video_id, body)
        words = videos.spoken_words(video, self.rtstream(video.rtstream_id).transcripts)
        video.spoken_words = words or videos.spoken_words(video, heard or [])
        return video

    def check_index_request(self, video_id: str, body: dict[str, Any]) -> Video:
        """Refuse a bad ``index_spoken_words`` body, or indexing again without ``force``."""
        video = self.video(video_id)
        _, force = videos.spoken_index_request(body)
        if video.spoken_words is not None and not force:
            raise bad("Spoken word index for video already exists; pass force=true to index it again")
        return video

    def transcribed(self, video_id: str) -> bool:
        """Whether the stream's transcript covers the video (else its own audio is listened to)."""
        video = self.video(video_id)
        return bool(videos.spoken_words(video, self.rtstream(video.rtstream_id).transcripts))

    def video_files(self, video_id: str) -> list[tuple[str, float]]:
        """The recorded segment files of a video (relative to its stream's directory) with their start times."""
        video = self.video(video_id)
        segments = self.segments_in(video.rtstream_id, video.window_start, video.window_end)
        return [(s.file, s.start) for s in segments if s.recording == video.recording]

    def search_video(self, video_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return videos.search_video(self.video(video_id), videos.search_request(body))

    def compile(self, body: Any, now: float) -> str:
        """``POST /compile``: the shots' recorded segments, in shot order, as one playlist; returns its id."""
        pieces = []
        for shot in videos.compile_request(body):
            video = self.video(shot.video_id)
            start, end = videos.clip(video, shot)
            segments = [s for s in self.segments_in(video.rtstream_id, start, end) if s.recording == video.recording]
            if not segments:
                raise VideoDBError(404, f"No recording of {video.id} covers {shot.start}-{shot.end} s.", "NOT_FOUND")
            pieces.append((video.rtstream_id, segments))
        compilation_id = f"cmp-{self.ids.uuid7(now)}"
        self.compilations[compilation_id] = pieces
        return compilation_id

    def compilation(self, compilation_id: str) -> list[tuple[str, list[Segment]]]:
        found = self.compilations.get(compilation_id)
        if found is None:
            raise VideoDBError(404, "Compiled stream not found.", "NOT_FOUND")
        return found

    # --- scene indexes ---
    def create_index(self, rtstream_id: str, body: dict[str, Any], now: float) -> SceneIndex:
        stream = self.rtstream(rtstream_id)
        extraction_type = body.get("extraction_type", "time")
        if extraction_type not in ("time", "transcript"):
            raise bad(f"'extraction_type' must be 'time' or 'transcript', got {extraction_type!r}")
        raw_config = body.get("extraction_config")
        if raw_config is not None and not isinstance(raw_config, dict):
            raise bad(f"'extraction_config' must be an object or null, got {type(raw_config).__name__}")
        config: dict[str, Any]
        if extraction_type == "time":
            config = dict(DEFAULT_VISUAL_CONFIG)
            for key in ("time", "frame_count"):
                if raw_config and raw_config.get(key) is not None:
                    config[key] = _positive_int(raw_config[key], key)
            if config["frame_count"] > 60:
                raise bad("'frame_count' in the extraction_config must be at most 60")
            default_prompt = "Describe the scene"
        else:
            config = dict(DEFAULT_AUDIO_CONFIG)
            if raw_config:
                segmenter = raw_config.get("segmenter")
                if segmenter is not None:
                    if segmenter not in SEGMENTERS:
                        raise bad(f"'segmenter' must be one of {', '.join(SEGMENTERS)}, got {segmenter!r}")
                    config["segmenter"] = segmenter
                if raw_config.get("segmentation_value") is not None:
                    config["segmentation_value"] = _positive_int(
                        raw_config["segmentation_value"], "segmentation_value"
                    )
            default_prompt = "Summarize the content"
        model_name = body.get("model_name")
        if model_name is not None and (not isinstance(model_name, str) or not model_name.strip()):
            raise bad(
                f"'model_name' must be a non-empty string: a tier ({', '.join(MODEL_TIERS)}) or a model name such "
                f"as GPT4o (answered as a tier), got {model_name!r}"
            )
        model_config = body.get("model_config")
        if model_config is None:
            model_config = {}
        if not isinstance(model_config, dict):
            raise bad(f"'model_config' must be an object, got {type(model_config).__name__}")
        index = SceneIndex(
            id=self.ids.hex16(),
            rtstream_id=stream.id,
            extraction_type=extraction_type,
            extraction_config=config,
            prompt=_str(body, "prompt", default_prompt) or default_prompt,
            name=_str(body, "name", None) or ("Visual Index" if extraction_type == "time" else "Audio Index"),
            model_name=model_name,
            model_config=model_config,
            ws_connection_id=_str(body, "ws_connection_id", None) or stream.ws_connection_id,
            sandbox_id=_str(body, "sandbox_id", None),
            created_at=now,
        )
        self.indexes[index.id] = index
        return index

    def index(self, rtstream_id: str, index_id: str) -> SceneIndex:
        self.rtstream(rtstream_id)
        found = self.indexes.get(index_id)
        if found is None or found.rtstream_id != rtstream_id:
            raise not_found("Scene index")
        return found

    def indexes_of(self, rtstream_id: str) -> list[SceneIndex]:
        self.rtstream(rtstream_id)
        return [i for i in self.indexes.values() if i.rtstream_id == rtstream_id]

    def set_index_status(self, rtstream_id: str, index_id: str, body: dict[str, Any]) -> SceneIndex:
        index = self.index(rtstream_id, index_id)
        wanted = IndexStatus.RUNNING if _action(body, ("start", "stop")) == "start" else IndexStatus.STOPPED
        index.status = checked(f"Scene index {index.id}", INDEX_TRANSITIONS, index.status, wanted)
        return index

    def update_index_prompt(self, rtstream_id: str, index_id: str, body: dict[str, Any]) -> SceneIndex:
        index = self.index(rtstream_id, index_id)
        index.prompt = _str(body, "prompt", None, required=True) or index.prompt
        return index

    def scenes(self, rtstream_id: str, index_id: str, query: dict[str, str]) -> tuple[list[SceneRecord], bool]:
        index = self.index(rtstream_id, index_id)
        page = _query_int(query, "page", 1, 1, 10**6)
        page_size = _query_int(query, "page_size", 100, 1, 1000)
        start = _query_float(query, "start")
        end = _query_float(query, "end")
        if start is not None and end is not None and start >= end:
            raise bad(f"'start' must be before 'end', got start={start} end={end}")
        records = [
            r
            for r in index.records
            if (start is None or r.end > start) and (end is None or r.start < end)
        ]
        records.sort(key=lambda r: r.start, reverse=True)  # newest first, as the service answers
        first = (page - 1) * page_size
        return records[first : first + page_size], len(records) > first + page_size

    def add_scene_record(
        self, index: SceneIndex, record: SceneRecord, now: float, *, urls: tuple[str, str]
    ) -> list[AlertFiring]:
        """File a record and return the alerts it fires (enabled alerts on this index only)."""
        index.records.append(record)
        stream = self.streams[index.rtstream_id]
        firings = []
        for alert in self.alerts.values():
            if alert.index_id != index.id or not alert.enabled:
                continue
            event = self.events.get(alert.event_id)
            if event is None:
                continue
            match = match_event(event.prompt, record.description)
            if not match.fires:
                continue
            firings.append(
                AlertFiring(
                    alert_id=alert.id,
                    event_id=event.id,
                    label=event.label,
                    rtstream_id=stream.id,
                    rtstream_name=stream.name,
                    index_id=index.id,
                    callback_url=alert.callback_url or None,
                    ws_connection_id=alert.ws_connection_id or index.ws_connection_id,
                    text=record.description,
                    confidence=match.confidence,
                    explanation=explanation(event.label, match, record.description),
                    timestamp=now,
                    start=record.start,
                    end=record.end,
                    stream_url=urls[0],
                    player_url=urls[1],
                )
            )
        return firings

    # --- events and alerts ---
    def create_event(self, body: dict[str, Any], now: float) -> Event:
        prompt = _str(body, "event_prompt", None, required=True)
        label = _str(body, "label", None, required=True)
        assert prompt is not None and label is not None
        event = Event(self.ids.hex16(), prompt, label, now)
        self.events[event.id] = event
        return event

    def create_alert(self, rtstream_id: str, index_id: str, body: dict[str, Any]) -> Alert:
        index = self.index(rtstream_id, index_id)
        event_id = _str(body, "event_id", None, required=True)
        if event_id not in self.events:
            raise not_found("Event")
        callback_url = body.get("callback_url")
        if callback_url is not None and not isinstance(callback_url, str):
            raise bad(f"'callback_url' must be a URL string, \"\" or null, got {type(callback_url).__name__}")
        if callback_url and not re.fullmatch(r"https?://.+", callback_url, re.DOTALL):
            raise bad(f"'callback_url' must be an http:// or https:// URL, got {callback_url!r}")
        alert = Alert(
            id=self.ids.hex16(),
            rtstream_id=rtstream_id,
            index_id=index.id,
            event_id=str(event_id),
            callback_url=callback_url or None,
            ws_connection_id=_str(body, "ws_connection_id", None),
        )
        self.alerts[alert.id] = alert
        return alert

    def alerts_of(self, rtstream_id: str, index_id: str) -> list[Alert]:
        self.index(rtstream_id, index_id)
        return [a for a in self.alerts.values() if a.index_id == index_id]

    def set_alert_status(self, rtstream_id: str, index_id: str, alert_id: str, body: dict[str, Any]) -> Alert:
        self.index(rtstream_id, index_id)
        alert = self.alerts.get(alert_id)
        if alert is None or alert.index_id != index_id:
            raise not_found("Alert")
        # The SDK sends {"action": "enable"}; the vendor's OpenAPI documents {"status": "enabled"}.
        if "action" in body:
            alert.enabled = _action(body, ("enable", "disable")) == "enable"
        elif "status" in body:
            alert.enabled = _action(body, ("enabled", "disabled"), key="status") == "enabled"
        else:
            raise bad("'action' is required: one of enable, disable")
        return alert

    def alert_wire(self, alert: Alert) -> dict[str, Any]:
        event = self.events.get(alert.event_id)
        return {
            "alert_id": alert.id,
            "event_id": alert.event_id,
            "prompt": event.prompt if event else None,
            "label": event.label if event else None,
            "callback_url": alert.callback_url,
            "status": "enabled" if alert.enabled else "disabled",
        }

    # --- transcription ---
    def transcription_action(self, rtstream_id: str, body: dict[str, Any], now: float) -> RTStream:
        stream = self.rtstream(rtstream_id)
        action = _action(body, ("start", "stop"))
        # The Node SDK sends mode on stop; it changes nothing here but must be one of its values.
        if body.get("mode") is not None and body["mode"] not in ("graceful", "force"):
            raise bad(f"'mode' must be one of graceful, force, got {body['mode']!r}")
        engine = _str(body, "engine", None)
        if engine:
            stream.transcript_engine = engine
        wanted = TranscriptStatus.RUNNING if action == "start" else TranscriptStatus.STOPPED
        stream.transcript_status = checked("The transcript", TRANSCRIPT_TRANSITIONS, stream.transcript_status, wanted)
        if action == "start":
            stream.transcript_ws_connection_id = _str(body, "ws_connection_id", None) or stream.ws_connection_id
            if stream.transcript_created_at is None:
                stream.transcript_created_at = now
        stream.transcript_updated_at = now
        return stream

    def transcripts(self, rtstream_id: str, query: dict[str, str]) -> dict[str, Any]:
        stream = self.rtstream(rtstream_id)
        page = _query_int(query, "page", 1, 1, 10**6)
        page_size = _query_int(query, "page_size", 100, 1, 1000)
        start = _query_float(query, "start")
        end = _query_float(query, "end")
        since = _query_float(query, "since")
        records = [
            r
            for r in stream.transcripts
            if (start is None or r.end > start)
            and (end is None or r.start < end)
            and (since is None or r.start > since)
        ]
        first = (page - 1) * page_size
        return {
            "transcription_records": [r.wire() for r in records[first : first + page_size]],
            "next_page": len(records) > first + page_size,
            "total_count": len(records),
            "page": page,
            "page_size": page_size,
        }

    # --- search ---
    def search(
        self, body: dict[str, Any], *, rtstream_ids: list[str], empty_is_error: bool
    ) -> list[dict[str, Any]]:
        query = _str(body, "query", None, required=True)
        assert query is not None
        index_id = _str(body, "scene_index_id", None)
        limit = _int_in(body, "result_threshold", 1, 1000, 10)
        threshold = body.get("score_threshold")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
            raise bad(f"'score_threshold' must be a number, got {threshold!r}")
        dynamic = body.get("dynamic_score_percentage", 20)
        if dynamic is not None and (isinstance(dynamic, bool) or not isinstance(dynamic, int | float)):
            raise bad(f"'dynamic_score_percentage' must be a number, got {dynamic!r}")
        filters = body.get("filter", [])
        if filters is not None and not isinstance(filters, list):
            raise bad(f"'filter' must be a list, got {type(filters).__name__}")
        wanted = set(tokens(query))
        results: list[dict[str, Any]] = []
        for rts_id in rtstream_ids:
            stream = self.streams[rts_id]
            candidates: list[tuple[str | None, str | None, float, float, str]] = []
            for index in self.indexes_of(rts_id):
                if index_id and index.id != index_id:
                    continue
                candidates += [(index.id, index.name, r.start, r.end, r.description) for r in index.records]
            if not index_id:
                candidates += [(None, None, r.start, r.end, r.text) for r in stream.transcripts]
            for cand_index, cand_name, start, end, text in candidates:
                have = set(tokens(text))
                if not wanted or not have:
                    continue
                score = round(len(wanted & have) / len(wanted), 4)
                if score <= 0 or (threshold is not None and score < float(threshold)):
                    continue
                results.append(
                    {
                        "rtstream_id": stream.id,
                        "rtstream_name": stream.name,
                        "start": start,
                        "end": end,
                        "text": text,
                        "score": score,
                        "scene_index_id": cand_index,
                        "scene_index_name": cand_name,
                        "metadata": {},
                    }
                )
        results.sort(key=lambda r: (-r["score"], -r["start"]))
        if results and dynamic:
            # Keep results within dynamic_score_percentage of the best score, like the service's cut-off.
            floor = results[0]["score"] * (1 - float(dynamic) / 100.0)
            results = [r for r in results if r["score"] >= floor]
        results = results[:limit]
        if not results and empty_is_error:
            raise bad("No results found.")
        return results

    def search_rtstream(self, rtstream_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        stream = self.rtstream(rtstream_id)
        return self.search(body, rtstream_ids=[stream.id], empty_is_error=self.rules.empty_search_is_error)

    def search_collection(self, collection_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        collection = self.collection(collection_id)
        ids = [s.id for s in self.streams.values() if s.collection_id == collection.id]
        return self.search(body, rtstream_ids=ids, empty_is_error=self.rules.empty_search_is_error)

    # --- what the indexing pipeline feeds ---
    def media_wanted(self, rtstream_id: str) -> tuple[bool, bool]:
        """(decoded frames, decoded audio): what the running indexes and the transcript of a stream need."""
        stream = self.rtstream(rtstream_id)
        running = [i for i in self.indexes_of(rtstream_id) if i.status == IndexStatus.RUNNING]
        frames = any(i.is_visual for i in running)
        audio = stream.transcript_status == TranscriptStatus.RUNNING or any(not i.is_visual for i in running)
        return frames, audio

    def running_indexes(self, rtstream_id: str, *, visual: bool) -> list[SceneIndex]:
        return [
            i
            for i in self.indexes.values()
            if i.rtstream_id == rtstream_id and i.is_visual == visual and i.status == IndexStatus.RUNNING
        ]

    def file_transcript(self, rtstream_id: str, record: TranscriptRecord) -> bool:
        """Keep an utterance while transcription runs; returns whether it was kept (and so is delivered)."""
        stream = self.rtstream(rtstream_id)
        if stream.transcript_status != TranscriptStatus.RUNNING:
            return False
        stream.transcripts.append(record)
        return True

    def scripted_visual(self, rtstream_id: str, offset: float) -> str | None:
        """The scripted description in force ``offset`` seconds after the stream's first frame, if any."""
        chosen = None
        for entry in self.rtstream(rtstream_id).script.get("visual") or []:
            if float(entry["at"]) <= offset + 1e-6:
                chosen = str(entry["text"])
        return chosen

    def set_script(self, rtstream_id: str, visual: list[dict[str, Any]], speech: list[str]) -> None:
        self.rtstream(rtstream_id).script = {"visual": sorted(visual, key=lambda v: v["at"]), "speech": speech}

    # --- playback ---
    def stream_window(self, query: dict[str, str]) -> tuple[float, float] | None:
        """The ``start``/``end`` of a generate_stream request: both or neither (None: the live edge)."""
        start = _query_float(query, "start")
        end = _query_float(query, "end")
        if start is None and end is None:
            return None
        if start is None or end is None:
            raise bad("'start' and 'end' must be given together (unix seconds)")
        if start >= end:
            raise bad(f"'start' must be before 'end', got start={start} end={end}")
        return start, end

    def set_playback_urls(self, rtstream_id: str, stream_url: str, player_url: str) -> RTStream:
        stream = self.rtstream(rtstream_id)
        stream.stream_url = stream_url
        stream.player_url = player_url
        return stream

    def live_edge(self, rtstream_id: str) -> list[Segment]:
        """The live playlist: the last six segments of the recording in progress."""
        stream = self.rtstream(rtstream_id)
        current = stream.current_recording
        segments = current.segments[-6:] if current is not None and stream.live else []
        if not segments:
            raise VideoDBError(404, "No recording covers this time range.", "NOT_FOUND")
        return segments

    def window_playlist(self, rtstream_id: str, start: float, end: float, now: float) -> tuple[list[Segment], bool]:
        """The segments of a window and whether it is still growing (its end is ahead and the stream live)."""
        stream = self.rtstream(rtstream_id)
        segments = self.segments_in(stream.id, start, end)
        if not segments:
            raise VideoDBError(404, "No recording covers this time range.", "NOT_FOUND")
        return segments, end > now and stream.live

    def segment_file(self, rtstream_id: str, recording: int, sequence: int) -> str:
        """The file (relative to the stream's directory) of one recorded segment."""
        for segment in self.rtstream(rtstream_id).all_segments():
            if segment.recording == recording and segment.sequence == sequence:
                return segment.file
        raise VideoDBError(404, "Segment not found.", "NOT_FOUND")

    # --- capture sessions ---
    def create_capture_session(self, collection_id: str, body: dict[str, Any], now: float) -> CaptureSession:
        """``POST /collection/{cid}/capture/session``: a session waiting for its desktop client (``created``)."""
        collection = self.collection(collection_id)
        end_user_id, callback_url, ws_connection_id, metadata = session_request(body)
        session = CaptureSession(
            id=f"cap-{self.ids.uuid7(now)}", collection_id=collection.id, end_user_id=end_user_id,
            callback_url=callback_url, ws_connection_id=ws_connection_id, metadata=metadata, created_at=now,
        )
        self.capture_sessions[session.id] = session
        return session

    def start_capture(self, session_id: str, channels: dict[str, str]) -> list[CaptureStatus]:
        """The desktop client started streaming: its channels are these RTStreams; created -> starting -> active."""
        session = self.capture_session_by_id(session_id)
        for channel_id, rtstream_id in channels.items():
            if channel_id not in CAPTURE_CHANNELS:
                raise bad(f"A capture channel is one of {', '.join(CAPTURE_CHANNELS)}, got {channel_id!r}")
            self.rtstream(rtstream_id)
        moved = [session.move(CaptureStatus.STARTING)]
        session.channels = dict(channels)
        moved.append(session.move(CaptureStatus.ACTIVE))
        return moved

    def stop_capture(self, session_id: str) -> list[CaptureStatus]:
        """active -> stopping -> stopped (the service stops the channels' RTStreams in between)."""
        session = self.capture_session_by_id(session_id)
        return [session.move(CaptureStatus.STOPPING), session.move(CaptureStatus.STOPPED)]

    def export_capture(self, collection_id: str, session_id: str, body: dict[str, Any], now: float) -> Video:
        """A stopped session's video channel as a video; the session is then ``exported`` (repeats answer it)."""
        session = self.capture_session(collection_id, session_id)
        if session.status == CaptureStatus.EXPORTED and session.exported_video_id in self.videos:
            return self.videos[session.exported_video_id]
        rtstream_id = export_channel(session, body, self.streams)
        video, _ = self.export(rtstream_id, None, now)
        session.exported_video_id = video.id
        session.move(CaptureStatus.EXPORTED)
        return video

    def capture_session_by_id(self, session_id: str) -> CaptureSession:
        session = self.capture_sessions.get(session_id)
        if session is None:
            raise VideoDBError(404, "Capture session not found.", "NOT_FOUND")
        return session

    def capture_sessions_of(self, collection_id: str, status: str | None) -> list[CaptureSession]:
        collection = self.collection(collection_id)
        if status is not None and status not in CaptureStatus.__members__.values():
            raise bad(f"'status' must be one of {', '.join(CaptureStatus)}, got {status!r}")
        sessions = [s for s in self.capture_sessions.values() if s.collection_id == collection.id]
        return [s for s in sessions if s.status == status] if status else sessions

    def capture_session(self, collection_id: str, session_id: str) -> CaptureSession:
        collection = self.collection(collection_id)
        session = self.capture_sessions.get(session_id)
        if session is None or session.collection_id != collection.id:
            raise VideoDBError(404, "Capture session not found.", "NOT_FOUND")
        return session

    # --- persistence ---
    def snapshot(self) -> dict[str, Any]:
        return {
            "default_collection_id": self.default_collection_id,
            "collections": [asdict(c) for c in self.collections.values()],
            "streams": [asdict(s) for s in self.streams.values()],
            "indexes": [asdict(i) for i in self.indexes.values()],
            "events": [asdict(e) for e in self.events.values()],
            "alerts": [asdict(a) for a in self.alerts.values()],
            "videos": [asdict(v) for v in self.videos.values()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.default_collection_id = data["default_collection_id"]
        self.collections = {c["id"]: Collection(**c) for c in data["collections"]}
        self.streams = {}
        for raw in data["streams"]:
            raw = dict(raw)
            recordings = [
                Recording(**{**r, "segments": [Segment(**s) for s in r["segments"]]}) for r in raw.pop("recordings")
            ]
            transcripts = [TranscriptRecord(**t) for t in raw.pop("transcripts")]
            stream = RTStream(**raw, recordings=recordings, transcripts=transcripts)
            stream.status = RTStreamStatus(stream.status)
            stream.transcript_status = TranscriptStatus(stream.transcript_status)
            # Whatever was being recorded when the process ended is closed at its last segment.
            for recording in stream.recordings:
                if recording.ended_at is None:
                    recording.ended_at = recording.segments[-1].end if recording.segments else recording.started_at
            stream.receiving = False
            self.streams[stream.id] = stream
        self.indexes = {}
        for raw in data["indexes"]:
            raw = dict(raw)
            records = [SceneRecord(**r) for r in raw.pop("records")]
            index = SceneIndex(**raw, records=records)
            index.status = IndexStatus(index.status)
            self.indexes[index.id] = index
        self.events = {e["id"]: Event(**e) for e in data["events"]}
        self.alerts = {a["id"]: Alert(**a) for a in data["alerts"]}
        self.videos = {v["id"]: Video(**v) for v in data["videos"]}

    def recorded_files(self) -> dict[str, set[str]]:
        """Every stream's segment files (relative to its directory) that the account lists."""
        return {s.id: {segment.file for segment in s.all_segments()} for s in self.streams.values()}

    def resume_after_restart(self, now: float) -> list[RTStream]:
        """Streams that were live when the process ended keep pulling, each into a new recording."""
        resumed = []
        for stream in self.streams.values():
            if not stream.live:
                continue
            if stream.status == RTStreamStatus.ERROR:
                self._move(stream, RTStreamStatus.CONNECTED)
            stream.source_down_since = None
            self._open_recording(stream, now)
            resumed.append(stream)
        return resumed


def _query_int(query: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad(f"'{key}' must be an integer between {lo} and {hi}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise bad(f"'{key}' must be between {lo} and {hi}, got {value}")
    return value


def _query_float(query: dict[str, str], key: str) -> float | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise bad(f"'{key}' must be a unix time in seconds, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or not 0 <= value < 1e11:
        raise bad(f"'{key}' must be a unix time in seconds, got {raw!r}")
    return value
