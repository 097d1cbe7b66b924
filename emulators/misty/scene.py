"""Misty's synthetic camera scene: an upright world seen by a sensor mounted 90° counter-clockwise.

Also the WebSocket output geometry (clockwise Rotation, per-axis resize, Overlay box), all pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# The upright scene as a person would see it (misty.md §3.2): 480 wide x 640 high.
UPRIGHT_WIDTH = 480
UPRIGHT_HEIGHT = 640
# What the sensor delivers: the upright scene turned 90° CCW, 640 wide x 480 high.
NATIVE_WIDTH = UPRIGHT_HEIGHT
NATIVE_HEIGHT = UPRIGHT_WIDTH

SKY = np.array([70, 130, 230], dtype=np.uint8)
FLOOR = np.array([60, 160, 70], dtype=np.uint8)
BAR = np.array([220, 30, 30], dtype=np.uint8)
DISC = np.array([255, 255, 255], dtype=np.uint8)
OVERLAY = np.array([0, 255, 0], dtype=np.uint8)

BAR_WIDTH = 24  # upright pixels along the left edge
DISC_RADIUS = 36
DISC_PERIOD_S = 1.0  # the disc crosses the scene once per second


@dataclass(frozen=True)
class Disc:
    """Where the moving disc is in some frame's pixel coordinates (centre x, centre y, radius)."""

    x: float
    y: float
    radius: float


class MistyScene:
    """Deterministic scene renderer; ``seed`` only varies the disc's height so streams are distinguishable."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        rng = np.random.default_rng(seed)
        # The disc runs across the floor, somewhere in the lower half of the upright scene.
        self.disc_row = int(rng.integers(UPRIGHT_HEIGHT // 2 + DISC_RADIUS + 8, UPRIGHT_HEIGHT - DISC_RADIUS - 8))
        upright = np.empty((UPRIGHT_HEIGHT, UPRIGHT_WIDTH, 3), dtype=np.uint8)
        upright[: UPRIGHT_HEIGHT // 2] = SKY
        upright[UPRIGHT_HEIGHT // 2 :] = FLOOR
        upright[:, :BAR_WIDTH] = BAR
        self._upright_background = upright
        self._native_background = np.ascontiguousarray(np.rot90(upright, k=1))
        yy, xx = np.mgrid[-DISC_RADIUS : DISC_RADIUS + 1, -DISC_RADIUS : DISC_RADIUS + 1]
        self._disc_mask = (xx * xx + yy * yy) <= DISC_RADIUS * DISC_RADIUS

    @property
    def native_background(self) -> np.ndarray:
        """The still part of the sensor's picture (shared: copy before drawing on it)."""
        return self._native_background

    @property
    def disc_mask(self) -> np.ndarray:
        """The disc's pixels, a (2r+1)-square boolean mask centred on the disc."""
        return self._disc_mask

    def upright_disc(self, t: float) -> Disc:
        """The disc in upright coordinates at time ``t`` (seconds); it enters left and leaves right each period."""
        phase = (t % DISC_PERIOD_S) / DISC_PERIOD_S
        span = UPRIGHT_WIDTH + 2 * DISC_RADIUS
        return Disc(x=-DISC_RADIUS + phase * span, y=float(self.disc_row), radius=float(DISC_RADIUS))

    def native_disc(self, t: float) -> Disc:
        """The disc in native (sensor) coordinates: upright (x, y) maps to (y, UPRIGHT_WIDTH - 1 - x)."""
        d = self.upright_disc(t)
        return Disc(x=d.y, y=UPRIGHT_WIDTH - 1 - d.x, radius=d.radius)

    def upright_frame(self, t: float) -> np.ndarray:
        """The upright scene (640 rows x 480 cols x RGB) at time ``t``."""
        frame = self._upright_background.copy()
        d = self.upright_disc(t)
        paint_mask(frame, self._disc_mask, round(d.y - d.radius), round(d.x - d.radius), DISC)
        return frame

    def native_frame(self, t: float) -> np.ndarray:
        """What the sensor sees at ``t``: 480 rows x 640 cols x RGB uint8, the upright scene turned 90° CCW."""
        frame = self._native_background.copy()
        d = self.native_disc(t)
        paint_mask(frame, self._disc_mask, round(d.y - d.radius), round(d.x - d.radius), DISC)
        return frame


