"""Conference status callbacks (opt-in per conference): start/end, joins and leaves, mute, hold, speech.

Each conference with a ``status_callback`` gets one ordered, retried delivery worker and, while it is in
progress, a watcher that turns its speaking timeline into ``participant-speech-start``/``-stop`` events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from emulators.kit.events import EventLog
from emulators.kit.outbound import WebhookSender
from emulators.kit.pacer import Pacer
from emulators.kit.tasks import TaskOwner
from emulators.signalwire.model import Conference, Participant, rfc2822

CONFERENCE_EVENTS = (
    "conference-start",
    "conference-end",
    "participant-join",
    "participant-leave",
    "participant-mute",
    "participant-unmute",
    "participant-hold",
    "participant-unhold",
    "participant-speech-start",
    "participant-speech-stop",
)
SPEECH_POLL_S = 0.1


class ConferenceCallbacks:
    """Ordered delivery of one conference's status callbacks; the owner starts ``run`` and ``watch_speech``."""

    def __init__(self, conference: Conference, sender: WebhookSender, events: EventLog,
                 now: Callable[[], float], media_ms: Callable[[], int]) -> None:
        self.conference = conference
        self.sender = sender
        self.events = events
        self.now = now
        self.media_ms = media_ms
        self.tasks = TaskOwner(f"signalwire:conference:{conference.sid}")
        self._queue: asyncio.Queue[dict[str, str] | None] = asyncio.Queue()
        self._speaking: dict[str, bool] = {}

    def wanted(self, event: str) -> bool:
        return bool(self.conference.status_callback) and event in self.conference.status_callback_events

    def emit(self, event: str, participant: Participant | None = None) -> None:
        if not self.wanted(event):
            return
        fields = {
            "AccountSid": self.conference.account_sid,
            "ConferenceSid": self.conference.sid,
            "FriendlyName": self.conference.friendly_name,
            "StatusCallbackEvent": event,
            "Timestamp": rfc2822(self.now()),
        }
        if participant is not None:
            fields.update(CallSid=participant.call_sid, Muted=str(participant.muted).lower(),
                          Hold=str(participant.hold).lower(), Coaching=str(participant.coaching).lower(),
                          EndConferenceOnExit=str(participant.end_conference_on_exit).lower(),
                          StartConferenceOnEnter=str(participant.start_conference_on_enter).lower())
        self._queue.put_nowait(fields)

    def start(self) -> None:
        self.tasks.spawn(self._deliver(), name="deliver")
        self.tasks.spawn(self._watch_speech(), name="speech")

    async def aclose(self, drain_s: float = 5.0) -> None:
        """Deliver what is queued (bounded), then stop the worker and the watcher."""
        self._queue.put_nowait(None)
        try:
            async with asyncio.timeout(drain_s):
                await self._queue.join()
        except TimeoutError:
            pass
        finally:
            await self.tasks.aclose()

    async def _deliver(self) -> None:
        url = self.conference.status_callback
        method = self.conference.status_callback_method
        while True:
            fields = await self._queue.get()
            try:
                if fields is None or url is None:
                    continue
                try:
                    await asyncio.to_thread(self.sender.egress.check, url)  # may resolve a name: off the loop
                    status = await self.sender.deliver(url, method=method, form=fields)
                    self.events.record("callback.sent", conference=self.conference.sid,
                                       event=fields["StatusCallbackEvent"], status=status)
                except Exception as exc:  # a customer's broken endpoint never breaks the conference
                    self.events.record("callback.failed", conference=self.conference.sid,
                                       event=fields["StatusCallbackEvent"], error=str(exc))
            finally:
                self._queue.task_done()

    async def _watch_speech(self) -> None:
        if not (self.wanted("participant-speech-start") or self.wanted("participant-speech-stop")):
            return
        async for _tick in Pacer(SPEECH_POLL_S).ticks():
            if self.conference.status != "in-progress":
                if self.conference.status == "completed":
                    return
                continue
            media_ms = self.media_ms()
            for participant in list(self.conference.participants.values()):
                speaking = participant.speaks_at(media_ms)
                if speaking != self._speaking.get(participant.call_sid, False):
                    self._speaking[participant.call_sid] = speaking
                    self.emit("participant-speech-start" if speaking else "participant-speech-stop", participant)
