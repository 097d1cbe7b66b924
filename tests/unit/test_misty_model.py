"""Misty's rules, written once in the model: service exclusivity, stream lifecycles, gating, every range."""

from __future__ import annotations

import pytest

from emulators.misty.args import Arguments
from emulators.misty.model import (
    AV_ACTIVE,
    AV_DISABLED,
    AV_RESOLUTIONS,
    CAMERA_DISABLED,
    MICS_BUSY_AV,
    PICTURE_RESOLUTIONS,
    SAMPLE_RATES,
    AvRequest,
    AvStatus,
    BadArgument,
    CommandNotFound,
    IllegalTransition,
    MistyBackend,
    MistyError,
    PictureRequest,
    RobotReady,
    RobotStatus,
    ServiceUnavailable,
    SpeechCaptureRequest,
    VideoParams,
    recording_file_name,
)


def args(**values):
    return Arguments({k.lower(): v for k, v in values.items()})


def av(**values):
    values.setdefault("URL", "rtspd:1936")
    values.setdefault("Width", 640)
    values.setdefault("Height", 480)
    return AvRequest.from_arguments(args(**values))


# ----- services ----------------------------------------------------------------------------------------
def test_the_robot_boots_with_camera_audio_and_slam_on_and_av_off():
    robot = MistyBackend()
    assert robot.services == {"avstreaming": False, "camera": True, "audio": True, "slam": True}


def test_enabling_av_disables_the_camera_and_stops_the_video_stream():
    robot = MistyBackend()
    robot.video_started(VideoParams(), now=0.0)
    consequences = robot.enable("avstreaming")
    assert robot.services["avstreaming"] and not robot.services["camera"]
    assert consequences.stop_video and robot.video is None


def test_enabling_the_camera_disables_av_and_stops_the_av_stream():
    robot = MistyBackend()
    robot.enable("avstreaming")
    robot.av_started(av(), now=0.0)
    consequences = robot.enable("camera")
    assert robot.services["camera"] and not robot.services["avstreaming"]
    assert consequences.stop_av and robot.av is None


def test_both_camera_and_av_may_be_off():
    robot = MistyBackend()
    robot.disable("camera")
    robot.disable("avstreaming")
    assert not robot.services["camera"] and not robot.services["avstreaming"]


def test_repeating_a_service_switch_is_harmless():
    robot = MistyBackend()
    robot.enable("camera")
    robot.enable("camera")
    robot.disable("avstreaming")
    assert robot.services["camera"] and not robot.services["avstreaming"]


def test_a_flaky_camera_enable_leaves_everything_as_it_was():
    robot = MistyBackend()
    robot.enable("avstreaming")
    robot.enable("camera", camera_flake=True)
    assert not robot.services["camera"] and robot.services["avstreaming"]


def test_an_unknown_service_is_not_found():
    with pytest.raises(CommandNotFound):
        MistyBackend().enable("lidar")


# ----- gating -------------------------------------------------------------------------------------------
def test_camera_calls_fail_while_the_camera_service_is_off():
    robot = MistyBackend()
    robot.disable("camera")
    with pytest.raises(BadArgument, match="Camera service is disabled"):
        robot.check_video_start(VideoParams())
    with pytest.raises(BadArgument) as exc:
        robot.set_camera_activity("face_detection", True)
    assert exc.value.message == CAMERA_DISABLED
    robot.set_camera_activity("face_detection", False)  # stops always succeed


def test_av_start_fails_while_the_av_service_is_disabled():
    with pytest.raises(BadArgument) as exc:
        MistyBackend().check_av_start(av(), now=0.0)
    assert exc.value.message == AV_DISABLED


def test_av_stop_fails_while_the_av_service_is_disabled_and_succeeds_while_it_is_on():
    robot = MistyBackend()
    with pytest.raises(BadArgument):
        robot.stop_av_command()
    robot.enable("avstreaming")
    assert robot.stop_av_command().stop_av is False


def test_a_second_av_start_while_one_runs_fails():
    robot = MistyBackend()
    robot.enable("avstreaming")
    robot.av_started(av(), now=0.0)
    with pytest.raises(BadArgument) as exc:
        robot.check_av_start(av(), now=1.0)
    assert exc.value.message == AV_ACTIVE


