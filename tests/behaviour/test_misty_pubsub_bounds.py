"""Misty's /pubsub against careless and hostile clients: huge, deeply nested or Python-literal messages cost the
event loop milliseconds and are ignored (or closed with 1009 past the frame limit), a connection holds a bounded
number of subscriptions with the robot's refusal, and the robot goes on answering."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from emulators.misty.pubsub import MAX_MESSAGE_CHARS, MAX_SUBSCRIPTIONS_PER_CONNECTION

TIMEOUT = 5.0
REGISTERED = "Registration Status: API event registered."


@pytest.fixture
async def emu(emulator_factory):
    return await emulator_factory("misty")


async def health_within_a_second(emu) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, asyncio.timeout(1.0):
        async with http.get(f"{emu.url()}/_emulator/health") as resp:
            assert resp.status == 200
    assert time.monotonic() - started < 1.0


def subscribe(name: str) -> str:
    return json.dumps({"Operation": "subscribe", "Type": "BatteryCharge", "EventName": name, "DebounceMs": 0})


async def reply_to(ws: aiohttp.ClientWebSocketResponse, name: str) -> dict:
    """The registration reply for ``name`` (events of earlier subscriptions may arrive first)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            body = json.loads(msg.data)
            if body.get("eventName") == name and "message" in body:
                return body


async def test_a_message_past_the_frame_limit_closes_with_1009_and_the_robot_keeps_answering(emu) -> None:
    huge = str({"Operation": "subscribe", "Type": "IMU", "EventName": "x" * 900_000})
    async with aiohttp.ClientSession() as http, http.ws_connect(emu.endpoints()["pubsub"]) as ws:
        await ws.send_str(huge)
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await health_within_a_second(emu)


@pytest.mark.parametrize(
    "text",
    [
        str({"Operation": "subscribe", "Type": "IMU", "EventName": "big", "Message": "y" * (MAX_MESSAGE_CHARS + 1)}),
        "{'a': " * 1000 + "1" + "}" * 1000,
        '{"a": ' * 1000 + "1" + "}" * 1000,
        "[" * 5000,
        "(" * 200 + ")" * 200,
    ],
    ids=["over-16KB-literal", "nested-literal", "nested-json", "open-brackets", "nested-tuples"],
)
async def test_an_oversized_or_deeply_nested_message_is_ignored_and_the_connection_still_registers(emu, text) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(emu.endpoints()["pubsub"]) as ws:
        started = time.monotonic()
        await ws.send_str(text)
        await ws.send_str(subscribe("after"))
        assert (await reply_to(ws, "after"))["message"] == REGISTERED  # nothing else came first: no HTTP, no close
        assert time.monotonic() - started < 1.0
    await health_within_a_second(emu)


async def test_a_connection_holds_a_bounded_number_of_subscriptions_with_the_robots_refusal(emu) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(emu.endpoints()["pubsub"]) as ws:
        for n in range(MAX_SUBSCRIPTIONS_PER_CONNECTION):
            await ws.send_str(subscribe(f"e{n}"))
            assert (await reply_to(ws, f"e{n}"))["message"] == REGISTERED
        await ws.send_str(subscribe("one-too-many"))
        refusal = (await reply_to(ws, "one-too-many"))["message"]
        assert refusal.startswith("Registration Status: Cannot register event:")
        assert str(MAX_SUBSCRIPTIONS_PER_CONNECTION) in refusal
        await ws.send_str(json.dumps({"Operation": "unsubscribe", "EventName": "e0"}))
        await ws.send_str(subscribe("after-unsubscribe"))
        assert (await reply_to(ws, "after-unsubscribe"))["message"] == REGISTERED
    await health_within_a_second(emu)
