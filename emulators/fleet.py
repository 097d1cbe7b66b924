"""Fleets: N instances of one device in one `benchtwin up`, each a distinct device with its own ports and state.

``--fleet misty=50,depthcam=8`` (or ``fleet: {misty: 50}`` in the config file) makes members ``misty-1`` ...
``misty-50``. Member k listens on consecutive ports: the device's configured port plus k when the config names
one, otherwise a block of its own (misty 10000-, depthcam 11000-, ...), so a fleet never lands on the single
emulators' 9080-9084. Each member gets the device's distinct identity (Emulator.fleet_identity: serial numbers,
mxids) and the seed plus k, so seeded names and scenes differ between members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulators.kit.errors import FieldError
from emulators.registry import DEVICES

MAX_MEMBERS = 1000  # per device; each port setting of a fleet gets its own run of this many ports
FLEET_PORT_BASE = 10000
DEVICE_BLOCK = 2000  # misty's fleet block starts at 10000, depthcam's at 12000, ... (two port settings at most)


@dataclass(frozen=True)
class Member:
    """One emulator `benchtwin up` runs: a device, its place in the device's fleet and the fleet's size."""

    device: str
    index: int = 0
    size: int = 1

    @property
    def name(self) -> str:
        return self.device if self.size == 1 else f"{self.device}-{self.index + 1}"


def parse_fleet(text: str, *, field: str = "--fleet") -> dict[str, int]:
    """``misty=50,depthcam=8`` as {device: count}; FieldError naming ``field`` and what is allowed."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        device, sep, count = part.partition("=")
        if not sep or not count.strip().isascii() or not count.strip().isdigit():
            raise FieldError(field, f"{part!r} is not DEVICE=COUNT (for example misty=50,depthcam=8)")
        out[device.strip()] = int(count)
    return check_fleet(out, field=field)


def check_fleet(fleet: Any, *, field: str = "fleet") -> dict[str, int]:
    if not isinstance(fleet, dict):
        raise FieldError(field, f"must map devices to counts, for example {{misty: 50}}, got {fleet!r}")
    for device, count in fleet.items():
        if device not in DEVICES:
            raise FieldError(f"{field}.{device}", f"is not a device; known: {', '.join(DEVICES)}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_MEMBERS:
            raise FieldError(f"{field}.{device}", f"must be a count from 1 to {MAX_MEMBERS}, got {count!r}")
    return {str(d): int(c) for d, c in fleet.items()}


def members(devices: list[str], fleet: dict[str, int]) -> list[Member]:
    """Every emulator to run, in device order; a device not in ``fleet`` runs once."""
    out: list[Member] = []
    for device in devices:
        size = fleet.get(device, 1)
        out += [Member(device, k, size) for k in range(size)]
    return out


def member_settings(member: Member, configured: dict[str, Any], port_settings: tuple[str, ...],
                    identity: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``member`` from the device's configured ones: ports moved on, identity applied."""
    if member.size == 1:
        return dict(configured)
    settings = {**configured, **identity}
    block = FLEET_PORT_BASE + DEVICES.index(member.device) * DEVICE_BLOCK
    for j, name in enumerate(port_settings):
        base = configured.get(name)
        if isinstance(base, int) and not isinstance(base, bool) and base > 0:
            settings[name] = base + member.index
        elif base == 0:
            settings[name] = 0  # any free port, as configured
        else:
            settings[name] = block + j * MAX_MEMBERS + member.index
    return settings
