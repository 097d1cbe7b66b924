"""`pytest --target ... --record CASSETTE`: a hardware-in-the-loop test run records the device as it goes."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest

from emulators.hil.cassette import Cassette
from emulators.pytest_plugin import start_emulator

LAB_TEST = '''
import urllib.request


def test_the_camera_list_and_its_streams(depthcam_target):
    with urllib.request.urlopen(depthcam_target.url + "/cameras/") as resp:
        assert resp.status == 200
    mxid = depthcam_target.credentials.get("mxid", "14442C10D13EABCE00")
    with urllib.request.urlopen(f"{depthcam_target.url}/cameras/{mxid}/streams/") as resp:
        assert resp.status == 200
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(cwd),
                           *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A lab's test file run once against the device with --record."""
    root = tmp_path_factory.mktemp("lab")
    (root / "test_lab.py").write_text(LAB_TEST)
    with start_emulator("depthcam") as device:
        run = pytest_run("test_lab.py", "--target", f"depthcam={device.url}", "--record", "lab.cassette", cwd=root)
    assert run.returncode == 0, run.stdout + run.stderr
    return root, device.url


def test_a_targeted_run_writes_what_the_device_answered(lab):
    root, device_url = lab
    cassette = Cassette.load(root / "lab.cassette")
    assert cassette.manifest.device == "depthcam" and cassette.manifest.target == device_url
    assert [e.label() for e in cassette.exchanges] == ["GET /cameras/", "GET /cameras/14442C10D13EABCE00/streams/"]
    assert all(e.status == 200 for e in cassette.exchanges)


def test_the_same_tests_pass_against_the_replayed_cassette(lab):
    root, _ = lab
    port = free_port()
    replay = subprocess.Popen([sys.executable, "-m", "emulators", "replay", "lab.cassette", "--listen", str(port)],
                              cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Ctrl-C" in replay.stdout.readline()
        run = pytest_run("test_lab.py", "--target", f"depthcam=http://127.0.0.1:{port}", cwd=root)
    finally:
        replay.send_signal(signal.SIGINT)
        _, err = replay.communicate(timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matched nothing" not in err


def test_record_without_a_target_is_a_usage_error(tmp_path):
    (tmp_path / "test_lab.py").write_text(LAB_TEST)
    run = pytest_run("test_lab.py", "--record", "lab.cassette", cwd=tmp_path)
    assert run.returncode == 4 and "--record needs at least one --target DEVICE=URL" in run.stderr


def test_contract_record_without_a_target_names_the_option():
    run = subprocess.run([sys.executable, "-m", "emulators", "contract", "depthcam", "--record", "x.cassette"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--record" in run.stderr and "--target" in run.stderr


def test_record_refuses_parallel_workers(tmp_path):
    (tmp_path / "test_lab.py").write_text(LAB_TEST)
    run = pytest_run("test_lab.py", "--target", "depthcam=http://127.0.0.1:9", "--record", "lab.cassette",
                     "-n", "2", cwd=tmp_path)
    assert run.returncode == 4 and "--record records from one process" in run.stderr
