"""Two speeds chosen for the user: `benchtwin up` at real speed, the pytest fixtures fast, --time-scale over both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from emulators.config import Config, load_config
from emulators.kit.clock import REAL_TIME_SCALE, TEST_TIME_SCALE
from emulators.pytest_plugin import start_emulator


def up_config(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "emulators", "up", "--print-config", *args],
                            capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout)


def test_benchtwin_up_runs_at_real_speed_unless_told_otherwise() -> None:
    assert REAL_TIME_SCALE == 1.0
    assert Config().time_scale == load_config(None).time_scale == REAL_TIME_SCALE
    assert up_config()["time_scale"] == REAL_TIME_SCALE
    assert up_config("--time-scale", "0.25")["time_scale"] == 0.25


def test_the_plugins_emulators_run_at_the_test_time_scale(misty_target) -> None:
    assert misty_target.control.state()["time_scale"] == TEST_TIME_SCALE
    with start_emulator("recall") as recall:
        assert recall.emulator.clock.time_scale == TEST_TIME_SCALE


def test_pytest_time_scale_overrides_the_fixtures_speed(tmp_path: Path) -> None:
    (tmp_path / "test_speed.py").write_text(
        "def test_speed(recall_target):\n"
        "    assert recall_target.control.state()['time_scale'] == 1.0\n"
    )
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_speed.py"]
    fast = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    real = subprocess.run([*args, "--time-scale", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert fast.returncode == 1 and "0.05" in fast.stdout  # the default is the fast scale
    assert real.returncode == 0, real.stdout + real.stderr
