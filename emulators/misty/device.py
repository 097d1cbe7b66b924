"""The Misty II emulator, wired: settings -> backend (model.py) + service (service.py) + REST API (api.py).

The robot's rules live in the backend, its orchestration in the service; this module only connects them to a
kit ``Emulator`` (REST, video WebSocket, AV streams and pubsub on one device).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.misty.api import MistyApi
from emulators.misty.model import MistyBackend
from emulators.misty.service import MistyService


class MistyEmulator(Emulator):
    device = "misty"
    title = "Misty II robot (REST, video WebSocket, AV streaming, pubsub)"
    default_port = 9080
    settings_defaults = {
        "port": 9080,
        # Quirks (misty.md §5): only the first viewer after boot gets frames.
        "single_viewer": False,
        # Subscriptions outlive their connection, so the same event name is refused until a Core reboot.
        "sticky_subscriptions": False,
        # Probability that EnableCameraService answers true but the camera stays off.
        "camera_enable_flaky": 0.0,
        # How long a reboot keeps the robot unavailable (503), multiplied by the time scale.
        "reboot_delay_s": 0.0,
    }

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        flaky = self.settings["camera_enable_flaky"]
        if not 0.0 <= float(flaky) <= 1.0:
            raise FieldError("misty.camera_enable_flaky", f"must be a probability between 0 and 1, got {flaky!r}")
        if float(self.settings["reboot_delay_s"]) < 0:
            delay = self.settings["reboot_delay_s"]
            raise FieldError("misty.reboot_delay_s", f"must be 0 or more seconds, got {delay!r}")
        self.service = MistyService(
            self,
            make_backend=self._backend,
            tasks=self.tasks,
            egress=self.egress,
            reboot_delay_s=float(self.settings["reboot_delay_s"]),
            sticky_subscriptions=bool(self.settings["sticky_subscriptions"]),
        )
        self.api = MistyApi(self.service)
        self.api.add_routes(self.app)
        self.scenario_controls["reboot"] = self.api.scenario_reboot

    def _backend(self, seed: int) -> MistyBackend:
        return MistyBackend(
            single_viewer=bool(self.settings["single_viewer"]),
            camera_enable_flaky=float(self.settings["camera_enable_flaky"]),
            seed=seed,
        )

    # ----- kit hooks --------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        """Routes are added once the service exists (see ``__init__``); the kit calls this before that."""

    async def on_start(self) -> None:
        self.service.start()

    async def on_stop(self) -> None:
        await self.service.aclose()

    async def on_reset(self, seed: int) -> None:
        self.service.reset(seed)

    def state(self) -> dict[str, Any]:
        return self.service.snapshot()

    def extra_endpoints(self) -> dict[str, str]:
        if "rest" not in self.ports:
            return {}
        return {"pubsub": f"ws://{self.host}:{self.ports['rest']}/pubsub"}


EMULATOR = MistyEmulator
