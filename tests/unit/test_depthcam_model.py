"""The Robopipe camera model: stream exclusivity, config variants and values, control merge-patch."""

from __future__ import annotations

import pytest

from emulators.depthcam.camera import COLOR_BOOT_CONFIG, INITIAL_CONTROL, MONO_BOOT_CONFIG, Camera
from emulators.depthcam.controller import Controller
from emulators.depthcam.errors import CircuitNotFound, CircuitValueRejected, ConfigRejected, StreamNotFound
from emulators.depthcam.hardware import device_from_config, oak_1, oak_d, oak_d_lr, stream_code

COLOR_720P = {
    "resolution": "THE_720_P",
    "still_size": [1280, 720],
    "preview_size": [300, 300],
    "video_size": [1280, 720],
    "sensor_crop": [0.0, 0.0],
    "fps": 30.0,
}


def booted(spec=None) -> Camera:
    return Camera.boot(spec or oak_d(), 0)


def active(camera: Camera) -> dict[str, bool]:
    return dict(camera.stream_list())


# ----- exclusivity, one rule per test -----------------------------------------------------------------------
def test_boot_activates_every_sensor_stream_and_leaves_depth_off() -> None:
    camera = booted()
    assert active(camera) == {"CAM_A": True, "CAM_B": True, "CAM_C": True, "DEPTH_B_C": False}
    assert camera.config("CAM_A") == COLOR_BOOT_CONFIG
    assert camera.config("CAM_B") == MONO_BOOT_CONFIG


def test_activating_an_active_sensor_changes_nothing() -> None:
    camera = booted()
    camera.set_control("CAM_A", {"brightness": 4})
    assert camera.activate("CAM_A") is False
    assert camera.control("CAM_A")["brightness"] == 4


def test_activating_an_inactive_sensor_gives_it_boot_config_and_control() -> None:
    camera = booted()
    camera.set_config("CAM_A", "color", COLOR_720P)
    camera.deactivate("CAM_A")
    assert camera.activate("CAM_A") is True
    assert camera.config("CAM_A") == COLOR_BOOT_CONFIG
    assert camera.control("CAM_A")["focus"] == {
        "auto_focus_mode": "CONTINUOUS_VIDEO",
        "auto_focus_trigger": False,
        "lens_position": 0.0,
    }


def test_activating_depth_deactivates_its_sensors() -> None:
    camera = booted()
    assert camera.activate("DEPTH_B_C") is True
    assert active(camera) == {"CAM_A": True, "CAM_B": False, "CAM_C": False, "DEPTH_B_C": True}
    assert camera.config("DEPTH_B_C") == MONO_BOOT_CONFIG
    assert camera.control("DEPTH_B_C")["focus"] is None


def test_only_one_depth_pair_is_active_and_the_old_pairs_sensors_stay_off() -> None:
    camera = booted(oak_d_lr())
    camera.activate("DEPTH_B_C")
    camera.activate("DEPTH_A_C")
    assert active(camera) == {
        "CAM_A": False,
        "CAM_B": False,
        "CAM_C": False,
        "DEPTH_B_C": False,
        "DEPTH_B_A": False,
        "DEPTH_A_C": True,
    }


def test_reactivating_a_sensor_of_the_active_pair_removes_the_pair_and_leaves_its_partner_off() -> None:
    camera = booted()
    camera.activate("DEPTH_B_C")
    assert camera.activate("CAM_B") is True
    assert active(camera) == {"CAM_A": True, "CAM_B": True, "CAM_C": False, "DEPTH_B_C": False}


def test_deactivating_depth_does_not_restore_its_sensors() -> None:
    camera = booted()
    camera.activate("DEPTH_B_C")
    assert camera.deactivate("DEPTH_B_C") is True
    assert active(camera) == {"CAM_A": True, "CAM_B": False, "CAM_C": False, "DEPTH_B_C": False}


def test_activating_an_active_pair_and_deactivating_an_inactive_stream_change_nothing() -> None:
    camera = booted()
    camera.activate("DEPTH_B_C")
    assert camera.activate("DEPTH_B_C") is False
    assert camera.deactivate("CAM_B") is False
    assert active(camera)["DEPTH_B_C"] is True


@pytest.mark.parametrize("stream", ["CAM_D", "CAM_H", "DEPTH_C_B", "DEPTH_A_B"])
def test_streams_not_on_the_device_are_not_found(stream: str) -> None:
    camera = booted()
    with pytest.raises(StreamNotFound):
        camera.activate(stream)
    with pytest.raises(StreamNotFound):
        camera.deactivate(stream)


def test_an_oak_1_has_no_depth_streams() -> None:
    camera = booted(oak_1())
    assert active(camera) == {"CAM_A": True}
    with pytest.raises(StreamNotFound):
        camera.activate("DEPTH_B_C")


@pytest.mark.parametrize("operation", ["config", "control"])
def test_config_and_control_of_an_inactive_stream_are_not_found(operation: str) -> None:
    camera = booted()
    with pytest.raises(StreamNotFound, match="not active"):
        getattr(camera, operation)("DEPTH_B_C")


# ----- config ---------------------------------------------------------------------------------------------
def test_colour_config_is_applied_to_the_colour_sensor_and_read_back() -> None:
    camera = booted()
    assert camera.set_config("CAM_A", "color", COLOR_720P) == COLOR_720P
    assert camera.frame_size("CAM_A") == (1280, 720)


