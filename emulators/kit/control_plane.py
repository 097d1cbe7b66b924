"""The control plane every emulator serves under /_emulator/: health, state, reset, faults, events, scenario
controls, and its own OpenAPI document."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from emulators.kit.clock import Clock
from emulators.kit.control_openapi import control_plane_document
from emulators.kit.errors import FieldError
from emulators.kit.events import EventLog
from emulators.kit.faults import FaultBook, RuleLimitReached
from emulators.kit.http import Handler, field_error, method_not_allowed, query_int, read_json_object
from emulators.kit.memory import native_heap_in_use
from emulators.kit.metrics import METRICS_PATH
from emulators.kit.pacer import LatenessStats
from emulators.kit.preview import PreviewHub
from emulators.kit.tasks import TaskOwner
from emulators.kit.workers import WorkerRegistry

CONTROL_PREFIX = "/_emulator"
# Open without the token even when one is set: it says only that the emulator is up (start-up polling uses it).
OPEN_PATHS = frozenset({f"{CONTROL_PREFIX}/health"})

ScenarioControl = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ScenarioConflict(FieldError):
    """A scenario control that cannot run in the current state (HTTP 409)."""


def kit_path(path: str) -> bool:
    """A path the kit serves on every emulator (the control plane and /metrics): device middlewares pass it on
    untouched (no device auth, rate limit or error rewriting)."""
    return path.startswith(CONTROL_PREFIX + "/") or path in (CONTROL_PREFIX, METRICS_PATH)


def _refusal(status: int, field: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": f"{field}: {message}", "field": field}, status=status, headers=headers)


def control_plane_guard(token: str | None) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware for /_emulator/: refuses browsers' cross-origin requests (a web page in the developer's browser
    can POST text/plain anywhere without a preflight) and, when a token is configured, requests without it.

    No CORS header is ever sent, so a browser never lets another origin read an answer either.
    """

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not kit_path(request.path):
            return await handler(request)
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _refusal(403, "origin", f"cross-origin requests to {CONTROL_PREFIX}/ are refused, got {origin!r}")
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return _refusal(403, "origin", f"cross-site requests to {CONTROL_PREFIX}/ are refused")
        if token is not None and request.path not in OPEN_PATHS:
            presented = request.headers.get("Authorization", "")
            if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
                return _refusal(
                    401, "authorization", "this control plane needs 'Authorization: Bearer <control token>'",
                    **{"WWW-Authenticate": 'Bearer realm="benchtwin control plane"'},
                )
        if request.can_read_body and request.content_type != "application/json":
            return _refusal(
                415, "content-type", f"a request body must be application/json, got {request.content_type!r}"
            )
        return await handler(request)

    return guard


class Controlled(Protocol):
    """What the control plane reads and drives: the Emulator, seen from its control plane."""

    seed: int
    clock: Clock
    started_at: float | None
    tasks: TaskOwner
    workers: WorkerRegistry
    faults: FaultBook
    events: EventLog
    pacing: dict[str, LatenessStats]
    previews: PreviewHub
    scenario_controls: dict[str, ScenarioControl]

    @property
    def device(self) -> str: ...

    def endpoints(self) -> dict[str, Any]: ...

    def live_streams(self) -> list[str]: ...

    def state(self) -> dict[str, Any]: ...

    async def reset(self, seed: int | None = None, *, wipe_data: bool = False) -> None: ...


