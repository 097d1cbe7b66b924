"""RFC 6455 section 5.1 on every server WebSocket of the emulators: a client frame without a mask is closed with
1002 (protocol error), and the emulator goes on answering."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from urllib.parse import urlsplit

import aiohttp
import pytest

from clients.misty import MistyClient
from clients.videodb import VideoDBClient
from tests.conftest import EmulatorFactory

TIMEOUT = 10.0
MXID = "14442C10D13EABCE00"


async def unmasked_frame_close_code(url: str) -> int:
    """Open ``url`` by hand, send one unmasked text frame, return the close code the server answers with."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        payload = b'{"Operation": "subscribe"}'
        writer.write(struct.pack("!BB", 0x81, len(payload)) + payload)  # FIN + text, mask bit clear
        async with asyncio.timeout(TIMEOUT):
            while True:  # the server may be sending media first: skip frames until its close frame
                first, second = await reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                elif size == 127:
                    size = struct.unpack("!Q", await reader.readexactly(8))[0]
                body = await reader.readexactly(size)
                if first & 0x0F == 0x8:
                    return int(struct.unpack("!H", body[:2])[0])
    finally:
        writer.close()


async def health_within_a_second(rest_url: str) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, asyncio.timeout(1.0):
        async with http.get(f"{rest_url}/_emulator/health") as resp:
            assert resp.status == 200
    assert time.monotonic() - started < 1.0


async def test_misty_pubsub_and_video_sockets_close_an_unmasked_frame_with_1002(
    emulator_factory: EmulatorFactory, free_port: int
) -> None:
    emu = await emulator_factory("misty")
    rest = emu.url()
    assert await unmasked_frame_close_code(rest.replace("http", "ws", 1) + "/pubsub") == 1002
    async with MistyClient(rest) as misty:
        await misty.start_video_streaming(port=free_port)
    assert await unmasked_frame_close_code(f"ws://127.0.0.1:{free_port}") == 1002
    await health_within_a_second(rest)


async def test_depthcam_video_socket_closes_an_unmasked_frame_with_1002(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("depthcam", settings={"profile": "documented"})
    url = emu.url().replace("http", "ws", 1) + f"/cameras/{MXID}/streams/CAM_B/video"
    assert await unmasked_frame_close_code(url) == 1002
    await health_within_a_second(emu.url())


async def test_videodb_collection_socket_closes_an_unmasked_frame_with_1002(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("videodb")
    async with VideoDBClient(emu.settings.api_key, emu.url()) as client:
        url = await client.websocket_url()
    assert await unmasked_frame_close_code(url) == 1002
    await health_within_a_second(emu.url())


@pytest.mark.parametrize("device", ["misty", "depthcam", "videodb"])
def test_every_server_websocket_of_the_device_uses_the_masking_response(device: str) -> None:
    """No device module builds aiohttp's plain WebSocketResponse (which accepts unmasked client frames)."""
    from importlib import resources

    package = resources.files(f"emulators.{device}")
    offenders = [
        entry.name for entry in package.iterdir()
        if entry.name.endswith(".py") and "web.WebSocketResponse(" in entry.read_text(encoding="utf-8")
    ]
    assert offenders == []
