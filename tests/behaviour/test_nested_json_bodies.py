"""A thousand levels of JSON on each device's own JSON endpoints: the device's 400 shape naming the body, never a
500, and the emulator goes on answering (the control planes are covered in test_hostile_clients)."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import aiohttp
import pytest

from tests.conftest import EmulatorFactory

NESTED = '{"a": ' * 1000 + "1" + "}" * 1000
JSON = {"Content-Type": "application/json"}
MXID = "14442C10D13EABCE00"
CONFERENCE = "0a8f3c2e-6d41-4b7a-8e5c-9f1d2b3a4c5d"  # "Weekly product sync" in the default scenario
ADA = "3b1e7a9c-2d4f-4a6b-8c0e-1f3a5b7c9d2e"  # one of its participants


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request_for(device: str, emu: Any) -> tuple[str, dict[str, str]]:
    """(url, headers) of one JSON-body operation of the device, with its dev credentials."""
    creds = emu.credentials()
    match device:
        case "misty":
            return f"{emu.url()}/api/led", JSON
        case "depthcam":
            return f"{emu.url()}/cameras/{MXID}/streams/CAM_A/control", JSON
        case "recall":
            return f"{emu.url()}/api/v1/bot/", {**JSON, "Authorization": creds["authorization"]}
        case "signalwire":
            account = f"{emu.url()}/api/laml/2010-04-01/Accounts/{creds['project']}"
            auth = basic(creds["project"], creds["token"])
            return f"{account}/Conferences/{CONFERENCE}/Participants/{ADA}", {**JSON, "Authorization": auth}
        case "videodb":
            return f"{emu.url()}/rtstream", {**JSON, "x-access-token": creds["api_key"]}
    raise AssertionError(device)


# The depth camera answers bodies in two ways (its server's main and the documented API): both are checked.
@pytest.mark.parametrize(
    ("device", "profile"),
    [("misty", {}), ("depthcam", {}), ("depthcam", {"profile": "documented"}), ("recall", {}), ("signalwire", {}),
     ("videodb", {})],
    ids=["misty", "depthcam", "depthcam-documented", "recall", "signalwire", "videodb"],
)
async def test_a_thousand_levels_of_json_is_the_devices_400_and_the_emulator_keeps_answering(
    emulator_factory: EmulatorFactory, device: str, profile: dict[str, str]
) -> None:
    emu = await emulator_factory(device, settings=profile)
    url, headers = request_for(device, emu)
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=NESTED, headers=headers) as resp:
            assert resp.status in (400, 422), (device, resp.status, await resp.text())
            body = await resp.json()
        started = time.monotonic()
        async with asyncio.timeout(1.0), http.get(f"{emu.url()}/_emulator/health") as health:
            assert health.status == 200
        assert time.monotonic() - started < 1.0
    text = str(body).lower()
    assert "body" in text or "json" in text or "nested" in text, body
