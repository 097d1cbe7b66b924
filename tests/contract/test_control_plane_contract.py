"""Every emulator's control plane passes schemathesis against contracts/openapi/control-plane.yaml.

This is also the pattern for device contract tests: start the emulator (or take --target), then run
``contracts.runner.run_schemathesis`` and require zero failures.
"""

from __future__ import annotations

import pytest

from contracts.runner import run_schemathesis
from emulators.pytest_plugin import start_emulator
from emulators.registry import DEVICES, available


@pytest.mark.control_plane
@pytest.mark.parametrize("device", DEVICES)
def test_control_plane_passes_schemathesis_with_zero_failures(device: str) -> None:
    if device not in available():
        pytest.skip(f"the {device} emulator is not part of this installation")
    with start_emulator(device) as target:
        # Scenario controls take device-specific bodies: each device's own contract describes and fuzzes them.
        result = run_schemathesis("control-plane", target.url, max_examples=15, seed=1,
                                  exclude_operation_ids=("runScenarioControl",))
        assert result.ok, result.output[-4000:]
        # The emulator is still healthy after the fuzzing.
        assert target.control is not None
        assert target.control.health()["ready"] is True
