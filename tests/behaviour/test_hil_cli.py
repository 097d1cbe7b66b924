"""`benchtwin record`, `replay` and `parity` as a lab meets them: subprocesses, Ctrl-C, reports, exit statuses."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from emulators.pytest_plugin import start_emulator

BENCHTWIN = [sys.executable, "-m", "emulators"]
QUIRKS = {"profile": "quirks"}
# The quirks stand-in differs from the documented profile by exactly its quirks (the default profile answers as the
# vendor server's main, which differs in more)
DOCUMENTED = ("--setting", "profile=documented")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def serve(*args: str) -> subprocess.Popen[str]:
    """Start a long-running subcommand and wait for its first line (it prints one when it listens)."""
    proc = subprocess.Popen([*BENCHTWIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "Ctrl-C" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


@pytest.fixture(scope="module")
def cassette(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "quirks.cassette"
    with start_emulator("depthcam", QUIRKS) as stand_in:
        port = free_port()
        proc = serve("record", "depthcam", "--target", stand_in.url, "--listen", str(port), "--out", str(out),
                     "--seed", "0")
        mxid = stand_in.credentials["mxid"]
        assert get(f"http://127.0.0.1:{port}/cameras/") == 200
        assert get(f"http://127.0.0.1:{port}/cameras/{mxid}/streams/DEPTH_B_C/config") == 500
        code, err = stop(proc)
    assert code == 0 and "2 exchange(s) written" in err
    return out


def test_parity_exits_1_on_unexplained_differences_and_writes_every_report(cassette, tmp_path):
    reports = [tmp_path / "r.html", tmp_path / "r.md", tmp_path / "r.json"]
    proc = subprocess.run([*BENCHTWIN, "parity", str(cassette), *DOCUMENTED, *(f"--report={r}" for r in reports)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("parity depthcam: 2 exchange(s) compared, ") and "unexplained" in first
    assert "status" in proc.stdout and "500" in proc.stdout and "404" in proc.stdout
    assert reports[0].read_text().startswith("<!doctype html>")
    assert reports[1].read_text().startswith("# Parity report: depthcam")
    document = json.loads(reports[2].read_text())
    assert {d["index"] for d in document["differences"]} == {1} and document["unexplained"] >= 1


def test_parity_exits_0_when_the_lab_file_explains_every_difference(cassette, tmp_path):
    lab = tmp_path / "lab.yaml"
    lab.write_text("known:\n  - where: '*'\n    request: 'GET /cameras/*/DEPTH_B_C/config'\n    why: Q1\n")
    proc = subprocess.run([*BENCHTWIN, "parity", str(cassette), *DOCUMENTED, "--ignore", str(lab), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["explained"] >= 1


def test_parity_against_the_same_quirk_profile_exits_0(cassette):
    proc = subprocess.run([*BENCHTWIN, "parity", str(cassette), "--setting", "profile=quirks"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert "no differences" in proc.stdout


def test_write_tests_turns_each_difference_into_a_failing_pytest(cassette, tmp_path):
    out = tmp_path / "parity_tests"
    proc = subprocess.run([*BENCHTWIN, "parity", str(cassette), *DOCUMENTED, "--write-tests", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    written = sorted(p.name for p in out.glob("test_*.py"))
    assert len(written) == 1 and written[0].startswith("test_parity_depthcam_1_get_cameras_")
    assert (out / written[0].removeprefix("test_").removesuffix(".py") / "cassette.har").exists()
    run = subprocess.run([sys.executable, "-m", "pytest", str(out), "-q", "-p", "no:cacheprovider",
                          "--rootdir", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout[-2000:]
    assert "500" in run.stdout and "404" in run.stdout


def test_replay_serves_the_cassette_until_ctrl_c(cassette):
    port = free_port()
    proc = serve("replay", str(cassette), "--listen", str(port))
    try:
        assert get(f"http://127.0.0.1:{port}/cameras/") == 200
        assert get(f"http://127.0.0.1:{port}/nothing/recorded") == 404
    finally:
        code, err = stop(proc)
    assert code == 0 and "1 request(s) matched nothing" in err


def test_a_report_with_an_unknown_extension_is_a_usage_error(cassette):
    proc = subprocess.run([*BENCHTWIN, "parity", str(cassette), "--report", "r.txt"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--report r.txt: the extension must be one of .html" in proc.stderr
