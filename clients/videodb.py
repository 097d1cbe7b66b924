"""Reference client for VideoDB real-time streams: the RTStream REST surface and the collection WebSocket.

``VideoDBClient`` speaks to ``https://api.videodb.io`` and the benchtwin emulator alike (only ``base_url`` and
the API key change). ``CollectionListener`` opens the collection WebSocket and yields typed channel messages.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp

from clients.http import SessionOwner

DEFAULT_BASE_URL = "https://api.videodb.io"


class VideoDBError(Exception):
    """An answer with ``success: false`` or a non-2xx status; ``message`` is the service's text."""

    def __init__(self, status: int, message: str, error_code: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.error_code = error_code


class VideoDBClient(SessionOwner):
    """Async client using the SDK's paths, bodies and ``x-access-token`` header."""

    def __init__(
        self, api_key: str, base_url: str = DEFAULT_BASE_URL, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        super().__init__(session)
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")

    async def request(self, method: str, path: str, *, json_body: Any = None, params: dict[str, Any] | None = None
                      ) -> Any:
        """One call; returns the envelope's ``data`` (or the whole envelope when it has none)."""
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        headers = {"x-access-token": self.api_key, "Content-Type": "application/json"}
        async with self.session.request(
            method, f"{self.base_url}/{path.lstrip('/')}", json=json_body, params=query, headers=headers
        ) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                raise VideoDBError(resp.status, await resp.text()) from None
        if resp.status >= 400 or not isinstance(body, dict) or not body.get("success"):
            message = body.get("message", "") if isinstance(body, dict) else str(body)
            raise VideoDBError(resp.status, message, body.get("error_code") if isinstance(body, dict) else None)
        return body.get("data", body)

    # ----- collections and WebSocket -------------------------------------------------------------------
    async def get_collection(self, collection_id: str = "default") -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", f"collection/{collection_id}"))

    async def websocket_url(self, collection_id: str = "default") -> str:
        return cast(str, (await self.request("GET", f"collection/{collection_id}/websocket"))["websocket_url"])

    # ----- rtstreams -----------------------------------------------------------------------------------
    async def connect_rtstream(
        self, url: str, name: str, *, collection_id: str = "default", media_types: list[str] | None = None,
        sample_rate: int | None = None, store: bool | None = None, enable_transcript: bool | None = None,
        ws_connection_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"collection_id": collection_id, "url": url, "name": name,
                                "media_types": media_types or ["video"]}
        for key, value in (("sample_rate", sample_rate), ("store", store), ("enable_transcript", enable_transcript),
                           ("ws_connection_id", ws_connection_id)):
            if value is not None:
                body[key] = value
        return cast(dict[str, Any], await self.request("POST", "rtstream", json_body=body))

    async def get_rtstream(self, rtstream_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", f"rtstream/{rtstream_id}"))

    async def list_rtstreams(self, **filters: Any) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], (await self.request("GET", "rtstream", params=filters))["results"])

    async def start(self, rtstream_id: str) -> None:
        await self.request("PATCH", f"rtstream/{rtstream_id}/status", json_body={"action": "start"})

    async def stop(self, rtstream_id: str) -> None:
        await self.request("PATCH", f"rtstream/{rtstream_id}/status", json_body={"action": "stop"})

    async def generate_stream(self, rtstream_id: str, start: float, end: float) -> dict[str, str]:
        """``{"stream_url", "player_url"}`` for the unix-seconds window."""
        urls = await self.request("GET", f"rtstream/{rtstream_id}/stream", params={"start": start, "end": end})
        return cast(dict[str, str], urls)

    async def export(self, rtstream_id: str, name: str | None = None) -> dict[str, Any]:
        body = {"name": name} if name else {}
        exported = await self.request("POST", f"rtstream/{rtstream_id}/export", json_body=body)
        return cast(dict[str, Any], exported)

    # ----- indexes, events, alerts ---------------------------------------------------------------------
    async def index_visuals(self, rtstream_id: str, *, prompt: str | None = None, time_s: int = 2,
                            frame_count: int = 5, name: str | None = None, ws_connection_id: str | None = None
                            ) -> dict[str, Any]:
        body: dict[str, Any] = {"extraction_type": "time",
                                "extraction_config": {"time": time_s, "frame_count": frame_count},
                                "prompt": prompt, "model_name": None, "model_config": {}, "name": name}
        if ws_connection_id:
            body["ws_connection_id"] = ws_connection_id
        return cast(dict[str, Any], await self.request("POST", f"rtstream/{rtstream_id}/index/scene", json_body=body))

    async def index_audio(self, rtstream_id: str, *, prompt: str | None = None, segmenter: str = "word",
                          value: int = 10, name: str | None = None, ws_connection_id: str | None = None
                          ) -> dict[str, Any]:
        body: dict[str, Any] = {"extraction_type": "transcript",
                                "extraction_config": {"segmenter": segmenter, "segmentation_value": value},
                                "prompt": prompt, "model_name": None, "model_config": {}, "name": name}
        if ws_connection_id:
            body["ws_connection_id"] = ws_connection_id
        return cast(dict[str, Any], await self.request("POST", f"rtstream/{rtstream_id}/index/scene", json_body=body))

    async def get_scenes(self, rtstream_id: str, index_id: str, *, page: int = 1, page_size: int = 100
                         ) -> dict[str, Any]:
        scenes = await self.request("GET", f"rtstream/{rtstream_id}/index/scene/{index_id}",
                                    params={"page": page, "page_size": page_size})
        return cast(dict[str, Any], scenes)

    async def create_event(self, event_prompt: str, label: str) -> str:
        data = await self.request("POST", "rtstream/event", json_body={"event_prompt": event_prompt, "label": label})
        return cast(str, data["event_id"])

    async def create_alert(self, rtstream_id: str, index_id: str, event_id: str, callback_url: str | None,
                           ws_connection_id: str | None = None) -> str:
        body: dict[str, Any] = {"event_id": event_id, "callback_url": callback_url}
        if ws_connection_id:
            body["ws_connection_id"] = ws_connection_id
        data = await self.request("POST", f"rtstream/{rtstream_id}/index/{index_id}/alert", json_body=body)
        return cast(str, data["alert_id"])

    async def set_alert(self, rtstream_id: str, index_id: str, alert_id: str, *, enabled: bool) -> None:
        await self.request("PATCH", f"rtstream/{rtstream_id}/index/{index_id}/alert/{alert_id}/status",
                           json_body={"action": "enable" if enabled else "disable"})

    # ----- transcripts and search ----------------------------------------------------------------------
    async def start_transcript(self, rtstream_id: str, ws_connection_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"action": "start"}
        if ws_connection_id:
            body["ws_connection_id"] = ws_connection_id
        return cast(dict[str, Any], await self.request("POST", f"rtstream/{rtstream_id}/transcription", json_body=body))

    async def get_transcript(self, rtstream_id: str, **params: Any) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", f"rtstream/{rtstream_id}/transcription", params=params))

    async def search(self, rtstream_id: str, query: str, index_id: str | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"query": query}
        if index_id:
            body["scene_index_id"] = index_id
        found = await self.request("POST", f"rtstream/{rtstream_id}/search", json_body=body)
        return cast(list[dict[str, Any]], found["results"])


# ----- WebSocket ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelMessage:
    """One channel frame: ``channel`` is transcript, scene_index/visual_index, audio_index or alert."""

    channel: str
    rtstream_id: str | None
    rtstream_name: str | None
    data: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @property
    def text(self) -> str | None:
        return self.data.get("text")

    @property
    def start_ms(self) -> int | None:
        return self.data.get("start")

    @property
    def end_ms(self) -> int | None:
        return self.data.get("end")


class CollectionListener:
    """``async with CollectionListener(url) as ws:`` then ``ws.connection_id`` and ``async for m in ws``."""

    def __init__(self, websocket_url: str, *, session: aiohttp.ClientSession | None = None) -> None:
        self.url = websocket_url
        self.connection_id: str | None = None
        self._session = session
        self._owns_session = session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> CollectionListener:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url, heartbeat=20.0, max_msg_size=1024 * 1024)
        first = await self._ws.receive_json(timeout=10.0)
        self.connection_id = first.get("connection_id")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._owns_session and self._session is not None:
            await self._session.close()

    def __aiter__(self) -> AsyncIterator[ChannelMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[ChannelMessage]:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            try:
                raw = json.loads(frame.data)
            except ValueError:
                continue
            yield ChannelMessage(
                channel=str(raw.get("channel", "")),
                rtstream_id=raw.get("rtstream_id"),
                rtstream_name=raw.get("rtstream_name"),
                data=raw.get("data") or {},
                raw=raw,
            )
