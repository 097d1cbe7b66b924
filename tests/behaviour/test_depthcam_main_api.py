"""The default profile over HTTP: each reply is what the Robopipe server's code on main answers, bugs included."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from PIL import Image

from emulators.depthcam.device import DepthCamEmulator

MXID = "14442C10D13EABCE00"
UNKNOWN_MXID = "1844301011D0F40F00"
CAM = f"/cameras/{MXID}"
STREAMS = f"{CAM}/streams"


# The conftest fixture: await emulator_factory("depthcam", settings=...) -> a started emulator.
@pytest.fixture
async def emulator(emulator_factory: Any) -> DepthCamEmulator:
    emu: DepthCamEmulator = await emulator_factory("depthcam")
    return emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, emu: DepthCamEmulator, method: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, str], Any]:
    async with http.request(method, emu.url() + path, allow_redirects=False, **kwargs) as response:
        raw = await response.read()
        body: Any = raw
        if response.content_type == "application/json":
            body = await response.json()
        elif response.content_type.startswith("text/"):
            body = raw.decode()
        return response.status, dict(response.headers), body


def nn_form(nn_config: str | None, model: bytes | None = b"blob") -> aiohttp.FormData:
    form = aiohttp.FormData()
    if model is not None:
        form.add_field("model", model, filename="model.blob", content_type="application/octet-stream")
    if nn_config is not None:
        form.add_field("nn_config", nn_config)
    return form


# ----- restarts -------------------------------------------------------------------------------------------
async def test_posting_an_active_stream_restarts_and_resets_every_sensors_control(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, control = await call(http, emulator, "POST", f"{STREAMS}/CAM_B/control", json={"contrast": 4})
    assert status == 200 and control["contrast"] == 4
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/")
    assert (status, body) == (201, None)
    await emulator.events.wait_for("pipeline.restarted", timeout=10)
    _, _, control = await call(http, emulator, "GET", f"{STREAMS}/CAM_B/control")
    assert control["contrast"] == 0


async def test_deleting_a_stream_not_on_the_device_is_202_and_restarts(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "DELETE", f"{STREAMS}/CAM_H/")
    assert (status, body) == (202, None)
    await emulator.events.wait_for("pipeline.restarted", timeout=10)


# ----- config ---------------------------------------------------------------------------------------------
async def test_a_depth_config_is_500_and_not_applied(emulator: DepthCamEmulator, http: aiohttp.ClientSession) -> None:
    await call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/")
    body = {"resolution": "THE_800_P", "fps": 30}
    status, headers, text = await call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/config", json=body)
    assert (status, text) == (500, "Internal Server Error")
    assert headers.get("Connection", "").lower() == "close"
    _, _, config = await call(http, emulator, "GET", f"{STREAMS}/DEPTH_B_C/config")
    assert config == {"resolution": "THE_400_P", "fps": 30.0}


async def test_a_mono_resolution_sent_to_the_colour_sensor_returns_the_colour_config_merged(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, config = await call(
        http, emulator, "POST", f"{STREAMS}/CAM_A/config", json={"resolution": "THE_720_P", "fps": 20}
    )
    assert status == 200
    assert config == {
        "resolution": "THE_720_P",
        "still_size": [1920, 1080],
        "preview_size": [300, 300],
        "video_size": [1920, 1080],
        "sensor_crop": [0.0, 0.0],
        "fps": 20.0,
    }


async def test_a_config_body_that_is_not_an_object_is_a_dataclass_type_error_per_config_class(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/config", json=[1, 2])
    assert status == 422
    assert [(e["type"], e["loc"], e["ctx"]) for e in body["detail"]] == [
        ("dataclass_type", ["body", name], {"class_name": name})
        for name in ("CameraConfigProperties", "ColorCameraConfigProperties", "MonoCameraConfigProperties")
    ]


async def test_a_json_syntax_error_is_answered_alone_before_an_unknown_camera(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    headers = {"Content-Type": "application/json"}
    path = f"/cameras/{UNKNOWN_MXID}/streams/CAM_Z/config"
    status, _, body = await call(http, emulator, "POST", path, data=b'{"fps": ', headers=headers)
    assert status == 422
    assert [(e["type"], e["loc"]) for e in body["detail"]] == [("json_invalid", ["body", 8])]


async def test_a_body_that_is_not_utf8_is_a_400_parse_error(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    headers = {"Content-Type": "application/json"}
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/control", data=b"\xff\xfe{", headers=headers)
    assert (status, body) == (400, {"detail": "There was an error parsing the body"})


async def test_a_broken_multipart_body_is_a_400_parse_error(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    data = b"no boundary here"
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/nn", data=data, headers=headers)
    assert (status, body) == (400, {"detail": "There was an error parsing the body"})


# ----- control --------------------------------------------------------------------------------------------
async def test_a_null_control_field_is_an_int_type_422_and_only_focus_may_be_null(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/control", json={"exposure_time": None})
    assert status == 422
    assert [(e["type"], e["loc"]) for e in body["detail"]] == [("int_type", ["body", "exposure_time"])]
    status, _, control = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/control", json={"focus": None})
    assert status == 200 and control["focus"] is not None


# ----- stills ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", ["CAM_B", "DEPTH_B_C"])
async def test_mono_and_depth_jpeg_stills_are_single_channel(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, stream: str
) -> None:
    if stream.startswith("DEPTH"):
        await call(http, emulator, "POST", f"{STREAMS}/{stream}/")
    status, headers, data = await call(http, emulator, "GET", f"{STREAMS}/{stream}/still")
    assert (status, headers["Content-Type"]) == (200, "image/jpeg")
    picture = Image.open(io.BytesIO(data))
    assert (picture.format, picture.mode) == ("JPEG", "L")


@pytest.mark.parametrize(("fmt", "pillow_format"), [("pdf", "PDF"), ("ico", "ICO"), ("tga", "TGA"), ("PNG", "PNG")])
async def test_any_format_pillow_writes_is_served_under_the_name_sent(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, fmt: str, pillow_format: str
) -> None:
    status, headers, data = await call(http, emulator, "GET", f"{STREAMS}/CAM_B/still", params={"format": fmt})
    assert (status, headers["Content-Type"]) == (200, f"image/{fmt}")
    if pillow_format == "PDF":
        assert data.startswith(b"%PDF")
    else:
        assert Image.open(io.BytesIO(data)).format == pillow_format


@pytest.mark.parametrize("fmt", ["jpg", "nope", ""])
async def test_a_format_pillow_cannot_write_is_a_500(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, fmt: str
) -> None:
    status, _, text = await call(http, emulator, "GET", f"{STREAMS}/CAM_B/still", params={"format": fmt})
    assert (status, text) == (500, "Internal Server Error")


# ----- NN -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["YOLO", "MobileNet"])
async def test_yolo_or_mobilenet_without_nn_config_is_a_500(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, kind: str
) -> None:
    form = nn_form(json.dumps({"type": kind}))
    status, _, _ = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/nn", data=form)
    assert status == 500


async def test_generic_with_nn_config_is_a_422_at_each_config_class(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    form = nn_form(json.dumps({"type": "Generic", "nn_config": {}}))
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/nn", data=form)
    assert status == 422
    assert [e["loc"] for e in body["detail"]] == [["nn_config", "NNYoloConfig"], ["nn_config", "NNMobileNetConfig"]]


async def test_an_nn_config_that_is_not_json_is_json_invalid_at_the_empty_loc(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/nn", data=nn_form("not json"))
    assert status == 422
    assert [(e["type"], e["loc"], e["input"]) for e in body["detail"]] == [("json_invalid", [], "not json")]


async def test_deploying_on_an_inactive_stream_is_201_and_activates_it(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    form = nn_form(json.dumps({"type": "YOLO", "nn_config": {"num_classes": 3}}))
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/nn", data=form)
    assert (status, body) == (201, None)
    _, _, listing = await call(http, emulator, "GET", f"{STREAMS}/")
    assert listing["DEPTH_B_C"] == {"active": True} and listing["CAM_B"] == {"active": False}


# ----- cameras --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_creating_or_deleting_an_unknown_mxid_is_a_500(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, method: str
) -> None:
    status, _, text = await call(http, emulator, method, f"/cameras/{UNKNOWN_MXID}/")
    assert (status, text) == (500, "Internal Server Error")


async def test_deleting_a_camera_is_a_500_and_it_stays_listed_unbooted_with_stale_streams(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, _ = await call(http, emulator, "DELETE", f"{CAM}/")
    assert status == 500
    _, _, cameras = await call(http, emulator, "GET", "/cameras/")
    assert [(c["mxid"], c["state"]) for c in cameras] == [(MXID, "X_LINK_UNBOOTED")]
    _, _, listing = await call(http, emulator, "GET", f"{STREAMS}/")
    assert listing["CAM_A"] == {"active": True}
    status, _, _ = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/")
    assert status == 500
    status, _, _ = await call(http, emulator, "POST", f"{CAM}/")  # boots it again, then fails its reply
    assert status == 500
    _, _, cameras = await call(http, emulator, "GET", "/cameras/")
    assert cameras[0]["state"] == "X_LINK_BOOTED"


# ----- transport ------------------------------------------------------------------------------------------
async def test_get_root_is_plain_text(emulator: DepthCamEmulator, http: aiohttp.ClientSession) -> None:
    status, headers, text = await call(http, emulator, "GET", "/")
    assert (status, text) == (200, "Hello from Robopipe API!")
    assert headers["Content-Type"].startswith("text/plain")


async def test_the_connection_is_closed_after_a_404_null(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, headers, body = await call(http, emulator, "GET", f"/cameras/{UNKNOWN_MXID}/")
    assert (status, body, headers.get("Connection", "").lower()) == (404, None, "close")
    status, headers, _ = await call(http, emulator, "GET", "/cameras/")
    assert status == 200 and headers.get("Connection", "").lower() != "close"


async def test_a_simple_cors_response_says_any_origin(emulator: DepthCamEmulator, http: aiohttp.ClientSession) -> None:
    _, headers, _ = await call(http, emulator, "GET", "/cameras/", headers={"Origin": "http://studio.example"})
    assert headers["Access-Control-Allow-Origin"] == "*"
    _, headers, _ = await call(
        http, emulator, "GET", "/cameras/", headers={"Origin": "http://studio.example", "Cookie": "a=b"}
    )
    assert headers["Access-Control-Allow-Origin"] == "http://studio.example"


# ----- WebSockets -----------------------------------------------------------------------------------------
VIDEO = f"{STREAMS}/{{}}/video"
NN = f"{STREAMS}/{{}}/nn"


async def frames(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.BINARY, message
        out.append(message.data)
    return out


async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    while (message := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
        pass
    return message


async def test_a_restart_closes_the_first_viewer_with_1000_strands_the_second_and_a_late_joiner_gets_init_only(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(emulator.url() + VIDEO.format("CAM_B")) as first:
        await frames(first, 2)
        async with http.ws_connect(emulator.url() + VIDEO.format("CAM_B")) as second:
            await frames(second, 2)
            await call(http, emulator, "POST", f"{STREAMS}/CAM_C/")  # any restart re-opens the whole device
            await until_closed(first)
            assert first.close_code == 1000
            await emulator.events.wait_for("stream.stuck", timeout=10)
            await emulator.events.wait_for("pipeline.restarted", timeout=10)
            async with http.ws_connect(emulator.url() + VIDEO.format("CAM_B")) as late:
                (init,) = await frames(late, 1)
                assert init[4:8] == b"ftyp"
                with pytest.raises(TimeoutError):
                    await late.receive(timeout=1.0)
            # The stranded viewer is still connected and gets nothing more, also across a later restart.
            await call(http, emulator, "DELETE", f"{STREAMS}/CAM_C/")
            with pytest.raises(TimeoutError):
                await second.receive(timeout=0.5)
            assert not second.closed


async def test_with_the_race_off_a_restart_closes_every_viewer_with_1000(
    emulator_factory: Any, http: aiohttp.ClientSession
) -> None:
    emu = await emulator_factory("depthcam", settings={"video_restart_race": False})
    async with (
        http.ws_connect(emu.url() + VIDEO.format("CAM_B")) as first,
        http.ws_connect(emu.url() + VIDEO.format("CAM_B")) as second,
    ):
        await frames(first, 2)
        await frames(second, 2)
        await call(http, emu, "POST", f"{STREAMS}/CAM_C/")
        for ws in (first, second):
            await until_closed(ws)
            assert ws.close_code == 1000


async def test_video_on_an_inactive_stream_accepts_then_drops_the_connection_without_a_close_frame(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(emulator.url() + VIDEO.format("DEPTH_B_C")) as ws:
        message = await ws.receive(timeout=10)
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert ws.close_code == 1006  # no close frame came


async def test_nn_on_an_inactive_stream_is_an_http_500_at_the_handshake(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(emulator.url() + NN.format("DEPTH_B_C"))
    assert refused.value.status == 500


# ----- routing and the controller -------------------------------------------------------------------------
async def test_a_405_allows_only_the_first_registered_routes_method(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, headers, _ = await call(http, emulator, "PUT", f"{CAM}/")
    assert (status, headers["Allow"]) == (405, "GET")
    status, headers, _ = await call(http, emulator, "GET", f"{STREAMS}/CAM_A/")
    assert (status, headers["Allow"]) == (405, "POST")


async def test_the_controller_listing_route_takes_integers_only(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "GET", "/controller/ro")
    assert (status, body) == (404, {"detail": "Not Found"})
    status, _, body = await call(http, emulator, "GET", "/controller/5")
    assert status == 422 and body["detail"][0]["type"] == "string_pattern_mismatch"


async def test_an_unknown_circuit_is_a_500(emulator: DepthCamEmulator, http: aiohttp.ClientSession) -> None:
    status, _, text = await call(http, emulator, "GET", "/controller/ai/9_99")
    assert (status, text) == (500, "Internal Server Error")
    status, _, _ = await call(http, emulator, "POST", "/controller/led/9_99", json={"value": 7})
    assert status == 500  # the lookup fails before the body is judged


async def test_device_info_names_the_camera_model(emulator: DepthCamEmulator, http: aiohttp.ClientSession) -> None:
    _, _, info = await call(http, emulator, "GET", f"{CAM}/")
    assert list(info)[:3] == ["mxid", "name", "camera_name"] and info["camera_name"] == "OAK-D"


async def test_a_404_null_or_500_carries_no_cors_headers(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    origin = {"Origin": "http://studio.example"}
    for method, path in (("GET", f"/cameras/{UNKNOWN_MXID}/"), ("POST", f"/cameras/{UNKNOWN_MXID}/")):
        status, headers, _ = await call(http, emulator, method, path, headers=origin)
        assert status in (404, 500) and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = await call(http, emulator, "GET", f"{STREAMS}/CAM_A/control", headers=origin)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
