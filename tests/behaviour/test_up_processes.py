"""`benchtwin up --processes N --fleet ...`: the emulators spread over child processes behind one endpoints file,
fleet members distinct devices, a clean stop of every child, and a child that dies taking the rest down with a
message that names what it ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.behaviour.test_cli import BENCHTWIN, free_ports_config


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def gone(pid: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":  # ended, not yet reaped by its parent (this test's process, for `up` itself)
            return True
        time.sleep(0.05)  # polling a process another process ends
    return False


def start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], dict]:
    endpoints = tmp_path / "endpoints.json"
    proc = subprocess.Popen([*BENCHTWIN, "up", "--config", str(free_ports_config(tmp_path)), "--no-dashboard",
                             "--endpoints-file", str(endpoints), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not endpoints.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(proc.communicate()[1])
        time.sleep(0.05)  # polling for a file another process writes
    return proc, json.loads(endpoints.read_text())


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_a_fleet_over_two_processes_is_one_endpoints_file_of_distinct_robots_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    proc, document = start(tmp_path, "--only", "misty,recall", "--fleet", "misty=3", "--processes", "2")
    try:
        assert list(document) == ["misty-1", "misty-2", "misty-3", "recall"]
        assert {document[f"misty-{k}"]["device"] for k in (1, 2, 3)} == {"misty"}
        serials = [get(document[f"misty-{k}"]["rest"] + "/api/device")["result"]["serialNumber"] for k in (1, 2, 3)]
        assert serials == ["EMULATED-MISTY-II-001", "EMULATED-MISTY-II-002", "EMULATED-MISTY-II-003"]
        assert get(document["recall"]["rest"] + "/_emulator/health")["ready"] is True
        workers = children(proc.pid)
        assert len(workers) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "4 emulator(s) ready" in out and "misty-3" in out
    assert all(gone(pid) for pid in workers)


def test_a_child_that_dies_stops_the_others_and_is_named(tmp_path: Path) -> None:
    proc, _ = start(tmp_path, "--only", "misty", "--fleet", "misty=2", "--processes", "2")
    try:
        first, second = children(proc.pid)
        os.kill(first, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    assert "misty-1" in err and "exit code -9" in err and "stopping the others" in err
    assert gone(second)


def test_children_end_with_a_parent_that_was_killed(tmp_path: Path) -> None:
    proc, _ = start(tmp_path, "--only", "misty,recall", "--processes", "2")
    workers = children(proc.pid)
    proc.kill()  # SIGKILL: no handler runs in the parent
    proc.communicate(timeout=30)
    assert len(workers) == 2 and all(gone(pid) for pid in workers)
