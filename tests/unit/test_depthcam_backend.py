"""The depth camera backend's rules, pure: pipeline restarts and boot retries on a given clock, viewer fates, quirks."""

from __future__ import annotations

import pytest

from emulators.depthcam.camera import NeuralNetwork
from emulators.depthcam.errors import (
    BootFailed,
    CameraNotFound,
    ConfigRejected,
    IllegalTransition,
    ServerCrash,
    StreamNotFound,
)
from emulators.depthcam.hardware import oak_d
from emulators.depthcam.model import (
    BOOT_BACKOFF_S,
    KEEP,
    BootRetried,
    Close,
    DepthcamBackend,
    Pipeline,
    PipelineFailed,
    PipelineStarted,
    PipelineStatus,
    Quirks,
)

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
MONO_800P = {"resolution": "THE_800_P", "fps": 30.0}


def backend(**kwargs: object) -> DepthcamBackend:
    """A backend answering as the vendor documents the API, unless a test names another profile."""
    kwargs.setdefault("profile", "documented")
    return DepthcamBackend([oak_d()], now=T0, **kwargs)  # type: ignore[arg-type]


def settle(b: DepthcamBackend, now: float) -> list[object]:
    """Advance the schedule until nothing is pending, as the service's loop would."""
    changes: list[object] = []
    while (due := b.next_wakeup()) is not None:
        changes += b.advance(max(now, due))
    return changes


# ----- the restart schedule -------------------------------------------------------------------------------
def test_a_pipeline_change_restarts_after_the_scaled_delay_and_not_before() -> None:
    b = backend(restart_delay_s=4.0, time_scale=0.5)
    assert b.activate(MXID, "DEPTH_B_C", T0) is not None
    assert b.pipelines[MXID].status is PipelineStatus.RESTARTING
    assert b.next_wakeup() == T0 + 2.0
    assert b.advance(T0 + 1.999) == []
    assert b.advance(T0 + 2.0) == [PipelineStarted(MXID, ("CAM_A", "DEPTH_B_C"))]
    assert b.pipelines[MXID].status is PipelineStatus.RUNNING
    assert b.pipelines[MXID].started_ms == int((T0 + 2.0) * 1000)
    assert b.next_wakeup() is None


def test_a_request_that_changes_nothing_does_not_restart() -> None:
    b = backend()
    assert b.activate(MXID, "CAM_A", T0) is None
    assert b.deactivate(MXID, "DEPTH_B_C", T0) is None
    assert b.next_wakeup() is None and b.pipelines[MXID].restarts == 0


def test_boot_failures_follow_the_backoff_then_the_pipeline_starts() -> None:
    b = backend(restart_delay_s=1.0, boot_failures=2)
    b.activate(MXID, "DEPTH_B_C", T0)
    assert b.advance(T0 + 1.0) == [BootRetried(MXID, 1)]
    assert b.next_wakeup() == T0 + 1.0 + BOOT_BACKOFF_S[0]
    assert b.advance(T0 + 2.0) == [BootRetried(MXID, 2)]
    assert b.next_wakeup() == T0 + 2.0 + BOOT_BACKOFF_S[1]
    assert b.advance(T0 + 4.0) == [PipelineStarted(MXID, ("CAM_A", "DEPTH_B_C"))]


def test_more_boot_failures_than_retries_fail_the_restart_after_31_seconds() -> None:
    b = backend(restart_delay_s=0.0, boot_failures=6)
    b.activate(MXID, "DEPTH_B_C", T0)
    changes = settle(b, T0)
    assert changes == [BootRetried(MXID, n) for n in range(1, 6)] + [PipelineFailed(MXID, 6)]
    assert b.pipelines[MXID].started_ms == int((T0 + sum(BOOT_BACKOFF_S)) * 1000)
    # The device keeps the new state, and the budget is spent: the next restart boots.
    assert b.pipelines[MXID].status is PipelineStatus.RUNNING and b.cameras[MXID].is_active("DEPTH_B_C")
    b.deactivate(MXID, "DEPTH_B_C", T0 + 40)
    assert settle(b, T0 + 40) == [PipelineStarted(MXID, ("CAM_A",))]


