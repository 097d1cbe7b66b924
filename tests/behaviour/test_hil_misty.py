"""Hardware in the loop on Misty's pubsub WebSocket: a `sticky_subscriptions` stand-in recorded, replayed, diffed."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from emulators.hil.cassette import Cassette
from emulators.hil.replay import MISS_HEADER, ReplayServer
from emulators.pytest_plugin import start_emulator
from tests.behaviour.hil_helpers import EGRESS, parity_against_default, recording

STICKY = {"sticky_subscriptions": True}
# BumpSensor registers but never fires in the emulator, so each session's messages are exactly its replies.
SUBSCRIBE = json.dumps({"Operation": "subscribe", "Type": "BumpSensor", "EventName": "bump"})
REGISTERED = "Registration Status: API event registered."
TIMEOUT = 5.0


async def _subscribe_once(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.ws_connect(url) as ws:
        await ws.send_str(SUBSCRIBE)
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        return json.loads(msg.data)


@pytest.fixture(scope="module")
def cassette_dir(tmp_path_factory):
    """Subscribe, disconnect, reconnect and subscribe again under the same name, plus one REST read."""
    out = tmp_path_factory.mktemp("misty") / "sticky.cassette"

    async def record() -> None:
        with start_emulator("misty", STICKY) as stand_in:
            async with recording(stand_in, STICKY, out) as session, aiohttp.ClientSession() as http:
                ws_url = f"ws://{session.proxy.host}:{session.proxy.port}/pubsub"
                assert (await _subscribe_once(http, ws_url))["message"] == REGISTERED
                assert "Cannot register" in (await _subscribe_once(http, ws_url))["message"]
                async with http.get(session.proxy.url + "/api/battery") as resp:
                    await resp.read()

    asyncio.run(record())
    return out


def test_websocket_sessions_are_recorded_with_messages_opcodes_and_close_codes(cassette_dir):
    har = json.loads((cassette_dir / "cassette.har").read_text())
    first = har["log"]["entries"][0]
    assert first["_resourceType"] == "websocket" and first["response"]["status"] == 101
    assert [(m["type"], m["opcode"]) for m in first["_webSocketMessages"]] == [("send", 1), ("receive", 1)]
    assert json.loads(first["_webSocketMessages"][0]["data"])["EventName"] == "bump"
    assert first["_webSocketClose"] == {"code": 1000, "by": "client"}
    times = [m["time"] for m in first["_webSocketMessages"]]
    assert times == sorted(times)


async def test_parity_with_the_default_profile_reports_only_the_refused_second_registration(cassette_dir):
    differences = await parity_against_default(cassette_dir)
    assert [(d.index, d.where) for d in differences] == [(1, "message 0 message")], [d.as_dict() for d in
                                                                                    differences]
    assert "Cannot register an event with same name (bump)" in differences[0].recorded
    assert differences[0].emulator == REGISTERED


async def test_parity_with_the_same_quirk_finds_nothing(cassette_dir):
    differences = await parity_against_default(cassette_dir, settings=STICKY)
    assert differences == [], [d.as_dict() for d in differences]


async def test_replay_plays_each_session_back_in_order(cassette_dir):
    server = ReplayServer(Cassette.load(cassette_dir), egress=EGRESS)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"ws://127.0.0.1:{server.port}/pubsub"
            assert (await _subscribe_once(http, url))["message"] == REGISTERED
            assert "Cannot register" in (await _subscribe_once(http, url))["message"]
            async with http.get(server.url + "/api/battery") as resp:
                assert resp.status == 200 and (await resp.json())["status"] == "Success"
    finally:
        await server.aclose()


async def test_a_replay_miss_is_a_404_naming_the_closest_recorded_request(cassette_dir):
    server = ReplayServer(Cassette.load(cassette_dir), egress=EGRESS)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url + "/api/batery?x=1") as resp:
            assert resp.status == 404 and resp.headers[MISS_HEADER] == "miss"
            report = await resp.json()
    finally:
        await server.aclose()
    assert report["request"] == "GET /api/batery?x=1"
    assert report["closest"]["request"] == "GET /api/battery"
    assert report["closest"]["differs_in"] == ["path", "query"]
