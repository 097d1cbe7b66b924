"""VideoDB's records and statuses: collections, rtstreams, recordings and segments, scene indexes, transcripts,
events, alerts and videos, the status enums with their transition tables, and the seeded id formats. Pure data.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def naive_iso(unix_s: float) -> str:
    """``2025-05-27T13:07:38.758741``: UTC without offset, microseconds always present."""
    return datetime.fromtimestamp(unix_s, UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


class VideoDBError(Exception):
    """A request the service refuses; rendered as ``{"success": false, "message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str, error_code: str = "INVALID_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


def bad(message: str) -> VideoDBError:
    return VideoDBError(400, message)


# ----- statuses -----------------------------------------------------------------------------------------
class RTStreamStatus(StrEnum):
    CONNECTED = "connected"  # pulling (or retrying) the source
    ERROR = "error"  # still pulling, but the source has been down longer than the grace period
    STOPPED = "stopped"


RTSTREAM_TRANSITIONS: dict[RTStreamStatus, frozenset[RTStreamStatus]] = {
    RTStreamStatus.CONNECTED: frozenset({RTStreamStatus.ERROR, RTStreamStatus.STOPPED}),
    RTStreamStatus.ERROR: frozenset({RTStreamStatus.CONNECTED, RTStreamStatus.STOPPED}),
    RTStreamStatus.STOPPED: frozenset({RTStreamStatus.CONNECTED}),
}


class IndexStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


INDEX_TRANSITIONS: dict[IndexStatus, frozenset[IndexStatus]] = {
    IndexStatus.RUNNING: frozenset({IndexStatus.RUNNING, IndexStatus.STOPPED}),  # start/stop are idempotent
    IndexStatus.STOPPED: frozenset({IndexStatus.RUNNING, IndexStatus.STOPPED}),
}


class TranscriptStatus(StrEnum):
    NOT_CONFIGURED = "not_configured"
    RUNNING = "running"
    STOPPED = "stopped"


TRANSCRIPT_TRANSITIONS: dict[TranscriptStatus, frozenset[TranscriptStatus]] = {
    # Once configured, a transcript never returns to not_configured.
    TranscriptStatus.NOT_CONFIGURED: frozenset({TranscriptStatus.RUNNING, TranscriptStatus.STOPPED}),
    TranscriptStatus.RUNNING: frozenset({TranscriptStatus.RUNNING, TranscriptStatus.STOPPED}),
    TranscriptStatus.STOPPED: frozenset({TranscriptStatus.RUNNING, TranscriptStatus.STOPPED}),
}


# ----- records ----------------------------------------------------------------------------------------
@dataclass
class Collection:
    id: str
    name: str
    description: str
    owner: str
    created_at: float

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "is_public": False,
            "owner": self.owner,
            "created_at": naive_iso(self.created_at),
        }


@dataclass
class Segment:
    """One MPEG-TS file of a recording; ``start`` is the wall time of its first packet."""

    recording: int
    sequence: int
    start: float
    duration: float
    file: str  # relative to the stream's data directory
    discontinuity: bool = False  # first segment after a source reconnect

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass
class Recording:
    number: int
    started_at: float
    ended_at: float | None = None
    segments: list[Segment] = field(default_factory=list)
    video_id: str | None = None

    @property
    def duration(self) -> float:
        return round(sum(s.duration for s in self.segments), 3)


@dataclass
class SceneRecord:
    start: float
    end: float
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class TranscriptRecord:
    start: float
    end: float
    text: str
    word_timestamps: list[dict[str, Any]] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "word_timestamps": self.word_timestamps}


MODEL_TIERS = ("mini", "basic", "pro", "ultra")
# Words in a model's name that place it in a tier; checked in this order, the first match wins.
_TIER_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mini", ("mini", "nano", "small", "lite", "flash", "haiku", "tiny")),
    ("ultra", ("ultra", "opus", "o1", "o3", "max", "large")),
    ("pro", ("pro", "gpt4", "gpt-4", "4o", "sonnet", "medium")),
)


def model_tier(model_name: str) -> str:
    """The VideoDB tier (mini/basic/pro/ultra) a model name is answered with: a tier as itself, any other name
    by the words in it (``GPT4o`` -> pro, ``gpt-4o-mini`` -> mini), else basic."""
    name = model_name.strip().lower()
    if name in MODEL_TIERS:
        return name
    for tier, words in _TIER_WORDS:
        if any(word in name for word in words):
            return tier
    return "basic"