def test_the_realistic_profile_restarts_take_at_least_two_seconds() -> None:
    b = backend(profile="realistic", restart_delay_s=0.2)
    b.activate(MXID, "DEPTH_B_C", T0)
    assert b.next_wakeup() == T0 + 2.0


def test_restarts_of_two_cameras_run_on_one_schedule() -> None:
    other = oak_d(mxid="AAAA")
    b = DepthcamBackend([oak_d(), other], restart_delay_s=1.0, now=T0)
    b.activate(MXID, "DEPTH_B_C", T0)
    b.deactivate("AAAA", "CAM_A", T0 + 0.5)
    assert b.advance(T0 + 1.0) == [PipelineStarted(MXID, ("CAM_A", "DEPTH_B_C"))]
    assert b.advance(T0 + 1.5) == [PipelineStarted("AAAA", ("CAM_B", "CAM_C"))]


def test_frame_numbers_count_from_the_pipelines_start() -> None:
    b = backend(restart_delay_s=1.0)
    assert b.frame_index_at(MXID, "CAM_B", int(T0 * 1000) + 1000) == 30
    b.deactivate(MXID, "CAM_A", T0 + 10)
    settle(b, T0 + 10)
    assert b.frame_index_at(MXID, "CAM_B", int((T0 + 11) * 1000)) == 0
    assert b.capture_ms(MXID, "CAM_B", 3) == int((T0 + 11) * 1000) + 100


def test_abandoning_restarts_starts_every_restarting_pipeline_now() -> None:
    b = backend(restart_delay_s=10.0)
    b.activate(MXID, "DEPTH_B_C", T0)
    assert b.abandon_restarts(T0 + 1) == [MXID]
    assert b.pipelines[MXID].status is PipelineStatus.RUNNING and b.next_wakeup() is None


# ----- the status table -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "target"),
    [
        (PipelineStatus.RUNNING, PipelineStatus.RUNNING),
        (PipelineStatus.RESTARTING, PipelineStatus.RESTARTING),
        (PipelineStatus.RESTARTING, PipelineStatus.CLOSED),
        (PipelineStatus.CLOSED, PipelineStatus.CLOSED),
        (PipelineStatus.CLOSED, PipelineStatus.RUNNING),
    ],
)
def test_an_illegal_pipeline_transition_raises(start: PipelineStatus, target: PipelineStatus) -> None:
    pipeline = Pipeline(MXID, status=start)
    with pytest.raises(IllegalTransition, match=f"from {start.value} to {target.value}"):
        pipeline.move(target)


def test_a_closed_camera_is_not_found_until_created_again() -> None:
    b = backend()
    b.close_camera(MXID)
    assert b.open_cameras() == []
    with pytest.raises(CameraNotFound):
        b.activate(MXID, "CAM_A", T0)
    with pytest.raises(CameraNotFound):
        b.close_camera(MXID)
    b.reboot_camera(MXID, T0)  # POST /cameras/{mxid}/
    settle(b, T0)
    assert b.is_open(MXID) and [c.mxid for c in b.open_cameras()] == [MXID]


# ----- viewer fates ---------------------------------------------------------------------------------------
def test_activating_depth_closes_its_sensors_viewers_with_1000_and_keeps_the_others() -> None:
    fates = backend().activate(MXID, "DEPTH_B_C", T0)
    assert fates is not None
    assert fates.video["CAM_B"] == fates.video["CAM_C"] == Close(1000, "stream deactivated")
    assert fates.video["CAM_A"] == KEEP
    assert fates.nn["CAM_B"] == Close(1000) and fates.nn["CAM_A"] == KEEP


def test_a_config_that_changes_the_frame_size_closes_viewers_with_1012() -> None:
    b = backend()
    _, fates = b.set_config(MXID, "CAM_A", "color", dict(COLOR_720P), T0)
    assert fates.video["CAM_A"] == Close(1012, "frame size changed")
    assert fates.video["CAM_B"] == KEEP and fates.nn["CAM_A"] == KEEP


def test_a_config_that_keeps_the_frame_size_keeps_the_viewers() -> None:
    b = backend()
    _, fates = b.set_config(MXID, "CAM_B", "mono", {"resolution": "THE_400_P", "fps": 15.0}, T0)
    assert fates.video["CAM_B"] == KEEP


