"""`RtspRecorder`: an asyncio RTSP server in record mode that push clients publish to; it keeps the
announced SDP, the request log and the depacketized media for tests and emulators to inspect."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from emulators.kit.rtsp.connection import serve_control_connection
from emulators.kit.rtsp.h264 import parse_sprop_parameter_sets
from emulators.kit.rtsp.message import InterleavedFrame, RtspMessage, RtspRequest
from emulators.kit.rtsp.record import RecordCore, RecordedAudio, RecordedVideo
from emulators.kit.rtsp.sdp import SessionDescription

# A publisher that is not recording and sends nothing, or leaves a request half-sent, holds a socket for nothing.
IDLE_TIMEOUT_S = 60.0
HEAD_TIMEOUT_S = 10.0


class RtspRecorder:
    """Accepts ANNOUNCE + SETUP mode=record + RECORD with interleaved RTP, optionally behind Basic or
    Digest authentication (`credentials=(user, password)`, `auth_scheme="basic"|"digest"`)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: tuple[str, str] | None = None,
        auth_scheme: str = "basic",
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        seed: int | None = None,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._on_event = on_event
        self.core = RecordCore(credentials=credentials, auth_scheme=auth_scheme, rng=random.Random(seed))
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_connection, self._host, self._requested_port)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("RtspRecorder.port is only known after start()")
        return cast(int, self._server.sockets[0].getsockname()[1])

    @property
    def sdp(self) -> str | None:
        """The SDP text the publisher ANNOUNCEd."""
        return self.core.announced_sdp

    @property
    def description(self) -> SessionDescription | None:
        return self.core.description

    @property
    def requests(self) -> list[RtspRequest]:
        return self.core.requests

    @property
    def video(self) -> list[RecordedVideo]:
        return self.core.video

    @property
    def audio(self) -> list[RecordedAudio]:
        return self.core.audio

    def parameter_sets(self) -> list[bytes]:
        """SPS/PPS from the announced SDP's sprop-parameter-sets (empty if none were announced)."""
        for media in self.description.media if self.description else []:
            sprop = media.fmtp.get("sprop-parameter-sets")
            if media.rtpmap and media.rtpmap[1].upper() == "H264" and sprop:
                return parse_sprop_parameter_sets(sprop)
        return []

    @property
    def recording(self) -> bool:
        return self.core.recording

    async def wait_for(self, predicate: Callable[[RtspRecorder], bool], within: float) -> None:
        """Wait until `predicate(self)` holds after some request or media; TimeoutError otherwise."""
        async with asyncio.timeout(within):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        pending = {t for t in self._tasks if not t.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=1.0)
        for writer in list(self._writers):
            writer.transport.abort()
        if pending:
            _, pending = await asyncio.wait(pending, timeout=1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        peer = "{}:{}".format(*(writer.get_extra_info("peername") or ("?", 0))[:2])
        self._emit("client_connected", {"peer": peer})
        try:
            await serve_control_connection(
                reader, writer, partial(self._serve_messages, writer),
                idle_timeout=IDLE_TIMEOUT_S, head_timeout=HEAD_TIMEOUT_S, busy=lambda: self.core.recording,
            )
        finally:
            if self.core.recording:
                self.core.recording = False  # the publisher vanished without TEARDOWN
                self._emit("teardown", {"peer": peer, "reason": "connection closed"})
            self._changed.set()
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            self._writers.discard(writer)
            self._emit("client_disconnected", {"peer": peer})
            self._tasks.discard(task)

    async def _serve_messages(self, writer: asyncio.StreamWriter, messages: list[RtspMessage]) -> bool:
        keep_open = True
        for message in messages:
            if isinstance(message, InterleavedFrame):
                if self.core.receive(message):
                    self._changed.set()
                continue
            if not isinstance(message, RtspRequest):
                continue
            reply = self.core.handle(message)
            writer.write(reply.response.serialize())
            self._changed.set()
            if message.method == "RECORD" and reply.response.status == 200:
                self._emit("record", {"session": self.core.session_id, "sdp": self.core.announced_sdp})
            if message.method == "TEARDOWN" and reply.response.status == 200:
                self._emit("teardown", {"reason": "teardown", "video_units": len(self.core.video)})
            if reply.close:
                keep_open = False
        await writer.drain()
        return keep_open

    def _emit(self, kind: str, details: dict[str, Any]) -> None:
        if self._on_event is not None:
            with contextlib.suppress(Exception):
                self._on_event(kind, details)
