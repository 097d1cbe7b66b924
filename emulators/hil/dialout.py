"""Dial-outs: the URLs a request gives the device to call back (webhooks, media WebSockets, status callbacks),
and the recording receiver `record` puts in their place, which records each call and forwards it to the user's
own receiver.

Which body fields carry such a URL is per device (``dial_out_fields`` in contracts/parity/<device>.yaml).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
from aiohttp import web

from emulators.hil.cassette import Exchange
from emulators.hil.recorder import Recorder, end_to_end, relay_websocket
from emulators.hil.rules import path_matches
from emulators.kit.outbound import EgressPolicy, EgressRefused

URL_SCHEMES = ("http", "https", "ws", "wss")


# ----- URLs in request bodies ------------------------------------------------------------------------------
def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}.{i}" if path else str(i))
    else:
        yield path, value


def _set(document: Any, path: str, new: str) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        document = document[int(key)] if isinstance(document, list) else document[key]
    last = keys[-1]
    if isinstance(document, list):
        document[int(last)] = new
    else:
        document[last] = new


def _parse(body: bytes, content_type: str) -> tuple[str, Any] | None:
    mime = content_type.split(";")[0].strip().lower()
    if not body.strip():
        return None
    if mime == "application/x-www-form-urlencoded":
        return "form", parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    try:
        return "json", json.loads(body)
    except ValueError:
        return None


def dial_out_urls(body: bytes, content_type: str, fields: Sequence[str]) -> list[tuple[str, str]]:
    """(field path, URL) for every receiver URL in a JSON or form body."""
    parsed = _parse(body, content_type)
    if parsed is None or not fields:
        return []
    kind, document = parsed
    leaves = document if kind == "form" else list(_leaves(document))
    return [(path, value) for path, value in leaves
            if isinstance(value, str) and urlsplit(value).scheme.lower() in URL_SCHEMES
            and any(path_matches(f, path) for f in fields)]


def with_urls(body: bytes, content_type: str, replacements: dict[str, str]) -> bytes:
    """The body with the URLs at the given field paths replaced (the rest byte-for-byte where possible)."""
    if not replacements:
        return body
    parsed = _parse(body, content_type)
    if parsed is None:
        return body
    kind, document = parsed
    if kind == "form":
        return urlencode([(k, replacements.get(k, v)) for k, v in document]).encode()
    for path, new in replacements.items():
        _set(document, path, new)
    return json.dumps(document).encode()


# ----- the recording receiver ------------------------------------------------------------------------------
@dataclass
class Route:
    of: int  # the recorder index of the request that named the receiver
    field: str
    url: str


class DialOutReceiver:
    """Listens on a plain port and, given a server certificate, a TLS port (SignalWire accepts only wss://)."""

    def __init__(self, recorder: Recorder, fields: Sequence[str], *, host: str = "127.0.0.1", port: int = 0,
                 server_ssl: ssl.SSLContext | None = None, client_ssl: ssl.SSLContext | bool = True,
                 egress: EgressPolicy) -> None:
        self.recorder = recorder
        self.fields = list(fields)
        self.host = host
        self.port = port
        self.tls_port = 0
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.egress = egress
        self.routes: list[Route] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/dial/{n:\\d+}{tail:.*}", self.relay)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        plain = web.TCPSite(self._runner, self.host, self.port)
        await plain.start()
        self.port = plain._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.server_ssl is not None:
            secure = web.TCPSite(self._runner, self.host, self.tls_port, ssl_context=self.server_ssl)
            await secure.start()
            self.tls_port = secure._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def receiver_url(self, n: int, original: str) -> str:
        scheme = urlsplit(original).scheme.lower()
        if scheme in ("https", "wss") and self.tls_port:
            return self._url_for(n, scheme)
        return self._url_for(n, {"https": "http", "wss": "ws"}.get(scheme, scheme))

    def restore_urls(self, body: bytes) -> bytes:
        """A device that echoes a request (a bot's recording_config, in any later answer too) echoes the user's
        receiver URLs, as it would without the proxy."""
        for n, route in enumerate(self.routes):
            body = body.replace(self.receiver_url(n, route.url).encode(), route.url.encode())
        return body

    def _url_for(self, n: int, scheme: str) -> str:
        port = self.tls_port if scheme in ("https", "wss") else self.port
        return f"{scheme}://{self.host}:{port}/dial/{n}"

    def rewrite_request(self, index: int, body: bytes, content_type: str) -> bytes:
        """Point every receiver URL of the request at this receiver; remember where each came from."""
        replacements = {}
        for path, url in dial_out_urls(body, content_type, self.fields):
            self.routes.append(Route(index, path, url))
            replacements[path] = self.receiver_url(len(self.routes) - 1, url)
        return with_urls(body, content_type, replacements)

    async def relay(self, request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        if n >= len(self.routes):
            return web.Response(status=404, text=f"benchtwin record: no dial-out {n} was handed out")
        route = self.routes[n]
        target = route.url + request.match_info["tail"] + (f"?{request.query_string}" if request.query_string else "")
        try:
            self.egress.check(target)
        except EgressRefused as exc:
            return web.Response(status=403, text=f"benchtwin record: {exc}")
        dial_out = {"of": route.of, "field": route.field, "url": route.url}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._relay_websocket(request, target, dial_out)
        return await self._relay_http(request, target, dial_out)

    async def _relay_http(self, request: web.Request, target: str, dial_out: dict[str, Any]) -> web.Response:
        assert self._session is not None
        index = self.recorder.reserve()
        started = time.time()
        body = await request.read()
        headers = end_to_end(request.headers.items())
        try:
            async with self._session.request(request.method, target, headers=headers, data=body or None,
                                             allow_redirects=False, ssl=self.client_ssl) as upstream:
                status, reason = upstream.status, upstream.reason or ""
                response_headers = end_to_end(upstream.headers.items())
                response_body = await upstream.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, reason, response_headers = 502, "Bad Gateway", [("Content-Type", "text/plain")]
            response_body = f"benchtwin record: your receiver did not answer: {exc}".encode()
        self.recorder.complete(index, Exchange(
            method=request.method, url=target, request_headers=headers, request_body=body, status=status,
            status_text=reason, response_headers=response_headers, response_body=response_body, started=started,
            duration_ms=(time.time() - started) * 1000, dial_out=dial_out))
        response = web.Response(status=status, reason=reason, body=response_body)
        for k, v in response_headers:
            response.headers.add(k, v)
        return response

    async def _relay_websocket(self, request: web.Request, target: str, dial_out: dict[str, Any]
                               ) -> web.StreamResponse:
        assert self._session is not None
        return await relay_websocket(self.recorder, self._session, request, target, ssl_context=self.client_ssl,
                                     names=("device", "receiver"), unreachable="your receiver", dial_out=dial_out)