def test_closing_a_camera_closes_every_viewer_with_1000() -> None:
    fates = backend().close_camera(MXID)
    assert set(fates.video.values()) == {Close(1000, "stream deactivated")}
    assert set(fates.nn.values()) == {Close(1000)}


def test_with_quirk_q8_every_restart_closes_every_socket_with_1012() -> None:
    b = backend(quirks=Quirks(restart_closes_websockets=True))
    b.deploy_network(MXID, "CAM_A", NeuralNetwork("YOLO", {}, 1), T0)
    settle(b, T0)
    fates = b.deactivate(MXID, "CAM_B", T0 + 1)
    assert fates is not None
    assert set(fates.video.values()) == {Close(1012, "pipeline restart")}
    assert fates.nn["CAM_A"] == Close(1012) and fates.nn["CAM_B"] == Close(1000)


def test_deleting_a_network_closes_its_nn_viewers_with_1011() -> None:
    assert backend().delete_network(MXID, "CAM_A", T0).nn == {"CAM_A": Close(1011)}


def test_viewers_are_admitted_only_to_active_streams_of_open_cameras() -> None:
    b = backend()
    assert b.admit_video(MXID, "CAM_A") is None
    assert b.admit_video(MXID, "DEPTH_B_C") == Close(1011, "stream not found or not active")
    assert b.admit_video("NOPE", "CAM_A") == Close(1011, "camera not found")
    assert b.admit_nn(MXID, "CAM_A") == Close(1011, "no neural network deployed on this stream")
    b.deploy_network(MXID, "CAM_A", NeuralNetwork("YOLO", {}, 1), T0)
    settle(b, T0)
    assert b.admit_nn(MXID, "CAM_A") is None and b.nn_result_due(MXID, "CAM_A") is None
    b.deactivate(MXID, "CAM_A", T0)
    assert b.nn_result_due(MXID, "CAM_A") == Close(1011)  # deactivating drops the stream's network too


# ----- refusals and quirks --------------------------------------------------------------------------------
def test_refusals_carry_their_wire_status() -> None:
    b = backend()
    with pytest.raises(StreamNotFound) as missing:
        b.require_active(MXID, "DEPTH_B_C")
    with pytest.raises(ConfigRejected) as rejected:
        b.set_config(MXID, "CAM_B", "color", dict(COLOR_720P), T0)
    assert (missing.value.status, rejected.value.status, BootFailed("x").status) == (404, 422, 500)
    assert rejected.value.loc == ("body",) and rejected.value.input == COLOR_720P


@pytest.mark.parametrize(
    ("quirk", "call"),
    [
        ("inactive_stream_500", lambda b: b.require_active(MXID, "DEPTH_B_C")),
        ("inactive_stream_500", lambda b: b.activate(MXID, "CAM_D", T0)),
        ("config_variant_500", lambda b: b.set_config(MXID, "CAM_B", "color", dict(COLOR_720P), T0)),
        ("boot_error_500", lambda b: b.set_config(MXID, "CAM_B", "mono", {"resolution": "THE_400_P", "fps": 0}, T0)),
        ("still_format_500", lambda b: b.still_format("jpg")),
        ("camera_create_delete_500", lambda b: b.answer_camera_change()),
    ],
)
def test_each_quirk_turns_its_refusal_into_the_servers_500(quirk: str, call: object) -> None:
    with pytest.raises(ServerCrash):
        call(backend(quirks=Quirks(**{quirk: True})))  # type: ignore[operator]


def test_quirk_q3_refuses_any_depth_config() -> None:
    b = backend(quirks=Quirks(depth_config_500=True))
    b.activate(MXID, "DEPTH_B_C", T0)
    settle(b, T0)
    with pytest.raises(ServerCrash, match="Q3"):
        b.set_config(MXID, "DEPTH_B_C", "mono", dict(MONO_800P), T0)


def test_the_robopipe_server_profile_turns_every_quirk_on() -> None:
    assert all(vars(Quirks.of("robopipe-server", {})).values())
    assert Quirks.of("default", {"still_format_500": True}) == Quirks(still_format_500=True)


def test_an_unknown_still_format_fails_validation_unless_quirk_q4() -> None:
    assert not backend().still_format_passes_validation("jpg")
    assert backend(quirks=Quirks(still_format_500=True)).still_format_passes_validation("jpg")
    assert backend().still_format("PNG") == "png"
