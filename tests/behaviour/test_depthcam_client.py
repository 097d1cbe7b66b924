"""The reference client against the emulator: exclusivity, stills with the stamp, controls that change the
picture, depth from disparity, and NN detections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import numpy as np
import pytest

from clients.depthcam import DepthCamera, RobopipeError
from clients.stamp import StreamKind, read_stamp
from contracts.asyncapi import validate_message
from emulators.depthcam import scene
from emulators.depthcam.device import DepthCamEmulator
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

MXID = "14442C10D13EABCE00"
COLOR_720P = {
    "resolution": "THE_720_P",
    "still_size": [1280, 720],
    "preview_size": [300, 300],
    "video_size": [640, 360],
    "sensor_crop": [0.0, 0.0],
    "fps": 30.0,
}


@pytest.fixture
async def emulator() -> AsyncIterator[DepthCamEmulator]:
    async with DepthCamEmulator(egress=EGRESS, settings={"port": 0}) as emu:
        yield emu


@pytest.fixture
async def camera(emulator: DepthCamEmulator) -> AsyncIterator[DepthCamera]:
    async with DepthCamera(emulator.url(), MXID) as cam:
        yield cam


def luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) if image.ndim == 2 else image.astype(np.float32).mean(axis=2)


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian below the stamp (192 px tall at 720P): high for crisp edges, low when blurred."""
    grey = luma(image)[200:, :]
    laplacian = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(laplacian.var())


# ----- exclusivity through the client -------------------------------------------------------------------------
async def test_the_client_sees_depth_take_its_sensors_and_a_sensor_take_back_the_pair(camera: DepthCamera) -> None:
    await camera.activate("DEPTH_B_C")
    assert await camera.streams() == {"CAM_A": True, "CAM_B": False, "CAM_C": False, "DEPTH_B_C": True}
    await camera.activate("CAM_B")
    assert await camera.streams() == {"CAM_A": True, "CAM_B": True, "CAM_C": False, "DEPTH_B_C": False}


async def test_the_client_sees_deactivating_depth_leave_its_sensors_off(camera: DepthCamera) -> None:
    await camera.activate("DEPTH_B_C")
    await camera.deactivate("DEPTH_B_C")
    assert await camera.streams() == {"CAM_A": True, "CAM_B": False, "CAM_C": False, "DEPTH_B_C": False}
    with pytest.raises(RobopipeError) as caught:
        await camera.config("CAM_B")
    assert (caught.value.status, caught.value.body) == (404, None)


async def test_the_client_sees_an_active_stream_kept_and_a_reactivated_one_reset_to_boot(camera: DepthCamera) -> None:
    await camera.set_control("CAM_B", brightness=5)
    await camera.activate("CAM_B")  # already active: nothing changes
    assert (await camera.control("CAM_B"))["brightness"] == 5
    await camera.set_config("CAM_B", {"resolution": "THE_800_P", "fps": 15})
    await camera.deactivate("CAM_B")
    await camera.activate("CAM_B")  # inactive and in no pair: boot config and initial control
    assert await camera.config("CAM_B") == {"resolution": "THE_400_P", "fps": 30.0}
    assert (await camera.control("CAM_B"))["brightness"] == 0


async def test_two_clients_activating_conflicting_streams_leave_a_consistent_state(emulator: DepthCamEmulator) -> None:
    async with DepthCamera(emulator.url(), MXID) as one, DepthCamera(emulator.url(), MXID) as two:
        await asyncio.gather(one.activate("DEPTH_B_C"), two.activate("CAM_C"))
        state = await one.streams()
        assert state == await two.streams()
        assert not (state["DEPTH_B_C"] and (state["CAM_B"] or state["CAM_C"]))


# ----- stills -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
async def test_mono_and_depth_stills_decode_with_the_stamp(
    emulator: DepthCamEmulator, camera: DepthCamera, fmt: str
) -> None:
    await camera.activate("DEPTH_B_C")
    await camera.activate("CAM_A")  # stays on
    before_ms = time.time() * 1000
    depth = await camera.still("DEPTH_B_C", fmt)
    stamp = read_stamp(depth)
    assert depth.shape[:2] == (400, 640)
    assert (stamp.stream_kind, stamp.stream_id) == (StreamKind.DEPTHCAM_DEPTH, 0x80 | 1 << 3 | 2)
    assert abs(stamp.capture_time_ms - before_ms) < 1000
    if fmt == "png":
        assert depth.ndim == 2 and depth.max() <= 95  # the dim disparity image, exactly


async def test_a_colour_still_is_full_size_rgb_and_content_type_echoes_the_format(
    emulator: DepthCamEmulator, camera: DepthCamera
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{emulator.url()}/cameras/{MXID}/streams/CAM_A/still", params={"format": "PNG"}) as response,
    ):
        assert response.headers["Content-Type"] == "image/PNG"
    image = await camera.still("CAM_A")
    assert image.shape == (1080, 1920, 3)
    stamp = read_stamp(image)
    assert (stamp.stream_kind, stamp.stream_id) == (StreamKind.DEPTHCAM_COLOR, 0)


async def test_frame_numbers_in_stills_increase_with_time(camera: DepthCamera) -> None:
    first = read_stamp(await camera.still("CAM_B", "png")).frame_index
    await asyncio.sleep(0.1)
    second = read_stamp(await camera.still("CAM_B", "png")).frame_index
    assert second >= first + 2


