"""The depth camera's backend: the rig's cameras, their pipelines' restart schedule, viewer fates, quirks, PLC I/O.

Pure Python: no asyncio, no I/O, no clock reads (``now`` is wall-clock seconds, passed in). The service acts
on what this module decides (which sockets close with which code, when a restarted pipeline is up); the API
renders the domain errors of ``errors``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulators.depthcam.camera import Camera, NeuralNetwork
from emulators.depthcam.controller import Controller
from emulators.depthcam.errors import (
    CameraNotFound,
    CircuitNotFound,
    ConfigRejected,
    IllegalTransition,
    ServerCrash,
    StreamNotFound,
)
from emulators.depthcam.hardware import MONO_NAMES_FOR_COLOR, STILL_FORMATS, DeviceSpec

PROFILES = ("default", "documented", "robopipe-server", "quirks", "realistic")
# Profiles that answer as the server's code on its main branch does, bugs included; the others answer as the
# vendor's documents describe the API (robopipe-server and quirks: the documented API with the dossier's 500s).
SERVER_MAIN_PROFILES = ("default", "realistic")
QUIRK_PROFILES = ("robopipe-server", "quirks")
BOOT_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0)
REALISTIC_RESTART_S = 2.0


# ----- quirks ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quirks:
    """Where the real server answers 500 or closes sockets (dossier Q1-Q8); all on in the robopipe-server profile."""

    inactive_stream_500: bool = False  # Q1
    config_variant_500: bool = False  # Q2
    depth_config_500: bool = False  # Q3
    still_format_500: bool = False  # Q4
    boot_error_500: bool = False  # Q5
    camera_create_delete_500: bool = False  # Q6
    restart_closes_websockets: bool = False  # Q8

    @classmethod
    def of(cls, profile: str, flags: Mapping[str, bool]) -> Quirks:
        every = profile in QUIRK_PROFILES
        return cls(**{name: every or bool(flags.get(name, False)) for name in cls.__dataclass_fields__})


# The dossier's quirks that main's code shows (Q1-Q6); Q8 is not how main treats sockets.
SERVER_MAIN_QUIRKS = (
    "inactive_stream_500",
    "config_variant_500",
    "depth_config_500",
    "still_format_500",
    "boot_error_500",
    "camera_create_delete_500",
)


# ----- pipeline status ------------------------------------------------------------------------------------
class PipelineStatus(enum.Enum):
    RUNNING = "running"
    RESTARTING = "restarting"
    CLOSED = "closed"  # the camera was deleted (DELETE /cameras/{mxid}/); POST re-opens it


TRANSITIONS: dict[PipelineStatus, frozenset[PipelineStatus]] = {
    PipelineStatus.RUNNING: frozenset({PipelineStatus.RESTARTING, PipelineStatus.CLOSED}),
    # A restart ends running, also when every boot retry failed: the device keeps the new state.
    PipelineStatus.RESTARTING: frozenset({PipelineStatus.RUNNING}),
    PipelineStatus.CLOSED: frozenset({PipelineStatus.RESTARTING}),
}


@dataclass
class Pipeline:
    """One camera's DepthAI pipeline: its status, the frame clock's origin and the pending restart's schedule."""

    mxid: str
    status: PipelineStatus = PipelineStatus.RUNNING
    generation: int = 0  # bumped by every restart; frame numbers restart with each generation
    restarts: int = 0
    started_ms: int = 0  # wall-clock ms of the newest start: frame 0 of every stream
    due: float | None = None  # when the restart's next boot attempt happens
    retries: int = 0  # failed boot attempts of this restart

    def move(self, status: PipelineStatus) -> None:
        if status not in TRANSITIONS[self.status]:
            raise IllegalTransition(f"{self.mxid}: pipeline cannot go from {self.status.value} to {status.value}")
        self.status = status


# ----- what a restart means for the viewers ---------------------------------------------------------------
@dataclass(frozen=True)
class Keep:
    """The socket stays; frames pause while the pipeline restarts."""


@dataclass(frozen=True)
class Close:
    code: int
    reason: str = ""


@dataclass(frozen=True)
class Drop:
    """Accepted, then the TCP connection is dropped without a close frame (main raised after accepting)."""


