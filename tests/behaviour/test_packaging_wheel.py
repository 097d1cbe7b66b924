"""The wheel is what an outside user gets: it carries the scenarios, rigs, contract documents and contract suites,
and the installed contract runner uses the same pytest settings as the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import emulators
from contracts.runner import SUITE_INI_OPTIONS, contract_suite

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """A wheel built from a copy of the checkout (a build writes build/ and *.egg-info beside its sources)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(ROOT, source, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(dist), str(source)], check=True, capture_output=True, timeout=300)
    (built,) = dist.glob("benchtwin-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_carries_every_fixture_contract_document_and_contract_suite(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    expected = {f"emulators/fixtures/{p.relative_to(ROOT / 'fixtures')}" for p in (ROOT / "fixtures").rglob("*")
                if p.is_file()}
    expected |= {f"contracts/suites/{p.name}" for p in (ROOT / "tests" / "contract").glob("test_*.py")}
    expected |= {f"contracts/{p.relative_to(ROOT / 'contracts')}" for p in (ROOT / "contracts").rglob("*.yaml")}
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("tests/", "fixtures/")) for n in names), "no top-level tests or fixtures package"


def test_the_wheel_declares_the_version_the_cli_prints_and_the_contract_extra(wheel: zipfile.ZipFile) -> None:
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    text = wheel.read(metadata).decode()
    assert f"Version: {emulators.__version__}\n" in text
    assert "Provides-Extra: contract" in text
    assert "benchtwin = emulators.launch:main" in wheel.read(metadata.replace("METADATA", "entry_points.txt")).decode()


def test_an_installed_contract_suite_runs_with_the_checkouts_pytest_settings() -> None:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    for option in SUITE_INI_OPTIONS:
        name, _, value = option.partition("=")
        assert str(settings[name]) == value, name
    for device in ("misty", "depthcam", "recall", "signalwire", "videodb", "control-plane"):
        suite = contract_suite(device)
        assert suite is not None and suite.is_file(), device
