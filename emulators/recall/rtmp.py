"""The bot's RTMP output: the meeting's mixed layout (speaker or gallery) pushed by a kit media worker.

The bot paces the frames (``rtmp_fps``), asks the kit for each frame's fault verdict, and sends the worker one
tick per frame with a snapshot of the meeting; the worker (``rtmp_worker.push_rtmp``) renders, encodes and
pushes, and reports connections and frames back.
"""

from __future__ import annotations

import dataclasses

from emulators.kit.faults import Abort, Close, Send, Skip, Stall
from emulators.kit.outbound import EgressPolicy, EgressRefused
from emulators.kit.pacer import Pacer
from emulators.kit.workers import MediaWorker, WorkerFailed
from emulators.recall.mix import MixScene
from emulators.recall.rtmp_worker import PushConfig, Reconnect, Tick, push_rtmp
from emulators.recall.senders import MediaContext


class RtmpPush:
    def __init__(self, ctx: MediaContext, url: str, *, width: int, height: int, fps: int, gallery: bool,
                 egress: EgressPolicy) -> None:
        self.ctx = ctx
        self.url = url
        self.egress = egress
        self.config = PushConfig(url, width, height, fps, gallery, ctx.retry_interval_s)
        self.name = ctx.stream_name("rtmp")
        self.frames_sent = 0
        self.connections = 0
        self.state = "connecting"
        self.worker: MediaWorker | None = None
        self.tasks = ctx.tasks.child("rtmp")

    def start(self) -> None:
        self.tasks.spawn(self._run(), name="push")

    async def aclose(self) -> None:
        if self.worker is not None:
            await self.worker.aclose()  # a worker that does not stop in time is reported as leaked, then killed
        await self.tasks.aclose()
        if self.state != "failed":
            self.state = "closed"

    def _record(self, kind: str, **detail: object) -> None:
        self.ctx.emulator.events.record(kind, stream=self.name, **detail)
        self.ctx.pulse.beat()

    async def _run(self) -> None:
        try:
            # Checked off the loop, and pinned: the encoder process and its reconnects never resolve the name again.
            pinned = await self.egress.pinned_url(self.url)
        except EgressRefused as exc:
            self.state = "failed"
            self._record("stream.error", error=str(exc))
            return
        config = dataclasses.replace(self.config, url=pinned)
        self.worker = self.ctx.emulator.media_worker(f"recall-rtmp-{self.ctx.bot.id}", push_rtmp, config)
        self.worker.start()
        self.tasks.spawn(self._feed(self.worker), name="feed")
        try:
            async for message in self.worker.messages():
                self._on_message(message)
        except WorkerFailed as exc:  # a bug in the push must show in the event log
            self.state = "failed"
            self._record("stream.error", error=str(exc))

    def _on_message(self, message: tuple[str, object]) -> None:
        kind, value = message
        if kind == "connected":
            self.connections, self.state = int(str(value)), "connected"
            self._record("stream.started", url=self.url, connection=self.connections)
        elif kind == "frame":
            self.frames_sent += 1
            self.ctx.pulse.beat()
        elif kind == "retry":
            self.state = "retrying"
            self._record("outbound.retry", url=self.url, error=value, retry_in_s=self.config.retry_interval_s)
        elif kind == "stopped":
            self.state = "retrying"
            self._record("stream.stopped", frames=value)

    async def _feed(self, worker: MediaWorker) -> None:
        """One tick per frame slot, each after the kit's verdict for that frame."""
        stats = self.ctx.emulator.pacing_stats("rtmp")
        async for tick in Pacer(1.0 / self.config.fps, stats=stats).ticks():
            if self.state != "connected":
                continue  # nothing queues up while the push (re)connects; frames resume on the same clock
            match self.ctx.emulator.stream_verdict(self.name, frame=tick.index):
                case Send(corrupt=corrupt):
                    scene = MixScene.of(self.ctx.meeting)
                    worker.send(Tick(tick.index, self.ctx.emulator.clock.now_ms(), scene, corrupt))
                case Skip():
                    pass  # the frame is never encoded: a gap in the FLV timestamps
                case Stall() as stall:
                    await stall.wait()  # the pacer skips the slots that passed
                case Close() | Abort():
                    # Deliberate deviation: RTMP has no close code, so a close fault drops the connection
                    # like a disconnect; the push reconnects after retry_interval_s as after any loss.
                    worker.send(Reconnect())
