"""Paints the v1 frame stamp (layout defined once in clients.stamp) into rendered frames.

Every emulator paints it last, on the final frame, so any consumer can check identity, order, drops and
latency from pixels alone with clients.stamp.read_stamp.
"""

from __future__ import annotations

import numpy as np

from clients.stamp import (
    STAMP_BITS,
    STAMP_COLUMNS,
    STAMP_ROWS,
    FrameStamp,
    StampError,
    StreamKind,
    pack_stamp,
    read_stamp,
    stamp_cell_size,
)

__all__ = [
    "FrameStamp",
    "StampError",
    "StreamKind",
    "paint_stamp",
    "read_stamp",
    "stamp_bits",
    "stamp_cell_size",
]


def stamp_bits(stamp: FrameStamp) -> np.ndarray:
    """The stamp's 128 bits (uint8 0/1) in grid order: row-major over 16 columns x 8 rows, MSB first."""
    bits = np.unpackbits(np.frombuffer(pack_stamp(stamp), dtype=np.uint8))
    assert bits.size == STAMP_BITS
    return bits


def paint_stamp(
    frame: np.ndarray, stamp: FrameStamp, *, one_value: int = 255, zero_value: int = 0
) -> np.ndarray:
    """Paint `stamp` in place into the top-left of `frame` and return the frame.

    `frame` is HxWx3 uint8 (RGB), HxW uint8 (grey, luma) or HxW uint16 (depth). Disparity images pass
    `one_value=95`; readers calibrate on the sync row, so any clear contrast decodes.
    """
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3):
        raise ValueError(f"frame must be HxWx3 (RGB) or HxW (grey/depth), got shape {frame.shape}")
    if frame.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"frame dtype must be uint8 or uint16, got {frame.dtype}")
    limit = np.iinfo(frame.dtype).max
    for name, value in (("one_value", one_value), ("zero_value", zero_value)):
        if not 0 <= value <= limit:
            raise ValueError(f"{name} must be in 0..{limit} for a {frame.dtype} frame, got {value}")
    height, width = frame.shape[:2]
    cell = stamp_cell_size(width, height)
    if width < STAMP_COLUMNS * cell or height < STAMP_ROWS * cell:
        raise ValueError(
            f"frame {width}x{height} is too small for the frame stamp: it needs at least "
            f"{STAMP_COLUMNS * cell}x{STAMP_ROWS * cell} px"
        )
    channels = frame.shape[2:]  # () for grey/depth, (3,) for RGB
    levels = np.empty((2, *channels), dtype=frame.dtype)
    levels[0], levels[1] = zero_value, one_value
    # One pixel row per stamp row, then broadcast down the cell height: every copy has a contiguous inner
    # dimension, which keeps painting a 720p stamp in tens of microseconds.
    stamp_rows = levels[stamp_bits(stamp).reshape(STAMP_ROWS, STAMP_COLUMNS)].repeat(cell, axis=1)
    region = frame[: STAMP_ROWS * cell, : STAMP_COLUMNS * cell]
    region.reshape(STAMP_ROWS, cell, STAMP_COLUMNS * cell, *channels)[...] = stamp_rows[:, None]
    return frame
