"""The legacy (v1.10) senders: video (a text hello, then uint32 LE id + uint32 LE ms + PNG at 2 fps per stream)
and audio (a JSON hello, then S16LE 16 kHz mono chunks, mixed or one participant's with an id prefix).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import numpy as np

from clients import recall_wire as wire
from emulators.kit.outbound import EgressPolicy
from emulators.kit.pacer import Pacer
from emulators.recall.mix import AudioMixer
from emulators.recall.senders import Connection, MediaContext, OutboundStream, apply_stream_fault
from emulators.recall.tiles import VIDEO_PERIOD_S, TileSpec


class LegacyVideoStream(OutboundStream):
    """One legacy video stream: a text hello, then uint32 LE id + uint32 LE ms + PNG at 2 fps."""

    def __init__(self, ctx: MediaContext, url: str, suffix: str, header_id: int,
                 source: Callable[[], TileSpec | None], *, egress: EgressPolicy) -> None:
        super().__init__(ctx, url, f"video/{suffix}", egress=egress)
        self.header_id = header_id
        self.source = source
        self.frames_sent = 0

    async def _frame(self, index: int) -> tuple[int, bytes | None]:
        spec = self.source()
        return index, (None if spec is None else await self.ctx.render_png(spec, index, give_up_late=True))

    async def stream(self, conn: Connection) -> None:
        ctx = self.ctx
        await conn.send_str(wire.video_hello(ctx.bot.id))
        start_index = ctx.grid_index(ctx.emulator.clock.monotonic())
        pacer = Pacer(VIDEO_PERIOD_S, stats=ctx.emulator.pacing_stats("video"))
        send_stats = ctx.emulator.pacing_stats("video.send")
        # Encode one frame ahead: frame n+1 renders while we wait for n's deadline, so sends are on time.
        pending = asyncio.ensure_future(self._frame(start_index))
        try:
            async for tick in pacer.ticks(start=ctx.clock0 + start_index * VIDEO_PERIOD_S):
                index, png = await pending
                # When behind (a busy machine), skip ahead to the current slot; every encoded frame is still
                # sent, with its own timestamp, so no work is thrown away exactly when CPU is short.
                pending = asyncio.ensure_future(self._frame(max(index, start_index + tick.index) + 1))
                if png is None:
                    if self.source() is not None:
                        send_stats.skipped += 1  # encoded too late to be worth sending
                    continue
                message = wire.pack_video_frame(self.header_id, index * 500, png)
                payload = await apply_stream_fault(ctx, self.name, message, conn)
                if payload is None:
                    continue
                await conn.send_bytes(payload)
                send_stats.record(max(0.0, ctx.emulator.clock.monotonic() - (ctx.clock0 + index * VIDEO_PERIOD_S)))
                self.frames_sent += 1
                ctx.pulse.beat()
        finally:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


class LegacyAudioStream(OutboundStream):
    """Legacy audio: JSON hello, then raw S16LE 16 kHz mono chunks (mixed, or one participant's with an id prefix)."""

    def __init__(self, ctx: MediaContext, url: str, chunk_s: float, participant_id: int | None = None, *,
                 egress: EgressPolicy) -> None:
        super().__init__(ctx, url, "audio" if participant_id is None else f"audio/{participant_id}", egress=egress)
        self.chunk_s = chunk_s
        self.participant_id = participant_id
        self.mixer = AudioMixer(ctx.meeting)
        self.chunks_sent = 0

    async def stream(self, conn: Connection) -> None:
        ctx = self.ctx
        offset = max(0.0, ctx.emulator.clock.monotonic() - ctx.clock0)
        separate = self.participant_id is not None
        recording_id = ctx.bot.recording.id if ctx.bot.recording else None
        await conn.send_str(wire.audio_hello(ctx.bot.id, recording_id, separate_streams=separate, offset_s=offset))
        samples = round(self.chunk_s * wire.AUDIO_SAMPLE_RATE)
        async for _tick in Pacer(self.chunk_s, stats=ctx.emulator.pacing_stats("audio")).ticks():
            if separate:
                pcm = self.mixer.single(self.participant_id or 0, samples)
                if pcm is None:
                    continue
            else:
                pcm = self.mixer.mixed(samples)
            payload = await apply_stream_fault(ctx, self.name, wire.pack_audio_chunk(pcm, self.participant_id), conn)
            if payload is None:
                continue
            await conn.send_bytes(payload)
            ctx.emulator.previews.offer_audio(self.name, pcm, _s16le)
            self.chunks_sent += 1
            ctx.pulse.beat()


def _s16le(chunk: bytes) -> np.ndarray:
    return np.frombuffer(chunk, dtype="<i2")
