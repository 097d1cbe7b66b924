"""Misty AV streaming: one producer renders, stamps and encodes H.264 + AAC once per frame, then serves it
(`rtspd:<port>`, the robot's own RTSP server) or pushes it (`rtmp://` FLV, `rtsp://` ANNOUNCE/RECORD)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from emulators.kit.codecs import AacEncoder, EncodedPacket, H264Encoder
from emulators.kit.pacer import Pacer
from emulators.kit.rtsp.live import AacTrack, H264Track, LiveMedia
from emulators.kit.rtsp.server import RtspServer
from emulators.kit.stamp import FrameStamp, StreamKind, paint_stamp
from emulators.kit.tasks import TaskOwner
from emulators.misty.av_push import AvPush, PushConnectError, PushTarget
from emulators.misty.scene import NATIVE_HEIGHT, NATIVE_WIDTH

if TYPE_CHECKING:
    from emulators.kit.emulator import Emulator
    from emulators.misty.scene import MistyScene

AV_STREAM = "av"  # the stream name for faults (`{"match": {"stream": "av"}}`) and pacing stats

# AV audio (misty.md §3.2): a quiet 440 Hz tone and, at the start of every media second (the frame with
# frame_index % FrameRate == 0), a 50 ms 1 kHz beep, so a receiver can line audio up with the stamps.
TONE_HZ = 440.0
TONE_LEVEL = 0.2
BEEP_HZ = 1000.0
BEEP_LEVEL = 0.6
BEEP_SECONDS = 0.05
# FFmpeg's AAC encoder spends at most 6144 bits per channel per 1024-sample frame, and the kit encoder
# stops at 512 kbit/s; the dossier lets the encoder cap AudioBitRate.
AAC_MAX_BITRATE = 512_000


@dataclass(frozen=True)
class AvParams:
    """StartAvStreaming's validated arguments, in the robot's units."""

    url: str
    width: int
    height: int
    frame_rate: int
    video_bitrate: int
    audio_bitrate: int
    sample_rate: int
    username: str | None
    password: str | None


class AvConnectError(Exception):
    """A push target could not be reached or did not finish its handshake in 5 s; str(exc) is the reason."""


def av_target(url: str) -> tuple[str, int | None]:
    """(`rtmp`|`rtsp`|`rtspd`, rtspd port or None); the scheme is matched case-insensitively."""
    lowered = url.strip().lower()
    if lowered.startswith("rtspd:"):
        return "rtspd", int(lowered[len("rtspd:") :])
    for scheme in ("rtmp", "rtsp"):
        if lowered.startswith(f"{scheme}://"):
            return scheme, None
    raise ValueError(f"AV URL must start with rtmp://, rtsp:// or be rtspd:<port>, got {url!r}")


def effective_audio_bitrate(requested: int, sample_rate: int, channels: int = 1) -> int:
    """The AAC bitrate the encoder really uses for a requested AudioBitRate (see AAC_MAX_BITRATE)."""
    return min(requested, AAC_MAX_BITRATE, 6 * sample_rate * channels)


class AvTone:
    """The AV audio track as int16 mono samples, generated in order frame by frame (sample-exact)."""

    def __init__(self, sample_rate: int, frame_rate: int) -> None:
        self.sample_rate = sample_rate
        self.frame_rate = frame_rate
        self.position = 0  # next sample to generate

    def frame_end(self, frame_index: int) -> int:
        """The sample just past video frame `frame_index` (frame k covers [k, k+1) / FrameRate seconds)."""
        return (frame_index + 1) * self.sample_rate // self.frame_rate

    def samples_through(self, frame_index: int) -> np.ndarray:
        """Every sample not yet generated up to the end of `frame_index` (catches up after skipped ticks)."""
        end = self.frame_end(frame_index)
        n = np.arange(self.position, max(self.position, end), dtype=np.int64)
        self.position = max(self.position, end)
        t = n / self.sample_rate
        wave = TONE_LEVEL * np.sin(2 * math.pi * TONE_HZ * t)
        # Media second k starts at sample k * sample_rate exactly, which is where frame k * FrameRate starts.
        in_beep = (n % self.sample_rate) < round(BEEP_SECONDS * self.sample_rate)
        wave = np.where(in_beep, BEEP_LEVEL * np.sin(2 * math.pi * BEEP_HZ * t), wave)
        return np.round(wave * 32767).astype(np.int16)


@dataclass(frozen=True)
class EncodedTick:
    video: list[EncodedPacket]
    audio: list[EncodedPacket]


class AvProducer:
    """Renders the native frame, scales it to WxH, paints the AV stamp and encodes video and audio once.

    Synchronous and CPU-bound: the stream calls `encode_tick` in a worker thread, one tick at a time.
    """

    def __init__(self, params: AvParams, *, stream_id: int, scene: MistyScene) -> None:
        self.params = params
        self.stream_id = stream_id & 0xFFFF  # the stamp carries 16 bits
        self.scene = scene
        self.video = H264Encoder(params.width, params.height, params.frame_rate, params.video_bitrate)
        self.audio = AacEncoder(params.sample_rate, effective_audio_bitrate(params.audio_bitrate, params.sample_rate))
        self.tone = AvTone(params.sample_rate, params.frame_rate)
        self.frames_encoded = 0

    def render(self, frame_index: int, capture_time_ms: int) -> np.ndarray:
        """The stamped WxH RGB frame; the content stays rotated 90° CCW as the sensor sees it."""
        native = self.scene.native_frame(frame_index / self.params.frame_rate)
        # A flat synthetic scene needs no better filter; the stamp is painted after scaling, pixel-exact.
        width, height = self.params.width, self.params.height
        if (width, height) == (NATIVE_WIDTH, NATIVE_HEIGHT):
            image = native
        else:
            image = (
                av.VideoFrame.from_ndarray(native, format="rgb24")
                .reformat(width=width, height=height, format="rgb24", interpolation="FAST_BILINEAR")
                .to_ndarray()
            )
        stamp = FrameStamp(StreamKind.MISTY_AV, self.stream_id, frame_index, capture_time_ms)
        return paint_stamp(np.ascontiguousarray(image), stamp)

    def encode_tick(self, frame_index: int, capture_time_ms: int, *, with_video: bool = True) -> EncodedTick:
        video: list[EncodedPacket] = []
        if with_video:
            video = self.video.encode(self.render(frame_index, capture_time_ms), frame_index)
            self.frames_encoded += 1
        # The encoder's priming frame has a negative pts; receivers start at 0 and do without it.
        audio = [p for p in self.audio.encode(self.tone.samples_through(frame_index)) if p.pts >= 0]
        return EncodedTick(video, audio)


class RtspdOutput:
    """`rtspd:<port>`: the encoded media published into a kit LiveMedia and served by the kit RtspServer."""

    def __init__(self, producer: AvProducer, *, host: str, port: int, emulator: Emulator) -> None:
        video, audio = producer.video, producer.audio
        self.media = LiveMedia(
            H264Track(video.width, video.height, float(video.fps), video.sps, video.pps),
            AacTrack(audio.sample_rate, audio.channels, audio.audio_specific_config),
        )
        self._fps = video.fps
        self._sample_rate = audio.sample_rate
        self._emulator = emulator
        self.server = RtspServer(self.media, host=host, port=port, on_event=self._on_rtsp_event, seed=emulator.seed)
        self.failure: str | None = None

    async def start(self) -> None:
        await self.server.start()  # OSError when the port is taken

    @property
    def port(self) -> int:
        return self.server.port

    def send_video(self, packet: EncodedPacket) -> None:
        self.media.publish_video(packet.data, packet.pts / self._fps, packet.keyframe)

    def send_audio(self, packet: EncodedPacket) -> None:
        self.media.publish_audio(packet.data, packet.pts / self._sample_rate)

    def disconnect(self, reason: str) -> None:
        """The source goes away: every RTSP session ends (RTCP BYE, TCP clients see EOF)."""
        self.failure = reason
        self.media.close()

    async def aclose(self) -> None:
        self.media.close()
        await self.server.aclose()

    def stats(self) -> dict[str, Any]:
        return {"port": self.server.port, "clients": self.server.session_count, "sessions": self.server.session_stats()}

    def _on_rtsp_event(self, kind: str, details: dict) -> None:
        mapped = {"client_connected": "client.connected", "client_disconnected": "client.disconnected"}
        self._emulator.events.record(mapped.get(kind, f"rtsp.{kind}"), stream=AV_STREAM, **details)


class PushOutput:
    """`rtmp://` and `rtsp://`: the encoded media muxed by PyAV and pushed to an external server."""

    def __init__(
        self, producer: AvProducer, target: PushTarget, *, emulator: Emulator, on_failure: Callable[[str], None]
    ) -> None:
        self._emulator = emulator
        self._stream_failed = on_failure
        self.push = AvPush(target, producer.video, producer.audio, on_failure=self._on_failure, egress=emulator.egress)

    async def start(self) -> None:
        await self.push.start()

    def send_video(self, packet: EncodedPacket) -> None:
        self.push.send("video", packet)

    def send_audio(self, packet: EncodedPacket) -> None:
        self.push.send("audio", packet)

    def disconnect(self, reason: str) -> None:
        self.push.disconnect(reason)

    @property
    def failure(self) -> str | None:
        return self.push.failure

    async def aclose(self) -> None:
        await self.push.aclose()

    def stats(self) -> dict[str, Any]:
        return self.push.stats()

    def _on_failure(self, reason: str) -> None:
        self._emulator.events.record("stream.error", stream=AV_STREAM, url=self.push.target.redacted, reason=reason)
        self._stream_failed(reason)


class AvStream:
    """One StartAvStreaming: the producer task, its output, and everything they own."""

    def __init__(
        self, params: AvParams, *, host: str, stream_id: int, scene: MistyScene, emulator: Emulator
    ) -> None:
        self.params = params
        self.mode, self.rtspd_port = av_target(params.url)
        self.host = host
        self.stream_id = stream_id
        self.scene = scene
        self.emulator = emulator
        self._producer: AvProducer | None = None
        self._output: RtspdOutput | PushOutput | None = None
        self._tasks = TaskOwner(f"misty-av-{stream_id}")
        self._failure: str | None = None
        self._closed = False
        self._pacing = emulator.pacing_stats(AV_STREAM)  # in the emulator state from the start
        self._failed = asyncio.Event()
        self.frames_sent = 0

    @property
    def failed(self) -> bool:
        """True once a running stream broke (push connection lost, source disconnect fault)."""
        return self._failure is not None or (self._output is not None and self._output.failure is not None)

    @property
    def failure(self) -> str | None:
        return self._failure or (self._output.failure if self._output is not None else None)

    async def wait_failed(self) -> str:
        """Wait until the running stream breaks; returns the reason (a watcher needs no polling)."""
        await self._failed.wait()
        return self.failure or "failed"

    def _note_failure(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
        self._failed.set()

    @property
    def endpoint(self) -> str | None:
        """rtsp://host:port/ while serving in rtspd mode; None for pushes."""
        if isinstance(self._output, RtspdOutput):
            return f"rtsp://{self.host}:{self._output.port}/"
        return None

    @property
    def redacted_url(self) -> str:
        if self.mode == "rtspd":
            return self.params.url
        try:
            return PushTarget.parse(self.params.url, self.params.username, self.params.password).redacted
        except PushConnectError:  # unusable URL: show the scheme only, it may carry credentials
            return self.params.url.split("://", 1)[0] + "://…"

    async def start(self) -> None:
        """rtspd: the port is bound (OSError if taken). Push: connected and publishing, else AvConnectError."""
        self._producer = await asyncio.to_thread(
            AvProducer, self.params, stream_id=self.stream_id, scene=self.scene
        )
        if self.mode == "rtspd":
            assert self.rtspd_port is not None
            output: RtspdOutput | PushOutput = RtspdOutput(
                self._producer, host=self.host, port=self.rtspd_port, emulator=self.emulator
            )
            try:
                await output.start()
            except OSError:
                await output.aclose()
                raise
        else:
            try:
                target = PushTarget.parse(self.params.url, self.params.username, self.params.password)
                output = PushOutput(self._producer, target, emulator=self.emulator, on_failure=self._note_failure)
                await output.start()
            except PushConnectError as exc:
                self.emulator.events.record("outbound.failed", stream=AV_STREAM, url=self.redacted_url, reason=str(exc))
                raise AvConnectError(str(exc)) from None
            self.emulator.events.record("outbound.connected", stream=AV_STREAM, url=self.redacted_url)
        self._output = output
        self._tasks.spawn(self._produce(), name="av-producer")
        self.emulator.events.record(
            "stream.started",
            stream=AV_STREAM,
            stream_id=self.stream_id,
            mode=self.mode,
            url=self.redacted_url,
            endpoint=self.endpoint,
            size=f"{self.params.width}x{self.params.height}",
            frame_rate=self.params.frame_rate,
        )

    async def aclose(self) -> None:
        """Stop media, disconnect every client or the push target, free ports, join threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._tasks.aclose()
        if self._output is not None:
            await self._output.aclose()
            self.emulator.events.record(
                "stream.stopped", stream=AV_STREAM, stream_id=self.stream_id, mode=self.mode, frames=self.frames_sent
            )

    def snapshot(self) -> dict[str, Any]:
        """For the emulator's state: what is streaming where, and how it is going."""
        out: dict[str, Any] = {
            "stream_id": self.stream_id,
            "mode": self.mode,
            "url": self.redacted_url,
            "endpoint": self.endpoint,
            "width": self.params.width,
            "height": self.params.height,
            "frame_rate": self.params.frame_rate,
            "frames_sent": self.frames_sent,
            "failed": self.failed,
            "failure": self.failure,
        }
        if self._output is not None:
            out.update(self._output.stats())
        return out

    # ----- the producer -------------------------------------------------------------------------------
    async def _produce(self) -> None:
        producer, output = self._producer, self._output
        assert producer is not None and output is not None
        emulator = self.emulator
        pacer = Pacer(1.0 / self.params.frame_rate, stats=self._pacing)
        async for tick in pacer.ticks():
            if output.failure is not None:
                self._note_failure(output.failure)
                return  # the push broke: the stream goes idle, no retry (misty.md §4.2)
            rule = emulator.stream_fault(AV_STREAM, frame=tick.index)
            action = rule.action.type if rule is not None else None
            if action == "stall":
                await asyncio.sleep(rule.action.seconds)  # the pacer skips the ticks missed meanwhile
                continue
            if action in ("close", "disconnect"):
                reason = f"{action} fault"
                output.disconnect(reason)
                self._note_failure(reason)
                return
            encoded = await asyncio.to_thread(
                producer.encode_tick, tick.index, emulator.clock.now_ms(), with_video=action != "drop"
            )
            video = encoded.video
            if action == "corrupt":
                video = [replace(p, data=emulator.faults.corrupt(p.data)) for p in video]
            for packet in video:
                try:
                    output.send_video(packet)
                except ValueError:  # a corrupted access unit may no longer split into NAL units: lost
                    continue
            for packet in encoded.audio:
                output.send_audio(packet)
            if video:
                self.frames_sent += 1
