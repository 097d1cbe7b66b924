"""Misty's REST surface: /api routes, the success/failure envelopes, headers on every response, error mapping.

Handlers bind arguments (args.py), ask the service (service.py) or the backend (model.py), and render the
envelope. Domain errors are mapped to HTTP here, once (``_misty_middleware``).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from emulators.kit.emulator import kit_path
from emulators.kit.errors import FieldError
from emulators.misty.args import ArgumentError, Arguments, bind_arguments, validate_arguments
from emulators.misty.help import BY_NAME, COMMANDS, Command, help_catalogue, websocket_classes
from emulators.misty.model import (
    SERVICES,
    AvRequest,
    BadArgument,
    CommandException,
    CommandNotFound,
    MistyBackend,
    MistyError,
    PictureRequest,
    SpeechCaptureRequest,
    VideoParams,
    boolean_argument,
    recording_file_name,
    string_argument,
)
from emulators.misty.sensors import nested_properties
from emulators.misty.service import MistyService

log = logging.getLogger("benchtwin.misty")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "DELETE,GET,OPTIONS,POST,PUT",
}

Handler = Callable[[Arguments], Awaitable[Any]]


def command_version(path: str) -> str:
    """Misty-Command-Version per endpoint (misty.md §2.1): Alpha, Beta or Current."""
    p = path.lower()
    if p.startswith("/api/videostreaming/"):
        return "Alpha"
    if p.startswith(("/api/avstreaming/", "/api/services/avstreaming", "/api/audio/speech/capture")):
        return "Beta"
    return "Current"


def success(result: Any = True, status: int = 200) -> web.Response:
    return web.json_response({"result": result, "status": "Success"}, status=status)


async def render(result: Any) -> web.StreamResponse:
    """A handler's result in the success envelope; a ready response (a file's bytes) goes out as it is."""
    if isinstance(result, web.StreamResponse):
        return result
    return success(result)


def failure(error: MistyError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


def _decorate(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    if response.prepared:
        return response
    response.headers["Misty-Command-Version"] = command_version(request.path)
    response.headers.update(CORS_HEADERS)
    return response


class MistyApi:
    """Routes of the robot's REST API, bound to one ``MistyService`` (and, through it, the current backend)."""

    def __init__(self, service: MistyService) -> None:
        self.service = service

    @property
    def robot(self) -> MistyBackend:
        """The backend of the current boot (a control-plane reset replaces it)."""
        return self.service.backend

    # ----- wiring -----------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._misty_middleware)
        r = app.router
        get, post = "GET", "POST"
        routes: list[tuple[str, str, Handler]] = [
            (get, "help", self.get_help),
            (get, "device", self.get_device),
            (get, "battery", self.get_battery),
            (get, "camera", self.get_camera),
            (get, "websockets", self.get_websockets),
            (get, "websocket/version", self.get_websocket_version),
            (post, "websocket/version", self.set_websocket_version),
            (post, "reboot", self.reboot),
            (post, "videostreaming/start", self.start_video_streaming),
            (post, "videostreaming/stop", self.stop_video_streaming),
            (post, "avstreaming/start", self.start_av_streaming),
            (post, "avstreaming/stop", self.stop_av_streaming),
            (post, "slam/streaming/start", self._slam_streaming(True)),
            (post, "slam/streaming/stop", self._slam_streaming(False)),
            (post, "videos/recordings/start", self._camera_activity("video_recording", True)),
            (post, "videos/recordings/stop", self._camera_activity("video_recording", False)),
            (post, "video/record/start", self._camera_activity("video_recording", True)),
            (post, "video/record/stop", self._camera_activity("video_recording", False)),
            (post, "faces/detection/start", self._camera_activity("face_detection", True)),
            (post, "faces/detection/stop", self._camera_activity("face_detection", False)),
            (post, "faces/recognition/start", self._camera_activity("face_recognition", True)),
            (post, "faces/recognition/stop", self._camera_activity("face_recognition", False)),
            (post, "audio/record/start", self.start_recording_audio),
            (post, "audio/record/stop", self._mic_stop("recording")),
            (post, "audio/raw/record/start", self.start_raw_recording),
            (post, "audio/raw/record/stop", self._mic_stop("raw")),
            (post, "audio/keyphrase/start", self.start_keyphrase),
            (post, "audio/keyphrase/stop", self._mic_stop("keyphrase")),
            (post, "audio/keyphrase/vosk/start", self.start_keyphrase),
            (post, "audio/keyphrase/vosk/stop", self._mic_stop("keyphrase")),
        ]
        for variant in ("", "azure", "google", "vosk"):
            routes.append((post, f"audio/speech/capture{variant}", self.capture_speech))
        for service in SERVICES:
            routes.append((get, f"services/{service}", self._service_status(service)))
            routes.append((post, f"services/{service}/enable", self._service_switch(service, True)))
            routes.append((post, f"services/{service}/disable", self._service_switch(service, False)))
        explicit = {(method, path): handler for method, path, handler in routes}
        # Every command of the table: its own handler where the emulator has one, else the service's model.
        for command in COMMANDS:
            if command.name == "TakePicture":
                continue  # answers JPEG bytes or JSON, routed below
            key = (command.verb.upper(), command.endpoint)
            r.add_route(key[0], f"/api/{command.endpoint}", self._command(explicit.pop(key, None), command))
        # Commands of other firmware versions the emulator keeps answering; /api/help does not list them.
        for (method, path), handler in explicit.items():
            r.add_route(method, f"/api/{path}", self._command(handler, None))
        r.add_get("/api/cameras/rgb", self.take_picture)
        r.add_get("/pubsub", self.service.serve_pubsub)

    def _command(
        self, handler: Handler | None, command: Command | None
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A route: bind and log the call, then run its own handler or, without one, the service's model of
        the command (given the values already validated for the log)."""
        assert handler is not None or command is not None
        arguments = () if command is None else command.arguments
        name = command.name if command is not None else None

        async def run(request: web.Request) -> web.StreamResponse:
            args = await self._bind(request)
            values = self._log(name or request.path.removeprefix("/api/"), arguments, args)
            if handler is None:
                assert command is not None
                return await render(await self.service.run_command(command, values))
            return await render(await handler(args))

        return run

    def _log(self, name: str, arguments: tuple[tuple[str, str], ...], args: Arguments) -> dict[str, Any]:
        """Validate a call's declared arguments and record it, as the app sent it, so a test can assert what
        an app told the robot; the validated values."""
        try:
            values = validate_arguments(arguments, args)
        except ArgumentError as exc:
            raise BadArgument(exc.message) from None
        self.service.events.record(
            "command", command=name, arguments={k: v for k, v in values.items() if v is not None}
        )
        return values

    @staticmethod
    async def _bind(request: web.Request) -> Arguments:
        try:
            return bind_arguments(request.query.items(), await request.read())
        except ArgumentError as exc:
            raise BadArgument(exc.message) from None

    @web.middleware
    async def _misty_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if kit_path(request.path):
            return await handler(request)
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=200)
            response.headers["Access-Control-Allow-Headers"] = "*"
            return _decorate(request, response)
        try:
            self.robot.require_ready()
            response = await handler(request)
        except MistyError as exc:
            response = failure(exc)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            # The robot knows no 405: an unknown verb is as unknown as an unknown path.
            response = failure(CommandNotFound(f"Command not found: {request.method} {request.path}"))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
            if request.path == "/pubsub":
                message = "The event WebSocket needs a WebSocket upgrade: open ws://<robot>/pubsub."
            response = failure(MistyError(message, status=exc.status))
        except Exception as exc:  # a bug must still answer in the robot's shape, and be logged
            log.exception("misty: %s %s failed", request.method, request.path)
            response = failure(CommandException(f"Exception: {type(exc).__name__}: {exc}"))
        return _decorate(request, response)

    # ----- information ------------------------------------------------------------------------------------
    async def get_help(self, args: Arguments) -> Any:
        return help_catalogue(string_argument(args, "command"))

    async def get_device(self, args: Arguments) -> Any:
        return self.service.device_information()

    async def get_battery(self, args: Arguments) -> Any:
        return self.service.battery_level()

    async def get_camera(self, args: Arguments) -> Any:
        return self.service.camera_details()

    async def get_websockets(self, args: Arguments) -> Any:
        classes = websocket_classes(string_argument(args, "websocketClass"))
        return [{"class": c, "nestedProperties": nested_properties().get(c, [])} for c in classes]

    async def get_websocket_version(self, args: Arguments) -> Any:
        return self.robot.websocket_version

    async def set_websocket_version(self, args: Arguments) -> Any:
        self.robot.set_websocket_version(string_argument(args, "Version"))
        return True

    async def reboot(self, args: Arguments) -> Any:
        core = boolean_argument(args, "Core", False)
        sensory = boolean_argument(args, "SensoryServices", False)
        await self.service.reboot(core=core, sensory_services=sensory)
        return True

    async def scenario_reboot(self, body: dict[str, Any]) -> dict[str, Any]:
        """The control plane's ``reboot`` scenario: {"core", "sensory_services" (default true)}."""
        flags = {}
        for key in ("core", "sensory_services"):
            value = body.get(key, key == "sensory_services")
            if not isinstance(value, bool):
                raise FieldError(key, f"must be true or false, got {value!r}")
            flags[key] = value
        unknown = set(body) - set(flags)
        if unknown:
            raise FieldError(sorted(unknown)[0], "is not a reboot option; allowed: core, sensory_services")
        rebooted = await self.service.reboot(core=flags["core"], sensory_services=flags["sensory_services"])
        return {"rebooted": rebooted, **flags, "restarting": self.robot.restarting}

    # ----- streaming --------------------------------------------------------------------------------------
    async def start_video_streaming(self, args: Arguments) -> Any:
        await self.service.start_video(VideoParams.from_arguments(args))
        return True

    async def stop_video_streaming(self, args: Arguments) -> Any:
        await self.service.stop_video()
        return True

    async def start_av_streaming(self, args: Arguments) -> Any:
        await self.service.start_av(AvRequest.from_arguments(args))
        return True

    async def stop_av_streaming(self, args: Arguments) -> Any:
        await self.service.stop_av()
        return True

    # ----- services ---------------------------------------------------------------------------------------
    def _service_status(self, service: str) -> Handler:
        async def status(args: Arguments) -> Any:
            return self.robot.service_enabled(service)

        return status

    def _service_switch(self, service: str, enable: bool) -> Handler:
        async def switch(args: Arguments) -> Any:
            await self.service.set_service(service, enable)
            return True

        return switch

    def _slam_streaming(self, running: bool) -> Handler:
        async def slam(args: Arguments) -> Any:
            self.robot.slam_streaming = running
            return True

        return slam

    # ----- camera -----------------------------------------------------------------------------------------
    def _camera_activity(self, activity: str, running: bool) -> Handler:
        async def activity_switch(args: Arguments) -> Any:
            self.robot.set_camera_activity(activity, running)
            return True

        return activity_switch

    async def take_picture(self, request: web.Request) -> web.StreamResponse:
        args = await self._bind(request)
        self._log("TakePicture", BY_NAME["TakePicture"].arguments, args)
        picture = PictureRequest.from_arguments(args)
        jpeg, width, height = await self.service.take_picture(picture)
        if not picture.base64:
            return web.Response(body=jpeg, content_type="image/jpeg")
        return success(
            {
                "base64": base64.b64encode(jpeg).decode("ascii"),
                "contentType": "image/jpeg",
                "height": height,
                "name": picture.file_name or "photo",
                "width": width,
            }
        )

    # ----- microphones ------------------------------------------------------------------------------------
    async def start_recording_audio(self, args: Arguments) -> Any:
        self.robot.start_recording(recording_file_name(args))
        return True

    async def start_raw_recording(self, args: Arguments) -> Any:
        self.robot.start_raw_recording()
        return True

    async def capture_speech(self, args: Arguments) -> Any:
        self.service.capture_speech(SpeechCaptureRequest.from_arguments(args))
        return True

    async def start_keyphrase(self, args: Arguments) -> Any:
        self.robot.start_keyphrase()
        return True

    def _mic_stop(self, which: str) -> Handler:
        async def stop(args: Arguments) -> Any:
            robot = self.robot
            {"recording": robot.stop_recording, "raw": robot.stop_raw_recording, "keyphrase": robot.stop_keyphrase}[
                which
            ]()
            return True

        return stop

