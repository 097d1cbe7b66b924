"""Outbound senders: the retry policy's cadence and limit, the egress allowlist, TLS against the dev CA."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from emulators.app import create_emulator
from emulators.config import Config
from emulators.kit.emulator import bind_tcp
from emulators.kit.events import EventLog
from emulators.kit.outbound import (
    DEFAULT_ALLOWED,
    EgressPolicy,
    EgressRefused,
    OutboundFailed,
    OutboundWebSocket,
    RetryPolicy,
    WebhookSender,
)
from emulators.kit.tls import client_ssl_context, ensure_dev_certs, server_ssl_context
from emulators.registry import DEVICES, available

LOCAL = EgressPolicy(DEFAULT_ALLOWED)


@pytest.mark.parametrize("url", ["ws://127.0.0.1:1/", "wss://localhost/x", "http://10.1.2.3/", "http://[::1]:80/",
                                 "https://192.168.1.20/hook"])
def test_egress_allows_loopback_and_private_ranges(url: str) -> None:
    EgressPolicy(DEFAULT_ALLOWED).check(url)


@pytest.mark.parametrize("url", ["wss://8.8.8.8/media", "https://1.1.1.1/hook", "ws://[2001:4860::1]/"])
def test_egress_refuses_public_addresses_with_a_clear_error(url: str) -> None:
    with pytest.raises(EgressRefused, match="outside the egress allowlist"):
        EgressPolicy(DEFAULT_ALLOWED).check(url)


def test_egress_can_be_widened_by_config() -> None:
    EgressPolicy(["0.0.0.0/0"]).check("https://8.8.8.8/")


def test_retry_policy_counts_attempts() -> None:
    assert list(RetryPolicy(0.1, 3).attempts()) == [1, 2, 3]


async def test_a_refused_websocket_is_retried_at_the_interval_then_given_up(free_port: int) -> None:
    events = EventLog("test")
    port = free_port
    async with aiohttp.ClientSession() as session:
        ws = OutboundWebSocket(f"ws://127.0.0.1:{port}/", session=session, retry=RetryPolicy(0.1, 4),
                               egress=LOCAL, events=events, name="video")
        start = time.monotonic()
        with pytest.raises(OutboundFailed, match="4 attempt"):
            await ws.connect()
        elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 2.0
    retries = events.query("outbound.retry")
    assert [e.detail["attempt"] for e in retries] == [1, 2, 3]
    assert "connection failed" in retries[0].detail["error"]
    assert len(events.query("outbound.failed")) == 1


async def test_a_receiver_that_starts_late_is_reached_by_a_retry(free_port: int) -> None:
    events = EventLog("test")
    port = free_port
    received = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        received.set()
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()

    async def start_late() -> None:
        await events.wait_for("outbound.retry", timeout=10)  # the first attempt was refused
        await web.SockSite(runner, bind_tcp("127.0.0.1", port)).start()

    starter = asyncio.create_task(start_late())
    try:
        async with aiohttp.ClientSession() as session:
            out = OutboundWebSocket(f"ws://127.0.0.1:{port}/", session=session, retry=RetryPolicy(0.1, 30),
                                    egress=LOCAL, events=events, name="late")
            ws = await out.connect()
            await asyncio.wait_for(received.wait(), 5)
            await ws.close()
        assert out.attempts >= 2
    finally:
        await starter
        await runner.cleanup()


async def test_wss_is_verified_against_the_dev_ca(tmp_path: Path) -> None:
    certs = ensure_dev_certs(tmp_path)
    app = web.Application()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(request.headers.get("Authorization", ""))
        await ws.close()
        return ws

    app.router.add_get("/media", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = bind_tcp("127.0.0.1", 0)
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=server_ssl_context(certs)).start()
    events = EventLog("test")
    try:
        async with aiohttp.ClientSession() as session:
            trusted = OutboundWebSocket(f"wss://localhost:{port}/media", session=session, retry=RetryPolicy(0.05, 1),
                                        egress=LOCAL, events=events, name="ok",
                                        headers={"Authorization": "Bearer t0k"},
                                        ssl=client_ssl_context(certs.ca, trust_dev_ca=False))
            ws = await trusted.connect()
            assert (await ws.receive_str()) == "Bearer t0k"
            await ws.close()
            untrusted = OutboundWebSocket(f"wss://localhost:{port}/media", session=session,
                                          retry=RetryPolicy(0.05, 1), egress=LOCAL, events=events,
                                          name="bad", ssl=client_ssl_context(None, trust_dev_ca=False))
            with pytest.raises(OutboundFailed, match="certificate"):
                await untrusted.connect()
    finally:
        await runner.cleanup()


async def test_webhooks_retry_on_5xx_and_deliver_form_or_json(webhook_receiver: Any) -> None:
    webhook_receiver.answer_next(503)
    events = EventLog("test")
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(session, retry=RetryPolicy(0.05, 3), egress=LOCAL, events=events)
        assert await sender.deliver(f"{webhook_receiver.url}/hook", form={"StreamEvent": "stream-started"}) == 200
        assert await sender.deliver(f"{webhook_receiver.url}/hook", method="GET", form={"a": "1"}) == 200
    seen = [(r.method, r.body.decode() or r.query_string) for r in webhook_receiver.requests]
    assert seen[0] == seen[1] == ("POST", "StreamEvent=stream-started")
    assert seen[2] == ("GET", "a=1")
    assert len(events.query("outbound.retry")) == 1


def test_dev_certs_are_created_once_and_reused(tmp_path: Path) -> None:
    first = ensure_dev_certs(tmp_path)
    mtime = first.ca.stat().st_mtime_ns
    second = ensure_dev_certs(tmp_path)
    assert second == first
    assert first.ca.stat().st_mtime_ns == mtime
    assert oct(first.key.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("device", DEVICES)
async def test_the_configured_allowlist_is_the_one_every_emulator_holds(device: str) -> None:
    if device not in available():
        pytest.skip(f"the {device} emulator is not part of this installation")
    narrow = create_emulator(device, Config(egress_allow=["10.0.0.0/8"]), free_ports=True)
    narrow.egress.check("http://10.9.8.7/hook")
    with pytest.raises(EgressRefused):
        narrow.egress.check("http://127.0.0.1:9/hook")
    wide = create_emulator(device, Config(egress_allow=["0.0.0.0/0"]), free_ports=True)
    wide.egress.check("wss://8.8.8.8/media")
