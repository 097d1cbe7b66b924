"""The life of one bot in asyncio: status changes on a (scaled) schedule, the meeting timeline, media, leaving.

The rules (which status follows which, who may leave) live in model.py and meeting.py; this module only
decides *when*, using the emulator clock's time scale for every lifecycle delay and scenario time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faker import Faker

from clients.recall_wire import iso_utc
from emulators.kit.outbound import EgressRefused, OutboundFailed, RetryPolicy, WebhookSender
from emulators.recall.media import BotMedia, BotMediaSettings, MediaContext
from emulators.recall.meeting import Meeting, MeetingEvent, Scenario, ScenarioParticipant, timeline
from emulators.recall.model import Bot, MeetingParticipant, StatusChange

if TYPE_CHECKING:
    from emulators.recall.device import RecallEmulator

# Offsets from creation, in seconds before the time scale (dossier §4).
JOINING_AT_S = 0.2
IN_CALL_AT_S = 0.6
RECORDING_AT_S = 1.0
PARTICIPANT_EVENT_CODES = {"join", "leave", "speech_on", "speech_off", "screenshare_on", "screenshare_off"}


@dataclass
class _Ending:
    sub_code: str
    delay_s: float = 0.0


class BotLifecycle:
    """Owns one bot's task: joins, records, follows the meeting, and ends with call_ended and done."""

    def __init__(self, device: RecallEmulator, bot: Bot, scenario: Scenario) -> None:
        self.device = device
        self.bot = bot
        self.scenario = scenario
        self.meeting = Meeting(scenario)
        self.media: BotMedia | None = None
        self.rtmp: Any = None
        self.task: asyncio.Task[None] | None = None  # set by the device, which owns it
        self._wake = asyncio.Event()
        self._ending: _Ending | None = None
        self._meeting0 = 0.0
        self._everyone_left_at: float | None = None
        self._noone_joined_at: float | None = None
        self._speech_started: dict[int, float] = {}
        self._webhooks: asyncio.Queue[dict[str, Any]] | None = None
        self._faker: Faker | None = None  # made on first use: only control-plane speech needs it

    # ----- commands from the API and the control plane --------------------------------------------------
    def request_leave(self) -> None:
        self.bot.check_can_leave()
        if self._ending is None:
            self._ending = _Ending("bot_received_leave_call", self.device.settings["leave_delay_s"])
        self._wake.set()

    def end_meeting(self) -> None:
        if self._ending is None:
            self._ending = _Ending("call_ended_by_host")
        self._wake.set()

    @property
    def in_call(self) -> bool:
        return self.bot.status in ("in_call_not_recording", "in_call_recording", "recording_permission_allowed")

    async def apply(self, event: MeetingEvent) -> bool:
        """Apply a meeting event now (timeline or control plane) and tell the bot and its media."""
        if event.code == "speech_off" and event.text is None:
            event = self._with_script(event)
        if not self.meeting.apply(event):
            return False
        if event.code == "speech_on" and event.participant is not None:
            self._speech_started[event.participant] = self._scenario_time()
        now = self.device.clock.now()
        if event.code == "end":
            self.end_meeting()
            return True
        person = self.meeting.roster.get(event.participant or -1)
        if person is not None and event.code in PARTICIPANT_EVENT_CODES:
            self.bot.participant_event(_as_bot_participant(person), event.code, now)
        if self.meeting.present:
            self._everyone_left_at = None
            self._noone_joined_at = None
        elif event.code == "leave":
            timeout = self.bot.spec.automatic_leave["everyone_left_timeout"]
            self._everyone_left_at = time.monotonic() + self.device.clock.scaled(timeout)
        if self.media is not None:
            await self.media.on_meeting_event(event, time.monotonic())
        self.device.events.record("meeting.event", bot=self.bot.id, code=event.code, participant=event.participant)
        self._wake.set()
        return True

    def _scenario_time(self) -> float:
        scale = self.device.clock.time_scale or 1.0
        return (time.monotonic() - self._meeting0) / scale if self._meeting0 else 0.0

    def _with_script(self, event: MeetingEvent) -> MeetingEvent:
        """A speech_off from the control plane: the words come from the script line due now, else from Faker."""
        pid = event.participant
        start = self._speech_started.get(pid or -1, self._scenario_time())
        end = max(start, self._scenario_time())
        line = next((t.text for t in self.scenario.speaking if t.participant == pid and t.start_s <= end <= t.end_s
                     and t.text), None)
        if line is None and self._faker is None:
            self._faker = Faker()
            self._faker.seed_instance(self.device.seed ^ int(self.bot.id.replace("-", "")[:8], 16))
        text = line or self._faker.sentence(nb_words=max(3, min(20, int((end - start) * 2))))
        return MeetingEvent(event.at_s, event.code, pid, text, (start, end))

    # ----- the schedule -----------------------------------------------------------------------------------
    def _status(self, code: str, sub_code: str | None = None, message: str | None = None) -> None:
        self.bot.record_status(code, self.device.clock.now(), sub_code, message)
        self.device.events.record("bot.status", bot=self.bot.id, code=code, sub_code=sub_code)
        if self._webhooks is not None:
            self._webhooks.put_nowait(status_webhook(self.bot, self.bot.status_changes[-1]))

    async def _deliver_webhooks(self, url: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Status webhooks in order, each retried per the device's policy; a failed one does not block the next."""
        sender = WebhookSender(
            self.device.session, retry=RetryPolicy(self.device.settings["webhook_retry_interval_s"], 5),
            egress=self.device.egress, events=self.device.events, ssl=self.device.client_ssl, timeout_s=15.0,
        )
        while True:
            payload = await queue.get()
            try:
                with contextlib.suppress(OutboundFailed, EgressRefused):
                    await sender.deliver(url, json=payload)
            finally:
                queue.task_done()

    async def _pause(self, seconds: float) -> bool:
        """Wait a scaled lifecycle delay; True when the bot was told to leave meanwhile."""
        if self._ending is not None:
            return True
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.device.clock.scaled(seconds)):
                while self._ending is None:
                    await self._wake.wait()
                    self._wake.clear()
        return self._ending is not None

    async def run(self) -> None:
        url = self.device.settings["status_webhook_url"]
        webhooks = None
        if url:
            self._webhooks = asyncio.Queue()
            webhooks = asyncio.get_running_loop().create_task(self._deliver_webhooks(url, self._webhooks))
            self._webhooks.put_nowait(status_webhook(self.bot, self.bot.status_changes[0]))
        try:
            await self._live()
            if webhooks is not None and self._webhooks is not None:
                # Let the last status changes go out before the bot's task ends (bounded by the retry policy).
                await self._drain_webhooks(webhooks)
        finally:
            if webhooks is not None:
                webhooks.cancel()
                with contextlib.suppress(BaseException):
                    await webhooks
            if self.rtmp is not None:
                await self.rtmp.aclose()
            if self.media is not None:
                await self.media.aclose()

    async def _live(self) -> None:
        spec = self.bot.spec
        if spec.join_at is not None:
            # A scheduled bot joins at its wall-clock join_at (not scaled: it is a date), then runs the usual steps.
            delay = spec.join_at - self.device.clock.now()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        if await self._pause(JOINING_AT_S):
            return await self._finish()
        self._status("joining_call")
        if self.scenario.missing:
            self._status("fatal", "meeting_not_found", "The meeting could not be found.")
            return None
        if self.scenario.waiting_room_s > 0:
            self._status("in_waiting_room")
            limit = spec.automatic_leave["waiting_room_timeout"]
            if await self._pause(min(self.scenario.waiting_room_s, limit)):
                return await self._finish()
            if self.scenario.waiting_room_s > limit:
                self._ending = _Ending("timeout_exceeded_waiting_room")
                return await self._finish()
        if await self._pause(IN_CALL_AT_S - JOINING_AT_S):
            return await self._finish()
        self._status("in_call_not_recording")
        self.bot.meeting_title = self.scenario.title
        self._meeting0 = time.monotonic()
        events = timeline(self.scenario)
        cursor = await self._run_due(events, 0)
        if not self.meeting.present:
            timeout = spec.automatic_leave["noone_joined_timeout"]
            self._noone_joined_at = time.monotonic() + self.device.clock.scaled(timeout)
        if await self._pause(RECORDING_AT_S - IN_CALL_AT_S):
            return await self._finish()
        if self.device.settings["extra_status_codes"]:
            self._status("recording_permission_allowed")
        self._start_recording()
        self._status("in_call_recording")
        await self._follow(events, cursor)
        return await self._finish()

    def _start_recording(self) -> None:
        now_wall, now_mono = self.device.clock.now(), time.monotonic()
        self.bot.start_recording(self.device.book.new_id(), now_wall)
        settings = self.device.settings
        generation = self.bot.spec.generation
        ctx = MediaContext(
            emulator=self.device,
            bot=self.bot,
            meeting=self.meeting,
            session=self.device.session,
            executor=self.device.executor,
            renderer=self.device.renderer,
            encoder=self.device.png_encoder,
            retry_interval_s=settings["retry_interval_s"],
            video_profile=settings["legacy_video_dimensions" if generation == "v1.10" else "realtime_video_dimensions"],
            clock0=now_mono,
            wall0=now_wall,
        )
        self.media = BotMedia(
            ctx,
            BotMediaSettings(
                retry_interval_s=settings["retry_interval_s"],
                audio_chunk_s=settings["audio_chunk_ms"] / 1000.0,
                audio_separate_streams=settings["audio_separate_streams"],
            ),
        )
        self.media.start()
        rtmp_url = self._rtmp_url()
        if rtmp_url:
            from emulators.recall.rtmp import RtmpPush  # PyAV muxing is only loaded for bots that push RTMP

            self.rtmp = RtmpPush(ctx, rtmp_url, width=settings["rtmp_width"], height=settings["rtmp_height"],
                                 fps=settings["rtmp_fps"], gallery=self.bot.spec.layout != "speaker_view")
            self.rtmp.start()

    def _rtmp_url(self) -> str | None:
        spec = self.bot.spec
        if spec.generation == "v1.10":
            return spec.real_time_media.get("rtmp_destination_url")
        for endpoint in spec.endpoints:
            if endpoint.type == "rtmp":
                return endpoint.url
        return None

    async def _run_due(self, events: list[MeetingEvent], cursor: int) -> int:
        """Apply every timeline event whose scaled time has come; returns the new cursor."""
        now = time.monotonic()
        while cursor < len(events) and self._at(events[cursor]) <= now:
            await self.apply(events[cursor])
            cursor += 1
        return cursor

    def _at(self, event: MeetingEvent) -> float:
        return self._meeting0 + self.device.clock.scaled(event.at_s)

    async def _follow(self, events: list[MeetingEvent], cursor: int) -> None:
        while self._ending is None:
            cursor = await self._run_due(events, cursor)
            if self._ending is not None:
                break
            now = time.monotonic()
            if self._everyone_left_at is not None and now >= self._everyone_left_at:
                self._ending = _Ending("timeout_exceeded_everyone_left")
                break
            if self._noone_joined_at is not None and now >= self._noone_joined_at:
                self._ending = _Ending("timeout_exceeded_noone_joined")
                break
            wake_at = min(
                self._at(events[cursor]) if cursor < len(events) else math.inf,
                self._everyone_left_at or math.inf,
                self._noone_joined_at or math.inf,
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if wake_at == math.inf else max(0.0, wake_at - time.monotonic())):
                    await self._wake.wait()

    async def _finish(self) -> None:
        ending = self._ending or _Ending("call_ended_by_host")
        if ending.delay_s:
            await self.device.clock.sleep_scaled(ending.delay_s)
        self._status("call_ended", ending.sub_code)
        if self.rtmp is not None:
            await self.rtmp.aclose()
            self.rtmp = None
        if self.media is not None:
            await self.media.aclose()
        self.bot.finish_recording(self.device.clock.now())
        if self.device.settings["emit_recording_done"] and self.bot.recording is not None:
            self._status("recording_done")
        self._status("done")

    async def _drain_webhooks(self, task: asyncio.Task[None]) -> None:
        """Wait until every queued webhook went out (or the sender stopped)."""
        assert self._webhooks is not None
        joined = asyncio.ensure_future(self._webhooks.join())
        try:
            await asyncio.wait([joined, task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            joined.cancel()
            with contextlib.suppress(BaseException):
                await joined

    def snapshot(self) -> dict[str, Any]:
        return {
            "status": self.bot.status,
            "present": sorted(self.meeting.present),
            "speaking": list(self.meeting.speaking),
            "sharing": list(self.meeting.sharing),
            "streams": self.media.snapshot() if self.media else {},
            "realtime_endpoints": {
                s.endpoint.id: {"state": s.state, "connections": s.connections, "url": s.url}
                for s in (self.media.realtime if self.media else [])
            },
        }


def _as_bot_participant(person: ScenarioParticipant) -> MeetingParticipant:
    return MeetingParticipant(person.id, person.name, person.is_host, person.platform)



def status_webhook(bot: Bot, change: StatusChange) -> dict[str, Any]:
    """The status-change webhook body of the bot's generation (dossier §2.6)."""
    at = iso_utc(change.created_at)
    if bot.spec.generation == "v1.10":
        return {"event": "bot.status_change", "data": {"bot_id": bot.id, "status": {
            "code": change.code, "created_at": at, "sub_code": change.sub_code, "message": change.message}}}
    metadata = {k: v for k, v in bot.spec.metadata.items() if v is not None}
    return {"event": f"bot.{change.code}", "data": {
        "data": {"code": change.code, "sub_code": change.sub_code, "updated_at": at},
        "bot": {"id": bot.id, "metadata": metadata}}}
