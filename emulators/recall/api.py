"""The Recall.ai bots REST API over aiohttp: auth, rate limits, idempotency, and the device's error shapes.

Routes parse the request, call the model, and render JSON; every domain error is mapped to its wire shape here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from emulators.recall.model import (
    BotNotFound,
    CommandRejected,
    IdempotencyConflict,
    StoredResponse,
    ValidationFailed,
    parse_list_query,
    validate_create,
)

if TYPE_CHECKING:
    from emulators.recall.device import RecallEmulator

API = "/api/v1"
WAF_PAGE = (
    "<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1>"
    "<p>Request blocked.</p></body></html>"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def detail(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": text}, status=status, headers=headers)


class BotsApi:
    def __init__(self, device: RecallEmulator) -> None:
        self.device = device

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._errors_as_json)
        r = app.router
        r.add_post(f"{API}/bot/", self._guard("create", self.create_bot, idempotent=True))
        r.add_get(f"{API}/bot/", self._guard("list", self.list_bots))
        r.add_get(f"{API}/bot/{{bot_id}}/", self._guard("bot", self.retrieve_bot))
        r.add_delete(f"{API}/bot/{{bot_id}}/", self._guard("bot", self.delete_bot))
        r.add_post(f"{API}/bot/{{bot_id}}/leave_call/", self._guard("bot", self.leave_call, idempotent=True))
        # The emulator serves the v1.11 participants download itself (a signed-URL stand-in: no auth).
        r.add_get(f"{API}/bot/{{bot_id}}/participants/", self.participants_download)

    # ----- cross-cutting: errors, auth, rate limits, idempotency --------------------------------------
    @web.middleware
    async def _errors_as_json(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_emulator"):
            return await handler(request)
        try:
            return await handler(request)
        except web.HTTPMethodNotAllowed as exc:
            return web.json_response({"detail": f'Method "{request.method}" not allowed.'}, status=405,
                                     headers={"Allow": ", ".join(sorted(exc.allowed_methods))})
        except web.HTTPNotFound:
            return detail(404, "Not found.")

    def _api_key(self, request: web.Request) -> str | web.Response:
        header = request.headers.get("Authorization")
        if not header or not header.strip():
            return detail(401, "Authentication credentials were not provided.")
        parts = header.strip().split()
        # The documented form is "Token <key>"; the vendor's own samples send the bare key.
        if len(parts) == 2 and parts[0].lower() == "token":
            key = parts[1]
        elif len(parts) == 1:
            key = parts[0]
        else:
            return detail(401, "Invalid token header. Token string should not contain spaces.")
        if key not in self.device.api_keys:
            return detail(401, "Invalid token.")
        return key

    def _guard(self, bucket: str, handler: Callable[[web.Request, str], Awaitable[web.Response]],
               *, idempotent: bool = False) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self.device.settings["quirk_waf_localhost"] and await self._waf_blocks(request):
                return web.Response(status=403, content_type="text/html", text=WAF_PAGE)
            key = self._api_key(request)
            if isinstance(key, web.Response):
                return key
            device = self.device
            if device.settings["rate_limits"]:
                limit = device.settings[f"rate_limit_{bucket}_per_min"]
                retry_after = device.rate_limiter.hit(key, bucket, limit, device.clock.monotonic())
                if retry_after is not None:
                    return detail(429, "Request was throttled.", {"Retry-After": str(retry_after)})
            idem_key = request.headers.get("Idempotency-Key") if idempotent else None
            if not idem_key:
                return await handler(request, key)
            body = await request.read()
            fingerprint = device.idempotency.fingerprint(request.method, request.path, body)
            try:
                cached = device.idempotency.begin(key, idem_key, fingerprint, device.clock.monotonic())
            except IdempotencyConflict as exc:
                return detail(409, exc.detail)
            if cached is not None:
                return web.json_response(cached.body, status=cached.status, headers=cached.headers)
            try:
                response = await handler(request, key)
            except BaseException:
                device.idempotency.abandon(key, idem_key)
                raise
            # Errors are cached too: a retry after a 507 needs a new key, as the vendor documents.
            stored = json.loads(response.body) if isinstance(response.body, bytes) and response.body else None
            device.idempotency.finish(key, idem_key, StoredResponse(response.status, stored, {
                k: v for k, v in response.headers.items() if k == "Retry-After"}))
            return response
        return guarded

    @staticmethod
    async def _waf_blocks(request: web.Request) -> bool:
        """Q9: the service's firewall answers an HTML 403 to 'localhost' in a payload and to GETs with a body."""
        body = await request.read()
        if request.method == "GET":
            return bool(body)
        return b"localhost" in body.lower()

    async def _json_body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationFailed({"detail": f"JSON parse error - {exc}"}) from None

    def _base_url(self, request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def _bot(self, request: web.Request, api_key: str) -> Any:
        bot = self.device.book.get(request.match_info["bot_id"])
        if bot.api_key != api_key:
            raise BotNotFound(bot.id)  # other workspaces' bots do not exist for this key
        return bot

    # ----- operations ---------------------------------------------------------------------------------
    async def create_bot(self, request: web.Request, api_key: str) -> web.Response:
        device = self.device
        try:
            body = await self._json_body(request)
            spec = validate_create(body, device.create_rules, device.book.ids)
        except ValidationFailed as exc:
            return web.json_response(exc.errors, status=400)
        if device.settings["quirk_pool_exhausted"] and spec.join_at is None:
            return detail(507, "No bots are available in the ad-hoc pool right now. Retry in 30 seconds with a new "
                               "Idempotency-Key, or schedule the bot with join_at.")
        bot = device.launch_bot(spec, api_key)
        return web.json_response(bot.as_json(self._base_url(request)), status=201)

    async def list_bots(self, request: web.Request, api_key: str) -> web.Response:
        try:
            query = parse_list_query(request.query)
        except ValidationFailed as exc:
            return web.json_response(exc.errors, status=400)
        bots = self.device.book.search(query, api_key)
        size = self.device.settings["page_size"]
        pages = max(1, -(-len(bots) // size))
        if query.page > pages:
            return detail(404, "Invalid page.")
        start = (query.page - 1) * size
        base = self._base_url(request)

        def page_url(page: int) -> str:
            return str(request.url.update_query(page=page))

        return web.json_response({
            "count": len(bots),
            "next": page_url(query.page + 1) if query.page < pages else None,
            "previous": page_url(query.page - 1) if query.page > 1 else None,
            "results": [b.as_json(base) for b in bots[start:start + size]],
        })

    async def retrieve_bot(self, request: web.Request, api_key: str) -> web.Response:
        try:
            bot = self._bot(request, api_key)
        except BotNotFound:
            return detail(404, "Not found.")
        return web.json_response(bot.as_json(self._base_url(request)))

    async def delete_bot(self, request: web.Request, api_key: str) -> web.Response:
        try:
            bot = self._bot(request, api_key)
        except BotNotFound:
            return detail(404, "Not found.")
        if bot.status != "ready" or bot.spec.join_at is None:
            return detail(405, "Only scheduled bots that have not been dispatched can be deleted.")
        await self.device.delete_bot(bot)
        return web.Response(status=204)

    async def leave_call(self, request: web.Request, api_key: str) -> web.Response:
        try:
            bot = self._bot(request, api_key)
        except BotNotFound:
            return detail(404, "Not found.")
        try:
            self.device.leave_call(bot)
        except CommandRejected as exc:
            return web.json_response({"code": exc.code, "detail": exc.detail}, status=400)
        return web.json_response(bot.as_json(self._base_url(request)))

    async def participants_download(self, request: web.Request) -> web.Response:
        try:
            bot = self.device.book.get(request.match_info["bot_id"])
        except BotNotFound:
            return detail(404, "Not found.")
        return web.json_response(bot.participants_download())
