"""Validator for Recall's legacy binary video frames: header layout, PNG structure and size, timing per stream.

Feed it every binary message of every connection (from the emulator or a real bot); ``finish`` reports each
problem with the connection and frame it was found in. Used by the contract tests and usable on captures.
"""

from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from dataclasses import dataclass, field

from clients.recall_wire import PNG_SIGNATURE, VIDEO_HEADER, WireError, png_dimensions, unpack_video_frame

PERIOD_MS = 500  # 2 fps
SIZE_PRESETS: dict[str, set[tuple[int, int]]] = {
    "seed": {(1280, 720), (256, 144), (1024, 576)},
    "v1.11": {(480, 360), (1280, 720)},
    "sample": {(640, 360), (1280, 720)},
}


def png_problems(png: bytes) -> list[str]:
    """Structural problems of a PNG: signature, chunk lengths and CRCs, IHDR first, IEND last."""
    if not png.startswith(PNG_SIGNATURE):
        return ["payload does not start with the PNG signature"]
    problems, offset, kinds = [], len(PNG_SIGNATURE), []
    while offset < len(png):
        if offset + 8 > len(png):
            problems.append(f"truncated chunk header at byte {offset}")
            break
        length, kind = struct.unpack_from(">I4s", png, offset)
        end = offset + 8 + length + 4
        if end > len(png):
            problems.append(f"chunk {kind!r} at byte {offset} runs past the end")
            break
        body = png[offset + 4 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", png, offset + 8 + length)
        if zlib.crc32(body) != crc:
            problems.append(f"chunk {kind!r} at byte {offset} has a bad CRC")
        kinds.append(kind)
        offset = end
    if not kinds or kinds[0] != b"IHDR":
        problems.append("first chunk is not IHDR")
    if not kinds or kinds[-1] != b"IEND":
        problems.append("last chunk is not IEND")
    return problems


@dataclass
class FrameReport:
    frames: int
    connections: int
    sizes: set[tuple[int, int]]
    fps: dict[int, float]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Stream:
    participant_ids: set[int] = field(default_factory=set)
    timestamps: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)


class FrameValidator:
    """Checks legacy video messages; ``participant_ids`` are the allowed header ids (``{0}`` for speaker_view)."""

    def __init__(
        self,
        *,
        preset: str = "seed",
        participant_ids: set[int] | None = None,
        fps: float = 2.0,
        fps_tolerance: float = 0.3,
        check_stamp: bool = True,
    ) -> None:
        if preset not in SIZE_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(SIZE_PRESETS)}, got {preset!r}")
        self.sizes_allowed = SIZE_PRESETS[preset]
        self.participant_ids = participant_ids
        self.fps = fps
        self.fps_tolerance = fps_tolerance
        self.check_stamp = check_stamp
        self.streams: dict[int, _Stream] = defaultdict(_Stream)
        self.sizes: set[tuple[int, int]] = set()
        self.frames = 0
        self.problems: list[str] = []

    def feed(self, connection: int, received_at: float, message: bytes, *, decode: bool = False) -> None:
        where = f"connection {connection} frame {len(self.streams[connection].timestamps)}"
        self.frames += 1
        if len(message) < VIDEO_HEADER.size + len(PNG_SIGNATURE):
            self.problems.append(f"{where}: {len(message)} bytes is too short for header + PNG")
            return
        frame = unpack_video_frame(message)
        stream = self.streams[connection]
        if self.participant_ids is not None and frame.participant_id not in self.participant_ids:
            self.problems.append(f"{where}: participant_id {frame.participant_id} is not one of "
                                 f"{sorted(self.participant_ids)} (a big-endian reader would see "
                                 f"{int.from_bytes(message[:4], 'big')})")
        stream.participant_ids.add(frame.participant_id)
        if len(stream.participant_ids) > 1:
            self.problems.append(f"{where}: one connection carries several participant ids {stream.participant_ids}")
        if stream.timestamps and frame.timestamp_ms <= stream.timestamps[-1]:
            self.problems.append(f"{where}: timestamp {frame.timestamp_ms} ms is not after {stream.timestamps[-1]} ms")
        stream.timestamps.append(frame.timestamp_ms)
        stream.arrivals.append(received_at)
        for problem in png_problems(frame.png):
            self.problems.append(f"{where}: {problem}")
        try:
            size = png_dimensions(frame.png)
        except WireError as exc:
            self.problems.append(f"{where}: {exc}")
            return
        self.sizes.add(size)
        if size not in self.sizes_allowed:
            self.problems.append(f"{where}: {size[0]}x{size[1]} is not a documented size {sorted(self.sizes_allowed)}")
        if decode and self.check_stamp:
            self._check_stamp(where, frame.participant_id, frame.timestamp_ms, frame.png)

    def _check_stamp(self, where: str, participant_id: int, timestamp_ms: int, png: bytes) -> None:
        from clients.recall import decode_png
        from clients.stamp import StampError, read_stamp

        try:
            stamp = read_stamp(decode_png(png))
        except (StampError, ValueError) as exc:
            self.problems.append(f"{where}: no readable frame stamp ({exc})")
            return
        if participant_id != 0 and stamp.stream_id != participant_id:
            self.problems.append(f"{where}: stamp says participant {stamp.stream_id}, header {participant_id}")
        if stamp.frame_index * PERIOD_MS != timestamp_ms:
            self.problems.append(f"{where}: stamp frame {stamp.frame_index} does not match {timestamp_ms} ms")

    def finish(self) -> FrameReport:
        fps: dict[int, float] = {}
        for connection, stream in self.streams.items():
            if len(stream.arrivals) < 4:
                continue
            span_s = (stream.timestamps[-1] - stream.timestamps[0]) / 1000.0
            if span_s > 0:
                fps[connection] = (len(stream.timestamps) - 1) / span_s
                if abs(fps[connection] - self.fps) > self.fps * self.fps_tolerance:
                    self.problems.append(f"connection {connection}: {fps[connection]:.2f} fps by timestamps, "
                                         f"expected {self.fps} +/- {self.fps_tolerance:.0%}")
            arrival_span = stream.arrivals[-1] - stream.arrivals[0]
            if arrival_span > 0:
                rate = (len(stream.arrivals) - 1) / arrival_span
                if abs(rate - self.fps) > self.fps * self.fps_tolerance:
                    self.problems.append(f"connection {connection}: {rate:.2f} fps on arrival, expected {self.fps}")
        return FrameReport(self.frames, len(self.streams), set(self.sizes), fps, list(self.problems))
