"""The recorder both the proxy and the dial-out receiver write to: exchanges in arrival order, redacted."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from emulators.hil.cassette import Cassette, Exchange, Manifest, Message
from emulators.hil.redact import Redactor

# Headers that describe one hop, not the exchange (RFC 9110 7.6.1), and what aiohttp recomputes.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
    "upgrade", "host", "content-length", "content-encoding",
    "sec-websocket-key", "sec-websocket-accept", "sec-websocket-version", "sec-websocket-extensions",
})


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


class Recorder:
    """Collects exchanges; an index is reserved when a request arrives so dial-outs can point at it."""

    def __init__(self, manifest: Manifest, redactor: Redactor) -> None:
        self.cassette = Cassette(manifest)
        self.redactor = redactor
        self._slots: list[Exchange | None] = []

    def reserve(self) -> int:
        self._slots.append(None)
        return len(self._slots) - 1

    def complete(self, index: int, exchange: Exchange) -> None:
        """Store the exchange with credentials redacted."""
        r = self.redactor
        exchange.url = r.url(exchange.url)
        exchange.request_body = r.body(exchange.request_body, exchange.header("Content-Type", response=False) or "")
        exchange.response_body = r.body(exchange.response_body, exchange.header("Content-Type") or "")
        exchange.request_headers = r.headers(exchange.request_headers)
        exchange.response_headers = r.headers(exchange.response_headers)
        if exchange.dial_out is not None:
            exchange.dial_out["url"] = r.url(exchange.dial_out["url"])
        if exchange.messages:
            for m in exchange.messages:
                m.data = r.message(m.data, m.opcode)
        self._slots[index] = exchange

    def count(self) -> int:
        return sum(1 for s in self._slots if s is not None)

    def save(self, directory: str | Path) -> Path:
        self.cassette.exchanges = [s for s in self._slots if s is not None]
        return self.cassette.save(directory)


async def pump_websockets(
    client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse, messages: list[Message],
    *, names: tuple[str, str] = ("client", "device"),
) -> tuple[int | None, str, float]:
    """Relay messages both ways until either side closes; returns (close code, who closed, when it closed).

    ``names`` are (the side that connected to us, the side we connected to): ("client", "device") in the
    proxy, ("device", "receiver") for a dial-out. Messages from the first are HAR "send", the others "receive".
    """
    result: dict[str, tuple[int | None, str]] = {}
    closed_at: list[float] = []

    async def relay(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, direction: str, who: str) -> None:
        async for msg in source:
            if msg.type == aiohttp.WSMsgType.TEXT:
                messages.append(Message(direction, time.time(), 1, msg.data.encode("utf-8")))
                await sink.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                messages.append(Message(direction, time.time(), 2, msg.data))
                await sink.send_bytes(msg.data)
            else:
                break
        code = source.close_code
        result.setdefault("closed", (code, who))
        closed_at.append(time.time())
        if not sink.closed:
            await sink.close(code=code if code and code not in (1005, 1006) else 1000)

    to_device = asyncio.create_task(relay(client, upstream, "send", names[0]))
    to_client = asyncio.create_task(relay(upstream, client, "receive", names[1]))
    try:
        done, pending = await asyncio.wait({to_device, to_client}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:  # the other side is closing too; give its close handshake a moment
            try:
                await asyncio.wait_for(task, 2.0)
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                task.cancel()
        for task in done:
            if task.exception() is not None and "closed" not in result:
                result["closed"] = (1006, names[1] if task is to_client else names[0])
    finally:
        for task in (to_device, to_client):
            task.cancel()
        await asyncio.gather(to_device, to_client, return_exceptions=True)
    code, who = result.get("closed", (None, ""))
    return code, who, closed_at[0] if closed_at else time.time()


async def relay_websocket(
    recorder: Recorder, session: aiohttp.ClientSession, request: web.Request, url: str | URL, *,
    ssl_context: ssl.SSLContext | bool, names: tuple[str, str], unreachable: str,
    dial_out: dict[str, Any] | None = None,
) -> web.StreamResponse:
    """Open ``url`` as a WebSocket with the request's end-to-end headers and subprotocols, accept the request's
    upgrade with the protocol the far side chose, pump both ways and record the session as one exchange.

    A refused upgrade is answered with the same status and recorded as HTTP; an unreachable far side is a 502
    saying ``unreachable`` (who did not answer). ``names`` as in :func:`pump_websockets`. A ``URL`` built with
    ``encoded=True`` is sent as given; a ``str`` is quoted by aiohttp.
    """
    index = recorder.reserve()
    started = time.time()
    request_headers = end_to_end(request.headers.items())
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    forwarded = [(k, v) for k, v in request_headers if k.lower() != "sec-websocket-protocol"]
    exchange = Exchange(method="GET", url=str(url), request_headers=request_headers, request_body=b"", status=101,
                        status_text="Switching Protocols", response_headers=[], response_body=b"",
                        started=started, duration_ms=0.0, messages=[], dial_out=dial_out)
    try:
        upstream = await session.ws_connect(url, headers=forwarded, protocols=protocols,
                                            ssl=ssl_context, max_msg_size=0)
    except aiohttp.WSServerHandshakeError as exc:
        exchange.messages = None
        exchange.status, exchange.status_text = exc.status, exc.message
        exchange.response_headers = end_to_end((exc.headers or {}).items())
        exchange.duration_ms = (time.time() - started) * 1000
        recorder.complete(index, exchange)
        return web.Response(status=exc.status, reason=exc.message)
    except (aiohttp.ClientError, TimeoutError) as exc:
        exchange.messages = None
        exchange.status, exchange.status_text = 502, "Bad Gateway"
        exchange.duration_ms = (time.time() - started) * 1000
        recorder.complete(index, exchange)
        return web.Response(status=502, text=f"benchtwin record: {unreachable} did not answer: {exc}")
    exchange.response_headers = end_to_end(upstream._response.headers.items())
    near = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (), max_msg_size=0)
    await near.prepare(request)
    messages: list[Message] = []
    exchange.messages = messages
    try:
        exchange.close_code, exchange.closed_by, closed_at = await pump_websockets(near, upstream, messages,
                                                                                   names=names)
        # The session ends when one side closed; the other side's close handshake is not part of it.
        exchange.duration_ms = (closed_at - started) * 1000
    finally:
        if not upstream.closed:
            await upstream.close()
        if not exchange.duration_ms:
            exchange.duration_ms = (time.time() - started) * 1000
        recorder.complete(index, exchange)
    return near
