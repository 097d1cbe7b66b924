"""The Recall.ai bots REST API over aiohttp: parse the request, ask the service or backend, render the answer.

Every refusal is a ``RecallError`` from the backend; ``_render_error`` turns it into its wire shape in one place.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from emulators.kit.clock import Clock
from emulators.kit.emulator import kit_path
from emulators.kit.errors import FieldError
from emulators.kit.json_limits import parse_json
from emulators.recall.errors import BotNotFound, MediaLinkRefused, RecallError, ValidationFailed
from emulators.recall.model import Bot, RecallBackend, StoredResponse, parse_list_query
from emulators.recall.recording import MediaUrlRefused, check_media_url
from emulators.recall.service import RecallService

API = "/api/v1"
WAF_PAGE = (
    "<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1>"
    "<p>Request blocked.</p></body></html>"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Operation = Callable[[web.Request, str], Awaitable[web.Response]]


def detail(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": text}, status=status, headers=headers)


def _render_error(exc: RecallError) -> web.Response:
    """The one mapping from a domain error to the wire: its status, its body, its headers."""
    return web.json_response(exc.body, status=exc.status, headers=exc.headers or None)


class BotsApi:
    def __init__(self, service: RecallService, backend: RecallBackend, clock: Clock) -> None:
        self.service = service
        self.backend = backend
        self.clock = clock

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._errors_as_json)
        r = app.router
        r.add_post(f"{API}/bot/", self._guard("create", self.create_bot, idempotent=True))
        r.add_get(f"{API}/bot/", self._guard("list", self.list_bots))
        r.add_get(f"{API}/bot/{{bot_id}}/", self._guard("bot", self.retrieve_bot))
        r.add_patch(f"{API}/bot/{{bot_id}}/", self._guard("bot", self.update_bot, idempotent=True))
        r.add_delete(f"{API}/bot/{{bot_id}}/", self._guard("bot", self.delete_bot))
        r.add_post(f"{API}/bot/{{bot_id}}/leave_call/", self._guard("bot", self.leave_call, idempotent=True))
        # The emulator serves the v1.11 participants download itself (a signed-URL stand-in: no auth).
        r.add_get(f"{API}/bot/{{bot_id}}/participants/", self.participants_download)
        # The recording behind video_url / media_shortcuts.video_mixed: a signed, expiring link (no auth).
        r.add_get(f"{API}/bot/{{bot_id}}/recording.mp4", self.recording_download)

    # ----- cross-cutting: errors, auth, rate limits, idempotency --------------------------------------
    @web.middleware
    async def _errors_as_json(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if kit_path(request.path):
            return await handler(request)
        try:
            return await handler(request)
        except RecallError as exc:
            return _render_error(exc)
        except web.HTTPMethodNotAllowed as exc:
            return web.json_response({"detail": f'Method "{request.method}" not allowed.'}, status=405,
                                     headers={"Allow": ", ".join(sorted(exc.allowed_methods))})
        except web.HTTPNotFound:
            return detail(404, "Not found.")

    def _guard(self, bucket: str, handler: Operation, *, idempotent: bool = False) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            backend = self.backend
            if backend.waf_blocks(request.method, await request.read()):
                return web.Response(status=403, content_type="text/html", text=WAF_PAGE)
            key = backend.authenticate(request.headers.get("Authorization"))
            backend.throttle(key, bucket, self.clock.monotonic())
            idem_key = request.headers.get("Idempotency-Key") if idempotent else None
            if not idem_key:
                return await handler(request, key)
            fingerprint = backend.idempotency.fingerprint(request.method, request.path, await request.read())
            cached = backend.idempotency.begin(key, idem_key, fingerprint, self.clock.monotonic())
            if cached is not None:
                return web.json_response(cached.body, status=cached.status, headers=cached.headers)
            try:
                response = await handler(request, key)
            except RecallError as exc:
                response = _render_error(exc)
            except BaseException:
                backend.idempotency.abandon(key, idem_key)
                raise
            # Errors are cached too: a retry after a 507 needs a new key, as the vendor documents.
            stored = json.loads(response.body) if isinstance(response.body, bytes) and response.body else None
            backend.idempotency.finish(key, idem_key, StoredResponse(response.status, stored, {
                k: v for k, v in response.headers.items() if k == "Retry-After"}))
            return response
        return guarded

    @staticmethod
    async def _json_body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            return parse_json(raw)
        except FieldError as exc:
            raise ValidationFailed({"detail": f"JSON parse error - {exc.message}"}) from None

    @staticmethod
    def _base_url(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    # ----- operations ---------------------------------------------------------------------------------
    async def create_bot(self, request: web.Request, api_key: str) -> web.Response:
        bot = self.service.create_bot(await self._json_body(request), api_key)
        return web.json_response(self._render(bot, request), status=201)

    async def list_bots(self, request: web.Request, api_key: str) -> web.Response:
        query = parse_list_query(request.query)
        page = self.backend.list_bots(query, api_key)
        base = self._base_url(request)

        def page_url(number: int) -> str:
            return str(request.url.update_query(page=number))

        return web.json_response({
            "count": page.count,
            "next": page_url(page.page + 1) if page.page < page.pages else None,
            "previous": page_url(page.page - 1) if page.page > 1 else None,
            "results": [b.as_json(base, self.service.video_url(b, base)) for b in page.bots],
        })

    async def retrieve_bot(self, request: web.Request, api_key: str) -> web.Response:
        bot = self.backend.bot(request.match_info["bot_id"], api_key)
        return web.json_response(self._render(bot, request))

    async def update_bot(self, request: web.Request, api_key: str) -> web.Response:
        bot = self.service.update_bot(request.match_info["bot_id"], await self._json_body(request), api_key)
        return web.json_response(self._render(bot, request))

    async def delete_bot(self, request: web.Request, api_key: str) -> web.Response:
        await self.service.delete_bot(request.match_info["bot_id"], api_key)
        return web.Response(status=204)

    async def leave_call(self, request: web.Request, api_key: str) -> web.Response:
        bot = self.service.leave_call(request.match_info["bot_id"], api_key)
        return web.json_response(self._render(bot, request))

    def _render(self, bot: Bot, request: web.Request) -> dict[str, Any]:
        base = self._base_url(request)
        return bot.as_json(base, self.service.video_url(bot, base))

    async def recording_download(self, request: web.Request) -> web.Response:
        bot_id = request.match_info["bot_id"]
        try:
            check_media_url(self.service.media_key, request.path, request.query.get("expires"),
                            request.query.get("signature"), self.clock.now())
        except MediaUrlRefused as exc:
            raise MediaLinkRefused(str(exc)) from None
        mp4 = await self.service.recording_mp4(bot_id)
        if mp4 is None:
            raise BotNotFound(bot_id)
        return web.Response(body=mp4, content_type="video/mp4")

    async def participants_download(self, request: web.Request) -> web.Response:
        bot = self.backend.book.get(request.match_info["bot_id"])
        return web.json_response(bot.participants_download())
