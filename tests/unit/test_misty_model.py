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
    BadArgument,
    CommandNotFound,
    MistyBackend,
    PictureRequest,
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
