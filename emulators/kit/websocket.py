"""A server WebSocket response that enforces RFC 6455 §5.1: a client frame without a mask closes the connection
with 1002 (protocol error). aiohttp's reader accepts unmasked client frames; devices use this class instead."""

from __future__ import annotations

from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp.http_websocket import WebSocketError

UNMASKED = "client frames must be masked (RFC 6455 section 5.1)"


class _MaskGuard:
    """Sits in front of aiohttp's frame parser and follows the frame boundaries: bytes pass through unchanged
    until a frame header without the mask bit, which fails the reader's queue with a protocol error."""

    def __init__(self, inner: Any, queue: Any) -> None:
        self._inner = inner
        self._queue = queue
        self._head = bytearray()  # the header of the frame being read
        self._skip = 0  # payload bytes of the current frame still to pass
        self._failed = False

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._failed:
            return False, b""
        size, i = len(data), 0
        frame_start = 0 if (self._head or self._skip) else None
        while i < size:
            if self._skip:
                step = min(self._skip, size - i)
                self._skip -= step
                i += step
                continue
            if not self._head:
                frame_start = i
            self._head.append(data[i])
            i += 1
            head = self._head
            if len(head) < 2:
                continue
            if not head[1] & 0x80:
                return self._fail(data[: frame_start or 0])
            short = head[1] & 0x7F
            extended = 2 if short == 126 else 8 if short == 127 else 0
            if len(head) < 2 + extended + 4:  # length bytes, then the 4-byte masking key
                continue
            self._skip = int.from_bytes(head[2 : 2 + extended], "big") if extended else short
            self._head.clear()
        return self._inner.feed_data(data)  # type: ignore[no-any-return]

    def _fail(self, valid: bytes) -> tuple[bool, bytes]:
        if valid:
            self._inner.feed_data(valid)  # whole frames before the unmasked one are still delivered
        self._failed = True
        self._queue.set_exception(WebSocketError(WSCloseCode.PROTOCOL_ERROR, UNMASKED))
        return False, b""


class MaskedWebSocketResponse(web.WebSocketResponse):
    """``web.WebSocketResponse`` that closes with 1002 on an unmasked client frame."""

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: Any) -> None:
        super()._post_start(request, protocol, writer)
        handler = request.protocol
        # aiohttp keeps the frame parser on its request handler; the guard wraps it, in front of every byte.
        handler._payload_parser = _MaskGuard(handler._payload_parser, self._reader)
