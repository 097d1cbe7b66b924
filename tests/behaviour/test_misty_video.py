"""Misty's video WebSocket: binary JPEG per message, geometry, quality, stamps, viewers, stop/restart, faults."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest

from clients.misty import MistyClient
from clients.stamp import StreamKind, read_stamp
from emulators.misty.scene import BAR, SKY

TIMEOUT = 5.0


@pytest.fixture
async def emu(emulator_factory):
    return await emulator_factory("misty")


@pytest.fixture
async def misty(emu):
    async with MistyClient(emu.url()) as client:
        yield client


def decode(jpeg: bytes) -> np.ndarray:
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    codec = av.CodecContext.create("mjpeg", "r")
    return codec.decode(av.Packet(jpeg))[0].to_ndarray(format="rgb24")


def near(pixel: np.ndarray, colour: np.ndarray) -> bool:
    return int(np.abs(pixel.astype(int) - colour.astype(int)).max()) < 24


async def receive_binary(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
    assert msg.type == aiohttp.WSMsgType.BINARY, msg
    return msg.data


async def wait_closed(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    while True:
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        if msg.type != aiohttp.WSMsgType.BINARY:
            return msg


@pytest.mark.parametrize(
    ("rotation", "size", "sky", "bar"),
    # Sample points avoid the stamp (top-left) and the path of the moving disc.
    [(0, (640, 480), (240, 150), (470, 40)), (90, (480, 640), (200, 400), (200, 10)),
     (180, (640, 480), (240, 500), (10, 600))],
)  # fmt: skip
async def test_rotation_gives_the_documented_sizes_and_orientation(misty, free_port, rotation, size, sky, bar):
    await misty.start_video_streaming(port=free_port, rotation=rotation, quality=90)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        frame = decode(await receive_binary(ws))
    assert (frame.shape[1], frame.shape[0]) == size
    assert near(frame[sky], SKY)
    assert near(frame[bar], BAR)


async def test_width_and_height_are_exact_and_every_frame_is_stamped(misty, free_port):
    await misty.start_video_streaming(port=free_port, rotation=90, width=500, height=625, quality=20)
    frames = []
    async for jpeg in misty.video_frames(free_port):
        frames.append(decode(jpeg))
        if len(frames) == 5:
            break
    assert all(f.shape == (625, 500, 3) for f in frames)
    stamps = [read_stamp(f) for f in frames]
    assert all(s.stream_kind == StreamKind.MISTY_WEBSOCKET for s in stamps)
    assert [s.frame_index for s in stamps] == sorted({s.frame_index for s in stamps})


async def test_lower_quality_makes_smaller_files_and_the_stamp_survives_quality_1(misty, free_port):
    sizes = {}
    for quality in (1, 100):
        await misty.start_video_streaming(port=free_port, quality=quality)
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
            jpeg = await receive_binary(ws)
        sizes[quality] = len(jpeg)
        assert read_stamp(decode(jpeg)).stream_kind == StreamKind.MISTY_WEBSOCKET
    assert sizes[1] < sizes[100] * 0.8


async def test_frames_arrive_at_about_30_fps(misty, free_port):
    await misty.start_video_streaming(port=free_port, width=320, height=240, quality=30)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        first = read_stamp(decode(await receive_binary(ws)))
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < 1.0:
            last = read_stamp(decode(await receive_binary(ws)))
            count += 1
        elapsed = time.monotonic() - started
    rate = (last.frame_index - first.frame_index) / elapsed
    assert 20 <= rate <= 40, rate  # from the stamps' frame indices, which follow the 30 fps clock
    assert count >= 5


# Linux grows a TCP socket's send buffer up to this (the third field of tcp_wmem); 4 MB by default.
SEND_BUFFER_MAX = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])


async def _raw_viewer(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket viewer with tiny buffers, so not reading really pushes back on the robot's sender."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    length = b1 & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await asyncio.wait_for(reader.readexactly(length), TIMEOUT)


async def test_a_slow_viewer_sees_gaps_not_latency(misty, free_port):
    # Big frames make the socket buffers hold only a few of them.
    await misty.start_video_streaming(port=free_port, width=1600, height=1600, quality=100)
    reader, writer = await _raw_viewer(free_port)
    try:
        opcode, payload = await _read_frame(reader)
        assert opcode == 0x2
        first = read_stamp(decode(payload))
        # Deliberately slow, for longer than the robot's side can absorb: its socket's send buffer (which the kernel
        # may grow up to tcp_wmem's maximum) holds `held` frames of this size; stay away for 18 frames more.
        held = SEND_BUFFER_MAX // len(payload) + 1
        await asyncio.sleep((held + 18) / 30)
        back_ms = time.time() * 1000
        # The socket buffers still hold frames sent during the pause: read past them to the first frame captured
        # after the viewer came back.
        latest = []
        for _ in range(held + 60):
            opcode, payload = await _read_frame(reader)
            latest.append(read_stamp(decode(payload)))
            if latest[-1].capture_time_ms >= back_ms:
                break
    finally:
        writer.close()
    assert latest[-1].capture_time_ms >= back_ms, "no fresh frame after reading the backlog"
    # A queueing sender would still be delivering first+1, first+2, ... (every frame of the pause, in order); a
    # newest-frame sender dropped what did not fit, so the fresh frame comes after far fewer reads than frames made.
    assert latest[-1].frame_index - first.frame_index > len(latest)


async def test_two_viewers_share_one_encode(emu, misty, free_port):
    await misty.start_video_streaming(port=free_port, width=320, height=240, quality=30)
    async with aiohttp.ClientSession() as http:
        url = f"ws://127.0.0.1:{free_port}"
        async with http.ws_connect(url) as a, http.ws_connect(url) as b:
            for _ in range(3):
                await receive_binary(a)
                await receive_binary(b)
            stream = emu.service.video_stream
            encoded_before = stream.frames_encoded
            sent_before = sum(v.sent for v in stream.viewers.values())
            got_a, got_b = [], []
            for _ in range(10):
                got_a.append(await receive_binary(a))
                got_b.append(await receive_binary(b))
            encoded = stream.frames_encoded - encoded_before
            sent = sum(v.sent for v in stream.viewers.values()) - sent_before
            # One encode served both viewers: more frames went out than were encoded, byte-identical.
            assert sent > encoded
            assert len(set(got_a) & set(got_b)) >= 3


async def test_stop_closes_viewers_with_1000_and_frees_the_port(misty, free_port):
    await misty.start_video_streaming(port=free_port)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        await receive_binary(ws)
        await misty.stop_video_streaming()
        closing = await wait_closed(ws)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1000
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", free_port))


async def test_a_start_while_running_restarts_with_the_new_parameters(emu, misty, free_port):
    await misty.start_video_streaming(port=free_port, rotation=0)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
            old = read_stamp(decode(await receive_binary(ws)))
            await misty.start_video_streaming(port=free_port, rotation=90, quality=50)
            closing = await wait_closed(ws)
            assert closing.data == 1000
        async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
            frame = decode(await receive_binary(ws))
    assert frame.shape == (640, 480, 3)
    assert read_stamp(frame).stream_id == old.stream_id + 1


async def test_an_invalid_start_leaves_the_running_stream_untouched(emu, misty, free_port):
    await misty.start_video_streaming(port=free_port, rotation=90)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        await receive_binary(ws)
        with pytest.raises(Exception, match="'Quality'"):
            await misty.start_video_streaming(port=free_port, quality=0)
        await receive_binary(ws)
    assert emu.state()["video"]["rotation"] == 90


async def test_turning_the_camera_off_closes_viewers_with_1000(misty, free_port):
    await misty.start_video_streaming(port=free_port)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        await receive_binary(ws)
        await misty.enable_av_streaming_service()
        closing = await wait_closed(ws)
    assert closing.data == 1000


async def test_plain_http_on_the_video_port_is_a_400(misty, free_port):
    await misty.start_video_streaming(port=free_port)
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{free_port}/") as resp:
        assert resp.status == 400


async def test_client_messages_are_ignored(misty, free_port):
    await misty.start_video_streaming(port=free_port)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        await ws.send_str("hello robot")
        await receive_binary(ws)
        await receive_binary(ws)


async def test_single_viewer_quirk_starves_later_viewers_until_a_sensory_reboot(emulator_factory, free_port):
    emu = await emulator_factory("misty", settings={"single_viewer": True})
    async with MistyClient(emu.url()) as misty:
        await misty.start_video_streaming(port=free_port, width=320, height=240)
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as first:
                await receive_binary(first)
            async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as second:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(second.receive(), 0.4)
            # Even a stop/start does not help ...
            await misty.start_video_streaming(port=free_port, width=320, height=240)
            async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as third:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(third.receive(), 0.4)
            # ... only a sensory-services reboot does.
            await misty.reboot(core=False, sensory_services=True)
            await misty.start_video_streaming(port=free_port, width=320, height=240)
            async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as fourth:
                await receive_binary(fourth)


@pytest.mark.control_plane
async def test_stream_faults_drop_close_and_corrupt_frames(emu, misty, free_port):
    await misty.start_video_streaming(port=free_port, width=320, height=240)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
            await receive_binary(ws)
            emu.faults.add({"match": {"stream": "video"}, "action": {"type": "corrupt"}, "count": 1})
            corrupted = 0
            for _ in range(4):
                jpeg = await receive_binary(ws)
                try:
                    read_stamp(decode(jpeg))
                except Exception:
                    corrupted += 1
            emu.faults.add({"match": {"stream": "video"}, "action": {"type": "close", "code": 1011}, "count": 1})
            closing = await wait_closed(ws)
        assert closing.data == 1011
        applied = [e.detail["action"] for e in emu.events.query("fault.applied")]
        assert applied[:2] == ["corrupt", "close"]
        # The stream itself keeps running: a new viewer gets frames again.
        async with http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
            await receive_binary(ws)


@pytest.mark.control_plane
async def test_drop_and_stall_faults_show_up_as_stamp_gaps(emu, misty, free_port):
    await misty.start_video_streaming(port=free_port, width=320, height=240, quality=30)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        before = read_stamp(decode(await receive_binary(ws)))
        emu.faults.add({"match": {"stream": "video"}, "action": {"type": "drop"}, "count": 3})
        emu.faults.add({"match": {"stream": "video"}, "action": {"type": "stall", "seconds": 0.3}, "count": 1})
        indices = [before.frame_index]
        for _ in range(6):
            indices.append(read_stamp(decode(await receive_binary(ws))).frame_index)
    gaps = [b - a for a, b in itertools.pairwise(indices)]
    # Three dropped frames and a 0.3 s stall (about 9 skipped ticks) add up to at least 12 missing indices.
    assert sum(gaps) - len(gaps) >= 12, indices
    assert [e.detail["action"] for e in emu.events.query("fault.applied")] == ["drop"] * 3 + ["stall"]


@pytest.mark.control_plane
async def test_a_disconnect_fault_drops_viewers_without_a_close_frame(emu, misty, free_port):
    await misty.start_video_streaming(port=free_port, width=320, height=240)
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
        await receive_binary(ws)
        emu.faults.add({"match": {"stream": "video"}, "action": {"type": "disconnect"}, "count": 1})
        ending = await wait_closed(ws)
    assert ending.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    assert ending.type != aiohttp.WSMsgType.CLOSE or ending.data != 1000
