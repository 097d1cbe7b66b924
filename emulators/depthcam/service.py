"""Async orchestration of the depth camera: pipeline restarts, video channels, NN and video viewers, stills.

The service owns the tasks and the sockets and performs the I/O; the backend decides (which viewers a restart
closes and with which code, when a restarted pipeline is up). Callers hold ``camera_lock(mxid)`` around every
mutation, so a request and the restart it causes are one step for concurrent requests and new viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from emulators.depthcam import media
from emulators.depthcam.camera import NeuralNetwork
from emulators.depthcam.errors import BootFailed, ServerCrash
from emulators.depthcam.model import (
    KEEP,
    BootRetried,
    Close,
    DepthcamBackend,
    Drop,
    EndOfStream,
    Keep,
    PipelineChange,
    PipelineFailed,
    PipelineStarted,
    ViewerFates,
    race_outcome,
)
from emulators.kit import faults
from emulators.kit.clock import Clock
from emulators.kit.events import EventLog
from emulators.kit.pacer import LatenessStats, Pacer
from emulators.kit.preview import PreviewHub
from emulators.kit.tasks import TaskOwner, first_completed

StreamVerdicts = Callable[..., faults.StreamVerdict]


@dataclass
class CameraRuntime:
    """One camera's live side: the lock mutations hold, the restart's outcome and the stream channels."""

    mxid: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # clear while the pipeline restarts
    boot_failed: bool = False  # the outcome of the newest restart
    channels: dict[str, media.VideoChannel] = field(default_factory=dict)
    # Stills reuse each stream's developed static scene, so a series of captures costs one render each.
    still_developers: dict[str, media.StreamDeveloper] = field(default_factory=dict)

    def still_developer(self, spec: media.FrameSpec) -> media.StreamDeveloper:
        developer = self.still_developers.get(spec.stream)
        if developer is None or developer.sensor.seed != spec.seed:
            developer = self.still_developers[spec.stream] = media.StreamDeveloper(media.stream_sensor(spec))
        return developer


@dataclass(eq=False)
class NnSession:
    mxid: str
    stream: str
    ws: web.WebSocketResponse
    request: web.Request
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = 1000
    drop: bool = False  # end with the TCP connection dropped, without a close frame


class DepthcamService:
    def __init__(
        self,
        backend: DepthcamBackend,
        *,
        clock: Clock,
        events: EventLog,
        tasks: TaskOwner,
        stream_verdict: StreamVerdicts,
        pacing_stats: Callable[[str], LatenessStats],
        previews: PreviewHub,
    ) -> None:
        self.backend = backend
        self.previews = previews
        self.clock = clock
        self.events = events
        self.tasks = tasks
        self.stream_verdict = stream_verdict
        self.pacing_stats = pacing_stats
        self.runtimes: dict[str, CameraRuntime] = {}
        self.nn_sessions: set[NnSession] = set()
        self._schedule: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self.reset()

    def reset(self) -> None:
        """Fresh runtimes for the backend's cameras (after the backend was reset)."""
        self.runtimes = {mxid: CameraRuntime(mxid) for mxid in self.backend.cameras}
        for runtime in self.runtimes.values():
            runtime.ready.set()

    @contextlib.asynccontextmanager
    async def camera_lock(self, mxid: str) -> AsyncIterator[None]:
        async with self.runtimes[mxid].lock:
            yield

    async def aclose(self) -> None:
        """The emulator stops: viewers close with 1001 and requests waiting for a restart are released."""
        for runtime in self.runtimes.values():
            for name, channel in list(runtime.channels.items()):
                channel.close_all(1001, "emulator stopping")
                runtime.channels.pop(name, None)
                await channel.aclose()
        for session in list(self.nn_sessions):
            session.close_code = 1001
            session.closing.set()
        for mxid in self.backend.abandon_restarts(self.clock.now()):
            self.runtimes[mxid].ready.set()

    # ----- mutations (callers hold the camera's lock) ---------------------------------------------------
    async def switch_stream(self, mxid: str, stream: str, *, activating: bool) -> None:
        now = self.clock.now()
        fates = self.backend.activate(mxid, stream, now) if activating else self.backend.deactivate(mxid, stream, now)
        if fates is not None:
            await self._restart(mxid, fates)
        kind = "stream.activated" if activating else "stream.deactivated"
        self.events.record(kind, camera=mxid, stream=stream, changed=fates is not None)

    async def set_config(self, mxid: str, stream: str, variant: str, body: dict[str, Any]) -> dict[str, Any]:
        config, fates = self.backend.set_config(mxid, stream, variant, body, self.clock.now())
        await self._restart(mxid, fates)
        if isinstance(config, ServerCrash):
            raise config  # main restarted, then failed to answer
        return config

    async def deploy_network(self, mxid: str, stream: str, network: NeuralNetwork) -> None:
        await self._restart(mxid, self.backend.deploy_network(mxid, stream, network, self.clock.now()))
        self.events.record("nn.deployed", camera=mxid, stream=stream, type=network.kind)

    async def delete_network(self, mxid: str, stream: str) -> None:
        fates = self.backend.delete_network(mxid, stream, self.clock.now())
        if fates is None:
            return
        if self.backend.server_main:
            await self._restart(mxid, fates)
        else:
            await self._act_on_fates(mxid, fates)

    async def reboot_camera(self, mxid: str) -> None:
        """Create (POST /cameras/{mxid}/) and the reboot control: boot state, then a pipeline restart."""
        await self._restart(mxid, self.backend.reboot_camera(mxid, self.clock.now()))

    async def close_camera(self, mxid: str) -> None:
        await self._act_on_fates(mxid, self.backend.close_camera(mxid))
        self.events.record("camera.closed", camera=mxid)

    async def capture_still(self, mxid: str, stream: str, fmt: str) -> bytes:
        """The stream's newest frame as an image file in ``fmt`` (a name the backend accepted)."""
        camera = self.backend.cameras[mxid]
        index = self.backend.frame_index_at(mxid, stream, self.clock.now_ms())
        spec = media.frame_spec(
            camera,
            stream,
            frame_index=index,
            capture_ms=self.backend.capture_ms(mxid, stream, index),
            purpose="still",
            seed=self.backend.seed,
        )
        image = await asyncio.to_thread(media.render_frame, spec, self.runtimes[mxid].still_developer(spec))
        if self.backend.server_main:
            try:
                return await asyncio.to_thread(media.save_still, image, fmt)
            except media.UnwritableImage as exc:
                raise ServerCrash(str(exc)) from exc
        return await asyncio.to_thread(media.encode_still, image, fmt)

    # ----- restarts -------------------------------------------------------------------------------------
    async def _restart(self, mxid: str, fates: ViewerFates) -> None:
        """Act on the viewers' fates, then wait until the backend's schedule has the pipeline up again.

        Raises BootFailed when the schedule ran out of boot retries.
        """
        runtime = self.runtimes[mxid]
        runtime.ready.clear()
        runtime.boot_failed = False
        self.events.record("pipeline.restarting", camera=mxid)
        await self._act_on_fates(mxid, fates)
        self._run_schedule()
        await runtime.ready.wait()
        if runtime.boot_failed:
            raise BootFailed(f"{mxid}: the pipeline did not boot after every retry")

    def _run_schedule(self) -> None:
        if self._schedule is None or self._schedule.done():
            self._schedule = self.tasks.spawn(self._follow_schedule(), name="pipeline-restarts")
        self._wakeup.set()

    async def _follow_schedule(self) -> None:
        """Sleep until the backend's next boot attempt (or a new restart), advance it, act on the changes."""
        while (due := self.backend.next_wakeup()) is not None:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, due - self.clock.now())):
                    await self._wakeup.wait()
            for change in self.backend.advance(self.clock.now()):
                self._act_on_change(change)

    def _act_on_change(self, change: PipelineChange) -> None:
        match change:
            case BootRetried(mxid=mxid):
                self.events.record("stream.error", camera=mxid, error="pipeline boot failed; retrying")
            case PipelineStarted(mxid=mxid, streams=streams):
                self.runtimes[mxid].ready.set()
                self.events.record("pipeline.restarted", camera=mxid, streams=list(streams))
            case PipelineFailed(mxid=mxid):
                self.runtimes[mxid].boot_failed = True
                self.runtimes[mxid].ready.set()

    async def _act_on_fates(self, mxid: str, fates: ViewerFates) -> None:
        runtime = self.runtimes[mxid]
        for name, channel in list(runtime.channels.items()):
            if channel.stuck:
                continue  # main's stream loop for it ended: later restarts find nothing to stop
            match fates.video.get(name, KEEP):
                case Close(code=code, reason=reason):
                    channel.close_all(code, reason)
                    runtime.channels.pop(name, None)
                    await channel.aclose()
                    self.events.record("stream.stopped", stream=channel.name, code=code, reason=reason)
                case EndOfStream():
                    viewers = list(channel.subscribers)
                    closed, stranded = race_outcome(len(viewers))
                    for position in closed:
                        viewers[position].close(1000)
                    if stranded:
                        await channel.strand([viewers[position] for position in stranded])
                        self.events.record("stream.stuck", stream=channel.name, stranded=len(stranded))
                    else:
                        runtime.channels.pop(name, None)
                        await channel.aclose()
                        self.events.record("stream.stopped", stream=channel.name, code=1000, reason="")
                case Keep():
                    pass
        for session in list(self.nn_sessions):
            if session.mxid != mxid:
                continue
            match fates.nn.get(session.stream, KEEP):
                case Close(code=code):
                    session.close_code = code
                    session.closing.set()
                case EndOfStream():
                    session.drop = True  # main's NN loop raises on the old device: no close frame
                    session.closing.set()
                case Keep():
                    pass

    @contextlib.asynccontextmanager
    async def _admitted(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        mxid: str,
        admit: Callable[[], Close | Drop | None],
    ) -> AsyncIterator[CameraRuntime | None]:
        """Ask the backend to admit a viewer; yields its camera's runtime with the lock held, or None once refused."""
        runtime = self.runtimes.get(mxid) if self.backend.is_open(mxid) else None
        if runtime is None:
            await _refuse(request, ws, admit() or Close(1011, "camera not found"))
            yield None
            return
        async with runtime.lock:
            refusal = admit()
            if refusal is not None:
                await _refuse(request, ws, refusal)
                yield None
            else:
                yield runtime

    # ----- video viewers --------------------------------------------------------------------------------
    async def watch_video(self, request: web.Request, ws: web.WebSocketResponse, mxid: str, stream: str) -> None:
        """fMP4 over an accepted WebSocket: the shared init segment, then one moof+mdat per frame."""
        async with self._admitted(request, ws, mxid, lambda: self.backend.admit_video(mxid, stream)) as runtime:
            if runtime is None:
                return
            channel = self._video_channel(runtime, stream)
            sub = channel.subscribe()
        self.events.record("client.connected", stream=channel.name, peer=request.remote)
        try:
            init = await channel.wait_init(limit_s=15.0)
            if init is not None and not sub.closed:
                await ws.send_bytes(init)
                await _pump_until_closed(ws, sub)
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            await self._leave_channel(runtime, channel, sub)
            # Close only after the pump and the reader are done: a close racing a receive ends as 1006.
            if sub.closed and sub.abort and request.transport is not None:
                request.transport.close()  # a source disconnect: no close frame
            elif not ws.closed:
                code = sub.close_code if sub.closed else 1011
                await ws.close(code=code, message=sub.close_reason.encode())
            self.events.record("client.disconnected", stream=channel.name, code=ws.close_code)

    def _video_channel(self, runtime: CameraRuntime, stream: str) -> media.VideoChannel:
        """The stream's shared channel; the first viewer creates and starts it."""
        channel = runtime.channels.get(stream)
        if channel is not None:
            return channel
        backend, mxid = self.backend, runtime.mxid
        camera = backend.cameras[mxid]
        name = f"{mxid}/{stream}/video"
        state = {"generation": backend.pipelines[mxid].generation, "offset": None}

        def next_frame(tick_index: int) -> media.FrameSpec | None:
            if not backend.streaming(mxid, stream):
                return None
            generation = backend.pipelines[mxid].generation
            if state["offset"] is None or state["generation"] != generation:
                # Frame numbers restart with each pipeline; ticks before this one do not count.
                state["generation"] = generation
                state["offset"] = backend.frame_index_at(mxid, stream, self.clock.now_ms()) - tick_index
            index = int(state["offset"]) + tick_index
            return media.frame_spec(
                camera, stream, frame_index=index, capture_ms=backend.capture_ms(mxid, stream, index), seed=backend.seed
            )

        hooks = media.ChannelHooks(
            wait_ready=runtime.ready.wait,
            next_frame=next_frame,
            verdict=self.stream_verdict,
            record=self.events.record,
            preview=self.previews.offer_frame,
        )
        channel = media.VideoChannel(
            name=name,
            stream=stream,
            size=camera.frame_size(stream),
            fps=camera.fps(stream),
            hooks=hooks,
            stats=self.pacing_stats(name),
        )
        runtime.channels[stream] = channel
        channel.start(self.tasks)
        self.events.record("stream.started", stream=name, size=list(channel.size), fps=channel.fps)
        return channel

    async def _leave_channel(self, runtime: CameraRuntime, channel: media.VideoChannel, sub: media.Subscriber) -> None:
        """A viewer left; the last one stops the channel's encoder."""
        if channel.stuck:
            return  # main never notices a stranded viewer leave: the stream stays stuck
        channel.subscribers.pop(sub, None)
        if not channel.subscribers:
            if runtime.channels.get(channel.stream) is channel:
                runtime.channels.pop(channel.stream, None)
            await channel.aclose()
            self.events.record("stream.stopped", stream=channel.name, reason="last viewer left")

    # ----- NN viewers -----------------------------------------------------------------------------------
    async def watch_nn(self, request: web.Request, ws: web.WebSocketResponse, mxid: str, stream: str) -> None:
        """NN results as JSON text over an accepted WebSocket, one message per frame, for the deployed network."""
        async with self._admitted(request, ws, mxid, lambda: self.backend.admit_nn(mxid, stream)) as runtime:
            if runtime is None:
                return
        session = NnSession(mxid, stream, ws, request)
        self.nn_sessions.add(session)
        name = f"{mxid}/{stream}/nn"
        self.events.record("client.connected", stream=name, peer=request.remote)
        try:
            await _run_until_closed(ws, session.closing, self._send_detections(runtime, session, name))
        finally:
            self.nn_sessions.discard(session)
            if session.drop and request.transport is not None:
                request.transport.close()
            elif not ws.closed:
                await ws.close(code=session.close_code)
            self.events.record("client.disconnected", stream=name, code=ws.close_code)

    async def _send_detections(self, runtime: CameraRuntime, session: NnSession, name: str) -> None:
        backend, mxid, stream = self.backend, session.mxid, session.stream
        camera = backend.cameras[mxid]
        pacer = Pacer(1.0 / camera.fps(stream), stats=self.pacing_stats(name))
        async for _tick in pacer.ticks():
            await runtime.ready.wait()
            ended = backend.nn_result_due(mxid, stream)
            if ended is not None:
                session.close_code = ended.code
                return
            network = camera.networks[stream]
            match self.stream_verdict(name):
                case faults.Send(corrupt=corrupt):
                    index = backend.frame_index_at(mxid, stream, self.clock.now_ms())
                    capture_ms = backend.capture_ms(mxid, stream, index)
                    message = media.detection_message(camera, stream, capture_ms, index, network.kind, backend.seed)
                    text = json.dumps(message)
                    if corrupt:
                        text = faults.corrupt_payload(text.encode()).decode("utf-8", "replace")
                    await session.ws.send_str(text)
                case faults.Skip():
                    pass
                case faults.Stall() as stall:
                    await stall.wait()  # the pacer skips the ticks missed meanwhile
                case faults.Close(code=code):
                    session.close_code = code  # the NN socket closes without a reason, as the server's does
                    return
                case faults.Abort():
                    session.close_code = 1006
                    if session.request.transport is not None:
                        session.request.transport.close()  # no close frame
                    return

    # ----- control plane --------------------------------------------------------------------------------
    def live_streams(self) -> list[str]:
        """The fault-rule names of every stream being sent now: ``<mxid>/<stream>/video`` and ``.../nn``."""
        names = {channel.name for runtime in self.runtimes.values() for channel in runtime.channels.values()}
        names.update(f"{session.mxid}/{session.stream}/nn" for session in self.nn_sessions)
        return sorted(names)

    def state(self) -> dict[str, Any]:
        cameras = self.backend.snapshot()
        for mxid, runtime in self.runtimes.items():
            cameras[mxid]["video_viewers"] = {name: len(ch.subscribers) for name, ch in runtime.channels.items()}
        return cameras


async def _refuse(request: web.Request, ws: web.WebSocketResponse, refusal: Close | Drop) -> None:
    """End an accepted socket the backend refused: a close frame, or the connection dropped without one."""
    match refusal:
        case Close(code=code, reason=reason):
            await ws.close(code=code, message=reason.encode())
        case Drop():
            if request.transport is not None:
                request.transport.close()


async def _watch_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the viewer sends until it closes; that is how its leaving is noticed."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return


async def _run_until_closed(ws: web.WebSocketResponse, closing: asyncio.Event, sender: Awaitable[None]) -> None:
    """Run a socket's sender until it ends, the client leaves, or ``closing`` is set; awaits every task."""
    await first_completed(sender, _watch_client(ws), closing.wait(), ignore=(ConnectionResetError,))


async def _pump_until_closed(ws: web.WebSocketResponse, sub: media.Subscriber) -> None:
    """Forward the channel's messages to one viewer until the channel closes it or the viewer leaves."""

    async def pump() -> None:
        while (item := await sub.queue.get()) is not media.CLOSE:
            await ws.send_bytes(item)

    await _run_until_closed(ws, asyncio.Event(), pump())
