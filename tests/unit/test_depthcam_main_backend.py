"""The default profile's backend rules, pure: what the Robopipe server's code on main does, request for request."""

from __future__ import annotations

import pytest

from emulators.depthcam.camera import INITIAL_CONTROL, NeuralNetwork
from emulators.depthcam.errors import CameraNotFound, ServerCrash
from emulators.depthcam.hardware import oak_d
from emulators.depthcam.model import Close, DepthcamBackend, EndOfStream, PipelineStatus, race_outcome

MXID = "14442C10D13EABCE00"
T0 = 1_700_000_000.0
COLOR_720P = {
    "resolution": "THE_720_P",
    "still_size": [1280, 720],
    "preview_size": [300, 300],
    "video_size": [1280, 720],
    "sensor_crop": [0.0, 0.0],
    "fps": 30.0,
}


def main() -> DepthcamBackend:
    return DepthcamBackend([oak_d()], now=T0)


def settle(b: DepthcamBackend) -> None:
    while (due := b.next_wakeup()) is not None:
        b.advance(due)


def test_the_default_profile_is_the_servers_main_and_documented_is_not() -> None:
    assert main().server_main
    assert not DepthcamBackend([oak_d()], profile="documented").server_main
    assert not DepthcamBackend([oak_d()], profile="robopipe-server").server_main
    assert DepthcamBackend([oak_d()], profile="realistic").server_main


# ----- restarts -------------------------------------------------------------------------------------------
def test_every_pipeline_restart_resets_every_sensors_control_to_the_initial_one() -> None:
    b = main()
    camera = b.cameras[MXID]
    camera.apply_control("CAM_A", {"brightness": 5})
    camera.apply_control("CAM_B", {"contrast": -3})
    b.activate(MXID, "CAM_C", T0)  # already active: still a restart on main
    settle(b)
    assert camera.controls["CAM_A"]["brightness"] == INITIAL_CONTROL["brightness"]
    assert camera.controls["CAM_B"]["contrast"] == INITIAL_CONTROL["contrast"]
    assert camera.controls["CAM_A"]["focus"] is not None  # the IMX378's autofocus stays


def test_posting_an_already_active_stream_restarts_the_pipeline() -> None:
    b = main()
    assert b.activate(MXID, "CAM_A", T0) is not None
    assert b.pipelines[MXID].status is PipelineStatus.RESTARTING
    settle(b)
    assert b.pipelines[MXID].restarts == 1


def test_deleting_a_pattern_valid_stream_not_on_the_device_restarts_the_pipeline() -> None:
    b = main()
    assert b.deactivate(MXID, "CAM_H", T0) is not None
    settle(b)
    assert b.pipelines[MXID].restarts == 1
    assert b.cameras[MXID].active_streams() == ["CAM_A", "CAM_B", "CAM_C"]


def test_activating_a_sensor_not_on_the_device_is_a_crash() -> None:
    with pytest.raises(ServerCrash):
        main().activate(MXID, "CAM_D", T0)


# ----- config ---------------------------------------------------------------------------------------------
def test_a_depth_config_restarts_without_being_applied_and_then_crashes() -> None:
    b = main()
    b.activate(MXID, "DEPTH_B_C", T0)
    settle(b)
    b.cameras[MXID].apply_control("DEPTH_B_C", {"brightness": 2})
    outcome, _ = b.set_config(MXID, "DEPTH_B_C", "mono", {"resolution": "THE_800_P", "fps": 30.0}, T0)
    assert isinstance(outcome, ServerCrash)
    assert b.pipelines[MXID].status is PipelineStatus.RESTARTING
    settle(b)
    assert b.cameras[MXID].config("DEPTH_B_C")["resolution"] == "THE_400_P"
    assert b.cameras[MXID].controls["DEPTH_B_C"]["brightness"] == 0


def test_a_mono_resolution_sent_to_the_colour_sensor_keeps_the_colour_config_merged() -> None:
    b = main()
    config, _ = b.set_config(MXID, "CAM_A", "mono", {"resolution": "THE_720_P", "fps": 15.0}, T0)
    assert config == {
        "resolution": "THE_720_P",
        "still_size": [1920, 1080],
        "preview_size": [300, 300],
        "video_size": [1920, 1080],
        "sensor_crop": [0.0, 0.0],
        "fps": 15.0,
    }
    settle(b)
    assert b.cameras[MXID].config("CAM_A") == config


def test_a_mono_resolution_the_colour_sensor_lacks_crashes_before_any_restart() -> None:
    b = main()
    with pytest.raises(ServerCrash):
        b.set_config(MXID, "CAM_A", "mono", {"resolution": "THE_400_P", "fps": 30.0}, T0)
    assert b.pipelines[MXID].status is PipelineStatus.RUNNING


