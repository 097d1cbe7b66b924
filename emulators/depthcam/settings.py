"""The depth camera emulator's settings: one frozen dataclass with every default, allowed value and meaning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulators.depthcam.model import PROFILES, Quirks
from emulators.kit.settings import DeviceSettings, setting


@dataclass(frozen=True)
class DepthcamSettings(DeviceSettings):
    device = "depthcam"

    port: int = setting(9081, doc="REST and WebSocket port", minimum=0, maximum=65535)
    profile: str = setting(
        "default",
        doc="`default`: answers as the Robopipe server's code on main, bugs included (Q1-Q6 always on); "
        "`documented`: as the vendor's documents describe the API; `robopipe-server` (alias `quirks`): documented "
        "with every quirk below on; `realistic`: default with restarts of at least 2 s",
        choices=PROFILES,
    )
    restart_delay_s: float = setting(0.2, doc="pipeline restart, times the time scale", minimum=0.0)
    video_restart_race: bool = setting(
        True,
        doc="default profile: a restart meets main's subscriber-list race (the 1st, 3rd, ... video viewer closes "
        "with 1000, the others stay open without frames, later viewers get the init segment only); false: every "
        "viewer closes with 1000",
    )
    boot_failures: int = setting(
        0,
        doc="the next N boot attempts fail; retries wait 1/2/4/8/16 s (scaled); after 5 retries the request is 500",
        minimum=0,
    )
    stream_list_form: str = setting(
        "object",
        doc='`list` gives `[{"name":…, "active":…}]` as newer servers and Studio expect',
        choices=("object", "list"),
    )
    camera_name: bool = setting(
        False,
        doc="documented profile: add `DeviceInfo.camera_name` (the model) as main does (the default always has it)",
    )
    rig: str | list[dict[str, Any]] | None = setting(
        None,
        doc="devices: a fixture name (`lab` = `fixtures/depthcam/lab.yaml`: OAK-D, OAK-D-LR with IR, OAK-1), "
        "a YAML path, or a list of `{model, mxid, name, ir}`; none is one OAK-D",
    )
    cors_origins: str = setting("*", doc="comma-separated allowed origins (credentials allowed, preflights answered)")
    quirk_inactive_stream_500: bool = setting(
        False,
        doc="Q1: inactive/missing stream on config/control/still/nn, or activating a stream not on the device → 500",
    )
    quirk_config_variant_500: bool = setting(False, doc="Q2: a config variant the sensor cannot run → 500")
    quirk_depth_config_500: bool = setting(False, doc="Q3: any config POST on `DEPTH_*` → 500")
    quirk_still_format_500: bool = setting(False, doc="Q4: unknown still format → 500")
    quirk_boot_error_500: bool = setting(False, doc="Q5: a size/fps the sensor cannot run → 500")
    quirk_camera_create_delete_500: bool = setting(
        False, doc="Q6: POST/DELETE `/cameras/{mxid}/` act, then answer 500"
    )
    quirk_restart_closes_websockets: bool = setting(
        False,
        doc="Q8 (documented profiles; the default follows main's race): every restart closes the device's sockets "
        "(1012)",
    )

    def quirks(self) -> Quirks:
        """The quirks in force: the profile's, plus each one switched on by name."""
        flags = {name: getattr(self, f"quirk_{name}") for name in Quirks.__dataclass_fields__}
        return Quirks.of(self.profile, flags)
