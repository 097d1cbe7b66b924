"""Scenarios and rigs come from the package (importlib.resources) plus the scenario_dirs setting's folders, and a
bad name, file or folder stops `benchtwin up` with one line naming the setting and what is available."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.app import create_emulator
from emulators.config import Config
from emulators.kit.resources import SHELVES, fixtures_root, shelf, use_user_folders

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_folder(tmp_path: Path) -> Iterator[Path]:
    """A scenario_dirs folder; the process-wide folder list is emptied again afterwards."""
    folder = tmp_path / "my-scenarios"
    (folder / "recall").mkdir(parents=True)
    yield folder
    use_user_folders([])


def up(tmp_path: Path, config: str, only: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.toml"
    path.write_text(config)
    return subprocess.run([sys.executable, "-m", "emulators", "up", "--only", only, "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_each_shelf_lists_the_packaged_files_of_its_device() -> None:
    for device, folder in SHELVES.items():
        on_disk = sorted(p.stem for p in (ROOT / "fixtures" / folder).iterdir() if p.suffix in (".yaml", ".json"))
        assert shelf(device).names() == on_disk, device
    assert fixtures_root().samefile(ROOT / "fixtures")


def test_a_user_folder_adds_a_recall_scenario_and_replaces_a_packaged_one(user_folder: Path) -> None:
    (user_folder / "recall" / "standup.yaml").write_text("title: Stand-up\nparticipants: [{id: 1, is_host: true}]\n")
    (user_folder / "recall" / "default.yaml").write_text("title: Our own default\nparticipants: [{id: 7}]\n")
    emulator = create_emulator("recall", Config(scenario_dirs=[str(user_folder)]), settings={"scenario": "standup"},
                               free_ports=True)
    assert emulator.backend.scenarios["standup"].title == "Stand-up"
    assert emulator.backend.scenarios["default"].title == "Our own default"
    assert {"all-hands-screenshare", "waiting-room"} <= set(emulator.backend.scenarios)  # the packaged ones stay


@pytest.mark.parametrize(
    ("config", "only", "setting", "names"),
    [
        ('[recall]\nport = 0\nscenario = "nope"\n', "recall", "recall.scenario", ["default", "waiting-room"]),
        ('[signalwire]\nport = 0\ntls_port = 0\nscenario = "/no/such/file.yaml"\n', "signalwire",
         "signalwire.scenario", ["default", "quiet-room"]),
        ('[depthcam]\nport = 0\nrig = "nope"\n', "depthcam", "depthcam.rig", ["lab"]),
        ('scenario_dirs = ["/no/such/folder"]\n', "recall", "scenario_dirs", ["recall/", "depthcam/"]),
    ],
    ids=["unknown-scenario", "missing-scenario-file", "unknown-rig", "missing-user-folder"],
)
def test_a_bad_scenario_setting_is_one_line_naming_the_setting_and_the_choices(
    tmp_path: Path, config: str, only: str, setting: str, names: list[str]
) -> None:
    result = up(tmp_path, config, only)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"benchtwin: {setting}: ")
    assert all(name in lines[0] for name in names), lines[0]


def test_a_user_scenario_that_is_not_yaml_is_named_at_startup(tmp_path: Path, user_folder: Path) -> None:
    (user_folder / "recall" / "broken.yaml").write_text("participants: [oops\n")
    result = up(tmp_path, f'scenario_dirs = ["{user_folder}"]\n[recall]\nport = 0\n', "recall")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "scenario_dirs" in result.stderr and "broken.yaml" in result.stderr and "line 2" in result.stderr


def test_an_unreadable_user_folder_is_named(tmp_path: Path, user_folder: Path) -> None:
    not_a_folder = tmp_path / "scenarios.txt"
    not_a_folder.write_text("")
    result = up(tmp_path, f'scenario_dirs = ["{not_a_folder}"]\n', "recall")
    assert result.returncode == 2
    assert "scenario_dirs" in result.stderr and "scenarios.txt" in result.stderr and "Traceback" not in result.stderr