def paint_mask(frame: np.ndarray, mask: np.ndarray, top: int, left: int, value: np.ndarray | int) -> None:
    """``value`` wherever ``mask`` is set, the mask's top-left corner at (top, left), clipped to the frame (an RGB
    image or one plane of a YUV picture)."""
    h, w = frame.shape[:2]
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(h, top + mask.shape[0]), min(w, left + mask.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    frame[y0:y1, x0:x1][mask[y0 - top : y1 - top, x0 - left : x1 - left]] = value


# ----- WebSocket output geometry -------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _rotation_map(height: int, width: int, degrees: int) -> tuple[int, int, np.ndarray]:
    """Flat gather indices for a clockwise rotation by ``degrees``, canvas expanded to hold the whole image.

    Returns (out_h, out_w, indices); an output pixel that falls off the source points at index
    ``height * width``, one black pixel appended after the source.
    """
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    out_w = math.ceil(abs(width * cos) + abs(height * sin) - 1e-9)
    out_h = math.ceil(abs(width * sin) + abs(height * cos) - 1e-9)
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float64)
    # Pixel centres relative to the output centre, rotated back (counter-clockwise) into the source.
    dx = xx + 0.5 - out_w / 2.0
    dy = yy + 0.5 - out_h / 2.0
    cols = np.floor(cos * dx + sin * dy + width / 2.0).astype(np.int64)
    rows = np.floor(-sin * dx + cos * dy + height / 2.0).astype(np.int64)
    outside = (cols < 0) | (cols >= width) | (rows < 0) | (rows >= height)
    indices = np.where(outside, height * width, rows * width + cols).ravel()
    return out_h, out_w, indices


def _gather(frame: np.ndarray, indices: np.ndarray, out_h: int, out_w: int, *, black_tail: bool) -> np.ndarray:
    """Nearest-neighbour gather of whole RGB pixels (a 3-byte void view is much faster than 2-D indexing)."""
    pixels = np.ascontiguousarray(frame).view(np.dtype((np.void, 3))).reshape(-1)
    if black_tail:
        pixels = np.concatenate([pixels, np.zeros(1, dtype=pixels.dtype)])
    return pixels[indices].view(np.uint8).reshape(out_h, out_w, 3)