class ControlPlane:
    """The /_emulator/ routes of one emulator; every handler reads or drives the emulator it was given."""

    def __init__(self, emulator: Controlled) -> None:
        self.emulator = emulator

    def add_routes(self, app: web.Application) -> None:
        p = CONTROL_PREFIX
        routes: dict[str, dict[str, Handler]] = {
            f"{p}/health": {"GET": self.health},
            f"{p}/state": {"GET": self.state},
            f"{p}/openapi.json": {"GET": self.openapi},
            f"{p}/reset": {"POST": self.reset},
            f"{p}/faults": {"GET": self.list_faults, "POST": self.add_fault, "DELETE": self.clear_faults},
            f"{p}/faults/{{fault_id}}": {"DELETE": self.remove_fault},
            f"{p}/events": {"GET": self.events},
            f"{p}/previews": {"GET": self.previews},
            f"{p}/preview": {"GET": self.preview},
            f"{p}/scenario": {"GET": self.list_scenario_controls},
            f"{p}/scenario/{{control}}": {"POST": self.run_scenario_control},
        }
        for path, handlers in routes.items():
            for method, handler in handlers.items():
                app.router.add_route(method, path, handler)
            # Registered before any device catch-all route, so a wrong verb here is a 405 with Allow.
            app.router.add_route("*", path, method_not_allowed(sorted(handlers)))

    async def health(self, request: web.Request) -> web.Response:
        emu = self.emulator
        return web.json_response({"device": emu.device, "ready": emu.started_at is not None})

    async def state(self, request: web.Request) -> web.Response:
        emu = self.emulator
        return web.json_response(
            {
                "device": emu.device,
                "seed": emu.seed,
                "time_scale": emu.clock.time_scale,
                "uptime_s": round(time.monotonic() - (emu.started_at or time.monotonic()), 3),
                "endpoints": emu.endpoints(),
                "tasks": emu.tasks.live,
                # The whole process's C heap in use (every emulator of the process reports the same figure).
                "native_heap_bytes": native_heap_in_use(),
                "event_log": emu.events.fill(),
                "workers": emu.workers.as_list(),
                "streams": sorted(emu.live_streams()),
                "faults": len(emu.faults),
                "pacing": {name: stats.as_dict() for name, stats in emu.pacing.items()},
                "device_state": emu.state(),
            }
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(control_plane_document(self.emulator.device, self.emulator.scenario_controls))

    async def reset(self, request: web.Request) -> web.Response:
        try:
            body = await read_json_object(request, allow_empty=True)
        except FieldError as exc:
            return field_error(exc)
        unknown = [k for k in body if k not in ("seed", "wipe_data")]
        if unknown:
            return field_error(FieldError(unknown[0], "is not a field of reset; allowed: seed, wipe_data"))
        wipe = body.get("wipe_data", False)
        if not isinstance(wipe, bool):
            return field_error(FieldError("wipe_data", f"must be true or false, got {wipe!r}"))
        seed = body.get("seed")
        if isinstance(seed, float) and seed.is_integer():
            seed = int(seed)
        if "seed" in body and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
            return field_error(FieldError("seed", f"must be an integer between 0 and 2^63-1, got {seed!r}"))
        await self.emulator.reset(seed, wipe_data=wipe)
        return web.json_response({"device": self.emulator.device, "seed": self.emulator.seed, "reset": True})

    async def list_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": [r.as_dict() for r in self.emulator.faults.rules()]})

    async def add_fault(self, request: web.Request) -> web.Response:
        try:
            rule = self.emulator.faults.add(await read_json_object(request))
        except RuleLimitReached as exc:
            return field_error(exc, status=409)
        except FieldError as exc:
            return field_error(exc)
        self.emulator.events.record("fault.added", rule=rule.id)
        return web.json_response(rule.as_dict(), status=201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.emulator.faults.clear()
        return web.json_response({"faults": []})

    async def remove_fault(self, request: web.Request) -> web.Response:
        fault_id = request.match_info["fault_id"]
        if not self.emulator.faults.remove(fault_id):
            return field_error(FieldError("fault_id", f"no fault rule {fault_id!r}"), status=404)
        return web.Response(status=204)

    async def events(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            since = query_int(q, "since", 0, 0, 2**62)
            limit = query_int(q, "limit", 500, 0, 10_000)
        except FieldError as exc:
            return field_error(exc)
        events = self.emulator.events.query(kind=q.get("kind") or None, since=since, limit=limit)
        return web.json_response({"events": [e.as_dict() for e in events]})

    async def previews(self, request: web.Request) -> web.Response:
        return web.json_response(self.emulator.previews.listing())

    async def preview(self, request: web.Request) -> web.Response:
        stream = request.query.get("stream", "")
        found = self.emulator.previews.jpeg(stream) if stream else None
        if found is None:
            live = ", ".join(self.emulator.previews.streams()) or "none"
            return field_error(FieldError("stream", f"no preview of {stream!r}; streams with one now: {live}"),
                               status=404)
        jpeg, stamp, (width, height) = found
        headers = {"Cache-Control": "no-store", "X-Frame-Stamp": json.dumps(stamp),
                   "X-Frame-Size": f"{width}x{height}"}
        return web.Response(body=jpeg, content_type="image/jpeg", headers=headers)

    async def list_scenario_controls(self, request: web.Request) -> web.Response:
        return web.json_response({"controls": sorted(self.emulator.scenario_controls)})

    async def run_scenario_control(self, request: web.Request) -> web.Response:
        emu = self.emulator
        name = request.match_info["control"]
        control = emu.scenario_controls.get(name)
        if control is None:
            allowed = ", ".join(sorted(emu.scenario_controls)) or "none"
            message = f"unknown scenario control {name!r}; {emu.device} has: {allowed}"
            return field_error(FieldError("control", message), status=404)
        try:
            body = await read_json_object(request, allow_empty=True)
            result = await control(body)
        except ScenarioConflict as exc:
            return field_error(exc, status=409)
        except FieldError as exc:
            return field_error(exc)
        emu.events.record("scenario", control=name, body=body)
        return web.json_response(result)
