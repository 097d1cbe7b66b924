"""RecallService: the async side of the bots service. It drives the backend's schedule, opens and closes each
bot's media as the backend's changes say, and delivers status webhooks; every decision is the backend's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from emulators.kit.codecs import PngEncoder
from emulators.kit.emulator import Emulator
from emulators.kit.outbound import EgressPolicy, EgressRefused, OutboundFailed, RetryPolicy, WebhookSender
from emulators.kit.tasks import TaskOwner
from emulators.recall.media import BotMedia, BotMediaSettings
from emulators.recall.mix import MixScene
from emulators.recall.model import (
    Bot,
    BotStatus,
    Change,
    MeetingChanged,
    RecallBackend,
    StatusChange,
    StatusChanged,
    status_webhook,
)
from emulators.recall.recording import Tape, encode_mp4, signed_media_url
from emulators.recall.senders import MediaContext
from emulators.recall.signing import message_id, signed_headers
from emulators.recall.tiles import TileLayout, TileRenderer

WEBHOOK_ATTEMPTS = 5


def recording_path(bot_id: str) -> str:
    return f"/api/v1/bot/{bot_id}/recording.mp4"


@dataclass(frozen=True)
class ServiceSettings:
    """What the service needs to perform I/O: sender cadences, encoding, sizes and the webhook endpoint."""

    retry_interval_s: float = 3.0
    audio_separate_streams: bool = False
    png_compression_level: int = 1
    encode_threads: int = 2
    legacy_video_dimensions: str = "seed"
    realtime_video_dimensions: str = "v1.11"
    status_webhook_url: str = ""
    webhook_retry_interval_s: float = 15.0
    webhook_signing_secret: str = ""
    media_url_ttl_s: float = 6 * 3600.0
    media: BotMediaSettings = field(default_factory=BotMediaSettings)


@dataclass(frozen=True)
class SignedWebhook:
    """One Svix message: its id stays the same across retries, as Svix's does."""

    body: bytes  # exactly the bytes that were signed
    headers: dict[str, str]


@dataclass
class BotIO:
    """What one bot has open: its media once it records, and its queue of status webhooks."""

    bot: Bot
    media: BotMedia | None = None
    webhooks: asyncio.Queue[SignedWebhook] | None = None
    webhook_task: asyncio.Task[None] | None = None
    tape: Tape | None = None  # what the bot saw and heard, from in_call_recording
    wall0: float = 0.0  # Unix time of in_call_recording
    mp4: asyncio.Future[bytes] | None = None  # encoded once, on the first download


