"""The real-time (v1.11) sender: one websocket endpoint carrying every subscribed event as a JSON envelope
(participant events, transcript, separate PNG video, mixed or separate raw audio).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from clients import recall_wire as wire
from emulators.kit.outbound import EgressPolicy, EgressRefused, OutboundFailed, RetryPolicy, WebhookSender
from emulators.kit.pacer import Pacer
from emulators.recall.create_request import Endpoint
from emulators.recall.meeting import MeetingEvent
from emulators.recall.mix import AudioMixer
from emulators.recall.senders import Connection, JsonEventStream, MediaContext
from emulators.recall.tiles import VIDEO_PERIOD_S, TileSpec

# Meeting event codes that are participant_events.* on the wire (mute/unmute are not: only audio shows them).
PARTICIPANT_EVENTS = frozenset({"join", "leave", "update", "speech_on", "speech_off", "webcam_on", "webcam_off",
                                "screenshare_on", "screenshare_off", "chat_message"})


def _event_details(event: MeetingEvent) -> dict[str, Any] | None:
    """The event's own ``data``: the message of a chat line; nothing for the others."""
    if event.code == "chat_message":
        return {"text": event.text, "to": event.to or "everyone"}
    return None


class RealtimeEndpointStream(JsonEventStream):
    """A v1.11 websocket realtime endpoint: every subscribed event on one connection; 30 tries per incident."""

    max_attempts = 30

    def __init__(self, ctx: MediaContext, endpoint: Endpoint, *, separate_png: bool, audio_chunk_s: float,
                 egress: EgressPolicy) -> None:
        super().__init__(ctx, endpoint.url, f"realtime/{endpoint.id}", egress=egress)
        self.endpoint = endpoint
        self.separate_png = separate_png  # decided by the backend's stream plan
        self.audio_chunk_s = audio_chunk_s
        self.mixer = AudioMixer(ctx.meeting)

    def subscribed(self, event: str) -> bool:
        return event in self.endpoint.events

    def resources(self, **extra: dict[str, Any] | None) -> dict[str, dict[str, Any] | None]:
        bot = self.ctx.bot
        recording_id = bot.recording.id if bot.recording else None
        out: dict[str, dict[str, Any] | None] = {
            "realtime_endpoint": wire.resource_ref(self.endpoint.id, self.endpoint.metadata),
            "recording": wire.resource_ref(recording_id, {}),
            "bot": wire.resource_ref(bot.id, {k: v for k, v in bot.spec.metadata.items() if v is not None}),
        }
        out.update(extra)
        return out

    def timestamp(self, monotonic_s: float) -> dict[str, Any]:
        relative = max(0.0, monotonic_s - self.ctx.clock0)
        return wire.event_timestamp(relative, self.ctx.wall0 + relative)

    def participant(self, pid: int) -> dict[str, Any]:
        person = self.ctx.meeting.roster.get(pid)
        if person is None:
            return wire.participant_payload(pid, None, is_host=False, platform=None)
        return wire.participant_payload(pid, person.name, is_host=person.is_host, platform=person.platform)

    @property
    def accepting(self) -> bool:
        """Events are produced only while they can reach the endpoint (real-time data is not replayed)."""
        return self.conn is not None

    def greeting(self) -> list[str]:
        # Only the first connection: a reconnect does not replay what the endpoint may already have seen.
        return self.present_joins() if self.connections == 1 else []

    def on_meeting_event(self, event: MeetingEvent, at: float) -> None:
        if event.participant is None or not self.accepting:
            return
        if event.code in PARTICIPANT_EVENTS:
            self._participant_event(event.code, event.participant, at, _event_details(event))
        if event.code == "speech_off" and event.text:
            # The provider's interim result comes first, then the final utterance (same words here).
            for kind in ("transcript.partial_data", "transcript.data"):
                if self.subscribed(kind):
                    self.publish(self._transcript(kind, event, at))

    def _participant_event(self, code: str, pid: int, at: float, details: dict[str, Any] | None) -> None:
        message = self._participant_message(code, pid, at, details)
        if message is not None:
            self.publish(message)

    def _participant_message(self, code: str, pid: int, at: float, details: dict[str, Any] | None) -> str | None:
        name = f"participant_events.{code}"
        if not self.subscribed(name):
            return None
        data = {"participant": self.participant(pid), "timestamp": self.timestamp(at), "data": details}
        return wire.realtime_event(name, data, self.resources(participant_events=wire.resource_ref(
            self.ctx.bot.recording.id if self.ctx.bot.recording else None)))

    def present_joins(self) -> list[str]:
        """Joins for everyone already in the call, stamped at the recording start (relative 0)."""
        clock0 = self.ctx.clock0
        joins = (self._participant_message("join", pid, clock0, None) for pid in list(self.ctx.meeting.present))
        return [m for m in joins if m is not None]

    def _transcript(self, kind: str, event: MeetingEvent, at: float) -> str:
        words = event.text.split() if event.text else []
        scale = self.ctx.emulator.clock.time_scale
        start_s, end_s = event.interval_s or (0.0, 0.0)
        span = max(0.001, (end_s - start_s) * scale)
        begin = at - span
        step = span / max(1, len(words))
        out = []
        for i, word in enumerate(words):
            out.append({
                "text": word,
                "start_timestamp": self.timestamp(begin + i * step),
                "end_timestamp": self.timestamp(begin + (i + 1) * step),
            })
        data = {"words": out, "participant": self.participant(event.participant or 0)}
        return wire.realtime_event(kind, data, self.resources(transcript=wire.resource_ref(None)))

    async def stream(self, conn: Connection) -> None:
        owner = self.ctx.tasks.child(self.name.split('/', 1)[1])
        try:
            if self.separate_png:
                owner.spawn(self._video(), name="video_separate_png")
            if self.subscribed("audio_mixed_raw.data") or self.subscribed("audio_separate_raw.data"):
                owner.spawn(self._audio(), name="audio_raw")
            await super().stream(conn)
        finally:
            await owner.aclose()

    async def _video(self) -> None:
        ctx = self.ctx
        start_index = ctx.grid_index(ctx.emulator.clock.monotonic())
        pacer = Pacer(VIDEO_PERIOD_S, stats=ctx.emulator.pacing_stats("realtime.video"))
        video_ref = wire.resource_ref(f"{ctx.bot.id}-video-separate", {})
        async for tick in pacer.ticks(start=ctx.clock0 + start_index * VIDEO_PERIOD_S):
            index = start_index + tick.index
            tiles: list[tuple[str, TileSpec]] = []
            for person in list(ctx.meeting.present.values()):
                if person.id in ctx.meeting.camera_off:
                    continue  # a camera that is off sends no webcam frames
                tiles.append(("webcam", ctx.layout.webcam(ctx.meeting, person)))
            for pid in list(ctx.meeting.sharing):
                person = ctx.meeting.present.get(pid)
                if person is not None:
                    tiles.append(("screenshare", ctx.layout.screenshare(ctx.meeting, person)))
            pngs = await asyncio.gather(*(ctx.render_png(spec, index) for _kind, spec in tiles))
            stamp = self.timestamp(tick.deadline)
            for (kind, spec), png in zip(tiles, pngs, strict=True):
                data = wire.png_event_data(png, kind=kind, participant=self.participant(spec.participant_id),
                                           timestamp=stamp)
                self.publish(wire.realtime_event("video_separate_png.data", data,
                                                 self.resources(video_separate=video_ref)))

    async def _audio(self) -> None:
        samples = round(self.audio_chunk_s * wire.AUDIO_SAMPLE_RATE)
        mixed_ref = wire.resource_ref(f"{self.ctx.bot.id}-audio-mixed", {})
        separate_ref = wire.resource_ref(f"{self.ctx.bot.id}-audio-separate", {})
        separate = AudioMixer(self.ctx.meeting)  # its own tone phases: the mix and the singles are separate streams
        async for tick in Pacer(self.audio_chunk_s, stats=self.ctx.emulator.pacing_stats("realtime.audio")).ticks():
            stamp = self.timestamp(tick.deadline)
            if self.subscribed("audio_mixed_raw.data"):
                data = wire.audio_event_data(self.mixer.mixed(samples), timestamp=stamp)
                self.publish(wire.realtime_event("audio_mixed_raw.data", data, self.resources(audio_mixed=mixed_ref)))
            if self.subscribed("audio_separate_raw.data"):
                for pid in list(self.ctx.meeting.present):
                    pcm = separate.single(pid, samples)
                    if pcm is None:
                        continue  # muted participants send nothing
                    data = wire.audio_event_data(pcm, timestamp=stamp, participant=self.participant(pid))
                    self.publish(wire.realtime_event("audio_separate_raw.data", data,
                                                     self.resources(audio_separate=separate_ref)))


