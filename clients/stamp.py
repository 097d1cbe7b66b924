"""Frame stamp v1: the one wire layout every benchtwin stream paints into its pixels, and its reader.

The layout lives here (not in the emulator kit) because clients must decode stamps from real devices
without importing the emulators; the kit's painter imports these definitions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

__all__ = [
    "STAMP_BITS",
    "STAMP_COLUMNS",
    "STAMP_FIELDS",
    "STAMP_ROWS",
    "STAMP_SYNC",
    "STAMP_VERSION",
    "FrameStamp",
    "StampError",
    "StreamKind",
    "crc8",
    "pack_stamp",
    "read_stamp",
    "stamp_cell_size",
    "unpack_stamp",
]

STAMP_COLUMNS = 16
STAMP_ROWS = 8
STAMP_BITS = STAMP_COLUMNS * STAMP_ROWS  # 128
STAMP_SYNC = 0xA55A
STAMP_VERSION = 1

# (name, width in bits), MSB first, row-major over the 16x8 grid. Row 0 is the sync word.
STAMP_FIELDS: tuple[tuple[str, int], ...] = (
    ("sync", 16),
    ("version", 4),
    ("stream_kind", 4),
    ("stream_id", 16),
    ("frame_index", 32),
    ("capture_time_ms", 48),
    ("crc8", 8),
)
assert sum(width for _, width in STAMP_FIELDS) == STAMP_BITS

# The CRC covers everything between the sync word and the CRC itself: 104 bits = 13 whole bytes.
_CRC_FIRST_BYTE = 2
_CRC_LAST_BYTE = 15  # exclusive


class StreamKind(enum.IntEnum):
    """Registry of the 4-bit `stream_kind` values, one space shared by all emulated devices.

    0 is never painted (it marks "unknown" to readers); 13..15 are reserved for future streams.
    """

    # Misty II (misty.md §3.2): the video WebSocket, AV streaming (RTMP/RTSP), TakePicture.
    MISTY_WEBSOCKET = 1
    MISTY_AV = 2
    MISTY_PICTURE = 3
    # Robopipe depth camera: colour sockets, mono sockets, stereo depth/disparity images.
    DEPTHCAM_COLOR = 4
    DEPTHCAM_MONO = 5
    DEPTHCAM_DEPTH = 6
    # Recall.ai meeting bot: a participant's webcam tile, a screenshare, the speaker view, the mixed layout.
    RECALL_WEBCAM = 7
    RECALL_SCREENSHARE = 8
    RECALL_SPEAKER = 9
    RECALL_MIXED = 10
    # VideoDB RTStream: the synthetic camera feeding an RTStream, a capture session's screen channel.
    VIDEODB_CAMERA = 11
    VIDEODB_SCREEN = 12


_FIELD_LIMITS = {
    "stream_kind": 4,
    "stream_id": 16,
    "frame_index": 32,
    "capture_time_ms": 48,
}


class StampError(ValueError):
    """A frame does not carry a readable v1 frame stamp (no sync, bad CRC, unknown version, too small)."""


@dataclass(frozen=True, slots=True)
class FrameStamp:
    """What one frame says about itself: which stream, which frame, when it was rendered."""

    stream_kind: int
    stream_id: int
    frame_index: int
    capture_time_ms: int

    def __post_init__(self) -> None:
        for name, width in _FIELD_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool):
                raise ValueError(f"frame stamp field {name!r} must be an integer, got {value!r}")
            if not 0 <= int(value) < (1 << width):
                raise ValueError(
                    f"frame stamp field {name!r} must be in 0..{(1 << width) - 1} ({width} bits), got {value}"
                )


def crc8(data: bytes) -> int:
    """CRC-8 with polynomial 0x07, initial value 0, no reflection, no final xor."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def pack_stamp(stamp: FrameStamp) -> bytes:
    """The stamp's 16 bytes in wire order (bit 0 of the grid is the MSB of byte 0)."""
    value = STAMP_SYNC
    value = (value << 4) | STAMP_VERSION
    value = (value << 4) | int(stamp.stream_kind)
    value = (value << 16) | int(stamp.stream_id)
    value = (value << 32) | int(stamp.frame_index)
    value = (value << 48) | int(stamp.capture_time_ms)
    body = value.to_bytes(15, "big")
    return body + bytes([crc8(body[_CRC_FIRST_BYTE:_CRC_LAST_BYTE])])