class RecallService:
    """Runs the backend's schedule in one short loop and performs what its changes ask for."""

    def __init__(self, backend: RecallBackend, emulator: Emulator, settings: ServiceSettings, *,
                 egress: EgressPolicy, tasks: TaskOwner) -> None:
        self.backend = backend
        self.emulator = emulator  # the kit services senders use: clock, event log, stream faults, pacing
        self.clock = emulator.clock
        self.events = emulator.events
        self.settings = settings
        self.egress = egress
        self.tasks = tasks
        self.lives: dict[str, BotIO] = {}
        self.renderer = TileRenderer()
        self.png_encoder = PngEncoder(settings.png_compression_level)
        self.executor: ThreadPoolExecutor | None = None
        self.session: aiohttp.ClientSession | None = None
        self._msg_ids = random.Random(f"recall-svix-{emulator.seed}")
        self.media_key = hashlib.sha256(f"recall-media-{emulator.seed}".encode()).digest()
        self._poke = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.executor = ThreadPoolExecutor(self.settings.encode_threads, thread_name_prefix="recall-encode")
        self.session = self.egress.client_session()  # checks every request and hop, connects to what it checked

    async def stop(self) -> None:
        for live in list(self.lives.values()):
            if live.media is not None:
                await live.media.aclose()
        await self.tasks.cancel_all()  # the schedule loop, webhook senders and leaving bots
        self.lives.clear()
        self._loop_task = None
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None

    # ----- commands from the API and the control plane --------------------------------------------------
    def create_bot(self, body: Any, api_key: str) -> Bot:
        bot = self.backend.create_bot(body, api_key, self.clock.now())
        live = self.lives[bot.id] = BotIO(bot)
        if self.settings.status_webhook_url:
            live.webhooks = asyncio.Queue()
            self._queue_webhook(live, bot.status_changes[0])
            live.webhook_task = self.tasks.spawn(self._deliver_webhooks(live.webhooks), name=f"webhooks-{bot.id}")
        self.events.record("bot.created", bot=bot.id, generation=bot.spec.generation,
                           scenario=self.backend.scenario_name(bot.id))
        self.poke()
        return bot

    def update_bot(self, bot_id: str, patch: Any, api_key: str) -> Bot:
        bot = self.backend.update_bot(bot_id, patch, api_key, self.clock.now())
        self.events.record("bot.updated", bot=bot.id, fields=sorted(patch) if isinstance(patch, dict) else [])
        self.poke()  # the new join_at moves the bot's wake-up
        return bot

    def leave_call(self, bot_id: str, api_key: str) -> Bot:
        bot = self.backend.leave_call(bot_id, api_key, self.clock.now())
        self.poke()
        return bot

    async def delete_bot(self, bot_id: str, api_key: str) -> None:
        self.backend.delete_bot(bot_id, api_key)
        live = self.lives.pop(bot_id, None)
        if live is not None and live.webhook_task is not None:
            live.webhook_task.cancel()
            with contextlib.suppress(BaseException):
                await live.webhook_task

    async def apply(self, changes: list[Change]) -> None:
        """Act on changes a control made, then let the schedule see the new state."""
        await self._act(changes)
        self.poke()

    # ----- the schedule loop -----------------------------------------------------------------------------
    def poke(self) -> None:
        """Something changed the backend: wake the loop, or start it (it ends when nothing is scheduled)."""
        self._poke.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = self.tasks.spawn(self._run_schedule(), name="schedule")

    async def _run_schedule(self) -> None:
        while True:
            self._poke.clear()
            await self._act(self.backend.advance(self.clock.now()))
            wake = self.backend.next_wakeup()
            if wake is None and not self._poke.is_set():
                return  # only a command can change anything now; it pokes the loop back to life
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if wake is None else max(0.0, wake - self.clock.now())):
                    await self._poke.wait()

    async def _act(self, changes: list[Change]) -> None:
        for change in changes:
            live = self.lives.get(change.bot.id)
            if live is None:
                continue  # deleted or reset meanwhile
            if isinstance(change, StatusChanged):
                await self._on_status(live, change)
            elif isinstance(change, MeetingChanged):
                await self._on_meeting(live, change)

    async def _on_status(self, live: BotIO, changed: StatusChanged) -> None:
        code = changed.change.code
        self.events.record("bot.status", bot=live.bot.id, code=str(code), sub_code=changed.change.sub_code)
        self._queue_webhook(live, changed.change)
        if code is BotStatus.IN_CALL_RECORDING:
            live.wall0, live.tape = changed.change.created_at, Tape()
            live.tape.mark(0.0, MixScene.of(self.backend.meeting(live.bot.id)))
            live.media = self._media(live.bot, changed.change.created_at)
            await self._sync(live)
        elif code is BotStatus.CALL_ENDED:
            if live.tape is not None:
                live.tape.stop(changed.change.created_at - live.wall0)
            # Closing senders can take seconds (close handshakes, the RTMP thread): the bot leaves on its own task.
            self.tasks.spawn(self._leave(live), name=f"leave-{live.bot.id}")
        elif code in (BotStatus.DONE, BotStatus.FATAL):
            self.tasks.spawn(self._retire(live), name=f"retire-{live.bot.id}")

    async def _on_meeting(self, live: BotIO, changed: MeetingChanged) -> None:
        event = changed.event
        self.events.record("meeting.event", bot=live.bot.id, code=event.code, participant=event.participant)
        if live.tape is not None:
            live.tape.mark(changed.at - live.wall0, MixScene.of(self.backend.meeting(live.bot.id)))
        if live.media is not None:
            # The senders' clock is monotonic: the event happened (now - at) seconds ago.
            monotonic_at = self.clock.monotonic() - max(0.0, self.clock.now() - changed.at)
            live.media.on_meeting_event(event, monotonic_at)
            await self._sync(live)

    async def _sync(self, live: BotIO) -> None:
        if live.media is not None:
            plan = self.backend.streams_of(live.bot.id, audio_separate_streams=self.settings.audio_separate_streams)
            await live.media.sync(plan)

    def _media(self, bot: Bot, wall0: float) -> BotMedia:
        assert self.session is not None and self.executor is not None, "the service is not started"
        s = self.settings
        profile = s.legacy_video_dimensions if bot.spec.generation == "v1.10" else s.realtime_video_dimensions
        ctx = MediaContext(
            emulator=self.emulator, bot=bot, meeting=self.backend.meeting(bot.id), session=self.session,
            executor=self.executor, renderer=self.renderer, encoder=self.png_encoder,
            retry_interval_s=s.retry_interval_s, layout=TileLayout(profile), tasks=self.tasks.child(f"bot-{bot.id}"),
            clock0=self.clock.monotonic() - max(0.0, self.clock.now() - wall0), wall0=wall0,
        )
        return BotMedia(ctx, s.media, self.egress)

    async def _leave(self, live: BotIO) -> None:
        if live.media is not None:
            await live.media.aclose()
        await self._act(self.backend.release(live.bot.id, self.clock.now()))
        self.poke()

    async def _retire(self, live: BotIO) -> None:
        """The bot is over: let its last webhooks go out (bounded by the retry policy), then drop its I/O."""
        if live.media is not None:
            await live.media.aclose()
        if live.webhooks is not None and live.webhook_task is not None:
            joined = asyncio.ensure_future(live.webhooks.join())
            try:
                await asyncio.wait([joined, live.webhook_task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                joined.cancel()
                live.webhook_task.cancel()
                for task in (joined, live.webhook_task):
                    with contextlib.suppress(BaseException):
                        await task

    def _queue_webhook(self, live: BotIO, change: StatusChange) -> None:
        """Sign the change's webhook now (Svix stamps the message when it is created) and queue it in order."""
        body = status_webhook(live.bot, change)
        if live.webhooks is None or body is None:
            return
        # Serialised once: the signed bytes are the bytes sent.
        raw = json.dumps(body).encode()
        headers = signed_headers(self.settings.webhook_signing_secret, message_id(self._msg_ids),
                                 int(self.clock.now()), raw)
        live.webhooks.put_nowait(SignedWebhook(raw, headers))

    async def _deliver_webhooks(self, queue: asyncio.Queue[SignedWebhook]) -> None:
        """Status webhooks in order, each retried per the device's policy; a failed one does not block the next."""
        assert self.session is not None
        sender = WebhookSender(
            self.session, retry=RetryPolicy(self.settings.webhook_retry_interval_s, WEBHOOK_ATTEMPTS),
            egress=self.egress, events=self.events, ssl=self.emulator.client_ssl, timeout_s=15.0,
        )
        while True:
            message = await queue.get()
            try:
                await sender.deliver(self.settings.status_webhook_url, raw_json=message.body, headers=message.headers)
            except EgressRefused as exc:
                self.events.record("webhook.refused", url=self.settings.status_webhook_url, error=str(exc))
            except OutboundFailed:
                pass  # recorded as outbound.failed by the sender; the next status still goes out
            finally:
                queue.task_done()

    # ----- the recording ---------------------------------------------------------------------------------
    def video_url(self, bot: Bot, base_url: str) -> str | None:
        """A fresh signed link to the bot's recording once it is done; None before (the vendor's null)."""
        live = self.lives.get(bot.id)
        if live is None or live.tape is None or live.tape.duration_s is None or bot.status is not BotStatus.DONE:
            return None
        return signed_media_url(self.media_key, base_url, recording_path(bot.id), self.clock.now(),
                                self.settings.media_url_ttl_s)

    async def recording_mp4(self, bot_id: str) -> bytes | None:
        live = self.lives.get(bot_id)
        if live is None or live.tape is None or live.tape.duration_s is None:
            return None
        if live.mp4 is None:
            loop = asyncio.get_running_loop()
            live.mp4 = asyncio.ensure_future(loop.run_in_executor(self.executor, encode_mp4, live.tape, live.wall0))
        return await asyncio.shield(live.mp4)

    # ----- state ---------------------------------------------------------------------------------------
    def snapshot(self, bot_id: str) -> dict[str, Any]:
        live = self.lives[bot_id]
        meeting = self.backend.meeting(bot_id)
        media = live.media
        return {
            "status": str(live.bot.status),
            "present": sorted(meeting.present),
            "speaking": list(meeting.speaking),
            "sharing": list(meeting.sharing),
            "streams": media.snapshot() if media else {},
            "realtime_endpoints": {
                s.endpoint.id: {"state": s.state, "connections": s.connections, "url": s.url}
                for s in (media.realtime if media else [])
            },
        }

    def live_streams(self) -> list[str]:
        return sorted(f"{bot_id}/{key}" for bot_id, live in self.lives.items() if live.media is not None
                      for key in live.media.snapshot())
