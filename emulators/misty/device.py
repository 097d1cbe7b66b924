"""The Misty II emulator: model + REST routes + video WebSocket + AV streams + pubsub, on one kit Emulator.

The model decides; this module performs what each decision implies (bind or free a port, close viewers,
start or stop an AV stream) and owns every stream and background task.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from aiohttp import web

from emulators.kit.codecs import JpegEncoder
from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.stamp import FrameStamp, StreamKind, paint_stamp
from emulators.misty.api import MistyApi
from emulators.misty.model import (
    AvRequest,
    CommandException,
    Consequences,
    MistyRobot,
    PictureRequest,
    VideoParams,
)
from emulators.misty.pubsub_ws import PubsubHub
from emulators.misty.scene import MistyScene, resize_axes, rotate_clockwise
from emulators.misty.sensors import SensorSuite, misty_timestamp
from emulators.misty.video import STREAM_NAME as VIDEO_STREAM
from emulators.misty.video import VideoStream, ViewerLatch

try:  # AV streaming media is built separately; without it AV start/stop keep their state and validation only.
    from emulators.misty import av as _av
except ImportError:  # pragma: no cover - depends on the checkout
    _av = None  # type: ignore[assignment]



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
        self.robot = MistyRobot()
        self.scene = MistyScene(self.seed)
        self.sensors = SensorSuite(seed=self.seed, booted_at=time.time())
        self.latch = ViewerLatch(enabled=bool(self.settings["single_viewer"]))
        self.pubsub = PubsubHub(
            self,
            sensors=self.sensors,
            camera_on=lambda: self.robot.services["camera"],
            websocket_version=lambda: self.robot.websocket_version,
            sticky=bool(self.settings["sticky_subscriptions"]),
        )
        self.video_stream: VideoStream | None = None
        self.av_stream: Any = None
        self._av_watch: asyncio.Task[None] | None = None
        self.restarting = False
        self._reboot_task: asyncio.Task[None] | None = None
        self._rng = random.Random(self.seed)
        self._lock = asyncio.Lock()
        self.scenario_controls["reboot"] = self._scenario_reboot

    # ----- kit hooks --------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        MistyApi(self).add_routes(app)

    async def pubsub_serve(self, request: web.Request) -> web.StreamResponse:
        return await self.pubsub.serve(request)

    async def on_start(self) -> None:
        self.restarting = False
        self.pubsub.start()

    async def on_stop(self) -> None:
        await self._close_video()
        await self._close_av()
        await self.pubsub.aclose()

    async def on_reset(self, seed: int) -> None:
        self.robot = MistyRobot()
        self.scene = MistyScene(seed)
        self.sensors = SensorSuite(seed=seed, booted_at=time.time())
        self.pubsub.sensors = self.sensors
        self.latch.clear()
        self._rng = random.Random(seed)

    def state(self) -> dict[str, Any]:
        out = self.robot.snapshot(self.clock.now())
        out["restarting"] = self.restarting
        out["video_stream"] = None if self.video_stream is None else self.video_stream.snapshot()
        stream = self.av_stream
        out["av_stream"] = None if stream is None else {
            "stream_id": stream.stream_id,
            "endpoint": getattr(stream, "endpoint", None),
            "frames_sent": getattr(stream, "frames_sent", None),
            "failure": getattr(stream, "failure", None),
        }
        out["single_viewer_taken"] = self.latch.taken
        out["pubsub"] = self.pubsub.snapshot()
        return out

    def extra_endpoints(self) -> dict[str, str]:
        if "rest" not in self.ports:
            return {}
        return {"pubsub": f"ws://{self.host}:{self.ports['rest']}/pubsub"}

    # ----- video WebSocket --------------------------------------------------------------------------------
    async def start_video(self, params: VideoParams) -> None:
        async with self._lock:
            self.robot.check_video_start(params)
            old, old_record = self.video_stream, self.robot.video
            if old is not None and old.port == params.port:
                # Same port: the old server must let go of it before the new one binds.
                await self._close_video()
                old, old_record = None, None
            record = self.robot.video_started(params, self.clock.now())
            stream = VideoStream(
                params, host=self.host, stream_id=record.stream_id, scene=self.scene, emulator=self, latch=self.latch
            )
            try:
                await stream.start()
            except OSError as exc:
                self.robot.video = old_record
                self.events.record("stream.error", stream=VIDEO_STREAM, port=params.port, error=str(exc))
                raise CommandException(f"Cannot bind video stream port {params.port}: address in use") from None
            if old is not None:
                await old.aclose()
            self.video_stream = stream

    async def stop_video(self) -> None:
        async with self._lock:
            await self._close_video()

    async def _close_video(self) -> None:
        stream, self.video_stream = self.video_stream, None
        self.robot.video_stopped()
        if stream is not None:
            await stream.aclose()

    # ----- AV streaming -----------------------------------------------------------------------------------
    async def start_av(self, request: AvRequest) -> None:
        async with self._lock:
            self.robot.check_av_start(request, self.clock.now())
            record = self.robot.av_started(request, self.clock.now())
            if _av is None:
                return  # media not available in this build: state and validation only
            params = _av.AvParams(
                url=request.url,
                width=request.width,
                height=request.height,
                frame_rate=request.frame_rate,
                video_bitrate=request.video_bitrate,
                audio_bitrate=request.audio_bitrate,
                sample_rate=request.sample_rate,
                username=request.username,
                password=request.password,
            )
            stream = _av.AvStream(params, host=self.host, stream_id=record.stream_id, scene=self.scene, emulator=self)
            try:
                await stream.start()
            except _av.AvConnectError as exc:
                self.robot.av_failed()
                raise CommandException(f"Cannot connect to {request.url}: {exc}") from None
            except OSError as exc:
                self.robot.av_failed()
                reason = exc.strerror or str(exc)
                raise CommandException(f"Cannot serve RTSP on port {request.rtspd_port}: {reason}") from None
            self.av_stream = stream
            self._av_watch = self.tasks.spawn(self._watch_av(stream), name=f"av-watch-{record.stream_id}")

    async def _watch_av(self, stream: Any) -> None:
        """A push that breaks after start leaves the robot idle, with no retry."""
        reason = await stream.wait_failed()
        async with self._lock:
            if self.av_stream is stream:
                self.events.record("stream.error", stream="av", error=reason)
                self.robot.av_failed()
                self.av_stream = None
                self._av_watch = None
                await stream.aclose()

    async def stop_av(self) -> None:
        async with self._lock:
            consequences = self.robot.stop_av_command()
            await self._apply(consequences)
            await self._close_av()

    async def _close_av(self) -> None:
        stream, self.av_stream = self.av_stream, None
        watch, self._av_watch = self._av_watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        self.robot.av = None
        if stream is not None:
            await stream.aclose()

    # ----- services and reboot ----------------------------------------------------------------------------
    async def set_service(self, service: str, enable: bool) -> None:
        async with self._lock:
            if enable:
                flake = (
                    service == "camera"
                    and not self.robot.services["camera"]
                    and self._rng.random() < float(self.settings["camera_enable_flaky"])
                )
                if flake:
                    self.events.record("fault.applied", quirk="camera_enable_flaky")
                consequences = self.robot.enable(service, camera_flake=flake)
            else:
                consequences = self.robot.disable(service)
            await self._apply(consequences)

    async def _apply(self, consequences: Consequences) -> None:
        if consequences.stop_video:
            await self._close_video()
        if consequences.stop_av:
            await self._close_av()

    async def reboot(self, *, core: bool, sensory_services: bool) -> None:
        if not (core or sensory_services):
            return
        async with self._lock:
            self.events.record("robot.reboot", core=core, sensory_services=sensory_services)
            self.robot.reboot(core=core, sensory_services=sensory_services)
            await self._close_video()
            await self._close_av()
            self.latch.clear()
            delay = float(self.settings["reboot_delay_s"])
            if core:
                await self.pubsub.aclose()
            if self._reboot_task is not None and not self._reboot_task.done():
                # A reboot during a reboot starts the wait over (the scenario control can do this).
                self._reboot_task.cancel()
                await asyncio.gather(self._reboot_task, return_exceptions=True)
            start_pubsub = self.pubsub.tasks.live == 0  # closed by this reboot or by the one it replaced
            if delay > 0:
                self.restarting = True
                self._reboot_task = self.tasks.spawn(self._finish_reboot(delay, start_pubsub), name="reboot")
            elif start_pubsub:
                self.pubsub.start()

    async def _finish_reboot(self, delay: float, start_pubsub: bool) -> None:
        await self.clock.sleep_scaled(delay)
        if start_pubsub:
            self.pubsub.start()
        self.restarting = False
        self.events.record("robot.ready")

    async def _scenario_reboot(self, body: dict[str, Any]) -> dict[str, Any]:
        flags = {}
        for key in ("core", "sensory_services"):
            value = body.get(key, key == "sensory_services")
            if not isinstance(value, bool):
                raise FieldError(key, f"must be true or false, got {value!r}")
            flags[key] = value
        unknown = set(body) - set(flags)
        if unknown:
            raise FieldError(sorted(unknown)[0], "is not a reboot option; allowed: core, sensory_services")
        await self.reboot(core=flags["core"], sensory_services=flags["sensory_services"])
        return {"rebooted": flags["core"] or flags["sensory_services"], **flags, "restarting": self.restarting}

    # ----- pictures and information -----------------------------------------------------------------------
    async def take_picture(self, picture: PictureRequest) -> tuple[bytes, int, int]:
        """A JPEG of the scene at the requested size; the sensor is turned CW while encoding, so W/H swap."""
        stream_id = self.robot.take_stream_id()

        def shoot() -> bytes:
            native = self.scene.native_frame(time.monotonic())
            frame = rotate_clockwise(resize_axes(native, picture.width, picture.height), 90)
            frame = frame.copy()
            stamp = FrameStamp(StreamKind.MISTY_PICTURE, stream_id, 0, int(time.time() * 1000))
            paint_stamp(frame, stamp)
            return JpegEncoder(quality=90).encode(frame)

        jpeg = await asyncio.to_thread(shoot)
        return jpeg, picture.height, picture.width

    def camera_details(self) -> dict[str, Any]:
        self.robot.require_camera()
        stats = self.pacing.get(VIDEO_STREAM)
        stream = self.video_stream
        fps = 30.0
        if stream is not None and self.robot.video is not None and stream.frames_encoded:
            elapsed = max(1e-3, self.clock.now() - self.robot.video.started_at)
            fps = round(min(30.0, stream.frames_encoded / elapsed), 2)
        return {
            "droppedFrames": 0 if stats is None else stats.skipped,
            "fpsActual": fps,
            "fpsRequested": 30,
            "height": 480.0,
            "width": 640.0,
        }

    def battery_level(self) -> dict[str, Any]:
        message = self.sensors.battery(time.time())
        return {**message, "sensorName": "/Sensors/RTC/BatteryCharge"}

    def device_information(self) -> dict[str, Any]:
        return {
            "androidHardwareId": "emulated-0001",
            "androidOSVersion": "8.1.0",
            "batteryLevel": self.battery_level(),
            "currentNetworkId": 0,
            "currentProfileName": "benchtwin",
            "hardwareInfo": {
                "rtcBoard": {"boardId": "0x00000001", "firmware": "1.9.2", "hardware": "1.0"},
                "mcBoard": {"boardId": "0x00000002", "firmware": "1.9.2", "hardware": "1.0"},
            },
            "ipAddress": self.host,
            "networkConnectivity": "LocalAccess",
            "occipitalDeviceInfo": {"cameraId": "emulated", "created": misty_timestamp(time.time())},
            "outputCapabilities": ["Display", "Audio", "Drive", "Arms", "Head", "Led"],
            "robotId": "00000000000000000000",
            "robotVersion": "1.9.2.10155",
            "sensorCapabilities": ["TimeOfFlight", "Imu", "BumpSensor", "TouchSensor", "Camera", "Microphone"],
            "sensoryServiceAppVersion": "1.9.2.10155",
            "serialNumber": "EMULATED-MISTY-II",
            "sku": "MistyII",
            "windowsOSVersion": "10.0.17763.1577",
        }


EMULATOR = MistyEmulator
