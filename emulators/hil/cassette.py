"""The cassette: a directory holding ``cassette.har`` (HAR 1.2 with ``_webSocketMessages``), ``manifest.json``
and ``media/`` sidecar files for large binary bodies.

HAR is what browsers and mitmproxy export, so a cassette opens in their viewers; the benchtwin-specific parts
use HAR's ``_``-prefixed custom fields (``_webSocketClose``, ``_dialOut``, ``_media``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import mimetypes
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

HAR_FILE = "cassette.har"
MANIFEST_FILE = "manifest.json"
MEDIA_DIR = "media"
SIDECAR_THRESHOLD = 256 * 1024  # binary bodies above this go to media/ instead of inline base64
FORMAT_VERSION = 1


def benchtwin_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("benchtwin")
    except metadata.PackageNotFoundError:
        return "0+checkout"


def iso_time(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Manifest:
    device: str
    target: str
    recorded_at: str
    benchtwin_version: str = field(default_factory=benchtwin_version)
    seed: int | None = None  # set when the recorded target was an emulator stand-in
    settings: dict[str, Any] = field(default_factory=dict)  # the stand-in's quirk profile, if any
    redacted: bool = True
    format: int = FORMAT_VERSION


@dataclass
class Message:
    """One WebSocket message. ``direction`` is HAR's: ``send`` = client to device, ``receive`` = device to client."""

    direction: str
    time: float  # epoch seconds
    opcode: int  # 1 text, 2 binary
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class Exchange:
    """One HTTP exchange, a WebSocket session (``messages`` set), or a dial-out the device made (``dial_out`` set)."""

    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    status: int
    status_text: str
    response_headers: list[tuple[str, str]]
    response_body: bytes
    started: float
    duration_ms: float
    messages: list[Message] | None = None
    close_code: int | None = None
    closed_by: str | None = None  # "client" | "device"
    # Dial-outs: {"of": index of the request that named the receiver, "field": where its URL was, "url": original}
    dial_out: dict[str, Any] | None = None
    media: dict[str, Any] | None = None  # RTSP/RTMP capture facts (SDP, transport, RTP stats, remuxed file)

    @property
    def is_websocket(self) -> bool:
        return self.messages is not None

    @property
    def raw_path_qs(self) -> str:
        """The path and query as sent (percent-encoded); urlsplit is not used, it drops tabs and newlines."""
        rest = self.url.split("://", 1)[-1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"

    @property
    def path(self) -> str:
        return unquote(self.raw_path_qs.partition("?")[0]) or "/"

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.raw_path_qs.partition("?")[2], keep_blank_values=True)

    def header(self, name: str, *, response: bool = True) -> str | None:
        headers = self.response_headers if response else self.request_headers
        for key, value in headers:
            if key.lower() == name.lower():
                return value
        return None

    def label(self) -> str:
        kind = "WS " if self.is_websocket else ""
        if self.dial_out is not None:  # named by the request field that gave the receiver, not its URL
            return f"DIAL {self.dial_out.get('field', '')} {kind}{self.method}"
        query = unquote(self.raw_path_qs.partition("?")[2])
        return f"{kind}{self.method} {self.path}{'?' + query if query else ''}"


@dataclass
class Cassette:
    manifest: Manifest
    exchanges: list[Exchange] = field(default_factory=list)
    root: Path | None = None  # the directory it was loaded from (where media/ sidecars are)

    def device_exchanges(self) -> list[Exchange]:
        """What the client asked of the device over HTTP/WebSocket (no dial-outs, no media), in recorded order."""
        return [e for e in self.exchanges if e.dial_out is None and e.media is None]

    def media_captures(self) -> list[Exchange]:
        """RTSP/RTMP captures: SDP, transport, RTP statistics and a remuxed file."""
        return [e for e in self.exchanges if e.media is not None]

    def dial_outs_of(self, index: int) -> list[Exchange]:
        return [e for e in self.exchanges if e.dial_out is not None and e.dial_out.get("of") == index]

    # ----- HAR -----------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        media = root / MEDIA_DIR
        entries = [_entry(i, e, media) for i, e in enumerate(self.exchanges)]
        har = {"log": {
            "version": "1.2",
            "creator": {"name": "benchtwin", "version": self.manifest.benchtwin_version},
            "pages": [],
            "entries": entries,
        }}
        (root / HAR_FILE).write_text(json.dumps(har, indent=1) + "\n")
        (root / MANIFEST_FILE).write_text(json.dumps(asdict(self.manifest), indent=2) + "\n")
        return root

    @classmethod
    def load(cls, directory: str | Path) -> Cassette:
        root = Path(directory)
        har_path = root / HAR_FILE if root.is_dir() else root
        if not har_path.exists():
            raise FileNotFoundError(f"{directory}: not a cassette (no {HAR_FILE})")
        root = har_path.parent
        har = json.loads(har_path.read_text())
        manifest_path = root / MANIFEST_FILE
        if manifest_path.exists():
            known = set(Manifest.__dataclass_fields__)
            manifest = Manifest(**{k: v for k, v in json.loads(manifest_path.read_text()).items() if k in known})
        else:  # a HAR from a browser or mitmproxy: no device, replayable but not comparable without --device
            manifest = Manifest(device="", target="", recorded_at="", redacted=False)
        return cls(manifest, [_exchange(entry, root) for entry in har["log"]["entries"]], root)


