"""Misty REST behaviour over real HTTP: envelopes, headers, argument binding, ranges, services and gating."""

from __future__ import annotations

import io
import json

import aiohttp
import av
import numpy as np
import pytest

from clients.misty import MistyClient, MistyError
from clients.stamp import StreamKind, read_stamp
from emulators.misty.model import AV_RESOLUTIONS, SAMPLE_RATES


@pytest.fixture
async def emu(emulator_factory):
    return await emulator_factory("misty")


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def misty(emu):
    async with MistyClient(emu.url()) as client:
        yield client


async def call(http, emu, method, path, **kwargs):
    async with http.request(method, emu.url() + path, **kwargs) as resp:
        body = await resp.read()
        return resp, (json.loads(body) if body and resp.content_type == "application/json" else body)


# ----- envelopes and headers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "status", "version"),
    [
        ("GET", "/api/services/camera", 200, "Current"),
        ("POST", "/api/avstreaming/start", 400, "Beta"),
        ("POST", "/api/videostreaming/start?Port=80", 400, "Alpha"),
        ("GET", "/api/no/such/command", 404, "Current"),
        ("OPTIONS", "/api/videostreaming/start", 200, "Alpha"),
        ("POST", "/api/audio/speech/capture?MaxSpeechLength=1", 400, "Beta"),
    ],
)
async def test_every_response_carries_command_version_and_cors(emu, http, method, path, status, version):
    resp, _ = await call(http, emu, method, path)
    assert resp.status == status
    assert resp.headers["Misty-Command-Version"] == version
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "DELETE,GET,OPTIONS,POST,PUT" == resp.headers["Access-Control-Allow-Methods"]
    if method == "OPTIONS":
        assert resp.headers["Access-Control-Allow-Headers"] == "*"


async def test_success_and_failure_envelopes(emu, http):
    _, ok = await call(http, emu, "POST", "/api/services/camera/enable")
    assert ok == {"result": True, "status": "Success"}
    _, failed = await call(http, emu, "POST", "/api/avstreaming/stop")
    assert failed["status"] == "Failed" and "AV streaming service is disabled" in failed["error"]


async def test_an_unknown_route_or_verb_is_command_not_found(emu, http):
    resp, body = await call(http, emu, "GET", "/api/videostreaming/start")
    assert resp.status == 404 and body["error"] == "Command not found: GET /api/videostreaming/start"
    resp, body = await call(http, emu, "DELETE", "/api/teleport")
    assert resp.status == 404 and body["status"] == "Failed"


async def test_pubsub_without_a_websocket_upgrade_is_a_400_in_the_robots_shape(emu, http):
    resp, body = await call(http, emu, "GET", "/pubsub")
    assert resp.status == 400 and body["status"] == "Failed" and "WebSocket" in body["error"]
    assert resp.headers["Misty-Command-Version"] == "Current"


async def test_a_body_that_is_not_a_json_object_is_a_400(emu, http):
    resp, body = await call(http, emu, "POST", "/api/videostreaming/start", data=b"[1,2,3]")
    assert resp.status == 400 and "JSON object" in body["error"]


# ----- argument binding --------------------------------------------------------------------------------------
def bindings(port: int) -> dict[str, dict]:
    """The same StartVideoStreaming call as each client family sends it (misty.md §2.1)."""
    return {
        "pascal_json": {
            "json": {"Port": port, "Rotation": 90, "Width": 500, "Height": 625, "Quality": 20, "Overlay": False}
        },
        "sdk_camel_with_nulls": {
            "json": {"port": port, "rotation": 90, "width": 500, "height": 625, "quality": 20, "overlay": None}
        },
        "query_only_post": {
            "params": {"Port": str(port), "Rotation": "90", "Width": "500", "Height": "625", "Quality": "20"}
        },
        "text_plain_body": {
            "data": f'{{"Port":{port},"Rotation":90,"Width":500,"Height":625,"Quality":20,"Overlay":"false"}}',
            "headers": {"Content-Type": "text/plain"},
        },
        "strings_and_null": {
            "json": {"Port": str(port), "Rotation": "90", "Width": "500", "Height": "625", "Quality": "20",
                     "Overlay": "null"}
        },
    }


@pytest.mark.parametrize("style", sorted(bindings(0)))
async def test_every_argument_style_binds_identically(emu, http, style, free_port):
    resp, body = await call(http, emu, "POST", "/api/videostreaming/start", **bindings(free_port)[style])
    assert resp.status == 200, body
    video = emu.state()["video"]
    assert (video["port"], video["rotation"], video["width"], video["height"], video["quality"], video["overlay"]) == (
        free_port, 90, 500, 625, 20, False)
    await call(http, emu, "POST", "/api/videostreaming/stop")


