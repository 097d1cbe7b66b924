"""Misty's orchestration: starts and stops the video WebSocket, the AV stream and the event WebSocket, and reboots.

Every decision is the backend's (``model.py``); this module performs the I/O each answer implies (bind or free
a port, close viewers, connect a push, close pubsub) and owns every stream and background task.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from emulators.kit.emulator import Emulator
from emulators.kit.outbound import EgressPolicy
from emulators.kit.tasks import TaskOwner
from emulators.misty.body import Body, Scheduled
from emulators.misty.help import Command
from emulators.misty.media import shoot_picture
from emulators.misty.model import (
    AV_STREAM,
    AvRequest,
    BadArgument,
    CommandException,
    Consequences,
    MistyBackend,
    PictureRequest,
    RobotReady,
    SpeechCaptureRequest,
    VideoParams,
    device_information,
)
from emulators.misty.pubsub import PubsubRegistry
from emulators.misty.pubsub_ws import STREAM_NAME as PUBSUB_STREAM
from emulators.misty.pubsub_ws import PubsubHub
from emulators.misty.scene import MistyScene
from emulators.misty.sensors import SensorSuite, misty_timestamp
from emulators.misty.video import STREAM_NAME as VIDEO_STREAM
from emulators.misty.video import VideoStream

if TYPE_CHECKING:
    from emulators.misty.av import AvStream


class MistyService:
    """What the REST API and the control plane call; one per emulator, surviving resets (the backend does not)."""

    def __init__(
        self,
        emulator: Emulator,
        *,
        make_backend: Callable[[int], MistyBackend],
        tasks: TaskOwner,
        egress: EgressPolicy,
        reboot_delay_s: float,
        sticky_subscriptions: bool,
        serial_number: str = "EMULATED-MISTY-II",
        av_audio: bool = True,
    ) -> None:
        self.emulator = emulator
        self.serial_number = serial_number
        self.av_audio = av_audio
        self.events = emulator.events
        self.clock = emulator.clock
        self.host = emulator.host
        self.make_backend = make_backend
        self.tasks = tasks
        self.egress = egress
        self.reboot_delay_s = reboot_delay_s
        self.backend = make_backend(emulator.seed)
        self.scene = MistyScene(emulator.seed)
        self.sensors = SensorSuite(seed=emulator.seed, booted_at=self.clock.now())
        self.body = Body(seed=emulator.seed)
        self.event_tasks = tasks.child("events")  # one-off events waiting for their time
        self.registry = PubsubRegistry(sticky=sticky_subscriptions)
        self.pubsub = PubsubHub(
            emulator,
            tasks=tasks.child("pubsub"),
            registry=self.registry,
            sensors=lambda: self.sensors,
            body=lambda: self.body,
            scene=lambda: self.scene,
            camera_on=lambda: self.backend.services["camera"],
            websocket_version=lambda: self.backend.websocket_version,
        )
        self.video_stream: VideoStream | None = None
        self.av_stream: AvStream | None = None
        self._av_watch: asyncio.Task[None] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # ----- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.backend.pubsub_open:
            self.pubsub.start()

    async def aclose(self) -> None:
        if self._restart is not None:
            self._restart.cancel()
            await asyncio.gather(self._restart, return_exceptions=True)
            self._restart = None
        await self.event_tasks.cancel_all()
        await self._close_video()
        await self._close_av()
        await self.pubsub.aclose()

    def reset(self, seed: int) -> None:
        """Boot state after ``aclose``: a fresh backend, scene and sensors from ``seed``."""
        self.backend = self.make_backend(seed)
        self.scene = MistyScene(seed)
        self.sensors = SensorSuite(seed=seed, booted_at=self.clock.now())
        self.body = Body(seed=seed)

    def snapshot(self) -> dict[str, Any]:
        out = self.backend.snapshot(self.clock.now())
        out["video_stream"] = None if self.video_stream is None else self.video_stream.snapshot()
        out["av_stream"] = None if self.av_stream is None else self.av_stream.snapshot()
        out["pubsub"] = self.registry.snapshot()
        out["body"] = self.body_snapshot()
        return out

    def live_streams(self) -> list[str]:
        """The streams running now: the video WebSocket, the AV stream and the event WebSocket's sources."""
        names = []
        if self.video_stream is not None:
            names.append(VIDEO_STREAM)
        if self.av_stream is not None:
            names.append(AV_STREAM)
        if self.pubsub.tasks.live:
            names.append(PUBSUB_STREAM)
        return names

    async def serve_pubsub(self, request: web.Request) -> web.StreamResponse:
        return await self.pubsub.serve(request)

    # ----- consequences -----------------------------------------------------------------------------------
    async def _apply(self, consequences: Consequences) -> None:
        """Perform what a backend decision implies, in the order a robot would: streams first, then pubsub."""
        if consequences.camera_flaked:
            self.events.record("fault.applied", quirk="camera_enable_flaky")
        if consequences.stop_video:
            await self._close_video()
        if consequences.stop_av:
            await self._close_av()
        if consequences.close_pubsub:
            await self.pubsub.aclose()
        if consequences.open_pubsub:
            self.pubsub.start()

    # ----- video WebSocket --------------------------------------------------------------------------------
    async def start_video(self, params: VideoParams) -> None:
        async with self._lock:
            self.backend.check_video_start(params)
            old, old_record = self.video_stream, self.backend.video
            if old is not None and old.port == params.port:
                # Same port: the old server must let go of it before the new one binds.
                await self._close_video()
                old, old_record = None, None
            record = self.backend.video_started(params, self.clock.now())
            stream = VideoStream(
                params,
                host=self.host,
                stream_id=record.stream_id,
                scene=self.scene,
                emulator=self.emulator,
                tasks=self.tasks.child(f"video-{record.stream_id}"),
                admit_viewer=self.backend.admit_viewer,
            )
            try:
                await stream.start()
            except BaseException as exc:  # the stream that was running (if any) goes on untouched
                self.backend.video_bind_failed(old_record)
                if not isinstance(exc, OSError):
                    raise
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
        self.backend.video_stopped()
        if stream is not None:
            await stream.aclose()

    # ----- AV streaming -----------------------------------------------------------------------------------
    async def start_av(self, request: AvRequest) -> None:
        # The AV machinery (RTSP server, push muxer) is loaded by the first AV stream, not when the robot starts.
        from emulators.misty.av import AvConnectError, AvStream

        async with self._lock:
            record = self.backend.av_started(request, self.clock.now())
            stream = AvStream(
                request,
                host=self.host,
                stream_id=record.stream_id,
                scene=self.scene,
                audio=self.av_audio,
                emulator=self.emulator,
                tasks=self.tasks.child(f"av-{record.stream_id}"),
                egress=self.egress,
            )
            try:
                await stream.start()
            except BaseException as exc:  # whatever stopped the start, the robot is idle again
                self.backend.av_failed()
                await stream.aclose()
                if isinstance(exc, AvConnectError):
                    raise CommandException(f"Cannot connect to {request.url}: {exc}") from None
                if isinstance(exc, OSError):
                    reason = exc.strerror or str(exc)
                    raise CommandException(f"Cannot serve RTSP on port {request.rtspd_port}: {reason}") from None
                raise
            self.backend.av_connected()
            self.av_stream = stream
            self._av_watch = self.tasks.spawn(self._watch_av(stream), name=f"av-watch-{record.stream_id}")

    async def _watch_av(self, stream: AvStream) -> None:
        """A push that breaks after start leaves the robot idle, with no retry."""
        reason = await stream.wait_failed()
        async with self._lock:
            if self.av_stream is stream:
                self.backend.av_failed()
                self.av_stream = None
                self._av_watch = None
                self.events.record("stream.error", stream=AV_STREAM, error=reason)  # after the state says idle
                await stream.aclose()

    async def stop_av(self) -> None:
        async with self._lock:
            await self._apply(self.backend.stop_av_command())

    async def _close_av(self) -> None:
        stream, self.av_stream = self.av_stream, None
        watch, self._av_watch = self._av_watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        self.backend.av_stopped()
        if stream is not None:
            await stream.aclose()

    # ----- services and reboot ----------------------------------------------------------------------------
    async def set_service(self, service: str, enable: bool) -> None:
        async with self._lock:
            await self._apply(self.backend.switch_service(service, enable))

    async def reboot(self, *, core: bool, sensory_services: bool) -> bool:
        """Reboot the parts asked for; False when neither was (nothing happens)."""
        async with self._lock:
            consequences = self.backend.reboot(
                core=core,
                sensory_services=sensory_services,
                now=self.clock.monotonic(),
                restart_s=self.clock.scaled(self.reboot_delay_s),
            )
            if consequences is None:
                return False
            self.events.record("robot.reboot", core=core, sensory_services=sensory_services)
            # What the sensory services were doing is gone: no completion events, the detector stopped.
            self.body.pending.clear()
            self.body.object_detector = None
            await self._apply(consequences)
            if self.backend.next_wakeup() is not None and (self._restart is None or self._restart.done()):
                self._restart = self.tasks.spawn(self._drive_restart(), name="restart")
            return True

    async def _drive_restart(self) -> None:
        """Sleep until the backend's next wakeup and advance it; a reboot meanwhile just moves the wakeup."""
        while (wakeup := self.backend.next_wakeup()) is not None:
            await asyncio.sleep(max(0.0, wakeup - self.clock.monotonic()))
            for change in self.backend.advance(self.clock.monotonic()):
                self._robot_ready(change)

    def _robot_ready(self, change: RobotReady) -> None:
        if change.open_pubsub:
            self.pubsub.start()
        self.events.record("robot.ready")

    # ----- pictures and information -----------------------------------------------------------------------
    async def take_picture(self, picture: PictureRequest) -> tuple[bytes, int, int]:
        """A JPEG of the scene at the requested size; the sensor is turned CW while encoding, so W/H swap."""
        self.backend.require_camera()
        stream_id = self.backend.take_stream_id()
        jpeg = await asyncio.to_thread(
            shoot_picture,
            self.scene,
            picture,
            stream_id=stream_id,
            t=self.clock.monotonic(),
            capture_ms=self.clock.now_ms(),
        )
        return jpeg, picture.height, picture.width

    def camera_details(self) -> dict[str, Any]:
        stats = self.emulator.pacing.get(VIDEO_STREAM)
        stream = self.video_stream
        return self.backend.camera_details(
            self.clock.now(),
            frames_encoded=0 if stream is None else stream.frames_encoded,
            dropped_frames=0 if stats is None else stats.skipped,
        )

    def battery_level(self) -> dict[str, Any]:
        return {**self.sensors.battery(self.clock.now()), "sensorName": "/Sensors/RTC/BatteryCharge"}

    def device_information(self) -> dict[str, Any]:
        return device_information(
            ip_address=self.host, battery=self.battery_level(), created=misty_timestamp(self.clock.now()),
            serial_number=self.serial_number,
        )

    # ----- the rest of the command surface ----------------------------------------------------------------
    async def run_command(self, command: Command, values: dict[str, Any]) -> Any:
        """A command without a handler of its own: the body's rules where it has them, else remembered state."""
        body, t = self.body, self.clock.monotonic()
        name = command.name
        if name in ("MoveHead", "MoveArms", "MoveArm"):
            {"MoveHead": body.move_head, "MoveArms": body.move_arms, "MoveArm": body.move_arm}[name](values, t)
        elif name in ("Drive", "DriveTime", "DriveArc", "DriveHeading", "DriveTrack", "Stop", "Halt"):
            locomotion = body.drive(name, values, t)
            self.pubsub.publish("LocomotionCommand", {**locomotion, "created": misty_timestamp(self.clock.now())})
        elif name == "Speak":
            self._schedule(body.speak(values, t))
        elif name == "PlayAudio":
            self._schedule(body.play_audio(values, t))
        elif name == "StartObjectDetector":
            self.backend.require_camera()
            body.start_object_detector(values)
        elif name == "StopObjectDetector":
            body.object_detector = None
        elif name == "GetAudioList":
            return body.audio_list()
        elif name == "GetAudioFile":
            return self._audio_file(values)
        else:
            return self.backend.remembered(command.name, command.verb, values)
        return True

    def capture_speech(self, request: SpeechCaptureRequest) -> None:
        """Speech capture holds the microphones for MaxSpeechLength; then VoiceRecord reports its recording."""
        self.backend.start_speech_capture(request, self.clock.now())
        seconds = request.max_speech_length_ms / 1000.0
        self._schedule(self.body.capture_speech(request.max_speech_length_ms, self.clock.monotonic() + seconds))

    def _audio_file(self, values: dict[str, Any]) -> Any:
        name = values.get("fileName")
        data = None if name is None else self.body.sound(name)
        if data is None:
            raise BadArgument(f"Cannot get audio file - no audio file named {name!r} on the robot (see GetAudioList).")
        if values.get("base64"):
            return {"base64": base64.b64encode(data).decode("ascii"), "contentType": "audio/wav", "name": name}
        return web.Response(body=data, content_type="audio/wav")

    def _schedule(self, event: Scheduled) -> None:
        """Fire a one-off event at its due time, unless the body cancelled it meanwhile."""

        async def fire_when_due() -> None:
            await asyncio.sleep(max(0.0, event.due - self.clock.monotonic()))
            fired = self.body.fire(event.key, self.clock.now())
            if fired is not None:
                self.pubsub.publish(*fired)

        self.event_tasks.spawn(fire_when_due(), name=f"event-{event.key}")

    def body_snapshot(self) -> dict[str, Any]:
        t = self.clock.monotonic()
        left, right, yaw = self.body.odometry(t)
        linear, angular = self.body.velocities(t)
        return {
            "actuators": {sensor_id: round(ramp.at(t), 3) for sensor_id, ramp in self.body.actuators.items()},
            "drive": {"left_m": round(left, 4), "right_m": round(right, 4), "yaw_deg": round(yaw, 3),
                      "linear_m_s": linear, "angular_deg_s": angular},
            "pending_events": sorted(self.body.pending),
            "object_detector": self.body.object_detector,
            "recordings": sorted(self.body.audio),
        }  # fmt: skip
