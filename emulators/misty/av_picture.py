"""The AV stream's pictures drawn straight in I420 (yuv420p), the encoder's own pixel format.

The scene's still background is scaled to the stream's size and converted to YUV once, by the same scaler and
colour conversion every frame used to go through. Each frame then copies it, paints the moving disc into the
three planes and the AV stamp into the luma, with neutral chroma under it (the stamp's black and white). No
frame goes through a scaler or an RGB -> YUV conversion: at 640x480 that conversion was 60 % of the video
work, and more at the robot's default 1920x1080.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clients.stamp import STAMP_COLUMNS, STAMP_ROWS
from emulators.kit.stamp import FrameStamp, paint_stamp, stamp_cell_size
from emulators.misty.scene import DISC, NATIVE_HEIGHT, NATIVE_WIDTH, MistyScene, paint_mask

if TYPE_CHECKING:
    import numpy as np

# BT.601 limited range, what the scaler writes for RGB black and white: the stamp's cells in the luma.
LUMA_BLACK, LUMA_WHITE, CHROMA_NEUTRAL = 16, 235, 128


def _to_i420(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGB image scaled to ``width`` x ``height`` and converted, as one (H*3/2, W) I420 array."""
    import av

    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return frame.reformat(width=width, height=height, format="yuv420p", interpolation="FAST_BILINEAR").to_ndarray()


def _scaled_mask(mask: np.ndarray, sy: float, sx: float) -> np.ndarray:
    """``mask`` resized by (sy, sx), nearest neighbour on pixel centres."""
    import numpy as np

    rows = np.minimum((np.arange(max(1, round(mask.shape[0] * sy))) + 0.5) / sy, mask.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(max(1, round(mask.shape[1] * sx))) + 0.5) / sx, mask.shape[1] - 1).astype(int)
    return mask[rows[:, None], cols[None, :]]


def _planes(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a (H*3/2, W) I420 array."""
    height, width = i420.shape[0] * 2 // 3, i420.shape[1]
    flat = i420.reshape(-1)
    luma, quarter = height * width, height * width // 4
    return (flat[:luma].reshape(height, width),
            flat[luma : luma + quarter].reshape(height // 2, width // 2),
            flat[luma + quarter :].reshape(height // 2, width // 2))


class AvPicture:
    """Stamped I420 frames of ``scene`` at ``width`` x ``height`` (both even), the content turned 90° CCW as
    the sensor sees it."""

    def __init__(self, scene: MistyScene, width: int, height: int) -> None:
        import numpy as np

        if width % 2 or height % 2:
            raise ValueError(f"an I420 picture needs an even width and height, got {width}x{height}")
        self.scene, self.width, self.height = scene, width, height
        self._background = _to_i420(scene.native_background, width, height)
        # The disc's colour through the same conversion, read from a flat patch.
        y, u, v = _planes(_to_i420(np.broadcast_to(DISC, (16, 16, 3)).copy(), 16, 16))
        self._disc_yuv = (int(y[8, 8]), int(u[4, 4]), int(v[4, 4]))
        self._sx, self._sy = width / NATIVE_WIDTH, height / NATIVE_HEIGHT
        mask = scene.disc_mask
        self._luma_mask = _scaled_mask(mask, self._sy, self._sx)
        self._chroma_mask = _scaled_mask(mask, self._sy / 2, self._sx / 2)
        cell = stamp_cell_size(width, height)
        self._stamp_size = (STAMP_ROWS * cell, STAMP_COLUMNS * cell)

    def draw(self, t: float) -> np.ndarray:
        """The picture at media time ``t``, unstamped, as one (H*3/2, W) uint8 I420 array (raw I420 as bytes)."""
        frame = self._background.copy()
        y, u, v = _planes(frame)
        disc = self.scene.native_disc(t)
        top, left = (disc.y - disc.radius) * self._sy, (disc.x - disc.radius) * self._sx
        paint_mask(y, self._luma_mask, round(top), round(left), self._disc_yuv[0])
        paint_mask(u, self._chroma_mask, round(top / 2), round(left / 2), self._disc_yuv[1])
        paint_mask(v, self._chroma_mask, round(top / 2), round(left / 2), self._disc_yuv[2])
        return frame

    def render(self, t: float, stamp: FrameStamp) -> np.ndarray:
        """The frame at media time ``t`` with ``stamp`` painted, as one (H*3/2, W) uint8 I420 array."""
        frame = self.draw(t)
        y, u, v = _planes(frame)
        paint_stamp(y, stamp, one_value=LUMA_WHITE, zero_value=LUMA_BLACK)
        rows, cols = self._stamp_size
        u[: rows // 2, : cols // 2] = CHROMA_NEUTRAL
        v[: rows // 2, : cols // 2] = CHROMA_NEUTRAL
        return frame