@dataclass
class SceneIndex:
    id: str
    rtstream_id: str
    extraction_type: str  # "time" (visual) or "transcript" (audio)
    extraction_config: dict[str, Any]
    prompt: str
    name: str
    model_name: str | None
    model_config: dict[str, Any]
    ws_connection_id: str | None
    sandbox_id: str | None
    created_at: float
    status: IndexStatus = IndexStatus.RUNNING
    records: list[SceneRecord] = field(default_factory=list)

    @property
    def is_visual(self) -> bool:
        return self.extraction_type == "time"

    def wire(self, *, native_config: bool = False) -> dict[str, Any]:
        config = self.extraction_config
        if not native_config:
            # The real service returns config values as strings ("5", "2").
            config = {k: str(v) for k, v in config.items()}
        out = {
            "rtstream_index_id": self.id,
            "extraction_type": self.extraction_type,
            "extraction_config": config,
            "prompt": self.prompt,
            "name": self.name,
            "status": self.status,
        }
        if self.sandbox_id:
            out["sandbox_id"] = self.sandbox_id
        if self.model_name:
            tier = model_tier(self.model_name)
            out["model_name"] = self.model_name
            out["model_tier"] = tier
            if self.model_name.lower() != tier:
                out["model_note"] = f"{self.model_name!r} is not a VideoDB tier; it is answered as the {tier!r} tier"
        return out


@dataclass
class Event:
    id: str
    prompt: str
    label: str
    created_at: float

    def wire(self) -> dict[str, Any]:
        return {"event_id": self.id, "event_prompt": self.prompt, "label": self.label}


@dataclass
class Alert:
    id: str
    rtstream_id: str
    index_id: str
    event_id: str
    callback_url: str | None
    ws_connection_id: str | None
    enabled: bool = True


@dataclass
class Video:
    id: str
    name: str
    collection_id: str
    rtstream_id: str
    recording: int
    length: float
    window_start: float
    window_end: float
    created_at: float
    spoken_words: list[dict[str, Any]] | None = None  # {start, end, text} in video time once indexed


@dataclass
class RTStream:
    id: str
    name: str
    collection_id: str
    url: str
    media_types: list[str]
    sample_rate: int
    store: bool
    enable_transcript: bool
    ws_connection_id: str | None
    created_at: float
    updated_at: float
    status: RTStreamStatus = RTStreamStatus.CONNECTED
    source_down_since: float | None = None
    receiving: bool = False
    stream_url: str | None = None
    player_url: str | None = None
    recordings: list[Recording] = field(default_factory=list)
    next_sequence: int = 0
    transcript_status: TranscriptStatus = TranscriptStatus.NOT_CONFIGURED
    transcript_engine: str = "default"
    transcript_ws_connection_id: str | None = None
    transcript_created_at: float | None = None
    transcript_updated_at: float | None = None
    transcripts: list[TranscriptRecord] = field(default_factory=list)
    script: dict[str, Any] = field(default_factory=dict)

    def effective_status(self, now: float, error_after_s: float, *, error_status: bool = True) -> RTStreamStatus:
        """The status a reader sees at ``now``: error as soon as the grace period has run out, even before the
        backend's ``advance`` has moved the stored status; connected instead of error when error is not reported.
        """
        if not self.live:
            return self.status
        if not error_status:
            return RTStreamStatus.CONNECTED
        if self.status == RTStreamStatus.ERROR or self.outage_expired(now, error_after_s):
            return RTStreamStatus.ERROR
        return RTStreamStatus.CONNECTED

    def outage_expired(self, now: float, error_after_s: float) -> bool:
        return self.source_down_since is not None and now - self.source_down_since >= error_after_s

    @property
    def live(self) -> bool:
        """Connected or in error: the service is pulling (or retrying) the source."""
        return self.status != RTStreamStatus.STOPPED

    @property
    def current_recording(self) -> Recording | None:
        if self.recordings and self.recordings[-1].ended_at is None:
            return self.recordings[-1]
        return None

    def all_segments(self) -> list[Segment]:
        return [s for r in self.recordings for s in r.segments]


# ----- ids --------------------------------------------------------------------------------------------
class IdMaker:
    """Seeded ids in the service's formats: ``rts-``+UUIDv7, 16 lowercase hex, ``m-``+UUIDv7, ``c-``+UUID."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def uuid7(self, now: float) -> str:
        ms = int(now * 1000) & ((1 << 48) - 1)
        rand = self._rng.getrandbits(74)
        value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
        return str(uuid.UUID(int=value))

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def hex16(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"