def test_microphone_calls_fail_while_av_streaming_runs_and_stops_succeed():
    robot = MistyBackend()
    robot.enable("avstreaming")
    robot.av_started(av(), now=0.0)
    for start in (
        lambda: robot.start_recording("a.wav"),
        robot.start_raw_recording,
        robot.start_keyphrase,
        lambda: robot.start_speech_capture(SpeechCaptureRequest(7500, 5000), now=0.0),
    ):
        with pytest.raises(BadArgument) as exc:
            start()
        assert exc.value.message == MICS_BUSY_AV
    robot.stop_recording()
    robot.stop_raw_recording()
    robot.stop_keyphrase()


def test_microphones_in_use_block_av_start():
    robot = MistyBackend()
    robot.enable("avstreaming")
    robot.start_recording("a.wav")
    with pytest.raises(BadArgument, match="audio recording"):
        robot.check_av_start(av(), now=0.0)
    robot.stop_recording()
    robot.check_av_start(av(), now=0.0)


def test_speech_capture_holds_the_microphones_for_max_speech_length():
    robot = MistyBackend()
    robot.start_speech_capture(SpeechCaptureRequest(1000, 500), now=10.0)
    assert robot.microphones_in_use(10.5) == "speech capture"
    assert robot.microphones_in_use(11.0) is None


def test_microphone_calls_fail_while_the_audio_service_is_off():
    robot = MistyBackend()
    robot.disable("audio")
    with pytest.raises(BadArgument, match="Audio service is disabled"):
        robot.start_keyphrase()


def test_disabling_audio_does_not_touch_av():
    robot = MistyBackend()
    robot.enable("avstreaming")
    robot.av_started(av(), now=0.0)
    assert robot.disable("audio").stop_av is False
    assert robot.av is not None


# ----- reboot --------------------------------------------------------------------------------------------
def test_a_sensory_reboot_stops_streams_restores_boot_services_and_frees_microphones():
    robot = MistyBackend()
    robot.enable("avstreaming")
    robot.av_started(av(), now=0.0)
    robot.disable("slam")
    consequences = robot.reboot(core=False, sensory_services=True)
    assert consequences.stop_av and not consequences.close_pubsub
    assert robot.services == {"avstreaming": False, "camera": True, "audio": True, "slam": True}
    assert robot.microphones_in_use(0.0) is None


def test_a_core_reboot_also_closes_pubsub():
    assert MistyBackend().reboot(core=True, sensory_services=False).close_pubsub


def test_stream_ids_increase_with_every_start():
    robot = MistyBackend()
    first = robot.video_started(VideoParams(), 0.0).stream_id
    second = robot.video_started(VideoParams(), 0.0).stream_id
    assert second == first + 1


# ----- ranges: video --------------------------------------------------------------------------------------
def test_video_defaults():
    assert VideoParams.from_arguments(args()) == VideoParams(5678, 0, 0, 0, 100, False)


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("Port", 1023, False), ("Port", 1024, True), ("Port", 65535, True), ("Port", 65536, False),
        ("Rotation", -1, False), ("Rotation", 0, True), ("Rotation", 180, True), ("Rotation", 181, False),
        ("Width", 0, True), ("Width", 199, False), ("Width", 200, True), ("Width", 1600, True), ("Width", 1601, False),
        ("Height", 199, False), ("Height", 200, True), ("Height", 1600, True), ("Height", 1601, False),
        ("Quality", 0, False), ("Quality", 1, True), ("Quality", 100, True), ("Quality", 101, False),
    ],
)  # fmt: skip
def test_video_ranges_at_their_boundaries(name, value, ok):
    if ok:
        assert getattr(VideoParams.from_arguments(args(**{name: value})), name.lower()) == value
    else:
        with pytest.raises(BadArgument) as exc:
            VideoParams.from_arguments(args(**{name: value}))
        assert f"'{name}': {value}" in exc.value.message


def test_the_port_error_text_names_the_range():
    with pytest.raises(BadArgument) as exc:
        VideoParams.from_arguments(args(Port=80))
    assert exc.value.message == "Invalid value for parameter 'Port': 80. Must be between 1024 and 65535."


