"""The AV pictures drawn in I420 show the same scene as the RGB scene scaled and converted, and carry the stamp."""

from __future__ import annotations

import av
import numpy as np
import pytest

from clients.stamp import StreamKind, read_stamp, stamp_cell_size
from emulators.kit.stamp import FrameStamp
from emulators.misty.av_picture import AvPicture
from emulators.misty.model import AV_RESOLUTIONS
from emulators.misty.scene import MistyScene


@pytest.mark.parametrize(("width", "height"), AV_RESOLUTIONS)
def test_the_i420_picture_is_the_scene_scaled_with_the_disc_where_it_is(width: int, height: int) -> None:
    scene = MistyScene(seed=4)
    t = 0.37  # the disc is well inside the picture
    picture = AvPicture(scene, width, height).render(t, FrameStamp(StreamKind.MISTY_AV, 9, 11, 1_700_000_000_000))
    assert picture.shape == (height * 3 // 2, width)
    ours = av.VideoFrame.from_ndarray(picture, format="yuv420p").to_ndarray(format="rgb24").astype(int)
    reference = av.VideoFrame.from_ndarray(scene.native_frame(t), format="rgb24").reformat(
        width=width, height=height, format="yuv420p", interpolation="FAST_BILINEAR").to_ndarray(format="rgb24")
    cell = stamp_cell_size(width, height)
    outside_stamp = np.ones((height, width), dtype=bool)
    outside_stamp[: 8 * cell, : 16 * cell] = False
    difference = np.abs(ours - reference.astype(int)).max(axis=2)[outside_stamp]
    # Only the disc's rim may differ (nearest-neighbour mask against a bilinear scaler): under 1 % of pixels.
    assert np.mean(difference > 24) < 0.01
    stamp = read_stamp(ours.astype(np.uint8))
    assert (stamp.stream_kind, stamp.stream_id, stamp.frame_index) == (StreamKind.MISTY_AV, 9, 11)


def test_the_picture_needs_an_even_size() -> None:
    with pytest.raises(ValueError, match="even width and height"):
        AvPicture(MistyScene(0), 641, 480)