def rotate_clockwise(frame: np.ndarray, degrees: int) -> np.ndarray:
    """Turn ``frame`` clockwise by ``degrees`` (0-180); exact for multiples of 90, black-filled otherwise."""
    degrees = int(degrees) % 360
    if degrees == 0:
        return frame
    if degrees % 90 == 0:
        # np.rot90 with negative k turns clockwise.
        return np.ascontiguousarray(np.rot90(frame, k=-(degrees // 90)))
    out_h, out_w, indices = _rotation_map(frame.shape[0], frame.shape[1], degrees)
    return _gather(frame, indices, out_h, out_w, black_tail=True)


def rotated_point(x: float, y: float, width: int, height: int, degrees: int) -> tuple[float, float, int, int]:
    """Where a source point lands after ``rotate_clockwise``; also returns the output (width, height)."""
    theta = math.radians(int(degrees) % 360)
    cos, sin = math.cos(theta), math.sin(theta)
    if int(degrees) % 90 == 0:
        quarter = (int(degrees) // 90) % 4
        out_w, out_h = (width, height) if quarter % 2 == 0 else (height, width)
    else:
        out_w = math.ceil(abs(width * cos) + abs(height * sin) - 1e-9)
        out_h = math.ceil(abs(width * sin) + abs(height * cos) - 1e-9)
    dx, dy = x + 0.5 - width / 2.0, y + 0.5 - height / 2.0
    # Clockwise on screen (y grows downwards): (dx, dy) -> (dx cos - dy sin, dx sin + dy cos).
    ox = cos * dx - sin * dy + out_w / 2.0 - 0.5
    oy = sin * dx + cos * dy + out_h / 2.0 - 0.5
    return ox, oy, out_w, out_h


@lru_cache(maxsize=32)
def _resize_map(height: int, width: int, out_h: int, out_w: int) -> np.ndarray:
    rows = np.minimum(((np.arange(out_h) + 0.5) * height / out_h).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * width / out_w).astype(np.int64), width - 1)
    return (rows[:, None] * width + cols[None, :]).ravel()


def resize_axes(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to ``width`` x ``height`` (nearest neighbour); 0 keeps that axis (Misty's "does not adjust")."""
    h, w = frame.shape[:2]
    out_w = width or w
    out_h = height or h
    if (out_w, out_h) == (w, h):
        return frame
    return _gather(frame, _resize_map(h, w, out_h, out_w), out_h, out_w, black_tail=False)


@lru_cache(maxsize=32)
def _view_map(height: int, width: int, degrees: int, out_w: int, out_h: int) -> tuple[int, int, np.ndarray, bool]:
    """One flat gather map for rotate-then-resize, so a frame is transformed in a single pass.

    Returns (out_h, out_w, indices, needs_black); indices equal to height * width mean "black".
    """
    degrees %= 360
    if degrees % 90 == 0:
        grid = np.rot90(np.arange(height * width, dtype=np.int64).reshape(height, width), k=-(degrees // 90))
        black = False
    else:
        rh, rw, flat = _rotation_map(height, width, degrees)
        grid = flat.reshape(rh, rw)
        black = True
    rh, rw = grid.shape
    out_w = out_w or rw
    out_h = out_h or rh
    rows = np.minimum(((np.arange(out_h) + 0.5) * rh / out_h).astype(np.int64), rh - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * rw / out_w).astype(np.int64), rw - 1)
    return out_h, out_w, np.ascontiguousarray(grid[rows[:, None], cols[None, :]]).ravel(), black


def draw_box(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int, thickness: int = 3) -> None:
    """Draw an axis-aligned overlay rectangle (clipped to the frame) in place."""
    h, w = frame.shape[:2]
    x0, x1 = max(0, min(x0, w - 1)), max(0, min(x1, w - 1))
    y0, y1 = max(0, min(y0, h - 1)), max(0, min(y1, h - 1))
    if x1 <= x0 or y1 <= y0:
        return
    t = thickness
    frame[y0 : y0 + t, x0 : x1 + 1] = OVERLAY
    frame[max(y0, y1 - t + 1) : y1 + 1, x0 : x1 + 1] = OVERLAY
    frame[y0 : y1 + 1, x0 : x0 + t] = OVERLAY
    frame[y0 : y1 + 1, max(x0, x1 - t + 1) : x1 + 1] = OVERLAY


@dataclass(frozen=True)
class WebSocketView:
    """The viewer-facing transform of StartVideoStreaming: Rotation (clockwise), Width/Height, Overlay."""

    rotation: int = 0
    width: int = 0
    height: int = 0
    overlay: bool = False

    def output_size(self) -> tuple[int, int]:
        """(width, height) of the frames this view produces from a native 640x480 sensor frame."""
        _, _, w, h = rotated_point(0, 0, NATIVE_WIDTH, NATIVE_HEIGHT, self.rotation)
        return (self.width or w, self.height or h)

    def render(self, native: np.ndarray, disc: Disc | None = None) -> np.ndarray:
        """Rotate, resize and (with Overlay) box the disc; returns a new C-contiguous RGB array."""
        h, w = native.shape[:2]
        if self.rotation % 360 == 0 and self.width in (0, w) and self.height in (0, h):
            out = native.copy()
        else:
            out_h, out_w, indices, black = _view_map(h, w, self.rotation, self.width, self.height)
            out = _gather(native, indices, out_h, out_w, black_tail=black)
        if self.overlay and disc is not None:
            _, _, rotated_w, rotated_h = rotated_point(0, 0, w, h, self.rotation)
            cx, cy, _, _ = rotated_point(disc.x, disc.y, w, h, self.rotation)
            sx = out.shape[1] / rotated_w
            sy = out.shape[0] / rotated_h
            pad = disc.radius + 6
            draw_box(
                out,
                int((cx - pad) * sx),
                int((cy - pad) * sy),
                int((cx + pad) * sx),
                int((cy + pad) * sy),
            )
        return out


def av_frame(native: np.ndarray, width: int, height: int) -> np.ndarray:
    """AV output: the native (still 90° CCW) picture scaled to width x height."""
    return np.ascontiguousarray(resize_axes(native, width, height))
