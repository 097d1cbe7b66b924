"""The Robopipe depth camera emulator's wiring: settings and the rig -> backend + service + API -> an Emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from emulators.depthcam.api import RobopipeApi
from emulators.depthcam.hardware import DeviceSpec, device_from_config, oak_d
from emulators.depthcam.model import PROFILES, DepthcamBackend, Quirks
from emulators.depthcam.service import DepthcamService
from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError

RIG_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "depthcam"


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


class DepthCamEmulator(Emulator):
    device = "depthcam"
    title = "Robopipe stereo depth camera (Luxonis OAK behind the Robopipe API)"
    default_port = 9081
    settings_defaults = {
        "port": 9081,
        # default: the contract's replies; robopipe-server (alias quirks): the real server's 500s (Q1-Q8);
        # realistic: multi-second pipeline restarts.
        "profile": "default",
        # Pipeline restart on activate/deactivate/config/NN deploy, multiplied by the time scale.
        "restart_delay_s": 0.2,
        # The next N boot attempts fail; retries follow 1/2/4/8/16 s (time-scaled), then 500.
        "boot_failures": 0,
        # "object" ({"CAM_A": {"active": true}}, the seed-era server) or "list" (newer servers, Studio).
        "stream_list_form": "object",
        # Add DeviceInfo.camera_name ("OAK-D") as newer servers do.
        "camera_name": False,
        # Devices: None = one OAK-D; a fixture name under fixtures/depthcam, a YAML path, or a list of entries.
        "rig": None,
        # Allowed CORS origins, comma-separated, like the server's CORS_ORIGINS.
        "cors_origins": "*",
        # Individual quirks (all on in the robopipe-server profile).
        "quirk_inactive_stream_500": False,
        "quirk_config_variant_500": False,
        "quirk_depth_config_500": False,
        "quirk_still_format_500": False,
        "quirk_boot_error_500": False,
        "quirk_camera_create_delete_500": False,
        "quirk_restart_closes_websockets": False,
    }

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        profile = self.settings["profile"]
        if profile not in PROFILES:
            raise FieldError("depthcam.profile", f"must be one of {', '.join(PROFILES)}, got {profile!r}")
        if self.settings["stream_list_form"] not in ("object", "list"):
            raise FieldError(
                "depthcam.stream_list_form", f"must be object or list, got {self.settings['stream_list_form']!r}"
            )
        if float(self.settings["restart_delay_s"]) < 0:
            raise FieldError("depthcam.restart_delay_s", "must be 0 or more seconds")
        failures = self.settings["boot_failures"]
        if not isinstance(failures, int) or failures < 0:
            raise FieldError("depthcam.boot_failures", f"must be an integer >= 0, got {failures!r}")
        flags = {name: self.settings[f"quirk_{name}"] for name in Quirks.__dataclass_fields__}
        self.backend = DepthcamBackend(
            load_rig(self.settings["rig"]),
            profile=profile,
            quirks=Quirks.of(profile, flags),
            restart_delay_s=float(self.settings["restart_delay_s"]),
            boot_failures=failures,
            time_scale=self.clock.time_scale,
            seed=self.seed,
            now=self.clock.now(),
        )
        self.service = DepthcamService(
            self.backend,
            clock=self.clock,
            events=self.events,
            tasks=self.tasks,
            stream_fault=self.stream_fault,
            corrupt=self.faults.corrupt,
            pacing_stats=self.pacing_stats,
        )
        self.api = RobopipeApi(
            self.backend,
            self.service,
            camera_name=bool(self.settings["camera_name"]),
            stream_list_form=self.settings["stream_list_form"],
            cors_origins=str(self.settings["cors_origins"]),
        )
        self.scenario_controls["depth_at"] = self.api.depth_at
        self.scenario_controls["reboot_camera"] = self.api.reboot_camera

    def add_routes(self, app: web.Application) -> None:
        # The base class adds routes while constructing, before the API exists: route to it when a request comes.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._dispatch)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        return await self.api.dispatch(request)

    async def on_stop(self) -> None:
        await self.service.aclose()

    async def on_reset(self, seed: int) -> None:
        self.backend.reset(seed, self.clock.now())
        self.service.reset()

    def state(self) -> dict[str, Any]:
        return {"profile": self.backend.profile, "cameras": self.service.state()}

    def extra_endpoints(self) -> dict[str, str]:
        if "rest" not in self.ports:
            return {}
        first = next(iter(self.backend.cameras))
        base = f"ws://{self.host}:{self.ports['rest']}/cameras/{first}/streams"
        return {"video_ws": f"{base}/{{stream_name}}/video", "nn_ws": f"{base}/{{stream_name}}/nn"}

    def credentials(self) -> dict[str, Any]:
        return {"mxid": next(iter(self.backend.cameras))}


EMULATOR = DepthCamEmulator
