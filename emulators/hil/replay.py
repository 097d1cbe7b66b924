"""`benchtwin replay`: serve a cassette as a stand-in device (HTTP answers, WebSocket sessions with their timing)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from emulators.hil.cassette import Cassette, Exchange, Message
from emulators.hil.dialout import dial_out_urls
from emulators.hil.match import MATCHERS, ExchangeMatcher, Incoming
from emulators.hil.media_replay import MediaReplay
from emulators.hil.recorder import end_to_end
from emulators.hil.redact import PLACEHOLDER
from emulators.kit.outbound import EgressPolicy, EgressRefused
from emulators.kit.tasks import TaskOwner
from emulators.kit.tls import client_ssl_context, ensure_dev_certs

log = logging.getLogger("benchtwin.hil.replay")

MISS_HEADER = "X-Benchtwin-Replay"
CLIENT_WAIT_S = 30.0  # how long a replayed WebSocket waits for the client's next recorded message


class ReplayServer:
    def __init__(self, cassette: Cassette, *, egress: EgressPolicy, host: str = "127.0.0.1", port: int = 0,
                 matchers: Sequence[str] = MATCHERS) -> None:
        self.cassette = cassette
        self.host = host
        self.port = port
        self.exchanges = cassette.device_exchanges()
        self.dial_outs = [cassette.dial_outs_of(cassette.exchanges.index(e)) for e in self.exchanges]
        wildcards = {i: list(dict.fromkeys(str(d.dial_out["field"]) for d in dial_outs if d.dial_out))
                     for i, dial_outs in enumerate(self.dial_outs) if dial_outs}
        self.matcher = ExchangeMatcher(self.exchanges, matchers, wildcards)
        self.egress = egress
        # Each captured stream on the port it was recorded on when that is free, so a client that asked the
        # device to open that port (Misty's rtspd:<port>) finds it.
        self.media = [MediaReplay(c, cassette.root or Path("."), host=host, port=urlsplit(c.url).port or 0)
                      for c in cassette.media_captures()]
        self._session: aiohttp.ClientSession | None = None
        self.misses: list[dict[str, object]] = []
        self.tasks = TaskOwner("replay")
        self._runner: web.AppRunner | None = None
        self._target = self._recorded_base()

    def _recorded_base(self) -> str:
        target = self.cassette.manifest.target or (self.exchanges[0].url if self.exchanges else "")
        parts = urlsplit(target)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        # Dial-outs trust the dev CA (local receivers) and the system store, as the emulators do.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=client_ssl_context(ensure_dev_certs().ca)))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self.answer)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        for media in self.media:
            await media.start()

    async def aclose(self) -> None:
        for media in self.media:
            await media.aclose()
        await self.tasks.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

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
        if self.dial_outs[index]:
            self._reproduce_dial_outs(exchange, self.dial_outs[index], body, incoming.content_type)
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
        await play_session(ws, exchange, ours="receive", we_close_as="device")
        return ws


    def _reproduce_dial_outs(self, exchange: Exchange, dial_outs: list[Exchange], body: bytes,
                             content_type: str) -> None:
        """Each recorded dial-out, at its recorded delay, to the receiver URL the new request gives."""
        for d in dial_outs:
            assert d.dial_out is not None
            found = dial_out_urls(body, content_type, [str(d.dial_out["field"])])
            if not found:
                continue
            delay = max(0.0, d.started - exchange.started)
            self.tasks.spawn(self._dial_out(d, found[0][1], delay), name=f"dial-out {d.dial_out['field']}")

    async def _dial_out(self, recorded: Exchange, url: str, delay: float) -> None:
        assert self._session is not None
        try:
            self.egress.check(url)
        except EgressRefused as exc:
            log.warning("replay: not reproducing a dial-out: %s", exc)
            return
        await asyncio.sleep(delay)
        headers = [(k, v) for k, v in end_to_end(recorded.request_headers)
                   if PLACEHOLDER not in v and not k.lower().startswith("sec-websocket")]
        try:
            if recorded.is_websocket:
                async with self._session.ws_connect(url, headers=headers, max_msg_size=0) as ws:
                    await play_session(ws, recorded, ours="send", we_close_as="device")
            else:
                async with self._session.request(recorded.method, url, headers=headers,
                                                 data=recorded.request_body or None) as resp:
                    await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("replay: dial-out to %s failed: %s", url, exc)


async def play_session(ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, exchange: Exchange, *,
                       ours: str, we_close_as: str, collect: list[Message] | None = None,
                       wait_s: float = CLIENT_WAIT_S) -> str:
    """Play one side of a recorded session on ``ws``; returns who closed ("us" or "peer").

    ``ours`` is the HAR direction of the messages we send: "receive" when we stand in for the device
    (or for the user's receiver of a dial-out), "send" when we make a recorded dial-out. Each of ours goes
    out at its recorded offset from the latest peer message we awaited, so recorded gaps are kept. We close
    when the recording's ``closed_by`` is ``we_close_as``; otherwise we wait for the peer to close. What the
    peer sends is appended to ``collect``.
    """
    theirs = "send" if ours == "receive" else "receive"

    def keep(msg: aiohttp.WSMessage) -> None:
        if collect is not None:
            text = msg.type == aiohttp.WSMsgType.TEXT
            collect.append(Message(theirs, time.time(), 1 if text else 2, msg.data.encode() if text else msg.data))

    anchor_real, anchor_recorded = time.monotonic(), exchange.started
    for message in exchange.messages or []:
        if message.direction == ours:
            delay = anchor_real + (message.time - anchor_recorded) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if ws.closed:
                return "peer"
            if message.opcode == 1:
                await ws.send_str(message.text)
            else:
                await ws.send_bytes(message.data)
        else:
            try:
                msg = await ws.receive(timeout=wait_s)
            except TimeoutError:
                break
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return "peer"
            keep(msg)
            anchor_real, anchor_recorded = time.monotonic(), message.time
    if exchange.closed_by == we_close_as:  # we ended the session when recorded: so we do now, on time
        end = exchange.started + exchange.duration_ms / 1000
        delay = anchor_real + (end - anchor_recorded) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await ws.close(code=exchange.close_code or 1000)
        return "us"
    while not ws.closed:  # the peer closes, as it did when recorded
        try:
            msg = await ws.receive(timeout=wait_s)
        except TimeoutError:
            await ws.close()
            return "us"
        if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            break
        keep(msg)
    return "peer"
