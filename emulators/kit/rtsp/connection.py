"""The read loop of an RTSP control connection, shared by the server (play) and the recorder (record)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from emulators.kit.rtsp.message import MessageError, RtspMessage, RtspMessageReader, bad_request, respond

# Answers one batch of parsed messages; False closes the connection.
MessageBatchHandler = Callable[[list[RtspMessage]], Awaitable[bool]]

READ_SIZE = 65536


async def serve_control_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_messages: MessageBatchHandler,
    *,
    idle_timeout: float | None = None,
    head_timeout: float | None = None,
    busy: Callable[[], bool] = lambda: False,
) -> None:
    """Feed the connection's bytes to an RTSP parser until EOF, a hang-up, the handler's False, or bytes that
    cannot be RTSP (answered 400 Bad Request: the stream cannot be resynchronised after them).

    A partial message not completed within ``head_timeout`` is answered 408; a connection that is not ``busy``
    (owns no session) and sends nothing for ``idle_timeout`` is closed: idle sockets are a descriptor leak.
    The caller closes the writer; this function only reads, and writes nothing but that 400 or 408.
    """
    parser = RtspMessageReader("server")
    with contextlib.suppress(ConnectionError, OSError):
        while not writer.is_closing():
            partial = parser.buffered > 0
            limit = head_timeout if partial else (None if busy() else idle_timeout)
            try:
                async with asyncio.timeout(limit):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                if partial:
                    writer.write(respond(408, None, f"request not completed within {head_timeout} s").serialize())
                    await writer.drain()
                return
            if not data:
                return
            try:
                messages = parser.feed(data)
            except MessageError as exc:
                writer.write(bad_request(str(exc)).serialize())
                await writer.drain()
                return
            if not await on_messages(messages):
                return
