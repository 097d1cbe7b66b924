"""Reference client for a Misty II robot (or the benchtwin emulator): REST commands, video WebSocket, pubsub.

Method names follow the robot's Python API (``start_video_streaming``, ``start_av_streaming``, ...). Every
command returns a typed result or raises ``MistyError`` carrying the robot's own error text.

    async with MistyClient("10.0.0.7") as misty:
        await misty.start_video_streaming(port=5678, rotation=90, quality=60)
        async for jpeg in misty.video_frames(5678):
            ...
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp

from clients.http import SessionOwner

__all__ = [
    "BatteryLevel",
    "CameraDetails",
    "EventCondition",
    "MistyClient",
    "MistyError",
    "MistyEvent",
    "Picture",
]

REGISTERED = "Registration Status: API event registered."


class MistyError(Exception):
    """A command the robot answered with ``"status": "Failed"`` (or a non-2xx code)."""

    def __init__(self, command: str, status: int, error: str) -> None:
        super().__init__(f"{command}: HTTP {status}: {error}")
        self.command = command
        self.status = status
        self.error = error


@dataclass(frozen=True)
class CameraDetails:
    width: float
    height: float
    fps_requested: float
    fps_actual: float
    dropped_frames: int


@dataclass(frozen=True)
class BatteryLevel:
    charge_percent: float | None
    voltage: float
    is_charging: bool
    state: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class Picture:
    jpeg: bytes
    width: int | None = None
    height: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class EventCondition:
    """One pubsub filter, e.g. ``EventCondition("SensorId", "=", "toffc")``."""

    property: str
    inequality: str
    value: Any = None

    def as_wire(self) -> dict[str, Any]:
        return {"Property": self.property, "Inequality": self.inequality, "Value": self.value}


@dataclass(frozen=True)
class MistyEvent:
    event_name: str
    message: Any
    type: str | None = None


def _base_url(host_port: str) -> str:
    if "://" not in host_port:
        host_port = f"http://{host_port}"
    parts = urlsplit(host_port)
    return f"{parts.scheme}://{parts.netloc}"


class MistyClient(SessionOwner):
    """An async client for one robot at ``host[:port]`` (the robot itself listens on port 80)."""

    def __init__(self, host_port: str, *, session: aiohttp.ClientSession | None = None, timeout_s: float = 10.0):
        super().__init__(session, timeout=aiohttp.ClientTimeout(total=timeout_s))
        self.base_url = _base_url(host_port)
        self.host = urlsplit(self.base_url).hostname or "127.0.0.1"

    # ----- plumbing ---------------------------------------------------------------------------------------
    async def request(self, method: str, endpoint: str, args: Mapping[str, Any] | None = None) -> Any:
        """Call ``/api/<endpoint>``; returns ``result`` or raises MistyError with the robot's ``error``."""
        body = {k: v for k, v in (args or {}).items() if v is not None}
        url = f"{self.base_url}/api/{endpoint}"
        kwargs: dict[str, Any] = {}
        if method == "GET":
            kwargs["params"] = {k: _query_value(v) for k, v in body.items()}
        elif body:
            kwargs["json"] = body
        async with self.session.request(method, url, **kwargs) as resp:
            raw = await resp.read()
            content_type = resp.headers.get("Content-Type", "")
            if content_type.startswith("image/"):
                if resp.status >= 400:
                    raise MistyError(endpoint, resp.status, raw.decode(errors="replace"))
                return raw
            try:
                payload = json.loads(raw) if raw else {}
            except ValueError:
                raise MistyError(endpoint, resp.status, raw.decode(errors="replace")[:500]) from None
            if resp.status >= 400 or (isinstance(payload, dict) and payload.get("status") == "Failed"):
                error = payload.get("error") if isinstance(payload, dict) else None
                raise MistyError(endpoint, resp.status, str(error or payload))
            return payload.get("result") if isinstance(payload, dict) else payload

    async def _command(self, endpoint: str, args: Mapping[str, Any] | None = None) -> bool:
        return bool(await self.request("POST", endpoint, args))

    # ----- video WebSocket --------------------------------------------------------------------------------
    async def start_video_streaming(
        self,
        port: int = 5678,
        rotation: int | None = None,
        width: int | None = None,
        height: int | None = None,
        quality: int | None = None,
        overlay: bool | None = None,
    ) -> bool:
        return await self._command(
            "videostreaming/start",
            {
                "Port": port,
                "Rotation": rotation,
                "Width": width,
                "Height": height,
                "Quality": quality,
                "Overlay": overlay,
            },
        )

    async def stop_video_streaming(self) -> bool:
        return await self._command("videostreaming/stop")

    async def video_frames(self, port: int = 5678, *, host: str | None = None) -> AsyncIterator[bytes]:
        """Each JPEG the robot sends on ``ws://<host>:<port>``; ends when the robot closes the socket."""
        url = f"ws://{host or self.host}:{port}/"
        async with self.session.ws_connect(url, autoping=True, max_msg_size=16 << 20) as ws:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    yield msg.data
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return

    # ----- AV streaming -----------------------------------------------------------------------------------
    async def start_av_streaming(
        self,
        url: str,
        width: int | None = None,
        height: int | None = None,
        frame_rate: int | None = None,
        video_bit_rate: int | None = None,
        audio_bit_rate: int | None = None,
        audio_sample_rate_hz: int | None = None,
        user_name: str | None = None,
        password: str | None = None,
    ) -> bool:
        return await self._command(
            "avstreaming/start",
            {
                "URL": url,
                "Width": width,
                "Height": height,
                "FrameRate": frame_rate,
                "VideoBitRate": video_bit_rate,
                "AudioBitRate": audio_bit_rate,
                "AudioSampleRateHz": audio_sample_rate_hz,
                "UserName": user_name,
                "Password": password,
            },
        )

    async def stop_av_streaming(self) -> bool:
        return await self._command("avstreaming/stop")

    # ----- services ---------------------------------------------------------------------------------------
    async def enable_av_streaming_service(self) -> bool:
        return await self._command("services/avstreaming/enable")

    async def disable_av_streaming_service(self) -> bool:
        return await self._command("services/avstreaming/disable")

    async def av_streaming_service_enabled(self) -> bool:
        return bool(await self.request("GET", "services/avstreaming"))

    async def enable_camera_service(self) -> bool:
        return await self._command("services/camera/enable")

    async def disable_camera_service(self) -> bool:
        return await self._command("services/camera/disable")

    async def camera_service_enabled(self) -> bool:
        return bool(await self.request("GET", "services/camera"))

    async def enable_audio_service(self) -> bool:
        return await self._command("services/audio/enable")

    async def disable_audio_service(self) -> bool:
        return await self._command("services/audio/disable")

    async def audio_service_enabled(self) -> bool:
        return bool(await self.request("GET", "services/audio"))

    # ----- information ------------------------------------------------------------------------------------
    async def get_help(self, command: str | None = None) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", "help", {"command": command}))

    async def get_device_information(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", "device"))

    async def get_battery_level(self) -> BatteryLevel:
        raw = await self.request("GET", "battery")
        return BatteryLevel(
            charge_percent=raw.get("chargePercent"),
            voltage=float(raw.get("voltage", 0.0)),
            is_charging=bool(raw.get("isCharging")),
            state=str(raw.get("state")),
            raw=raw,
        )

    async def get_camera_details(self) -> CameraDetails:
        raw = await self.request("GET", "camera")
        return CameraDetails(
            width=float(raw["width"]),
            height=float(raw["height"]),
            fps_requested=float(raw["fpsRequested"]),
            fps_actual=float(raw["fpsActual"]),
            dropped_frames=int(raw["droppedFrames"]),
        )

    async def get_websocket_names(self, websocket_class: str | None = None) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self.request("GET", "websockets", {"websocketClass": websocket_class}))

    async def take_picture(
        self, width: int | None = None, height: int | None = None, *, base64: bool = False, file_name: str | None = None
    ) -> Picture:
        import base64 as b64

        result = await self.request(
            "GET", "cameras/rgb", {"Width": width, "Height": height, "Base64": base64, "FileName": file_name}
        )
        if isinstance(result, bytes):
            return Picture(jpeg=result)
        return Picture(
            jpeg=b64.b64decode(result["base64"]), width=result["width"], height=result["height"], name=result["name"]
        )

    async def reboot(self, core: bool = False, sensory_services: bool = True) -> bool:
        return await self._command("reboot", {"Core": core, "SensoryServices": sensory_services})

    # ----- body and voice ---------------------------------------------------------------------------------
    async def move_head(
        self,
        pitch: float | None = None,
        roll: float | None = None,
        yaw: float | None = None,
        *,
        velocity: float | None = None,
        duration: float | None = None,
        units: str | None = None,
    ) -> bool:
        args = {"Pitch": pitch, "Roll": roll, "Yaw": yaw, "Velocity": velocity, "Duration": duration, "Units": units}
        return await self._command("head", args)

    async def move_arms(
        self,
        left: float | None = None,
        right: float | None = None,
        *,
        duration: float | None = None,
        units: str | None = None,
    ) -> bool:
        args = {"LeftArmPosition": left, "RightArmPosition": right, "Duration": duration, "Units": units}
        return await self._command("arms/set", args)

    async def drive(self, linear_velocity: float, angular_velocity: float, time_ms: int | None = None) -> bool:
        """Drive (until the next drive command) or, with ``time_ms``, DriveTime; velocities in % (-100..100)."""
        args = {"LinearVelocity": linear_velocity, "AngularVelocity": angular_velocity, "TimeMs": time_ms}
        return await self._command("drive" if time_ms is None else "drive/time", args)

    async def stop(self) -> bool:
        return await self._command("drive/stop")

    async def speak(self, text: str, *, utterance_id: str | None = None, flush: bool | None = None) -> bool:
        return await self._command("tts/speak", {"Text": text, "UtteranceId": utterance_id, "Flush": flush})

    async def play_audio(self, file_name: str, volume: int | None = None) -> bool:
        return await self._command("audio/play", {"FileName": file_name, "Volume": volume})

    async def get_audio_list(self) -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = await self.request("GET", "audio/list")
        return files

    # ----- pubsub -----------------------------------------------------------------------------------------
    async def subscribe(
        self,
        event_type: str,
        event_name: str | None = None,
        *,
        debounce_ms: int | None = None,
        conditions: Sequence[EventCondition] = (),
        return_property: str | None = None,
    ) -> AsyncIterator[MistyEvent]:
        """Events of ``event_type`` over ``/pubsub``; raises MistyError when the robot refuses the registration."""
        name = event_name or f"{event_type}-{random.randrange(10**9)}"
        message: dict[str, Any] = {"Operation": "subscribe", "Type": event_type, "EventName": name}
        if debounce_ms is not None:
            message["DebounceMs"] = debounce_ms
        if conditions:
            message["EventConditions"] = [c.as_wire() for c in conditions]
        if return_property is not None:
            message["ReturnProperty"] = return_property
        ws_url = self.base_url.replace("http", "ws", 1) + "/pubsub"
        async with self.session.ws_connect(ws_url, autoping=True) as ws:
            await ws.send_str(json.dumps(message))
            reply = await ws.receive()
            if reply.type != aiohttp.WSMsgType.TEXT:
                raise MistyError("pubsub", 0, f"no registration reply (got {reply.type.name})")
            registration = json.loads(reply.data)
            if registration.get("message") != REGISTERED:
                raise MistyError("pubsub", 0, str(registration.get("message")))
            try:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    data = json.loads(msg.data)
                    yield MistyEvent(
                        event_name=data.get("eventName", name), message=data.get("message"), type=data.get("type")
                    )
            finally:
                if not ws.closed:
                    await ws.send_str(json.dumps({"Operation": "unsubscribe", "EventName": name}))


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
