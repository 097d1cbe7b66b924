"""`pytest --target ... --record CASSETTE`: a hardware-in-the-loop test run records the device as it goes."""

from __future__ import annotations

import subprocess
import sys

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


def pytest_run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(cwd),
                           *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_a_targeted_run_writes_what_the_device_answered(tmp_path):
    (tmp_path / "test_lab.py").write_text(LAB_TEST)
    with start_emulator("depthcam") as device:
        run = pytest_run("test_lab.py", "--target", f"depthcam={device.url}", "--record", "lab.cassette",
                         cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    cassette = Cassette.load(tmp_path / "lab.cassette")
    assert cassette.manifest.device == "depthcam" and cassette.manifest.target == device.url
    assert [e.label() for e in cassette.exchanges] == ["GET /cameras/", "GET /cameras/14442C10D13EABCE00/streams/"]
    assert all(e.status == 200 for e in cassette.exchanges)


def test_record_without_a_target_is_a_usage_error(tmp_path):
    (tmp_path / "test_lab.py").write_text(LAB_TEST)
    run = pytest_run("test_lab.py", "--record", "lab.cassette", cwd=tmp_path)
    assert run.returncode == 4 and "--record needs at least one --target DEVICE=URL" in run.stderr


def test_contract_record_without_a_target_names_the_option():
    run = subprocess.run([sys.executable, "-m", "emulators", "contract", "depthcam", "--record", "x.cassette"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--record" in run.stderr and "--target" in run.stderr
