"""Scenario `startup`: from `benchtwin up` process start to every emulator answering its health check.

The clock starts before the interpreter is launched (imports count) and stops when our own GET of every
emulator's /_emulator/health says ready; `benchtwin up`'s own "ready in" figure (after imports) is kept too.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import aiohttp

from emulators.bench.process import EmulatorProcess
from emulators.bench.stats import BenchOptions
from emulators.bench.table import target
from emulators.registry import available

TARGET_S = 2.0


async def _healthy(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(f"{url}/_emulator/health") as resp:
        return resp.status == 200 and bool((await resp.json()).get("ready"))


async def run(options: BenchOptions) -> dict[str, Any]:
    runs = 1 if options.quick else 3
    devices = list(available())
    totals: list[float] = []
    endpoints_after: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for _ in range(runs):
            up = EmulatorProcess([], options.workdir)
            started = time.monotonic()
            async with up:
                endpoints_after.append(up.ready_after_s)
                for device in devices:
                    if not await _healthy(session, up.rest(device)):
                        raise RuntimeError(f"{device} answered its health check but is not ready")
                totals.append(time.monotonic() - started)
    seconds = statistics.median(totals)
    return {
        "seconds": round(seconds, 3),
        "seconds_min": round(min(totals), 3),
        "seconds_max": round(max(totals), 3),
        "runs": runs,
        "emulators": len(devices),
        "targets": {"seconds": target(f"< {TARGET_S} s", seconds < TARGET_S)},
        "notes": [f"median of {runs} start(s) of all {len(devices)} emulators in one `benchtwin up` process"],
    }
