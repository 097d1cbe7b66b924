"""Desktop capture sessions: their status machine, request checks, wire shape and ``capture_session.*``
messages. A session's channels (mic, screen, system_audio) are RTStreams; pure rules, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from emulators.videodb.records import RTStream, VideoDBError, bad


class CaptureStatus(StrEnum):
    CREATED = "created"
    STARTING = "starting"
    ACTIVE = "active"
    STOPPING = "stopping"
    STOPPED = "stopped"
    EXPORTED = "exported"
    FAILED = "failed"


CAPTURE_TRANSITIONS: dict[CaptureStatus, frozenset[CaptureStatus]] = {
    CaptureStatus.CREATED: frozenset({CaptureStatus.STARTING, CaptureStatus.FAILED}),
    CaptureStatus.STARTING: frozenset({CaptureStatus.ACTIVE, CaptureStatus.FAILED}),
    CaptureStatus.ACTIVE: frozenset({CaptureStatus.STOPPING, CaptureStatus.FAILED}),
    CaptureStatus.STOPPING: frozenset({CaptureStatus.STOPPED, CaptureStatus.FAILED}),
    CaptureStatus.STOPPED: frozenset({CaptureStatus.EXPORTED, CaptureStatus.FAILED}),
    CaptureStatus.EXPORTED: frozenset(),
    CaptureStatus.FAILED: frozenset(),
}
CAPTURE_CHANNELS = ("mic", "screen", "system_audio")


@dataclass
class CaptureSession:
    id: str
    collection_id: str
    end_user_id: str
    callback_url: str | None
    ws_connection_id: str | None
    metadata: dict[str, Any]
    created_at: float
    status: CaptureStatus = CaptureStatus.CREATED
    channels: dict[str, str] = field(default_factory=dict)  # channel_id -> rtstream id
    exported_video_id: str | None = None

    def move(self, wanted: CaptureStatus) -> CaptureStatus:
        if wanted not in CAPTURE_TRANSITIONS[self.status]:
            raise VideoDBError(
                409, f"Capture session {self.id} cannot go from {self.status} to {wanted}.", "INVALID_STATE"
            )
        self.status = wanted
        return wanted

    def rtstreams(self, streams: dict[str, RTStream]) -> list[dict[str, Any]]:
        out = []
        for channel_id, rtstream_id in self.channels.items():
            stream = streams.get(rtstream_id)
            if stream is not None:
                out.append({"rtstream_id": stream.id, "name": stream.name, "media_types": stream.media_types,
                            "channel_id": channel_id})
        return out

    def wire(self, streams: dict[str, RTStream]) -> dict[str, Any]:
        rtstreams = self.rtstreams(streams)
        return {
            "session_id": self.id,
            "collection_id": self.collection_id,
            "end_user_id": self.end_user_id,
            "status": str(self.status),
            "callback_url": self.callback_url,
            "metadata": self.metadata,
            "channels": [
                {"channel_id": r["channel_id"], "type": "video" if "video" in r["media_types"] else "audio"}
                for r in rtstreams
            ],
            "rtstreams": rtstreams,
            "primary_video_channel_id": "screen" if "screen" in self.channels else None,
            "exported_video_id": self.exported_video_id,
        }

    def message(self, data: dict[str, Any]) -> dict[str, Any]:
        """The ``capture_session.<status>`` message (WebSocket frame and callback body)."""
        return {
            "channel": "capture_session",
            "event": f"capture_session.{self.status}",
            "capture_session_id": self.id,
            "status": str(self.status),
            "data": data,
        }


def session_request(body: dict[str, Any]) -> tuple[str, str | None, str | None, dict[str, Any]]:
    """(end_user_id, callback_url, ws_connection_id, metadata) of ``POST /collection/{cid}/capture/session``."""
    end_user_id = body.get("end_user_id")
    if not isinstance(end_user_id, str) or not end_user_id.strip():
        raise bad("'end_user_id' is required: a non-empty string naming the user whose desktop is captured")
    # The SDK leaves out what it does not have; the vendor document types them without null.
    for key in ("callback_url", "ws_connection_id"):
        if key in body and not isinstance(body[key], str):
            raise bad(f"'{key}' must be a string, got {type(body[key]).__name__}")
    metadata = body.get("metadata")
    if "metadata" in body and not isinstance(metadata, dict):
        raise bad(f"'metadata' must be an object, got {type(metadata).__name__}")
    return end_user_id, body.get("callback_url") or None, body.get("ws_connection_id") or None, metadata or {}


def export_channel(session: CaptureSession, body: dict[str, Any], streams: dict[str, RTStream]) -> str:
    """The RTStream an export records: ``video_channel_id`` if given, else the screen, else the first channel."""
    if session.status != CaptureStatus.STOPPED:
        raise bad(f"The capture session is {session.status}; stop it before exporting")
    wanted = body.get("video_channel_id")
    if wanted is not None:
        if wanted not in session.channels:
            allowed = ", ".join(session.channels) or "none"
            raise bad(f"'video_channel_id' must be one of the session's channels ({allowed}), got {wanted!r}")
        return session.channels[wanted]
    for channel_id in ("screen", *session.channels):
        if channel_id in session.channels and session.channels[channel_id] in streams:
            return session.channels[channel_id]
    raise bad("The capture session has no channel to export")
