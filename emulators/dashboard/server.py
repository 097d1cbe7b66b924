"""The dashboard `benchtwin up` serves: one page for every running emulator.

It works only from the endpoints document (each emulator's ``rest`` URL and credentials) and talks to the emulators
over HTTP, as any client would, so it keeps working wherever the emulators run. The browser talks only to this
server: ``/api/<emulator>/_emulator/...`` is relayed to that emulator's control plane (with the control token when
one is set), and ``/api/events`` is one Server-Sent Events stream of every emulator's event log, tailed only while
a page is open. The same protections as the control plane: no CORS, cross-origin and cross-site requests refused,
request bodies only as application/json, and, when a control token is set, the token: the page asks for it once
(``POST /api/session``) and keeps an HttpOnly, SameSite=Strict cookie derived from it; a script may send the token
itself as ``Authorization: Bearer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from emulators.kit.http import bind_tcp

log = logging.getLogger("benchtwin.dashboard")

STATIC_FILES = {"index.html": "text/html", "dashboard.js": "text/javascript", "dashboard.css": "text/css"}
RELAYED_METHODS = ("GET", "POST", "DELETE")
TAIL_PERIOD_S = 1.0  # how often the event tail asks each emulator for new events while a page is open
MAX_BODY_BYTES = 1024 * 1024
KEEPALIVE_S = 15.0  # an idle event stream writes a comment this often, so a closed page is noticed
SESSION_COOKIE = "benchtwin_dashboard"


class Dashboard:
    """The dashboard's aiohttp app and its event tail."""

    def __init__(self, endpoints: dict[str, Any], *, host: str, port: int, control_token: str | None = None) -> None:
        self.emulators = {name: entry for name, entry in endpoints.items()
                          if isinstance(entry, dict) and "rest" in entry}
        self.host = host
        self.port = port
        self.control_token = control_token
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._listeners: set[asyncio.Queue[str]] = set()
        self._tail: asyncio.Task[None] | None = None
        self._since: dict[str, int] = {}

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    # ----- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_post("/api/session", self._open_session)
        app.router.add_get("/api/endpoints", self._endpoints)
        app.router.add_get("/api/events", self._events)
        app.router.add_route("*", "/api/{emulator}/_emulator/{tail:.*}", self._relay)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = bind_tcp(self.host, self.port)
        await web.SockSite(self._runner, sock).start()
        self.port = sock.getsockname()[1]

    async def aclose(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
        for queue in list(self._listeners):
            queue.put_nowait("")  # wakes each open stream so it ends
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # ----- protections ------------------------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _refusal(403, "origin", f"cross-origin requests to the dashboard are refused, got {origin!r}")
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return _refusal(403, "origin", "cross-site requests to the dashboard are refused")
        if request.can_read_body and request.content_type != "application/json":
            return _refusal(415, "content-type", f"a request body must be application/json, got "
                                                 f"{request.content_type!r}")
        if (self.control_token and request.path.startswith("/api/") and request.path != "/api/session"
                and not self._admitted(request)):
            return _refusal(401, "token", "this dashboard is guarded by the control token: enter it on the page, or "
                                          "send 'Authorization: Bearer <token>'")
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    def _session_value(self) -> str:
        assert self.control_token
        return hmac.new(self.control_token.encode(), b"benchtwin dashboard session", hashlib.sha256).hexdigest()

    def _admitted(self, request: web.Request) -> bool:
        assert self.control_token
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer ") and hmac.compare_digest(bearer[7:].encode(), self.control_token.encode()):
            return True
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self._session_value().encode())

    async def _open_session(self, request: web.Request) -> web.Response:
        """``{"token": ...}``: the control token, exchanged for the page's session cookie."""
        if not self.control_token:
            return web.json_response({"guarded": False})
        try:
            token = (await request.json()).get("token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.control_token.encode()):
            return _refusal(401, "token", "does not match the control token `benchtwin up` was given")
        response = web.json_response({"guarded": True})
        response.set_cookie(SESSION_COOKIE, self._session_value(), httponly=True, samesite="Strict", path="/api/")
        return response

    # ----- the page ---------------------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES or name == "index.html":
            return _refusal(404, "name", f"no such file; the dashboard serves {', '.join(STATIC_FILES)}")
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        text = (resources.files("emulators.dashboard") / "static" / name).read_text(encoding="utf-8")
        headers = {"Cache-Control": "no-cache",
                   "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; style-src 'self'"}
        return web.Response(text=text, content_type=STATIC_FILES[name], headers=headers)

    async def _endpoints(self, request: web.Request) -> web.Response:
        return web.json_response({"emulators": self.emulators})

    # ----- the relay ----------------------------------------------------------------------------------------
    async def _relay(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["emulator"]
        entry = self.emulators.get(name)
        if entry is None:
            known = ", ".join(self.emulators) or "none"
            return _refusal(404, "emulator", f"no emulator {name!r} here; running: {known}")
        if request.method not in RELAYED_METHODS:
            return _refusal(405, "method", f"the relay takes {', '.join(RELAYED_METHODS)}")
        target = f"{entry['rest']}/_emulator/{request.match_info['tail']}"
        headers = {"Content-Type": "application/json"} if request.can_read_body else {}
        if self.control_token:
            headers["Authorization"] = f"Bearer {self.control_token}"
        body = await request.read() if request.can_read_body else None
        assert self._session is not None
        try:
            async with self._session.request(request.method, target, params=request.query, data=body,
                                             headers=headers, allow_redirects=False) as upstream:
                payload = await upstream.read()
                passed = {k: v for k, v in upstream.headers.items()
                          if k in ("Content-Type", "X-Frame-Stamp", "X-Frame-Size", "Cache-Control")}
                return web.Response(body=payload, status=upstream.status, headers=passed)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _refusal(502, "emulator", f"{name} at {entry['rest']} did not answer: {exc or type(exc).__name__}")

    # ----- the event stream --------------------------------------------------------------------------------
    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
        self._listeners.add(queue)
        if self._tail is None or self._tail.done():
            self._tail = asyncio.create_task(self._tail_events(), name="dashboard-event-tail")
        try:
            await response.write(b": connected\n\n")
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    message = ": keepalive\n\n"  # a closed page fails this write, which ends its stream
                if not message:
                    break
                await response.write(message.encode())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._listeners.discard(queue)
        return response

    async def _tail_events(self) -> None:
        """While a page is open: ask each emulator for the events after the last one seen, and pass them on."""
        assert self._session is not None
        first = True
        while self._listeners:
            for name, entry in self.emulators.items():
                since = self._since.get(name, 0)
                # The first round starts from the newest 50, so an open page shows recent history.
                query = {"since": str(since), "limit": "50" if first and not since else "500"}
                try:
                    async with self._session.get(f"{entry['rest']}/_emulator/events", params=query,
                                                 headers=self._auth()) as resp:
                        events = (await resp.json()).get("events", []) if resp.status == 200 else []
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    continue
                for event in events:
                    self._since[name] = max(self._since.get(name, 0), int(event.get("id", 0)))
                    self._broadcast(f"event: emulator\ndata: {json.dumps({'emulator': name, **event})}\n\n")
            first = False
            await asyncio.sleep(TAIL_PERIOD_S)  # the tail's polling period

    def _broadcast(self, message: str) -> None:
        for queue in list(self._listeners):
            with contextlib.suppress(asyncio.QueueFull):  # a page that stopped reading misses events, not memory
                queue.put_nowait(message)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.control_token}"} if self.control_token else {}


def _refusal(status: int, field: str, message: str) -> web.Response:
    return web.json_response({"error": f"{field}: {message}", "field": field}, status=status)
