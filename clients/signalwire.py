"""Reference client for SignalWire's Compatibility API conferences, and a receiver for their audio streams.

``SignalWireClient`` speaks to a real space (``example.signalwire.com``) or the benchtwin emulator alike: only
``space_url`` (and the CA bundle) change. ``MediaStreamReceiver`` is what a customer runs: a wss server that
SignalWire dials out to; it decodes every message and the audio, and reports cadence, gaps and parameters.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from clients.http import SessionOwner
from clients.signalwire_media import CHUNK_MS, MediaFormat, decode

API_ROOT = "/api/laml/2010-04-01"


class SignalWireRestError(Exception):
    """A non-2xx answer; ``body`` is the decoded JSON error (``{code, message, ...}`` or ``{errors: [...]}``)."""

    def __init__(self, status: int, body: Any, method: str, path: str) -> None:
        super().__init__(f"{method} {path} returned {status}: {body}")
        self.status = status
        self.body = body


class SignalWireClient(SessionOwner):
    """Async client for ``/api/laml/2010-04-01/Accounts/{project}/Conferences``, with the official SDK's names.

    ``body_encoding`` is ``"form"`` (what the vendor's API document declares) or ``"json"`` (what the
    official Python SDK sends).
    """

    def __init__(
        self,
        project: str,
        token: str,
        space_url: str,
        *,
        ca_bundle: str | Path | None = None,
        body_encoding: str = "form",
        timeout_s: float = 10.0,
    ) -> None:
        if body_encoding not in ("form", "json"):
            raise ValueError(f"body_encoding must be 'form' or 'json', got {body_encoding!r}")
        self.project = project
        self.base_url = space_url.rstrip("/") if "://" in space_url else f"https://{space_url.rstrip('/')}"
        self.body_encoding = body_encoding
        credentials = base64.b64encode(f"{project}:{token}".encode()).decode("ascii")
        self._authorization = f"Basic {credentials}"
        self._ssl: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            self._ssl = ssl.create_default_context(cafile=str(ca_bundle))
        super().__init__(timeout=aiohttp.ClientTimeout(total=timeout_s))

    @property
    def conferences_path(self) -> str:
        return f"{API_ROOT}/Accounts/{self.project}/Conferences"

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None,
                       params: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Authorization": self._authorization}
        kwargs: dict[str, Any] = {"ssl": self._ssl, "headers": headers}
        if params:
            kwargs["params"] = {k: _wire_value(v) for k, v in params.items()}
        if body is not None:
            if self.body_encoding == "json":
                kwargs["json"] = body
            else:
                kwargs["data"] = {k: _wire_value(v) for k, v in body.items()}
        async with self.session.request(method, self.base_url + path, **kwargs) as resp:
            raw = await resp.read()
            parsed: Any = None
            if raw:
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = raw.decode(errors="replace")
            if resp.status >= 300:
                raise SignalWireRestError(resp.status, parsed, method, path)
            return parsed if isinstance(parsed, dict) else {}

    def _path(self, *parts: str) -> str:
        return "/".join([self.conferences_path, *parts])

    # --- conferences ---
    async def list(self, **params: Any) -> dict[str, Any]:
        return await self._request("GET", self.conferences_path, params=params)

    async def get(self, sid: str) -> dict[str, Any]:
        return await self._request("GET", self._path(sid))

    async def update(self, sid: str, **fields: Any) -> dict[str, Any]:
        return await self._request("POST", self._path(sid), body=fields)

    # --- participants ---
    async def list_participants(self, conference_sid: str, **params: Any) -> dict[str, Any]:
        return await self._request("GET", self._path(conference_sid, "Participants"), params=params)

    async def get_participant(self, conference_sid: str, call_sid: str) -> dict[str, Any]:
        return await self._request("GET", self._path(conference_sid, "Participants", call_sid))

    async def update_participant(self, conference_sid: str, call_sid: str, **fields: Any) -> dict[str, Any]:
        return await self._request("POST", self._path(conference_sid, "Participants", call_sid), body=fields)

    async def remove_participant(self, conference_sid: str, call_sid: str) -> dict[str, Any]:
        return await self._request("DELETE", self._path(conference_sid, "Participants", call_sid))

    # --- recordings ---
    async def list_recordings(self, conference_sid: str, **params: Any) -> dict[str, Any]:
        return await self._request("GET", self._path(conference_sid, "Recordings"), params=params)

    async def get_recording(self, conference_sid: str, recording_sid: str) -> dict[str, Any]:
        return await self._request("GET", self._path(conference_sid, "Recordings", recording_sid))

    async def update_recording(self, conference_sid: str, recording_sid: str, **fields: Any) -> dict[str, Any]:
        return await self._request("POST", self._path(conference_sid, "Recordings", recording_sid), body=fields)

    async def delete_recording(self, conference_sid: str, recording_sid: str) -> dict[str, Any]:
        return await self._request("DELETE", self._path(conference_sid, "Recordings", recording_sid))

    # --- streams ---
    async def start_stream(self, conference_sid: str, **fields: Any) -> dict[str, Any]:
        """``Url`` (wss only) and optional ``Name``, ``Track``, ``StreamCodec``, ``StatusCallback``, ...

        Custom parameters go as ``**{"Parameter1.Name": "x", "Parameter1.Value": "y"}``, or pass
        ``parameters={"x": "y"}`` and they are numbered for you.
        """
        parameters = fields.pop("parameters", None) or {}
        for index, (name, value) in enumerate(parameters.items(), start=1):
            fields[f"Parameter{index}.Name"] = name
            fields[f"Parameter{index}.Value"] = value
        return await self._request("POST", self._path(conference_sid, "Streams"), body=fields)

    async def stop_stream(self, conference_sid: str, stream_sid: str, **fields: Any) -> dict[str, Any]:
        fields.setdefault("Status", "stopped")
        return await self._request("POST", self._path(conference_sid, "Streams", stream_sid), body=fields)


def _wire_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ----- the messages a stream carries ------------------------------------------------------------------------
@dataclass(frozen=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True)
class Start:
    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...]
    custom_parameters: dict[str, str]
    encoding: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class Media:
    sequence_number: int
    track: str
    chunk: int
    timestamp: int
    payload: bytes
    received_at: float  # monotonic seconds


@dataclass(frozen=True)
class Dtmf:
    sequence_number: int
    stream_sid: str | None
    digit: str
    duration: int


@dataclass(frozen=True)
class Mark:
    stream_sid: str | None
    name: str


@dataclass(frozen=True)
class Stop:
    sequence_number: int


@dataclass(frozen=True)
class Unknown:
    raw: Any


Message = Connected | Start | Media | Dtmf | Mark | Stop | Unknown


def parse_server_message(text: str, received_at: float | None = None) -> Message:
    """One JSON text frame from SignalWire, typed; counters (strings on the wire) become integers."""
    data = json.loads(text)
    at = time.monotonic() if received_at is None else received_at
    event = data.get("event") if isinstance(data, dict) else None
    if event == "connected":
        return Connected(data["protocol"], data["version"])
    if event == "start":
        start = data["start"]
        fmt = start["mediaFormat"]
        return Start(int(data["sequenceNumber"]), start["streamSid"], start["accountSid"], start["callSid"],
                     tuple(start["tracks"]), dict(start.get("customParameters", {})), fmt["encoding"],
                     int(fmt["sampleRate"]), int(fmt["channels"]))
    if event == "media":
        media = data["media"]
        return Media(int(data["sequenceNumber"]), media["track"], int(media["chunk"]), int(media["timestamp"]),
                     base64.b64decode(media["payload"]), at)
    if event == "dtmf":
        return Dtmf(int(data["sequenceNumber"]), data.get("streamSid"), data["dtmf"]["digit"],
                    data["dtmf"]["duration"])
    if event == "mark":
        return Mark(data.get("streamSid"), data["mark"]["name"])
    if event == "stop":
        return Stop(int(data["sequenceNumber"]))
    return Unknown(data)


@dataclass(frozen=True)
class Cadence:
    """Inter-arrival statistics of one track's media messages, in milliseconds."""

    count: int
    mean_interval_ms: float
    p99_jitter_ms: float  # |interval - 20 ms|, 99th percentile
    max_interval_ms: float


