"""Hostile and careless clients against all five emulators in one process (issue 17): after each, every emulator
still answers health within 1 s, and descriptors and threads come back within bounds."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import aiohttp
import pytest

from emulators.kit.emulator import Emulator
from emulators.kit.outbound import EgressRefused
from emulators.registry import DEVICES, available

pytestmark = pytest.mark.control_plane

HEALTH_LIMIT_S = 1.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def five(emulator_factory: Any) -> list[Emulator]:
    missing = [d for d in DEVICES if d not in available()]
    if missing:
        pytest.skip(f"not part of this installation: {missing}")
    return [await emulator_factory(device) for device in DEVICES]


async def every_health_within_a_second(emulators: list[Emulator]) -> None:
    async with aiohttp.ClientSession() as http:
        for emu in emulators:
            started = time.monotonic()
            async with asyncio.timeout(HEALTH_LIMIT_S), http.get(f"{emu.url()}/_emulator/health") as resp:
                assert resp.status == 200, emu.device
                assert (await resp.json())["ready"] is True
            assert time.monotonic() - started < HEALTH_LIMIT_S


async def all_connections_closed(emulators: list[Emulator]) -> None:
    for emu in emulators:
        for site in emu._sites:
            gate = site.gate  # type: ignore[attr-defined]
            while gate.open > 0:
                gate.released.clear()
                await gate.released.wait()


async def test_eleven_hundred_idle_connections_to_one_port_leave_every_emulator_answering(five) -> None:
    fds, threads = open_fds(), threading.active_count()
    target = five[0]
    held: list[asyncio.StreamWriter] = []
    try:
        for n in range(1100):
            _, writer = await asyncio.open_connection("127.0.0.1", target.ports["rest"])
            if n % 2:
                writer.write(b"POST /_emulator/faults HTTP/1.1\r\nHost: x\r\nContent-Length: 10")  # a head that stops
            held.append(writer)
        await every_health_within_a_second(five)
    finally:
        for writer in held:
            writer.close()
    await asyncio.wait_for(all_connections_closed(five), 10)
    await every_health_within_a_second(five)
    assert open_fds() <= fds + 10
    assert threading.active_count() <= threads + 2


async def test_a_thousand_levels_of_json_on_every_control_plane_is_a_400_naming_the_body(five) -> None:
    body = '{"a": ' * 1000 + "1" + "}" * 1000
    async with aiohttp.ClientSession() as http:
        for emu in five:
            for path in ("/_emulator/faults", "/_emulator/reset"):
                headers = {"Content-Type": "application/json"}
                async with http.post(f"{emu.url()}{path}", data=body, headers=headers) as resp:
                    assert resp.status == 400, (emu.device, path)
                    assert (await resp.json())["field"] == "body"
    await every_health_within_a_second(five)


async def test_a_web_page_cannot_add_faults_or_reset_any_emulator(five) -> None:
    page = {"Origin": "http://attacker.example", "Content-Type": "text/plain"}
    rule = '{"match": {"path": "/*"}, "action": {"type": "status", "status": 500}}'
    async with aiohttp.ClientSession() as http:
        for emu in five:
            async with http.post(f"{emu.url()}/_emulator/faults", data=rule, headers=page) as resp:
                assert resp.status == 403, emu.device
                assert "Access-Control-Allow-Origin" not in resp.headers
            async with http.post(f"{emu.url()}/_emulator/reset", headers=page) as resp:
                assert resp.status == 403, emu.device
            assert len(emu.faults) == 0
    await every_health_within_a_second(five)


async def test_every_emulator_refuses_the_cloud_metadata_address_by_default(five) -> None:
    for emu in five:
        with pytest.raises(EgressRefused):
            await emu.egress.check_async("http://169.254.169.254/latest/meta-data/")
        await emu.egress.check_async("http://127.0.0.1:1/")  # loopback stays allowed
    await every_health_within_a_second(five)