# ----- controls change the picture ---------------------------------------------------------------------------
async def test_exposure_iso_and_brightness_visibly_change_mean_luminance(camera: DepthCamera) -> None:
    async def mean(**changes: object) -> float:
        await camera.set_control("CAM_B", **changes)
        return float(luma(await camera.still("CAM_B", "png"))[80:].mean())

    dark = await mean(auto_exposure_enable=False, exposure_time=3_000, sensitivity_iso=400)
    brighter = await mean(exposure_time=9_000)
    more_iso = await mean(sensitivity_iso=1_200)
    plus_brightness = await mean(sensitivity_iso=400, exposure_time=3_000, brightness=6)
    assert brighter > dark + 40
    assert more_iso > brighter + 20
    assert plus_brightness == pytest.approx(dark + 48, abs=8)


async def test_manual_focus_away_from_the_sharp_position_blurs_the_picture(camera: DepthCamera) -> None:
    await camera.set_config("CAM_A", COLOR_720P)
    sharp = sharpness(await camera.still("CAM_A", "png"))
    await camera.set_control("CAM_A", focus={"auto_focus_mode": "OFF", "lens_position": 0.0})
    blurred = sharpness(await camera.still("CAM_A", "png"))
    await camera.set_control("CAM_A", focus={"auto_focus_mode": "OFF", "lens_position": 0.55})
    refocused = sharpness(await camera.still("CAM_A", "png"))
    assert blurred < sharp / 3
    assert refocused == pytest.approx(sharp, rel=0.25)


# ----- depth --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("obj", scene.STATIC_OBJECTS, ids=lambda o: f"object{o.label}")
async def test_depth_at_reads_each_objects_distance_from_the_disparity_still(
    camera: DepthCamera, obj: scene.SceneObject
) -> None:
    await camera.activate("DEPTH_B_C")
    view = scene.View(0.0375, 640, 400, scene.mono_focal(640), False)
    u, v = view.project(obj.x_centre, scene.FLOOR_Y - obj.height / 2, obj.z_front)
    measured = await camera.depth_at(int(u), int(v))
    assert measured is not None
    # An 8-bit disparity is exact to half a level: f*B/(d +- 0.5).
    disparity = 441.25 * 0.075 / obj.z_front
    assert 441.25 * 0.075 / (disparity + 0.5) <= measured <= 441.25 * 0.075 / (disparity - 0.5)


@pytest.mark.control_plane
async def test_the_ground_truth_depth_matches_each_object_within_2_percent(
    emulator: DepthCamEmulator, camera: DepthCamera
) -> None:
    await camera.activate("DEPTH_B_C")
    view = scene.View(0.0375, 640, 400, scene.mono_focal(640), False)
    async with aiohttp.ClientSession() as http:
        for obj in scene.STATIC_OBJECTS:
            u, v = view.project(obj.x_centre, scene.FLOOR_Y - obj.height / 2, obj.z_front)
            url = f"{emulator.url()}/_emulator/scenario/depth_at"
            async with http.post(url, json={"x": int(u), "y": int(v)}) as response:
                truth = await response.json()
            assert truth["depth_mm"] / 1000 == pytest.approx(obj.z_front, rel=0.02)


async def test_the_client_sees_one_pair_at_a_time_on_an_oak_d_lr() -> None:
    async with (
        DepthCamEmulator(egress=EGRESS, settings={"port": 0, "rig": "lab"}) as emu,
        DepthCamera(emu.url(), "18443010D116631200") as lr,
    ):
        await lr.activate("DEPTH_B_A")
        await lr.activate("DEPTH_A_C")
        active = [name for name, on in (await lr.streams()).items() if on]
        assert active == ["DEPTH_A_C"]


# ----- neural network ------------------------------------------------------------------------------------------
async def test_nn_detections_cover_the_scene_and_carry_depth_while_depth_is_active(camera: DepthCamera) -> None:
    await camera.activate("DEPTH_B_C")
    await camera.deploy_nn("CAM_A", b"\x00blob", {"type": "YOLO", "classes": 4})
    results = camera.detections("CAM_A")
    detections = await anext(results)
    await results.aclose()
    assert sorted(d.label for d in detections) == [0, 1, 2, 3]
    for det in detections:
        assert all(0.0 <= c <= 1.0 for c in det.coords)
        assert 0.75 <= det.confidence <= 0.95
        assert det.spatial_mm is not None
        if det.label != scene.MOVING_OBJECT.label:
            assert det.spatial_mm[2] / 1000 == pytest.approx(scene.OBJECTS[det.label].z_front, rel=0.02)


async def test_an_nn_config_without_a_known_type_is_a_422_and_delete_is_always_202(camera: DepthCamera) -> None:
    with pytest.raises(RobopipeError) as caught:
        await camera.deploy_nn("CAM_A", b"blob", {"type": "Transformer"})
    assert caught.value.status == 422
    assert caught.value.body["detail"][0]["loc"] == ["body", "nn_config"]
    await camera.delete_nn("CAM_A")
    with pytest.raises(RobopipeError) as caught:
        await camera.deploy_nn("DEPTH_B_C", b"blob", {"type": "YOLO"})
    assert caught.value.status == 404


async def test_an_nn_socket_without_a_network_is_accepted_then_closed_1011(emulator: DepthCamEmulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{emulator.url()}/cameras/{MXID}/streams/CAM_A/nn") as ws,
    ):
        message = await ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1011


@pytest.mark.parametrize("network", ["MobileNet", "Generic"])
async def test_nn_messages_match_the_asyncapi_contract(
    camera: DepthCamera, emulator: DepthCamEmulator, network: str
) -> None:
    message = "GenericOutput" if network == "Generic" else "Detections"
    await camera.deploy_nn("CAM_C", b"blob", {"type": network})
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{emulator.url()}/cameras/{MXID}/streams/CAM_C/nn") as ws,
    ):
        for _ in range(2):
            validate_message("depthcam", message, await ws.receive_json(timeout=5))
