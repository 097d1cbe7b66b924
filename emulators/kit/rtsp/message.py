"""RTSP/1.0 messages (RFC 2326 §4-§7) and the byte-stream reader that splits a TCP connection
into requests, responses and `$`-interleaved binary frames, with no I/O of its own."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

RTSP_VERSION = "RTSP/1.0"
SERVER_NAME = "benchtwin rtspd"
MAX_HEADER_BYTES = 16 * 1024  # a request head larger than this is garbage, not a slow client
MAX_BODY_BYTES = 1024 * 1024

REASONS: dict[int, str] = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    451: "Parameter Not Understood",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    457: "Invalid Range",
    459: "Aggregate Operation Not Allowed",
    460: "Only Aggregate Operation Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "RTSP Version Not Supported",
    551: "Option not supported",
}


class MessageError(ValueError):
    """Bytes that cannot be an RTSP message; the connection cannot be resynchronised after it."""


class Headers:
    """Ordered, case-insensitive RTSP headers (names keep the casing they were given)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(k, v) for k, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        lowered = name.lower()
        for key, value in self._items:
            if key.lower() == lowered:
                return value
        return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def set(self, name: str, value: str) -> None:
        lowered = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != lowered]
        self._items.append((name, value))

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass
class RtspRequest:
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = RTSP_VERSION

    @property
    def cseq(self) -> str | None:
        return self.headers.get("CSeq")

    @property
    def session_id(self) -> str | None:
        """The Session header without its `;timeout=` parameter."""
        value = self.headers.get("Session")
        return value.split(";", 1)[0].strip() if value else None

    def serialize(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@dataclass
class RtspResponse:
    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    reason: str = ""
    version: str = RTSP_VERSION

    def __post_init__(self) -> None:
        if not self.reason:
            self.reason = REASONS.get(self.status, "Unknown")

    @property
    def cseq(self) -> str | None:
        return self.headers.get("CSeq")

    def with_cseq(self, cseq: str | None) -> RtspResponse:
        if cseq is not None:
            self.headers.set("CSeq", cseq)
        return self

    def serialize(self) -> bytes:
        return _serialize(f"{self.version} {self.status} {self.reason}", self.headers, self.body)


@dataclass(frozen=True)
class InterleavedFrame:
    """One `$`-framed binary packet (RFC 2326 §10.12): RTP or RTCP on a TCP channel."""

    channel: int
    payload: bytes

    def serialize(self) -> bytes:
        return interleave(self.channel, self.payload)


RtspMessage = RtspRequest | RtspResponse | InterleavedFrame


def respond(status: int, cseq: str | None, error: str | None = None) -> RtspResponse:
    """A server response with CSeq echoed; an error carries a text/plain body saying what was wrong."""
    headers = Headers()
    if cseq is not None:
        headers.set("CSeq", cseq)
    headers.set("Server", SERVER_NAME)
    response = RtspResponse(status, headers)
    if error is not None:
        response.headers.set("Content-Type", "text/plain; charset=utf-8")
        response.body = (error + "\n").encode("utf-8")
    return response


def bad_request(reason: str) -> RtspResponse:
    """The answer to bytes that are not RTSP at all (no CSeq can be echoed)."""
    return respond(400, None, f"not an RTSP request: {reason}")


def interleave(channel: int, payload: bytes) -> bytes:
    if not 0 <= channel <= 255:
        raise ValueError(f"interleaved channel must be 0-255, got {channel}")
    if len(payload) > 0xFFFF:
        raise ValueError(f"interleaved payload must be at most 65535 bytes, got {len(payload)}")
    return struct.pack("!cBH", b"$", channel, len(payload)) + payload


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    lines = [start_line]
    has_length = False
    for name, value in headers:
        if name.lower() == "content-length":
            has_length = True
        lines.append(f"{name}: {value}")
    if body and not has_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


class RtspMessageReader:
    """Incremental parser: `feed()` bytes as they arrive, get whole messages back in order.

    `role="server"` expects requests (and interleaved frames a client may send, such as RTCP
    receiver reports or RECORD media); `role="client"` expects responses and interleaved frames.
    """

    def __init__(self, role: Literal["server", "client"] = "server") -> None:
        self._role = role
        self._buffer = bytearray()
        self._failed = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[RtspMessage]:
        """Consume `data`; return every message now complete. Raises MessageError on garbage."""
        if self._failed:
            raise MessageError("reader already failed on earlier garbage")
        self._buffer += data
        messages: list[RtspMessage] = []
        try:
            while True:
                message = self._next_message()
                if message is None:
                    return messages
                messages.append(message)
        except MessageError:
            self._failed = True
            raise

    def _next_message(self) -> RtspMessage | None:
        buf = self._buffer
        # Clients may send stray CRLFs between messages (RFC 2326 §15.1 inherits this from HTTP).
        while buf[:2] == b"\r\n" or buf[:1] == b"\n":
            del buf[: 2 if buf[:2] == b"\r\n" else 1]
        if not buf:
            return None
        if buf[0] == 0x24:  # '$'
            if len(buf) < 4:
                return None
            channel, length = buf[1], struct.unpack_from("!H", buf, 2)[0]
            if len(buf) < 4 + length:
                return None
            frame = InterleavedFrame(channel, bytes(buf[4 : 4 + length]))
            del buf[: 4 + length]
            return frame
        # Whichever blank line comes first ends the head: CRLF CRLF, or bare LF LF from lax clients.
        ends = [(i, n) for i, n in ((buf.find(b"\r\n\r\n"), 4), (buf.find(b"\n\n"), 2)) if i >= 0]
        head_end, separator = min(ends) if ends else (-1, 0)
        if head_end > MAX_HEADER_BYTES:
            # However the bytes arrived (one read or many), the head itself is over the limit.
            raise MessageError(f"message head exceeds {MAX_HEADER_BYTES} bytes")
        if head_end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise MessageError(f"message head exceeds {MAX_HEADER_BYTES} bytes")
            if not _plausible_prefix(bytes(buf[:16])):
                raise MessageError(f"not an RTSP message: {bytes(buf[:32])!r}")
            return None
        head = bytes(buf[:head_end])
        message = self._parse_head(head)
        length_text = message.headers.get("Content-Length", "0") or "0"
        try:
            length = int(length_text.strip())
        except ValueError:
            raise MessageError(f"Content-Length must be an integer, got {length_text!r}") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise MessageError(f"Content-Length must be 0-{MAX_BODY_BYTES}, got {length}")
        total = head_end + separator + length
        if len(buf) < total:
            return None
        message.body = bytes(buf[head_end + separator : total])
        del buf[:total]
        return message

    def _parse_head(self, head: bytes) -> RtspRequest | RtspResponse:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            raise MessageError("message head is not UTF-8") from None
        lines = text.replace("\r\n", "\n").split("\n")
        start, header_lines = lines[0], lines[1:]
        headers = Headers()
        for line in header_lines:
            if line[:1] in (" ", "\t") and len(headers):
                # Folded continuation line: append to the previous header's value.
                name, value = list(headers)[-1]
                headers.set(name, value + " " + line.strip())
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip() or " " in name.strip():
                raise MessageError(f"malformed header line {line!r}")
            headers.add(name.strip(), value.strip())
        parts = start.split(" ")
        if self._role == "client":
            if len(parts) < 2 or not parts[0].startswith("RTSP/") or not (parts[1].isascii() and parts[1].isdigit()):
                raise MessageError(f"malformed status line {start!r}")
            return RtspResponse(int(parts[1]), headers, reason=" ".join(parts[2:]), version=parts[0])
        if len(parts) != 3 or not parts[2].startswith("RTSP/") or not parts[0].isupper():
            raise MessageError(f"malformed request line {start!r}")
        return RtspRequest(parts[0], parts[1], headers, version=parts[2])


def _plausible_prefix(prefix: bytes) -> bool:
    """Whether a partial head could still become an RTSP message (fail fast on binary garbage)."""
    if not prefix:
        return True
    first = prefix.split(b" ", 1)[0]
    return all(0x21 <= b < 0x7F for b in first)