def _pairs(headers: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in headers]


def _is_text(mime: str) -> bool:
    mime = mime.split(";")[0].strip().lower()
    return mime.startswith("text/") or mime.endswith(("json", "xml", "javascript", "x-www-form-urlencoded", "sdp"))


def _body_field(body: bytes, mime: str, sidecar: Path, name: str) -> dict[str, Any]:
    """HAR content: text inline when it is text, base64 when binary, a media/ file when large and binary."""
    out: dict[str, Any] = {"size": len(body), "mimeType": mime}
    if not body:
        out["text"] = ""
        return out
    if _is_text(mime):
        try:
            out["text"] = body.decode("utf-8")
            return out
        except UnicodeDecodeError:
            pass
    if len(body) > SIDECAR_THRESHOLD:
        sidecar.mkdir(parents=True, exist_ok=True)
        ext = mimetypes.guess_extension(mime.split(";")[0].strip()) or ".bin"
        (sidecar / f"{name}{ext}").write_bytes(body)
        out["_file"] = f"{MEDIA_DIR}/{name}{ext}"
        return out
    out["text"] = base64.b64encode(body).decode("ascii")
    out["encoding"] = "base64"
    return out


def _read_body(content: dict[str, Any], root: Path) -> bytes:
    if "_file" in content:
        return (root / content["_file"]).read_bytes()
    text = content.get("text", "")
    if content.get("encoding") == "base64":
        return base64.b64decode(text)
    return text.encode("utf-8")


def _entry(index: int, e: Exchange, media: Path) -> dict[str, Any]:
    request_mime = e.header("Content-Type", response=False) or ""
    response_mime = e.header("Content-Type") or ""
    request: dict[str, Any] = {
        "method": e.method, "url": e.url, "httpVersion": "HTTP/1.1", "cookies": [],
        "headers": _pairs(e.request_headers), "queryString": [{"name": k, "value": v} for k, v in e.query],
        "headersSize": -1, "bodySize": len(e.request_body),
    }
    if e.request_body:
        posted = _body_field(e.request_body, request_mime or "application/octet-stream", media, f"{index}-request")
        posted.pop("size")
        request["postData"] = posted
    entry: dict[str, Any] = {
        "startedDateTime": iso_time(e.started),
        "time": round(e.duration_ms, 3),
        "request": request,
        "response": {
            "status": e.status, "statusText": e.status_text, "httpVersion": "HTTP/1.1", "cookies": [],
            "headers": _pairs(e.response_headers),
            "content": _body_field(e.response_body, response_mime, media, f"{index}-response"),
            "redirectURL": e.header("Location") or "", "headersSize": -1, "bodySize": len(e.response_body),
        },
        "cache": {},
        "timings": {"send": 0, "wait": round(e.duration_ms, 3), "receive": 0},
        "_resourceType": "websocket" if e.is_websocket else "fetch",
    }
    if e.messages is not None:
        entry["_webSocketMessages"] = [
            {"type": m.direction, "time": m.time, "opcode": m.opcode,
             "data": m.text if m.opcode == 1 else base64.b64encode(m.data).decode("ascii")}
            for m in e.messages
        ]
        entry["_webSocketClose"] = {"code": e.close_code, "by": e.closed_by}
    if e.dial_out is not None:
        entry["_dialOut"] = e.dial_out
    if e.media is not None:
        entry["_media"] = e.media
    return entry


def _exchange(entry: dict[str, Any], root: Path) -> Exchange:
    request, response = entry["request"], entry["response"]
    messages = None
    if "_webSocketMessages" in entry:
        messages = [
            Message(m["type"], float(m["time"]), int(m.get("opcode", 1)),
                    m["data"].encode("utf-8") if int(m.get("opcode", 1)) == 1 else base64.b64decode(m["data"]))
            for m in entry["_webSocketMessages"]
        ]
    close = entry.get("_webSocketClose") or {}
    posted = request.get("postData")
    return Exchange(
        method=request["method"],
        url=request["url"],
        request_headers=[(h["name"], h["value"]) for h in request.get("headers", [])],
        request_body=_read_body(posted, root) if posted else b"",
        status=int(response.get("status", 0)),
        status_text=response.get("statusText", ""),
        response_headers=[(h["name"], h["value"]) for h in response.get("headers", [])],
        response_body=_read_body(response.get("content", {}), root),
        started=parse_iso_time(entry["startedDateTime"]),
        duration_ms=float(entry.get("time", 0)),
        messages=messages,
        close_code=close.get("code"),
        closed_by=close.get("by"),
        dial_out=entry.get("_dialOut"),
        media=entry.get("_media"),
    )
