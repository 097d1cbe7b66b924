"""Device senders resolve through the egress policy and connect to the addresses it checked: a name that only the
policy's resolver knows is reached, and once it rebinds to the cloud metadata address the next attempt is refused
and nothing connects there (issue 17: DNS rebinding between retries, checks on one address and connects to another).
"""

from __future__ import annotations

import socket

import pytest

from clients.recall import RecallClient
from emulators.config import Config
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy, EgressRefused
from emulators.recall.device import DEV_API_KEY, RecallEmulator
from emulators.signalwire.dialout import OverrideResolver
from tests.conftest import EmulatorFactory, ScriptedDns, WebhookReceiver

MEET = "https://meet.google.com/pin-nedd-nsx"
SCENARIO = {"name": "pinning", "meeting_urls": [MEET], "duration_s": 1000, "participants": [{"id": 100}]}
METADATA = "169.254.169.254"


async def test_recall_status_webhooks_go_where_the_policy_resolved_and_stop_when_the_name_rebinds(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver
) -> None:
    dns = ScriptedDns("127.0.0.1")
    hook = webhook_receiver.url.replace("127.0.0.1", "hooks.test") + "/hooks"
    emu = await emulator_factory("recall", settings={"retry_interval_s": 0.05, "status_webhook_url": hook},
                                 config=Config(), egress=EgressPolicy(DEFAULT_ALLOWED, lookup=dns))
    assert isinstance(emu, RecallEmulator)
    await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(MEET)
        await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        await webhook_receiver.wait_for(1, timeout=5)  # only the policy's resolver knows hooks.test
        delivered = len(webhook_receiver.requests)
        dns.address = METADATA
        await client.leave_call(bot["id"])
        refused = await emu.events.wait_for("webhook.refused", timeout=5)
    assert "egress allowlist" in refused.detail["error"]
    assert len(webhook_receiver.requests) <= delivered + 1  # at most one already in flight before the rebinding


async def test_signalwire_dial_out_resolves_through_the_policy_unless_the_name_is_overridden() -> None:
    dns = ScriptedDns("127.0.0.1")
    resolver = OverrideResolver({"override.test": "127.0.0.2:9"}, EgressPolicy(DEFAULT_ALLOWED, lookup=dns))
    [pinned] = await resolver.resolve("stream.test", 443)
    assert (pinned["host"], pinned["port"]) == ("127.0.0.1", 443)
    [overridden] = await resolver.resolve("override.test", 443)
    assert (overridden["host"], overridden["port"]) == ("127.0.0.2", 9)
    dns.address = METADATA
    with pytest.raises(EgressRefused):
        await resolver.resolve("stream.test", 443, socket.AF_INET)


@pytest.mark.parametrize(
    ("url", "pinned"),
    [
        ("rtmp://push.test:1935/live/key", "rtmp://127.0.0.1:1935/live/key"),
        ("rtmp://user:pw@push.test/live/key", "rtmp://user:pw@127.0.0.1/live/key"),
        ("rtmp://127.0.0.1:1935/live/key", "rtmp://127.0.0.1:1935/live/key"),
    ],
)
async def test_a_url_handed_to_an_encoder_process_is_pinned_to_the_checked_address(url: str, pinned: str) -> None:
    policy = EgressPolicy(DEFAULT_ALLOWED, lookup=ScriptedDns("127.0.0.1"))
    assert await policy.pinned_url(url) == pinned


async def test_a_url_whose_name_resolves_to_the_metadata_address_is_never_pinned() -> None:
    policy = EgressPolicy(DEFAULT_ALLOWED, lookup=ScriptedDns(METADATA))
    with pytest.raises(EgressRefused, match="egress allowlist"):
        await policy.pinned_url("rtmp://push.test/live/key")


async def test_the_policy_session_holds_more_than_a_hundred_media_websockets_at_once() -> None:
    """A gallery-view bot opens one WebSocket per participant and keeps them all open: the 101st must connect
    while the first hundred stay open (aiohttp's default connector would hold it back)."""
    import asyncio

    from aiohttp import web

    opened = 0
    all_open = asyncio.Event()

    async def accept(request: web.Request) -> web.WebSocketResponse:
        nonlocal opened
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        opened += 1
        if opened == 120:
            all_open.set()
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/media", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    session = EgressPolicy(DEFAULT_ALLOWED).client_session()
    try:
        sockets = await asyncio.wait_for(
            asyncio.gather(*(session.ws_connect(f"http://127.0.0.1:{port}/media") for _ in range(120))), 10)
        await asyncio.wait_for(all_open.wait(), 10)
        assert len(sockets) == 120
        await asyncio.gather(*(ws.close() for ws in sockets))
    finally:
        await session.close()
        await runner.cleanup()