@pytest.mark.parametrize(("stream", "variant"), [("CAM_B", "color"), ("CAM_B", "generic"), ("CAM_A", "generic")])
def test_a_config_of_another_sensors_class_crashes(stream: str, variant: str) -> None:
    with pytest.raises(ServerCrash):
        main().set_config(MXID, stream, variant, dict(COLOR_720P), T0)


def test_a_config_the_sensor_cannot_boot_with_crashes() -> None:
    with pytest.raises(ServerCrash):
        main().set_config(MXID, "CAM_A", "color", {**COLOR_720P, "still_size": [4000, 3000]}, T0)


# ----- neural networks ------------------------------------------------------------------------------------
def test_deploying_on_an_inactive_stream_activates_it_and_restarts() -> None:
    b = main()
    b.deploy_network(MXID, "DEPTH_B_C", NeuralNetwork("YOLO", {}, 10), T0)
    settle(b)
    assert dict(b.cameras[MXID].stream_list()) == {"CAM_A": True, "CAM_B": False, "CAM_C": False, "DEPTH_B_C": True}
    assert "DEPTH_B_C" in b.cameras[MXID].networks


def test_deploying_on_a_sensor_not_on_the_device_crashes() -> None:
    with pytest.raises(ServerCrash):
        main().deploy_network(MXID, "CAM_E", NeuralNetwork("Generic", {}, 10), T0)


def test_deleting_a_network_restarts_only_once_a_network_was_deployed_since_boot() -> None:
    b = main()
    assert b.delete_network(MXID, "CAM_A", T0) is None
    b.deploy_network(MXID, "CAM_A", NeuralNetwork("MobileNet", {}, 10), T0)
    settle(b)
    fates = b.delete_network(MXID, "CAM_H", T0)  # not looked up: any pattern-valid name
    assert fates is not None and fates.nn["CAM_A"] == EndOfStream()
    assert b.pipelines[MXID].status is PipelineStatus.RESTARTING


# ----- cameras --------------------------------------------------------------------------------------------
def test_creating_or_deleting_an_unknown_mxid_crashes() -> None:
    b = main()
    with pytest.raises(ServerCrash):
        b.reboot_camera("1844301011D0F40F00", T0)
    with pytest.raises(ServerCrash):
        b.close_camera("1844301011D0F40F00")
    with pytest.raises(CameraNotFound):
        b.camera("1844301011D0F40F00")


def test_a_deleted_camera_stays_listed_unbooted_with_its_stale_streams() -> None:
    b = main()
    b.close_camera(MXID)
    assert [c.mxid for c in b.open_cameras()] == [MXID]
    assert b.device_state(MXID) == "X_LINK_UNBOOTED"
    assert dict(b.camera(MXID).stream_list())["CAM_A"] is True
    assert b.close_camera(MXID).video == {}  # closing again changes nothing


def test_acting_on_a_deleted_camera_crashes_until_it_is_created_again() -> None:
    b = main()
    b.close_camera(MXID)
    for act in (
        lambda: b.activate(MXID, "CAM_A", T0),
        lambda: b.deactivate(MXID, "CAM_A", T0),
        lambda: b.set_config(MXID, "CAM_A", "color", dict(COLOR_720P), T0),
    ):
        with pytest.raises(ServerCrash):
            act()
    b.reboot_camera(MXID, T0)
    settle(b)
    assert b.device_state(MXID) == "X_LINK_BOOTED"


def test_main_hands_any_still_format_name_to_the_encoder() -> None:
    assert main().still_format("PDF") == "PDF"


# ----- viewers around a restart ---------------------------------------------------------------------------
def test_a_restart_ends_every_stream_with_mains_race_or_with_1000_when_clean() -> None:
    fates = main().activate(MXID, "CAM_A", T0)
    assert fates is not None and set(fates.video.values()) == {EndOfStream()}
    clean = DepthcamBackend([oak_d()], now=T0, video_restart_race=False).activate(MXID, "CAM_A", T0)
    assert clean is not None and set(clean.video.values()) == {Close(1000)}


@pytest.mark.parametrize(
    ("viewers", "closed", "stranded"), [(1, [0], []), (2, [0], [1]), (3, [0, 2], [1]), (4, [0, 2], [1, 3])]
)
def test_mains_race_closes_every_other_viewer_and_strands_the_rest(
    viewers: int, closed: list[int], stranded: list[int]
) -> None:
    assert [list(part) for part in race_outcome(viewers)] == [closed, stranded]
