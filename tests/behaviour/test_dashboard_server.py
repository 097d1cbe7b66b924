"""The dashboard's server without a browser: it relays to each emulator's control plane (adding the control token
when one is set), refuses what the control plane refuses, and names what it does not have."""

from __future__ import annotations

import aiohttp

from emulators.app import endpoints_document
from emulators.config import Config
from emulators.dashboard.server import Dashboard
from tests.conftest import EmulatorFactory

TOKEN = "dashboard-test-token-0123456789"


async def test_the_relay_reaches_the_control_plane_with_the_token_and_keeps_its_protections(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("misty", config=Config(control_token=TOKEN))
    dashboard = Dashboard(endpoints_document([emu]), host="127.0.0.1", port=0, control_token=TOKEN)
    await dashboard.start()
    try:
        async with aiohttp.ClientSession(dashboard.url) as http:
            async with http.get("/api/misty/_emulator/state") as resp:
                assert resp.status == 200 and (await resp.json())["device"] == "misty"
            async with http.post("/api/misty/_emulator/faults", json={
                    "match": {"stream": "video"}, "action": {"type": "drop"}}) as resp:
                assert resp.status == 201
            assert len(emu.faults) == 1
            async with http.post("/api/misty/_emulator/reset", data="{}", headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 415
            async with http.get("/api/misty/_emulator/state", headers={"Origin": "http://elsewhere.example"}) as r:
                assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
            async with http.get("/api/robot/_emulator/state") as resp:
                assert resp.status == 404 and "misty" in (await resp.json())["error"]
            async with http.get("/static/../server.py") as resp:
                assert resp.status == 404
            async with http.get("/") as resp:
                assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        async with aiohttp.ClientSession() as http, http.get(f"{emu.url()}/_emulator/state") as direct:
            assert direct.status == 401  # the token is the dashboard's to add, not the browser's
    finally:
        await dashboard.aclose()