@dataclass(frozen=True)
class EndOfStream:
    """Main's encoder stops at a restart and its viewers meet the subscriber-list race (``race_outcome``)."""


ViewerFate = Keep | Close | EndOfStream
KEEP = Keep()


def race_outcome(viewers: int) -> tuple[range, range]:
    """Which viewers (positions in subscription order) main closes with 1000, and which it strands.

    Main closes each viewer while removing it from the list it iterates, so it skips every other one: the
    stranded stay open without frames and keep the stream listed, so later viewers get the init segment only.
    """
    return range(0, viewers, 2), range(1, viewers, 2)


@dataclass(frozen=True)
class ViewerFates:
    """Per stream name, what becomes of its video viewers and of its NN viewers."""

    video: dict[str, ViewerFate] = field(default_factory=dict)
    nn: dict[str, ViewerFate] = field(default_factory=dict)


# ----- schedule changes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BootRetried:
    """A boot attempt failed; the next one follows the backoff."""

    mxid: str
    attempt: int


@dataclass(frozen=True)
class PipelineStarted:
    mxid: str
    streams: tuple[str, ...]


@dataclass(frozen=True)
class PipelineFailed:
    """Every retry failed: the request that restarted the pipeline answers 500."""

    mxid: str
    attempts: int


PipelineChange = BootRetried | PipelineStarted | PipelineFailed


