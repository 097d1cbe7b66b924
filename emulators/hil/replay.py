"""`benchtwin replay`: serve a cassette as a stand-in device (HTTP answers, WebSocket sessions with their timing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from emulators.hil.cassette import Cassette, Exchange
from emulators.hil.match import MATCHERS, ExchangeMatcher, Incoming
from emulators.kit.tasks import TaskOwner

MISS_HEADER = "X-Benchtwin-Replay"
CLIENT_WAIT_S = 30.0  # how long a replayed WebSocket waits for the client's next recorded message


class ReplayServer:
    def __init__(self, cassette: Cassette, *, host: str = "127.0.0.1", port: int = 0,
                 matchers: Sequence[str] = MATCHERS) -> None:
        self.cassette = cassette
        self.host = host
        self.port = port
        self.exchanges = cassette.device_exchanges()
        self.matcher = ExchangeMatcher(self.exchanges, matchers)
        self.misses: list[dict[str, object]] = []
        self.tasks = TaskOwner("replay")
        self._runner: web.AppRunner | None = None
        self._target = self._recorded_base()

    def _recorded_base(self) -> str:
        from urllib.parse import urlsplit

        target = self.cassette.manifest.target or (self.exchanges[0].url if self.exchanges else "")
        parts = urlsplit(target)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self.answer)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        await self.tasks.aclose()
        if self._runner is not None:
            await self._runner.cleanup()

    async def answer(self, request: web.Request) -> web.StreamResponse:
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        body = b"" if websocket else await request.read()
        incoming = Incoming(request.method, request.path, list(request.query.items()), body,
                            request.headers.get("Content-Type", ""), websocket=websocket)
        index = self.matcher.find(incoming, dict(request.headers))
        if index is None:
            report = self.matcher.miss_report(incoming)
            self.misses.append(report)
            return web.json_response(report, status=404, headers={MISS_HEADER: "miss"})
        exchange = self.exchanges[index]
        if exchange.is_websocket:
            return await self._replay_websocket(request, exchange)
        response = web.Response(status=exchange.status, reason=exchange.status_text or None,
                                body=exchange.response_body)
        for k, v in exchange.response_headers:
            if k.lower() == "location" and self._target and v.startswith(self._target):
                v = self.url + v[len(self._target):]
            response.headers.add(k, v)
        return response

    async def _replay_websocket(self, request: web.Request, exchange: Exchange) -> web.WebSocketResponse:
        protocol = exchange.header("Sec-WebSocket-Protocol")
        ws = web.WebSocketResponse(protocols=[protocol] if protocol else (), max_msg_size=0)
        await ws.prepare(request)
        await play_session(ws, exchange, peer="client")
        return ws


async def play_session(ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, exchange: Exchange,
                       *, peer: str) -> None:
    """Play the device's side of a recorded session on ``ws``.

    ``peer`` names who is on the other end: "client" (we are the device; we send "receive" messages) or
    "receiver" (a dial-out: the device called out, so its messages are the "send" ones). Our messages go out at
    their recorded offset from the latest message we awaited from the peer, so recorded gaps are kept.
    """
    ours = "receive" if peer == "client" else "send"
    messages = exchange.messages or []
    anchor_real, anchor_recorded = time.monotonic(), exchange.started
    for message in messages:
        if message.direction == ours:
            delay = anchor_real + (message.time - anchor_recorded) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if ws.closed:
                return
            if message.opcode == 1:
                await ws.send_str(message.text)
            else:
                await ws.send_bytes(message.data)
        else:
            try:
                msg = await ws.receive(timeout=CLIENT_WAIT_S)
            except TimeoutError:
                break
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return
            anchor_real, anchor_recorded = time.monotonic(), message.time
    if exchange.closed_by == "device":  # the device ended the session when recorded: so do we, on time
        end = exchange.started + exchange.duration_ms / 1000
        delay = anchor_real + (end - anchor_recorded) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.close(code=exchange.close_code or 1000)
        return
    while not ws.closed:  # the peer closes, as it did when recorded
        msg = await ws.receive()
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            break
