"""Misty reboots: POST /api/reboot and the reboot scenario control; the restart window answers 503."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from clients.misty import MistyClient, MistyError
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.misty.device import MistyEmulator

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)


@pytest.fixture
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_sensory_reboot_stops_streams_and_restores_boot_services(free_port):
    async with MistyEmulator(egress=EGRESS, settings={"port": 0}) as emu, MistyClient(emu.url()) as misty:
        await misty.start_video_streaming(port=free_port)
        await misty.disable_audio_service()
        await misty.reboot(core=False, sensory_services=True)
        state = emu.state()
        assert state["video"] is None and state["video_stream"] is None
        assert state["services"] == {"avstreaming": False, "camera": True, "audio": True, "slam": True}


async def test_a_reboot_with_neither_part_changes_nothing(free_port):
    async with MistyEmulator(egress=EGRESS, settings={"port": 0}) as emu, MistyClient(emu.url()) as misty:
        await misty.start_video_streaming(port=free_port)
        await misty.reboot(core=False, sensory_services=False)
        assert emu.state()["video"] is not None


async def test_during_the_reboot_delay_rest_answers_503_and_the_video_port_refuses(free_port):
    # reboot_delay_s is a lifecycle delay: 4 s x time scale 0.05 = 0.2 s here.
    async with MistyEmulator(egress=EGRESS, settings={"port": 0, "reboot_delay_s": 4.0}, time_scale=0.05) as emu:
        async with MistyClient(emu.url()) as misty:
            await misty.start_video_streaming(port=free_port)
            assert await misty.reboot(core=True, sensory_services=True)
            with pytest.raises(MistyError) as exc:
                await misty.camera_service_enabled()
            assert exc.value.status == 503 and exc.value.error == "Robot is restarting"
            with pytest.raises(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", free_port)
                writer.close()
            for _ in range(200):
                if not emu.restarting:
                    break
                await asyncio.sleep(0.01)
            assert await misty.camera_service_enabled()
            kinds = [e.kind for e in emu.events.query("robot")]
            assert kinds == ["robot.reboot", "robot.ready"]


@pytest.mark.control_plane
async def test_the_reboot_scenario_control_validates_and_reboots(free_port):
    async with MistyEmulator(egress=EGRESS, settings={"port": 0}) as emu, MistyClient(emu.url()) as misty:
        await misty.enable_av_streaming_service()
        async with aiohttp.ClientSession() as http:
            url = emu.url() + "/_emulator/scenario/reboot"
            async with http.post(url, json={"core": "yes"}) as resp:
                assert resp.status == 400 and "core" in (await resp.json())["error"]
            async with http.post(url, json={"core": False, "sensory_services": True}) as resp:
                assert resp.status == 200 and (await resp.json())["rebooted"] is True
        assert await misty.camera_service_enabled() and not await misty.av_streaming_service_enabled()


async def test_camera_enable_flaky_answers_true_but_leaves_the_camera_off():
    async with (
        MistyEmulator(egress=EGRESS, settings={"port": 0, "camera_enable_flaky": 1.0}) as emu,
        MistyClient(emu.url()) as misty,
    ):
        await misty.disable_camera_service()
        assert await misty.enable_camera_service() is True
        assert not await misty.camera_service_enabled()


def test_settings_are_validated():
    from emulators.kit.errors import FieldError

    with pytest.raises(FieldError, match="camera_enable_flaky"):
        MistyEmulator(egress=EGRESS, settings={"port": 0, "camera_enable_flaky": 1.5})
    with pytest.raises(FieldError, match="reboot_delay_s"):
        MistyEmulator(egress=EGRESS, settings={"port": 0, "reboot_delay_s": -1.0})


@pytest.mark.control_plane
async def test_a_control_plane_reset_returns_to_boot_state_and_frees_the_video_port(free_port):
    async with MistyEmulator(egress=EGRESS, settings={"port": 0}) as emu, MistyClient(emu.url()) as misty:
        await misty.start_video_streaming(port=free_port)
        await misty.disable_audio_service()
        await emu.reset(seed=7)
        state = emu.state()
        assert state["services"] == {"avstreaming": False, "camera": True, "audio": True, "slam": True}
        assert state["video_stream"] is None and state["av_stream"] is None
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", free_port))
        # Only the emulator-wide tasks of a fresh boot remain (the pubsub sources).
        assert emu.tasks.live == 0 and emu.pubsub.tasks.live == 1
