"""Previews of what an emulator is sending, for the dashboard: the latest frame of each video stream and a level
and short waveform of each audio stream.

Senders ``offer`` what they already have (a rendered RGB/grey array, or the JPEG they send): one dict store, no
copy, no encode; a frame is held only while somebody has asked for previews in the last ``WATCHED_S``, so a
hundred streams nobody looks at keep no frames alive. The small JPEG is made only when somebody asks, at most
once per offered frame, and the frame stamp is decoded from the full-size pixels first, so what the page shows
under a preview is read from the frame itself. A stream that has offered nothing for ``STALE_S`` drops out of the list.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

PREVIEW_MAX_SIDE = 320
STALE_S = 5.0
WATCHED_S = 10.0  # frames are kept only while somebody asked for previews this recently
WAVEFORM_POINTS = 64
AUDIO_CHUNKS = 25  # the level and waveform are of the newest chunks (0.5 s of 20 ms chunks)


@dataclass
class _Video:
    frame: Any  # np.ndarray (RGB or grey) or bytes (a JPEG)
    offered: float
    serial: int
    cached_serial: int = -1
    cached: tuple[bytes, dict[str, Any] | None, tuple[int, int]] = (b"", None, (0, 0))
    frames: int = 0
    first: float = field(default_factory=time.monotonic)


@dataclass
class _Audio:
    offered: float
    decode: Callable[[Any], np.ndarray] | None
    chunks: deque[Any] = field(default_factory=lambda: deque(maxlen=AUDIO_CHUNKS))  # small: kept always


class PreviewHub:
    """Per emulator. ``offer_frame``/``offer_audio`` are safe from worker threads."""

    def __init__(self) -> None:
        self._video: dict[str, _Video] = {}
        self._audio: dict[str, _Audio] = {}
        self._lock = threading.Lock()
        self.encodes = 0  # JPEGs made for viewers (0 while nobody looks)
        self._asked = -WATCHED_S  # when a viewer last asked (monotonic)
        self._offers = 0

    # ----- the senders' side: O(1) --------------------------------------------------------------------
    def offer_frame(self, stream: str, frame: Any) -> None:
        """Keep a reference to ``frame`` while somebody watches; otherwise only note that the stream is live (a
        hundred streams nobody previews hold no frames)."""
        now = time.monotonic()
        if now - self._asked > WATCHED_S:
            frame = None
        self._offers += 1
        if self._offers % 1024 == 0:
            self._drop_stale(now)
        entry = self._video.get(stream)
        if entry is None:
            self._video[stream] = _Video(frame, now, 0)
            return
        entry.frame, entry.offered, entry.serial = frame, now, entry.serial + 1
        entry.frames += 1

    def offer_audio(self, stream: str, chunk: Any, decode: Callable[[Any], np.ndarray] | None = None) -> None:
        """One chunk as sent: int16 PCM, or the wire payload with the ``decode`` that gives its int16 PCM (run
        only when somebody asks for the level)."""
        now = time.monotonic()
        entry = self._audio.get(stream)
        if entry is None:
            entry = self._audio[stream] = _Audio(now, decode)
        entry.offered = now
        entry.chunks.append(chunk)

    @property
    def held_frames(self) -> int:
        """Frames kept alive for viewers now (0 while nobody watches)."""
        return sum(1 for entry in list(self._video.values()) if entry.frame is not None)

    def forget(self, stream: str) -> None:
        self._video.pop(stream, None)
        self._audio.pop(stream, None)

    # ----- the viewers' side ------------------------------------------------------------------------------
    def listing(self) -> dict[str, list[dict[str, Any]]]:
        now = time.monotonic()
        self._asked = now
        self._drop_stale(now)
        video = []
        for name, entry in sorted(self._video.items()):
            if entry.frame is None and not entry.cached[0]:
                continue  # live, but offered while nobody watched: listed from its next frame on
            elapsed = max(now - entry.first, 1e-6)
            video.append({"stream": name, "url": f"/_emulator/preview?stream={_quote(name)}",
                          "fps": round(entry.frames / elapsed, 1), "age_s": round(now - entry.offered, 2)})
        audio = [{"stream": name, **self._level(entry), "age_s": round(now - entry.offered, 2)}
                 for name, entry in sorted(self._audio.items())]
        return {"video": video, "audio": audio}

    def streams(self) -> list[str]:
        self._drop_stale(time.monotonic())
        return sorted(self._video)

    def jpeg(self, stream: str) -> tuple[bytes, dict[str, Any] | None, tuple[int, int]] | None:
        """(small JPEG, the stamp decoded from the full frame or None, full size) of the latest frame."""
        self._asked = time.monotonic()
        entry = self._video.get(stream)
        if entry is None:
            return None
        with self._lock:
            if entry.frame is None:  # nobody was watching when it was offered: the next frame will be kept
                return entry.cached if entry.cached[0] else None
            if entry.cached_serial != entry.serial:
                from emulators.kit.preview_render import as_rgb, decoded, read_frame_stamp, shrunk, small_jpeg

                serial, frame = entry.serial, entry.frame
                try:
                    image = decoded(frame)
                except (OSError, ValueError):  # a frame a corrupt fault damaged: keep showing the last good one
                    return entry.cached if entry.cached[0] else None
                # The stamp is read from the full-size pixels (top-left cells).
                stamp = read_frame_stamp(stream, image, entry.offered)
                small = small_jpeg(as_rgb(shrunk(image, PREVIEW_MAX_SIDE)))
                entry.cached = (small, stamp, (int(image.shape[1]), int(image.shape[0])))
                entry.cached_serial = serial
                self.encodes += 1
            return entry.cached

    def _level(self, entry: _Audio) -> dict[str, Any]:
        if not entry.chunks:
            return {"level_dbfs": -120.0, "peak_dbfs": -120.0, "waveform": [0.0] * WAVEFORM_POINTS}
        from emulators.kit.preview_render import audio_level

        return audio_level(list(entry.chunks), entry.decode, WAVEFORM_POINTS)

    def _drop_stale(self, now: float) -> None:
        # Snapshots of the items: senders in other threads may add streams meanwhile.
        for name in [n for n, e in list(self._video.items()) if now - e.offered > STALE_S]:
            self._video.pop(name, None)
        for name in [n for n, a in list(self._audio.items()) if now - a.offered > STALE_S]:
            self._audio.pop(name, None)


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