# ----- ranges: AV -----------------------------------------------------------------------------------------
def test_av_defaults_are_1080p30_at_5_mbps_with_128k_44_1_khz_audio():
    request = AvRequest.from_arguments(args(URL="rtmp://127.0.0.1/live/x"))
    assert (request.width, request.height, request.frame_rate) == (1920, 1080, 30)
    assert (request.video_bitrate, request.audio_bitrate, request.sample_rate) == (5_000_000, 128_000, 44100)
    assert request.mode == "rtmp"


def test_a_missing_url_is_refused_with_the_robots_text():
    with pytest.raises(BadArgument) as exc:
        AvRequest.from_arguments(args())
    assert "Missing required string parameter 'URL'." in exc.value.message


@pytest.mark.parametrize(
    "url", ["http://x/y", "rtmp:/x", "udp://1.2.3.4", "rtspd:", "rtspd:abc", "rtspd:80", "rtspd:70000"]
)
def test_bad_urls_are_refused(url):
    with pytest.raises(BadArgument, match="'URL'"):
        av(URL=url)


@pytest.mark.parametrize(("url", "mode", "port"), [("rtmp://h/a/k", "rtmp", None), ("rtsp://h:8554/x", "rtsp", None),
                                                   ("rtspd:1936", "rtspd", 1936), ("rtspd:1024", "rtspd", 1024)])
def test_url_modes(url, mode, port):
    request = av(URL=url)
    assert (request.mode, request.rtspd_port) == (mode, port)


@pytest.mark.parametrize(("width", "height"), AV_RESOLUTIONS)
def test_every_documented_av_resolution_is_accepted(width, height):
    assert (av(Width=width, Height=height).width, av(Width=width, Height=height).height) == (width, height)


@pytest.mark.parametrize(("width", "height"), [(800, 600), (640, None), (1921, 1080)])
def test_other_av_resolutions_and_width_alone_are_refused(width, height):
    values = {"URL": "rtspd:1936", "Width": width}
    if height is not None:
        values["Height"] = height
    with pytest.raises(BadArgument, match="'Width' and 'Height'"):
        AvRequest.from_arguments(args(**values))


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("FrameRate", 0, False), ("FrameRate", 1, True), ("FrameRate", 30, True), ("FrameRate", 31, False),
        ("VideoBitRate", 255_999, False), ("VideoBitRate", 256_000, True),
        ("VideoBitRate", 20_000_000, True), ("VideoBitRate", 20_000_001, False),
        ("AudioBitRate", 31_999, False), ("AudioBitRate", 32_000, True),
        ("AudioBitRate", 1_000_000, True), ("AudioBitRate", 1_000_001, False),
    ],
)  # fmt: skip
def test_av_ranges_at_their_boundaries(name, value, ok):
    if ok:
        av(**{name: value})
    else:
        with pytest.raises(BadArgument, match=f"'{name}': {value}"):
            av(**{name: value})


@pytest.mark.parametrize("rate", [*SAMPLE_RATES, 8000])
def test_sample_rates(rate):
    if rate in SAMPLE_RATES:
        assert av(AudioSampleRateHz=rate).sample_rate == rate
    else:
        with pytest.raises(BadArgument, match="'AudioSampleRateHz': 8000"):
            av(AudioSampleRateHz=rate)


def test_credentials_are_carried():
    request = av(URL="rtsp://h/x", UserName="misty", Password="secret")
    assert (request.username, request.password) == ("misty", "secret")


# ----- ranges: camera and microphones --------------------------------------------------------------------
def test_take_picture_defaults_to_the_session_size():
    picture = PictureRequest.from_arguments(args())
    assert (picture.width, picture.height, picture.base64) == (4160, 3120, False)


@pytest.mark.parametrize(("width", "height"), PICTURE_RESOLUTIONS)
def test_every_picture_size_is_accepted(width, height):
    assert PictureRequest.from_arguments(args(Width=width, Height=height)).width == width


