"""The devices benchtwin knows, and which of them are implemented in this installation."""

from __future__ import annotations

import importlib
import importlib.util

from emulators.kit.emulator import Emulator

DEVICES = ("misty", "depthcam", "recall", "signalwire", "videodb")


def available() -> dict[str, type[Emulator]]:
    """Every device whose emulator module exists, in the fixed order; unimplemented ones are absent."""
    found: dict[str, type[Emulator]] = {}
    for name in DEVICES:
        module_name = f"emulators.{name}.device"
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
        except ModuleNotFoundError:
            continue
        module = importlib.import_module(module_name)
        found[name] = module.EMULATOR
    return found


def emulator_class(device: str) -> type[Emulator]:
    devices = available()
    if device not in devices:
        known = ", ".join(devices) or "none"
        raise KeyError(f"unknown or unavailable device {device!r}; available: {known}")
    return devices[device]
