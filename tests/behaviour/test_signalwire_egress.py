"""The configured egress allowlist governs every SignalWire sender: streams, stream callbacks, conference callbacks.

Narrowing is shown with two loopback addresses (127.0.0.1 and 127.0.0.2, both routed to the loopback interface):
the allowlist names one and refuses the other. Widening needs an address outside the default allowlist that still
reaches a local receiver: the IPv4-mapped IPv6 form of 127.0.0.1 (``::ffff:127.0.0.1``) is such an address (the
default list names 127.0.0.0/8 and ::1, not the mapped range), yet it connects to the receiver on 127.0.0.1.
"""

from __future__ import annotations

import pytest
from signalwire_helpers import ADA, CONFERENCE, rig

from emulators.kit.outbound import DEFAULT_ALLOWED

pytestmark = pytest.mark.control_plane

MAPPED = "::ffff:127.0.0.0/104"  # the IPv4-mapped form of 127.0.0.0/8
WIDENED = [*DEFAULT_ALLOWED, MAPPED]
ONLY_127_0_0_1 = ["127.0.0.1/32"]
ONLY_127_0_0_2 = ["127.0.0.2/32"]
# The dev certificate names 127.0.0.1, not its mapped form: these streams do not verify the receiver.
INSECURE = {"tls_insecure": True}


def _refusals(events, **detail) -> list[str]:
    return [e.detail["error"] for e in events.query("outbound.failed")
            if all(e.detail.get(k) == v for k, v in detail.items())]


def _failed_callbacks(events) -> list[tuple[str, str]]:
    return [(e.detail["event"], e.detail["error"]) for e in events.query("callback.failed")]


# ----- streams ------------------------------------------------------------------------------------------------------
async def test_egress_allow_narrowed_refuses_a_loopback_stream_url():
    async with rig(egress_allow=ONLY_127_0_0_2, sink_host="127.0.0.2") as r:
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StatusCallback=r.callbacks.url)
        error = await r.callbacks.wait_for("stream-error", created["sid"])
        assert error["fields"]["StreamError"] == "connection_refused"
        assert r.receiver.connection_attempts == 0
        assert any("egress allowlist" in e for e in _refusals(r.emulator.events, stream=created["sid"]))


async def test_egress_allow_widened_admits_a_stream_url_outside_the_defaults():
    async with rig(INSECURE, egress_allow=WIDENED) as r:
        url = f"wss://[::ffff:127.0.0.1]:{r.receiver.port}/audio"
        await r.client.start_stream(CONFERENCE, Url=url, StatusCallback=r.callbacks.url)
        stream = await r.receiver.next_stream()
        await stream.wait_media(3)
    async with rig(INSECURE) as r:  # the same URL under the default allowlist
        url = f"wss://[::ffff:127.0.0.1]:{r.receiver.port}/audio"
        created = await r.client.start_stream(CONFERENCE, Url=url, StatusCallback=r.callbacks.url)
        error = await r.callbacks.wait_for("stream-error", created["sid"])
        assert error["fields"]["StreamError"] == "connection_refused" and r.receiver.connection_attempts == 0


# ----- stream status callbacks -------------------------------------------------------------------------------------
async def test_egress_allow_narrowed_refuses_a_loopback_stream_callback():
    async with rig(egress_allow=ONLY_127_0_0_1, sink_host="127.0.0.2") as r:
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StatusCallback=r.callbacks.url)
        stream = await r.receiver.next_stream()  # the stream itself is inside the allowlist
        await stream.wait_media(2)
        await r.client.stop_stream(CONFERENCE, created["sid"])
        await r.emulator.events.wait_for("callback.failed", lambda e: e.detail["event"] == "stream-stopped",
                                         timeout=5)
        failed = _failed_callbacks(r.emulator.events)
        assert [event for event, _ in failed] == ["stream-started", "stream-stopped"]
        assert all("egress allowlist" in error for _, error in failed)
        assert r.callbacks.requests == []


async def test_egress_allow_widened_admits_a_stream_callback_outside_the_defaults():
    async with rig(egress_allow=WIDENED) as r:
        callback = f"http://[::ffff:127.0.0.1]:{r.callbacks.port}/status"
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StatusCallback=callback)
        started = await r.callbacks.wait_for("stream-started", created["sid"])
        assert started["fields"]["StreamSid"] == created["sid"]


# ----- conference status callbacks ---------------------------------------------------------------------------------
async def _conference_with_callback(r, url: str) -> None:
    await r.emulator.scenario_controls["create_conference"](
        {"friendly_name": "Egress", "status_callback": url, "participants": [{"call_sid": ADA}]})


async def test_egress_allow_narrowed_refuses_a_loopback_conference_callback():
    async with rig(egress_allow=ONLY_127_0_0_1, sink_host="127.0.0.2") as r:
        await _conference_with_callback(r, r.callbacks.url)
        refused = await r.emulator.events.wait_for("callback.failed", timeout=5)
        assert refused.detail["event"] == "conference-start" and "egress allowlist" in refused.detail["error"]
        assert r.callbacks.requests == []


async def test_egress_allow_widened_admits_a_conference_callback_outside_the_defaults():
    async with rig(egress_allow=WIDENED) as r:
        await _conference_with_callback(r, f"http://[::ffff:127.0.0.1]:{r.callbacks.port}/status")
        await r.callbacks.wait_for_condition(lambda: len(r.callbacks.requests) == 1)
        assert r.callbacks.requests[0]["fields"]["StatusCallbackEvent"] == "conference-start"
