"""The kit's server WebSocket: masked client frames arrive as usual, an unmasked one closes with 1002."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from aiohttp import WSMsgType, web

from emulators.kit.websocket import MaskedWebSocketResponse

TIMEOUT = 5.0


def frame(payload: bytes, *, masked: bool, opcode: int = 0x1) -> bytes:
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, (0x80 if masked else 0) | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, (0x80 if masked else 0) | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, (0x80 if masked else 0) | 127, size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@pytest.fixture
async def echo_server():
    received: list[tuple[WSMsgType, object]] = []
    done = asyncio.Event()

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = MaskedWebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            received.append((message.type, message.data))
        received.append((WSMsgType.CLOSED, ws.close_code))
        done.set()
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1], received, done
    await runner.cleanup()


async def handshake(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)).startswith(b"HTTP/1.1 101")
    return reader, writer


async def test_an_unmasked_client_frame_closes_with_1002_after_the_masked_ones_before_it(echo_server) -> None:
    port, received, done = echo_server
    reader, writer = await handshake(port)
    big = b"x" * 70_000
    writer.write(frame(b"one", masked=True) + frame(big, masked=True) + frame(b"two", masked=False))
    close = await asyncio.wait_for(reader.read(4), TIMEOUT)
    assert close[0] == 0x88 and struct.unpack("!H", close[2:4])[0] == 1002
    await asyncio.wait_for(done.wait(), TIMEOUT)
    assert [data for kind, data in received if kind == WSMsgType.TEXT] == ["one", big.decode()]
    writer.close()


async def test_masked_frames_split_across_writes_are_delivered(echo_server) -> None:
    port, received, done = echo_server
    _reader, writer = await handshake(port)
    data = frame(b"hello", masked=True) + frame(b"a" * 300, masked=True) + frame(b"", masked=True, opcode=0x8)
    for i in range(0, len(data), 3):
        writer.write(data[i : i + 3])
        await writer.drain()
    await asyncio.wait_for(done.wait(), TIMEOUT)
    assert [data for kind, data in received if kind == WSMsgType.TEXT] == ["hello", "a" * 300]
    writer.close()
