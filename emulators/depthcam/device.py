"""The Robopipe depth camera emulator's wiring: settings and the rig -> backend + service + API -> an Emulator.

The registry imports this module to read the settings, so the backend, service and API are imported only when an
emulator is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulators.depthcam.hardware import DeviceSpec, device_from_config, oak_d
from emulators.depthcam.settings import DepthcamSettings
from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.resources import shelf

if TYPE_CHECKING:
    from aiohttp import web

RIG_DIR = shelf("depthcam")  # packaged rigs + the scenario_dirs setting's depthcam/ folders


def load_rig(rig: Any) -> list[DeviceSpec]:
    """Devices from the ``rig`` setting: None (one OAK-D), a fixture name, a YAML path, or a list of entries."""
    if rig is None or rig == "":
        return [oak_d()]
    entries: Any = rig
    if isinstance(rig, str):
        path = Path(rig)
        if not path.suffix:
            path = RIG_DIR / f"{rig}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in RIG_DIR.glob("*.yaml"))) or "none"
            raise FieldError("depthcam.rig", f"no rig file {rig!r}; give a YAML path or one of: {known}")
        import yaml

        entries = (yaml.safe_load(path.read_text()) or {}).get("devices")
    if not isinstance(entries, list) or not entries:
        raise FieldError("depthcam.rig", "must list at least one device: [{model: OAK-D|OAK-D-LR|OAK-1, mxid: ...}]")
    specs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise FieldError(f"depthcam.rig[{i}]", f"must be a mapping with model/mxid/name, got {entry!r}")
        try:
            specs.append(device_from_config(entry))
        except ValueError as exc:
            raise FieldError(f"depthcam.rig[{i}]", str(exc)) from None
    mxids = [s.mxid for s in specs]
    if len(set(mxids)) != len(mxids):
        raise FieldError("depthcam.rig", f"mxids must be unique, got {mxids}")
    return specs


def _moved_on(mxid: str, index: int) -> str:
    """An mxid ``index`` further on in its last four hex digits (or with ``index`` appended, if they are not hex)."""
    tail = mxid[-4:]
    try:
        return mxid[:-4] + f"{(int(tail, 16) + index) % 0x10000:04X}"
    except ValueError:
        return f"{mxid}{index:04X}"


class DepthCamEmulator(Emulator):
    device = "depthcam"
    title = "Robopipe stereo depth camera (Luxonis OAK behind the Robopipe API)"
    default_port = 9081
    start_cost_ms = (30.0, 5.0)  # CPU to start: its own imports, each member (numpy comes before the fork)
    settings_class = DepthcamSettings

    @classmethod
    def fleet_identity(cls, settings: dict[str, Any], index: int) -> dict[str, Any]:
        """Camera host ``index`` of a fleet: the same rig, each device's mxid with its last four hex digits moved
        on by ``index`` (the default OAK-D 14442C10D13EABCE00 becomes ...CE01, ...CE02)."""
        rig = [{"model": spec.model, "mxid": _moved_on(spec.mxid, index), "name": spec.name, "ir": spec.ir}
               for spec in load_rig(settings.get("rig"))]
        return {"rig": rig}

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        from emulators.depthcam.api import RobopipeApi
        from emulators.depthcam.model import DepthcamBackend
        from emulators.depthcam.service import DepthcamService

        config: DepthcamSettings = self.settings
        self.backend = DepthcamBackend(
            load_rig(config.rig),
            profile=config.profile,
            quirks=config.quirks(),
            restart_delay_s=config.restart_delay_s,
            boot_failures=config.boot_failures,
            video_restart_race=config.video_restart_race,
            time_scale=self.clock.time_scale,
            seed=self.seed,
            now=self.clock.now(),
        )
        self.service = DepthcamService(
            self.backend,
            clock=self.clock,
            events=self.events,
            tasks=self.tasks.child("cameras"),
            stream_verdict=self.stream_verdict,
            pacing_stats=self.pacing_stats,
            previews=self.previews,
        )
        self.api = RobopipeApi(
            self.backend,
            self.service,
            camera_name=config.camera_name,
            stream_list_form=config.stream_list_form,
            cors_origins=config.cors_origins,
        )
        self.scenario_controls["depth_at"] = self.api.depth_at
        self.scenario_controls["reboot_camera"] = self.api.reboot_camera

    def add_routes(self, app: web.Application) -> None:
        self.api.install(app)

    async def on_stop(self) -> None:
        await self.service.aclose()

    async def on_reset(self, seed: int) -> None:
        self.backend.reset(seed, self.clock.now())
        self.service.reset()

    def state(self) -> dict[str, Any]:
        return {"profile": self.backend.profile, "cameras": self.service.state()}

    def live_streams(self) -> list[str]:
        return self.service.live_streams()

    def extra_endpoints(self) -> dict[str, str]:
        if "rest" not in self.ports:
            return {}
        first = next(iter(self.backend.cameras))
        base = f"ws://{self.host}:{self.ports['rest']}/cameras/{first}/streams"
        return {"video_ws": f"{base}/{{stream_name}}/video", "nn_ws": f"{base}/{{stream_name}}/nn"}

    def credentials(self) -> dict[str, Any]:
        return {"mxid": next(iter(self.backend.cameras))}


EMULATOR = DepthCamEmulator
