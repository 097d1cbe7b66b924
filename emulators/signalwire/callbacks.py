"""Status callbacks: SignalWire's fields for stream and conference callbacks, and their ordered, retried delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlencode

from yarl import URL

from emulators.kit.events import EventLog
from emulators.kit.outbound import WebhookSender
from emulators.signalwire.model import Conference, Participant, Stream, iso8601_ms, rfc2822

# (url as sent, POST parameters) -> the signature headers
Signer = Callable[[str, dict[str, str]], dict[str, str]]


def stream_fields(stream: Stream, call_sid: str, event: str, timestamp: float,
                  error: str | None = None) -> dict[str, str]:
    """A stream StatusCallback: ``Timestamp`` in ISO 8601 with milliseconds, ``StreamError`` on errors only."""
    out = {
        "AccountSid": stream.account_sid,
        "ConferenceSid": stream.conference_sid,
        "CallSid": call_sid,
        "StreamSid": stream.sid,
        "StreamName": stream.name or stream.sid,
        "StreamTrack": stream.request.track,
        "StreamEvent": event,
        "Timestamp": iso8601_ms(timestamp),
        "Unique-ID": call_sid,
    }
    if error is not None:
        out["StreamError"] = error
    return out


def conference_fields(conference: Conference, event: str, timestamp: float,
                      participant: Participant | None = None) -> dict[str, str]:
    """A conference status callback: ``Timestamp`` in RFC 2822; participant events add the participant's flags."""
    fields = {
        "AccountSid": conference.account_sid,
        "ConferenceSid": conference.sid,
        "FriendlyName": conference.friendly_name,
        "StatusCallbackEvent": event,
        "Timestamp": rfc2822(timestamp),
    }
    if participant is not None:
        fields.update(CallSid=participant.call_sid, Muted=str(participant.muted).lower(),
                      Hold=str(participant.hold).lower(), Coaching=str(participant.coaching).lower(),
                      EndConferenceOnExit=str(participant.end_conference_on_exit).lower(),
                      StartConferenceOnEnter=str(participant.start_conference_on_enter).lower())
    return fields


class CallbackQueue:
    """One subject's callbacks to one URL, delivered in order by ``run`` (each retried by the sender).

    ``subject`` tags the event log (``{"stream": sid}`` or ``{"conference": sid}``); ``event_field`` names the
    field that says which event a request reports. The sender carries the emulator's egress policy; ``sign``
    gives each request's signature headers.
    """

    def __init__(self, url: str | None, method: str, sender: WebhookSender, events: EventLog, *,
                 subject: dict[str, str], event_field: str, sign: Signer) -> None:
        self.url = url
        self.method = method
        self.sender = sender
        self.sign = sign
        self.events = events
        self.subject = subject
        self.event_field = event_field
        self._queue: asyncio.Queue[dict[str, str] | None] = asyncio.Queue()

    def send(self, fields: dict[str, str]) -> None:
        if self.url:
            self._queue.put_nowait(fields)

    def close(self) -> None:
        """``run`` ends once what is queued before this has been delivered."""
        self._queue.put_nowait(None)

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until everything queued has been handled."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            pass

    async def run(self) -> None:
        while True:
            fields = await self._queue.get()
            try:
                if fields is None:
                    return
                await self._deliver(fields)
            finally:
                self._queue.task_done()

    async def _deliver(self, fields: dict[str, str]) -> None:
        assert self.url is not None
        event = fields[self.event_field]
        try:
            # Checked off the loop first: the allowlist may resolve a name, which must not stall the media clock.
            await asyncio.to_thread(self.sender.egress.check, self.url)
            if self.method.upper() == "GET":
                # Signed as sent: the fields in the query string, the URL normalised as the HTTP client will send it.
                joined = f"{self.url}{'&' if '?' in self.url else '?'}{urlencode(fields)}"
                url, form = str(URL(joined)), None
                headers = self.sign(url, {})
            else:
                url, form = self.url, fields
                headers = self.sign(url, fields)
            status = await self.sender.deliver(url, method=self.method, form=form, headers=headers)
            self.events.record("callback.sent", **self.subject, event=event, status=status)
        except Exception as exc:  # a customer's broken endpoint never breaks the stream or the conference
            self.events.record("callback.failed", **self.subject, event=event, error=str(exc))
