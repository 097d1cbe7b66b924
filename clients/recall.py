"""Reference client for Recall.ai: the bots REST API, and the WebSocket servers that receive a bot's media.

``RecallClient`` works against the real service (``https://us-east-1.recall.ai`` and the other regions) and
the benchtwin emulator alike: only ``base_url`` and the API key change. The receivers are what a customer
runs: Recall dials out to them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
from aiohttp import web

from clients import recall_wire as wire
from clients.http import SessionOwner

DEFAULT_BASE_URL = "https://us-east-1.recall.ai"


class RecallError(Exception):
    """A non-2xx answer; ``body`` is the decoded JSON (field errors, ``detail`` or ``code``)."""

    def __init__(self, status: int, body: Any, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body
        self.retry_after = retry_after

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


class RecallClient(SessionOwner):
    """Async client for ``/api/v1/bot/``; honours ``Retry-After`` on 429 up to ``max_retries`` times."""

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        session: aiohttp.ClientSession | None = None,
        max_retries: int = 3,
        max_retry_wait_s: float = 60.0,
    ) -> None:
        super().__init__(session)
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s

    async def _request(self, method: str, path: str, *, json_body: Any = None, params: Any = None,
                       headers: dict[str, str] | None = None) -> Any:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        all_headers = {"Authorization": f"Token {self.api_key}", "Accept": "application/json", **(headers or {})}
        for attempt in range(self.max_retries + 1):
            async with self.session.request(method, url, json=json_body, params=params, headers=all_headers) as resp:
                text = await resp.text()
                try:
                    body = json.loads(text) if text else None
                except ValueError:
                    body = text
                if resp.status == 429:
                    retry_after = float(resp.headers.get("Retry-After", "1"))
                    if attempt < self.max_retries and retry_after <= self.max_retry_wait_s:
                        await asyncio.sleep(retry_after)
                        continue
                    raise RecallError(resp.status, body, retry_after)
                if resp.status >= 400:
                    raise RecallError(resp.status, body)
                return body
        raise AssertionError("unreachable")

    async def create_bot(
        self, meeting_url: str, *, idempotency_key: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """POST /api/v1/bot/ with ``meeting_url`` and any other documented fields (``bot_name``,
        ``real_time_media``, ``recording_mode``, ``recording_config``, ...)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        bot = await self._request("POST", "/api/v1/bot/", json_body={"meeting_url": meeting_url, **fields},
                                  headers=headers)
        return cast(dict[str, Any], bot)

    async def get_bot(self, bot_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("GET", f"/api/v1/bot/{bot_id}/"))

    async def list_bots(self, *, page: int | None = None, **filters: Any) -> dict[str, Any]:
        """One page ``{count, next, previous, results}``; list-valued filters (status, platform) repeat."""
        params: list[tuple[str, str]] = []
        for key, value in filters.items():
            values = value if isinstance(value, list | tuple) else [value]
            params.extend((key, str(v)) for v in values)
        if page is not None:
            params.append(("page", str(page)))
        return cast(dict[str, Any], await self._request("GET", "/api/v1/bot/", params=params))

    async def iter_bots(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        page = await self.list_bots(**filters)
        while True:
            for bot in page["results"]:
                yield bot
            if not page.get("next"):
                return
            page = await self._request("GET", page["next"])

    async def update_bot(self, bot_id: str, *, idempotency_key: str | None = None, **fields: Any) -> dict[str, Any]:
        """PATCH /api/v1/bot/{id}/: change a scheduled bot before it is dispatched (``join_at``, ``bot_name``...)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        bot = await self._request("PATCH", f"/api/v1/bot/{bot_id}/", json_body=fields, headers=headers)
        return cast(dict[str, Any], bot)

    async def leave_call(self, bot_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self._request("POST", f"/api/v1/bot/{bot_id}/leave_call/"))

    async def wait_for_status(
        self, bot_id: str, code: str, *, timeout_s: float = 30.0, poll_s: float = 0.1
    ) -> dict[str, Any]:
        """Poll the bot until ``code`` appears in its status_changes (the API offers no push besides webhooks)."""
        async with asyncio.timeout(timeout_s):
            while True:
                bot = await self.get_bot(bot_id)
                if any(change["code"] == code for change in bot["status_changes"]):
                    return bot
                await asyncio.sleep(poll_s)


# ----- receivers ---------------------------------------------------------------------------------------
def decode_png(png: bytes) -> Any:
    """An HxWx3 RGB numpy array from PNG bytes (PyAV's PNG decoder)."""
    import av

    with av.open(io.BytesIO(png), mode="r", format="png_pipe") as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


@dataclass
class ConnectionRecord:
    index: int
    opened_at: float
    closed_at: float | None = None
    hello: dict[str, Any] | None = None
    messages: int = 0
    close_code: int | None = None


@dataclass(frozen=True)
class ReceivedFrame:
    """A legacy video frame: header fields, PNG dimensions, and which connection carried it."""

    participant_id: int
    timestamp_ms: int
    width: int
    height: int
    png: bytes
    received_at: float
    connection: int

    def image(self) -> Any:
        return decode_png(self.png)


@dataclass
class StreamReport:
    """Per participant id: frame count, measured fps, timestamp gaps and order violations."""

    participant_id: int
    frames: int
    fps: float
    gaps: list[tuple[int, int]]
    out_of_order: int
    sizes: set[tuple[int, int]]


class _WebSocketServer:
    """A loopback WebSocket server recording connection attempts; can refuse handshakes or drop connections."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, path: str = "/") -> None:
        self.host, self.port, self.path = host, port, path
        self.attempts: list[float] = []  # monotonic time of every handshake attempt, refused ones included
        self.connections: list[ConnectionRecord] = []
        self.refuse_next = 0
        self.drop_after: int | None = None  # close each connection after this many binary messages
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self._sockets: set[web.WebSocketResponse] = set()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.path}"

    async def start(self) -> _WebSocketServer:
        app = web.Application()
        app.router.add_get(self.path, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def aclose(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Any:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds (checked on every message and connection change)."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.attempts.append(time.monotonic())
        self.query = dict(request.query)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            await self._notify()
            return web.Response(status=503, text="not accepting connections yet")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        record = ConnectionRecord(len(self.connections), time.monotonic())
        self.connections.append(record)
        self._sockets.add(ws)
        await self._notify()
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.on_text(record, message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    record.messages += 1
                    self.on_binary(record, message.data)
                    if self.drop_after is not None and record.messages >= self.drop_after:
                        await ws.close(code=1001)
                await self._notify()
        finally:
            self._sockets.discard(ws)
            record.closed_at = time.monotonic()
            record.close_code = ws.close_code
            await self._notify()
        return ws

    def on_text(self, record: ConnectionRecord, text: str) -> None:
        if record.hello is None:
            record.hello = json.loads(text)

    def on_binary(self, record: ConnectionRecord, data: bytes) -> None:
        pass

    @property
    def open_connections(self) -> int:
        return sum(1 for c in self.connections if c.closed_at is None)


class VideoReceiver(_WebSocketServer):
    """Receives the legacy video WebSocket: a JSON hello per connection, then header + PNG frames."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frames: list[ReceivedFrame] = []
        self.errors: list[str] = []

    def on_binary(self, record: ConnectionRecord, data: bytes) -> None:
        try:
            frame = wire.unpack_video_frame(data)
            width, height = wire.png_dimensions(frame.png)
        except wire.WireError as exc:
            self.errors.append(str(exc))
            return
        self.frames.append(ReceivedFrame(frame.participant_id, frame.timestamp_ms, width, height, frame.png,
                                         time.monotonic(), record.index))

    def by_participant(self) -> dict[int, list[ReceivedFrame]]:
        out: dict[int, list[ReceivedFrame]] = defaultdict(list)
        for frame in self.frames:
            out[frame.participant_id].append(frame)
        return dict(out)

    def report(self, period_ms: int = 500) -> dict[int, StreamReport]:
        """Order, gaps and fps per header participant id (screenshare frames share their sharer's id)."""
        out = {}
        for pid, frames in self.by_participant().items():
            per_conn: dict[int, list[ReceivedFrame]] = defaultdict(list)
            for f in frames:
                per_conn[f.connection].append(f)
            gaps, disorder = [], 0
            for conn_frames in per_conn.values():
                for a, b in itertools.pairwise(conn_frames):
                    if b.timestamp_ms <= a.timestamp_ms:
                        disorder += 1
                    elif b.timestamp_ms - a.timestamp_ms > 1.5 * period_ms:
                        gaps.append((a.timestamp_ms, b.timestamp_ms))
            span = (frames[-1].received_at - frames[0].received_at) if len(frames) > 1 else 0.0
            fps = (len(frames) - 1) / span if span > 0 else 0.0
            out[pid] = StreamReport(pid, len(frames), fps, gaps, disorder, {(f.width, f.height) for f in frames})
        return out


@dataclass(frozen=True)
class ReceivedAudio:
    participant_id: int | None
    pcm: bytes
    received_at: float
    connection: int


class AudioReceiver(_WebSocketServer):
    """Receives legacy audio: JSON hello, then S16LE 16 kHz mono (with a uint32 LE id prefix when separate)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chunks: list[ReceivedAudio] = []

    def on_binary(self, record: ConnectionRecord, data: bytes) -> None:
        separate = bool(record.hello and record.hello.get("separate_streams"))
        pid, pcm = wire.unpack_audio_chunk(data, separate_streams=separate)
        self.chunks.append(ReceivedAudio(pid, pcm, time.monotonic(), record.index))

    def samples(self, participant_id: int | None = None) -> Any:
        import numpy as np

        pcm = b"".join(c.pcm for c in self.chunks if participant_id is None or c.participant_id == participant_id)
        return np.frombuffer(pcm, dtype="<i2")


@dataclass(frozen=True)
class ReceivedEvent:
    event: str
    data: dict[str, Any]
    received_at: float
    connection: int

    @property
    def payload(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.data["data"])

    def png(self) -> bytes:
        return base64.b64decode(self.payload["buffer"])


class RealtimeReceiver(_WebSocketServer):
    """Receives a v1.11 realtime endpoint: JSON ``{event, data}`` text messages, all events on one connection."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[ReceivedEvent] = []
        self.errors: list[str] = []

    def on_text(self, record: ConnectionRecord, text: str) -> None:
        record.messages += 1
        try:
            name, data = wire.parse_realtime_event(text)
        except wire.WireError as exc:
            self.errors.append(str(exc))
            return
        self.events.append(ReceivedEvent(name, data, time.monotonic(), record.index))

    def of(self, event: str) -> list[ReceivedEvent]:
        return [e for e in self.events if e.event == event]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for e in self.events:
            out[e.event] += 1
        return dict(out)


__all__ = [
    "AudioReceiver",
    "ConnectionRecord",
    "RealtimeReceiver",
    "RecallClient",
    "RecallError",
    "ReceivedAudio",
    "ReceivedEvent",
    "ReceivedFrame",
    "StreamReport",
    "VideoReceiver",
    "decode_png",
]

