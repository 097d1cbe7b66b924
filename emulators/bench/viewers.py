"""Load-generator side helpers shared by scenarios: a WebSocket viewer that counts what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp


@dataclass
class ViewerCount:
    """What one viewer received: message count and arrival times (monotonic), bytes."""

    messages: int = 0
    bytes: int = 0
    arrivals: list[float] = field(default_factory=list)
    first: asyncio.Event = field(default_factory=asyncio.Event)
    closed_code: int | None = None

    def in_window(self, start: float, end: float) -> int:
        return sum(1 for t in self.arrivals if start <= t < end)


async def watch(session: aiohttp.ClientSession, url: str, count: ViewerCount, *,
                on_message: Callable[[bytes, float], None] | None = None, limit_s: float = 600.0) -> None:
    """Receive binary messages until the server closes or the task is cancelled (bounded by ``limit_s``)."""
    async with asyncio.timeout(limit_s), session.ws_connect(url, max_msg_size=16 * 1024**2, heartbeat=None) as ws:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            now = time.monotonic()
            count.messages += 1
            count.bytes += len(message.data)
            count.arrivals.append(now)
            count.first.set()
            if on_message is not None:
                on_message(message.data, now)
        count.closed_code = ws.close_code


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel and await every task; errors other than cancellation are left to the caller's figures."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task
