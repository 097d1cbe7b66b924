"""The Robopipe depth camera emulator: cameras from the rig config, pipeline restarts, shared video channels.

Mutating requests take the camera's lock and hold it through the pipeline restart, so concurrent
requests and new subscriptions wait and then see the new state, as on a real controller.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from emulators.depthcam import media
from emulators.depthcam.api import RobopipeApi
from emulators.depthcam.controller import Controller
from emulators.depthcam.model import BootFailed, Camera, DeviceSpec, device_from_config, oak_d
from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.resources import shelf

PROFILES = ("default", "robopipe-server", "quirks", "realistic")
QUIRKS = (
    "inactive_stream_500",
    "config_variant_500",
    "depth_config_500",
    "still_format_500",
    "boot_error_500",
    "camera_create_delete_500",
    "restart_closes_websockets",
)
BOOT_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)
REALISTIC_RESTART_S = 2.0
RIG_DIR = shelf("depthcam")  # packaged rigs + the scenario_dirs setting's depthcam/ folders


@dataclass
class CameraRuntime:
    """Per-camera runtime next to the pure model: its lock, restart state and live video channels."""

    camera: Camera
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    started_ms: int = 0
    channels: dict[str, media.VideoChannel] = field(default_factory=dict)
    restarts: int = 0
    # Stills reuse each stream's developed static scene, so a series of captures costs one render each.
    still_developers: dict[str, media.StreamDeveloper] = field(default_factory=dict)

    def still_developer(self, spec: media.FrameSpec) -> media.StreamDeveloper:
        developer = self.still_developers.get(spec.stream)
        if developer is None or developer.sensor.seed != spec.seed:
            developer = self.still_developers[spec.stream] = media.StreamDeveloper(media.stream_sensor(spec))
        return developer

    def frame_index_at(self, stream: str, now_ms: int) -> int:
        fps = self.camera.fps(stream)
        return max(0, math.floor((now_ms - self.started_ms) * fps / 1000.0))

    def capture_ms(self, stream: str, index: int) -> int:
        return self.started_ms + round(index * 1000.0 / self.camera.fps(stream))


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
        self.runtimes: dict[str, CameraRuntime] = {}
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
        self.specs = load_rig(self.settings["rig"])
        self.controller = Controller()
        self.boot_failures_left = failures
        self.scenario_controls["depth_at"] = self._scenario_depth_at
        self.scenario_controls["reboot_camera"] = self._scenario_reboot_camera
        self._build_cameras()

    # ----- settings ---------------------------------------------------------------------------------------
    def quirk(self, name: str) -> bool:
        return bool(self.settings[f"quirk_{name}"]) or self.settings["profile"] in ("robopipe-server", "quirks")

    @property
    def restart_delay_s(self) -> float:
        delay = float(self.settings["restart_delay_s"])
        if self.settings["profile"] == "realistic":
            delay = max(delay, REALISTIC_RESTART_S)
        return delay

    # ----- lifecycle --------------------------------------------------------------------------------------
    def _build_cameras(self) -> None:
        self.runtimes = {}
        now_ms = int(time.time() * 1000)
        for number, spec in enumerate(self.specs):
            runtime = CameraRuntime(Camera.boot(spec, number))
            runtime.started_ms = now_ms
            runtime.ready.set()
            self.runtimes[spec.mxid] = runtime

    def add_routes(self, app: web.Application) -> None:
        self.api = RobopipeApi(self)
        self.api.install(app)

    async def on_stop(self) -> None:
        for runtime in self.runtimes.values():
            await self._close_channels(runtime, 1001, "emulator stopping")
        await self.api.close_sockets()

    async def on_reset(self, seed: int) -> None:
        self.controller.reset()
        self.boot_failures_left = int(self.settings["boot_failures"])
        self._build_cameras()

    def state(self) -> dict[str, Any]:
        return {
            "profile": self.settings["profile"],
            "cameras": {
                mxid: {
                    "model": rt.camera.spec.model,
                    "open": rt.camera.open,
                    "streams": dict(rt.camera.stream_list()),
                    "restarts": rt.restarts,
                    "restarting": not rt.ready.is_set(),
                    "video_viewers": {name: len(ch.subscribers) for name, ch in rt.channels.items()},
                    "networks": {name: nn.kind for name, nn in rt.camera.networks.items()},
                }
                for mxid, rt in self.runtimes.items()
            },
        }

    def extra_endpoints(self) -> dict[str, str]:
        if "rest" not in self.ports:
            return {}
        first = next(iter(self.runtimes))
        base = f"ws://{self.host}:{self.ports['rest']}/cameras/{first}/streams"
        return {"video_ws": f"{base}/{{stream_name}}/video", "nn_ws": f"{base}/{{stream_name}}/nn"}

    def credentials(self) -> dict[str, Any]:
        return {"mxid": next(iter(self.runtimes))}

    # ----- cameras and restarts ---------------------------------------------------------------------------
    def runtime(self, mxid: str) -> CameraRuntime | None:
        runtime = self.runtimes.get(mxid)
        if runtime is None or not runtime.camera.open:
            return None
        return runtime

    async def restart_pipeline(self, runtime: CameraRuntime, sizes_before: dict[str, tuple[int, int]]) -> None:
        """Close or pause viewers as the new pipeline requires, wait out the restart, start the new pipeline.

        Called with the camera's lock held. Raises BootFailed when ``boot_failures`` outlasts the retries.
        """
        camera = runtime.camera
        runtime.ready.clear()
        camera.pipeline_generation += 1
        runtime.restarts += 1
        await self._settle_channels(runtime, sizes_before)
        try:
            await self.clock.sleep_scaled(self.restart_delay_s)
            for backoff in BOOT_BACKOFF_S:
                if self.boot_failures_left <= 0:
                    break
                self.boot_failures_left -= 1
                self.events.record("stream.error", camera=camera.mxid, error="pipeline boot failed; retrying")
                await self.clock.sleep_scaled(backoff)
            else:
                if self.boot_failures_left > 0:
                    self.boot_failures_left -= 1
                    raise BootFailed(f"{camera.mxid}: pipeline did not boot after {len(BOOT_BACKOFF_S)} retries")
        finally:
            runtime.started_ms = int(time.time() * 1000)
            runtime.ready.set()
        self.events.record("pipeline.restarted", camera=camera.mxid, streams=camera.active_streams())

    def frame_sizes(self, runtime: CameraRuntime) -> dict[str, tuple[int, int]]:
        camera = runtime.camera
        return {name: camera.frame_size(name) for name in camera.active_streams()}

    async def _settle_channels(self, runtime: CameraRuntime, sizes_before: dict[str, tuple[int, int]]) -> None:
        camera = runtime.camera
        for name, channel in list(runtime.channels.items()):
            if self.quirk("restart_closes_websockets"):
                code, reason = 1012, "pipeline restart"
            elif not camera.knows(name) or not camera.is_active(name) or not camera.open:
                code, reason = 1000, "stream deactivated"
            elif camera.frame_size(name) != sizes_before.get(name):
                code, reason = 1012, "frame size changed"
            else:
                continue  # frames pause during the restart; the socket stays
            channel.close_all(code, reason)
            runtime.channels.pop(name, None)
            await channel.aclose()
            self.events.record("stream.stopped", stream=channel.name, code=code, reason=reason)
        await self.api.close_nn_sockets(runtime, only_inactive=not self.quirk("restart_closes_websockets"))

    async def _close_channels(self, runtime: CameraRuntime, code: int, reason: str) -> None:
        for name, channel in list(runtime.channels.items()):
            channel.close_all(code, reason)
            runtime.channels.pop(name, None)
            await channel.aclose()

    # ----- video channels ---------------------------------------------------------------------------------
    def video_channel(self, runtime: CameraRuntime, stream: str) -> media.VideoChannel:
        """The stream's shared channel; the first viewer creates and starts it."""
        channel = runtime.channels.get(stream)
        if channel is not None:
            return channel
        camera = runtime.camera
        name = f"{camera.mxid}/{stream}/video"
        state = {"generation": camera.pipeline_generation, "offset": None}

        def next_frame(tick_index: int) -> media.FrameSpec | None:
            if not camera.open or not camera.knows(stream) or not camera.is_active(stream):
                return None
            if state["offset"] is None or state["generation"] != camera.pipeline_generation:
                # Frame numbers restart with each pipeline; ticks before this one do not count.
                state["generation"] = camera.pipeline_generation
                state["offset"] = runtime.frame_index_at(stream, int(time.time() * 1000)) - tick_index
            index = int(state["offset"]) + tick_index
            return media.frame_spec(
                camera, stream, frame_index=index, capture_ms=runtime.capture_ms(stream, index), seed=self.seed
            )

        hooks = media.ChannelHooks(
            wait_ready=runtime.ready.wait,
            next_frame=next_frame,
            fault=self.faults.for_stream,
            record=self.events.record,
            corrupt=self.faults.corrupt,
        )
        channel = media.VideoChannel(
            name=name,
            stream=stream,
            size=camera.frame_size(stream),
            fps=camera.fps(stream),
            hooks=hooks,
            stats=self.pacing_stats(name),
        )
        runtime.channels[stream] = channel
        channel.start()
        self.events.record("stream.started", stream=name, size=list(channel.size), fps=channel.fps)
        return channel

    async def leave_channel(self, runtime: CameraRuntime, channel: media.VideoChannel, sub: media.Subscriber) -> None:
        """A viewer left; the last one stops the channel's encoder."""
        channel.subscribers.discard(sub)
        if not channel.subscribers:
            if runtime.channels.get(channel.stream) is channel:
                runtime.channels.pop(channel.stream, None)
            await channel.aclose()
            self.events.record("stream.stopped", stream=channel.name, reason="last viewer left")

    # ----- scenario controls ------------------------------------------------------------------------------
    async def _scenario_depth_at(self, body: dict[str, Any]) -> dict[str, Any]:
        """Ground truth: the emulated uint16 depth (mm) of the active pair at pixel (x, y) of its view."""
        runtime = self._scenario_runtime(body)
        camera = runtime.camera
        if camera.active_pair is None:
            raise FieldError("mxid", f"{camera.mxid} has no active DEPTH stream; activate one first")
        width, height = camera.frame_size(camera.active_pair)
        point = []
        for key, limit in (("x", width), ("y", height)):
            value = body.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
                raise FieldError(key, f"must be an integer pixel in 0..{limit - 1}, got {value!r}")
            point.append(value)
        now_ms = int(time.time() * 1000)
        capture_ms = body.get("capture_ms", now_ms)
        if isinstance(capture_ms, bool) or not isinstance(capture_ms, int) or capture_ms < 0:
            raise FieldError("capture_ms", f"must be a non-negative integer (ms since the epoch), got {capture_ms!r}")
        depth = media.depth_map_mm(camera, camera.active_pair, capture_ms)
        return {
            "stream": camera.active_pair,
            "x": point[0],
            "y": point[1],
            "capture_ms": capture_ms,
            "depth_mm": int(depth[point[1], point[0]]),
        }

    async def _scenario_reboot_camera(self, body: dict[str, Any]) -> dict[str, Any]:
        """Reboot a camera to boot state (every CAM on, depth off), as a power cycle would."""
        runtime = self._scenario_runtime(body)
        async with runtime.lock:
            sizes = self.frame_sizes(runtime)
            runtime.camera.reboot()
            await self.restart_pipeline(runtime, sizes)
        return {"mxid": runtime.camera.mxid, "streams": dict(runtime.camera.stream_list())}

    def _scenario_runtime(self, body: dict[str, Any]) -> CameraRuntime:
        mxid = body.get("mxid", next(iter(self.runtimes)))
        runtime = self.runtimes.get(mxid) if isinstance(mxid, str) else None
        if runtime is None:
            raise FieldError("mxid", f"must be one of {', '.join(self.runtimes)}, got {mxid!r}")
        return runtime


EMULATOR = DepthCamEmulator
