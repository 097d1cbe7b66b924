"""Hardware in the loop on Recall's dial-outs: a bot's realtime WebSocket endpoint recorded through the recording
receiver on its way to the user's receiver, then replayed and diffed. (The emulator sends realtime events over
WebSocket endpoints; HTTP dial-outs are covered by SignalWire's status callbacks.)"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from clients.recall import RealtimeReceiver
from emulators.hil.cassette import Cassette
from emulators.hil.parity import ParityRun
from emulators.hil.replay import ReplayServer
from emulators.hil.rules import load_rules
from emulators.pytest_plugin import start_emulator
from tests.behaviour.hil_helpers import EGRESS, recording

MEET = "https://zoom.us/j/1234567890"
EVENTS = ["participant_events.join"]


def bot_request(ws_url: str) -> dict:
    return {"meeting_url": MEET, "bot_name": "Notes", "recording_config": {"realtime_endpoints": [
        {"type": "websocket", "url": ws_url, "events": EVENTS, "metadata": {"site": "lab"}},
    ]}}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Create a bot whose participant joins stream to a WebSocket (with a token in its URL); leave the call."""
    out = tmp_path_factory.mktemp("recall") / "realtime.cassette"
    seen: dict[str, object] = {}

    async def record() -> None:
        with start_emulator("recall") as stand_in:
            auth = {"Authorization": stand_in.credentials["authorization"]}
            async with recording(stand_in, {}, out) as session, RealtimeReceiver() as ws_receiver, \
                    aiohttp.ClientSession(headers=auth) as http:
                base = session.proxy.url + "/api/v1/bot/"
                async with http.post(base, json=bot_request(ws_receiver.url + "?token=s3cret")) as resp:
                    assert resp.status == 201, await resp.text()
                    bot = await resp.json()
                await ws_receiver.wait_for(lambda: len(ws_receiver.of("participant_events.join")) >= 2)
                async with http.post(f"{base}{bot['id']}/leave_call/") as resp:
                    assert resp.status == 200, await resp.text()
                await ws_receiver.wait_for(lambda: all(c.closed_at for c in ws_receiver.connections))
                seen["ws_joins"] = len(ws_receiver.of("participant_events.join"))
                seen["query"] = ws_receiver.query

    asyncio.run(record())
    return out, seen


def test_the_users_receiver_got_the_bots_events_through_the_recording_receiver(recorded):
    cassette = Cassette.load(recorded[0])
    [stream] = [e for e in cassette.exchanges if e.dial_out is not None]
    assert stream.is_websocket and stream.dial_out["field"] == "recording_config.realtime_endpoints.0.url"
    joins = [json.loads(m.data) for m in stream.messages if m.direction == "send"]
    assert [j["event"] for j in joins] == ["participant_events.join"] * recorded[1]["ws_joins"]
    assert joins[0]["data"]["realtime_endpoint"]["metadata"] == {"site": "lab"}
    assert stream.close_code == 1000 and stream.closed_by == "device"
    assert recorded[1]["query"] == {"token": "s3cret"}  # forwarded to the user's receiver as given


def test_the_token_in_the_receiver_url_is_redacted(recorded):
    text = (recorded[0] / "cassette.har").read_text()
    assert "s3cret" not in text and "token=<redacted>" in text


async def test_parity_with_the_same_profile_finds_no_difference_in_the_dial_outs(recorded):
    with start_emulator("recall") as reference:
        run = ParityRun(Cassette.load(recorded[0]), reference.url, load_rules("recall"),
                        credentials=reference.credentials)
        differences = await run.run()
    assert differences == [], "\n".join(str(d.as_dict()) for d in differences)


async def test_replay_streams_the_recorded_joins_to_the_new_receivers(recorded):
    server = ReplayServer(Cassette.load(recorded[0]), egress=EGRESS)
    await server.start()
    try:
        async with RealtimeReceiver() as ws_receiver, aiohttp.ClientSession() as http:
            async with http.post(server.url + "/api/v1/bot/", headers={"Authorization": "Token x"},
                                 json=bot_request(ws_receiver.url)) as resp:
                assert resp.status == 201, await resp.text()
            await ws_receiver.wait_for(lambda: len(ws_receiver.of("participant_events.join")) == recorded[1]["ws_joins"]
                                       and all(c.closed_at for c in ws_receiver.connections))
    finally:
        await server.aclose()
