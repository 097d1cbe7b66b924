"""Configuration: one embedded default (every emulator, fixed ports, real-speed lifecycles, dev credentials),
overridden by a TOML or YAML file and then by CLI flags."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emulators.fleet import check_fleet
from emulators.kit.clock import REAL_TIME_SCALE
from emulators.kit.errors import FieldError
from emulators.kit.events import EVENT_LOG_CAPACITY
from emulators.kit.outbound import DEFAULT_ALLOWED
from emulators.kit.resources import check_user_folders
from emulators.registry import DEVICES, available

DASHBOARD_PORT = 9090  # next to the emulators' 9080-9084

GLOBAL_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "seed": 0,
    # Lifecycle timings (bot joining, pipeline restart) are multiplied by this; 1.0 = real speed.
    "time_scale": REAL_TIME_SCALE,
    "certs_dir": None,
    "egress_allow": list(DEFAULT_ALLOWED),
    # Folders with <device>/ sub-folders of scenario (and depthcam rig) files, added to the packaged ones.
    "scenario_dirs": [],
    # Set on shared lab machines: every /_emulator/ route but health then needs "Authorization: Bearer <token>".
    "control_token": None,
    # The dashboard `benchtwin up` serves (one page for every emulator): a port, 0 for any free one, null for none.
    "dashboard_port": DASHBOARD_PORT,
    # Fleets: N distinct instances of a device ({misty: 50}); see emulators/fleet.py for their ports and identities.
    "fleet": {},
    # Processes `benchtwin up` spreads the emulators over: null for one per core (at most one per emulator).
    "processes": None,
    # Events each emulator keeps for /_emulator/events (the oldest go first; also bounded to 4 MB of details).
    "event_log_capacity": EVENT_LOG_CAPACITY,
}


@dataclass
class Config:
    host: str = "127.0.0.1"
    seed: int = 0
    time_scale: float = REAL_TIME_SCALE
    certs_dir: str | None = None
    egress_allow: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOWED))
    scenario_dirs: list[str] = field(default_factory=list)
    control_token: str | None = None
    dashboard_port: int | None = DASHBOARD_PORT  # None: no dashboard; 0: a free port
    fleet: dict[str, int] = field(default_factory=dict)
    processes: int | None = None  # None: one per core, capped by the number of emulators
    event_log_capacity: int = EVENT_LOG_CAPACITY
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)

    def device_settings(self, device: str) -> dict[str, Any]:
        return dict(self.devices.get(device, {}))

    def effective(self) -> dict[str, Any]:
        """Every default and override in one place, as `benchtwin up --print-config` shows it."""
        out: dict[str, Any] = {
            "host": self.host, "seed": self.seed, "time_scale": self.time_scale,
            "certs_dir": self.certs_dir, "egress_allow": self.egress_allow, "scenario_dirs": self.scenario_dirs,
            "control_token": None if self.control_token is None else "<set>",  # printed configs get shared
            "dashboard_port": self.dashboard_port, "fleet": self.fleet, "processes": self.processes,
            "event_log_capacity": self.event_log_capacity,
        }
        for name, cls in available().items():
            out[name] = cls.merged_settings(self.device_settings(name))
        return out

    def markdown(self) -> str:
        """The same as Markdown: the global keys, then one settings table per device (its page's table)."""
        effective = self.effective()
        rows = ["## benchtwin", "", "| Key | Value |", "| --- | --- |"]
        rows += [f"| `{key}` | `{effective[key]!r}` |" for key in GLOBAL_DEFAULTS]
        for name, cls in available().items():
            rows += ["", f"## {name}", ""]
            if cls.settings_class is not None:
                rows.append(cls.settings_class.markdown_table().rstrip("\n"))
            else:  # a device still on the untyped settings dict: names and values only
                rows += ["| Setting | Value |", "| --- | --- |"]
                rows += [f"| `{key}` | `{value!r}` |" for key, value in effective[name].items()]
        return "\n".join(rows) + "\n"


def load_config(path: str | Path | None = None) -> Config:
    config = Config()
    if path is None:
        return config
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise FieldError("--config", f"cannot read {p}: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text) if p.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise FieldError("--config", f"{p} is not valid {'TOML' if p.suffix == '.toml' else 'YAML'}: {exc}") from None
    if raw is None:
        return config
    if not isinstance(raw, dict):
        raise FieldError("--config", f"{p} must hold a mapping at the top level")
    return apply_overrides(config, raw)


def apply_overrides(config: Config, raw: dict[str, Any]) -> Config:
    devices = available()
    for key, value in raw.items():
        if key in DEVICES:
            if not isinstance(value, dict):
                raise FieldError(key, "must be a table of settings")
            if key in devices:
                devices[key].merged_settings(value)  # validates names and types now, not at start-up
            config.devices.setdefault(key, {}).update(value)
        elif key == "host":
            if not isinstance(value, str):
                raise FieldError("host", f"must be a string, got {value!r}")
            config.host = value
        elif key == "seed":
            if isinstance(value, bool) or not isinstance(value, int):
                raise FieldError("seed", f"must be an integer, got {value!r}")
            config.seed = value
        elif key == "time_scale":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise FieldError("time_scale", f"must be a number >= 0, got {value!r}")
            config.time_scale = float(value)
        elif key == "certs_dir":
            config.certs_dir = None if value is None else str(value)
        elif key == "egress_allow":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise FieldError("egress_allow", "must be a list of CIDR ranges")
            config.egress_allow = value
        elif key == "scenario_dirs":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise FieldError("scenario_dirs", "must be a list of folder paths")
            check_user_folders(value)
            config.scenario_dirs = value
        elif key == "dashboard_port":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535):
                raise FieldError("dashboard_port", f"must be a port 0-65535 (0: any free port) or null, got {value!r}")
            config.dashboard_port = value
        elif key == "fleet":
            config.fleet = check_fleet(value)
        elif key == "processes":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64):
                raise FieldError("processes", f"must be a count from 1 to 64, or null for one per core, got {value!r}")
            config.processes = value
        elif key == "event_log_capacity":
            if isinstance(value, bool) or not isinstance(value, int) or not 10 <= value <= 1_000_000:
                raise FieldError("event_log_capacity", f"must be a count from 10 to 1000000, got {value!r}")
            config.event_log_capacity = value
        elif key == "control_token":
            if value is not None and (not isinstance(value, str) or len(value) < 16):
                raise FieldError("control_token", "must be a string of at least 16 characters, or null")
            config.control_token = value
        else:
            allowed = ", ".join([*GLOBAL_DEFAULTS, *DEVICES])
            raise FieldError(key, f"is not a configuration key; known: {allowed}")
    return config
