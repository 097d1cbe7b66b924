"""Builds emulators from a Config and runs a set of them in one process (what `benchtwin up` does)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from emulators.config import Config
from emulators.fleet import Member, member_settings
from emulators.kit.emulator import Emulator
from emulators.kit.outbound import EgressPolicy
from emulators.kit.resources import use_user_folders
from emulators.kit.tls import ensure_dev_certs
from emulators.registry import available

log = logging.getLogger("benchtwin.app")


def create_emulator(
    device: str | type[Emulator],
    config: Config,
    *,
    settings: dict[str, Any] | None = None,
    free_ports: bool = False,
    member: Member | None = None,
    **overrides: Any,
) -> Emulator:
    """One emulator from the config (``device`` is a registered name or an Emulator class); ``free_ports`` binds
    every listener to a free port (tests); ``member`` is its place in a fleet (its own ports, identity and seed);
    ``overrides`` replace the config's constructor arguments (``seed``, ``time_scale``, ``clock``)."""
    cls = available()[device] if isinstance(device, str) else device
    use_user_folders(config.scenario_dirs)
    merged = config.device_settings(cls.device)
    if member is not None and member.size > 1:
        merged = member_settings(member, merged, cls.port_settings, cls.fleet_identity(merged, member.index))
        overrides.setdefault("seed", config.seed + member.index)
    merged.update(settings or {})
    if free_ports:
        for name in cls.port_settings:
            if name not in (settings or {}):
                merged[name] = 0
    arguments: dict[str, Any] = {
        "host": config.host,
        "seed": config.seed,
        "time_scale": config.time_scale,
        "certs": ensure_dev_certs(config.certs_dir),
        # The one place the egress policy is built: from the configuration, for every sender of this emulator.
        "egress": EgressPolicy(config.egress_allow),
        "control_token": config.control_token,
        "event_log_capacity": config.event_log_capacity,
    }
    arguments.update(overrides)
    emulator = cls(merged, **arguments)
    if member is not None:
        emulator.name = member.name
    return emulator


def endpoints_document(emulators: list[Emulator]) -> dict[str, Any]:
    """``{"<name>": {"rest": url, ...named endpoints..., "credentials": {...}}}``; the name is the device's, or a
    fleet member's (``misty-2``), whose entry also says its ``device``."""
    out: dict[str, Any] = {}
    for e in emulators:
        entry = {**e.endpoints(), "credentials": e.credentials()}
        out[e.name] = entry if e.name == e.device else {"device": e.device, **entry}
    return out


async def start_all(devices: list[str] | list[Member], config: Config) -> list[Emulator]:
    """Start every named emulator (a device name, or a fleet member); on any failure, close the ones already
    started and re-raise."""
    started: list[Emulator] = []
    try:
        for item in devices:
            member = item if isinstance(item, Member) else Member(item)
            emulator = create_emulator(member.device, config, member=member)
            try:
                await emulator.start()
            except OSError as exc:
                port = emulator.setting("port")
                where = (f"([{member.device}] port = ...)" if member.size == 1 else
                         f"([{member.device}] port = ...; a fleet's members take that port and the next ones)")
                raise RuntimeError(
                    f"{member.name}: cannot listen on {config.host}:{port} ({exc.strerror}); "
                    f"another program holds the port. Free it, or set another port in a config file "
                    f"{where} and pass --config"
                ) from None
            started.append(emulator)
    except BaseException:
        await asyncio.gather(*(e.aclose() for e in started), return_exceptions=True)
        raise
    return started


def emulator_entries(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The emulators of an endpoints document (each has a ``rest`` URL); other keys, such as ``dashboard``, are
    left out. Every reader of the endpoints file goes through this."""
    return {name: entry for name, entry in document.items() if isinstance(entry, dict) and "rest" in entry}


def write_endpoints_file(path: str | Path, document: dict[str, Any] | list[Emulator]) -> None:
    """The endpoints document (or the one of these emulators), written atomically."""
    if isinstance(document, list):
        document = endpoints_document(document)
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(target)
