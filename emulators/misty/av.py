"""Misty AV streaming: one producer task encodes H.264 + AAC once per frame (``media.py``), then serves it
(`rtspd:<port>`, the robot's own RTSP server) or pushes it (`rtmp://` FLV, `rtsp://` ANNOUNCE/RECORD)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from emulators.kit.codecs import EncodedPacket
from emulators.kit.emulator import Emulator
from emulators.kit.faults import Abort, Close, Send, Skip, Stall, corrupt_payload
from emulators.kit.memory import release_native_memory
from emulators.kit.outbound import EgressPolicy
from emulators.kit.pacer import Pacer
from emulators.kit.rtsp.live import AacTrack, H264Track, LiveMedia
from emulators.kit.rtsp.server import RtspServer
from emulators.kit.tasks import TaskOwner
from emulators.misty.av_push import AvPush, PushConnectError, PushTarget
from emulators.misty.media import AvProducer
from emulators.misty.model import AV_STREAM, AvRequest
from emulators.misty.scene import MistyScene


class AvConnectError(Exception):
    """A push target could not be reached or did not finish its handshake in 5 s; str(exc) is the reason."""


class RtspdOutput:
    """`rtspd:<port>`: the encoded media published into a kit LiveMedia and served by the kit RtspServer."""

    def __init__(self, producer: AvProducer, *, host: str, port: int, emulator: Emulator) -> None:
        video, audio = producer.video, producer.audio
        self.media = LiveMedia(
            H264Track(video.width, video.height, float(video.fps), video.sps, video.pps),
            None if audio is None else AacTrack(audio.sample_rate, audio.channels, audio.audio_specific_config),
        )
        self._fps = video.fps
        self._sample_rate = producer.params.sample_rate
        self._emulator = emulator
        self.server = RtspServer(self.media, host=host, port=port, on_event=self._on_rtsp_event, seed=emulator.seed)
        emulator.rtsp_servers.add(self.server)
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

    def _on_rtsp_event(self, kind: str, details: dict[str, Any]) -> None:
        mapped = {"client_connected": "client.connected", "client_disconnected": "client.disconnected"}
        self._emulator.events.record(mapped.get(kind, f"rtsp.{kind}"), stream=AV_STREAM, **details)


class PushOutput:
    """`rtmp://` and `rtsp://`: the encoded media muxed by PyAV and pushed to an external server."""

    def __init__(
        self,
        producer: AvProducer,
        target: PushTarget,
        *,
        emulator: Emulator,
        tasks: TaskOwner,
        egress: EgressPolicy,
        on_failure: Callable[[str], None],
    ) -> None:
        self._emulator = emulator
        self._stream_failed = on_failure
        self.push = AvPush(
            target,
            producer.video,
            producer.audio,
            emulator=emulator,
            tasks=tasks,
            egress=egress,
            on_failure=self._on_failure,
        )

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
    """One StartAvStreaming: the producer task, its output, and everything they own.

    ``egress`` is the emulator's configured allowlist; a push checks its target against it before connecting.
    """

    def __init__(
        self,
        params: AvRequest,
        *,
        host: str,
        stream_id: int,
        scene: MistyScene,
        emulator: Emulator,
        tasks: TaskOwner,
        egress: EgressPolicy,
        audio: bool = True,
    ) -> None:
        self.params = params
        self.audio = audio  # False: video only (the `av_audio` setting)
        self.mode, self.rtspd_port = params.mode, params.rtspd_port
        self.egress = egress
        self.host = host
        self.stream_id = stream_id
        self.scene = scene
        self.emulator = emulator
        self._producer: AvProducer | None = None
        self._output: RtspdOutput | PushOutput | None = None
        self._tasks = tasks  # this stream's own owner, closed with it
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
            AvProducer, self.params, stream_id=self.stream_id, scene=self.scene, audio=self.audio
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
                output = PushOutput(
                    self._producer,
                    target,
                    emulator=self.emulator,
                    tasks=self._tasks,
                    egress=self.egress,
                    on_failure=self._note_failure,
                )
                await output.start()
            except PushConnectError as exc:
                self.emulator.events.record("outbound.failed", stream=AV_STREAM, url=self.redacted_url, reason=str(exc))
                # The encoders go now, not when the traceback holding this frame is collected (aclose trims).
                self._producer = output = None  # type: ignore[assignment]
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
        self._producer = None  # the encoders: freed here, their heap pages given back below
        await release_native_memory()

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
            corrupt = False
            with_video = True
            match emulator.stream_verdict(AV_STREAM, frame=tick.index):
                case Send(corrupt=corrupt):
                    pass
                case Skip():
                    # Deviation: a dropped frame skips the picture only; the audio of that tick is still sent,
                    # so the sound has no gap and the stamp index simply jumps.
                    with_video = False
                case Stall() as stall:
                    await stall.wait()  # the pacer skips the ticks missed meanwhile
                    continue
                case Close():
                    # Deviation: RTSP/RTMP have no close code; a close is the source going away, like disconnect.
                    self._disconnect(output, "close fault")
                    return
                case Abort():
                    self._disconnect(output, "disconnect fault")
                    return
            encoded = await asyncio.to_thread(
                producer.encode_tick, tick.index, emulator.clock.now_ms(), with_video=with_video
            )
            video = encoded.video
            if with_video and producer.last_frame is not None:
                emulator.previews.offer_frame(AV_STREAM, producer.last_frame)
            if corrupt:
                video = [replace(p, data=corrupt_payload(p.data)) for p in video]
            for packet in video:
                try:
                    output.send_video(packet)
                except ValueError:  # a corrupted access unit may no longer split into NAL units: lost
                    continue
            for packet in encoded.audio:
                output.send_audio(packet)
            if video:
                self.frames_sent += 1

    def _disconnect(self, output: RtspdOutput | PushOutput, reason: str) -> None:
        output.disconnect(reason)
        self._note_failure(reason)
