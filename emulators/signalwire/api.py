"""The Compatibility API's conference routes: parse (form or JSON), authenticate, call the model, render.

SignalWire's error shapes live here, once: 401/404/4xx as ``{code, message, more_info, status}`` and the
stream/recording 422 as ``{"errors": [...]}``.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import BasicAuth, web

from emulators.signalwire.model import (
    API_ROOT,
    MORE_INFO,
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    SignalWireError,
    StreamRequest,
    ValidationFailed,
    page_envelope,
    page_request,
    validate_stream_request,
)

if TYPE_CHECKING:
    from emulators.signalwire.device import SignalWireEmulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACCOUNT = API_ROOT + "/Accounts/{AccountSid}"
SID = r"{%s:[^/]+?}"
EXT = r"{ext:(?:\.json)?}"


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": MORE_INFO, "status": status}


def auth_failed() -> web.Response:
    return web.json_response(error_body(20003, "Authentication failed", 401), status=401,
                             headers={"WWW-Authenticate": 'Basic realm="SignalWire"'})


class ConferenceApi:
    """aiohttp handlers for the 13 conference operations, bound to one emulator."""

    def __init__(self, emulator: SignalWireEmulator) -> None:
        self.emu = emulator
        self._recent: dict[str, deque[float]] = {}  # account -> request times within the last second

    def _rate_limited(self, account_sid: str) -> bool:
        """Quirk 17 (opt-in): more than ``rate_limit`` requests per second per account answer 429."""
        limit = int(self.emu.settings["rate_limit"])
        if limit <= 0:
            return False
        now = time.monotonic()
        recent = self._recent.setdefault(account_sid, deque())
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= limit:
            return True
        recent.append(now)
        return False

    @property
    def backend(self) -> Any:
        return self.emu.backend

    def add_routes(self, app: web.Application) -> None:
        conf = f"{ACCOUNT}/Conferences"
        one = f"{conf}/{SID % 'Sid'}{EXT}"
        parts = f"{conf}/{SID % 'ConferenceSid'}/Participants"
        recs = f"{conf}/{SID % 'ConferenceSid'}/Recordings"
        streams = f"{conf}/{SID % 'ConferenceSid'}/Streams"
        r = app.router
        r.add_get(f"{conf}{EXT}", self._guard(self.list_conferences))
        r.add_get(one, self._guard(self.retrieve_conference))
        r.add_post(one, self._guard(self.update_conference))
        r.add_get(f"{parts}{EXT}", self._guard(self.list_participants))
        r.add_get(f"{parts}/{SID % 'CallSid'}{EXT}", self._guard(self.retrieve_participant))
        r.add_post(f"{parts}/{SID % 'CallSid'}{EXT}", self._guard(self.update_participant))
        r.add_delete(f"{parts}/{SID % 'CallSid'}{EXT}", self._guard(self.delete_participant))
        r.add_get(f"{recs}{EXT}", self._guard(self.list_recordings))
        r.add_get(f"{recs}/{SID % 'Sid'}{EXT}", self._guard(self.get_recording))
        r.add_post(f"{recs}/{SID % 'Sid'}{EXT}", self._guard(self.update_recording))
        r.add_delete(f"{recs}/{SID % 'Sid'}{EXT}", self._guard(self.delete_recording))
        r.add_post(f"{streams}{EXT}", self._guard(self.create_stream))
        r.add_post(f"{streams}/{SID % 'Sid'}{EXT}", self._guard(self.update_stream))

    # --- the wrapper: auth and the device's error mapping ---
    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            account_sid = request.match_info["AccountSid"]
            try:
                header = request.headers.get("Authorization", "")
                try:
                    auth = BasicAuth.decode(header) if header else None
                except ValueError:
                    auth = None
                self.backend.authenticate(account_sid, auth.login if auth else None, auth.password if auth else None)
                if self._rate_limited(account_sid):
                    return web.json_response(error_body(20429, "Too Many Requests", 429), status=429,
                                             headers={"Retry-After": "1"})
                return await handler(request)
            except AuthenticationFailed:
                return auth_failed()
            except NotFound:
                return web.json_response(
                    error_body(20404, f"The requested resource {request.path} was not found", 404), status=404
                )
            except ValidationFailed as exc:
                return web.json_response({"errors": exc.errors}, status=422)
            except InvalidRequest as exc:
                return web.json_response(error_body(exc.status, exc.message, exc.status), status=exc.status)
            except SignalWireError as exc:  # pragma: no cover - every domain error has a mapping above
                return web.json_response(error_body(400, str(exc), 400), status=400)

        return guarded

    async def body(self, request: web.Request) -> dict[str, Any]:
        """Form-encoded or JSON fields; an empty body is no fields (the SDK sends JSON headers on GET too)."""
        raw = await request.read()
        if not raw.strip():
            return {}
        ctype = request.content_type
        if ctype == "application/json":
            try:
                value = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidRequest(f"the request body is not valid JSON: {exc}", status=400) from None
            if not isinstance(value, dict):
                raise InvalidRequest("the JSON body must be an object of fields", status=400)
            return value
        if ctype in ("application/x-www-form-urlencoded", "multipart/form-data", "application/octet-stream", ""):
            try:
                form = await request.post()
            except ValueError as exc:
                raise InvalidRequest(f"the form body cannot be parsed: {exc}", status=400) from None
            return {k: v for k, v in form.items() if isinstance(v, str)}
        raise InvalidRequest(
            f"unsupported Content-Type {ctype!r}: use application/x-www-form-urlencoded or application/json", status=400
        )

    def query(self, request: web.Request) -> dict[str, str]:
        return dict(request.query)

    def now(self) -> float:
        return self.emu.clock.now()

    # --- conferences ---
    async def list_conferences(self, request: web.Request) -> web.Response:
        query = self.query(request)
        paging = page_request(query)
        items = self.backend.list_conferences(request.match_info["AccountSid"], query)
        body = page_envelope("conferences", [c.as_json() for c in items], paging, request.path, query)
        return web.json_response(body)

    def _conference(self, request: web.Request, key: str = "ConferenceSid") -> Any:
        return self.backend.conference(request.match_info["AccountSid"], request.match_info[key])

    async def retrieve_conference(self, request: web.Request) -> web.Response:
        return web.json_response(self._conference(request, "Sid").as_json())

    async def update_conference(self, request: web.Request) -> web.Response:
        conference = self._conference(request, "Sid")
        fields = await self.body(request)
        ended = self.backend.update_conference(conference, fields, self.now())
        if conference.status == "completed":
            self.emu.conference_ended(conference, ended)
        return web.json_response(conference.as_json())

    # --- participants ---
    async def list_participants(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        query = self.query(request)
        paging = page_request(query)
        items = self.backend.list_participants(conference, query)
        body = page_envelope("participants", [p.as_json() for p in items], paging, request.path, query)
        return web.json_response(body)

    async def retrieve_participant(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        return web.json_response(self.backend.participant(conference, request.match_info["CallSid"]).as_json())

    async def update_participant(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        participant = self.backend.participant(conference, request.match_info["CallSid"])
        muted, hold = participant.muted, participant.hold
        self.backend.update_participant(participant, await self.body(request), self.now())
        self.emu.participant_updated(conference, participant, muted, hold)
        return web.json_response(participant.as_json())

    async def delete_participant(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        participant = self.backend.participant(conference, request.match_info["CallSid"])
        ended = self.backend.remove_participant(conference, participant, self.now())
        self.emu.participant_left(conference, participant, ended)
        return web.Response(status=204)

    # --- recordings ---
    async def list_recordings(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        query = self.query(request)
        paging = page_request(query)
        now = self.now()
        items = self.backend.list_recordings(conference, query)
        body = page_envelope("recordings", [r.as_json(now) for r in items], paging, request.path, query)
        return web.json_response(body)

    async def get_recording(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        return web.json_response(self.backend.recording(conference, request.match_info["Sid"]).as_json(self.now()))

    async def update_recording(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        recording = self.backend.recording(conference, request.match_info["Sid"])
        self.backend.update_recording(recording, await self.body(request), self.now())
        return web.json_response(recording.as_json(self.now()))

    async def delete_recording(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        recording = self.backend.recording(conference, request.match_info["Sid"])
        self.backend.delete_recording(recording, self.now())
        return web.Response(status=204)

    # --- streams ---
    async def create_stream(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        fields = await self.body(request)
        settings = self.emu.settings
        try:
            stream_request = validate_stream_request(
                fields,
                allow_ws=settings["allow_ws_scheme"],
                disabled_codecs=tuple(settings["disabled_codecs"]),
            )
        except ValidationFailed as exc:
            if not settings["async_validation_errors"]:
                raise
            # Quirk 5: accept, answer queued, then report the problem as a stream-error callback.
            stream = self.backend.create_stream(conference, _salvage(fields), self.now())
            body = stream.as_json()  # queued: the failure is only told by the callback
            self.emu.fail_stream(stream, exc.stream_error)
            return web.json_response(body)
        stream = self.backend.create_stream(conference, stream_request, self.now())
        body = stream.as_json()  # rendered before the connection attempt can change it
        self.emu.launch_stream(conference, stream)
        return web.json_response(body)

    async def update_stream(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        stream = self.backend.stream(conference, request.match_info["Sid"])
        if self.backend.stop_stream(stream, await self.body(request), self.now()):
            self.emu.stop_stream_media(stream, "api")
        return web.json_response(stream.as_json())


def _salvage(fields: dict[str, Any]) -> StreamRequest:
    """What can be kept of an invalid create body, so its stream-error callback still reaches the customer."""

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) and value else None

    callback = text("StatusCallback")
    if callback is not None and not callback.startswith(("http://", "https://")):
        callback = None
    method = text("StatusCallbackMethod")
    track = text("Track")
    return StreamRequest(
        url=text("Url") or "",
        name=text("Name"),
        track=track if track in ("inbound_track", "outbound_track", "both_tracks") else "both_tracks",
        status_callback=callback,
        status_callback_method=method if method in ("GET", "POST") else "POST",
    )
