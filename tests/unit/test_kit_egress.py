"""The egress allowlist holds against each bypass issue 17 names that lives in kit code: redirects, DNS rebinding
between retries, link-local by default, a check on one address and a connect to another, a slow resolver."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from emulators.kit.events import EventLog
from emulators.kit.outbound import (
    DEFAULT_ALLOWED,
    EgressPolicy,
    EgressRefused,
    OutboundWebSocket,
    RetryPolicy,
    WebhookSender,
)
from tests.conftest import ScriptedDns


async def serve(handler: Any, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    return runner, runner.addresses[0][1]


class Recorder:
    def __init__(self) -> None:
        self.paths: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        return web.Response(text="reached")


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[::ffff:169.254.169.254]/"]
)
def test_link_local_is_refused_by_default_and_by_a_catch_all_range(url: str) -> None:
    for allow in (DEFAULT_ALLOWED, ["0.0.0.0/0", "::/0"]):
        with pytest.raises(EgressRefused, match="outside the egress allowlist"):
            EgressPolicy(allow).check(url)


def test_link_local_is_allowed_only_by_a_range_that_names_it() -> None:
    EgressPolicy(["169.254.0.0/16"]).check("http://169.254.169.254/")
    EgressPolicy(["fe80::/10"]).check("http://[fe80::1]/")
    EgressPolicy(["0.0.0.0/0"]).check("http://8.8.8.8/")


async def test_a_webhook_answered_with_a_redirect_is_not_followed() -> None:
    beyond = Recorder()
    beyond_runner, beyond_port = await serve(beyond.handle, "127.0.0.2")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{beyond_port}/metadata")

    runner, port = await serve(redirect)
    events = EventLog("t")
    try:
        async with aiohttp.ClientSession() as session:
            sender = WebhookSender(session, retry=RetryPolicy(0.01, 1), egress=EgressPolicy(DEFAULT_ALLOWED),
                                   events=events)
            assert await sender.deliver(f"http://127.0.0.1:{port}/hook", json={"a": 1}) == 302
        assert beyond.paths == []
        [delivered] = events.query(kind="webhook.delivered")
        assert delivered.detail["status"] == 302
    finally:
        await runner.cleanup()
        await beyond_runner.cleanup()


async def test_a_websocket_handshake_redirected_outside_the_allowlist_is_refused_before_connecting() -> None:
    beyond = Recorder()
    beyond_runner, beyond_port = await serve(beyond.handle, "127.0.0.2")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://127.0.0.2:{beyond_port}/ws")

    runner, port = await serve(redirect)
    policy = EgressPolicy(["127.0.0.1/32"])
    try:
        async with aiohttp.ClientSession() as session:
            ws = OutboundWebSocket(f"ws://127.0.0.1:{port}/ws", session=session, retry=RetryPolicy(0.01, 1),
                                   egress=policy, events=EventLog("t"), name="media")
            with pytest.raises(EgressRefused, match=r"127\.0\.0\.2"):
                await ws.connect()
        assert beyond.paths == []
    finally:
        await runner.cleanup()
        await beyond_runner.cleanup()


async def test_a_retry_that_resolves_to_a_refused_address_is_refused_and_never_connects() -> None:
    dns = ScriptedDns("127.0.0.1")
    hits: list[str] = []

    async def first_fails(request: web.Request) -> web.Response:
        hits.append(request.path)
        dns.address = "169.254.169.254"  # the name now rebinds to the metadata service
        return web.Response(status=503)

    runner, port = await serve(first_fails)
    policy = EgressPolicy(DEFAULT_ALLOWED, lookup=dns)
    events = EventLog("t")
    try:
        async with policy.client_session() as session:
            sender = WebhookSender(session, retry=RetryPolicy(0.01, 3), egress=policy, events=events)
            with pytest.raises(EgressRefused, match=r"hooks\.test"):
                await sender.deliver(f"http://hooks.test:{port}/status", json={"state": "done"})
        assert hits == ["/status"]
        assert [e.detail["attempt"] for e in events.query(kind="outbound.retry")] == [1]
    finally:
        await runner.cleanup()


async def test_the_policy_session_connects_to_the_address_it_checked() -> None:
    recorder = Recorder()
    runner, port = await serve(recorder.handle)
    dns = ScriptedDns("127.0.0.1")
    policy = EgressPolicy(["127.0.0.1/32"], allow_hosts=(), lookup=dns)
    try:
        async with policy.client_session() as session:
            # Nothing but the scripted lookup knows this name: reaching the receiver proves the socket went to the
            # address the policy resolved and checked, not to a second, unchecked lookup.
            async with session.get(f"http://pinned.test:{port}/here") as resp:
                assert await resp.text() == "reached"
            dns.address = "10.9.9.9"  # allowed by DEFAULT_ALLOWED but not by this policy
            with pytest.raises(EgressRefused):
                await session.get(f"http://pinned.test:{port}/there")
        assert recorder.paths == ["/here"]
    finally:
        await runner.cleanup()


async def test_a_slow_resolver_times_out_off_the_event_loop() -> None:
    def slow_lookup(host: str, *args: Any) -> list[tuple[Any, ...]]:
        time.sleep(1.0)  # a resolver stuck in the kernel: blocks its thread, never the loop
        return []

    policy = EgressPolicy(DEFAULT_ALLOWED, lookup=slow_lookup, resolve_timeout_s=0.2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        with pytest.raises(EgressRefused, match=r"took longer than 0\.2 s"):
            await policy.check_async("https://slow.test/hook")
    finally:
        task.cancel()
    assert time.monotonic() - started < 0.9
    assert ticks >= 3  # the loop kept running while the lookup hung
