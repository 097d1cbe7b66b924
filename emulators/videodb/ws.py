"""The collection WebSocket: token-authenticated upgrade, a first frame with the connection id, then one JSON
object per text frame delivered only to the connection id a stream, index, transcript or alert names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from emulators.kit.clock import Clock
from emulators.kit.events import EventLog
from emulators.kit.websocket import MaskedWebSocketResponse

TOKEN_TTL_S = 3600.0
QUEUE_LIMIT = 1000
MAX_FRAME_BYTES = 1024 * 1024


@dataclass
class Connection:
    id: str
    collection_id: str
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    sent: int = 0
    dropped: int = 0


class CollectionSockets:
    """Tokens handed out by ``GET /collection/{id}/websocket`` and the live connections they opened."""

    def __init__(self, events: EventLog, clock: Clock) -> None:
        self.events = events
        self.clock = clock
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (collection id, expiry monotonic)
        self.connections: dict[str, Connection] = {}
        self._responses: dict[str, web.WebSocketResponse] = {}

    def issue_token(self, collection_id: str) -> str:
        """A reusable token for one collection's WebSocket, valid for TOKEN_TTL_S."""
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (collection_id, self.clock.monotonic() + TOKEN_TTL_S)
        return token

    def send(self, connection_id: str | None, message: dict[str, Any]) -> bool:
        """Queue a message for one connection (at-most-once: unknown or full means dropped)."""
        if not connection_id:
            return False
        conn = self.connections.get(connection_id)
        if conn is None:
            return False
        try:
            conn.outbox.put_nowait(message)
        except asyncio.QueueFull:
            conn.dropped += 1
            return False
        return True

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        entry = self.tokens.get(token)
        if entry is None or entry[1] < self.clock.monotonic():
            return web.json_response({"success": False, "message": "Invalid or expired WebSocket token"}, status=401)
        ws = MaskedWebSocketResponse(heartbeat=None, max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
        conn = Connection(id=f"conn-{secrets.token_hex(8)}", collection_id=entry[0])
        self.connections[conn.id] = conn
        self._responses[conn.id] = ws
        self.events.record("client.connected", channel="websocket", connection_id=conn.id)
        try:
            await ws.send_str(json.dumps({"type": "connected", "connection_id": conn.id}))
            # This handler task owns the reader; the writer loop below owns delivery to this socket.
            reader = asyncio.ensure_future(self._read_until_closed(ws))
            try:
                while not reader.done():
                    get = asyncio.ensure_future(conn.outbox.get())
                    done, _ = await asyncio.wait({get, reader}, return_when=asyncio.FIRST_COMPLETED)
                    if get not in done:
                        get.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await get
                        break
                    message = get.result()
                    if message is None:
                        break
                    await ws.send_str(json.dumps(message))
                    conn.sent += 1
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
        except (ConnectionResetError, RuntimeError):
            pass
        finally:
            self.connections.pop(conn.id, None)
            self._responses.pop(conn.id, None)
            if not ws.closed:
                await ws.close()
            self.events.record("client.disconnected", channel="websocket", connection_id=conn.id, sent=conn.sent)
        return ws

    async def _read_until_closed(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:  # client frames carry nothing the service acts on
            if msg.type == WSMsgType.ERROR:
                return

    async def close(self, code: int = 1001) -> None:
        """Close every connection (shutdown or a close fault)."""
        for conn_id, ws in list(self._responses.items()):
            conn = self.connections.get(conn_id)
            if conn is not None:
                with contextlib.suppress(asyncio.QueueFull):
                    conn.outbox.put_nowait(None)
            await ws.close(code=code)

    def clear(self) -> None:
        self.tokens.clear()
