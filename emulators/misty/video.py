"""StartVideoStreaming's WebSocket server: one binary JPEG per message, encoded once, newest frame per viewer.

A ``VideoStream`` binds its own port on start and frees it on close, after closing every viewer with 1000.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web

from emulators.kit.emulator import Emulator, bind_tcp
from emulators.kit.faults import Abort, Close, Send, Skip, Stall, corrupt_payload
from emulators.kit.pacer import Pacer
from emulators.kit.tasks import TaskOwner
from emulators.kit.websocket import MaskedWebSocketResponse
from emulators.misty.media import VideoFrameEncoder
from emulators.misty.model import VideoParams
from emulators.misty.scene import MistyScene

FRAME_RATE = 30.0
STREAM_NAME = "video"  # the stream name for faults and pacing stats


@dataclass(eq=False)
class Viewer:
    id: int
    ws: web.WebSocketResponse
    peer: str
    receives: bool
    transport: asyncio.Transport | None
    latest: bytes | None = None
    fresh: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    skipped: int = 0


class VideoStream:
    """One running StartVideoStreaming: a paced renderer/encoder and a WebSocket server on ``params.port``."""

    def __init__(
        self,
        params: VideoParams,
        *,
        host: str,
        stream_id: int,
        scene: MistyScene,
        emulator: Emulator,
        tasks: TaskOwner,
        admit_viewer: Callable[[], bool],
    ) -> None:
        self.params = params
        self.host = host
        self.stream_id = stream_id
        self.emulator = emulator
        self.admit_viewer = admit_viewer  # the backend's single_viewer rule
        self.encoder = VideoFrameEncoder(params, stream_id=stream_id, scene=scene)
        self.tasks = tasks  # this stream's own owner, closed with it
        self.viewers: dict[int, Viewer] = {}
        self.frames_encoded = 0
        self.last_frame_bytes = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = params.port

    # ----- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the port (OSError when it is taken, and the stream's task owner is closed) and start producing."""
        try:
            sock = bind_tcp(self.host, self.params.port)
        except OSError:
            await self.tasks.aclose()
            raise
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        try:
            await self._runner.setup()
            site = web.SockSite(self._runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await self._runner.cleanup()
            self._runner = None
            await self.tasks.aclose()
            raise
        self.port = sock.getsockname()[1]
        self.tasks.spawn(self._produce(), name="producer")
        self.emulator.events.record("stream.started", stream=STREAM_NAME, stream_id=self.stream_id, port=self.port)

    async def aclose(self, code: int = WSCloseCode.OK) -> None:
        """Close every viewer with ``code`` (1000), stop producing and free the port."""
        if self._closing:
            return
        self._closing = True
        await self.tasks.cancel_all()
        await self._close_viewers(code, b"")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.tasks.aclose()
        self.emulator.events.record("stream.stopped", stream=STREAM_NAME, stream_id=self.stream_id, port=self.port)

    async def _close_viewers(self, code: int, message: bytes) -> None:
        viewers = list(self.viewers.values())
        await asyncio.gather(*(v.ws.close(code=code, message=message) for v in viewers), return_exceptions=True)

    def snapshot(self) -> dict[str, object]:
        return {
            "stream_id": self.stream_id,
            "port": self.port,
            "viewers": len(self.viewers),
            "frames_encoded": self.frames_encoded,
            "output_size": list(self.encoder.view.output_size()),
        }

    # ----- viewers ----------------------------------------------------------------------------------------
    async def _serve(self, request: web.Request) -> web.StreamResponse:
        ws = MaskedWebSocketResponse(autoping=True, max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            return web.json_response(
                {"error": "This port serves the video WebSocket only: open ws://<robot>:<Port>/.", "status": "Failed"},
                status=400,
            )
        if self._closing:
            return web.Response(status=503)
        await ws.prepare(request)
        viewer = Viewer(
            id=next(self._ids),
            ws=ws,
            peer=str(request.remote),
            receives=self.admit_viewer(),
            transport=request.transport,
        )
        self.viewers[viewer.id] = viewer
        self.emulator.events.record(
            "client.connected", stream=STREAM_NAME, viewer=viewer.id, peer=viewer.peer, receives=viewer.receives
        )
        sender = self.tasks.spawn(self._send_to(viewer), name=f"viewer-{viewer.id}") if viewer.receives else None
        try:
            # Clients send nothing useful; reading keeps ping/pong and the close handshake working.
            async for _ in ws:
                pass
        finally:
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            self.viewers.pop(viewer.id, None)
            self.emulator.events.record(
                "client.disconnected", stream=STREAM_NAME, viewer=viewer.id, sent=viewer.sent, skipped=viewer.skipped
            )
        return ws

    async def _send_to(self, viewer: Viewer) -> None:
        """Send the newest frame whenever there is one; a slow viewer skips frames instead of queueing them."""
        while not viewer.ws.closed:
            await viewer.fresh.wait()
            viewer.fresh.clear()
            payload, viewer.latest = viewer.latest, None
            if payload is None:
                continue
            try:
                await viewer.ws.send_bytes(payload)
            except (ConnectionError, RuntimeError):
                return
            viewer.sent += 1

    def _publish(self, payload: bytes) -> None:
        for viewer in self.viewers.values():
            if not viewer.receives:
                continue
            if viewer.latest is not None:
                viewer.skipped += 1
            viewer.latest = payload
            viewer.fresh.set()

    # ----- production -------------------------------------------------------------------------------------
    async def _produce(self) -> None:
        pacer = Pacer(1.0 / FRAME_RATE, stats=self.emulator.pacing_stats(STREAM_NAME))
        emulator = self.emulator
        clock = emulator.clock
        async for tick in pacer.ticks():
            if not any(v.receives for v in self.viewers.values()):
                continue  # nobody watching: keep the frame clock running but spend no CPU
            match emulator.stream_verdict(STREAM_NAME, frame=tick.index):
                case Send(corrupt=corrupt):
                    payload = await asyncio.to_thread(
                        self.encoder.encode, tick.index, clock.monotonic(), clock.now_ms()
                    )
                    if corrupt:
                        payload = corrupt_payload(payload)
                case Skip():
                    continue
                case Stall() as stall:
                    await stall.wait()  # the pacer skips the ticks missed meanwhile
                    continue
                case Close(code=code, reason=reason):
                    # Every viewer is closed; the server keeps running and takes new viewers.
                    await self._close_viewers(code, reason.encode())
                    continue
                case Abort():
                    # A source disconnect: the TCP connections vanish without a close frame.
                    for viewer in list(self.viewers.values()):
                        if viewer.transport is not None:
                            viewer.transport.abort()
                    continue
            self.frames_encoded += 1
            self.last_frame_bytes = len(payload)
            emulator.previews.offer_frame(STREAM_NAME, payload)  # the very JPEG the viewers get
            self._publish(payload)