@pytest.mark.parametrize(("width", "height"), [(640, 481), (1000, 1000), (640, None)])
def test_other_picture_sizes_or_one_side_alone_are_refused(width, height):
    values = {"Width": width} if height is None else {"Width": width, "Height": height}
    with pytest.raises(BadArgument, match="'Width' and 'Height'"):
        PictureRequest.from_arguments(args(**values))


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("MaxSpeechLength", 499, False), ("MaxSpeechLength", 500, True),
        ("MaxSpeechLength", 20_000, True), ("MaxSpeechLength", 20_001, False),
        ("SilenceTimeout", 499, False), ("SilenceTimeout", 500, True),
        ("SilenceTimeout", 10_000, True), ("SilenceTimeout", 10_001, False),
    ],
)  # fmt: skip
def test_speech_capture_ranges(name, value, ok):
    if ok:
        SpeechCaptureRequest.from_arguments(args(**{name: value}))
    else:
        with pytest.raises(BadArgument, match=f"'{name}'"):
            SpeechCaptureRequest.from_arguments(args(**{name: value}))


def test_audio_recordings_must_be_wav_files():
    assert recording_file_name(args(FileName="take.wav")) == "take.wav"
    with pytest.raises(BadArgument, match=r"\.wav"):
        recording_file_name(args(FileName="take.mp3"))
    with pytest.raises(BadArgument, match="Missing required string parameter 'FileName'"):
        recording_file_name(args())


def test_websocket_version_accepts_current_and_deprecated_only():
    robot = MistyBackend()
    robot.set_websocket_version("Deprecated")
    assert robot.websocket_version == "Deprecated"
    with pytest.raises(BadArgument, match="'Version'"):
        robot.set_websocket_version("Legacy")


# ----- reboot schedule (sans-I/O: ``now`` passed in, nothing sleeps) ------------------------------------------
def test_a_reboot_of_neither_part_is_no_reboot():
    robot = MistyBackend()
    robot.enable("avstreaming")
    assert robot.reboot(core=False, sensory_services=False) is None
    assert robot.services["avstreaming"]


def test_a_reboot_with_a_restart_delay_answers_503_until_the_delay_is_over():
    robot = MistyBackend()
    robot.reboot(core=False, sensory_services=True, now=100.0, restart_s=2.0)
    assert robot.status is RobotStatus.RESTARTING and robot.next_wakeup() == 102.0
    with pytest.raises(ServiceUnavailable) as exc:
        robot.require_ready()
    assert (exc.value.status, exc.value.message) == (503, "Robot is restarting")
    assert robot.advance(101.9) == []
    assert robot.advance(102.0) == [RobotReady(open_pubsub=False)]
    assert robot.status is RobotStatus.READY and robot.next_wakeup() is None
    robot.require_ready()


def test_a_reboot_during_a_restart_starts_the_wait_over():
    robot = MistyBackend()
    robot.reboot(core=False, sensory_services=True, now=0.0, restart_s=1.0)
    robot.reboot(core=False, sensory_services=True, now=0.8, restart_s=1.0)
    assert robot.advance(1.0) == [] and robot.next_wakeup() == 1.8
    assert robot.advance(1.8) == [RobotReady(open_pubsub=False)]


def test_a_core_reboot_closes_pubsub_once_and_reopens_it_when_ready():
    robot = MistyBackend()
    first = robot.reboot(core=True, sensory_services=False, now=0.0, restart_s=1.0)
    assert first is not None and first.close_pubsub and not first.open_pubsub
    # A second reboot while the event WebSocket is already closed has nothing to close.
    second = robot.reboot(core=True, sensory_services=True, now=0.5, restart_s=1.0)
    assert second is not None and not second.close_pubsub
    assert robot.advance(1.5) == [RobotReady(open_pubsub=True)]
    assert robot.pubsub_open


def test_a_core_reboot_without_delay_closes_and_reopens_pubsub_at_once():
    consequences = MistyBackend().reboot(core=True, sensory_services=False)
    assert consequences is not None and consequences.close_pubsub and consequences.open_pubsub


def test_a_core_reboot_resets_the_pubsub_format():
    robot = MistyBackend()
    robot.set_websocket_version("Deprecated")
    robot.reboot(core=False, sensory_services=True)
    assert robot.websocket_version == "Deprecated"
    robot.reboot(core=True, sensory_services=False)
    assert robot.websocket_version == "Current"


