"""Every emulator's whole control plane passes schemathesis against the document it serves itself.

Each emulator serves ``/_emulator/openapi.json``: the shared control plane (contracts/openapi/control-plane.yaml)
with one operation per scenario control, whose body is that device's real schema. No operation is excluded.
Scenario controls act on things the fuzzer never creates (a live bot, a conference, an RTStream, an active
DEPTH stream), so a schema-valid body is refused there with a 400 naming the missing thing: the scenario
operations run without ``positive_data_acceptance`` (and without the stateful phase: they have no links).

This is also the pattern for device contract tests: start the emulator (or take --target), then run
``contracts.runner.run_schemathesis`` and require zero failures.
"""

from __future__ import annotations

import pytest
import requests

from contracts.runner import run_schemathesis
from emulators.kit.control_openapi import UNDESCRIBED
from emulators.pytest_plugin import start_emulator
from emulators.registry import DEVICES, available

SCENARIO_PATHS = "^/_emulator/scenario/.+"


@pytest.mark.control_plane
@pytest.mark.parametrize("device", DEVICES)
def test_control_plane_passes_schemathesis_with_zero_failures(device: str) -> None:
    if device not in available():
        pytest.skip(f"the {device} emulator is not part of this installation")
    with start_emulator(device) as target:
        document_url = f"{target.url}/_emulator/openapi.json"
        document = requests.get(document_url, timeout=10).json()
        scenario_paths = {p for p in document["paths"] if p.startswith("/_emulator/scenario/")}
        controls = requests.get(f"{target.url}/_emulator/scenario", timeout=10).json()["controls"]
        assert scenario_paths == {f"/_emulator/scenario/{c}" for c in controls}
        undescribed = sorted(p for p in scenario_paths if document["paths"][p]["post"].get(UNDESCRIBED))
        assert undescribed == [], f"scenario controls without a schema in contracts/openapi: {undescribed}"

        kit = run_schemathesis(document_url, target.url, max_examples=15, seed=1, exclude_path_regex=SCENARIO_PATHS)
        assert kit.ok, kit.output[-4000:]
        scenarios = run_schemathesis(document_url, target.url, max_examples=15, seed=1,
                                     include_path_regex=SCENARIO_PATHS, phases="examples,coverage,fuzzing",
                                     exclude_checks=("positive_data_acceptance",))
        assert scenarios.ok, scenarios.output[-4000:]
        # The emulator is still healthy after the fuzzing.
        assert target.control is not None
        assert target.control.health()["ready"] is True