class DepthcamBackend:
    """Every rule of the emulated Robopipe controller, over the cameras of the rig and its PLC I/O."""

    def __init__(
        self,
        specs: Iterable[DeviceSpec],
        *,
        profile: str = "default",
        quirks: Quirks | None = None,
        restart_delay_s: float = 0.2,
        video_restart_race: bool = True,
        boot_failures: int = 0,
        time_scale: float = 1.0,
        seed: int = 0,
        now: float = 0.0,
    ) -> None:
        self.specs = tuple(specs)
        self.profile = profile
        self.server_main = profile in SERVER_MAIN_PROFILES
        quirks = quirks or Quirks.of(profile, {})
        if self.server_main:
            # Where main raises, it raises whatever the flags say; its sockets follow its own rules instead of Q8.
            quirks = dataclasses.replace(quirks, **{name: True for name in SERVER_MAIN_QUIRKS})
        self.quirks = quirks
        # The realistic profile's restarts take the real server's seconds at least.
        self.restart_delay_s = max(restart_delay_s, REALISTIC_RESTART_S) if profile == "realistic" else restart_delay_s
        self.boot_failures = boot_failures
        self.video_restart_race = video_restart_race
        self.time_scale = time_scale
        self.controller = Controller()
        self.cameras: dict[str, Camera] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.boot_failures_left = boot_failures
        self.seed = seed
        self.reset(seed, now)

    def reset(self, seed: int, now: float) -> None:
        """Boot state: every camera booted and running since ``now``, controller circuits at rest."""
        self.seed = seed
        self.controller.reset()
        self.boot_failures_left = self.boot_failures
        self.cameras = {spec.mxid: Camera.boot(spec, number) for number, spec in enumerate(self.specs)}
        self.pipelines = {mxid: Pipeline(mxid, started_ms=int(now * 1000)) for mxid in self.cameras}

    def scaled(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_scale)

    # ----- lookups --------------------------------------------------------------------------------------
    def is_open(self, mxid: str) -> bool:
        pipeline = self.pipelines.get(mxid)
        return pipeline is not None and pipeline.status is not PipelineStatus.CLOSED

    def camera(self, mxid: str) -> Camera:
        """A camera the server knows: an open one; on main also a deleted one, which it keeps listed."""
        if not self.is_open(mxid) and not (self.server_main and mxid in self.cameras):
            raise CameraNotFound(mxid)
        return self.cameras[mxid]

    def booted(self, mxid: str) -> Camera:
        """A camera whose device handle is open: on main, acting on a deleted camera raises (a 500)."""
        camera = self.camera(mxid)
        if not self.is_open(mxid):
            raise ServerCrash(f"{mxid}: the camera was shut down (DELETE); POST /cameras/{mxid}/ boots it again")
        return camera

    def configured(self, mxid: str) -> Camera:
        """A camera of the rig, open or deleted (POST /cameras/{mxid}/ and the reboot control reach both)."""
        camera = self.cameras.get(mxid)
        if camera is None:
            if self.server_main:
                raise ServerCrash(f"no camera with mxid {mxid!r}: main looks it up without a check")
            raise CameraNotFound(mxid)
        return camera

    def open_cameras(self) -> list[Camera]:
        """The cameras ``GET /cameras/`` lists: main keeps a deleted camera there (as unbooted)."""
        return [camera for mxid, camera in self.cameras.items() if self.server_main or self.is_open(mxid)]

    def device_state(self, mxid: str) -> str:
        """The XLink state ``DeviceInfo`` reports: a closed device handle shows the device as unbooted."""
        return "X_LINK_BOOTED" if self.is_open(mxid) else "X_LINK_UNBOOTED"

    def streaming(self, mxid: str, stream: str) -> bool:
        """Whether a stream produces frames now: its camera is open and the stream active."""
        camera = self.cameras.get(mxid)
        return camera is not None and self.is_open(mxid) and camera.knows(stream) and camera.is_active(stream)

    def require_active(self, mxid: str, stream: str) -> Camera:
        camera = self.camera(mxid)
        self._missing_as_server(camera.require_active, stream)
        return camera

    def _missing_as_server(self, operation: Any, *args: Any) -> Any:
        try:
            return operation(*args)
        except StreamNotFound as exc:
            if self.quirks.inactive_stream_500:
                raise ServerCrash(f"Q1: {exc.message}") from exc
            raise

    # ----- stream activation ----------------------------------------------------------------------------
    def activate(self, mxid: str, stream: str, now: float) -> ViewerFates | None:
        """Activate a stream; when the pipeline changes, its restart begins and the viewers' fates come back.

        On main every activation re-opens the device, so an already active stream restarts the pipeline too.
        """
        camera = self.booted(mxid) if self.server_main else self.camera(mxid)
        sizes = self.frame_sizes(camera)
        if not self._missing_as_server(camera.activate, stream) and not self.server_main:
            return None
        return self._begin_restart(camera, sizes, now)

    def deactivate(self, mxid: str, stream: str, now: float) -> ViewerFates | None:
        """Deactivate a stream; on main any pattern-valid name re-opens the device, on it or not."""
        if self.server_main:
            camera = self.booted(mxid)
            sizes = self.frame_sizes(camera)
            if camera.knows(stream):
                camera.deactivate(stream)
            return self._begin_restart(camera, sizes, now)
        camera = self.camera(mxid)
        sizes = self.frame_sizes(camera)
        if not self._missing_as_server(camera.deactivate, stream):
            return None
        return self._begin_restart(camera, sizes, now)

    # ----- config ---------------------------------------------------------------------------------------
    def set_config(
        self, mxid: str, stream: str, variant: str, body: dict[str, Any], now: float
    ) -> tuple[dict[str, Any] | ServerCrash, ViewerFates]:
        """Apply a config and begin the restart it needs; returns the config read back and the viewers' fates.

        On main a ``DEPTH_*`` config restarts the pipeline without applying anything and then fails reading
        the config back: the first item is then the crash the request answers after the restart.
        """
        camera = self.require_active(mxid, stream)
        if self.server_main:
            return self._set_config_as_main(camera, stream, variant, body, now)
        if stream.startswith("DEPTH_") and self.quirks.depth_config_500:
            raise ServerCrash(f"Q3: the server has no config for {stream}'s StereoDepth node")
        sizes = self.frame_sizes(camera)
        try:
            config = camera.set_config(stream, variant, body)
        except ConfigRejected as exc:
            # Q5: a value the sensor cannot run fails the DepthAI boot; Q2: the wrong variant fails in the server.
            if exc.kind == "value" and self.quirks.boot_error_500:
                raise ServerCrash(f"Q5: {exc.message}") from exc
            if exc.kind == "variant" and self.quirks.config_variant_500:
                raise ServerCrash(f"Q2: {exc.message}") from exc
            raise
        return config, self._begin_restart(camera, sizes, now)

    def _set_config_as_main(
        self, camera: Camera, stream: str, variant: str, body: dict[str, Any], now: float
    ) -> tuple[dict[str, Any] | ServerCrash, ViewerFates]:
        """Main merges the stored config with the body into the sensor's own config class, then restarts."""
        self.booted(camera.mxid)
        if stream.startswith("DEPTH_"):
            # The depth sensor keeps the body instead of its nodes' configs, restarts, and then cannot read it.
            crash = ServerCrash(f"{stream}: the config was not applied; reading it back fails after the restart")
            return crash, self._begin_restart(camera, self.frame_sizes(camera), now)
        sensor = camera.sensor_of(stream)
        if variant == "mono" and sensor.kind == "color":
            if body["resolution"] not in MONO_NAMES_FOR_COLOR:
                raise ServerCrash(f"the colour sensor has no resolution {body['resolution']}")
            sizes = self.frame_sizes(camera)
            config = camera.merge_config(stream, {"resolution": body["resolution"], "fps": body["fps"]})
            return config, self._begin_restart(camera, sizes, now)
        if variant != sensor.kind:
            raise ServerCrash(f"{variant} config fields do not fit {stream}'s {sensor.kind} config class")
        sizes = self.frame_sizes(camera)
        try:
            config = camera.set_config(stream, variant, body)
        except ConfigRejected as exc:
            raise ServerCrash(f"Q5: {exc.message}") from exc  # the device fails to boot with it
        return config, self._begin_restart(camera, sizes, now)

    # ----- neural networks ------------------------------------------------------------------------------
    def deploy_network(self, mxid: str, stream: str, network: NeuralNetwork, now: float) -> ViewerFates:
        """Deploy and restart; on main an inactive stream of the device is activated for the network."""
        if self.server_main:
            camera = self.booted(mxid)
            if not camera.knows(stream):
                raise ServerCrash(f"{mxid} has no sensor {stream}")
            sizes = self.frame_sizes(camera)
            camera.activate(stream)
            camera.nn_pipeline = True
        else:
            camera = self.require_active(mxid, stream)
            sizes = self.frame_sizes(camera)
        camera.deploy_network(stream, network)
        return self._begin_restart(camera, sizes, now)

    def delete_network(self, mxid: str, stream: str, now: float) -> ViewerFates | None:
        """Remove the stream's network; its NN viewers close with 1011.

        On main this restarts the pipeline once any network was deployed since the camera booted (None: no
        restart, nothing changes); the stream is not looked up.
        """
        if self.server_main:
            camera = self.camera(mxid)
            if not camera.nn_pipeline or not self.is_open(mxid):
                return None
            sizes = self.frame_sizes(camera)
            camera.networks.pop(stream, None)
            return self._begin_restart(camera, sizes, now)
        camera = self.camera(mxid)
        self._missing_as_server(camera.delete_network, stream)
        return ViewerFates(nn={stream: Close(1011)})

    # ----- cameras --------------------------------------------------------------------------------------
    def reboot_camera(self, mxid: str, now: float) -> ViewerFates:
        """Boot state (every CAM on, depth off), as a power cycle would; the pipeline restarts.

        POST /cameras/{mxid}/ does this too, also for a deleted camera, which it opens again.
        """
        camera = self.configured(mxid)
        sizes = self.frame_sizes(camera) if self.is_open(mxid) else {}
        camera.reboot()
        return self._begin_restart(camera, sizes, now)

    def close_camera(self, mxid: str) -> ViewerFates:
        """DELETE /cameras/{mxid}/: the camera is closed until created again; every viewer is told why.

        On main an unknown mxid raises, and closing a closed camera changes nothing.
        """
        camera = self.configured(mxid) if self.server_main else self.camera(mxid)
        if self.server_main and not self.is_open(mxid):
            return ViewerFates()
        self.pipelines[mxid].move(PipelineStatus.CLOSED)
        return self._viewer_fates(camera, {})

    def answer_camera_change(self) -> None:
        """Q6: the real server creates/deletes the camera, then fails to validate its own reply."""
        if self.quirks.camera_create_delete_500:
            raise ServerCrash("Q6: the camera was changed; the reply fails the server's response model")

    def camera_stats(self, mxid: str, now: float) -> dict[str, Any]:
        """Chip temperatures drift slowly (a 10-minute cycle); memory use follows the number of active streams."""
        camera = self.camera(mxid)
        phase = math.sin(now / 600.0 * 2 * math.pi + camera.number)
        base = 42.0 + 3.0 * phase
        temps = {"css": base + 0.8, "mss": base + 0.3, "upa": base - 0.4, "dss": base + 1.1}
        temps["average"] = sum(temps.values()) / 4
        active = len(camera.active_streams())

        def memory(total: int, per_stream: int, base_used: int) -> dict[str, int]:
            used = min(total, base_used + per_stream * active)
            return {"total": total, "used": used, "remaining": total - used}

        return {
            "chip_temperature": {k: round(v, 2) for k, v in temps.items()},
            "cmx_memory_usage": memory(2_621_440, 180_000, 310_000),
            "ddr_memory_usage": memory(358_612_992, 24_000_000, 41_000_000),
        }

    # ----- stills ---------------------------------------------------------------------------------------
    def still_format_passes_validation(self, fmt: str) -> bool:
        """Q4: the real server does not validate ``format``; Pillow fails on an unknown one later."""
        return fmt.lower() in STILL_FORMATS or self.quirks.still_format_500

    def still_format(self, fmt: str) -> str:
        """The format name to encode with; main hands any name to Pillow, which decides (a 500 if it cannot)."""
        if self.server_main:
            return fmt
        name = fmt.lower()
        if name not in STILL_FORMATS:
            raise ServerCrash(f"Q4: Pillow has no image format {fmt!r}")
        return name

    # ----- viewers --------------------------------------------------------------------------------------
    def admit_video(self, mxid: str, stream: str) -> Close | Drop | None:
        """None when a video viewer may watch the stream; otherwise how its accepted socket ends."""
        if self.server_main:
            return None if self.streaming(mxid, stream) else Drop()
        if not self.is_open(mxid):
            return Close(1011, "camera not found")
        if not self.streaming(mxid, stream):
            return Close(1011, "stream not found or not active")
        return None

    def nn_handshake_refused(self, mxid: str, stream: str) -> bool:
        """Main resolves the stream's sensor before accepting ``/nn``: unknown camera or inactive stream is HTTP 500."""
        if not self.server_main:
            return False
        camera = self.cameras.get(mxid)
        return camera is None or not (camera.knows(stream) and camera.is_active(stream))

    def admit_nn(self, mxid: str, stream: str) -> Close | Drop | None:
        if self.server_main:
            deployed = self.streaming(mxid, stream) and stream in self.cameras[mxid].networks
            return None if deployed else Drop()  # the loop's first read raises
        if not self.is_open(mxid):
            return Close(1011, "camera not found")
        if not self.streaming(mxid, stream) or stream not in self.cameras[mxid].networks:
            return Close(1011, "no neural network deployed on this stream")
        return None

    def nn_result_due(self, mxid: str, stream: str) -> Close | None:
        """None while the stream's network produces results; the close when the stream or network went away."""
        network = self.cameras[mxid].networks.get(stream)
        if not self.streaming(mxid, stream) or network is None:
            return Close(1000 if network is not None else 1011)
        return None

    def _viewer_fates(self, camera: Camera, sizes_before: dict[str, tuple[int, int]]) -> ViewerFates:
        """What a pipeline restart (or a camera close) means for each stream's video and NN viewers."""
        fates = ViewerFates()
        if self.server_main:
            # Main re-opens the whole device: every stream's encoder and NN loop fail on the old one.
            end = EndOfStream() if self.video_restart_race else Close(1000)
            for stream in camera.spec.stream_order:
                fates.video[stream] = end
                fates.nn[stream] = EndOfStream()
            return fates
        for stream in camera.spec.stream_order:
            active = self.streaming(camera.mxid, stream)
            if self.quirks.restart_closes_websockets:
                fates.video[stream] = Close(1012, "pipeline restart")  # Q8
            elif not active:
                fates.video[stream] = Close(1000, "stream deactivated")
            elif camera.frame_size(stream) != sizes_before.get(stream):
                fates.video[stream] = Close(1012, "frame size changed")  # the init segment no longer fits
            else:
                fates.video[stream] = KEEP
            if not active:
                fates.nn[stream] = Close(1000)
            else:
                fates.nn[stream] = Close(1012) if self.quirks.restart_closes_websockets else KEEP
        return fates

    @staticmethod
    def frame_sizes(camera: Camera) -> dict[str, tuple[int, int]]:
        return {name: camera.frame_size(name) for name in camera.active_streams()}

    # ----- pipeline restarts: a sans-I/O schedule ---------------------------------------------------------
    def _begin_restart(self, camera: Camera, sizes_before: dict[str, tuple[int, int]], now: float) -> ViewerFates:
        pipeline = self.pipelines[camera.mxid]
        pipeline.move(PipelineStatus.RESTARTING)
        pipeline.generation += 1
        pipeline.restarts += 1
        pipeline.retries = 0
        pipeline.due = now + self.scaled(self.restart_delay_s)
        if self.server_main:
            # Main builds new sensor objects on every open: each control starts from the initial one again.
            camera.reset_controls()
        return self._viewer_fates(camera, sizes_before)

    def next_wakeup(self) -> float | None:
        """When ``advance`` next has something to do; None when no pipeline is restarting."""
        dues = [p.due for p in self.pipelines.values() if p.due is not None]
        return min(dues) if dues else None

    def advance(self, now: float) -> list[PipelineChange]:
        """Run every boot attempt due by ``now``: a failure schedules the next retry (1/2/4/8/16 s, scaled)."""
        changes: list[PipelineChange] = []
        for mxid, pipeline in self.pipelines.items():
            while pipeline.due is not None and pipeline.due <= now:
                changes.append(self._boot_attempt(mxid, pipeline, now))
        return changes

    def _boot_attempt(self, mxid: str, pipeline: Pipeline, now: float) -> PipelineChange:
        assert pipeline.due is not None
        if self.boot_failures_left > 0:
            self.boot_failures_left -= 1
            if pipeline.retries < len(BOOT_BACKOFF_S):
                pipeline.due += self.scaled(BOOT_BACKOFF_S[pipeline.retries])
                pipeline.retries += 1
                return BootRetried(mxid, pipeline.retries)
            self._started(pipeline, now)
            return PipelineFailed(mxid, pipeline.retries + 1)
        self._started(pipeline, now)
        return PipelineStarted(mxid, tuple(self.cameras[mxid].active_streams()))

    def _started(self, pipeline: Pipeline, now: float) -> None:
        pipeline.move(PipelineStatus.RUNNING)
        pipeline.due = None
        pipeline.started_ms = int(now * 1000)

    def abandon_restarts(self, now: float) -> list[str]:
        """The emulator stops mid-restart: every restarting pipeline counts as started now (no boot attempt)."""
        abandoned = []
        for mxid, pipeline in self.pipelines.items():
            if pipeline.status is PipelineStatus.RESTARTING:
                self._started(pipeline, now)
                abandoned.append(mxid)
        return abandoned

    # ----- PLC I/O --------------------------------------------------------------------------------------
    def circuit(self, device_type: str, circuit: str) -> dict[str, Any]:
        """One circuit; on main an unknown circuit raises in the lookup (a 500), documented it is a 422."""
        try:
            return self.controller.get(device_type, circuit)
        except CircuitNotFound as exc:
            if self.server_main:
                raise ServerCrash(exc.message) from exc
            raise

    # ----- the frame clock ------------------------------------------------------------------------------
    def frame_index_at(self, mxid: str, stream: str, now_ms: int) -> int:
        """The sensor's newest frame number at ``now_ms``: frames count from the pipeline's start."""
        fps = self.cameras[mxid].fps(stream)
        return max(0, math.floor((now_ms - self.pipelines[mxid].started_ms) * fps / 1000.0))

    def capture_ms(self, mxid: str, stream: str, index: int) -> int:
        return self.pipelines[mxid].started_ms + round(index * 1000.0 / self.cameras[mxid].fps(stream))

    # ----- control plane --------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            mxid: {
                "model": camera.spec.model,
                "open": self.is_open(mxid),
                "streams": dict(camera.stream_list()),
                "restarts": self.pipelines[mxid].restarts,
                "restarting": self.pipelines[mxid].status is PipelineStatus.RESTARTING,
                "networks": {name: nn.kind for name, nn in camera.networks.items()},
            }
            for mxid, camera in self.cameras.items()
        }
