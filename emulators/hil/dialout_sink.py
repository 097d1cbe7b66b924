"""The receivers a parity run stands in for: the emulator's dial-outs land here and are collected for comparison,
answered as the user's receiver answered when the device was recorded."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field

from aiohttp import web

from emulators.hil.cassette import Exchange, Message
from emulators.hil.dialout import dial_out_urls, with_urls
from emulators.hil.replay import play_session

ANSWER_WAIT_S = 2.0  # how long the stand-in receiver waits for each recorded device message


@dataclass
class SinkRoute:
    index: int  # the device exchange whose request named the receiver
    field: str
    recorded: list[Exchange]
    original: str  # the receiver URL the recorded request named
    sink_url: str = ""
    observed: list[Exchange] = field(default_factory=list)
    in_flight: int = 0


class ParitySink:
    def __init__(self, *, host: str = "127.0.0.1", server_ssl: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.server_ssl = server_ssl
        self.port = 0
        self.tls_port = 0
        self.routes: list[SinkRoute] = []
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/dial/{n:\\d+}{tail:.*}", self.receive)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        plain = web.TCPSite(self._runner, self.host, 0)
        await plain.start()
        self.port = plain._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.server_ssl is not None:
            secure = web.TCPSite(self._runner, self.host, 0, ssl_context=self.server_ssl)
            await secure.start()
            self.tls_port = secure._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def rewrite(self, index: int, dial_outs: list[Exchange], body: bytes, content_type: str) -> bytes:
        """Point the request's receiver fields at this sink, one route per field that was dialled."""
        replacements = {}
        for field_path in dict.fromkeys(str(d.dial_out["field"]) for d in dial_outs if d.dial_out):
            for path, url in dial_out_urls(body, content_type, [field_path]):
                recorded = [d for d in dial_outs if d.dial_out and d.dial_out["field"] == field_path]
                scheme = url.split(":", 1)[0].lower()
                port = self.tls_port if scheme in ("https", "wss") and self.tls_port else self.port
                if port == self.port:
                    scheme = {"https": "http", "wss": "ws"}.get(scheme, scheme)
                sink_url = f"{scheme}://{self.host}:{port}/dial/{len(self.routes)}"
                self.routes.append(SinkRoute(index, path, recorded, url, sink_url))
                replacements[path] = sink_url
        return with_urls(body, content_type, replacements)

    def restore_urls(self, body: bytes) -> bytes:
        """What the emulator echoes of the receiver URLs, as the recorded device echoed them: the user's."""
        for route in self.routes:
            body = body.replace(route.sink_url.encode(), route.original.encode())
        return body

    async def settle(self, timeout_s: float) -> None:
        """Until every route got as many calls as were recorded and none is still open, or the time is up."""
        deadline = time.monotonic() + timeout_s
        while any(len(r.observed) < len(r.recorded) or r.in_flight for r in self.routes):
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                return

    async def receive(self, request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        if n >= len(self.routes):
            return web.Response(status=404)
        route = self.routes[n]
        k = len(route.observed) + route.in_flight
        recorded = route.recorded[min(k, len(route.recorded) - 1)] if route.recorded else None
        route.in_flight += 1
        try:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                observed, response = await self._websocket(request, recorded)
            else:
                observed, response = await self._http(request, recorded)
            route.observed.append(observed)
            return response
        finally:
            route.in_flight -= 1
            self.changed.set()

    async def _http(self, request: web.Request, recorded: Exchange | None) -> tuple[Exchange, web.StreamResponse]:
        body = await request.read()
        observed = Exchange(request.method, str(request.url), list(request.headers.items()), body, 0, "", [], b"",
                            time.time(), 0.0)
        if recorded is None or recorded.is_websocket:
            return observed, web.Response(status=204)
        response = web.Response(status=recorded.status, body=recorded.response_body)
        for k, v in recorded.response_headers:
            response.headers.add(k, v)
        return observed, response

    async def _websocket(self, request: web.Request, recorded: Exchange | None
                         ) -> tuple[Exchange, web.StreamResponse]:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        collected: list[Message] = []
        started = time.time()
        script = recorded if recorded is not None and recorded.is_websocket else Exchange(
            "GET", "", [], b"", 101, "", [], b"", started, 0.0, messages=[])
        who = await play_session(ws, script, ours="receive", we_close_as="receiver", collect=collected,
                                 wait_s=ANSWER_WAIT_S)
        observed = Exchange("GET", str(request.url), list(request.headers.items()), b"", 101, "", [], b"", started,
                            (time.time() - started) * 1000, messages=collected, close_code=ws.close_code,
                            closed_by="receiver" if who == "us" else "device")
        return observed, ws
