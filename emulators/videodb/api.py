"""VideoDB REST routes, wire-compatible with the videodb 0.5.1 SDK: ``x-access-token`` auth, the
``{"success", "data"}`` envelope, merged/optional trailing slashes, and the service's error shape.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from aiohttp import web

from emulators.kit.clock import Clock
from emulators.kit.emulator import kit_path
from emulators.kit.errors import FieldError
from emulators.kit.json_limits import parse_json
from emulators.videodb import media
from emulators.videodb.model import RTStream, Video, VideoDBBackend, VideoDBError, bad, naive_iso
from emulators.videodb.service import RTStreamService
from emulators.videodb.ws import CollectionSockets

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PREFIXES = ("/manifests/", "/segments/", "/player", "/ws", "/_emulator")
OUT_OF_SCOPE = re.compile(r"^/(rtstream/[^/]+/(understand|indexes)(/.*)?|collection/[^/]+/search/v2)$")


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response({"success": True, "data": data}, status=status)


def done() -> web.Response:
    return web.json_response({"success": True, "message": "Operation successful", "data": {"ok": True}})


def failure(
    status: int, message: str, error_code: str = "INVALID_REQUEST", headers: dict[str, str] | None = None
) -> web.Response:
    body = {"success": False, "message": message, "error_code": error_code}
    return web.json_response(body, status=status, headers=headers)


def ascii_digits(text: str) -> bool:
    """Digits as a path or query carries them ("²" and "٣" are digits to str.isdigit but not to int())."""
    return text.isascii() and text.isdigit()


def query_count(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name) or ""
    if not raw:
        return default
    if not ascii_digits(raw):
        raise bad(f"'{name}' must be a whole number of 0 or more, got {raw!r}")
    return int(raw)


async def body_of(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = parse_json(raw)
    except FieldError as exc:
        raise bad(f"The request body {exc.message}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(f"The request body must be a JSON object, got {type(value).__name__}")
    return value


def normalized(path: str) -> str:
    path = re.sub(r"/{2,}", "/", path)
    return path.rstrip("/") or "/"


@dataclass(frozen=True)
class WireOptions:
    """Settings that change how answers are authenticated, addressed and rendered."""

    api_key: str
    public_base_url: str = ""  # empty: URLs follow the request's Host
    native_config: bool = False  # index configs with native types instead of the service's strings
    scene_text_alias: bool = False  # ``text`` next to ``description`` in scene records


class VideoDBApi:
    """The HTTP layer: parse, call the service/backend, render; the error mapping lives in ``middleware``."""

    def __init__(
        self,
        backend: VideoDBBackend,
        service: RTStreamService,
        sockets: CollectionSockets,
        clock: Clock,
        options: WireOptions,
    ) -> None:
        self.backend = backend
        self.service = service
        self.sockets = sockets
        self.clock = clock
        self.options = options

    def token_valid(self, token: str) -> bool:
        return bool(token) and secrets.compare_digest(token, self.options.api_key)

    def base_url(self, request: web.Request) -> str:
        configured = self.options.public_base_url.rstrip("/")
        return configured or f"{request.scheme}://{request.host}"

    def rtstream_wire(self, stream: RTStream) -> dict[str, Any]:
        return self.backend.rtstream_wire(stream, self.clock.now())

    # ----- routing -------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        r = app.router
        # Literal segments first: /rtstream/event and /rtstream/collection/... are not /rtstream/{id}.
        r.add_get("/collection", self.list_collections)
        r.add_get("/collection/{cid}", self.get_collection)
        r.add_get("/collection/{cid}/websocket", self.websocket_url)
        r.add_get("/collection/{cid}/capture/session", self.list_capture_sessions)
        r.add_post("/collection/{cid}/capture/session", self.create_capture_session)
        r.add_get("/collection/{cid}/capture/session/{sid}", self.get_capture_session)
        r.add_post("/collection/{cid}/capture/session/{sid}/export", self.export_capture_session)
        r.add_post("/capture/session/{sid}/stop", self.stop_capture_session)
        r.add_post("/rtstream", self.create_rtstream)
        r.add_get("/rtstream", self.list_rtstreams)
        r.add_post("/rtstream/event", self.create_event)
        r.add_get("/rtstream/event", self.list_events)
        r.add_post("/rtstream/collection/{cid}/search", self.search_collection)
        r.add_get("/rtstream/{rts}", self.get_rtstream)
        r.add_patch("/rtstream/{rts}", self.update_rtstream)
        r.add_patch("/rtstream/{rts}/status", self.set_rtstream_status)
        r.add_get("/rtstream/{rts}/stream", self.generate_stream)
        r.add_post("/rtstream/{rts}/export", self.export)
        r.add_post("/rtstream/{rts}/index/scene", self.create_index)
        r.add_get("/rtstream/{rts}/index/scene", self.list_indexes)
        r.add_get("/rtstream/{rts}/index/scene/{iid}", self.get_scenes)
        r.add_patch("/rtstream/{rts}/index/scene/{iid}", self.update_index)
        r.add_patch("/rtstream/{rts}/index/scene/{iid}/status", self.set_index_status)
        r.add_get("/rtstream/{rts}/index/{iid}", self.get_index)
        r.add_post("/rtstream/{rts}/index/{iid}/alert", self.create_alert)
        r.add_get("/rtstream/{rts}/index/{iid}/alert", self.list_alerts)
        r.add_patch("/rtstream/{rts}/index/{iid}/alert/{aid}/status", self.set_alert_status)
        r.add_post("/rtstream/{rts}/transcription", self.transcription)
        r.add_get("/rtstream/{rts}/transcription", self.get_transcript)
        r.add_get("/rtstream/{rts}/transcription/status", self.transcription_status)
        r.add_post("/rtstream/{rts}/search", self.search_rtstream)
        r.add_get("/video/{vid}", self.get_video)
        r.add_post("/video/{vid}/index", self.index_video)
        r.add_post("/video/{vid}/search/v2", self.search_video)
        r.add_post("/compile", self.compile)
        r.add_get("/manifests/compile/{name}", self.compiled_manifest)
        r.add_get("/manifests/{rts}/{name}", self.manifest)
        r.add_get("/segments/{rts}/{rec}/{seq}", self.segment)
        r.add_get("/player", self.player)
        r.add_get("/ws", self.sockets.handle)
        app.middlewares.append(self.middleware)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if kit_path(path):
            return await handler(request)
        clean = normalized(path)
        if clean != path:
            # The SDK joins base_url and path with '/', so 'http://host/' yields '//rtstream'; the
            # OpenAPI document and the Node SDK use trailing slashes. Route the clean path instead,
            # keeping the query string (``with_path`` alone would drop it).
            request = request.clone(rel_url=request.rel_url.with_path(clean).with_query(request.rel_url.query))
            match = await request.app.router.resolve(request)
            match.add_app(request.app)
            match.freeze()
            request._match_info = match  # aiohttp sets this the same way when it routes a request
            handler = match.handler
        if not clean.startswith(PUBLIC_PREFIXES):
            token = request.headers.get("x-access-token", "")
            if not self.token_valid(token):
                return failure(401, "Invalid API key", "UNAUTHORIZED")
        allowed = self._methods_of(request.app, clean)
        if allowed and request.method not in allowed:
            # A literal path (/rtstream/event) is never an {id} of another route's method (PATCH /rtstream/{id}).
            return failure(
                405, f"Method {request.method} is not allowed on {clean}; allowed: {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        try:
            return await handler(request)
        except VideoDBError as exc:
            return failure(exc.status, exc.message, exc.error_code)
        except web.HTTPNotFound:
            if OUT_OF_SCOPE.match(clean):
                return failure(404, "This endpoint is not available in this emulator.", "NOT_FOUND")
            return failure(404, f"Not found: {request.method} {clean}", "NOT_FOUND")
        except web.HTTPMethodNotAllowed:
            allowed = ", ".join(self._methods_of(request.app, clean))
            return failure(
                405, f"Method {request.method} is not allowed on {clean}; allowed: {allowed}",
                headers={"Allow": allowed},
            )

    @staticmethod
    def _methods_of(app: web.Application, path: str) -> list[str]:
        """The methods of the first resource matching ``path``: literal routes win over ``{id}`` ones."""
        for resource in app.router.resources():
            info = resource.get_info()
            pattern = info.get("pattern")
            if info.get("path") == path or (pattern is not None and pattern.fullmatch(path)):
                return sorted({route.method for route in resource})
        return []

    # ----- collections ---------------------------------------------------------------------------------
    async def list_collections(self, request: web.Request) -> web.Response:
        return ok(
            {
                "collections": [c.wire() for c in self.backend.collections.values()],
                "default_collection": "default",
            }
        )

    async def get_collection(self, request: web.Request) -> web.Response:
        return ok(self.backend.collection(request.match_info["cid"]).wire())

    async def websocket_url(self, request: web.Request) -> web.Response:
        collection = self.backend.collection(request.match_info["cid"])
        token = self.sockets.issue_token(collection.id)
        base = self.base_url(request)
        ws_base = "ws" + base[len("http") :]
        return ok({"websocket_url": f"{ws_base}/ws?token={token}"})

    async def list_capture_sessions(self, request: web.Request) -> web.Response:
        sessions = self.backend.capture_sessions_of(request.match_info["cid"], request.query.get("status"))
        return ok({"sessions": [s.wire(self.backend.streams) for s in sessions]})

    async def create_capture_session(self, request: web.Request) -> web.Response:
        session = self.service.create_capture_session(request.match_info["cid"], await body_of(request))
        return ok(session.wire(self.backend.streams), status=201)

    async def get_capture_session(self, request: web.Request) -> web.Response:
        session = self.backend.capture_session(request.match_info["cid"], request.match_info["sid"])
        return ok(session.wire(self.backend.streams))

    async def stop_capture_session(self, request: web.Request) -> web.Response:
        session = await self.service.stop_capture_session(request.match_info["sid"])
        return ok(session.wire(self.backend.streams))

    async def export_capture_session(self, request: web.Request) -> web.Response:
        base = self.base_url(request)

        def urls(video: Video) -> tuple[str, str]:
            stream_url = base + media.manifest_path(video.rtstream_id, video.window_start, video.window_end)
            return stream_url, media.player_url(base, stream_url)

        m = request.match_info
        session, video = self.service.export_capture_session(m["cid"], m["sid"], await body_of(request), urls)
        stream_url, player_url = urls(video)
        return ok(
            {
                "session_id": session.id,
                "video_channel_id": next((c for c, r in session.channels.items() if r == video.rtstream_id), None),
                "export_status": "exported",
                "video_id": video.id,
                "stream_url": stream_url,
                "player_url": player_url,
            }
        )

    # ----- rtstreams -----------------------------------------------------------------------------------
    async def create_rtstream(self, request: web.Request) -> web.Response:
        stream = await self.service.create_rtstream(await body_of(request))
        return ok(self.rtstream_wire(stream), status=201)

    async def list_rtstreams(self, request: web.Request) -> web.Response:
        items, count = self.backend.list_rtstreams(dict(request.query), self.clock.now())
        limit = query_count(request, "limit", 10)
        offset = query_count(request, "offset", 0)
        kept = {k: request.query[k] for k in ("status", "name", "ordering") if request.query.get(k)}

        def page_link(at: int) -> str:
            return "/rtstream/?" + urlencode({"limit": limit, "offset": at, **kept}, quote_via=quote)

        nxt = page_link(offset + limit) if offset + limit < count else None
        prev = page_link(max(0, offset - limit)) if offset > 0 else None
        return ok(
            {"results": [self.rtstream_wire(s) for s in items], "count": count, "next": nxt, "previous": prev}
        )

    async def get_rtstream(self, request: web.Request) -> web.Response:
        return ok(self.rtstream_wire(self.backend.rtstream(request.match_info["rts"])))

    async def update_rtstream(self, request: web.Request) -> web.Response:
        stream = self.service.update_rtstream(request.match_info["rts"], await body_of(request))
        return ok(self.rtstream_wire(stream))

    async def set_rtstream_status(self, request: web.Request) -> web.Response:
        await self.service.set_rtstream_status(request.match_info["rts"], await body_of(request))
        return done()

    async def generate_stream(self, request: web.Request) -> web.Response:
        stream = self.backend.rtstream(request.match_info["rts"])
        window = self.backend.stream_window(dict(request.query))
        base = self.base_url(request)
        if window is None:
            stream_url = f"{base}/manifests/{stream.id}/live.m3u8"
        else:
            stream_url = base + media.manifest_path(stream.id, *window)
        stream = self.backend.set_playback_urls(stream.id, stream_url, media.player_url(base, stream_url))
        return ok({"stream_url": stream.stream_url, "player_url": stream.player_url})

    async def export(self, request: web.Request) -> web.Response:
        body = await body_of(request)
        video = self.service.export(request.match_info["rts"], body.get("name"))
        base = self.base_url(request)
        stream_url = base + media.manifest_path(video.rtstream_id, video.window_start, video.window_end)
        return ok(
            {
                "video_id": video.id,
                "stream_url": stream_url,
                "player_url": media.player_url(base, stream_url),
                "name": video.name,
                "duration": video.length,
            }
        )

    # ----- indexes -------------------------------------------------------------------------------------
    async def create_index(self, request: web.Request) -> web.Response:
        index = self.service.create_index(request.match_info["rts"], await body_of(request))
        return ok(index.wire(native_config=self.options.native_config), status=201)

    async def list_indexes(self, request: web.Request) -> web.Response:
        native = self.options.native_config
        indexes = self.backend.indexes_of(request.match_info["rts"])
        return ok({"scene_indexes": [i.wire(native_config=native) for i in indexes]})

    async def get_index(self, request: web.Request) -> web.Response:
        index = self.backend.index(request.match_info["rts"], request.match_info["iid"])
        return ok(index.wire(native_config=self.options.native_config))

    async def get_scenes(self, request: web.Request) -> web.Response:
        records, next_page = self.backend.scenes(
            request.match_info["rts"], request.match_info["iid"], dict(request.query)
        )
        alias = self.options.scene_text_alias
        out = []
        for r in records:
            item: dict[str, Any] = {"start": r.start, "end": r.end, "description": r.description}
            if alias:
                item["text"] = r.description
            out.append(item)
        return ok({"scene_index_records": out, "next_page": next_page})

    async def update_index(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.service.update_index_prompt(m["rts"], m["iid"], await body_of(request))
        return done()

    async def set_index_status(self, request: web.Request) -> web.Response:
        self.service.set_index_status(request.match_info["rts"], request.match_info["iid"], await body_of(request))
        return done()

    # ----- events and alerts ---------------------------------------------------------------------------
    async def create_event(self, request: web.Request) -> web.Response:
        event = self.service.create_event(await body_of(request))
        return ok({"event_id": event.id}, status=201)

    async def list_events(self, request: web.Request) -> web.Response:
        return ok({"events": [e.wire() for e in self.backend.events.values()]})

    async def create_alert(self, request: web.Request) -> web.Response:
        alert = self.service.create_alert(request.match_info["rts"], request.match_info["iid"], await body_of(request))
        return ok({"alert_id": alert.id}, status=201)

    async def list_alerts(self, request: web.Request) -> web.Response:
        alerts = self.backend.alerts_of(request.match_info["rts"], request.match_info["iid"])
        return ok({"alerts": [self.backend.alert_wire(a) for a in alerts]})

    async def set_alert_status(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.service.set_alert_status(m["rts"], m["iid"], m["aid"], await body_of(request))
        return done()

    # ----- transcription -------------------------------------------------------------------------------
    async def transcription(self, request: web.Request) -> web.Response:
        stream = self.service.transcription_action(request.match_info["rts"], await body_of(request))
        return ok(
            {
                "status": stream.transcript_status,
                "engine": stream.transcript_engine,
                "updated_at": naive_iso(stream.transcript_updated_at or self.clock.now()),
            }
        )

    async def get_transcript(self, request: web.Request) -> web.Response:
        return ok(self.backend.transcripts(request.match_info["rts"], dict(request.query)))

    async def transcription_status(self, request: web.Request) -> web.Response:
        stream = self.backend.rtstream(request.match_info["rts"])
        return ok(
            {
                "status": stream.transcript_status,
                "engine": request.query.get("engine") or stream.transcript_engine,
                "language": "en",
                "created_at": naive_iso(stream.transcript_created_at) if stream.transcript_created_at else None,
                "updated_at": naive_iso(stream.transcript_updated_at) if stream.transcript_updated_at else None,
            }
        )

    # ----- search --------------------------------------------------------------------------------------
    async def search_rtstream(self, request: web.Request) -> web.Response:
        self.backend.rtstream(request.match_info["rts"])  # an unknown stream is a 404 before the body's 400
        return ok({"results": self.backend.search_rtstream(request.match_info["rts"], await body_of(request))})

    async def search_collection(self, request: web.Request) -> web.Response:
        self.backend.collection(request.match_info["cid"])
        return ok({"results": self.backend.search_collection(request.match_info["cid"], await body_of(request))})

    # ----- videos (the slice of the Video API the seed workflow touches) -------------------------------
    async def get_video(self, request: web.Request) -> web.Response:
        video = self.backend.video(request.match_info["vid"])
        base = self.base_url(request)
        stream_url = base + media.manifest_path(video.rtstream_id, video.window_start, video.window_end)
        return ok(
            {
                "id": video.id,
                "name": video.name,
                "collection_id": video.collection_id,
                "length": video.length,
                "stream_url": stream_url,
                "player_url": media.player_url(base, stream_url),
                "thumbnail_url": None,
                "created_at": naive_iso(video.created_at),
            }
        )

    async def index_video(self, request: web.Request) -> web.Response:
        video_id = request.match_info["vid"]
        self.backend.video(video_id)  # an unknown video is a 404 before the body's 400
        await self.service.index_video(video_id, await body_of(request))
        return ok({"status": "done", "message": "Index is available"})

    async def search_video(self, request: web.Request) -> web.Response:
        self.backend.video(request.match_info["vid"])  # an unknown video is a 404 before the body's 400
        return ok(self.backend.search_video(request.match_info["vid"], await body_of(request)))

    async def compile(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = parse_json(raw) if raw.strip() else None
        except FieldError as exc:
            raise bad(f"The request body {exc.message}") from None
        compilation_id = self.backend.compile(body, self.clock.now())
        stream_url = self.base_url(request) + media.compiled_path(compilation_id)
        return ok({"stream_url": stream_url, "player_url": media.player_url(self.base_url(request), stream_url)})

    async def compiled_manifest(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not name.endswith(".m3u8"):
            raise bad("A compiled playlist is /manifests/compile/<id>.m3u8")
        pieces = self.backend.compilation(name.removesuffix(".m3u8"))
        return web.Response(
            text=media.render_compilation(pieces),
            content_type=media.PLAYLIST_TYPE,
            headers={"Cache-Control": "max-age=3600"},
        )

    # ----- playback ------------------------------------------------------------------------------------
    async def manifest(self, request: web.Request) -> web.Response:
        stream = self.backend.rtstream(request.match_info["rts"])
        name = request.match_info["name"]
        if name == "live.m3u8":
            segments, live = self.backend.live_edge(stream.id), True
        else:
            window = media.parse_window(name)
            if window is None:
                raise bad("The playlist name must be '<start_us>-<end_us>.m3u8' with 16-digit microsecond times")
            segments, live = self.backend.window_playlist(stream.id, *window, self.clock.now())
        return web.Response(
            text=media.render_playlist(stream.id, segments, live=live),
            content_type=media.PLAYLIST_TYPE,
            headers={"Cache-Control": "no-cache" if live else "max-age=3600"},
        )

    async def segment(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        stream = self.backend.rtstream(m["rts"])
        seq = m["seq"].removesuffix(".ts")
        if not (ascii_digits(m["rec"]) and ascii_digits(seq) and m["seq"].endswith(".ts")):
            raise bad("A segment path is /segments/<rtstream_id>/<recording>/<sequence>.ts (ASCII digits)")
        path = self.service.segment_path(stream.id, int(m["rec"]), int(seq))
        if path is None or not await asyncio.to_thread(path.is_file):
            raise VideoDBError(404, "Segment not found.", "NOT_FOUND")
        return web.FileResponse(path, headers={"Content-Type": "video/mp2t"})

    async def player(self, request: web.Request) -> web.Response:
        url = request.query.get("url")
        if not url:
            raise bad("'url' is required: the .m3u8 playlist to play")
        if urlsplit(url).scheme.lower() not in ("http", "https"):
            raise bad("'url' must be an http or https URL of the .m3u8 playlist to play")
        return web.Response(text=media.player_page(url), content_type="text/html")
