"""Failed AV pushes free everything they made: 30 StartAvStreaming calls to a target that refuses, and the
encoders, their threads, the muxer processes and the memory are all given back (issue 17)."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time

import aiohttp
import pytest

from clients.misty import MistyClient, MistyError
from tests.conftest import EmulatorFactory

PUSHES = 30


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def settle(threads_before: int) -> int:
    """Threads left once the encoders' own threads have wound down (each is joined as its context is freed)."""
    deadline = time.monotonic() + 10
    while True:
        gc.collect()
        count = threading.active_count()
        if count <= threads_before + 2 or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.1)


@pytest.mark.timeout(240)
async def test_thirty_refused_pushes_give_back_encoders_threads_processes_and_memory(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("misty")
    url = f"rtmp://127.0.0.1:{refused_port()}/live/robot"
    async with MistyClient(emu.url()) as misty:
        await misty.enable_av_streaming_service()
        # Warm-up: the first push loads FFmpeg's codecs and PyAV's modules once.
        with pytest.raises(MistyError) as first:
            await misty.start_av_streaming(url, width=640, height=480)
        assert "connect" in str(first.value).lower() or "refused" in str(first.value).lower(), first.value
        threads, rss = await settle(threading.active_count()), rss_mb()
        for _ in range(PUSHES):
            with pytest.raises(MistyError):
                await misty.start_av_streaming(url, width=640, height=480)
        left = await settle(threads)
    gc.collect()
    assert left <= threads + 2
    assert rss_mb() - rss < 15, f"RSS grew {rss_mb() - rss:.1f} MB over {PUSHES} failed pushes"
    state = emu.state()
    assert not [w for w in emu.workers.as_list() if w.get("alive")], "a muxer process outlived its failed push"
    assert len(emu.events.query(kind="outbound.failed")) == PUSHES + 1
    async with aiohttp.ClientSession() as http, http.get(f"{emu.url()}/_emulator/health") as health:
        assert health.status == 200
    assert state is not None
