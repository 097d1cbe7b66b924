"""Recall.ai wire formats: the legacy binary frame headers, hello messages and v1.11 event envelopes.

One definition of each format, imported by the emulator, the reference client and the contract validator.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Legacy video/audio frames: uint32 LE participant_id, then (video only) uint32 LE ms since the video start.
VIDEO_HEADER = struct.Struct("<II")
AUDIO_PARTICIPANT_PREFIX = struct.Struct("<I")
PROTOCOL_VERSION = 1

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">I4sII")  # chunk length, type, width, height

# Audio: raw signed 16-bit little-endian PCM, mono, 16 kHz (legacy and v1.11 alike).
AUDIO_SAMPLE_RATE = 16_000
AUDIO_SAMPLE_WIDTH = 2

REALTIME_EVENTS = (
    "participant_events.join",
    "participant_events.leave",
    "participant_events.update",
    "participant_events.speech_on",
    "participant_events.speech_off",
    "participant_events.webcam_on",
    "participant_events.webcam_off",
    "participant_events.screenshare_on",
    "participant_events.screenshare_off",
    "participant_events.chat_message",
    "transcript.data",
    "transcript.partial_data",
    "audio_mixed_raw.data",
    "audio_separate_raw.data",
    "video_separate_png.data",
)


class WireError(ValueError):
    """A message does not follow the documented layout; the text says which part."""


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One legacy binary video message, split into its parts."""

    participant_id: int
    timestamp_ms: int
    png: bytes


def pack_video_frame(participant_id: int, timestamp_ms: int, png: bytes) -> bytes:
    return VIDEO_HEADER.pack(participant_id, timestamp_ms & 0xFFFFFFFF) + png


def unpack_video_frame(message: bytes) -> VideoFrame:
    if len(message) < VIDEO_HEADER.size:
        raise WireError(f"a video message has an 8-byte header, got {len(message)} bytes")
    participant_id, timestamp_ms = VIDEO_HEADER.unpack_from(message)
    return VideoFrame(participant_id, timestamp_ms, bytes(message[VIDEO_HEADER.size :]))


def png_dimensions(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; WireError when it is not a PNG."""
    if not png.startswith(PNG_SIGNATURE):
        raise WireError(f"payload does not start with the PNG signature (got {bytes(png[:8])!r})")
    if len(png) < len(PNG_SIGNATURE) + _IHDR.size:
        raise WireError("PNG is too short to hold an IHDR chunk")
    _length, kind, width, height = _IHDR.unpack_from(png, len(PNG_SIGNATURE))
    if kind != b"IHDR":
        raise WireError(f"first PNG chunk is {kind!r}, expected b'IHDR'")
    return width, height


def video_hello(bot_id: str) -> str:
    return json.dumps({"protocol_version": PROTOCOL_VERSION, "bot_id": bot_id})


def audio_hello(bot_id: str, recording_id: str | None, *, separate_streams: bool, offset_s: float) -> str:
    hello: dict[str, Any] = {"protocol_version": PROTOCOL_VERSION, "bot_id": bot_id}
    if not separate_streams:
        hello["recording_id"] = recording_id
    hello["separate_streams"] = separate_streams
    hello["offset"] = round(float(offset_s), 3)
    return json.dumps(hello)


def pack_audio_chunk(pcm: bytes, participant_id: int | None = None) -> bytes:
    if participant_id is None:
        return pcm
    return AUDIO_PARTICIPANT_PREFIX.pack(participant_id) + pcm


def unpack_audio_chunk(message: bytes, *, separate_streams: bool) -> tuple[int | None, bytes]:
    if not separate_streams:
        return None, bytes(message)
    if len(message) < AUDIO_PARTICIPANT_PREFIX.size:
        raise WireError(f"a separate-streams audio message has a 4-byte prefix, got {len(message)} bytes")
    (participant_id,) = AUDIO_PARTICIPANT_PREFIX.unpack_from(message)
    return participant_id, bytes(message[AUDIO_PARTICIPANT_PREFIX.size :])


def speaker_timeline_message(name: str | None, user_id: int | None, timestamp_s: float) -> str:
    return json.dumps({"name": name, "user_id": user_id, "timestamp": round(timestamp_s, 3)})


def iso_utc(unix_s: float) -> str:
    """ISO-8601 in UTC with microseconds and a ``Z``."""
    moment = datetime.fromtimestamp(unix_s, UTC)
    # strftime's %Y does not zero-pad years before 1000 on every platform; RFC 3339 needs four digits.
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.%fZ")


def event_timestamp(relative_s: float, absolute_unix_s: float) -> dict[str, Any]:
    return {"relative": round(relative_s, 6), "absolute": iso_utc(absolute_unix_s)}


def participant_payload(
    participant_id: int, name: str | None, *, is_host: bool, platform: str | None, email: str | None = None
) -> dict[str, Any]:
    return {
        "id": participant_id,
        "name": name,
        "is_host": is_host,
        "platform": platform,
        "extra_data": {},
        "email": email,
    }


def resource_ref(resource_id: str | None, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": resource_id, "metadata": dict(metadata or {})}


def realtime_event(event: str, data: dict[str, Any], resources: dict[str, dict[str, Any] | None]) -> str:
    """A v1.11 realtime endpoint message: ``{"event", "data": {"data": ..., <resource>: {id, metadata}}}``."""
    return json.dumps({"event": event, "data": {"data": data, **resources}}, separators=(",", ":"))


def png_event_data(png: bytes, *, kind: str, participant: dict[str, Any], timestamp: dict[str, Any]) -> dict[str, Any]:
    return {
        "buffer": base64.b64encode(png).decode("ascii"),
        "timestamp": timestamp,
        "type": kind,
        "participant": participant,
    }


def audio_event_data(
    pcm: bytes, *, timestamp: dict[str, Any], participant: dict[str, Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {"buffer": base64.b64encode(pcm).decode("ascii"), "timestamp": timestamp}
    if participant is not None:
        data["participant"] = participant
    return data


def parse_realtime_event(text: str | bytes) -> tuple[str, dict[str, Any]]:
    """(event name, data envelope) of a v1.11 message; WireError when the envelope is wrong."""
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise WireError(f"realtime message is not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise WireError("realtime message must be an object with a string 'event'")
    data = message.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise WireError("realtime message must carry 'data': {'data': {...}, ...}")
    return message["event"], data
