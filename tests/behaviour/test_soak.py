"""`benchtwin soak`, the short version: every emulator under mixed load and hostile bursts for about 30 s, then no
growth in descriptors, threads or tasks, and every health answer within 1 s. The slopes' verdict is tested alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from emulators.soak.samples import DEFAULT_LIMITS, Sample, slope_per_min, verdict

SOAK = [sys.executable, "-m", "emulators", "soak"]


def test_a_short_soak_of_every_emulator_with_hostile_bursts_shows_no_growth(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    # RSS is judged by the long run (its target is 0.1 MB/min over 10 minutes); in 30 s allocator noise is
    # several MB, so the short run checks descriptors, threads, tasks and health strictly and RSS loosely.
    done = subprocess.run(
        [*SOAK, "--minutes", "0.5", "--sample-seconds", "5", "--warmup-samples", "1", "--max-rss-slope", "30",
         "--max-heap-slope", "30", "--json", str(report)],
        capture_output=True, text=True, timeout=140,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "soak: ok" in done.stdout
    assert "videodb: one RTStream ingesting Misty's RTSP stream" in done.stdout
    assert "VideoDB RTStream connected" in done.stdout, done.stdout[-1500:]
    result = json.loads(report.read_text())
    assert result["verdict"]["ok"] and len(result["samples"]) == 6
    assert all(s["health_ok"] for s in result["samples"])
    first, last = result["samples"][1], result["samples"][-1]
    assert last["fds"] <= first["fds"] + 8 and last["threads"] <= first["threads"] + 2
    assert all(s["heap_mb"] > 1 for s in result["samples"])  # the C heap in use, read from the control plane
    assert all(isinstance(s["health_ok"], bool) for s in result["samples"])


def test_the_slope_is_per_minute_and_zero_for_a_flat_series() -> None:
    assert slope_per_min([(0, 10.0), (30, 10.5), (60, 11.0)]) == 1.0
    assert slope_per_min([(0, 5.0), (30, 5.0)]) == 0.0


def _series(metric: str, values: list[float]) -> list[Sample]:
    base = {"rss_mb": 100.0, "fds": 30, "threads": 10, "tasks": 12, "lateness_ms": 3.0, "health_ok": True,
            "heap_mb": 40.0}
    return [Sample(t_s=30.0 * i, **{**base, metric: v}) for i, v in enumerate(values)]


def test_a_descriptor_leak_fails_the_verdict_and_warm_up_growth_does_not() -> None:
    leaking = verdict(_series("fds", [30, 40, 50, 60, 70, 80]), 1, DEFAULT_LIMITS)
    assert not leaking["ok"] and leaking["growth"][0].startswith("fds grew")
    warming = verdict(_series("rss_mb", [80, 120, 120.05, 120.0, 120.1, 120.05]), 1, DEFAULT_LIMITS)
    assert warming["ok"], warming


def test_a_missed_health_answer_fails_the_verdict() -> None:
    samples = _series("fds", [30, 30, 30])
    samples[2].health_ok = False
    result = verdict(samples, 1, DEFAULT_LIMITS)
    assert not result["ok"] and "health" in result["growth"][0]


def test_a_native_heap_leak_fails_the_verdict_while_rss_stays_flat() -> None:
    leaking = verdict(_series("heap_mb", [40, 41, 42, 43, 44, 45]), 1, DEFAULT_LIMITS)
    assert not leaking["ok"] and leaking["growth"][0].startswith("heap_mb grew")


def test_a_soak_stopped_with_sigterm_stops_its_emulator_process(tmp_path: Path) -> None:
    import os
    import signal
    import time

    soak = subprocess.Popen([*SOAK, "--minutes", "5", "--sample-seconds", "5", "--only", "recall"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert soak.stdout is not None
    first = soak.stdout.readline()  # "soak: recall in pid N; load: ..." once the emulator answers
    emulator_pid = int(first.split(" in pid ")[1].split(";")[0])
    soak.send_signal(signal.SIGTERM)
    _, err = soak.communicate(timeout=60)
    assert soak.returncode == 130 and "interrupted" in err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(emulator_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)  # polling a process another process ends
    raise AssertionError(f"the soak's emulator process {emulator_pid} outlived it")


def test_growth_while_the_event_logs_fill_to_their_bound_is_warm_up_and_growth_after_is_not() -> None:
    filling = _series("rss_mb", [100, 101, 102, 103, 104, 104.05, 104.0, 104.1])
    for sample, still in zip(filling, [1, 1, 1, 1, 0, 0, 0, 0], strict=True):
        sample.logs_filling = still
    assert verdict(filling, 1, DEFAULT_LIMITS)["ok"]
    leaking = _series("rss_mb", [100, 101, 102, 103, 104, 105, 106, 107])
    for sample, still in zip(leaking, [1, 0, 0, 0, 0, 0, 0, 0], strict=True):
        sample.logs_filling = still
    assert not verdict(leaking, 1, DEFAULT_LIMITS)["ok"]


def test_logs_that_never_fill_are_said_and_their_filling_counts() -> None:
    samples = _series("rss_mb", [100, 102, 104, 106, 108])
    for sample in samples:
        sample.logs_filling = 2
    result = verdict(samples, 1, DEFAULT_LIMITS)
    assert not result["ok"] and "still filling" in result["note"]
