"""The viewers' side of previews: decoding, shrinking and JPEG-encoding a frame, and an audio level and waveform.

Separate from ``preview`` so that numpy, Pillow and the stamp reader are imported when somebody first looks at a
preview, not when an emulator starts.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from clients.stamp import StampError, read_stamp


def audio_level(chunks: list[Any], decode: Callable[[Any], np.ndarray] | None, points: int) -> dict[str, Any]:
    """The RMS level, the peak (dBFS) and a ``points``-long waveform of int16 PCM chunks (decoded if need be)."""
    arrays = [decode(c) if decode is not None else np.asarray(c) for c in chunks]
    pcm = np.concatenate(arrays).astype(np.float64) / 32768.0
    rms = float(np.sqrt(np.mean(pcm * pcm))) if pcm.size else 0.0
    peak = float(np.abs(pcm).max()) if pcm.size else 0.0
    slices = np.array_split(pcm, points) if pcm.size >= points else [pcm]
    # Each point is the signed sample of largest magnitude in its slice: the envelope a meter draws.
    wave = [float(p[np.argmax(np.abs(p))]) if p.size else 0.0 for p in slices]
    return {"level_dbfs": _dbfs(rms), "peak_dbfs": _dbfs(peak), "waveform": [round(w, 3) for w in wave]}


def _dbfs(value: float) -> float:
    return round(20 * math.log10(value), 1) if value > 1e-6 else -120.0


def decoded(frame: Any) -> np.ndarray:
    """The frame as an array: a JPEG is decoded, a PyAV frame (an encoder's input) converted to RGB, an array
    used as it is."""
    if hasattr(frame, "to_ndarray"):
        return np.asarray(frame.to_ndarray(format="rgb24"))
    if isinstance(frame, bytes | bytearray | memoryview):
        from PIL import Image

        with Image.open(io.BytesIO(bytes(frame))) as image:
            return np.asarray(image.convert("RGB"))
    return np.asarray(frame)


def shrunk(array: np.ndarray, max_side: int) -> np.ndarray:
    """Every k-th pixel, so the longest side is at most ``max_side`` (a view: no filter, no resampling; a preview
    a few frames a second costs about a millisecond)."""
    step = max(1, -(-max(array.shape[:2]) // max_side))
    return array[::step, ::step]


def as_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        if array.dtype != np.uint8:  # depth (uint16 millimetres): scaled to 8 bits for a look
            top = float(array.max()) or 1.0
            array = (array.astype(np.float32) * (255.0 / top)).astype(np.uint8)
        return np.repeat(array[:, :, None], 3, axis=2)
    return array[:, :, :3]


def read_frame_stamp(stream: str, image: np.ndarray, offered: float) -> dict[str, Any] | None:
    try:
        stamp = read_stamp(image)
    except (StampError, ValueError, IndexError):
        return None
    # Lateness: when the frame was offered (sent) minus when its stamp says it was captured, in wall time.
    sent_ms = (time.time() - (time.monotonic() - offered)) * 1000.0
    return {"stream": stream, "stream_id": stamp.stream_id, "index": stamp.frame_index,
            "lateness_ms": round(sent_ms - stamp.capture_time_ms, 1)}


def small_jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image))
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=70)
    return out.getvalue()