def test_a_reboot_reports_only_the_streams_that_were_running():
    robot = MistyBackend()
    consequences = robot.reboot(core=False, sensory_services=True)
    assert consequences is not None and not consequences.stop_video and not consequences.stop_av
    robot.video_started(VideoParams(), 0.0)
    consequences = robot.reboot(core=False, sensory_services=True)
    assert consequences is not None and consequences.stop_video and not consequences.stop_av


def test_robot_status_changes_follow_the_transition_table():
    robot = MistyBackend()
    assert robot.advance(10.0) == []  # nothing is due while ready
    with pytest.raises(IllegalTransition):
        robot._move(RobotStatus.READY)


# ----- AV status -----------------------------------------------------------------------------------------
def test_an_av_start_connects_then_streams_and_a_stop_returns_to_idle():
    robot = MistyBackend()
    robot.enable("avstreaming")
    robot.av_started(av(), now=0.0)
    assert robot.av_status is AvStatus.CONNECTING
    robot.av_connected()
    assert robot.av_status is AvStatus.STREAMING
    assert robot.stop_av_command().stop_av
    assert robot.av_status is AvStatus.IDLE and robot.av is None


def test_an_av_push_that_cannot_connect_leaves_the_robot_idle():
    robot = MistyBackend()
    robot.enable("avstreaming")
    robot.av_started(av(), now=0.0)
    robot.av_failed()
    assert robot.av_status is AvStatus.IDLE and robot.av is None
    robot.av_started(av(), now=1.0)  # and a new start is allowed


def test_av_connected_without_a_start_is_an_illegal_transition():
    with pytest.raises(IllegalTransition, match="idle -> streaming"):
        MistyBackend().av_connected()


def test_the_av_start_applies_its_own_gates():
    with pytest.raises(BadArgument) as exc:
        MistyBackend().av_started(av(), now=0.0)
    assert exc.value.message == AV_DISABLED


# ----- quirks ----------------------------------------------------------------------------------------------
def test_single_viewer_admits_only_the_first_viewer_until_a_reboot():
    robot = MistyBackend(single_viewer=True)
    assert robot.admit_viewer() and not robot.admit_viewer()
    robot.video_started(VideoParams(), 0.0)
    robot.video_stopped()
    assert not robot.admit_viewer()  # stop/start does not clear it
    robot.reboot(core=False, sensory_services=True)
    assert robot.admit_viewer()


def test_without_single_viewer_every_viewer_is_admitted():
    robot = MistyBackend()
    assert all(robot.admit_viewer() for _ in range(3))


def test_a_flaky_camera_enable_is_seeded_and_reported():
    def outcomes(seed: int) -> list[bool]:
        robot = MistyBackend(camera_enable_flaky=0.5, seed=seed)
        out = []
        for _ in range(20):
            robot.disable("camera")
            out.append(robot.switch_service("camera", True).camera_flaked)
        return out

    assert outcomes(3) == outcomes(3)
    assert any(outcomes(3)) and not all(outcomes(3))
    robot = MistyBackend(camera_enable_flaky=1.0)
    robot.disable("camera")
    assert robot.switch_service("camera", True).camera_flaked and not robot.services["camera"]
    assert not robot.switch_service("audio", True).camera_flaked  # only a camera enable from off flakes


# ----- information -----------------------------------------------------------------------------------------
def test_camera_details_measure_the_frame_rate_of_the_running_stream():
    robot = MistyBackend()
    assert robot.camera_details(5.0, frames_encoded=0, dropped_frames=0)["fpsActual"] == 30.0
    robot.video_started(VideoParams(), now=10.0)
    details = robot.camera_details(12.0, frames_encoded=40, dropped_frames=3)
    assert details == {"droppedFrames": 3, "fpsActual": 20.0, "fpsRequested": 30, "height": 480.0, "width": 640.0}
    robot.disable("camera")
    with pytest.raises(BadArgument, match="Camera service is disabled"):
        robot.camera_details(13.0, frames_encoded=0, dropped_frames=0)


def test_errors_carry_their_status_and_the_robots_failure_body():
    error = BadArgument("nope")
    assert (error.status, error.body()) == (400, {"error": "nope", "status": "Failed"})
    assert MistyError("too large", status=413).status == 413
