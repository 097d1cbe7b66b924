"""The RTSP server against careless and hostile clients: bad headers, huge heads, idle sockets, session floods."""

from __future__ import annotations

import asyncio
import os

import pytest

from emulators.kit.rtsp.live import H264Track, LiveMedia
from emulators.kit.rtsp.message import Headers, RtspMessageReader, RtspRequest, RtspResponse
from emulators.kit.rtsp.server import RtspServer

SPS = bytes.fromhex("6742C01E8C8D40A0FD00F08846A0")
PPS = bytes.fromhex("68CE3C80")
TIMEOUT = 5.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: RtspRequest) -> RtspResponse:
    writer.write(request.serialize())
    parser = RtspMessageReader("client")
    while True:
        data = await asyncio.wait_for(reader.read(65536), TIMEOUT)
        assert data, "the server closed the connection instead of answering"
        for message in parser.feed(data):
            if isinstance(message, RtspResponse):
                return message


def request(method: str, url: str, cseq: int, **headers: str) -> RtspRequest:
    return RtspRequest(method, url, Headers([("CSeq", str(cseq)), *headers.items()]))


@pytest.fixture
async def server():
    media = LiveMedia(H264Track(320, 240, 30, SPS, PPS), None)
    teardowns: asyncio.Queue[str] = asyncio.Queue()

    def on_event(kind: str, detail: dict) -> None:
        if kind == "teardown":
            teardowns.put_nowait(detail["reason"])

    server = RtspServer(
        media, seed=5, on_event=on_event,
        max_connections=4, max_sessions=40, max_sessions_per_connection=8,
        idle_timeout=0.5, head_timeout=0.5,
    )
    await server.start()
    server.teardowns = teardowns  # type: ignore[attr-defined]
    yield server
    await server.aclose()


async def test_a_transport_of_only_semicolons_is_answered_461_and_the_connection_stays_usable(server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    url = f"rtsp://127.0.0.1:{server.port}/video"
    try:
        answer = await exchange(reader, writer, request("SETUP", url, 1, Transport=";;;"))
        assert answer.status == 461 and answer.cseq == "1"
        assert (await exchange(reader, writer, request("OPTIONS", url, 2))).status == 200
    finally:
        writer.close()


async def test_a_40_kb_head_in_one_write_is_a_400_and_the_connection_is_closed(server) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = b"OPTIONS rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 1\r\nX-Pad: " + b"a" * 40_000 + b"\r\n\r\n"
    writer.write(head)
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    assert data.startswith(b"RTSP/1.0 400 Bad Request\r\n") and b"exceeds 16384 bytes" in data
    writer.close()


async def test_an_idle_connection_is_closed_and_a_half_sent_request_is_answered_408(server) -> None:
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", server.port)
    slow_writer.write(b"OPTIONS rtsp://127.0.0.1/ RTSP/1.0\r\nCSeq: 1\r\n")
    assert await asyncio.wait_for(idle_reader.read(), TIMEOUT) == b""
    slow = await asyncio.wait_for(slow_reader.read(), TIMEOUT)
    assert slow.startswith(b"RTSP/1.0 408 Request Timeout\r\n")
    idle_writer.close()
    slow_writer.close()


async def test_connections_beyond_the_limit_get_503_while_the_others_are_still_served(server) -> None:
    url = f"rtsp://127.0.0.1:{server.port}/video"
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(4)]
    try:
        for n, (reader, writer) in enumerate(held):  # all four are registered before the fifth arrives
            assert (await exchange(reader, writer, request("OPTIONS", url, n))).status == 200
        extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", server.port)
        refused = await asyncio.wait_for(extra_reader.read(), TIMEOUT)
        assert refused.startswith(b"RTSP/1.0 503 Service Unavailable\r\n")
        extra_writer.close()
        reader, writer = held[0]
        assert (await exchange(reader, writer, request("OPTIONS", url, 9))).status == 200
    finally:
        for _, writer in held:
            writer.close()


async def test_a_udp_setup_flood_is_capped_and_its_sockets_are_freed_when_the_connection_closes(server) -> None:
    url = f"rtsp://127.0.0.1:{server.port}/video"
    before = open_fds()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    statuses = []
    for n in range(20):
        answer = await exchange(reader, writer, request("SETUP", url, n, Transport="RTP/AVP;unicast;client_port=9-10"))
        statuses.append(answer.status)
    assert statuses == [200] * 8 + [503] * 12
    assert open_fds() >= before + 16  # two UDP sockets per session were really bound
    writer.close()
    reasons = [await asyncio.wait_for(server.teardowns.get(), TIMEOUT) for _ in range(8)]
    assert reasons == ["connection closed"] * 8 and server.session_count == 0
    for _ in range(3):  # a closed datagram transport releases its socket on the next loop iterations
        await asyncio.sleep(0)
    assert open_fds() <= before