def test_mono_config_on_a_pair_is_applied_to_both_monos() -> None:
    camera = booted()
    camera.activate("DEPTH_B_C")
    camera.set_config("DEPTH_B_C", "mono", {"resolution": "THE_800_P", "fps": 15.0})
    assert camera.configs["B"] == camera.configs["C"] == {"resolution": "THE_800_P", "fps": 15.0}
    assert camera.frame_size("DEPTH_B_C") == (1280, 800)


def test_the_colour_sensor_accepts_the_mono_names_it_understands() -> None:
    camera = booted()
    camera.set_config("CAM_A", "mono", {"resolution": "THE_720_P", "fps": 30.0})
    assert camera.frame_size("CAM_A") == (1280, 720)


@pytest.mark.parametrize(
    ("stream", "variant", "body"),
    [
        ("CAM_B", "color", COLOR_720P),
        ("CAM_A", "mono", {"resolution": "THE_400_P", "fps": 30.0}),
        ("CAM_A", "generic", {**COLOR_720P, "resolution": [1280, 720]}),
    ],
)
def test_a_config_variant_the_sensor_cannot_run_is_rejected(stream: str, variant: str, body: dict) -> None:
    camera = booted()
    with pytest.raises(ConfigRejected) as caught:
        camera.set_config(stream, variant, body)
    assert caught.value.kind == "variant"
    assert caught.value.loc == ("body",)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"still_size": [1920, 1080]}, "still_size"),
        ({"preview_size": [0, 300]}, "preview_size"),
        ({"sensor_crop": [0.0, 1.5]}, "sensor_crop"),
        ({"fps": 0.0}, "fps"),
    ],
)
def test_config_values_the_sensor_cannot_run_are_rejected_naming_the_field(change: dict, field: str) -> None:
    camera = booted()
    with pytest.raises(ConfigRejected) as caught:
        camera.set_config("CAM_A", "color", {**COLOR_720P, **change})
    assert caught.value.loc == ("body", field)
    assert caught.value.kind == "value"


def test_a_video_size_above_4k_is_rejected() -> None:
    camera = booted()
    body = {**COLOR_720P, "resolution": "THE_12_MP", "still_size": [4056, 3040], "video_size": [4056, 3040]}
    with pytest.raises(ConfigRejected, match="video limit"):
        camera.set_config("CAM_A", "color", body)


# ----- control --------------------------------------------------------------------------------------------
def test_initial_control_is_the_servers_and_focus_is_null_without_autofocus() -> None:
    camera = booted()
    assert {k: v for k, v in camera.control("CAM_B").items()} == INITIAL_CONTROL
    assert camera.control("CAM_A")["focus"]["auto_focus_mode"] == "CONTINUOUS_VIDEO"


def test_control_is_a_shallow_merge_where_a_partial_focus_replaces_the_whole_object() -> None:
    camera = booted()
    camera.set_control("CAM_A", {"focus": {"auto_focus_mode": "OFF", "lens_position": 0.9}})
    merged = camera.set_control("CAM_A", {"brightness": 2, "focus": {"lens_position": 0.3}})
    assert merged["brightness"] == 2
    assert merged["focus"] == {"auto_focus_mode": "CONTINUOUS_VIDEO", "auto_focus_trigger": False, "lens_position": 0.3}


def test_an_empty_focus_resets_it_and_null_values_are_ignored() -> None:
    camera = booted()
    camera.set_control("CAM_A", {"focus": {"auto_focus_mode": "OFF"}, "contrast": 3})
    merged = camera.set_control("CAM_A", {"focus": {}, "contrast": None})
    assert merged["focus"]["auto_focus_mode"] == "CONTINUOUS_VIDEO"
    assert merged["contrast"] == 3


def test_control_of_a_stream_that_stays_active_survives_a_pair_change() -> None:
    camera = booted()
    camera.set_control("CAM_A", {"saturation": -3})
    camera.activate("DEPTH_B_C")
    assert camera.control("CAM_A")["saturation"] == -3


# ----- rigs, codes, controller -------------------------------------------------------------------------------
def test_rig_entries_build_the_three_models_and_refuse_unknown_ones() -> None:
    assert device_from_config({"model": "OAK-D-LR"}).pairs[1].name == "DEPTH_B_A"
    assert device_from_config({"model": "OAK-1", "mxid": "ABC123"}).mxid == "ABC123"
    with pytest.raises(ValueError, match="OAK-D, OAK-D-LR, OAK-1"):
        device_from_config({"model": "OAK-X"})


def test_stream_codes_follow_the_socket_letters() -> None:
    assert [stream_code(f"CAM_{c}") for c in "ABH"] == [0, 1, 7]
    assert stream_code("DEPTH_B_C") == 0x80 | 1 << 3 | 2


def test_controller_sets_one_or_all_circuits_and_names_unknown_ones() -> None:
    controller = Controller()
    assert controller.set("led", "1_02", {"value": 1})["value"] == 1
    assert all(item["value"] == 7 for item in controller.set_all("register", {"value": 7.0}))
    with pytest.raises(CircuitNotFound, match="1_01, 1_02"):
        controller.get("ai", "9_99")
    with pytest.raises(CircuitValueRejected):
        controller.set("register", "1_01", {"value": 65536})
    assert controller.set("do", "1_01", {"pwm_freq": 100.0, "pwm_duty": 40, "value": 0})["mode"] == "PWM"