def unpack_stamp(raw: bytes) -> FrameStamp:
    """Parse 16 stamp bytes, checking sync, CRC and version; raises StampError naming what is wrong."""
    if len(raw) != STAMP_BITS // 8:
        raise StampError(f"a frame stamp is {STAMP_BITS // 8} bytes, got {len(raw)}")
    sync = int.from_bytes(raw[0:2], "big")
    if sync != STAMP_SYNC:
        raise StampError(f"no frame stamp: sync word reads {sync:#06x}, expected {STAMP_SYNC:#06x}")
    expected_crc = crc8(raw[_CRC_FIRST_BYTE:_CRC_LAST_BYTE])
    if raw[15] != expected_crc:
        raise StampError(f"frame stamp CRC mismatch: stamped {raw[15]:#04x}, computed {expected_crc:#04x}")
    version = raw[2] >> 4
    if version != STAMP_VERSION:
        raise StampError(f"unsupported frame stamp version {version}; this reader knows version {STAMP_VERSION}")
    kind = raw[2] & 0x0F
    return FrameStamp(
        stream_kind=StreamKind(kind) if kind in StreamKind._value2member_map_ else kind,
        stream_id=int.from_bytes(raw[3:5], "big"),
        frame_index=int.from_bytes(raw[5:9], "big"),
        capture_time_ms=int.from_bytes(raw[9:15], "big"),
    )


def stamp_cell_size(width: int, height: int) -> int:
    """Cell edge in pixels for a width x height frame: 8 px per 240 px of the short side, at least 8."""
    return 8 * max(1, min(width, height) // 240)


def _as_array(frame: Any) -> np.ndarray:
    """An HxW or HxWxC array from RGB, grey, depth arrays or PyAV frames."""
    if hasattr(frame, "to_ndarray") and hasattr(frame, "planes"):
        # A decoded PyAV VideoFrame: its luma (or grey) plane is what the stamp was painted into.
        frame = frame.to_ndarray(format="gray16le" if frame.format.name.startswith("gray16") else "gray")
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        return array
    if array.ndim != 2:
        raise StampError(f"a frame must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    return array


_SYNC_BITS = np.unpackbits(np.frombuffer(STAMP_SYNC.to_bytes(2, "big"), dtype=np.uint8)).astype(bool)


def _read_cells(array: np.ndarray, cell: int) -> np.ndarray:
    """Mean of each cell's central cell/2 square (over colour channels too), as an 8x16 float array."""
    grid = array[: STAMP_ROWS * cell, : STAMP_COLUMNS * cell]
    grid = grid.reshape(STAMP_ROWS, cell, STAMP_COLUMNS, cell, *array.shape[2:])
    lo, hi = cell // 4, cell - cell // 4
    centres = grid[:, lo:hi, :, lo:hi, ..., :3] if array.ndim == 3 else grid[:, lo:hi, :, lo:hi]
    # The stamp is grey, so an unweighted channel mean is as good as luma for RGB input.
    return cast(np.ndarray, centres.mean(axis=(1, 3, 4) if array.ndim == 3 else (1, 3), dtype=np.float64))


def _read_at(array: np.ndarray, cell: int) -> FrameStamp:
    height, width = array.shape[:2]
    if width < STAMP_COLUMNS * cell or height < STAMP_ROWS * cell:
        raise StampError(
            f"frame {width}x{height} is smaller than a {STAMP_COLUMNS * cell}x{STAMP_ROWS * cell} stamp grid"
        )
    means = _read_cells(array, cell)
    sync_row = means[0]
    one_level = float(sync_row[_SYNC_BITS].mean())
    zero_level = float(sync_row[~_SYNC_BITS].mean())
    # The sync row carries eight 1-cells and eight 0-cells, so it calibrates the threshold for images
    # whose "1" is not 255 (disparity maps paint 1 as 95); a flat area has no contrast and is no stamp.
    if one_level - zero_level < max(8.0, 0.25 * abs(one_level)):
        raise StampError(
            f"no frame stamp: the sync row has no contrast (1-cells {one_level:.1f}, 0-cells {zero_level:.1f},"
            f" cell {cell} px)"
        )
    bits = (means >= (one_level + zero_level) / 2).reshape(-1)
    return unpack_stamp(np.packbits(bits).tobytes())


def read_stamp(frame: Any, *, cell_size: int | None = None) -> FrameStamp:
    """Decode the v1 stamp at the top-left of `frame`; raises StampError with the reason when there is none.

    `frame` is an RGB (HxWx3), grey or depth (HxW) array, a planar YUV array as PyAV returns it (the luma
    rows come first), or a PyAV VideoFrame. The cell size follows from the frame size; when that does not
    read (a YUV array is taller than its picture, a frame was rescaled) the other cell sizes are tried.
    """
    array = _as_array(frame)
    height, width = array.shape[:2]
    if cell_size is not None:
        return _read_at(array, cell_size)
    expected = stamp_cell_size(width, height)
    try:
        return _read_at(array, expected)
    except StampError as first_error:
        for cell in range(8, min(width // STAMP_COLUMNS, height // STAMP_ROWS) + 1, 8):
            if cell == expected:
                continue
            try:
                return _read_at(array, cell)
            except StampError:
                continue
        raise first_error from None
