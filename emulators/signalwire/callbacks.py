"""Stream StatusCallback requests: ordered per stream, retried, with SignalWire's fields."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from emulators.kit.events import EventLog
from emulators.kit.outbound import RetryPolicy, WebhookSender
from emulators.signalwire.model import Stream, iso8601_ms


@dataclass
class CallbackSettings:
    attempts: int = 3
    retry_interval_s: float = 0.5
    timeout_s: float = 5.0


class StatusCallbacks:
    """Delivers one stream's StatusCallback requests in order (started before stopped), each retried."""

    def __init__(self, stream: Stream, call_sid: str, sender: WebhookSender, events: EventLog,
                 now: Callable[[], float]) -> None:
        self.stream = stream
        self.call_sid = call_sid
        self.sender = sender
        self.events = events
        self.now = now
        self._queue: asyncio.Queue[dict[str, str] | None] = asyncio.Queue()

    def fields(self, event: str, error: str | None = None) -> dict[str, str]:
        stream = self.stream
        out = {
            "AccountSid": stream.account_sid,
            "ConferenceSid": stream.conference_sid,
            "CallSid": self.call_sid,
            "StreamSid": stream.sid,
            "StreamName": stream.name or stream.sid,
            "StreamTrack": stream.request.track,
            "StreamEvent": event,
            "Timestamp": iso8601_ms(self.now()),
            "Unique-ID": self.call_sid,
        }
        if error is not None:
            out["StreamError"] = error
        return out

    def send(self, event: str, error: str | None = None) -> None:
        if self.stream.request.status_callback:
            self._queue.put_nowait(self.fields(event, error))

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def run(self) -> None:
        url = self.stream.request.status_callback
        method = self.stream.request.status_callback_method
        while (fields := await self._queue.get()) is not None:
            if url is None:
                continue
            try:
                # Checked off-loop first: the allowlist may resolve a name, which must not stall the media clock.
                await asyncio.to_thread(self.sender.egress.check, url)
                status = await self.sender.deliver(url, method=method, form=fields)
                self.events.record("callback.sent", stream=self.stream.sid, event=fields["StreamEvent"],
                                   status=status)
            except Exception as exc:  # delivery problems never break the stream; they are logged
                self.events.record("callback.failed", stream=self.stream.sid, event=fields["StreamEvent"],
                                   error=str(exc))


def default_retry(settings: CallbackSettings) -> RetryPolicy:
    return RetryPolicy(interval_s=settings.retry_interval_s, max_attempts=max(1, settings.attempts))
