"""Alert and capture-session webhooks: one queue and one delivery task per emulator, sending through the
configured egress policy with the configured retries, so a slow receiver delays later ones but never loses them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

from emulators.kit.events import EventLog
from emulators.kit.outbound import EgressPolicy, OutboundFailed, RetryPolicy, WebhookSender
from emulators.kit.tasks import TaskOwner
from emulators.videodb.alerts import AlertFiring

log = logging.getLogger("benchtwin.videodb")


class AlertWebhooks:
    def __init__(
        self,
        egress: EgressPolicy,
        *,
        events: EventLog,
        retry: RetryPolicy,
        times_as_seconds: bool,
        client_ssl: Callable[[], ssl.SSLContext | None],
    ) -> None:
        self.egress = egress
        self.events = events
        self.retry = retry
        self.times_as_seconds = times_as_seconds
        self.client_ssl = client_ssl  # asked at the first webhook, not at start-up
        self._session: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def open(self, tasks: TaskOwner) -> None:
        self._session = self.egress.client_session()  # checks every request and hop, connects to what it checked
        self._queue = asyncio.Queue()
        tasks.spawn(self._deliver_all(self._session), name="webhooks")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def deliver(self, firing: AlertFiring) -> None:
        """Queue a fired alert whose ``callback_url`` is set."""
        assert firing.callback_url is not None
        self._queue.put_nowait((firing.callback_url, firing.webhook_body(times_as_seconds=self.times_as_seconds)))

    def post(self, url: str, body: dict[str, Any]) -> None:
        """Queue any other callback (a capture session's ``capture_session.*`` messages)."""
        self._queue.put_nowait((url, body))

    async def _deliver_all(self, session: aiohttp.ClientSession) -> None:
        sender: WebhookSender | None = None
        while True:
            url, body = await self._queue.get()
            if sender is None:  # at the first webhook: the TLS context is made then
                sender = WebhookSender(
                    session, retry=self.retry, egress=self.egress, events=self.events, ssl=self.client_ssl()
                )
            try:
                await sender.deliver(url, json=body)
            except OutboundFailed as exc:
                log.info("webhook to %s failed: %s", url, exc)
            except Exception as exc:  # an egress refusal or a bad URL must not end the delivery loop
                self.events.record("outbound.failed", url=url, error=str(exc))
