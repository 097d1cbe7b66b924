"""The Misty II emulator, wired: settings -> backend (model.py) + service (service.py) + REST API (api.py).

The robot's rules live in the backend, its orchestration in the service; this module only connects them to a
kit ``Emulator`` (REST, video WebSocket, AV streams and pubsub on one device). The registry imports this module
to read the settings, so the backend, service and API are imported only when an emulator is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulators.kit.emulator import Emulator
from emulators.kit.settings import DeviceSettings, setting

if TYPE_CHECKING:
    from aiohttp import web

    from emulators.misty.model import MistyBackend


@dataclass(frozen=True)
class MistySettings(DeviceSettings):
    """The robot's settings; the quirks are misty.md §5."""

    device = "misty"
    port: int = setting(9080, doc="REST and pubsub port (the robot itself uses 80)", minimum=0, maximum=65535)
    serial_number: str = setting(
        "EMULATED-MISTY-II",
        doc="`serialNumber` in GetDeviceInformation; fleet members get `-001`, `-002`, ... appended",
    )
    single_viewer: bool = setting(
        False,
        doc="Only the first video viewer after boot gets frames. Later viewers connect but receive nothing,"
        " even across stop/start, until a reboot",
    )
    sticky_subscriptions: bool = setting(
        False, doc="pubsub registrations outlive their connection, so the same name is refused until a Core reboot"
    )
    av_audio: bool = setting(
        True,
        doc="AV streams carry the AAC audio track, as the robot's always do. false: video only, a setting of the"
        " emulator's own (the robot has none), for CI that does not listen and for comparing video CPU cost",
    )
    camera_enable_flaky: float = setting(
        0.0,
        doc="Probability (seeded) that `services/camera/enable` answers true but the camera stays off"
        " (AV state untouched)",
        minimum=0.0,
        maximum=1.0,
    )
    reboot_delay_s: float = setting(
        0.0,
        doc="How long a reboot keeps the robot unavailable: REST (and the `/pubsub` upgrade) answer 503"
        " `Robot is restarting`. A lifecycle delay, so multiplied by the time scale (0.05 in the fast profile)",
        minimum=0.0,
    )


class MistyEmulator(Emulator):
    device = "misty"
    title = "Misty II robot (REST, video WebSocket, AV streaming, pubsub)"
    default_port = 9080
    start_cost_ms = (25.0, 25.0)  # CPU to start: its own imports, each member (numpy comes before the fork)
    settings_class = MistySettings

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        from emulators.misty.api import MistyApi
        from emulators.misty.service import MistyService

        self.settings: MistySettings
        self.service = MistyService(
            self,
            make_backend=self._backend,
            tasks=self.tasks.child("robot"),
            egress=self.egress,
            reboot_delay_s=self.settings.reboot_delay_s,
            sticky_subscriptions=self.settings.sticky_subscriptions,
            serial_number=self.settings.serial_number,
            av_audio=self.settings.av_audio,
        )
        self.api = MistyApi(self.service)
        self.scenario_controls["reboot"] = self.api.scenario_reboot

    @classmethod
    def fleet_identity(cls, settings: dict[str, Any], index: int) -> dict[str, Any]:
        """Robot ``index`` of a fleet: its own serial number (GetDeviceInformation)."""
        base = str(settings.get("serial_number", cls.default_settings()["serial_number"]))
        return {"serial_number": f"{base}-{index + 1:03d}"}

    def _backend(self, seed: int) -> MistyBackend:
        from emulators.misty.model import MistyBackend

        return MistyBackend(
            single_viewer=self.settings.single_viewer,
            camera_enable_flaky=self.settings.camera_enable_flaky,
            seed=seed,
        )

    # ----- kit hooks --------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        self.api.add_routes(app)

    async def on_start(self) -> None:
        self.service.start()

    async def on_stop(self) -> None:
        await self.service.aclose()

    async def on_reset(self, seed: int) -> None:
        self.service.reset(seed)

    def state(self) -> dict[str, Any]:
        return self.service.snapshot()

    def live_streams(self) -> list[str]:
        return self.service.live_streams()

    def extra_endpoints(self) -> dict[str, str]:
        if "rest" not in self.ports:
            return {}
        return {"pubsub": f"ws://{self.host}:{self.ports['rest']}/pubsub"}


EMULATOR = MistyEmulator
