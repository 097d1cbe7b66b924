"""The RTMP push itself, in a kit worker process: H.264 + AAC in FLV via PyAV, one frame per tick the bot sends.

PyAV holds the GIL while an RTMP output connects, so this never runs in the emulator's process. The parent
paces the frames and decides each one's fault verdict; this side renders, encodes and muxes, reconnecting
every ``retry_interval_s`` after a failure, and reports progress on the outbox.
"""

from __future__ import annotations

import math
import queue
from dataclasses import dataclass
from fractions import Fraction
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import av
import numpy as np

from emulators.kit.faults import corrupt_payload
from emulators.recall.mix import AudioMixer, MixScene, SceneVoices, compose_mix
from emulators.recall.tiles import TileRenderer

AUDIO_RATE = 48_000
INBOX_POLL_S = 0.1  # how often a waiting worker looks at its stop event


@dataclass(frozen=True)
class PushConfig:
    url: str
    width: int
    height: int
    fps: int
    gallery: bool
    retry_interval_s: float


@dataclass(frozen=True)
class Tick:
    """One frame to push: the meeting as it is now, the capture time to stamp, and whether to corrupt it."""

    index: int
    capture_ms: int
    scene: MixScene
    corrupt: bool = False


@dataclass(frozen=True)
class Reconnect:
    """Drop the connection (a close or disconnect fault); the push reconnects after the retry interval."""


class _Dropped(Exception):
    pass


def push_rtmp(stop: Event, outbox: Queue[Any], inbox: Queue[Any], config: PushConfig) -> None:
    """The worker's run: push until stopped; messages are ("connected", n), ("frame", index),
    ("retry", error) and ("stopped", frames)."""
    state = _Push(config, outbox)
    while not stop.is_set():
        try:
            state.push_once(stop, inbox)
        except (av.FFmpegError, OSError, _Dropped) as exc:
            outbox.put(("retry", str(exc) or type(exc).__name__))
        if stop.wait(config.retry_interval_s):
            break


class _Push:
    def __init__(self, config: PushConfig, outbox: Queue[Any]) -> None:
        self.config = config
        self.outbox = outbox
        self.renderer = TileRenderer()
        self.voices = SceneVoices()
        self.mixer = AudioMixer(self.voices)
        self.connections = 0
        self.frames = 0

    def push_once(self, stop: Event, inbox: Queue[Any]) -> None:
        c = self.config
        width, height = c.width - c.width % 2, c.height - c.height % 2
        container = av.open(c.url, mode="w", format="flv", timeout=5.0)
        try:
            video = container.add_stream("libx264", rate=c.fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(c.fps)}
            video.codec_context.bit_rate = 1_500_000
            audio = container.add_stream("aac", rate=AUDIO_RATE)
            audio.layout = "mono"
            self.connections += 1
            self.outbox.put(("connected", self.connections))
            samples_per_frame = AUDIO_RATE // c.fps
            audio_pts = 0
            while not stop.is_set():
                try:
                    message = inbox.get(timeout=INBOX_POLL_S)
                except queue.Empty:
                    continue
                if isinstance(message, Reconnect):
                    raise _Dropped("fault dropped the connection")
                tick: Tick = message
                self.voices.scene = tick.scene
                picture = compose_mix(self.renderer, tick.scene, width, height, gallery=c.gallery,
                                      index=tick.index, capture_ms=tick.capture_ms)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts, frame.time_base = tick.index, Fraction(1, c.fps)
                for packet in video.encode(frame):
                    container.mux(_corrupted(packet) if tick.corrupt else packet)
                pcm16k = np.frombuffer(self.mixer.mixed(math.ceil(samples_per_frame / 3)), dtype="<i2")
                pcm = np.repeat(pcm16k, 3)[:samples_per_frame].reshape(1, -1)  # 16 kHz -> 48 kHz
                sound = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm), format="s16", layout="mono")
                sound.sample_rate, sound.pts, sound.time_base = AUDIO_RATE, audio_pts, Fraction(1, AUDIO_RATE)
                audio_pts += samples_per_frame
                for packet in audio.encode(sound):
                    container.mux(packet)
                self.frames += 1
                self.outbox.put(("frame", tick.index))
            for packet in video.encode(None):
                container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
        finally:
            container.close()
            self.outbox.put(("stopped", self.frames))


def _corrupted(packet: av.Packet) -> av.Packet:
    """The same packet (timing, stream) with its payload damaged deterministically."""
    damaged = av.Packet(corrupt_payload(bytes(packet)))
    damaged.pts, damaged.dts, damaged.time_base = packet.pts, packet.dts, packet.time_base
    damaged.stream = packet.stream
    return damaged
