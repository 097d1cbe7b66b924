"""The synthetic stereo scene: OAK-D geometry, depth and disparity, stereo shift, and what controls do."""

from __future__ import annotations

import numpy as np
import pytest

from clients.stamp import read_stamp
from emulators.depthcam import media, scene
from emulators.depthcam.camera import Camera, initial_control
from emulators.depthcam.hardware import oak_d
from emulators.depthcam.photometry import Sensor, develop

T0_MS = 1_700_000_000_000  # a capture time where the moving box is at 2.10 - 0.90 = 1.20 m


def depth_camera() -> Camera:
    camera = Camera.boot(oak_d(), 0)
    camera.activate("DEPTH_B_C")
    return camera


def face_centre(view: scene.View, obj: scene.SceneObject, t: float) -> tuple[int, int]:
    u, v = view.project(obj.x_centre, scene.FLOOR_Y - obj.height / 2, obj.z_at(t))
    return int(u), int(v)


def test_oak_d_focal_length_and_baseline_give_the_documented_disparities() -> None:
    assert scene.mono_focal(640) == pytest.approx(441.25)
    assert scene.mono_focal(1280) == pytest.approx(882.5)
    # f*B = 33.09 px*m at 400P: objects 0/1/2 read about 22/13/8 and the wall about 6.
    assert [round(441.25 * 0.075 / z) for z in (1.5, 2.5, 4.0, 6.0)] == [22, 13, 8, 6]


@pytest.mark.parametrize("obj", scene.OBJECTS, ids=lambda o: f"object{o.label}")
def test_each_objects_distance_is_recovered_from_the_emulated_depth_within_2_percent(obj: scene.SceneObject) -> None:
    camera = depth_camera()
    depth = media.depth_map_mm(camera, "DEPTH_B_C", T0_MS)
    assert depth.dtype == np.uint16
    view = media.frame_spec(camera, "DEPTH_B_C", frame_index=0, capture_ms=T0_MS).view
    u, v = face_centre(view, obj, T0_MS / 1000)
    measured_m = float(np.median(depth[v - 2 : v + 3, u - 2 : u + 3])) / 1000.0
    assert measured_m == pytest.approx(obj.z_at(T0_MS / 1000), rel=0.02)


def test_the_disparity_image_is_f_b_over_z_within_one_level_and_never_above_95() -> None:
    camera = depth_camera()
    spec = media.frame_spec(camera, "DEPTH_B_C", frame_index=0, capture_ms=T0_MS)
    disparity = media.render_frame(spec)
    assert disparity.shape == (400, 640)
    assert disparity.max() <= 95
    for obj in scene.OBJECTS:
        u, v = face_centre(spec.view, obj, T0_MS / 1000)
        expected = 441.25 * 0.075 / obj.z_at(T0_MS / 1000)
        assert abs(int(disparity[v, u]) - expected) <= 1
    # Nothing in the scene is nearer than the floor at the bottom edge (1.1 m) or farther than the wall (6 m).
    below_stamp = disparity[64:]
    assert 6 <= below_stamp.min() and below_stamp.max() <= 31


def test_left_and_right_monos_are_shifted_by_the_disparity() -> None:
    camera = Camera.boot(oak_d(), 0)
    obj = scene.OBJECTS[0]
    rows = []
    for stream in ("CAM_B", "CAM_C"):
        spec = media.frame_spec(camera, stream, frame_index=0, capture_ms=T0_MS)
        renderer = scene.renderer(spec.view)
        rows.append(renderer.box_rect(obj, obj.z_front))
    left_edge_b, left_edge_c = rows[0][0], rows[1][0]
    assert left_edge_b - left_edge_c == pytest.approx(441.25 * 0.075 / obj.z_front, abs=1)


def test_the_moving_box_follows_its_eight_second_path() -> None:
    box = scene.MOVING_OBJECT
    assert box.z_at(0.0) == pytest.approx(1.20)
    assert box.z_at(4.0) == pytest.approx(3.00)
    assert box.z_at(2.0) == pytest.approx(2.10)


def test_every_rendered_frame_carries_the_kits_stamp_with_stream_id_and_frame_number() -> None:
    camera = depth_camera()
    for stream, kind in (("CAM_A", 4), ("DEPTH_B_C", 6)):
        spec = media.frame_spec(camera, stream, frame_index=41, capture_ms=T0_MS)
        stamp = read_stamp(media.render_frame(spec))
        assert (int(stamp.stream_kind), stamp.frame_index, stamp.capture_time_ms) == (kind, 41, T0_MS)
        assert stamp.stream_id == media.stamp_stream_id(camera, stream)


# ----- photometry -------------------------------------------------------------------------------------------
def mono_albedo() -> tuple[np.ndarray, float]:
    renderer = scene.renderer(scene.View(-0.0375, 640, 400, scene.mono_focal(640), False))
    return renderer.static_albedo, renderer.mean_albedo


def mean_level(**changes: object) -> float:
    albedo, mean = mono_albedo()
    control = {**initial_control(has_focus=False), **changes}
    return float(develop(albedo, control, Sensor(False, False, 1), mean_albedo=mean, frame_index=0).mean())


def test_manual_exposure_of_10_ms_at_iso_400_gives_a_mean_near_110() -> None:
    assert mean_level(auto_exposure_enable=False, exposure_time=10_000, sensitivity_iso=400) == pytest.approx(
        110, abs=6
    )


def test_exposure_iso_and_brightness_move_the_mean_level() -> None:
    base = mean_level(auto_exposure_enable=False, exposure_time=5_000, sensitivity_iso=400)
    assert mean_level(auto_exposure_enable=False, exposure_time=10_000, sensitivity_iso=400) > base + 30
    assert mean_level(auto_exposure_enable=False, exposure_time=5_000, sensitivity_iso=800) > base + 30
    assert mean_level(auto_exposure_enable=False, exposure_time=5_000, sensitivity_iso=400, brightness=5) == (
        pytest.approx(base + 40, abs=4)
    )


def test_auto_exposure_targets_118_shifted_by_compensation_and_capped_by_its_limit() -> None:
    assert mean_level() == pytest.approx(118, abs=6)
    assert mean_level(auto_exposure_compensation=6) > mean_level() + 60
    assert mean_level(auto_exposure_limit=2_000) < mean_level() / 2


def test_manual_white_balance_below_6500_k_turns_the_picture_blue() -> None:
    renderer = scene.renderer(scene.View(0.0, 640, 360, scene.color_focal(640), True))
    control = {**initial_control(has_focus=True), "auto_whitebalance_mode": "OFF", "manual_whitebalance": 2500}
    image = develop(
        renderer.static_albedo, control, Sensor(True, True, 1), mean_albedo=renderer.mean_albedo, frame_index=0
    )
    red, _, blue = image.reshape(-1, 3).mean(axis=0)
    assert blue > red + 20
