"""A loopback relay in front of an rtsp:// source, so that an RTSP redirect cannot take the pull past the egress
allowlist.

FFmpeg follows a 3xx answer to DESCRIBE on its own, to whatever ``Location`` says, with no hook to refuse it.
The ingest worker therefore opens ``rtsp://127.0.0.1:<relay>/...``; the relay connects to the checked (pinned)
address and copies bytes both ways, reading the server's side with ``ResponseScanner`` (sans-I/O). A redirect
whose ``Location`` the allowlist refuses closes both sides: FFmpeg's open fails and the worker reports why.
A redirect to an allowed place is passed on (FFmpeg then connects there itself, as it would to any source).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

MAX_HEAD_BYTES = 16 * 1024  # an RTSP response head larger than this is not a server we pull from
CONNECT_TIMEOUT_S = 5.0


@dataclass
class Redirect:
    status: int
    location: str


@dataclass
class ResponseScanner:
    """Follows the server-to-client side of an RTSP connection: response heads (with their bodies) and
    interleaved ``$`` frames; reports each redirect. ``feed`` raises ValueError on a head past MAX_HEAD_BYTES."""

    _buffer: bytearray = field(default_factory=bytearray)
    _skip: int = 0  # bytes of a body or interleaved frame still to pass

    def feed(self, data: bytes) -> list[Redirect]:
        found: list[Redirect] = []
        self._buffer += data
        while self._buffer:
            if self._skip:
                step = min(self._skip, len(self._buffer))
                del self._buffer[:step]
                self._skip -= step
                continue
            if self._buffer[0] == 0x24:  # '$' channel, 2-byte length, payload
                if len(self._buffer) < 4:
                    break
                self._skip = 4 + int.from_bytes(self._buffer[2:4], "big")
                continue
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise ValueError(f"an RTSP response head is longer than {MAX_HEAD_BYTES} bytes")
                break
            head = bytes(self._buffer[:end]).decode("latin-1")
            del self._buffer[: end + 4]
            status, headers = _parse_head(head)
            self._skip = _content_length(headers)
            if status is not None and 300 <= status < 400 and "location" in headers:
                found.append(Redirect(status, headers["location"]))
        return found


def _parse_head(head: str) -> tuple[int | None, dict[str, str]]:
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isascii() and parts[1].isdigit() else None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def _content_length(headers: dict[str, str]) -> int:
    raw = headers.get("content-length", "0")
    return int(raw) if raw.isascii() and raw.isdigit() else 0


class RedirectGuard:
    """One relay for one connection attempt of the ingest worker (threads it owns; ``close`` ends them)."""

    def __init__(self, url: str, refusal_of: Callable[[str], str | None]) -> None:
        parts = urlsplit(url)
        self._upstream = (parts.hostname or "", parts.port or 554)
        self._refusal_of = refusal_of
        self.refusal: str | None = None
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self._listener.settimeout(CONNECT_TIMEOUT_S)
        netloc = f"127.0.0.1:{self._listener.getsockname()[1]}"
        if "@" in parts.netloc:
            netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
        self.url = urlunsplit(parts._replace(netloc=netloc))
        self._sockets: list[socket.socket] = [self._listener]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="videodb-rtsp-guard", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._thread.join(timeout=2)

    def _serve(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        self._sockets.append(client)
        try:
            upstream = socket.create_connection(self._upstream, timeout=CONNECT_TIMEOUT_S)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        client.settimeout(None)
        self._sockets.append(upstream)
        forward = threading.Thread(target=self._copy, args=(client, upstream), name="videodb-rtsp-guard-up",
                                   daemon=True)
        forward.start()
        self._copy_watched(upstream, client)
        forward.join(timeout=2)

    def _copy(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        self._shut(sink)

    def _copy_watched(self, source: socket.socket, sink: socket.socket) -> None:
        scanner = ResponseScanner()
        try:
            while chunk := source.recv(65536):
                for redirect in scanner.feed(chunk):
                    refusal = self._refusal_of(redirect.location)
                    if refusal is not None:
                        self.refusal = f"the source redirected ({redirect.status}) to {redirect.location}: {refusal}"
                        self._shut(sink)
                        self._shut(source)
                        return
                sink.sendall(chunk)
        except (OSError, ValueError):
            pass
        self._shut(sink)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
