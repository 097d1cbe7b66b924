"""What a Recall bot streams: its senders, opened and closed to match the backend's stream plan.

The backend decides which streams a bot has (``model.stream_plan``); BotMedia only starts the missing ones,
stops the ones no longer planned, and tells live senders about meeting events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clients import recall_wire as wire
from emulators.kit.memory import release_native_memory
from emulators.kit.outbound import EgressPolicy
from emulators.recall.legacy import LegacyAudioStream, LegacyVideoStream
from emulators.recall.meeting import MeetingEvent
from emulators.recall.mix import AUDIO_CHUNK_S
from emulators.recall.model import PlannedStream
from emulators.recall.realtime import RealtimeEndpointStream, RealtimeWebhookStream
from emulators.recall.senders import JsonEventStream, MediaContext, OutboundStream
from emulators.recall.tiles import TileSpec

if TYPE_CHECKING:
    from emulators.recall.rtmp import RtmpPush


@dataclass(frozen=True)
class BotMediaSettings:
    audio_chunk_s: float = AUDIO_CHUNK_S
    rtmp_width: int = 1280
    rtmp_height: int = 720
    rtmp_fps: int = 30


@dataclass
class BotMedia:
    """A bot's live senders by plan key; closes them all (1000) when the bot leaves."""

    ctx: MediaContext
    settings: BotMediaSettings
    egress: EgressPolicy
    streams: dict[str, tuple[OutboundStream, asyncio.Task[Any]]] = field(default_factory=dict)
    rtmp: RtmpPush | None = None

    @property
    def realtime(self) -> list[RealtimeEndpointStream]:
        return [s for s, _task in self.streams.values() if isinstance(s, RealtimeEndpointStream)]

    async def sync(self, plan: dict[str, PlannedStream]) -> None:
        """Open every planned stream that is not open; close every open one that is no longer planned."""
        for key in [k for k in self.streams if k not in plan]:
            await self._stop(key)
        if self.rtmp is not None and "rtmp" not in plan:
            await self.rtmp.aclose()
            self.rtmp = None
        for key, planned in plan.items():
            if planned.kind == "rtmp":
                if self.rtmp is None:
                    from emulators.recall.rtmp import RtmpPush  # PyAV muxing is only loaded for bots that push

                    self.rtmp = RtmpPush(self.ctx, planned.url, width=self.settings.rtmp_width,
                                         height=self.settings.rtmp_height, fps=self.settings.rtmp_fps,
                                         gallery=planned.gallery, egress=self.egress)
                    self.rtmp.start()
            elif key not in self.streams:
                stream = self._sender(planned)
                self.streams[key] = (stream, self.ctx.tasks.spawn(stream.run(), name=key))

    def _sender(self, planned: PlannedStream) -> OutboundStream:
        ctx, egress, chunk_s = self.ctx, self.egress, self.settings.audio_chunk_s
        if planned.kind == "legacy_video":
            suffix = planned.key.removeprefix("video/")
            return LegacyVideoStream(ctx, planned.url, suffix, planned.participant_id or 0,
                                     self._tile_source(planned), egress=egress)
        if planned.kind == "legacy_audio":
            return LegacyAudioStream(ctx, planned.url, chunk_s, planned.participant_id, egress=egress)
        if planned.kind == "realtime_webhook" and planned.endpoint is not None:
            return RealtimeWebhookStream(ctx, planned.endpoint, separate_png=False, audio_chunk_s=chunk_s,
                                         egress=egress)
        if planned.kind == "realtime" and planned.endpoint is not None:
            return RealtimeEndpointStream(ctx, planned.endpoint, separate_png=planned.separate_png,
                                          audio_chunk_s=chunk_s, egress=egress)
        return JsonEventStream(ctx, planned.url, planned.key, egress=egress)  # the speaker timeline

    def _tile_source(self, planned: PlannedStream) -> Callable[[], TileSpec | None]:
        layout, meeting, pid = self.ctx.layout, self.ctx.meeting, planned.participant_id or 0
        if planned.source == "speaker":
            return lambda: layout.speaker(meeting)
        if planned.source == "screenshare":
            return lambda: layout.share(meeting, pid)
        return lambda: layout.participant(meeting, pid)

    async def _stop(self, key: str) -> None:
        entry = self.streams.pop(key, None)
        if entry is None:
            return
        _stream, task = entry
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        self.ctx.pulse.beat()

    def on_meeting_event(self, event: MeetingEvent, at: float) -> None:
        """Tell live senders what happened (``at`` on the monotonic clock): realtime events, speaker timeline."""
        for stream in self.realtime:
            stream.on_meeting_event(event, at)
        timeline = self.streams.get("speaker_timeline")
        if timeline is not None and event.code == "speech_on" and event.participant is not None:
            person = self.ctx.meeting.roster.get(event.participant)
            assert isinstance(timeline[0], JsonEventStream)
            timeline[0].publish(wire.speaker_timeline_message(
                person.name if person else None, event.participant, max(0.0, at - self.ctx.clock0)))

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checked whenever a sender makes progress."""
        await self.ctx.pulse.wait_for(predicate, timeout_s)

    def frames_sent(self) -> dict[str, int]:
        return {key: getattr(stream, "frames_sent", 0) for key, (stream, _task) in self.streams.items()}

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, (stream, _task) in self.streams.items():
            out[key] = {"state": stream.state, "connections": stream.connections, "url": stream.url}
        if self.rtmp is not None:
            out["rtmp"] = {"state": self.rtmp.state, "connections": self.rtmp.connections, "url": self.rtmp.url}
        return out

    async def aclose(self) -> None:
        if self.rtmp is not None:
            await self.rtmp.aclose()
            self.rtmp = None
        for key in list(self.streams):
            await self._stop(key)
        await self.ctx.tasks.aclose()
        await release_native_memory()  # the encoders' heap pages, now free, go back to the system
