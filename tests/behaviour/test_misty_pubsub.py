"""Misty's /pubsub WebSocket: registration replies, duplicates, conditions, debounce, formats, unsubscribe, quirks."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime

import aiohttp
import pytest

from clients.misty import EventCondition, MistyClient, MistyError

TIMEOUT = 5.0
REGISTERED = "Registration Status: API event registered."


@pytest.fixture
async def emu(emulator_factory):
    return await emulator_factory("misty")


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def connect(http, emu):
    return await http.ws_connect(emu.endpoints()["pubsub"])


async def next_json(ws) -> dict:
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def created(message: dict) -> float:
    """Seconds of the robot's ``created`` timestamp (7 fractional digits, more than strptime takes)."""
    whole, fraction = message["created"].rstrip("Z").split(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + int(fraction) / 10**7


async def events(ws, n: int) -> list[tuple[float, dict]]:
    out = []
    for _ in range(n):
        out.append((time.monotonic(), await next_json(ws)))
    return out


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "b", "DebounceMs": 1000}),
        str({"Operation": "subscribe", "Type": "IMU", "DebounceMs": 1000, "EventName": "b", "Message": "",
             "ReturnProperty": None, "EventConditions": None, "KeepAlive": True}),
        '{"operation":"subscribe","type":"IMU","EventName":"b","DebounceMS":1000}',
    ],
)
async def test_json_python_repr_and_odd_key_casing_all_register(emu, http, text):
    async with await connect(http, emu) as ws:
        await ws.send_str("")  # empty frames are ignored
        await ws.send_str(text)
        assert await next_json(ws) == {"eventName": "b", "message": REGISTERED}
        event = await next_json(ws)
        assert event["eventName"] == "b" and event["message"]["sensorId"] == "imu"
        assert "type" not in event and "sensorName" not in event["message"]


async def test_a_duplicate_name_gets_the_robots_reply_and_no_events(emu, http):
    async with await connect(http, emu) as first, await connect(http, emu) as second:
        await first.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "imu", "DebounceMs": 0}))
        assert (await next_json(first))["message"] == REGISTERED
        await second.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "imu"}))
        assert await next_json(second) == {
            "eventName": "imu",
            "message": "Registration Status: Cannot register an event with same name (imu) as a previously "
            "registered event.",
        }
        await events(first, 3)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(second.receive(), 0.3)


async def test_an_unknown_type_is_not_registered(emu, http):
    async with await connect(http, emu) as ws:
        await ws.send_str(json.dumps({"Operation": "subscribe", "Type": "Teleport", "EventName": "t"}))
        reply = await next_json(ws)
        assert reply["eventName"] == "t" and reply["message"] != REGISTERED
        assert reply["message"].startswith("Registration Status: Cannot register")


async def test_conditions_filter_time_of_flight_by_sensor_and_distance(emu, http):
    async with await connect(http, emu) as ws:
        await ws.send_str(json.dumps({
            "Operation": "subscribe", "Type": "TimeOfFlight", "EventName": "front", "DebounceMs": 0,
            "EventConditions": [{"Property": "SensorId", "Inequality": "=", "Value": "toffc"},
                                {"Property": "DistanceInMeters", "Inequality": ">=", "Value": 0.3},
                                {"Property": "Status", "Inequality": "exists"}],
        }))  # fmt: skip
        assert (await next_json(ws))["message"] == REGISTERED
        got = [e for _, e in await events(ws, 5)]
    assert all(e["message"]["sensorId"] == "toffc" and e["message"]["distanceInMeters"] >= 0.3 for e in got)


async def test_not_equal_excludes_edge_sensors(emu, http):
    async with await connect(http, emu) as ws:
        await ws.send_str(json.dumps({
            "Operation": "subscribe", "Type": "TimeOfFlight", "EventName": "range", "DebounceMs": 0,
            "EventConditions": [{"Property": "Type", "Inequality": "!=", "Value": "Edge"}],
        }))  # fmt: skip
        await next_json(ws)
        got = [e for _, e in await events(ws, 12)]
    assert {e["message"]["type"] for e in got} == {"Range"}
    assert {e["message"]["sensorId"] for e in got} == {"toffr", "toffl", "toffc", "tofr"}


async def test_default_debounce_spaces_events_by_250_ms(emu, http):
    async with await connect(http, emu) as ws:
        await ws.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "imu"}))
        await next_json(ws)
        stamps = [created(e["message"]) for _, e in await events(ws, 4)]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 0.25 for gap in gaps), gaps


async def test_debounce_equal_to_the_imu_period_delivers_every_sample(emu, http):
    async with await connect(http, emu) as ws:
        for name, debounce in (("every", 0), ("period", 50)):  # IMU is sampled at 20 Hz: every 50 ms
            await ws.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": name,
                                          "DebounceMs": debounce}))  # fmt: skip
            assert (await next_json(ws))["message"] == REGISTERED
        got = [e for _, e in await events(ws, 40)]
    # Each sample is offered to both subscriptions at once, so the two deliveries of a sample are adjacent.
    first = next(i for i, e in enumerate(got) if e["eventName"] == "every")
    pairs = [got[i : i + 2] for i in range(first, len(got) - 1, 2)]
    assert len(pairs) >= 19
    for pair in pairs:
        assert sorted(e["eventName"] for e in pair) == ["every", "period"], pair
        assert pair[0]["message"]["created"] == pair[1]["message"]["created"]


