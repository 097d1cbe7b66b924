"""The Robopipe controller's PLC I/O (/controller/...): simulated circuits per device type.

Pure state, a sibling of the model: circuits named ``1_01``, ``1_02``... per type, each with the fields of
its item schema.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from emulators.depthcam.errors import CircuitNotFound, CircuitValueRejected

DEFAULT_CIRCUITS: dict[str, int] = {
    "ai": 2,
    "ao": 2,
    "di": 4,
    "do": 4,
    "led": 4,
    "owpower": 1,
    "owbus": 1,
    "register": 4,
}
DEVICE_TYPES = tuple(DEFAULT_CIRCUITS)


def _initial_item(device_type: str, circuit: str) -> dict[str, Any]:
    base: dict[str, Any] = {"dev": device_type, "circuit": circuit}
    if device_type == "ai":
        base["modes"] = {
            "Voltage": {"value": 0, "unit": "V", "range": [0, 10]},
            "Voltage2V5": {"value": 0, "unit": "V", "range": [0, 3]},
            "Current": {"value": 0, "unit": "mA", "range": [0, 20]},
            "Resistance3W": {"value": 0, "unit": "Ohm", "range": [0, 1960]},
            "Resistance2W": {"value": 0, "unit": "Ohm", "range": [0, 100000]},
        }
        base["mode"] = "Voltage"
    elif device_type == "ao":
        base["modes"] = {
            "Voltage": {"value": 0, "unit": "V", "range": [0, 10]},
            "Current": {"value": 0, "unit": "mA", "range": [0, 20]},
            "Resistance": {"value": 0, "unit": "Ohm", "range": [0, 2000]},
        }
        base["value"] = 0.0
        base["mode"] = "Voltage"
    elif device_type == "di":
        base.update(
            counter_modes=["Enabled", "Disabled"],
            modes=["Simple", "DirectSwitch"],
            value=0,
            counter=0,
            counter_mode="Enabled",
            mode="Simple",
            debounce=50,
        )
    elif device_type == "do":
        base.update(modes=["Simple", "PWM"], pwm_freq=4800.0, pwm_duty=0, value=0, mode="Simple")
    elif device_type in ("led", "owpower"):
        base["value"] = 0
    elif device_type == "owbus":
        base.update(bus="/dev/i2c-0", interval=10, do_scan=False, do_reset=False, scan_interval=60)
    elif device_type == "register":
        base.update(value=0, save=True)
    return base


@dataclass
class Controller:
    counts: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CIRCUITS))
    circuits: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.circuits = {
            t: {f"1_{i:02d}": _initial_item(t, f"1_{i:02d}") for i in range(1, self.counts.get(t, 0) + 1)}
            for t in DEVICE_TYPES
        }

    def all_circuits(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(item) for t in DEVICE_TYPES for item in self.circuits[t].values()]

    def list(self, device_type: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(item) for item in self.circuits.get(device_type, {}).values()]

    def get(self, device_type: str, circuit: str) -> dict[str, Any]:
        items = self.circuits[device_type]
        if circuit not in items:
            raise CircuitNotFound(device_type, circuit, list(items))
        return copy.deepcopy(items[circuit])

    def set(self, device_type: str, circuit: str, update: dict[str, Any]) -> dict[str, Any]:
        items = self.circuits[device_type]
        if circuit not in items:
            raise CircuitNotFound(device_type, circuit, list(items))
        _apply(device_type, items[circuit], update)
        return copy.deepcopy(items[circuit])

    def set_all(self, device_type: str, update: dict[str, Any]) -> list[dict[str, Any]]:
        for item in self.circuits[device_type].values():
            _apply(device_type, item, update)
        return self.list(device_type)


def _apply(device_type: str, item: dict[str, Any], update: dict[str, Any]) -> None:
    if device_type == "register":
        value = update["value"]
        if not math.isfinite(value) or value != int(value) or not 0 <= value <= 65535:
            raise CircuitValueRejected("value", f"a register holds an integer between 0 and 65535, got {value}", value)
        item["value"] = int(value)
        return
    if device_type == "do":
        # pwm_duty and value are mutually exclusive: a non-zero duty switches the output to PWM.
        item.update(pwm_freq=update["pwm_freq"], pwm_duty=update["pwm_duty"], value=update["value"])
        item["mode"] = "PWM" if update["pwm_duty"] > 0 else "Simple"
        return
    for key, value in update.items():
        if key in item:
            item[key] = value
