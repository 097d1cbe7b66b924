"""Misty's synthetic scene and WebSocket geometry: sensor mounted 90° CCW, Rotation turns clockwise."""

from __future__ import annotations

import numpy as np
import pytest

from emulators.misty.scene import BAR, SKY, MistyScene, WebSocketView, av_frame, rotate_clockwise


def close(pixel, colour):
    return np.abs(pixel.astype(int) - colour.astype(int)).max() < 4


@pytest.fixture(scope="module")
def scene():
    return MistyScene(seed=3)


def test_the_native_frame_is_640_wide_480_high_rgb(scene):
    frame = scene.native_frame(0.25)
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8


def test_the_native_frame_is_the_upright_scene_turned_90_ccw(scene):
    assert np.array_equal(scene.native_frame(0.4), np.rot90(scene.upright_frame(0.4), k=1))


@pytest.mark.parametrize(
    ("rotation", "size", "sky", "bar"),
    [
        (0, (640, 480), (240, 100), (470, 320)),  # sky left, red bar along the bottom
        (90, (480, 640), (100, 240), (320, 5)),  # upright: sky top, bar left
        (180, (640, 480), (240, 540), (5, 320)),  # sky right, bar top
    ],
)
def test_rotation_sizes_and_where_sky_and_bar_land(scene, rotation, size, sky, bar):
    out = WebSocketView(rotation=rotation).render(scene.native_frame(0.0))
    assert (out.shape[1], out.shape[0]) == size
    assert close(out[sky], SKY)
    assert close(out[bar], BAR)


def test_rotation_90_gives_back_the_upright_scene(scene):
    assert np.array_equal(WebSocketView(rotation=90).render(scene.native_frame(0.7)), scene.upright_frame(0.7))


def test_odd_angles_expand_the_canvas_with_black_corners(scene):
    out = rotate_clockwise(scene.native_frame(0.0), 45)
    assert out.shape[0] > 480 and out.shape[1] > 640
    assert (out[0, 0] == 0).all()


def test_width_and_height_resize_each_axis_and_zero_keeps_it(scene):
    native = scene.native_frame(0.0)
    assert WebSocketView(rotation=90, width=500, height=625).render(native).shape == (625, 500, 3)
    assert WebSocketView(width=320).render(native).shape == (480, 320, 3)
    assert WebSocketView(rotation=90, width=500, height=625).output_size() == (500, 625)


def test_overlay_draws_a_green_box_around_the_disc(scene):
    native = scene.native_frame(0.5)
    plain = WebSocketView(rotation=90).render(native, scene.native_disc(0.5))
    boxed = WebSocketView(rotation=90, overlay=True).render(native, scene.native_disc(0.5))
    green = (boxed[:, :, 1] == 255) & (boxed[:, :, 0] == 0) & (boxed[:, :, 2] == 0)
    assert green.sum() > 100 and not np.array_equal(plain, boxed)
    ys, xs = np.nonzero(green)
    disc = scene.upright_disc(0.5)
    assert xs.min() < disc.x < xs.max() and ys.min() < disc.y < ys.max()


def test_the_disc_crosses_once_per_second(scene):
    assert scene.upright_disc(0.1).x < scene.upright_disc(0.6).x
    assert scene.upright_disc(0.1).x == pytest.approx(scene.upright_disc(1.1).x)


def test_av_frames_stay_rotated_ccw_and_are_scaled(scene):
    out = av_frame(scene.native_frame(0.0), 320, 240)
    assert out.shape == (240, 320, 3)
    assert close(out[120, 40], SKY) and close(out[236, 160], BAR)