async def test_a_get_with_a_json_body_binds_like_the_sdk_sends_it(emu, http):
    resp, body = await call(http, emu, "GET", "/api/help", json={"command": "StartAvStreaming"})
    assert resp.status == 200
    assert [c["apiCommand"]["name"] for c in body["result"]["post"]] == ["StartAvStreaming"]


# ----- ranges over the wire (service off: a valid value reaches the service gate, an invalid one does not) ----
VIDEO_CASES = [
    ("Port", 1023, False), ("Port", 1024, True), ("Port", 65535, True), ("Port", 65536, False),
    ("Rotation", -1, False), ("Rotation", 0, True), ("Rotation", 180, True), ("Rotation", 181, False),
    ("Width", 0, True), ("Width", 199, False), ("Width", 200, True), ("Width", 1600, True), ("Width", 1601, False),
    ("Height", 199, False), ("Height", 1600, True), ("Height", 1601, False),
    ("Quality", 0, False), ("Quality", 1, True), ("Quality", 100, True), ("Quality", 101, False),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "ok"), VIDEO_CASES)
async def test_video_start_ranges_over_http(emu, http, name, value, ok):
    await call(http, emu, "POST", "/api/services/camera/disable")
    resp, body = await call(http, emu, "POST", "/api/videostreaming/start", json={name: value})
    assert resp.status == 400
    if ok:
        assert body["error"].startswith("Camera service is disabled")
    else:
        assert f"'{name}': {value}" in body["error"]


AV_CASES = [
    ("FrameRate", 0, False), ("FrameRate", 1, True), ("FrameRate", 30, True), ("FrameRate", 31, False),
    ("VideoBitRate", 255_999, False), ("VideoBitRate", 256_000, True),
    ("VideoBitRate", 20_000_000, True), ("VideoBitRate", 20_000_001, False),
    ("AudioBitRate", 31_999, False), ("AudioBitRate", 32_000, True),
    ("AudioBitRate", 1_000_000, True), ("AudioBitRate", 1_000_001, False),
    *[("AudioSampleRateHz", rate, True) for rate in SAMPLE_RATES], ("AudioSampleRateHz", 8000, False),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "ok"), AV_CASES)
async def test_av_start_ranges_over_http(emu, http, name, value, ok):
    resp, body = await call(http, emu, "POST", "/api/avstreaming/start", json={"URL": "rtspd:1936", name: value})
    assert resp.status == 400
    if ok:
        assert body["error"].startswith("AV streaming service is disabled")
    else:
        assert f"'{name}': {value}" in body["error"]


@pytest.mark.parametrize(("width", "height", "ok"), [*[(w, h, True) for w, h in AV_RESOLUTIONS], (800, 600, False),
                                                     (640, None, False)])
async def test_av_resolutions_over_http(emu, http, width, height, ok):
    args = {"URL": "rtspd:1936", "Width": width}
    if height is not None:
        args["Height"] = height
    _, body = await call(http, emu, "POST", "/api/avstreaming/start", json=args)
    assert body["error"].startswith("AV streaming service is disabled") is ok


@pytest.mark.parametrize(("args", "needle"), [({}, "Missing required string parameter 'URL'."),
                                              ({"URL": "http://x/y"}, "'URL'")])
async def test_av_start_url_missing_or_with_a_bad_scheme(emu, http, args, needle):
    resp, body = await call(http, emu, "POST", "/api/avstreaming/start", json=args)
    assert resp.status == 400 and needle in body["error"]


# ----- services, exclusivity, gating -------------------------------------------------------------------------
async def test_boot_state_and_exclusivity_through_the_status_endpoints(misty):
    assert await misty.camera_service_enabled() and not await misty.av_streaming_service_enabled()
    assert await misty.audio_service_enabled()
    await misty.enable_av_streaming_service()
    assert await misty.av_streaming_service_enabled() and not await misty.camera_service_enabled()
    await misty.enable_camera_service()
    assert await misty.camera_service_enabled() and not await misty.av_streaming_service_enabled()
    await misty.disable_camera_service()
    assert not await misty.camera_service_enabled() and not await misty.av_streaming_service_enabled()


async def test_camera_calls_fail_while_the_camera_is_off(misty):
    await misty.disable_camera_service()
    for call_camera in (
        lambda: misty.start_video_streaming(port=5678),
        lambda: misty.take_picture(640, 480),
        misty.get_camera_details,
    ):
        with pytest.raises(MistyError) as exc:
            await call_camera()
        assert exc.value.status == 400 and exc.value.error.startswith("Camera service is disabled")


