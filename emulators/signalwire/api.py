"""The Compatibility API's conference routes: parse (form or JSON), authenticate, call the service/backend, render.

Every domain error is a ``SignalWireError`` carrying its status, code and body shape (``{code, message,
more_info, status}`` or the stream/recording 422 ``{"errors": [...]}``); ``_guard`` turns it into the answer, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BasicAuth, web

from emulators.kit.clock import Clock
from emulators.kit.errors import FieldError
from emulators.kit.json_limits import parse_json
from emulators.signalwire.errors import InvalidRequest, MethodNotAllowed, NotFound, SignalWireError
from emulators.signalwire.model import (
    API_ROOTS,
    CONFERENCE_FILTERS,
    PARTICIPANT_FILTERS,
    RECORDING_FILTERS,
    Conference,
    SignalWireBackend,
)
from emulators.signalwire.paging import page_envelope, page_request
from emulators.signalwire.service import ConferenceService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SID = r"{%s:[^/]+?}"
EXT = r"{ext:(?:\.json)?}"


class ConferenceApi:
    """aiohttp handlers for the 13 conference operations, over one backend and the service that acts for it."""

    def __init__(self, backend: SignalWireBackend, service: ConferenceService, clock: Clock) -> None:
        self.backend = backend
        self.service = service
        self.clock = clock

    def add_routes(self, app: web.Application) -> None:
        for root in API_ROOTS:
            self._add_root(app, root)
        # Last, so every real route wins; the control plane's paths keep their own 404/405.
        app.router.add_route("*", r"/{tail:(?!_emulator/).*}", self.unrouted)

    def _add_root(self, app: web.Application, root: str) -> None:
        conf = f"{root}/Accounts/{{AccountSid}}/Conferences"
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

    async def unrouted(self, request: web.Request) -> web.Response:
        """No route took the request: a wrong verb on a known path (405 with ``Allow``) or an unknown path (404),
        in the vendor's JSON error shape rather than the framework's text."""
        allowed: set[str] = set()
        for resource in request.app.router.resources():
            if resource.canonical == request.match_info.route.resource.canonical:  # this catch-all itself
                continue
            match, methods = await resource.resolve(request)
            if match is None:
                allowed |= methods
        error: SignalWireError = MethodNotAllowed(request.method, sorted(allowed)) if allowed else NotFound("route")
        return web.json_response(error.body(request.path), status=error.status, headers=error.headers)

    # --- the wrapper: auth, the opt-in rate limit, and the device's one error mapping ---
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
                self.backend.admit(account_sid, self.clock.monotonic())
                return await handler(request)
            except SignalWireError as exc:
                return web.json_response(exc.body(request.path), status=exc.status, headers=exc.headers)

        return guarded

    async def body(self, request: web.Request) -> dict[str, Any]:
        """Form-encoded or JSON fields; an empty body is no fields (the SDK sends JSON headers on GET too)."""
        raw = await request.read()
        if not raw.strip():
            return {}
        ctype = request.content_type
        if ctype == "application/json":
            try:
                value = parse_json(raw)
            except FieldError as exc:
                raise InvalidRequest(f"the request body {exc.message}", status=400) from None
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
        return self.clock.now()

    # --- conferences ---
    async def list_conferences(self, request: web.Request) -> web.Response:
        query = self.query(request)
        paging = page_request(query)
        items = self.backend.list_conferences(request.match_info["AccountSid"], query)
        body = page_envelope("conferences", [c.as_json() for c in items], paging, request.path, query,
                             CONFERENCE_FILTERS)
        return web.json_response(body)

    def _conference(self, request: web.Request, key: str = "ConferenceSid") -> Conference:
        return self.backend.conference(request.match_info["AccountSid"], request.match_info[key])

    async def retrieve_conference(self, request: web.Request) -> web.Response:
        return web.json_response(self._conference(request, "Sid").as_json())

    async def update_conference(self, request: web.Request) -> web.Response:
        conference = self._conference(request, "Sid")
        self.service.update_conference(conference, await self.body(request))
        return web.json_response(conference.as_json())

    # --- participants ---
    async def list_participants(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        query = self.query(request)
        paging = page_request(query)
        items = self.backend.list_participants(conference, query)
        body = page_envelope("participants", [p.as_json() for p in items], paging, request.path, query,
                             PARTICIPANT_FILTERS)
        return web.json_response(body)

    async def retrieve_participant(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        return web.json_response(self.backend.participant(conference, request.match_info["CallSid"]).as_json())

    async def update_participant(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        participant = self.backend.participant(conference, request.match_info["CallSid"])
        self.service.update_participant(conference, participant, await self.body(request))
        return web.json_response(participant.as_json())

    async def delete_participant(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        participant = self.backend.participant(conference, request.match_info["CallSid"])
        self.service.remove_participant(conference, participant)
        return web.Response(status=204)

    # --- recordings ---
    async def list_recordings(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        query = self.query(request)
        paging = page_request(query)
        now = self.now()
        items = self.backend.list_recordings(conference, query)
        body = page_envelope("recordings", [r.as_json(now) for r in items], paging, request.path, query,
                             RECORDING_FILTERS)
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
        stream, error = self.backend.accept_stream(conference, await self.body(request), self.now())
        body = stream.as_json()  # rendered before the connection attempt can change it
        if error is None:
            self.service.launch_stream(conference, stream)
        else:
            self.service.fail_stream(stream, error)  # quirk 5: queued, then the problem as a stream-error callback
        return web.json_response(body)

    async def update_stream(self, request: web.Request) -> web.Response:
        conference = self._conference(request)
        stream = self.backend.stream(conference, request.match_info["Sid"])
        if self.backend.stop_stream(stream, await self.body(request), self.now()):
            self.service.stop_media(stream, "api")
        return web.json_response(stream.as_json())
