"""The Robopipe API over aiohttp: every camera, stream and controller operation, with FastAPI's routing.

Routing follows Starlette: a full match runs the handler, a path match with the wrong method is 405 with
``Allow``, the path with its trailing slash toggled is a 307, anything else 404. Domain errors from the
model are mapped to Robopipe replies here, once.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import WSMsgType, web

from emulators.depthcam import media, schemas
from emulators.depthcam.controller import DEVICE_TYPES, CircuitNotFound, CircuitValueRejected
from emulators.depthcam.model import (
    MXID_PATTERN,
    STREAM_NAME_PATTERN,
    BootFailed,
    ConfigRejected,
    NeuralNetwork,
    StreamNotFound,
)
from emulators.kit.emulator import CONTROL_PREFIX
from emulators.kit.pacer import Pacer
from emulators.kit.tasks import first_completed

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]
DEVICE_TYPE_PATTERN = "di|ro|do|ai|ao|sensor|led|watchdog|modbus_slave|owpower|register|data_point|owbus|device_info"
NN_TYPES = ("YOLO", "MobileNet", "Generic")
CORS_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "openapi" / "depthcam.yaml"
# Paths whose route matches are remembered; past this many distinct paths (fuzzers) the memory starts over.
ROUTE_MEMORY = 4096


def _load_contract() -> Any:
    return yaml.safe_load(CONTRACT.read_text()) if CONTRACT.is_file() else None


@dataclass
class Route:
    template: str
    methods: dict[str, Handler]
    websocket: Handler | None = None
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        parts = re.split(r"\{(\w+)\}", self.template)
        pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
        self.regex = re.compile(pattern)

    def match(self, path: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(path)
        return m.groupdict() if m else None


def json_body_response(body: bytes) -> web.Response:
    """An already-serialized JSON body, with the same Content-Type ``web.json_response`` sends."""
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def null_response(status: int) -> web.Response:
    return web.Response(status=status, body=b"null", content_type="application/json")


def not_found_null() -> web.Response:
    return null_response(404)


def validation_error(errors: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"detail": errors}, status=422)


def internal_error() -> web.Response:
    return web.Response(status=500, text="Internal Server Error", content_type="text/plain")


@dataclass(eq=False)
class NnSession:
    mxid: str
    stream: str
    ws: web.WebSocketResponse
    request: web.Request
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = 1000


class RobopipeApi:
    def __init__(self, device: Any) -> None:
        self.device = device
        self.routes = self._routes()
        self.nn_sessions: set[NnSession] = set()
        # path -> every route whose template matches it, in routing order, with its path parameters.
        self._route_memory: dict[str, tuple[tuple[Route, dict[str, str]], ...]] = {}
        # (mxid, stream) -> (control snapshot, its JSON): a control is serialized once per change, not per GET.
        self._control_bodies: dict[tuple[str, str], tuple[dict[str, Any], bytes]] = {}
        # (list form, ((stream, active), ...)) -> the stream list's JSON.
        self._stream_list_bodies: dict[tuple[str, tuple[tuple[str, bool], ...]], bytes] = {}

    def install(self, app: web.Application) -> None:
        # [\s\S] rather than '.': decoded paths may contain newlines, which must still reach our router.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.dispatch)

    # ----- routing ----------------------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        stream = "/cameras/{mxid}/streams/{stream_name}"
        routes = [
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
        routes.append(Route("/controller/{device_type}", {"GET": self.list_device_type}))
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
        response = await self._route(request, path)
        if origin and not response.prepared:
            self._cors_headers(response, origin)
        return response

    def _matches(self, path: str) -> tuple[tuple[Route, dict[str, str]], ...]:
        """Every route matching ``path`` in routing order; the regex walk runs once per distinct path."""
        found = self._route_memory.get(path)
        if found is None:
            found = tuple((route, params) for route in self.routes if (params := route.match(path)) is not None)
            if len(self._route_memory) >= ROUTE_MEMORY:
                self._route_memory.clear()
            self._route_memory[path] = found
        return found

    async def _route(self, request: web.Request, path: str) -> web.StreamResponse:
        matches = self._matches(path)
        is_websocket = request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"
        if is_websocket:
            for route, params in matches:
                if route.websocket is not None:
                    return await route.websocket(request, dict(params))
            return web.Response(status=403)  # Starlette refuses an unrouted WebSocket handshake
        partial: Route | None = None
        for route, params in matches:
            handler = route.methods.get(request.method)
            if handler is not None:
                return await handler(request, dict(params))  # a copy: the remembered one stays as matched
            if partial is None and route.methods:
                partial = route
        if partial is not None:
            allow = ", ".join(partial.methods)
            return web.json_response({"detail": "Method Not Allowed"}, status=405, headers={"Allow": allow})
        toggled = path[:-1] if path.endswith("/") else path + "/"
        if toggled and any(r.match(toggled) is not None and r.methods for r in self.routes):
            location = str(request.url.with_path(toggled).with_query(None))
            if request.query_string:
                location += "?" + request.query_string
            return web.Response(status=307, headers={"Location": location})
        return web.json_response({"detail": "Not Found"}, status=404)

    def _allowed_origin(self, origin: str) -> str | None:
        allowed = [o.strip() for o in str(self.device.settings["cors_origins"]).split(",") if o.strip()]
        if "*" in allowed or origin in allowed:
            return origin
        return None

    def _cors_headers(self, response: web.StreamResponse, origin: str) -> None:
        allowed = self._allowed_origin(origin)
        if allowed is None:
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
    def _camera_or_errors(self, params: dict[str, str]) -> tuple[Any, list[dict[str, Any]], web.Response | None]:
        """FastAPI order: a bad mxid is collected; a well-formed unknown one is 404 before anything else."""
        error = schemas.pattern_error("path", "mxid", params["mxid"], MXID_PATTERN)
        if error is not None:
            return None, [error], None
        runtime = self.device.runtime(params["mxid"])
        if runtime is None:
            return None, [], not_found_null()
        return runtime, [], None

    def _camera_checked(self, params: dict[str, str]) -> tuple[Any, web.Response | None]:
        """The camera of a body-less operation, or the response refusing it (404 or the collected 422)."""
        runtime, errors, early = self._camera_or_errors(params)
        if early is not None:
            return None, early
        if errors:
            return None, validation_error(errors)
        return runtime, None

    def _stream_missing(self, exc: StreamNotFound) -> web.Response:
        if self.device.quirk("inactive_stream_500"):
            return internal_error()
        return not_found_null()

    async def _stream_operation(
        self,
        request: web.Request,
        params: dict[str, str],
        operation: Callable[[Any, str, Any], Awaitable[web.StreamResponse]],
        *,
        body: Any = None,
        need_active: bool = True,
        query_check: Callable[[web.Request], list[dict[str, Any]]] | None = None,
    ) -> web.StreamResponse:
        """Validate mxid, stream_name, query and body in FastAPI's order, then run ``operation`` under the lock."""
        raw = await request.read() if body is not None else b""
        runtime, errors, early = self._camera_or_errors(params)
        if early is not None:
            return early
        stream = params["stream_name"]
        stream_error = schemas.pattern_error("path", "stream_name", stream, STREAM_NAME_PATTERN)
        if stream_error is not None:
            errors.append(stream_error)
        if query_check is not None:
            errors.extend(query_check(request))
        value = None
        if body is not None:
            value, body_errors = schemas.validate_body(body, raw, request.headers.get("Content-Type"))
        else:
            body_errors = []
        if runtime is None or stream_error is not None:
            return validation_error(errors + body_errors)
        async with runtime.lock:
            if need_active:
                try:
                    runtime.camera.require_active(stream)
                except StreamNotFound as exc:
                    return self._stream_missing(exc)
            errors.extend(body_errors)
            if errors:
                return validation_error(errors)
            return await operation(runtime, stream, value)

    # ----- misc -------------------------------------------------------------------------------------------
    async def hello(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
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
    def device_info(self, runtime: Any) -> dict[str, Any]:
        spec = runtime.camera.spec
        info = {
            "mxid": spec.mxid,
            "name": spec.name,
            "platform": spec.platform,
            "protocol": spec.protocol,
            "state": "X_LINK_BOOTED",
            "status": "X_LINK_SUCCESS",
        }
        if self.device.settings["camera_name"]:
            info["camera_name"] = spec.model
        return info

    async def list_cameras(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return web.json_response([self.device_info(rt) for rt in self.device.runtimes.values() if rt.camera.open])

    async def get_camera(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        runtime, refused = self._camera_checked(params)
        if refused is not None:
            return refused
        return web.json_response(self.device_info(runtime))

    async def create_camera(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        """Re-boot a configured camera (also one that was deleted): boot stream state after a restart."""
        error = schemas.pattern_error("path", "mxid", params["mxid"], MXID_PATTERN)
        if error is not None:
            return validation_error([error])
        runtime = self.device.runtimes.get(params["mxid"])
        if runtime is None:
            return not_found_null()
        async with runtime.lock:
            sizes = self.device.frame_sizes(runtime) if runtime.camera.open else {}
            runtime.camera.reboot()
            failed = await self._restart(runtime, sizes)
            if failed is not None:
                return failed
        if self.device.quirk("camera_create_delete_500"):
            return internal_error()
        return web.json_response(self.device_info(runtime))

    async def delete_camera(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        runtime, refused = self._camera_checked(params)
        if refused is not None:
            return refused
        async with runtime.lock:
            info = self.device_info(runtime)
            runtime.camera.open = False
            await self.device._settle_channels(runtime, {})
        self.device.events.record("camera.closed", camera=runtime.camera.mxid)
        if self.device.quirk("camera_create_delete_500"):
            return internal_error()
        return web.json_response(info)

    async def camera_stats(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        runtime, refused = self._camera_checked(params)
        if refused is not None:
            return refused
        # Slowly drifting temperatures (a 10-minute cycle); memory use follows the number of active streams.
        phase = math.sin(time.time() / 600.0 * 2 * math.pi + runtime.camera.number)
        base = 42.0 + 3.0 * phase
        temps = {"css": base + 0.8, "mss": base + 0.3, "upa": base - 0.4, "dss": base + 1.1}
        temps["average"] = sum(temps.values()) / 4
        active = len(runtime.camera.active_streams())

        def memory(total: int, per_stream: int, base_used: int) -> dict[str, int]:
            used = min(total, base_used + per_stream * active)
            return {"total": total, "used": used, "remaining": total - used}

        return web.json_response(
            {
                "chip_temperature": {k: round(v, 2) for k, v in temps.items()},
                "cmx_memory_usage": memory(2_621_440, 180_000, 310_000),
                "ddr_memory_usage": memory(358_612_992, 24_000_000, 41_000_000),
            }
        )

    async def get_ir(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        runtime, refused = self._camera_checked(params)
        if refused is not None:
            return refused
        return web.json_response(runtime.camera.ir)

    async def set_ir(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        raw = await request.read()
        runtime, errors, early = self._camera_or_errors(params)
        if early is not None:
            return early
        value, body_errors = schemas.validate_body(schemas.IRConfig, raw, request.headers.get("Content-Type"))
        errors += body_errors
        if errors:
            return validation_error(errors)
        async with runtime.lock:
            return web.json_response(runtime.camera.set_ir(value.model_dump()))

    # ----- streams ----------------------------------------------------------------------------------------
    async def list_streams(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        runtime, refused = self._camera_checked(params)
        if refused is not None:
            return refused
        async with runtime.lock:
            streams = tuple(runtime.camera.stream_list())
        form = self.device.settings["stream_list_form"]
        # Few distinct lists exist (which streams are active, in which form): each is serialized once.
        body = self._stream_list_bodies.get((form, streams))
        if body is None:
            if form == "list":
                listing: Any = [{"name": name, "active": active} for name, active in streams]
            else:
                listing = {name: {"active": active} for name, active in streams}
            body = self._stream_list_bodies[(form, streams)] = json.dumps(listing).encode()
        return json_body_response(body)

    async def _restart(self, runtime: Any, sizes: dict[str, tuple[int, int]]) -> web.Response | None:
        try:
            await self.device.restart_pipeline(runtime, sizes)
        except BootFailed:
            return internal_error()
        return None

    async def activate_stream(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return await self._switch_stream(request, params, activating=True)

    async def deactivate_stream(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return await self._switch_stream(request, params, activating=False)

    async def _switch_stream(self, request: web.Request, params: dict[str, str], *, activating: bool
                             ) -> web.StreamResponse:
        """Activate (201) or deactivate (202) a stream; the model decides, a change restarts the pipeline."""

        async def switch(runtime: Any, stream: str, _: Any) -> web.StreamResponse:
            sizes = self.device.frame_sizes(runtime)
            try:
                camera = runtime.camera
                changed = camera.activate(stream) if activating else camera.deactivate(stream)
            except StreamNotFound as exc:
                return self._stream_missing(exc)
            if changed:
                failed = await self._restart(runtime, sizes)
                if failed is not None:
                    return failed
            kind = "stream.activated" if activating else "stream.deactivated"
            self.device.events.record(kind, camera=runtime.camera.mxid, stream=stream, changed=changed)
            return null_response(201 if activating else 202)

        return await self._stream_operation(request, params, switch, need_active=False)

    async def get_config(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def read(runtime: Any, stream: str, _: Any) -> web.StreamResponse:
            return web.json_response(runtime.camera.config(stream))

        return await self._stream_operation(request, params, read)

    async def set_config(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def update(runtime: Any, stream: str, value: Any) -> web.StreamResponse:
            if stream.startswith("DEPTH_") and self.device.quirk("depth_config_500"):
                return internal_error()  # Q3: the real server has no config for a pair's StereoDepth node
            variant = schemas.config_variant(value)
            body = value.model_dump(mode="json")
            body["fps"] = float(body["fps"])
            sizes = self.device.frame_sizes(runtime)
            try:
                config = runtime.camera.set_config(stream, variant, body)
            except ConfigRejected as exc:
                quirk = "boot_error_500" if exc.kind == "value" else "config_variant_500"
                if self.device.quirk(quirk):
                    return internal_error()
                return validation_error([schemas.value_error(list(exc.loc), exc.message, body)])
            failed = await self._restart(runtime, sizes)
            if failed is not None:
                return failed
            return web.json_response(config)

        return await self._stream_operation(request, params, update, body=schemas.ConfigBody)

    def _control_response(self, camera: Any, stream: str, snapshot: dict[str, Any]) -> web.Response:
        """The control as JSON, serialized again only when the stored snapshot was replaced."""
        key = (camera.mxid, stream)
        cached = self._control_bodies.get(key)
        if cached is None or cached[0] is not snapshot:
            # Holding the snapshot keeps its identity from being reused by another object.
            cached = self._control_bodies[key] = (snapshot, json.dumps(snapshot).encode())
        return json_body_response(cached[1])

    async def get_control(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def read(runtime: Any, stream: str, _: Any) -> web.StreamResponse:
            return self._control_response(runtime.camera, stream, runtime.camera.control_snapshot(stream))

        return await self._stream_operation(request, params, read)

    async def set_control(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def update(runtime: Any, stream: str, value: Any) -> web.StreamResponse:
            changes = value.model_dump(mode="json", exclude_unset=True, exclude_none=True)
            return self._control_response(runtime.camera, stream, runtime.camera.apply_control(stream, changes))

        return await self._stream_operation(request, params, update, body=schemas.SensorControlUpdate)

    def _still_format_errors(self, request: web.Request) -> list[dict[str, Any]]:
        fmt = request.query.get("format", "jpeg")
        if fmt.lower() in media.STILL_FORMATS or self.device.quirk("still_format_500"):
            return []
        allowed = ", ".join(media.STILL_FORMATS)
        return [
            schemas.value_error(["query", "format"], f"unsupported image format {fmt!r}; use one of {allowed}", fmt)
        ]

    async def capture_still(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def capture(runtime: Any, stream: str, _: Any) -> web.StreamResponse:
            fmt = request.query.get("format", "jpeg")
            if fmt.lower() not in media.STILL_FORMATS:
                return internal_error()  # the quirk profile: Pillow's KeyError
            camera = runtime.camera
            index = runtime.frame_index_at(stream, int(time.time() * 1000))
            spec = media.frame_spec(
                camera,
                stream,
                frame_index=index,
                capture_ms=runtime.capture_ms(stream, index),
                purpose="still",
                seed=self.device.seed,
            )
            image = await asyncio.to_thread(media.render_frame, spec, runtime.still_developer(spec))
            data = await asyncio.to_thread(media.encode_still, image, fmt.lower())
            return web.Response(body=data, headers={"Content-Type": f"image/{fmt}"})

        return await self._stream_operation(request, params, capture, query_check=self._still_format_errors)

    # ----- neural networks --------------------------------------------------------------------------------
    async def deploy_nn(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        fields, form_errors = await self._read_nn_form(request)

        async def deploy(runtime: Any, stream: str, _: Any) -> web.StreamResponse:
            if form_errors:
                return validation_error(form_errors)
            config = json.loads(fields["nn_config"])
            sizes = self.device.frame_sizes(runtime)
            runtime.camera.deploy_network(stream, NeuralNetwork(config["type"], config, len(fields["model"])))
            failed = await self._restart(runtime, sizes)
            if failed is not None:
                return failed
            self.device.events.record("nn.deployed", camera=runtime.camera.mxid, stream=stream, type=config["type"])
            return null_response(201)

        return await self._stream_operation(request, params, deploy)

    async def _read_nn_form(self, request: web.Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The multipart fields ``model`` (file) and ``nn_config`` (a JSON object with a known ``type``)."""
        raw = await request.read()
        fields: dict[str, Any] = dict(schemas.multipart_fields(raw, request.headers.get("Content-Type", "")))
        errors = []
        for name in ("model", "nn_config"):
            if name not in fields:
                errors.append(schemas.error_item("missing", ["body", name], "Field required", None))
        if "nn_config" in fields:
            raw = fields["nn_config"]
            try:
                text = raw.decode("utf-8")
                config = json.loads(text)
            except (UnicodeDecodeError, ValueError):
                config = None
                text = raw.decode("utf-8", "replace")
            fields["nn_config"] = text
            if not isinstance(config, dict) or config.get("type") not in NN_TYPES:
                message = f"nn_config must be a JSON object whose type is one of {', '.join(NN_TYPES)}"
                errors.append(schemas.value_error(["body", "nn_config"], message, text))
        return fields, errors

    async def delete_nn(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        async def delete(runtime: Any, stream: str, _: Any) -> web.StreamResponse:
            try:
                runtime.camera.delete_network(stream)
            except StreamNotFound as exc:
                return self._stream_missing(exc)
            for session in list(self.nn_sessions):
                if session.mxid == runtime.camera.mxid and session.stream == stream:
                    session.close_code = 1011
                    session.closing.set()
            return null_response(202)

        return await self._stream_operation(request, params, delete, need_active=False)

    # ----- WebSockets -------------------------------------------------------------------------------------
    def _socket_params_ok(self, params: dict[str, str]) -> bool:
        return (
            schemas.pattern_error("path", "mxid", params["mxid"], MXID_PATTERN) is None
            and schemas.pattern_error("path", "stream_name", params["stream_name"], STREAM_NAME_PATTERN) is None
        )

    async def video_socket(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        """fMP4 over WebSocket: the shared init segment, then one moof+mdat per frame."""
        if not self._socket_params_ok(params):
            return web.Response(status=403)
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        stream = params["stream_name"]
        runtime = self.device.runtime(params["mxid"])
        if runtime is None:
            await ws.close(code=1011, message=b"camera not found")
            return ws
        async with runtime.lock:
            if not runtime.camera.knows(stream) or not runtime.camera.is_active(stream):
                await ws.close(code=1011, message=b"stream not found or not active")
                return ws
            channel = self.device.video_channel(runtime, stream)
            sub = channel.subscribe()
        self.device.events.record("client.connected", stream=channel.name, peer=request.remote)
        try:
            init = await channel.wait_init(limit_s=15.0)
            if init is not None and not sub.closed:
                await ws.send_bytes(init)
                await _pump_until_closed(ws, sub)
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            await self.device.leave_channel(runtime, channel, sub)
            # Close only after the pump and the reader are done: a close racing a receive ends as 1006.
            if sub.closed and sub.abort and request.transport is not None:
                request.transport.close()  # a source disconnect: no close frame
            elif not ws.closed:
                code = sub.close_code if sub.closed else 1011
                await ws.close(code=code, message=sub.close_reason.encode())
            self.device.events.record("client.disconnected", stream=channel.name, code=ws.close_code)
        return ws

    async def nn_socket(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        """NN results as JSON text, one message per frame, for the deployed network."""
        if not self._socket_params_ok(params):
            return web.Response(status=403)
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        stream = params["stream_name"]
        runtime = self.device.runtime(params["mxid"])
        if runtime is None:
            await ws.close(code=1011, message=b"camera not found")
            return ws
        async with runtime.lock:
            camera = runtime.camera
            if not camera.knows(stream) or not camera.is_active(stream) or stream not in camera.networks:
                await ws.close(code=1011, message=b"no neural network deployed on this stream")
                return ws
        session = NnSession(camera.mxid, stream, ws, request)
        self.nn_sessions.add(session)
        name = f"{camera.mxid}/{stream}/nn"
        self.device.events.record("client.connected", stream=name, peer=request.remote)
        try:
            await _run_until_closed(ws, session.closing, self._send_detections(runtime, session, name))
        finally:
            self.nn_sessions.discard(session)
            if not ws.closed:
                await ws.close(code=session.close_code)
            self.device.events.record("client.disconnected", stream=name, code=ws.close_code)
        return ws

    async def _send_detections(self, runtime: Any, session: NnSession, name: str) -> None:
        camera = runtime.camera
        pacer = Pacer(1.0 / camera.fps(session.stream), stats=self.device.pacing_stats(name))
        async for _tick in pacer.ticks():
            await runtime.ready.wait()
            network = camera.networks.get(session.stream)
            if not camera.open or not camera.is_active(session.stream) or network is None:
                session.close_code = 1000 if network is not None else 1011
                return
            rule = self.device.stream_fault(name)
            if rule is not None:
                if rule.action.type == "drop":
                    continue
                if rule.action.type == "stall":
                    await asyncio.sleep(rule.action.seconds)
                    continue
                if rule.action.type in ("close", "disconnect"):
                    session.close_code = rule.action.code
                    if rule.action.type == "disconnect" and session.request.transport is not None:
                        session.request.transport.close()
                    return
            now_ms = int(time.time() * 1000)
            index = runtime.frame_index_at(session.stream, now_ms)
            message = media.detection_message(
                camera, session.stream, runtime.capture_ms(session.stream, index), index, network.kind, self.device.seed
            )
            text = json.dumps(message)
            if rule is not None and rule.action.type == "corrupt":
                text = self.device.faults.corrupt(text.encode()).decode("utf-8", "replace")
            await session.ws.send_str(text)

    async def close_nn_sockets(self, runtime: Any, *, only_inactive: bool) -> None:
        camera = runtime.camera
        for session in list(self.nn_sessions):
            if session.mxid != camera.mxid:
                continue
            active = camera.open and camera.knows(session.stream) and camera.is_active(session.stream)
            if only_inactive and active:
                continue
            session.close_code = 1000 if not active else 1012
            session.closing.set()

    async def close_sockets(self) -> None:
        for session in list(self.nn_sessions):
            session.close_code = 1001
            session.closing.set()

    # ----- controller -------------------------------------------------------------------------------------
    async def list_all_circuits(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return web.json_response(self.device.controller.all_circuits())

    async def list_device_type(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        device_type = params["device_type"]
        error = schemas.pattern_error("path", "device_type", device_type, DEVICE_TYPE_PATTERN)
        if error is not None:
            return validation_error([error])
        return web.json_response(self.device.controller.list(device_type))

    async def list_circuits(self, request: web.Request, params: dict[str, str], t: str) -> web.StreamResponse:
        return web.json_response(self.device.controller.list(t))

    async def get_circuit(self, request: web.Request, params: dict[str, str], t: str) -> web.StreamResponse:
        try:
            return web.json_response(self.device.controller.get(t, params["circuit"]))
        except CircuitNotFound as exc:
            return validation_error([schemas.value_error(["path", "circuit"], str(exc), params["circuit"])])

    async def _controller_update(
        self, request: web.Request, t: str
    ) -> tuple[dict[str, Any] | None, web.Response | None]:
        raw = await request.read()
        value, errors = schemas.validate_body(schemas.CONTROLLER_UPDATES[t], raw, request.headers.get("Content-Type"))
        if errors:
            return None, validation_error(errors)
        return value.model_dump(mode="json"), None

    async def set_circuit(self, request: web.Request, params: dict[str, str], t: str) -> web.StreamResponse:
        update, failed = await self._controller_update(request, t)
        if failed is not None:
            return failed
        assert update is not None
        try:
            return web.json_response(self.device.controller.set(t, params["circuit"], update))
        except CircuitNotFound as exc:
            return validation_error([schemas.value_error(["path", "circuit"], str(exc), params["circuit"])])
        except CircuitValueRejected as exc:
            return validation_error(
                [schemas.value_error(["body", exc.field_name], str(exc), update.get(exc.field_name))]
            )

    async def set_all_circuits(self, request: web.Request, params: dict[str, str], t: str) -> web.StreamResponse:
        update, failed = await self._controller_update(request, t)
        if failed is not None:
            return failed
        assert update is not None
        try:
            return web.json_response(self.device.controller.set_all(t, update))
        except CircuitValueRejected as exc:
            return validation_error(
                [schemas.value_error(["body", exc.field_name], str(exc), update.get(exc.field_name))]
            )


async def _watch_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the viewer sends until it closes; that is how its leaving is noticed."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return


async def _run_until_closed(ws: web.WebSocketResponse, closing: asyncio.Event, sender: Awaitable[None]) -> None:
    """Run a socket's sender until it ends, the client leaves, or ``closing`` is set; awaits every task."""
    await first_completed(sender, _watch_client(ws), closing.wait(), ignore=(ConnectionResetError,))


async def _pump_until_closed(ws: web.WebSocketResponse, sub: media.Subscriber) -> None:
    """Forward the channel's messages to one viewer until the channel closes it or the viewer leaves."""

    async def pump() -> None:
        while (item := await sub.queue.get()) is not media.CLOSE:
            await ws.send_bytes(item)

    await _run_until_closed(ws, asyncio.Event(), pump())
