"""The Robopipe API over HTTP: FastAPI routing, 422 shapes, exclusivity, concurrency, restarts, quirks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from emulators.depthcam.device import DepthCamEmulator
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

MXID = "14442C10D13EABCE00"
CAM = f"/cameras/{MXID}"
STREAMS = f"{CAM}/streams"
COLOR_720P = {
    "resolution": "THE_720_P",
    "still_size": [1280, 720],
    "preview_size": [300, 300],
    "video_size": [1280, 720],
    "sensor_crop": [0.0, 0.0],
    "fps": 30.0,
}


@pytest.fixture
async def emulator() -> AsyncIterator[DepthCamEmulator]:
    async with DepthCamEmulator(egress=EGRESS, settings={"port": 0}) as emu:
        yield emu


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


async def streams(http: aiohttp.ClientSession, emu: DepthCamEmulator) -> dict[str, bool]:
    status, _, body = await call(http, emu, "GET", f"{STREAMS}/")
    assert status == 200
    return {name: value["active"] for name, value in body.items()}


# ----- routing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "target"),
    [
        ("GET", "/cameras", "/cameras/"),
        ("GET", f"{STREAMS}", f"{STREAMS}/"),
        ("POST", f"{STREAMS}/CAM_A", f"{STREAMS}/CAM_A/"),
        ("GET", f"{STREAMS}/CAM_A/config/", f"{STREAMS}/CAM_A/config"),
        ("GET", "/controller", "/controller/"),
        ("GET", "/controller/ai/", "/controller/ai"),
    ],
)
async def test_a_toggled_trailing_slash_is_a_307_to_the_canonical_path_keeping_the_query(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, method: str, path: str, target: str
) -> None:
    status, headers, body = await call(http, emulator, method, path + "?format=png")
    assert status == 307 and body == b""
    assert headers["Location"] == f"{emulator.url()}{target}?format=png"


CONTRACT_PATHS = yaml.safe_load((Path(__file__).resolve().parents[2] / "contracts/openapi/depthcam.yaml").read_text())[
    "paths"
]
EXAMPLE_PARAMS = {"mxid": MXID, "stream_name": "CAM_A", "circuit": "1_01", "device_type": "ro"}


@pytest.mark.parametrize("template", sorted(CONTRACT_PATHS))
async def test_every_path_with_its_trailing_slash_toggled_redirects_to_it(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, template: str
) -> None:
    path = template.format(**EXAMPLE_PARAMS)
    toggled = path[:-1] if path.endswith("/") else path + "/"
    method = next(iter(CONTRACT_PATHS[template])).upper()
    status, headers, _ = await call(http, emulator, method, toggled + "?x=1")
    assert (status, headers.get("Location")) == (307, f"{emulator.url()}{path}?x=1")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "HEAD", "OPTIONS"])
async def test_a_wrong_method_is_405_with_allow(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, method: str
) -> None:
    status, headers, body = await call(http, emulator, method, f"{STREAMS}/CAM_A/config")
    assert status == 405
    assert headers["Allow"] == "GET, POST"
    if method != "HEAD":
        assert body == {"detail": "Method Not Allowed"}


async def test_405_beats_the_redirect_and_unknown_routes_are_404(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, headers, _ = await call(http, emulator, "GET", f"{STREAMS}/CAM_A/")
    assert (status, headers["Allow"]) == (405, "POST, DELETE")
    for path in ("/nowhere", f"{STREAMS}/CAM_A/video", f"{CAM}/sensors/"):
        status, _, body = await call(http, emulator, "GET", path)
        assert (status, body) == (404, {"detail": "Not Found"}), path


async def test_cors_preflight_allows_the_browser_origin(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    headers = {"Origin": "http://studio.local", "Access-Control-Request-Method": "POST"}
    status, got, _ = await call(http, emulator, "OPTIONS", f"{STREAMS}/CAM_A/", headers=headers)
    assert status == 200
    assert got["Access-Control-Allow-Origin"] == "http://studio.local"
    assert "POST" in got["Access-Control-Allow-Methods"]


# ----- 422 shapes and precedence -----------------------------------------------------------------------------
async def test_a_pattern_failure_is_a_fastapi_422_naming_the_parameter(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "GET", f"{STREAMS}/CAM_I/config")
    assert status == 422
    assert body == {
        "detail": [
            {
                "type": "string_pattern_mismatch",
                "loc": ["path", "stream_name"],
                "msg": "String should match pattern 'CAM_[A-H]|DEPTH_[A-H]_[A-H]'",
                "input": "CAM_I",
                "ctx": {"pattern": "CAM_[A-H]|DEPTH_[A-H]_[A-H]"},
            }
        ]
    }


async def test_patterns_are_unanchored_and_lookups_exact(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    assert (await call(http, emulator, "GET", f"{STREAMS}/XCAM_AB/config"))[:3:2] == (404, None)
    assert (await call(http, emulator, "GET", "/cameras/abc1/"))[:3:2] == (404, None)
    assert (await call(http, emulator, "GET", "/cameras/abc/"))[0] == 422


@pytest.mark.parametrize(
    ("payload", "kwargs", "expected"),
    [
        ("missing", {}, {"type": "missing", "loc": ["body"]}),
        ("bad json", {"data": b"{", "headers": {"Content-Type": "application/json"}}, {"type": "json_invalid"}),
        ("array", {"json": [1]}, {"type": "model_attributes_type", "loc": ["body"]}),
        (
            "below minimum",
            {"json": {"exposure_time": 0}},
            {"type": "greater_than_equal", "loc": ["body", "exposure_time"]},
        ),
        ("above maximum", {"json": {"manual_whitebalance": 13000}}, {"type": "less_than_equal"}),
        ("fraction", {"json": {"contrast": 12.5}}, {"type": "int_from_float", "loc": ["body", "contrast"]}),
        ("nested", {"json": {"focus": {"lens_position": 2}}}, {"loc": ["body", "focus", "lens_position"]}),
    ],
)
async def test_control_body_errors_have_fastapis_type_and_loc(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, payload: str, kwargs: dict, expected: dict
) -> None:
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/control", **kwargs)
    assert status == 422, payload
    item = body["detail"][0]
    assert {key: item[key] for key in expected} == expected
    assert {"type", "loc", "msg", "input"} <= item.keys()


async def test_an_incomplete_config_gets_one_error_per_union_member(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/config", json={"fps": 30})
    assert status == 422
    locs = [item["loc"] for item in body["detail"]]
    assert ["body", "CameraConfigProperties", "resolution"] in locs
    assert ["body", "ColorCameraConfigProperties", "sensor_crop"] in locs
    assert ["body", "MonoCameraConfigProperties", "resolution"] in locs


async def test_path_and_body_errors_come_back_together_but_an_unknown_camera_wins(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "POST", "/cameras/abc/streams/CAM_I/control", json={"brightness": 99})
    assert status == 422
    assert [item["loc"] for item in body["detail"]] == [
        ["path", "mxid"],
        ["path", "stream_name"],
        ["body", "brightness"],
    ]
    status, _, body = await call(http, emulator, "POST", "/cameras/ABC/streams/CAM_I/control", json={"brightness": 99})
    assert (status, body) == (404, None)


async def test_an_inactive_stream_is_404_null_before_its_body_is_judged(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, headers, body = await call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/control", json={"brightness": 99})
    assert (status, body) == (404, None)
    assert headers["Content-Type"].startswith("application/json")


async def test_control_coerces_like_pydantic_and_ignores_unknown_keys(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    update = {"brightness": "3", "auto_exposure_lock": "yes", "sharpness": 4}
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_B/control", json=update)
    assert status == 200
    assert (body["brightness"], body["auto_exposure_lock"]) == (3, True)
    assert "sharpness" not in body


async def test_config_round_trips_and_a_wrong_variant_is_a_value_error(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_A/config", json=COLOR_720P)
    assert (status, body) == (200, COLOR_720P)
    assert (await call(http, emulator, "GET", f"{STREAMS}/CAM_A/config"))[2] == COLOR_720P
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/CAM_B/config", json=COLOR_720P)
    assert status == 422
    assert (body["detail"][0]["type"], body["detail"][0]["loc"]) == ("value_error", ["body"])


# ----- exclusivity through the REST API ----------------------------------------------------------------------
async def test_activating_depth_over_rest_turns_its_sensors_off_and_answers_201_null(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, _, body = await call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/")
    assert (status, body) == (201, None)
    assert await streams(http, emulator) == {"CAM_A": True, "CAM_B": False, "CAM_C": False, "DEPTH_B_C": True}


async def test_reactivating_a_sensor_over_rest_removes_the_pair_and_leaves_its_partner_off(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    await call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/")
    assert (await call(http, emulator, "POST", f"{STREAMS}/CAM_C/"))[0] == 201
    assert await streams(http, emulator) == {"CAM_A": True, "CAM_B": False, "CAM_C": True, "DEPTH_B_C": False}


async def test_deactivating_depth_over_rest_does_not_restore_its_sensors(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    await call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/")
    status, _, body = await call(http, emulator, "DELETE", f"{STREAMS}/DEPTH_B_C/")
    assert (status, body) == (202, None)
    assert await streams(http, emulator) == {"CAM_A": True, "CAM_B": False, "CAM_C": False, "DEPTH_B_C": False}
    # Idempotent: deactivating again, or activating an active stream, changes nothing.
    assert (await call(http, emulator, "DELETE", f"{STREAMS}/DEPTH_B_C/"))[0] == 202
    assert (await call(http, emulator, "POST", f"{STREAMS}/CAM_A/"))[0] == 201


@pytest.mark.parametrize("stream", ["CAM_D", "DEPTH_A_B", "CAM_AB"])
async def test_streams_not_on_the_device_are_404_null_over_rest(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession, stream: str
) -> None:
    for method in ("POST", "DELETE"):
        assert (await call(http, emulator, method, f"{STREAMS}/{stream}/"))[::2] == (404, None)


# ----- concurrency and restarts ------------------------------------------------------------------------------
def exclusive(state: dict[str, bool]) -> bool:
    return not (state["DEPTH_B_C"] and (state["CAM_B"] or state["CAM_C"]))


async def test_concurrent_conflicting_activations_serialize_and_leave_a_consistent_state(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    serial_outcomes = [
        {"CAM_A": True, "CAM_B": True, "CAM_C": False, "DEPTH_B_C": False},  # depth first, then CAM_B
        {"CAM_A": True, "CAM_B": False, "CAM_C": False, "DEPTH_B_C": True},  # CAM_B first (no change), then depth
    ]
    for _ in range(3):
        await emulator.reset()
        results = await asyncio.gather(
            call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/"),
            call(http, emulator, "POST", f"{STREAMS}/CAM_B/"),
        )
        assert [status for status, _, _ in results] == [201, 201]
        state = await streams(http, emulator)
        assert exclusive(state) and state in serial_outcomes


async def test_a_request_racing_a_depth_activation_either_wins_or_gets_the_documented_404(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    depth, control = await asyncio.gather(
        call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/"),
        call(http, emulator, "POST", f"{STREAMS}/CAM_B/control", json={"brightness": 2}),
    )
    assert depth[0] == 201
    assert (control[0], control[2]) in {(404, None)} or (control[0] == 200 and control[2]["brightness"] == 2)
    state = await streams(http, emulator)
    assert state["DEPTH_B_C"] and exclusive(state)


async def test_mutations_take_the_restart_delay_and_concurrent_reads_wait_for_the_new_state() -> None:
    async with (
        DepthCamEmulator(egress=EGRESS, settings={"port": 0, "restart_delay_s": 4.0}, time_scale=0.05) as emu,
        aiohttp.ClientSession() as http,
    ):
        started = time.monotonic()
        activation = asyncio.create_task(call(http, emu, "POST", f"{STREAMS}/DEPTH_B_C/"))
        ready = emu.runtimes[MXID].ready
        async with asyncio.timeout(5):
            while ready.is_set():  # noqa: ASYNC110 - the emulator exposes no "restart began" event
                await asyncio.sleep(0.005)
        state = await streams(http, emu)
        assert not ready.is_set() or activation.done()
        assert (await activation)[0] == 201
        assert time.monotonic() - started >= 0.2
        assert state["DEPTH_B_C"] is True


async def test_boot_failures_replay_the_retry_schedule_then_answer_500() -> None:
    async with (
        DepthCamEmulator(egress=EGRESS, settings={"port": 0, "boot_failures": 6}, time_scale=0.002) as emu,
        aiohttp.ClientSession() as http,
    ):
        started = time.monotonic()
        status, _, body = await call(http, emu, "POST", f"{STREAMS}/DEPTH_B_C/")
        assert (status, body) == (500, "Internal Server Error")
        assert time.monotonic() - started >= 31 * 0.002
        assert (await call(http, emu, "DELETE", f"{STREAMS}/DEPTH_B_C/"))[0] == 202


# ----- quirks, forms, devices --------------------------------------------------------------------------------
async def test_the_robopipe_server_profile_answers_the_real_500s() -> None:
    async with (
        DepthCamEmulator(egress=EGRESS, settings={"port": 0, "profile": "robopipe-server"}) as emu,
        aiohttp.ClientSession() as http,
    ):
        for method, path, kwargs in [
            ("GET", f"{STREAMS}/DEPTH_B_C/config", {}),  # Q1 inactive stream
            ("POST", f"{STREAMS}/CAM_D/", {}),  # Q1 stream not on the device
            ("POST", f"{STREAMS}/CAM_B/config", {"json": COLOR_720P}),  # Q2 colour config on a mono
            ("GET", f"{STREAMS}/CAM_B/still?format=jpg", {}),  # Q4 unknown format
            ("POST", f"{CAM}/", {}),  # Q6 create acts, then fails validation
        ]:
            status, headers, body = await call(http, emu, method, path, **kwargs)
            assert (status, body) == (500, "Internal Server Error"), path
            assert headers["Content-Type"].startswith("text/plain")


async def test_quirks_for_depth_config_and_impossible_sizes_answer_500() -> None:
    settings = {"port": 0, "quirk_depth_config_500": True, "quirk_boot_error_500": True}
    async with DepthCamEmulator(egress=EGRESS, settings=settings) as emu, aiohttp.ClientSession() as http:
        await call(http, emu, "POST", f"{STREAMS}/DEPTH_B_C/")
        mono = {"resolution": "THE_400_P", "fps": 30}
        assert (await call(http, emu, "POST", f"{STREAMS}/DEPTH_B_C/config", json=mono))[0] == 500
        too_big = {**COLOR_720P, "still_size": [1920, 1080]}
        assert (await call(http, emu, "POST", f"{STREAMS}/CAM_A/config", json=too_big))[0] == 500
        # Without the quirks the same requests are applied (depth) and rejected with a 422 naming the field.
    async with DepthCamEmulator(egress=EGRESS, settings={"port": 0}) as emu, aiohttp.ClientSession() as http:
        await call(http, emu, "POST", f"{STREAMS}/DEPTH_B_C/")
        assert (await call(http, emu, "POST", f"{STREAMS}/DEPTH_B_C/config", json=mono))[0] == 200
        status, _, body = await call(http, emu, "POST", f"{STREAMS}/CAM_A/config", json=too_big)
        assert (status, body["detail"][0]["loc"]) == (422, ["body", "still_size"])


async def test_the_stream_list_can_take_the_newer_list_form() -> None:
    async with (
        DepthCamEmulator(egress=EGRESS, settings={"port": 0, "stream_list_form": "list"}) as emu,
        aiohttp.ClientSession() as http,
    ):
        body = (await call(http, emu, "GET", f"{STREAMS}/"))[2]
        assert body[0] == {"name": "CAM_A", "active": True} and body[-1] == {"name": "DEPTH_B_C", "active": False}


async def test_a_lab_rig_serves_an_lr_with_three_pairs_and_an_oak_1_without_depth() -> None:
    async with (
        DepthCamEmulator(egress=EGRESS, settings={"port": 0, "rig": "lab"}) as emu,
        aiohttp.ClientSession() as http,
    ):
        cameras = (await call(http, emu, "GET", "/cameras/"))[2]
        assert [c["mxid"] for c in cameras] == ["14442C10D13EABCE00", "18443010D116631200", "14442C1071659ACD00"]
        lr = "/cameras/18443010D116631200/streams"
        assert list((await call(http, emu, "GET", f"{lr}/"))[2]) == [
            "CAM_A", "CAM_B", "CAM_C", "DEPTH_B_C", "DEPTH_B_A", "DEPTH_A_C"
        ]  # fmt: skip
        await call(http, emu, "POST", f"{lr}/DEPTH_B_C/")
        await call(http, emu, "POST", f"{lr}/DEPTH_A_C/")
        state = (await call(http, emu, "GET", f"{lr}/"))[2]
        assert [n for n, v in state.items() if v["active"]] == ["DEPTH_A_C"]
        one = "/cameras/14442C1071659ACD00/streams"
        assert list((await call(http, emu, "GET", f"{one}/"))[2]) == ["CAM_A"]
        assert (await call(http, emu, "POST", f"{one}/DEPTH_B_C/"))[::2] == (404, None)
        # The LR has IR: the stored config is replaced whole.
        ir = {"flood_light": 0.5}
        assert (await call(http, emu, "POST", "/cameras/18443010D116631200/ir", json=ir))[2] == {
            "flood_light": 0.5,
            "dot_projector": 0.0,
        }
        assert (await call(http, emu, "GET", f"{CAM}/ir"))[2] is None


async def test_deleting_a_camera_closes_it_and_creating_it_reboots_it(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    await call(http, emulator, "POST", f"{STREAMS}/DEPTH_B_C/")
    assert (await call(http, emulator, "DELETE", f"{CAM}/"))[0] == 200
    assert (await call(http, emulator, "GET", "/cameras/"))[2] == []
    assert (await call(http, emulator, "GET", f"{STREAMS}/"))[::2] == (404, None)
    status, _, info = await call(http, emulator, "POST", f"{CAM}/")
    assert (status, info["mxid"]) == (200, MXID)
    assert await streams(http, emulator) == {"CAM_A": True, "CAM_B": True, "CAM_C": True, "DEPTH_B_C": False}


async def test_stats_keep_memory_totals_consistent(emulator: DepthCamEmulator, http: aiohttp.ClientSession) -> None:
    stats = (await call(http, emulator, "GET", f"{CAM}/stats"))[2]
    for key in ("cmx_memory_usage", "ddr_memory_usage"):
        assert stats[key]["used"] + stats[key]["remaining"] == stats[key]["total"]
    assert 20 < stats["chip_temperature"]["average"] < 80


async def test_controller_circuits_can_be_listed_read_and_set(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    assert len((await call(http, emulator, "GET", "/controller/"))[2]) == 22
    assert (await call(http, emulator, "POST", "/controller/led/1_01", json={"value": 1}))[2]["value"] == 1
    status, _, body = await call(http, emulator, "POST", "/controller/led/1_01", json={"value": 2})
    assert (status, body["detail"][0]["type"]) == (422, "less_than_equal")
    status, _, body = await call(http, emulator, "GET", "/controller/di/7_77")
    assert (status, body["detail"][0]["loc"]) == (422, ["path", "circuit"])
    assert (await call(http, emulator, "GET", "/controller/sensor"))[2] == []
