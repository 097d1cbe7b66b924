"""Scenario `startup`: from `benchtwin up` process start to every emulator answering its health check.

The clock starts before the interpreter is launched (imports count) and stops when our own GET of every
emulator's /_emulator/health says ready; `benchtwin up`'s own "ready in" figure (after imports) is kept too.
"""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import aiohttp

from emulators.bench.process import EmulatorProcess
from emulators.bench.stats import BenchOptions
from emulators.bench.table import target
from emulators.registry import available

TARGET_S = 0.4


async def _healthy(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.get(f"{url}/_emulator/health") as resp:
        return resp.status == 200 and bool((await resp.json()).get("ready"))


async def _starts(options: BenchOptions, processes: int, runs: int, devices: list[str]
                  ) -> tuple[list[float], list[float], list[float]]:
    """Wall seconds to every health check answering ready, `up`'s own "ready in" figure, CPU to ready."""
    totals: list[float] = []
    self_reported: list[float] = []
    cpu: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for _ in range(runs):
            up = EmulatorProcess([], options.workdir, processes=processes)
            started = time.monotonic()
            async with up:
                cpu.append(up.cpu_at_ready_s)
                for device in devices:
                    if not await _healthy(session, up.rest(device)):
                        raise RuntimeError(f"{device} answered its health check but is not ready")
                totals.append(time.monotonic() - started)
                # `up` prints "N emulator(s) ready in X s", timed from after its imports and config.
                found = re.findall(r"ready in ([0-9.]+) s", up.log_path.read_text(errors="replace"))
                if found:
                    self_reported.append(float(found[-1]))
    return totals, self_reported, cpu


async def run(options: BenchOptions) -> dict[str, Any]:
    runs = 1 if options.quick else 7  # start-up times on a shared 2-core machine swing by 30 %: the median of 7
    devices = list(available())
    cores = min(EmulatorProcess.cores(), len(devices))  # what `benchtwin up` uses by default
    totals, self_reported, cpu = await _starts(options, cores, runs, devices)
    one = (await _starts(options, 1, runs, devices))[0] if cores > 1 else totals
    seconds = statistics.median(totals)
    starting = statistics.median(self_reported) if self_reported else None
    return {
        "seconds": round(seconds, 3),
        "seconds_min": round(min(totals), 3),
        "seconds_max": round(max(totals), 3),
        "processes": cores,
        "seconds_one_process": round(statistics.median(one), 3),
        "starting_emulators_s": None if starting is None else round(starting, 3),
        "interpreter_imports_config_s": None if starting is None else round(seconds - starting, 3),
        # CPU the processes spent until ready: unlike wall time, hardly changed by other work on the machine.
        "cpu_seconds_to_ready": round(statistics.median(cpu), 3),
        "runs": runs,
        "seconds_each": [round(t, 3) for t in totals],
        "emulators": len(devices),
        "targets": {"seconds": target(f"< {TARGET_S} s", seconds < TARGET_S)},
        "notes": [f"median of {runs} start(s) of all {len(devices)} emulators by `benchtwin up` as a user runs it "
                  f"({cores} process(es), one per core), and in one process; bytecode cached (the first start of "
                  "a fresh checkout also compiles)"],
    }
