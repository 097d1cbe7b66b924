"""Shared fixtures: a free loopback port, a webhook receiver, and started in-process emulators of any device."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from emulators.kit.emulator import Emulator
from emulators.pytest_plugin import running_emulator


def unused_port() -> int:
    """A TCP port nothing listens on now (the kernel picked it for a socket we closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    """An unused loopback TCP port."""
    return unused_port()


class ScriptedDns:
    """getaddrinfo for names under .test, answering whatever address the test has set (a rebinding resolver)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.lookups = 0

    def __call__(self, host: str, port: Any, family: int = 0, type: int = 0, proto: int = 0) -> list[tuple[Any, ...]]:
        self.lookups += 1
        if not host.endswith(".test"):
            return socket.getaddrinfo(host, port, family, type, proto)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (self.address, int(port or 0)))]


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query_string: str = ""

    def json(self) -> Any:
        import json

        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode()))


class WebhookReceiver:
    """A loopback HTTP server that records every request and answers ``status`` (after any statuses queued with
    ``answer_next``)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[ReceivedRequest] = []
        self._next_statuses: list[int] = []
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        received = ReceivedRequest(request.method, request.path, dict(request.headers), await request.read(),
                                   request.query_string)
        async with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
        return web.Response(status=self._next_statuses.pop(0) if self._next_statuses else self.status)

    def answer_next(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order (e.g. a 503 to make a sender retry)."""
        self._next_statuses.extend(statuses)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:  # noqa: ASYNC109
        """Wait until ``count`` requests have arrived; TimeoutError says how many did."""
        try:
            async with asyncio.timeout(timeout), self._arrived:
                await self._arrived.wait_for(lambda: len(self.requests) >= count)
        except TimeoutError:
            arrived = len(self.requests)
            raise TimeoutError(f"{arrived} of {count} webhook request(s) arrived within {timeout} s") from None
        return list(self.requests)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.aclose()


EmulatorFactory = Callable[..., Awaitable[Emulator]]


@pytest.fixture
async def emulator_factory() -> AsyncIterator[EmulatorFactory]:
    """``await emulator_factory("recall", settings={...})`` (or an Emulator class instead of the name): a started
    emulator on this test's loop (so the test can await its methods), closed at teardown. Built like the plugin's
    ``start_emulator``: every listener takes a free port; ``config=`` and the emulator's keyword arguments
    (``seed``, ``time_scale``, ``clock``) pass on."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(device: str | type[Emulator], settings: dict[str, Any] | None = None,
                          **kwargs: Any) -> Emulator:
            return await stack.enter_async_context(running_emulator(device, settings, **kwargs))

        yield factory
