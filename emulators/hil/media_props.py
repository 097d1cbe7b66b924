"""Decoded properties of a binary payload (image, audio, video), so parity compares media by what it is, not bytes."""

from __future__ import annotations

import io
from typing import Any

import av

MEDIA_PREFIXES = ("image/", "audio/", "video/")


def is_media(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower().startswith(MEDIA_PREFIXES)


def decoded_properties(data: bytes) -> dict[str, Any]:
    """Container format and, per stream, codec, size, pixel format, rate, channels and duration.

    Bytes PyAV cannot open are described by their size alone (``payload_bytes``), which is what a raw
    audio or proprietary frame can be compared on.
    """
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError):
        return {"decodable": False, "payload_bytes": len(data)}
    try:
        out: dict[str, Any] = {"format": container.format.name, "streams": []}
        for stream in container.streams:
            ctx = stream.codec_context
            entry: dict[str, Any] = {"type": stream.type, "codec": ctx.name}
            if stream.type == "video":
                entry.update(width=ctx.width, height=ctx.height, pix_fmt=ctx.pix_fmt)
                if stream.average_rate:
                    entry["frame_rate"] = round(float(stream.average_rate), 2)
            elif stream.type == "audio":
                entry.update(sample_rate=ctx.sample_rate, channels=ctx.layout.nb_channels)
            if stream.duration is not None and stream.time_base is not None:
                entry["duration_s"] = round(float(stream.duration * stream.time_base), 1)
            out["streams"].append(entry)
        return out
    finally:
        container.close()
