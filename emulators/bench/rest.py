"""Scenario `rest`: requests/s and latency of three depth-camera operations under wrk, ours versus Prism.

The same three operations (list streams, get control, post control) are driven by Debian's `wrk` at a fixed
concurrency against the emulator and against Stoplight Prism mocking the vendor's OpenAPI document (read
from the sibling reference folder, never copied). Each run alternates targets per operation so drift on a
shared machine hits both sides alike; the ratio ours/Prism is reported per operation and as a geometric mean.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

from emulators.bench import peers
from emulators.bench.process import REPO_ROOT, BenchError, EmulatorProcess, free_port, spawn, stop, wait_for_port
from emulators.bench.stats import BenchOptions, ratio
from emulators.bench.table import target

VENDOR_DOCUMENT = REPO_ROOT.parent / "shared" / "reference" / "specs" / "robopipe-oas.yml"
CONNECTIONS = 16
TARGET_RATIO = 10.0
TARGET_P99_MS = 5.0

# wrk reads the method and body from the environment and prints its summary as one JSON line.
WRK_SCRIPT = """
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
if body ~= nil and #body > 0 then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def operations(mxid: str) -> list[tuple[str, str, str, str]]:
    """(name, method, path, body) of the three operations."""
    stream = f"/cameras/{mxid}/streams/CAM_A"
    return [
        ("list_streams", "GET", f"/cameras/{mxid}/streams/", ""),
        ("get_control", "GET", f"{stream}/control", ""),
        ("post_control", "POST", f"{stream}/control", json.dumps({"brightness": 2, "contrast": -1})),
    ]


async def run_wrk(url: str, method: str, body: str, seconds: float, script: Path) -> dict[str, Any]:
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_BODY": body}
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "-s", str(script),
            url]
    done = await asyncio.to_thread(subprocess.run, argv, env=env, capture_output=True, text=True,
                                   timeout=seconds + 30)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            raw = json.loads(line[len("BENCH "):])
            seconds_run = raw["duration_us"] / 1e6
            return {
                "rps": round(raw["requests"] / seconds_run, 1),
                "p50_ms": round(raw["p50_us"] / 1000, 3),
                "p99_ms": round(raw["p99_us"] / 1000, 3),
                "max_ms": round(raw["max_us"] / 1000, 3),
                "non_2xx": raw["status_errors"],
                "socket_errors": raw["socket_errors"],
            }
    raise BenchError(f"wrk printed no summary (exit {done.returncode}): {done.stderr.strip()[-500:]}")


async def start_prism(options: BenchOptions, binary: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    # Quiet like the emulator (which runs at --log-level warning): per-request logging would slow Prism down.
    argv = [binary, "mock", "--host", "127.0.0.1", "--port", str(port), "--verboseLevel", "warn", str(VENDOR_DOCUMENT)]
    proc = spawn(argv, log=options.workdir / "prism.log", cwd=options.workdir)
    try:
        await wait_for_port(port, timeout_s=90, proc=proc)
    except BaseException:
        stop(proc)
        raise
    return proc, f"http://127.0.0.1:{port}"


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return round(math.exp(sum(math.log(v) for v in values) / len(values)), 3)


async def run(options: BenchOptions) -> dict[str, Any]:
    seconds, warmup_s = (1.0, 1.0) if options.quick else (5.0, 2.0)
    notes: list[str] = []
    tool = peers.wrk()
    if not tool.available:
        raise BenchError(f"the rest scenario needs wrk as its load generator: {tool.detail}")
    prism_peer = (peers.prism(options.peers_dir) if options.use_peers
                  else peers.Peer("prism", False, "peers disabled (--no-peers)"))
    if prism_peer.available and not VENDOR_DOCUMENT.exists():
        prism_peer = peers.Peer("prism", False, f"the vendor document {VENDOR_DOCUMENT} is missing")
    if not prism_peer.available:
        notes.append(f"Prism not measured: {prism_peer.detail}")
    script = options.workdir / "bench.lua"
    script.write_text(WRK_SCRIPT)
    ours: dict[str, dict[str, Any]] = {}
    theirs: dict[str, dict[str, Any]] = {}
    prism_proc: subprocess.Popen[bytes] | None = None
    async with EmulatorProcess(["depthcam"], options.workdir) as emulator:
        try:
            prism_url = None
            if prism_peer.available:
                prism_proc, prism_url = await start_prism(options, prism_peer.detail)
            mxid = str(emulator.credentials("depthcam")["mxid"])
            targets = [("ours", emulator.rest("depthcam"), ours)]
            if prism_url is not None:
                targets.append(("prism", prism_url, theirs))
            for name, method, path, body in operations(mxid):
                for _side, base, into in targets:
                    # Warm-up run (not kept): Node's JIT and Python's caches reach steady state first.
                    await run_wrk(base + path, method, body, warmup_s, script)
                    into[name] = await run_wrk(base + path, method, body, seconds, script)
        finally:
            if prism_proc is not None:
                await asyncio.to_thread(stop, prism_proc)
    ops: dict[str, dict[str, Any]] = {}
    for name, figures in ours.items():
        row = {"rps": figures["rps"], "p99_ms": figures["p99_ms"], "non_2xx": figures["non_2xx"]}
        if name in theirs:
            row.update({"prism_rps": theirs[name]["rps"], "prism_p99_ms": theirs[name]["p99_ms"],
                        "prism_non_2xx": theirs[name]["non_2xx"],
                        "rps_ratio_vs_prism": ratio(figures["rps"], theirs[name]["rps"])})
        ops[name] = row
    if any(f["non_2xx"] or f["socket_errors"] for f in ours.values()):
        notes.append("some of our responses were not 2xx or failed; see operations")
    rps_ratio = _geomean([row.get("rps_ratio_vs_prism") or 0 for row in ops.values()]) if theirs else None
    p99 = max(f["p99_ms"] for f in ours.values())
    return {
        "rps_ratio_vs_prism": rps_ratio,
        "p99_ms": p99,
        "rps_min": min(f["rps"] for f in ours.values()),
        "prism_rps_min": min((f["rps"] for f in theirs.values()), default=None),
        "connections": CONNECTIONS,
        "seconds_per_run": seconds,
        "operations": ops,
        "notes": notes,
        "targets": {
            "rps_ratio_vs_prism": target(f">= {TARGET_RATIO}x Prism",
                                         None if rps_ratio is None else rps_ratio >= TARGET_RATIO,
                                         None if theirs else "Prism not measured"),
            "p99_ms": target(f"< {TARGET_P99_MS} ms", p99 < TARGET_P99_MS),
        },
    }
