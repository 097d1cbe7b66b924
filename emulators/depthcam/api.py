"""The Robopipe API over aiohttp: parse each camera, stream and controller request, call the service, render.

Requests are routed by ``routing`` (Starlette's rules); parameters are validated in FastAPI's order with the
pydantic models of ``schemas``; domain errors from the backend become Robopipe replies in ``refusal``, once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from emulators.depthcam import media, request_errors
from emulators.depthcam.camera import NeuralNetwork
from emulators.depthcam.controller import DEVICE_TYPES
from emulators.depthcam.errors import DepthCamError, ServerCrash
from emulators.depthcam.hardware import MXID_PATTERN, STILL_FORMATS, STREAM_NAME_PATTERN
from emulators.depthcam.model import DepthcamBackend
from emulators.depthcam.routing import (
    DEVICE_TYPE_PATTERN,
    Matched,
    MethodNotAllowed,
    NotFound,
    Redirect,
    Route,
    Router,
    WebSocketRefused,
)
from emulators.depthcam.service import DepthcamService
from emulators.kit.emulator import CONTROL_PREFIX
from emulators.kit.errors import FieldError
from emulators.kit.websocket import MaskedWebSocketResponse
from emulators.kit.yaml_text import load_yaml

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]
Operation = Callable[[str, str, Any], Awaitable[web.StreamResponse]]
NN_TYPES = ("YOLO", "MobileNet", "Generic")
CORS_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "openapi" / "depthcam.yaml"


def _load_contract() -> Any:
    return load_yaml(CONTRACT.read_text()) if CONTRACT.is_file() else None


def json_body_response(body: bytes) -> web.Response:
    """An already-serialized JSON body, with the same Content-Type ``web.json_response`` sends."""
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def null_response(status: int) -> web.Response:
    return web.Response(status=status, body=b"null", content_type="application/json")


def validation_error(errors: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"detail": errors}, status=422)


def internal_error() -> web.Response:
    return web.Response(status=500, text="Internal Server Error", content_type="text/plain")


class RequestInvalid(DepthCamError):
    """Request validation errors collected in FastAPI's order: one 422 with every item."""

    status = 422

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("request validation failed")
        self.errors = errors


def refusal(exc: DepthCamError) -> web.Response:
    """A domain error as the Robopipe server answers it: 404 ``null``, a 422 naming the field, or uvicorn's 500."""
    if isinstance(exc, RequestInvalid):
        return validation_error(exc.errors)
    if exc.status == 404:
        return null_response(404)
    if exc.status == 422:
        return validation_error([request_errors.value_error(list(exc.loc), exc.message, exc.input)])
    return internal_error()


