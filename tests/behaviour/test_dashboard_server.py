"""The dashboard's server without a browser: it relays to each emulator's control plane (adding the control token
when one is set, once the page has given it), refuses what the control plane refuses, and names what it does not
have."""

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
        async with aiohttp.ClientSession(dashboard.url, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            for path in ("/api/endpoints", "/api/misty/_emulator/state", "/api/events"):
                async with http.get(path) as resp:  # a guarded dashboard gives nothing before the token
                    assert resp.status == 401 and (await resp.json())["field"] == "token"
            async with http.post("/api/session", json={"token": "a guess"}) as resp:
                assert resp.status == 401 and "does not match" in (await resp.json())["error"]
            async with http.post("/api/session", json={"token": TOKEN}) as resp:
                assert resp.status == 200
                cookie = resp.cookies["benchtwin_dashboard"]
                assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie.value != TOKEN
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
        async with aiohttp.ClientSession() as http, http.get(f"{dashboard.url}api/endpoints",
                                                             headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200 and "misty" in (await resp.json())["emulators"]  # a script sends the token
    finally:
        await dashboard.aclose()