class RealtimeWebhookStream(RealtimeEndpointStream):
    """A v1.11 webhook realtime endpoint: each subscribed event is one POST of the same ``{event, data}`` body,
    in order. A failed POST (no connection, timeout, 5xx) is retried like a websocket incident: every retry
    interval, 30 attempts; then the endpoint is ``failed`` and gets nothing more."""

    async def run(self) -> None:
        events = self.ctx.emulator.events
        sender = WebhookSender(self.ctx.session, retry=RetryPolicy(self.ctx.retry_interval_s, self.max_attempts),
                               egress=self.egress, events=events, ssl=self.ctx.emulator.client_ssl, timeout_s=15.0)
        self.state, self.connections = "connected", 1  # no handshake: the endpoint is live from the first event
        events.record("stream.started", stream=self.name, url=self.url, connection=1)
        for message in self.present_joins():
            self.publish(message)
        self.ctx.pulse.beat()
        try:
            while True:
                message = await self.queue.get()
                try:
                    await sender.deliver(self.url, json=json.loads(message))
                except (EgressRefused, OutboundFailed) as exc:
                    self.state = "failed"
                    events.record("stream.error", stream=self.name, error=str(exc))
                    self.ctx.pulse.beat()
                    return
                self.messages_sent += 1
                self.ctx.pulse.beat()
        except asyncio.CancelledError:
            if self.state == "connected":
                events.record("stream.stopped", stream=self.name, reason="stream ended")
            self.state = "closed"
            raise

    @property
    def accepting(self) -> bool:
        return self.state == "connected"

    def publish(self, message: str) -> None:
        if not self.accepting:
            return
        if self.queue.full():
            self.ctx.emulator.events.record("stream.dropped", stream=self.name, reason="webhook backlog full")
            return
        self.queue.put_nowait(message)