async def test_zero_debounce_gives_the_source_rate_and_self_state_repeats_unchanged(emu, http):
    async with await connect(http, emu) as ws:
        await ws.send_str(
            json.dumps({"Operation": "subscribe", "Type": "SelfState", "EventName": "s", "DebounceMs": 0})
        )
        await next_json(ws)
        got = await events(ws, 11)
    rate = 10 / (created(got[-1][1]["message"]["battery"]) - created(got[0][1]["message"]["battery"]))
    assert 6 <= rate <= 14, rate
    assert got[0][1]["message"]["cameraStatus"]["onboardCameraStatus"] == "Ready"


async def test_return_property_sends_only_that_value(emu, http):
    async with await connect(http, emu) as ws:
        await ws.send_str(json.dumps({"Operation": "subscribe", "Type": "SelfState", "EventName": "v",
                                      "DebounceMs": 0, "ReturnProperty": "battery.voltage"}))
        await next_json(ws)
        event = await next_json(ws)
    assert isinstance(event["message"], float) and 8.0 <= event["message"] <= 8.5


async def test_the_deprecated_format_adds_type_and_sensor_name(emu, http):
    async with MistyClient(emu.url()) as misty:
        await misty.request("POST", "websocket/version", {"Version": "Deprecated"})
    async with await connect(http, emu) as ws:
        await ws.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "b"}))
        await next_json(ws)
        event = await next_json(ws)
    assert event["type"] == "IMU" and event["message"]["sensorName"] == "/Sensors/RTC/IMU"


async def test_unsubscribe_only_affects_its_own_connection_and_keeps_the_socket_open(emu, http):
    async with await connect(http, emu) as owner, await connect(http, emu) as other:
        await owner.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "i", "DebounceMs": 0}))
        await next_json(owner)
        await other.send_str(json.dumps({"Operation": "unsubscribe", "EventName": "i"}))
        await events(owner, 3)  # still flowing
        await owner.send_str("{'Operation': 'unsubscribe', 'EventName': 'i', 'Message': ''}")
        # Drain what was in flight, then silence on an open socket.
        with pytest.raises(asyncio.TimeoutError):
            while True:
                await asyncio.wait_for(owner.receive(), 0.3)
        assert not owner.closed
        await owner.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "i"}))
        assert (await next_json(owner))["message"] == REGISTERED


async def test_subscriptions_end_with_their_connection_by_default(emu, http):
    for _ in range(2):
        since = emu.events.last_id
        async with await connect(http, emu) as ws:
            await ws.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "again"}))
            assert (await next_json(ws))["message"] == REGISTERED
        # The robot forgets the connection's names before it reports the disconnect.
        await emu.events.wait_for("client.disconnected", lambda e: e.detail["stream"] == "pubsub", since=since)


async def test_sticky_subscriptions_refuse_the_name_after_a_reconnect_until_a_core_reboot(emulator_factory, http):
    emu = await emulator_factory("misty", settings={"sticky_subscriptions": True})
    subscribe = json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "sticky"})
    async with await connect(http, emu) as ws:
        await ws.send_str(subscribe)
        assert (await next_json(ws))["message"] == REGISTERED
    async with await connect(http, emu) as ws:
        await ws.send_str(subscribe)
        assert "Cannot register an event with same name (sticky)" in (await next_json(ws))["message"]
    async with MistyClient(emu.url()) as misty:
        await misty.reboot(core=True, sensory_services=False)
    async with await connect(http, emu) as ws:
        await ws.send_str(subscribe)
        assert (await next_json(ws))["message"] == REGISTERED


async def test_a_core_reboot_closes_pubsub_connections(emu, http):
    async with await connect(http, emu) as ws:
        await ws.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "i"}))
        await next_json(ws)
        async with MistyClient(emu.url()) as misty:
            await misty.reboot(core=True, sensory_services=False)
        while True:
            msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000


async def test_a_sensory_reboot_keeps_pubsub_connections_and_their_subscriptions(emu, http):
    async with await connect(http, emu) as ws:
        await ws.send_str(json.dumps({"Operation": "subscribe", "Type": "IMU", "EventName": "i", "DebounceMs": 0}))
        assert (await next_json(ws))["message"] == REGISTERED
        async with MistyClient(emu.url()) as misty:
            await misty.reboot(core=False, sensory_services=True)
        since = emu.events.last_id
        # Events keep coming on the same connection, and the name is still registered robot-wide.
        assert (await next_json(ws))["eventName"] == "i"
        assert emu.state()["pubsub"]["subscriptions"] == ["i"]
        assert not [e for e in emu.events.query(since=since) if e.kind == "client.disconnected"]


async def test_the_reference_client_subscribes_with_conditions(emu):
    async with MistyClient(emu.url()) as misty:
        stream = misty.subscribe("TimeOfFlight", debounce_ms=0, conditions=[EventCondition("SensorId", "=", "tofr")])
        got = []
        async for event in stream:
            got.append(event)
            if len(got) == 3:
                break
        await stream.aclose()
        assert {e.message["sensorPosition"] for e in got} == {"Back"}
        with pytest.raises(MistyError, match="Cannot register"):
            async for _ in misty.subscribe("Teleport"):
                pass
