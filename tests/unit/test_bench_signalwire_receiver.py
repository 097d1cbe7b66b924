"""The signalwire-audio bench's receiver stamps a chunk when its bytes come off the socket.

One event-loop pass reads every ready socket before any reader task runs; a stamp taken by the task would add
the rest of that pass to the chunk's lateness. These checks pin the aiohttp hook the stamp relies on.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from emulators.bench.signalwire_audio import StampedWebSocket


async def test_each_message_carries_the_time_its_read_came_off_the_socket() -> None:
    stamps: list[tuple[float, float]] = []
    received = asyncio.Event()

    async def accept(request: web.Request) -> web.StreamResponse:
        ws = StampedWebSocket()
        await ws.prepare(request)
        async for _ in ws:
            stamps.append((ws.read_at, time.monotonic()))
            if len(stamps) == 3:
                received.set()
        return ws

    app = web.Application()
    app.router.add_get("/", accept)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session, \
            session.ws_connect(server.make_url("/")) as ws:
        before = time.monotonic()
        for n in range(3):
            await ws.send_str(f"chunk {n}")
        await asyncio.wait_for(received.wait(), 10)
    for read_at, seen in stamps:
        assert before <= read_at <= seen
