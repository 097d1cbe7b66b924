"""AV streaming through the REST API: service gating, exclusivity with the camera, failures leave the robot idle."""

from __future__ import annotations

import asyncio
import socket

import pytest

from clients.misty import MistyClient, MistyError
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.misty.device import MistyEmulator

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

SMALL = {"width": 320, "height": 240, "frame_rate": 10, "video_bit_rate": 256000, "audio_bit_rate": 32000,
         "audio_sample_rate_hz": 16000}  # fmt: skip


@pytest.fixture
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def robot():
    async with MistyEmulator(egress=EGRESS, settings={"port": 0}) as emu, MistyClient(emu.url()) as misty:
        await misty.enable_av_streaming_service()
        yield emu, misty


async def rtsp_options(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"OPTIONS rtsp://127.0.0.1:{port}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_rtspd_serves_until_the_camera_is_enabled_which_stops_it_and_frees_the_port(robot, free_port):
    emu, misty = robot
    assert await misty.start_av_streaming(f"rtspd:{free_port}", **SMALL)
    assert (await rtsp_options(free_port)).startswith(b"RTSP/1.0 200")
    assert emu.state()["av_stream"]["endpoint"] == f"rtsp://127.0.0.1:{free_port}/"
    await misty.enable_camera_service()
    assert emu.state()["av"] is None and emu.state()["av_stream"] is None
    assert port_is_free(free_port)
    with pytest.raises(MistyError, match="AV streaming service is disabled"):
        await misty.stop_av_streaming()


async def test_disabling_the_av_service_stops_the_stream(robot, free_port):
    emu, misty = robot
    await misty.start_av_streaming(f"rtspd:{free_port}", **SMALL)
    await misty.disable_av_streaming_service()
    assert emu.state()["av_stream"] is None and port_is_free(free_port)


async def test_an_unreachable_push_target_is_a_500_and_the_robot_stays_idle(robot, free_port):
    emu, misty = robot
    url = f"rtmp://127.0.0.1:{free_port}/live/robot"
    with pytest.raises(MistyError) as exc:
        await misty.start_av_streaming(url, **SMALL)
    assert exc.value.status == 500 and exc.value.error.startswith(f"Cannot connect to {url}: ")
    assert emu.state()["av"] is None
    # Idle, not "already active": the next start is judged on its own.
    assert await misty.start_av_streaming(f"rtspd:{free_port}", **SMALL)
    assert await misty.stop_av_streaming()


async def test_an_rtspd_port_that_is_taken_is_a_500(robot):
    emu, misty = robot
    with pytest.raises(MistyError) as exc:
        await misty.start_av_streaming(f"rtspd:{emu.ports['rest']}", **SMALL)
    assert exc.value.status == 500 and "RTSP" in exc.value.error
    assert emu.state()["av"] is None


@pytest.mark.control_plane
async def test_a_stream_that_breaks_after_start_leaves_the_robot_idle_without_retry(robot, free_port):
    emu, misty = robot
    await misty.start_av_streaming(f"rtspd:{free_port}", **SMALL)
    emu.faults.add({"match": {"stream": "av"}, "action": {"type": "disconnect"}, "count": 1})
    for _ in range(200):
        if emu.state()["av"] is None:
            break
        await asyncio.sleep(0.025)
    assert emu.state()["av"] is None and emu.state()["av_stream"] is None
    assert any(e.detail.get("stream") == "av" for e in emu.events.query("stream.error"))
    # No retry happened; a new start is accepted.
    assert await misty.start_av_streaming(f"rtspd:{free_port}", **SMALL)
    await misty.stop_av_streaming()