@dataclass
class ReceivedStream:
    """One connection from SignalWire: what arrived, in order, plus helpers to talk back (bidirectional)."""

    path: str
    headers: dict[str, str]
    ws: web.WebSocketResponse
    messages: list[Message] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # --- what arrived ---
    @property
    def start(self) -> Start | None:
        return next((m for m in self.messages if isinstance(m, Start)), None)

    @property
    def stream_sid(self) -> str | None:
        return self.start.stream_sid if self.start else None

    @property
    def custom_parameters(self) -> dict[str, str]:
        return self.start.custom_parameters if self.start else {}

    @property
    def bearer_token(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value[7:] if value.startswith("Bearer ") else None

    @property
    def media_format(self) -> MediaFormat | None:
        start = self.start
        if start is None:
            return None
        codec = "PCMU" if start.encoding == "audio/x-mulaw" else "PCMA" if start.encoding == "audio/x-alaw" else "L16"
        return MediaFormat(codec, start.encoding, start.sample_rate, start.channels)

    def media(self, track: str | None = None) -> list[Media]:
        return [m for m in self.messages if isinstance(m, Media) and (track is None or m.track == track)]

    def of_type(self, kind: type) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]

    def audio(self, track: str = "inbound", *, byte_order: str = "big") -> np.ndarray:
        """The track's samples as int16, chunks concatenated in arrival order."""
        fmt = self.media_format
        if fmt is None:
            return np.zeros(0, dtype=np.int16)
        fmt = MediaFormat(fmt.codec, fmt.encoding, fmt.sample_rate, fmt.channels, byte_order)
        chunks = [decode(m.payload, fmt) for m in self.media(track)]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def missing_chunks(self, track: str) -> list[int]:
        """Chunk numbers that never arrived between the first and the last one received."""
        seen = [m.chunk for m in self.media(track)]
        if not seen:
            return []
        present = set(seen)
        return [c for c in range(min(seen), max(seen) + 1) if c not in present]

    def sequence_gaps(self) -> list[int]:
        """sequenceNumbers missing from the stream (start through stop)."""
        numbers = sorted(getattr(m, "sequence_number", 0) for m in self.messages
                         if isinstance(m, Start | Media | Dtmf | Stop))
        if not numbers:
            return []
        present = set(numbers)
        return [n for n in range(numbers[0], numbers[-1] + 1) if n not in present]

    def cadence(self, track: str = "inbound", *, skip: int = 0) -> Cadence:
        times = np.array([m.received_at for m in self.media(track)][skip:])
        if len(times) < 2:
            return Cadence(len(times), 0.0, 0.0, 0.0)
        intervals = np.diff(times) * 1000.0
        jitter = np.abs(intervals - CHUNK_MS)
        return Cadence(len(times), float(intervals.mean()), float(np.percentile(jitter, 99)), float(intervals.max()))

    # --- waiting ---
    async def wait_until(self, predicate: Callable[[ReceivedStream], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def wait_media(self, count: int, track: str | None = None, timeout_s: float = 5.0) -> list[Media]:
        await self.wait_until(lambda s: len(s.media(track)) >= count or s.closed.is_set(), timeout_s)
        return self.media(track)

    async def wait_closed(self, timeout_s: float = 5.0) -> int | None:
        async with asyncio.timeout(timeout_s):
            await self.closed.wait()
        return self.close_code

    # --- talking back (bidirectional) ---
    async def send_media(self, payload: bytes) -> None:
        await self.ws.send_json({"event": "media", "streamSid": self.stream_sid,
                                 "media": {"payload": base64.b64encode(payload).decode()}})

    async def send_mark(self, name: str) -> None:
        await self.ws.send_json({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def send_clear(self) -> None:
        await self.ws.send_json({"event": "clear", "streamSid": self.stream_sid})

    async def send_dtmf(self, digit: str) -> None:
        await self.ws.send_json({"event": "dtmf", "streamSid": self.stream_sid, "dtmf": {"digit": digit}})

    async def close(self, code: int = 1000) -> None:
        await self.ws.close(code=code)

    def _record(self, text: str) -> None:
        self.raw.append(text)
        try:
            self.messages.append(parse_server_message(text))
        except (ValueError, KeyError, TypeError):
            self.messages.append(Unknown(text))
        self._changed.set()


class MediaStreamReceiver:
    """A wss server (or ws, with ``tls=False``) that accepts SignalWire streams.

    A wss receiver needs a server certificate: ``ssl_context``, or ``certfile`` and ``keyfile`` (the
    ``cert`` and ``key`` that ``benchtwin certs --json`` prints). ``reject_status`` answers upgrades with that
    HTTP status instead (e.g. 403), to test refusals.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        tls: bool = True,
        reject_status: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.reject_status = reject_status
        if ssl_context is None and tls:
            if certfile is None or keyfile is None:
                raise ValueError("a wss receiver needs ssl_context, or certfile and keyfile (the cert and key "
                                 "`benchtwin certs --json` prints); pass tls=False for plain ws")
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(str(certfile), str(keyfile))
        self.ssl_context = ssl_context
        self.streams: list[ReceivedStream] = []
        self.connection_attempts = 0
        self._arrived: asyncio.Queue[ReceivedStream] = asyncio.Queue()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}/audio"

    async def start(self) -> MediaStreamReceiver:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._accept)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context if self.tls else None)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def aclose(self) -> None:
        for stream in self.streams:
            if not stream.ws.closed:
                await stream.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MediaStreamReceiver:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def next_stream(self, timeout_s: float = 5.0) -> ReceivedStream:
        async with asyncio.timeout(timeout_s):
            return await self._arrived.get()

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        self.connection_attempts += 1
        if self.reject_status is not None:
            return web.Response(status=self.reject_status, text="refused by the test receiver")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=16 * 1024**2)
        await ws.prepare(request)
        stream = ReceivedStream(path=request.path, headers=dict(request.headers), ws=ws)
        self.streams.append(stream)
        self._arrived.put_nowait(stream)
        try:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    stream._record(message.data)
        finally:
            stream.close_code = ws.close_code
            stream.closed.set()
            stream._changed.set()
        return ws