async def test_av_twice_is_refused_and_microphones_are_blocked_while_streaming(misty, free_port):
    await misty.enable_av_streaming_service()
    await misty.stop_av_streaming()  # a defensive stop before starting succeeds
    assert await misty.start_av_streaming(f"rtspd:{free_port}", width=320, height=240, frame_rate=10)
    try:
        with pytest.raises(MistyError, match="already active"):
            await misty.start_av_streaming(f"rtspd:{free_port}", width=320, height=240)
        for endpoint, args in [("audio/record/start", {"FileName": "a.wav"}), ("audio/speech/capture", {}),
                               ("audio/keyphrase/start", {}), ("audio/raw/record/start", {})]:
            with pytest.raises(MistyError, match="Microphones are in use by AV streaming"):
                await misty.request("POST", endpoint, args)
        for endpoint in ("audio/record/stop", "audio/keyphrase/stop", "audio/raw/record/stop"):
            assert await misty.request("POST", endpoint) is True
    finally:
        assert await misty.stop_av_streaming()
    assert await misty.stop_av_streaming()  # idempotent while the service is on


async def test_stops_are_idempotent(misty):
    for _ in range(2):
        assert await misty.stop_video_streaming()
        assert await misty.request("POST", "faces/detection/stop")


async def test_a_video_start_on_a_busy_port_is_a_500(emu, misty):
    with pytest.raises(MistyError) as exc:
        await misty.start_video_streaming(port=emu.ports["rest"])
    assert exc.value.status == 500
    assert exc.value.error == f"Cannot bind video stream port {emu.ports['rest']}: address in use"
    assert emu.state()["video"] is None


# ----- information endpoints ---------------------------------------------------------------------------------
async def test_help_lists_commands_with_lowercase_verbs_and_typed_arguments(misty):
    result = await misty.get_help()
    assert set(result) == {"get", "post", "delete", "put"}
    start = next(c for c in result["post"] if c["endpoint"] == "videostreaming/start")
    assert start["apiCommand"]["name"] == "StartVideoStreaming"
    # The GitHub SDK generator's table: 0.1.1's plus Object (TrainNlpEngine's intents).
    allowed = {"String", "Boolean", "DateTime", "Int32", "Double", "Byte[]", "Byte", "Single", "GridCell", "Object"}
    for commands in result.values():
        for command in commands:
            for arg in command["apiCommand"]["arguments"].values():
                assert arg["getValueType"].split(", ")[0].split(".")[-1] in allowed
                assert isinstance(arg["ordinalNumber"], int)
    assert list(start["apiCommand"]["arguments"]) == ["port", "rotation", "width", "height", "quality", "overlay"]


async def test_websockets_lists_every_event_class_and_filters_by_class(misty):
    everything = await misty.get_websocket_names()
    assert len(everything) == 34  # the firmware's classes (issue 13), not the union of both SDKs' lists
    tof = await misty.get_websocket_names("TimeOfFlight")
    assert tof[0]["class"] == "TimeOfFlight" and "DistanceInMeters" in tof[0]["nestedProperties"]
    assert await misty.get_websocket_names("Teleport") == []


async def test_device_battery_and_camera_shapes(misty):
    device = await misty.get_device_information()
    assert device["robotVersion"] and device["networkConnectivity"] in (
        "Unknown", "None", "LocalAccess", "LimitedInternetAccess", "InternetAccess")
    assert {"rtcBoard", "mcBoard"} <= set(device["hardwareInfo"])
    battery = await misty.get_battery_level()
    assert 0 < battery.charge_percent <= 1
    assert battery.state in ("Charging", "Discharging", "Charged", "Unknown", "Fault")
    assert battery.raw["sensorId"] == "charge"
    camera = await misty.get_camera_details()
    assert (camera.width, camera.height, camera.fps_requested) == (640.0, 480.0, 30.0)


async def test_take_picture_swaps_width_and_height_and_is_stamped(misty):
    picture = await misty.take_picture(640, 480)
    frame = next(av.open(io.BytesIO(picture.jpeg)).decode(video=0)).to_ndarray(format="rgb24")
    assert frame.shape == (640, 480, 3)
    assert read_stamp(frame).stream_kind == StreamKind.MISTY_PICTURE
    encoded = await misty.take_picture(320, 240, base64=True, file_name="snap")
    assert (encoded.width, encoded.height, encoded.name) == (240, 320, "snap")
    assert encoded.jpeg[:2] == b"\xff\xd8"
    with pytest.raises(MistyError) as exc:
        await misty.take_picture(640, 481)
    assert exc.value.status == 400 and "'Width' and 'Height'" in exc.value.error


async def test_websocket_version_round_trip(misty):
    assert await misty.request("GET", "websocket/version") == "Current"
    assert await misty.request("POST", "websocket/version", {"version": "Deprecated"})
    assert await misty.request("GET", "websocket/version") == "Deprecated"
    with pytest.raises(MistyError, match="'Version'"):
        await misty.request("POST", "websocket/version", {"version": "Legacy"})


def test_client_base_url_accepts_host_port_or_url():
    assert MistyClient("10.0.0.7").base_url == "http://10.0.0.7"
    assert MistyClient("127.0.0.1:9080").base_url == "http://127.0.0.1:9080"
    assert MistyClient("http://robot:80/api").base_url == "http://robot:80"
    assert np.uint8  # numpy is used by the stamp reader above
