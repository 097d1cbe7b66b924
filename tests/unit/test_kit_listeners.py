"""Listener hardening: idle and half-sent connections time out, connections per listener are bounded, the
open-files limit is raised, descriptor exhaustion is logged once per interval."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from emulators.kit.emulator import Emulator
from emulators.kit.listeners import ResourceErrorThrottle, raise_open_files_limit
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy

TIMEOUT = 5.0


class Tight(Emulator):
    """A kit test device with small limits so a handful of sockets reach them."""

    device = "tight"
    title = "kit listener test device"
    settings_defaults = {"port": 0}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, egress=EgressPolicy(DEFAULT_ALLOWED), **kwargs)
        self.max_connections = 4
        self.idle_timeout_s = 0.3

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/api/ping", self.ping)

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({"pong": True})


@pytest.fixture
async def tight() -> Any:
    emu = Tight()
    await emu.start()
    yield emu
    await emu.aclose()


async def test_an_idle_connection_and_a_half_sent_request_head_are_closed_after_the_idle_timeout(tight) -> None:
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", tight.ports["rest"])
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", tight.ports["rest"])
    slow_writer.write(b"GET /api/ping HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert await asyncio.wait_for(idle_reader.read(), TIMEOUT) == b""
    assert await asyncio.wait_for(slow_reader.read(), TIMEOUT) == b""
    idle_writer.close()
    slow_writer.close()


async def test_connections_beyond_the_listeners_limit_get_503_and_the_held_ones_are_still_served(tight) -> None:
    port = tight.ports["rest"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        try:
            async with http.get(f"http://127.0.0.1:{port}/_emulator/health") as resp:  # the fourth slot
                assert resp.status == 200
            extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
            refused = await asyncio.wait_for(extra_reader.read(), TIMEOUT)
            assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
            assert b'"error": "connection: ' in refused
            extra_writer.close()
        finally:
            for _, writer in held:
                writer.close()
        site = tight._sites[0]
        await asyncio.wait_for(_slots_free(site, 1), TIMEOUT)  # the pooled health connection may stay open
        async with http.get(f"http://127.0.0.1:{port}/api/ping") as resp:
            assert (await resp.json()) == {"pong": True}


async def _slots_free(site: Any, at_most_open: int) -> None:
    while site.gate.open > at_most_open:
        site.gate.released.clear()
        await site.gate.released.wait()


def test_the_soft_open_files_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft == hard and hard > 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard - 1, hard))
    raised, limit = raise_open_files_limit()
    assert raised == limit == resource.getrlimit(resource.RLIMIT_NOFILE)[0] or limit == resource.RLIM_INFINITY


def test_descriptor_exhaustion_is_logged_once_per_interval_and_other_errors_pass_through(caplog) -> None:
    now = [100.0]
    passed: list[dict[str, Any]] = []
    throttle = ResourceErrorThrottle(interval_s=10.0, clock=lambda: now[0])
    throttle._previous = lambda loop, context: passed.append(context)
    loop = asyncio.new_event_loop()
    try:
        emfile = OSError(errno.EMFILE, "Too many open files")
        with caplog.at_level(logging.ERROR, logger="benchtwin.listeners"):
            for _ in range(500):
                throttle.handle(loop, {"message": "socket.accept() out of system resource", "exception": emfile})
            now[0] += 10.5
            throttle.handle(loop, {"message": "socket.accept() out of system resource", "exception": emfile})
            throttle.handle(loop, {"message": "something else", "exception": ValueError("x")})
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "benchtwin.listeners"]
    assert len(lines) == 2
    assert "0 more like it" in lines[0] and "499 more like it" in lines[1]
    assert [c["message"] for c in passed] == ["something else"]


async def test_the_throttle_is_installed_once_per_loop(tight) -> None:
    loop = asyncio.get_running_loop()
    first = ResourceErrorThrottle.install(loop)
    assert ResourceErrorThrottle.install(loop) is first
