"""`benchtwin record`: a recording reverse proxy in front of one device; HTTP and WebSocket, both directions.

It forwards only to the given target (and, through the dial-out receiver, to the user's own receivers), and
rewrites absolute ``Location`` headers so a client that follows a redirect stays behind the proxy.
"""

from __future__ import annotations

import ssl
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from emulators.hil.cassette import Exchange
from emulators.hil.recorder import Recorder, end_to_end, relay_websocket

if TYPE_CHECKING:
    from emulators.hil.dialout import DialOutReceiver


class RecordingProxy:
    def __init__(self, target: str, recorder: Recorder, *, host: str = "127.0.0.1", port: int = 0,
                 receiver: DialOutReceiver | None = None, ssl_context: ssl.SSLContext | bool = True) -> None:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--target {target!r}: expected http(s)://host[:port]")
        self.target = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.recorder = recorder
        self.host = host
        self.port = port
        self.receiver = receiver
        self.ssl = ssl_context  # False: do not verify the target's certificate (--insecure)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=True, timeout=aiohttp.ClientTimeout(total=None,
                                                                                                 sock_connect=10))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _upstream_url(self, request: web.Request) -> str:
        return self.target + request.rel_url.raw_path_qs

    def _relocate(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        base = urlsplit(self.target)
        out = []
        for k, v in headers:
            if k.lower() == "location" and v.startswith(f"{base.scheme}://{base.netloc}"):
                v = self.url + v[len(f"{base.scheme}://{base.netloc}"):]
            out.append((k, v))
        return out

    async def forward(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._forward_websocket(request)
        assert self._session is not None
        index = self.recorder.reserve()
        started = time.time()
        body = await request.read()
        request_headers = end_to_end(request.headers.items())
        sent_body = body
        if self.receiver is not None:
            sent_body = self.receiver.rewrite_request(index, body, request.headers.get("Content-Type", ""))
        try:
            async with self._session.request(request.method, URL(self._upstream_url(request), encoded=True),
                                             headers=request_headers,
                                             data=sent_body if sent_body else None, allow_redirects=False,
                                             ssl=self.ssl) as upstream:
                response_body = await upstream.read()
                if self.receiver is not None:
                    response_body = self.receiver.restore_urls(response_body)
                status, reason = upstream.status, upstream.reason or ""
                response_headers = end_to_end(upstream.headers.items())
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, reason, response_headers = 502, "Bad Gateway", [("Content-Type", "text/plain")]
            response_body = f"benchtwin record: the target did not answer: {exc}".encode()
        exchange = Exchange(
            method=request.method, url=self._upstream_url(request),
            request_headers=request_headers, request_body=body, status=status, status_text=reason,
            response_headers=response_headers, response_body=response_body, started=started,
            duration_ms=(time.time() - started) * 1000,
        )
        self.recorder.complete(index, exchange)
        response = web.Response(status=status, reason=reason, body=response_body)
        for k, v in self._relocate(response_headers):
            response.headers.add(k, v)
        return response

    async def _forward_websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        url = URL("ws" + self._upstream_url(request)[4:], encoded=True)
        return await relay_websocket(self.recorder, self._session, request, url, ssl_context=self.ssl,
                                     names=("client", "device"), unreachable="the target")
