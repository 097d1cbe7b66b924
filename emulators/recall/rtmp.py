"""The bot's RTMP output: the meeting's mixed layout (speaker or gallery) as H.264 + AAC in FLV, via PyAV.

PyAV's network I/O blocks, so the push runs in a thread owned by the bot (joined on stop); it reconnects
every ``retry_interval_s`` while the bot records, like the WebSocket senders.
"""

from __future__ import annotations

import asyncio
import math
import threading
from fractions import Fraction

import av
import numpy as np

from emulators.kit.outbound import EgressPolicy, EgressRefused
from emulators.recall.senders import AudioMixer, MediaContext
from emulators.recall.tiles import compose_mix

AUDIO_RATE = 48_000


class RtmpPush:
    def __init__(self, ctx: MediaContext, url: str, *, width: int, height: int, fps: int, gallery: bool,
                 egress: EgressPolicy) -> None:
        self.ctx = ctx
        self.url = url
        self.egress = egress
        self.width, self.height, self.fps = width - width % 2, height - height % 2, fps
        self.gallery = gallery
        self.name = ctx.stream_name("rtmp")
        self.mixer = AudioMixer(ctx.meeting)
        self.frames_sent = 0
        self.connections = 0
        self.state = "connecting"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"recall-rtmp-{self.ctx.bot.id}", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
            self._thread = None

    def _record(self, kind: str, **detail: object) -> None:
        # Event log writes happen on the emulator's loop, never from this thread.
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: self.ctx.emulator.events.record(kind, stream=self.name, **detail))

    def _beat(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.ctx.pulse.beat)

    # ----- the push thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.egress.check(self.url)
        except EgressRefused as exc:
            self.state = "failed"
            self._record("stream.error", error=str(exc))
            self._beat()
            return
        while not self._stop.is_set():
            try:
                self._push_once()
            except (av.FFmpegError, OSError) as exc:
                self._record("outbound.retry", url=self.url, error=str(exc), retry_in_s=self.ctx.retry_interval_s)
            except Exception as exc:  # a bug must show in the event log, not end the thread silently
                self.state = "failed"
                self._record("stream.error", error=f"{type(exc).__name__}: {exc}")
                return
            if self._stop.wait(self.ctx.retry_interval_s):
                break
        self.state = "closed"

    def _push_once(self) -> None:
        container = av.open(self.url, mode="w", format="flv", timeout=5.0)
        try:
            video = container.add_stream("libx264", rate=self.fps)
            video.width, video.height, video.pix_fmt = self.width, self.height, "yuv420p"
            video.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(self.fps)}
            video.codec_context.bit_rate = 1_500_000
            audio = container.add_stream("aac", rate=AUDIO_RATE)
            audio.layout = "mono"
            self.connections += 1
            self.state = "connected"
            self._record("stream.started", url=self.url, connection=self.connections)
            start = self.ctx.emulator.clock.monotonic()
            index = 0
            samples_per_frame = AUDIO_RATE // self.fps
            audio_pts = 0
            stats = self.ctx.emulator.pacing_stats("rtmp")
            while not self._stop.is_set():
                deadline = start + index / self.fps
                delay = deadline - self.ctx.emulator.clock.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                stats.record(max(0.0, self.ctx.emulator.clock.monotonic() - deadline))
                frame = av.VideoFrame.from_ndarray(self._compose(index), format="rgb24")
                frame.pts, frame.time_base = index, Fraction(1, self.fps)
                for packet in video.encode(frame):
                    container.mux(packet)
                pcm16k = np.frombuffer(self.mixer.mixed(math.ceil(samples_per_frame / 3)), dtype="<i2")
                pcm = np.repeat(pcm16k, 3)[:samples_per_frame].reshape(1, -1)  # 16 kHz -> 48 kHz
                sound = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm), format="s16", layout="mono")
                sound.sample_rate, sound.pts, sound.time_base = AUDIO_RATE, audio_pts, Fraction(1, AUDIO_RATE)
                audio_pts += samples_per_frame
                for packet in audio.encode(sound):
                    container.mux(packet)
                self.frames_sent += 1
                index += 1
                self._beat()
            for packet in video.encode(None):
                container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
        finally:
            container.close()
            self._record("stream.stopped", frames=self.frames_sent)

    def _compose(self, index: int) -> np.ndarray:
        return compose_mix(self.ctx.renderer, self.ctx.meeting, self.width, self.height, gallery=self.gallery,
                           index=index, capture_ms=self.ctx.emulator.clock.now_ms())
