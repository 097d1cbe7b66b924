"""A receiver that stops reading: a real TCP peer with a small receive buffer completes the WebSocket upgrade and
never reads again; after the 5 s backlog its stream ends with ``stream-error`` while other streams go on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import socket
import time
from collections.abc import AsyncIterator

import pytest
from signalwire_helpers import CONFERENCE, rig

from emulators.signalwire.media import BACKLOG_LIMIT_S

pytestmark = pytest.mark.control_plane

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's handshake constant
RECEIVE_BUFFER = 4096


class StalledReceiver:
    """Answers the upgrade with 101, then holds the connection without reading (its TCP window closes)."""

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Set before listen() so the accepted socket inherits it (and the window scale is chosen for it).
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.setblocking(False)
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/audio"
        self.upgraded = asyncio.Event()
        self.connection: socket.socket | None = None

    async def accept_and_stall(self) -> None:
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(self.listener)
        self.connection = conn
        request = b""
        while b"\r\n\r\n" not in request:
            request += await loop.sock_recv(conn, 1024)
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID.encode()).digest())
        await loop.sock_sendall(conn, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.upgraded.set()  # and from here on nothing is read

    def close(self) -> None:
        for sock in (self.connection, self.listener):
            if sock is not None:
                sock.close()


@contextlib.asynccontextmanager
async def stalled_receiver() -> AsyncIterator[StalledReceiver]:
    receiver = StalledReceiver()
    task = asyncio.create_task(receiver.accept_and_stall())
    try:
        yield receiver
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await task
        receiver.close()


async def test_a_receiver_that_stops_reading_ends_its_stream_after_the_backlog_and_others_go_on():
    async with rig({"allow_ws_scheme": True}) as r, stalled_receiver() as stalled:
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="inbound_track")
        healthy = await r.receiver.next_stream()
        await healthy.wait_media(5)
        # L16 at 24 kHz on both tracks: ~2.6 kB a message, 100 a second, so the buffers fill quickly.
        created = await r.client.start_stream(CONFERENCE, Url=stalled.url, StreamCodec="L16@24000h",
                                              StatusCallback=r.callbacks.url)
        await r.callbacks.wait_for("stream-started", created["sid"])
        started = time.monotonic()
        error = await r.callbacks.wait_for("stream-error", created["sid"], timeout_s=BACKLOG_LIMIT_S + 15)
        ended_after = time.monotonic() - started
        assert error["fields"]["StreamError"] == "general_error"
        assert ended_after >= BACKLOG_LIMIT_S
        backlog = [e.detail for e in r.emulator.events.query("stream.backlog") if e.detail["stream"] == created["sid"]]
        assert backlog and backlog[0]["blocked_writing"] is True
        assert created["sid"] not in r.emulator.service.sessions
        assert r.emulator.backend.conferences[CONFERENCE].streams[created["sid"]].status == "stopped"
        # Memory stayed bounded: once the socket buffers (about 260 kB here) were full the sender blocked instead
        # of queueing; without the bound ~700 messages would have gone out in that time.
        assert backlog[0]["sent_media"] <= 400
        # The other stream never missed a chunk and still flows after the stuck one ended.
        before = len(healthy.media("inbound"))
        await healthy.wait_media(before + 25)
        assert healthy.missing_chunks("inbound") == []
