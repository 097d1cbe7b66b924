"""AV streaming through the REST API: service gating, exclusivity with the camera, failures leave the robot idle."""

from __future__ import annotations

import asyncio
import socket

import pytest

from clients.misty import MistyClient, MistyError
from emulators.config import Config
from emulators.kit.outbound import DEFAULT_ALLOWED
from emulators.kit.rtsp.recorder import RtspRecorder

SMALL = {"width": 320, "height": 240, "frame_rate": 10, "video_bit_rate": 256000, "audio_bit_rate": 32000,
         "audio_sample_rate_hz": 16000}  # fmt: skip


@pytest.fixture
async def robot(emulator_factory):
    emu = await emulator_factory("misty")
    async with MistyClient(emu.url()) as misty:
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
    await emu.events.wait_for("stream.error", lambda e: e.detail.get("stream") == "av", timeout=10)
    assert emu.state()["av"] is None and emu.state()["av_stream"] is None
    assert any(e.detail.get("stream") == "av" for e in emu.events.query("stream.error"))
    # No retry happened; a new start is accepted.
    assert await misty.start_av_streaming(f"rtspd:{free_port}", **SMALL)
    await misty.stop_av_streaming()


# ----- egress: the push obeys the configured allowlist, never a default of its own ---------------------------
async def push_to(emulator_factory, egress_allow: list[str], host: str) -> tuple[MistyError | None, int]:
    """StartAvStreaming rtsp://<host>:<recorder>/ on a robot configured with ``egress_allow``;
    (the error, video units recorded)."""
    recorder = RtspRecorder()
    await recorder.start()
    try:
        emu = await emulator_factory("misty", config=Config(egress_allow=egress_allow))
        async with MistyClient(emu.url()) as misty:
            await misty.enable_av_streaming_service()
            try:
                await misty.start_av_streaming(f"rtsp://{host}:{recorder.port}/robot", **SMALL)
            except MistyError as exc:
                return exc, len(recorder.video)
            await recorder.wait_for(lambda r: len(r.video) >= 3, within=10)
            await misty.stop_av_streaming()
            return None, len(recorder.video)
    finally:
        await recorder.aclose()


async def test_egress_allow_narrows_the_push_a_loopback_target_outside_it_is_refused(emulator_factory):
    error, recorded = await push_to(emulator_factory, ["10.0.0.0/8"], "127.0.0.1")
    assert error is not None and error.status == 500 and "egress allowlist" in error.error
    assert recorded == 0


async def test_egress_allow_widens_the_push_an_address_outside_the_defaults_is_admitted_when_listed(emulator_factory):
    # 0.0.0.0 is outside the default ranges, yet on Linux a connection to it reaches the loopback listener.
    refused, _ = await push_to(emulator_factory, list(DEFAULT_ALLOWED), "0.0.0.0")
    assert refused is not None and "egress allowlist" in refused.error
    error, recorded = await push_to(emulator_factory, [*DEFAULT_ALLOWED, "0.0.0.0/32"], "0.0.0.0")
    assert error is None and recorded >= 3


async def test_the_push_muxer_is_an_owned_worker_that_is_gone_after_stop(robot):
    emu, misty = robot
    recorder = RtspRecorder()
    await recorder.start()
    try:
        await misty.start_av_streaming(f"rtsp://127.0.0.1:{recorder.port}/robot", **SMALL)
        workers = emu.workers.as_list()  # what /_emulator/state lists as "workers"
        assert [(w["name"].split(":")[0], w["state"]) for w in workers] == [("misty-push", "running")]
        assert "rtsp://127.0.0.1" in workers[0]["name"]
        await misty.stop_av_streaming()
    finally:
        await recorder.aclose()
    assert emu.workers.as_list() == []
    await emu.events.wait_for("worker.stopped", timeout=5)
    assert not emu.events.query(kind="worker.leaked")