class RobopipeApi:
    def __init__(
        self,
        backend: DepthcamBackend,
        service: DepthcamService,
        *,
        camera_name: bool,
        stream_list_form: str,
        cors_origins: str,
    ) -> None:
        self.backend = backend
        self.service = service
        self.camera_name = camera_name
        self.stream_list_form = stream_list_form
        self.cors_origins = [o.strip() for o in cors_origins.split(",") if o.strip()]
        self.router: Router[Handler] = Router(self._routes(), allow_first_method_only=backend.server_main)
        # (mxid, stream) -> (control snapshot, its JSON): a control is serialized once per change, not per GET.
        self._control_bodies: dict[tuple[str, str], tuple[dict[str, Any], bytes]] = {}
        # (list form, ((stream, active), ...)) -> the stream list's JSON.
        self._stream_list_bodies: dict[tuple[str, tuple[tuple[str, bool], ...]], bytes] = {}

    def install(self, app: web.Application) -> None:
        # [\s\S] rather than '.': decoded paths may contain newlines, which must still reach our router.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.dispatch)

    # ----- routing ----------------------------------------------------------------------------------------
    def _routes(self) -> list[Route[Handler]]:
        stream = "/cameras/{mxid}/streams/{stream_name}"
        routes: list[Route[Handler]] = [
            Route("/", {"GET": self.hello}),
            Route("/openapi.json", {"GET": self.openapi}),
            Route("/docs", {"GET": self.docs}),
            Route("/cameras/", {"GET": self.list_cameras}),
            Route(
                "/cameras/{mxid}/", {"GET": self.get_camera, "POST": self.create_camera, "DELETE": self.delete_camera}
            ),
            Route("/cameras/{mxid}/stats", {"GET": self.camera_stats}),
            Route("/cameras/{mxid}/ir", {"GET": self.get_ir, "POST": self.set_ir}),
            Route("/cameras/{mxid}/streams/", {"GET": self.list_streams}),
            Route(f"{stream}/", {"POST": self.activate_stream, "DELETE": self.deactivate_stream}),
            Route(f"{stream}/config", {"GET": self.get_config, "POST": self.set_config}),
            Route(f"{stream}/control", {"GET": self.get_control, "POST": self.set_control}),
            Route(f"{stream}/still", {"GET": self.capture_still}),
            Route(f"{stream}/nn", {"POST": self.deploy_nn, "DELETE": self.delete_nn}, websocket=self.nn_socket),
            Route(f"{stream}/video", {}, websocket=self.video_socket),
            Route("/controller/", {"GET": self.list_all_circuits}),
        ]
        # The typed controller routes come before /controller/{device_type}, which would otherwise shadow them.
        for device_type in DEVICE_TYPES:
            routes.append(
                Route(
                    f"/controller/{device_type}",
                    {
                        "GET": self._typed(self.list_circuits, device_type),
                        "POST": self._typed(self.set_all_circuits, device_type),
                    },
                )
            )
            routes.append(
                Route(
                    f"/controller/{device_type}/{{circuit}}",
                    {
                        "GET": self._typed(self.get_circuit, device_type),
                        "POST": self._typed(self.set_circuit, device_type),
                    },
                )
            )
        # Main declares this route with Starlette's int convertor: only digits reach it (and fail its pattern).
        listing = "/controller/{device_type:int}" if self.backend.server_main else "/controller/{device_type}"
        routes.append(Route(listing, {"GET": self.list_device_type}))
        return routes

    @staticmethod
    def _typed(handler: Callable[[web.Request, dict[str, str], str], Awaitable[web.StreamResponse]], t: str) -> Handler:
        async def bound(request: web.Request, params: dict[str, str]) -> web.StreamResponse:
            return await handler(request, params, t)

        return bound

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith(CONTROL_PREFIX + "/") or path == CONTROL_PREFIX:
            return web.json_response({"detail": "Not Found"}, status=404)
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
            return self._preflight(request, origin)
        cors = True
        try:
            response = await self._route(request, path)
        except DepthCamError as exc:
            response = refusal(exc)
            if self.backend.server_main and (exc.status == 404 or response.status == 500):
                # Main's global handler answers (404 null) or fails (500), then re-raises: uvicorn drops the
                # connection after the reply. That handler sits outside the CORS middleware: no CORS headers.
                response.force_close()
                cors = False
        except request_errors.JsonInvalid as exc:
            response = validation_error(exc.errors)
        except request_errors.BodyUnparsable:
            response = web.json_response({"detail": request_errors.BODY_PARSE_ERROR}, status=400)
        if origin and cors and not response.prepared:
            self._cors_headers(request, response, origin)
        return response

    async def _route(self, request: web.Request, path: str) -> web.StreamResponse:
        is_websocket = request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"
        match self.router.resolve(request.method, path, websocket=is_websocket):
            case Matched(handler=handler, params=params):
                return await handler(request, params)
            case MethodNotAllowed(allow=allow):
                return web.json_response({"detail": "Method Not Allowed"}, status=405, headers={"Allow": allow})
            case Redirect(path=toggled):
                location = str(request.url.with_path(toggled).with_query(None))
                if request.query_string:
                    location += "?" + request.query_string
                return web.Response(status=307, headers={"Location": location})
            case WebSocketRefused():
                return web.Response(status=403)  # Starlette refuses an unrouted WebSocket handshake
            case NotFound():
                return web.json_response({"detail": "Not Found"}, status=404)
        raise AssertionError("unreachable: every resolution is handled above")

    def _allowed_origin(self, origin: str) -> str | None:
        if "*" in self.cors_origins or origin in self.cors_origins:
            return origin
        return None

    def _cors_headers(self, request: web.Request, response: web.StreamResponse, origin: str) -> None:
        allowed = self._allowed_origin(origin)
        if allowed is None:
            return
        if self.backend.server_main and "*" in self.cors_origins and "Cookie" not in request.headers:
            # Starlette answers a simple request with "*" when every origin is allowed (the origin only with
            # a cookie), whatever allow_credentials says.
            response.headers["Access-Control-Allow-Origin"] = "*"
            response.headers["Access-Control-Allow-Credentials"] = "true"
            return
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"

    def _preflight(self, request: web.Request, origin: str) -> web.Response:
        if self._allowed_origin(origin) is None:
            return web.Response(status=400, text="Disallowed CORS origin", content_type="text/plain")
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
        requested = request.headers.get("Access-Control-Request-Headers")
        if requested:
            headers["Access-Control-Allow-Headers"] = requested
        return web.Response(status=200, text="OK", content_type="text/plain", headers=headers)

    # ----- shared parameter handling ----------------------------------------------------------------------
    def _camera_or_errors(self, params: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
        """FastAPI order: a bad mxid is collected; a well-formed unknown one is 404 before anything else.

        Returns the collected errors and whether the mxid names an open camera; raises CameraNotFound.
        """
        error = request_errors.pattern_error("path", "mxid", params["mxid"], MXID_PATTERN)
        if error is not None:
            return [error], False
        self.backend.camera(params["mxid"])
        return [], True

    def _camera_checked(self, params: dict[str, str]) -> str:
        """The mxid of a body-less operation's open camera; raises the refusal (404, or the collected 422)."""
        errors, _ = self._camera_or_errors(params)
        if errors:
            raise RequestInvalid(errors)
        return params["mxid"]

    async def _stream_operation(
        self,
        request: web.Request,
        params: dict[str, str],
        operation: Operation,
        *,
        body: Any = None,
        need_active: bool = True,
        query_check: Callable[[web.Request], list[dict[str, Any]]] | None = None,
    ) -> web.StreamResponse:
        """Validate mxid, stream_name, query and body in FastAPI's order, then run ``operation`` under the lock."""
        raw = await request.read() if body is not None else b""
        content_type = request.headers.get("Content-Type")
        # Main reads the JSON body before any dependency: a syntax error or unreadable bytes answer first.
        main_body = body is not None and self.backend.server_main
        if body is not None:
            from emulators.depthcam import schemas, server_bodies  # with pydantic, at the first body
        data = server_bodies.parse_json_body(raw, content_type) if main_body else None
        errors, known = self._camera_or_errors(params)
        stream = params["stream_name"]
        stream_error = request_errors.pattern_error("path", "stream_name", stream, STREAM_NAME_PATTERN)
        if stream_error is not None:
            errors.append(stream_error)
        if query_check is not None:
            errors.extend(query_check(request))
        value = None
        if body is not None and self.backend.server_main:
            value, body_errors = server_bodies.validate(body, data)
        elif body is not None:
            value, body_errors = schemas.validate_body(body, raw, content_type)
        else:
            body_errors = []
        if not known or stream_error is not None:
            return validation_error(errors + body_errors)
        mxid = params["mxid"]
        async with self.service.camera_lock(mxid):
            if need_active:
                self.backend.require_active(mxid, stream)
            errors.extend(body_errors)
            if errors:
                return validation_error(errors)
            return await operation(mxid, stream, value)

    # ----- misc -------------------------------------------------------------------------------------------
    async def hello(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if self.backend.server_main:
            return web.Response(text="Hello from Robopipe API!", content_type="text/plain")
        return web.json_response("Hello from Robopipe API!")

    async def openapi(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        # Our own contract of the same wire (the vendor's document is not shipped with the project).
        document = await asyncio.to_thread(_load_contract)
        if document is None:
            return web.json_response({"detail": "Not Found"}, status=404)
        return web.json_response(document)

    async def docs(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        page = (
            "<!doctype html><html><head><title>Robopipe API</title></head><body>"
            '<p>Robopipe API (emulated). The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</p>'
            "</body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    # ----- cameras ----------------------------------------------------------------------------------------
    def device_info(self, mxid: str) -> dict[str, Any]:
        spec = self.backend.cameras[mxid].spec
        info = {"mxid": spec.mxid, "name": spec.name}
        if self.camera_name or self.backend.server_main:
            info["camera_name"] = spec.model  # main's DeviceInfo has it (the device's name, e.g. OAK-D)
        info.update(
            platform=spec.platform,
            protocol=spec.protocol,
            state=self.backend.device_state(mxid),
            status="X_LINK_SUCCESS",
        )
        return info

    async def list_cameras(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return web.json_response([self.device_info(camera.mxid) for camera in self.backend.open_cameras()])

    async def get_camera(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return web.json_response(self.device_info(self._camera_checked(params)))

    async def create_camera(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        """Re-boot a configured camera (also one that was deleted): boot stream state after a restart."""
        error = request_errors.pattern_error("path", "mxid", params["mxid"], MXID_PATTERN)
        if error is not None:
            return validation_error([error])
        mxid = params["mxid"]
        self.backend.configured(mxid)  # main: an unknown mxid is a 500, not a 404
        async with self.service.camera_lock(mxid):
            await self.service.reboot_camera(mxid)
        self.backend.answer_camera_change()
        return web.json_response(self.device_info(mxid))

    async def delete_camera(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if self.backend.server_main:
            # Main does not resolve the camera first: a bad mxid is a 422, an unknown one fails (500).
            error = request_errors.pattern_error("path", "mxid", params["mxid"], MXID_PATTERN)
            if error is not None:
                return validation_error([error])
            self.backend.configured(params["mxid"])
        mxid = self._camera_checked(params)
        async with self.service.camera_lock(mxid):
            info = self.device_info(mxid)
            await self.service.close_camera(mxid)
        self.backend.answer_camera_change()
        return web.json_response(info)

    async def camera_stats(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        mxid = self._camera_checked(params)
        if self.backend.server_main:
            self.backend.booted(mxid)  # a shut-down camera has no device to ask
        return web.json_response(self.backend.camera_stats(mxid, self.service.clock.now()))

    async def get_ir(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return web.json_response(self.backend.cameras[self._camera_checked(params)].ir)

    async def set_ir(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        from emulators.depthcam import schemas, server_bodies  # with pydantic, at the first body

        raw = await request.read()
        content_type = request.headers.get("Content-Type")
        if self.backend.server_main:
            data = server_bodies.parse_json_body(raw, content_type)
            errors, _ = self._camera_or_errors(params)
            value, body_errors = server_bodies.validate(server_bodies.IRBody, data)
        else:
            errors, _ = self._camera_or_errors(params)
            value, body_errors = schemas.validate_body(schemas.IRConfig, raw, content_type)
        errors += body_errors
        if errors:
            return validation_error(errors)
        mxid = params["mxid"]
        async with self.service.camera_lock(mxid):
            return web.json_response(self.backend.cameras[mxid].set_ir(value.model_dump()))

    # ----- streams ----------------------------------------------------------------------------------------
    async def list_streams(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        mxid = self._camera_checked(params)
        async with self.service.camera_lock(mxid):
            streams = tuple(self.backend.cameras[mxid].stream_list())
        form = self.stream_list_form
        # Few distinct lists exist (which streams are active, in which form): each is serialized once.
        body = self._stream_list_bodies.get((form, streams))
        if body is None:
            if form == "list":
                listing: Any = [{"name": name, "active": active} for name, active in streams]
            else:
                listing = {name: {"active": active} for name, active in streams}
            body = self._stream_list_bodies[(form, streams)] = json.dumps(listing).encode()
        return json_body_response(body)

    async def activate_stream(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return await self._switch_stream(request, params, activating=True)

    async def deactivate_stream(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return await self._switch_stream(request, params, activating=False)

    async def _switch_stream(
        self, request: web.Request, params: dict[str, str], *, activating: bool
    ) -> web.StreamResponse:
        """Activate (201) or deactivate (202) a stream; the backend decides, a change restarts the pipeline."""

        async def switch(mxid: str, stream: str, _: Any) -> web.StreamResponse:
            await self.service.switch_stream(mxid, stream, activating=activating)
            return null_response(201 if activating else 202)

        return await self._stream_operation(request, params, switch, need_active=False)

    async def get_config(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def read(mxid: str, stream: str, _: Any) -> web.StreamResponse:
            return web.json_response(self.backend.cameras[mxid].config(stream))

        return await self._stream_operation(request, params, read)

    async def set_config(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        from emulators.depthcam import schemas, server_bodies  # with pydantic, at the first body

        async def update(mxid: str, stream: str, value: Any) -> web.StreamResponse:
            if self.backend.server_main:
                variant, body = server_bodies.config_fields(value)
            else:
                variant, body = schemas.config_variant(value), value.model_dump(mode="json")
                body["fps"] = float(body["fps"])
            config = await self.service.set_config(mxid, stream, variant, body)
            return web.json_response(config)

        adapter = server_bodies.ConfigBody if self.backend.server_main else schemas.ConfigBody
        return await self._stream_operation(request, params, update, body=adapter)

    def _control_response(self, mxid: str, stream: str, snapshot: dict[str, Any]) -> web.Response:
        """The control as JSON, serialized again only when the stored snapshot was replaced."""
        key = (mxid, stream)
        cached = self._control_bodies.get(key)
        if cached is None or cached[0] is not snapshot:
            # Holding the snapshot keeps its identity from being reused by another object.
            cached = self._control_bodies[key] = (snapshot, json.dumps(snapshot).encode())
        return json_body_response(cached[1])

    async def get_control(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def read(mxid: str, stream: str, _: Any) -> web.StreamResponse:
            return self._control_response(mxid, stream, self.backend.cameras[mxid].control_snapshot(stream))

        return await self._stream_operation(request, params, read)

    async def set_control(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        from emulators.depthcam import schemas, server_bodies  # with pydantic, at the first body

        async def update(mxid: str, stream: str, value: Any) -> web.StreamResponse:
            changes = value.model_dump(mode="json", exclude_unset=True, exclude_none=True)
            if self.backend.server_main:
                self.backend.booted(mxid)  # the control goes to the device's queue
            snapshot = self.backend.cameras[mxid].apply_control(stream, changes)
            return self._control_response(mxid, stream, snapshot)

        adapter = server_bodies.ControlBody if self.backend.server_main else schemas.SensorControlUpdate
        return await self._stream_operation(request, params, update, body=adapter)

    def _still_format_errors(self, request: web.Request) -> list[dict[str, Any]]:
        fmt = request.query.get("format", "jpeg")
        if self.backend.still_format_passes_validation(fmt):
            return []
        allowed = ", ".join(STILL_FORMATS)
        return [
            request_errors.value_error(["query", "format"], f"unsupported image format {fmt!r}; use one of {allowed}",
                                       fmt)
        ]

    async def capture_still(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def capture(mxid: str, stream: str, _: Any) -> web.StreamResponse:
            fmt = request.query.get("format", "jpeg")
            if self.backend.server_main:
                self.backend.booted(mxid)  # no device to capture from
            data = await self.service.capture_still(mxid, stream, self.backend.still_format(fmt))
            return web.Response(body=data, headers={"Content-Type": f"image/{fmt}"})

        return await self._stream_operation(request, params, capture, query_check=self._still_format_errors)

    # ----- neural networks --------------------------------------------------------------------------------
    async def deploy_nn(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if self.backend.server_main:
            return await self._deploy_nn_as_main(request, params)
        fields, form_errors = await self._read_nn_form(request)

        async def deploy(mxid: str, stream: str, _: Any) -> web.StreamResponse:
            if form_errors:
                return validation_error(form_errors)
            config = json.loads(fields["nn_config"])
            network = NeuralNetwork(config["type"], config, len(fields["model"]))
            await self.service.deploy_network(mxid, stream, network)
            return null_response(201)

        return await self._stream_operation(request, params, deploy)

    async def _deploy_nn_as_main(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        """Main's order: the form is read, the camera resolved (404), ``nn_config`` checked (a 422 answered
        alone, or a 500), then the path and ``model`` errors together; a stream not on the device is a 500."""
        from emulators.depthcam import server_bodies  # with pydantic, at the first body

        raw = await request.read()
        fields = dict(server_bodies.form_fields(raw, request.headers.get("Content-Type", "")))
        errors, _ = self._camera_or_errors(params)
        network: NeuralNetwork | None = None
        if "nn_config" not in fields:
            errors.append(request_errors.error_item("missing", ["body", "nn_config"], "Field required", None))
        else:
            text = fields["nn_config"].decode("utf-8", "replace")
            try:
                config = server_bodies.check_nn_config(text)
            except server_bodies.NNConfigRefused as exc:
                return validation_error(exc.errors)
            except ValueError as exc:
                raise ServerCrash(str(exc)) from exc
            network = NeuralNetwork(config.type.value, json.loads(text), len(fields.get("model", b"")))
        stream = params["stream_name"]
        stream_error = request_errors.pattern_error("path", "stream_name", stream, STREAM_NAME_PATTERN)
        if stream_error is not None:
            errors.append(stream_error)
        if "model" not in fields:
            errors.append(request_errors.error_item("missing", ["body", "model"], "Field required", None))
        if errors or network is None:
            return validation_error(errors)
        mxid = params["mxid"]
        async with self.service.camera_lock(mxid):
            await self.service.deploy_network(mxid, stream, network)
        return null_response(201)

    async def _read_nn_form(self, request: web.Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The multipart fields ``model`` (file) and ``nn_config`` (a JSON object with a known ``type``)."""
        raw = await request.read()
        fields: dict[str, Any] = dict(request_errors.multipart_fields(raw, request.headers.get("Content-Type", "")))
        errors = []
        for name in ("model", "nn_config"):
            if name not in fields:
                errors.append(request_errors.error_item("missing", ["body", name], "Field required", None))
        if "nn_config" in fields:
            raw = fields["nn_config"]
            try:
                text = raw.decode("utf-8")
                config = json.loads(text)
            except (UnicodeDecodeError, ValueError, RecursionError):
                config = None
                text = raw.decode("utf-8", "replace")
            fields["nn_config"] = text
            if not isinstance(config, dict) or config.get("type") not in NN_TYPES:
                message = f"nn_config must be a JSON object whose type is one of {', '.join(NN_TYPES)}"
                errors.append(request_errors.value_error(["body", "nn_config"], message, text))
        return fields, errors

    async def delete_nn(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def delete(mxid: str, stream: str, _: Any) -> web.StreamResponse:
            await self.service.delete_network(mxid, stream)
            return null_response(202)

        return await self._stream_operation(request, params, delete, need_active=False)

    # ----- WebSockets -------------------------------------------------------------------------------------
    def _socket_params_ok(self, params: dict[str, str]) -> bool:
        return (
            request_errors.pattern_error("path", "mxid", params["mxid"], MXID_PATTERN) is None
            and request_errors.pattern_error("path", "stream_name", params["stream_name"], STREAM_NAME_PATTERN) is None
        )

    async def video_socket(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if not self._socket_params_ok(params):
            return web.Response(status=403)
        ws = MaskedWebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        await self.service.watch_video(request, ws, params["mxid"], params["stream_name"])
        return ws

    async def nn_socket(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        if not self._socket_params_ok(params):
            return web.Response(status=403)
        if self.backend.nn_handshake_refused(params["mxid"], params["stream_name"]):
            raise ServerCrash("the NN socket's sensor is not active: main fails before accepting")
        ws = MaskedWebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        await self.service.watch_nn(request, ws, params["mxid"], params["stream_name"])
        return ws

    # ----- controller -------------------------------------------------------------------------------------
    async def list_all_circuits(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return web.json_response(self.backend.controller.all_circuits())

    async def list_device_type(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        device_type = params["device_type"]
        error = request_errors.pattern_error("path", "device_type", device_type, DEVICE_TYPE_PATTERN)
        if error is not None:
            return validation_error([error])
        return web.json_response(self.backend.controller.list(device_type))

    async def list_circuits(self, request: web.Request, params: dict[str, str], t: str) -> web.StreamResponse:
        return web.json_response(self.backend.controller.list(t))

    async def get_circuit(self, request: web.Request, params: dict[str, str], t: str) -> web.StreamResponse:
        return web.json_response(self.backend.circuit(t, params["circuit"]))

    async def _controller_update(self, request: web.Request, t: str, circuit: str | None = None) -> dict[str, Any]:
        """The update body; on main the body is read first, then the circuit looked up, then the body validated."""
        from emulators.depthcam import schemas, server_bodies  # with pydantic, at the first body

        raw = await request.read()
        content_type = request.headers.get("Content-Type")
        if self.backend.server_main:
            data = server_bodies.parse_json_body(raw, content_type)
            if circuit is not None:
                self.backend.circuit(t, circuit)
            value, errors = server_bodies.validate(server_bodies.CONTROLLER_BODIES[t], data)
        else:
            value, errors = schemas.validate_body(schemas.CONTROLLER_UPDATES[t], raw, content_type)
        if errors:
            raise RequestInvalid(errors)
        update: dict[str, Any] = value.model_dump(mode="json")
        return update

    async def set_circuit(self, request: web.Request, params: dict[str, str], t: str) -> web.StreamResponse:
        update = await self._controller_update(request, t, params["circuit"])
        return web.json_response(self.backend.controller.set(t, params["circuit"], update))

    async def set_all_circuits(self, request: web.Request, params: dict[str, str], t: str) -> web.StreamResponse:
        update = await self._controller_update(request, t)
        return web.json_response(self.backend.controller.set_all(t, update))

    # ----- scenario controls (control plane) --------------------------------------------------------------
    async def depth_at(self, body: dict[str, Any]) -> dict[str, Any]:
        """Ground truth: the emulated uint16 depth (mm) of the active pair at pixel (x, y) of its view."""
        camera = self.backend.configured(self._scenario_mxid(body))
        if camera.active_pair is None:
            raise FieldError("mxid", f"{camera.mxid} has no active DEPTH stream; activate one first")
        width, height = camera.frame_size(camera.active_pair)
        point = []
        for key, limit in (("x", width), ("y", height)):
            value = body.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
                raise FieldError(key, f"must be an integer pixel in 0..{limit - 1}, got {value!r}")
            point.append(value)
        capture_ms = body.get("capture_ms", self.service.clock.now_ms())
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

    async def reboot_camera(self, body: dict[str, Any]) -> dict[str, Any]:
        """Reboot a camera to boot state (every CAM on, depth off), as a power cycle would."""
        mxid = self._scenario_mxid(body)
        async with self.service.camera_lock(mxid):
            await self.service.reboot_camera(mxid)
        return {"mxid": mxid, "streams": dict(self.backend.cameras[mxid].stream_list())}

    def _scenario_mxid(self, body: dict[str, Any]) -> str:
        mxid = body.get("mxid", next(iter(self.backend.cameras)))
        if not isinstance(mxid, str) or mxid not in self.backend.cameras:
            raise FieldError("mxid", f"must be one of {', '.join(self.backend.cameras)}, got {mxid!r}")
        return mxid

