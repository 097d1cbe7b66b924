"""Sensor control as stored snapshots: served without copies, serialized once per change, never stale."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from emulators.depthcam import schemas
from emulators.depthcam.device import DepthCamEmulator
from emulators.depthcam.model import Camera, oak_d
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

MXID = "14442C10D13EABCE00"
CONTROL = f"/cameras/{MXID}/streams/CAM_A/control"


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
) -> tuple[int, str, Any]:
    async with http.request(method, emu.url() + path, allow_redirects=False, **kwargs) as response:
        return response.status, response.headers["Content-Type"], json.loads(await response.read())


def test_an_update_that_changes_nothing_keeps_the_stored_snapshot() -> None:
    camera = Camera.boot(oak_d(), 0)
    before = camera.control_snapshot("CAM_A")
    assert camera.apply_control("CAM_A", {"brightness": 0, "contrast": None}) is before
    assert camera.apply_control("CAM_A", {"brightness": 3}) is not before
    assert before["brightness"] == 0  # the replaced snapshot was not changed in place


def test_the_same_number_as_another_json_type_is_a_change() -> None:
    camera = Camera.boot(oak_d(), 0)
    camera.apply_control("CAM_A", {"focus": {"lens_position": 0.0}})
    before = camera.control_snapshot("CAM_A")
    # 0 and 0.0 are equal in Python but not on the wire, so the stored value must follow the update.
    after = camera.apply_control("CAM_A", {"focus": {"lens_position": 0}})
    assert after is not before
    assert type(after["focus"]["lens_position"]) is int


def test_control_and_set_control_return_copies_the_caller_may_change() -> None:
    camera = Camera.boot(oak_d(), 0)
    camera.control("CAM_A")["focus"]["lens_position"] = 0.7
    changed = camera.set_control("CAM_A", {"saturation": 2})
    changed["saturation"] = 9
    stored = camera.control_snapshot("CAM_A")
    assert stored["saturation"] == 2
    assert stored["focus"]["lens_position"] == 0.0


async def test_get_control_serves_every_change_and_reset_state(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    status, content_type, body = await call(http, emulator, "GET", CONTROL)
    assert (status, body["brightness"]) == (200, 0)
    assert content_type == "application/json; charset=utf-8"
    for brightness in (4, 4, -2):
        status, _, posted = await call(http, emulator, "POST", CONTROL, json={"brightness": brightness})
        assert (status, posted["brightness"]) == (200, brightness)
        _, _, body = await call(http, emulator, "GET", CONTROL)
        assert body == posted
    await emulator.reset()
    _, _, body = await call(http, emulator, "GET", CONTROL)
    assert body["brightness"] == 0


async def test_a_reactivated_stream_serves_its_boot_control(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    await call(http, emulator, "POST", CONTROL, json={"contrast": 5})
    stream = f"/cameras/{MXID}/streams/CAM_A/"
    async with http.delete(emulator.url() + stream) as response:
        assert response.status == 202
    status, _, _ = await call(http, emulator, "GET", CONTROL)
    assert status == 404
    async with http.post(emulator.url() + stream) as response:
        assert response.status == 201
    _, _, body = await call(http, emulator, "GET", CONTROL)
    assert body["contrast"] == 0


async def test_path_parameters_of_remembered_routes_stay_per_request(
    emulator: DepthCamEmulator, http: aiohttp.ClientSession
) -> None:
    for _ in range(2):
        status, _, body = await call(http, emulator, "GET", "/cameras/NOSUCHCAMERA/streams/CAM_A/control")
        assert (status, body) == (404, None)
        status, _, body = await call(http, emulator, "GET", f"/cameras/{MXID}/streams/cam_z/control")
        assert status == 422
        assert body["detail"][0]["loc"] == ["path", "stream_name"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"brightness": 2, "contrast": -1}',
        b'{"exposure_time": "120", "auto_exposure_enable": 0, "focus": {"lens_position": 1}}',
        b'{"auto_whitebalance_mode": "OFF", "manual_whitebalance": 2500.0, "unknown": 1}',
        b'{"brightness": NaN}',
        b'{"brightness": 11}',
        '{"brightness": 3}'.encode("utf-16"),
        b'{"brightness": 1, "brightness": 2}',
        b"[]",
    ],
)
def test_control_bodies_validated_from_json_match_the_python_path(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    def outcome() -> str:
        value, errors = schemas.validate_body(schemas.SensorControlUpdate, raw, "application/json")
        dumped = None if value is None else value.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        return json.dumps([dumped, errors], sort_keys=True)

    fast = outcome()
    monkeypatch.setattr(schemas, "JSON_FAST_PATH", frozenset())
    assert fast == outcome()
