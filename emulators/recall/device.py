"""RecallEmulator: the Recall.ai bots API, simulated meetings and real-time media on one port (default 9082)."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp import web

from emulators.kit.codecs import PngEncoder
from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.recall.api import BotsApi
from emulators.recall.lifecycle import BotLifecycle
from emulators.recall.media import VIDEO_DIMENSIONS, TileRenderer
from emulators.recall.meeting import (
    CLIENT_PLATFORMS,
    MeetingEvent,
    Scenario,
    ScenarioParticipant,
    load_scenarios,
    parse_scenario,
    scenario_for,
)
from emulators.recall.model import (
    Bot,
    BotBook,
    BotSpec,
    CreateRules,
    IdempotencyBook,
    RateLimiter,
    validate_create,
)

DEV_API_KEY = "recall-dev-key"


class RecallEmulator(Emulator):
    device = "recall"
    title = "Recall.ai meeting bot (bots REST API, simulated meetings, real-time video/audio WebSockets, RTMP out)"
    default_port = 9082
    settings_defaults = {
        "port": 9082,
        "api_key": DEV_API_KEY,
        # Rate limits per API key and minute (dossier §2.2); 429 with Retry-After beyond them.
        "rate_limits": True,
        "rate_limit_create_per_min": 60,
        "rate_limit_list_per_min": 60,
        "rate_limit_bot_per_min": 300,
        "page_size": 50,
        # Quirks (dossier §5).
        "reject_legacy_fields": False,  # Q1: the current service answers 400 to v1.10 fields
        "strict_layout_validation": False,  # Q5: video_separate_png without gallery_view_v2 -> 400
        "strict_endpoint_shape": False,  # Q6: reject realtime endpoints nested as config: {url, events}
        "quirk_pool_exhausted": False,  # Q8: 507 for ad-hoc bots
        "quirk_waf_localhost": False,  # Q9: HTML 403 for 'localhost' in a payload or a GET with a body
        "extra_status_codes": False,  # Q10: also emit recording_permission_allowed
        "emit_recording_done": False,
        "legacy_video_dimensions": "seed",  # Q4: seed | v1.11 | sample
        "realtime_video_dimensions": "v1.11",
        # Media.
        "retry_interval_s": 3.0,  # reconnect cadence of every WebSocket sender (vendor: 3 s)
        "audio_chunk_ms": 100,
        "audio_separate_streams": False,  # legacy audio: one connection per participant with an id prefix
        "png_compression_level": 1,
        "encode_threads": 2,
        "rtmp_width": 1280,
        "rtmp_height": 720,
        "rtmp_fps": 30,
        # Lifecycle.
        "leave_delay_s": 0.5,
        "status_webhook_url": "",  # status-change webhooks go here when set (the dashboard's webhook endpoint)
        "webhook_retry_interval_s": 15.0,
        "scenario": "default",
    }

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        s = self.settings
        for name in ("legacy_video_dimensions", "realtime_video_dimensions"):
            if s[name] not in VIDEO_DIMENSIONS:
                raise FieldError(f"recall.{name}", f"must be one of {', '.join(VIDEO_DIMENSIONS)}, got {s[name]!r}")
        for name, lo in (("retry_interval_s", 0.01), ("audio_chunk_ms", 10), ("encode_threads", 1),
                         ("page_size", 1), ("rtmp_fps", 1), ("rtmp_width", 16), ("rtmp_height", 16)):
            if s[name] < lo:
                raise FieldError(f"recall.{name}", f"must be at least {lo}, got {s[name]}")
        if not 0 <= s["png_compression_level"] <= 9:
            raise FieldError("recall.png_compression_level", "must be 0..9")
        self.scenarios: dict[str, Scenario] = load_scenarios(seed=self.seed)
        if s["scenario"] not in self.scenarios:
            raise FieldError("recall.scenario", f"must be one of {', '.join(sorted(self.scenarios))}")
        self.api_keys = {s["api_key"]}
        self.create_rules = CreateRules(
            reject_legacy_fields=s["reject_legacy_fields"],
            strict_layout_validation=s["strict_layout_validation"],
            strict_endpoint_shape=s["strict_endpoint_shape"],
        )
        self.book = BotBook(self.seed)
        self.rate_limiter = RateLimiter()
        self.idempotency = IdempotencyBook()
        self.lives: dict[str, BotLifecycle] = {}
        self.renderer = TileRenderer()
        self.png_encoder = PngEncoder(s["png_compression_level"])
        self.executor: ThreadPoolExecutor | None = None
        self.session: aiohttp.ClientSession | None = None
        self.scenario_controls.update({
            "add_participant": self._control_add_participant,
            "remove_participant": self._control_remove_participant,
            "start_screenshare": self._control_start_screenshare,
            "stop_screenshare": self._control_stop_screenshare,
            "set_active_speaker": self._control_set_active_speaker,
            "end_meeting": self._control_end_meeting,
            "load_scenario": self._control_load_scenario,
        })

    def add_routes(self, app: web.Application) -> None:
        BotsApi(self).add_routes(app)

    async def on_start(self) -> None:
        self.executor = ThreadPoolExecutor(self.settings["encode_threads"], thread_name_prefix="recall-encode")
        self.session = aiohttp.ClientSession()

    async def on_stop(self) -> None:
        for life in list(self.lives.values()):
            if life.media is not None:
                await life.media.aclose()
        await self.tasks.cancel_all()  # every bot task; each closes its media on the way out
        if self.session is not None:
            await self.session.close()
            self.session = None
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self.executor = None

    async def on_reset(self, seed: int) -> None:
        self.book = BotBook(seed)
        self.lives.clear()
        self.rate_limiter = RateLimiter()
        self.idempotency = IdempotencyBook()
        self.scenarios = load_scenarios(seed=seed)

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.settings["api_key"], "authorization": f"Token {self.settings['api_key']}"}

    def state(self) -> dict[str, Any]:
        return {
            "bots": {bot_id: life.snapshot() for bot_id, life in self.lives.items()},
            "scenarios": sorted(self.scenarios),
        }

    # ----- bots ----------------------------------------------------------------------------------------
    def launch_bot(self, spec: BotSpec, api_key: str) -> Bot:
        bot = self.book.create(spec, self.clock.now(), api_key)
        scenario = scenario_for(spec.meeting_url.raw, self.scenarios, self.settings["scenario"])
        life = BotLifecycle(self, bot, scenario)
        self.lives[bot.id] = life
        life.task = self.tasks.spawn(life.run(), name=f"bot-{bot.id}")
        self.events.record("bot.created", bot=bot.id, generation=spec.generation, scenario=scenario.name)
        return bot

    def leave_call(self, bot: Bot) -> None:
        life = self.lives.get(bot.id)
        if life is None:
            bot.check_can_leave()
            return
        life.request_leave()

    async def delete_bot(self, bot: Bot) -> None:
        """A scheduled bot that never dispatched: its task ends without any further status change."""
        life = self.lives.pop(bot.id, None)
        if life is not None and life.task is not None:
            life.task.cancel()
            with contextlib.suppress(BaseException):
                await life.task
        self.book.remove(bot.id)

    # ----- scenario controls ----------------------------------------------------------------------------
    def _targets(self, body: dict[str, Any]) -> list[BotLifecycle]:
        bot_id = body.get("bot_id")
        if bot_id is not None:
            life = self.lives.get(bot_id) if isinstance(bot_id, str) else None
            if life is None or not life.bot.alive:
                raise FieldError("bot_id", f"no live bot {bot_id!r}")
            return [life]
        lives = [life for life in self.lives.values() if life.bot.alive]
        if not lives:
            raise FieldError("bot_id", "no live bot to apply this to; create a bot first")
        return lives

    @staticmethod
    def _participant_id(body: dict[str, Any]) -> int:
        pid = body.get("participant_id")
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise FieldError("participant_id", f"must be an integer participant id, got {pid!r}")
        return pid

    async def _event(self, body: dict[str, Any], code: str, *, need_present: bool = True) -> dict[str, Any]:
        pid = self._participant_id(body)
        applied = []
        for life in self._targets(body):
            if need_present and pid not in life.meeting.present:
                raise FieldError("participant_id", f"participant {pid} is not in the meeting of bot {life.bot.id}; "
                                 f"present: {sorted(life.meeting.present)}")
            if await life.apply(MeetingEvent(0.0, code, pid)):
                applied.append(life.bot.id)
        return {"applied": applied, "participant_id": pid, "event": code}

    async def _control_add_participant(self, body: dict[str, Any]) -> dict[str, Any]:
        lives = self._targets(body)
        platform = body.get("platform", "desktop")
        if platform not in CLIENT_PLATFORMS:
            raise FieldError("platform", f"must be one of {', '.join(CLIENT_PLATFORMS)}, got {platform!r}")
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise FieldError("name", "must be a non-empty string")
        out = []
        for life in lives:
            pid = body.get("participant_id")
            if pid is None:
                pid = max([0, *life.meeting.roster]) // 100 * 100 + 100
            elif isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid < 2**16:
                raise FieldError("participant_id", f"must be an integer in 1..65535, got {pid!r}")
            if pid not in life.meeting.roster:
                generated = parse_scenario({"participants": [{"id": pid}]}, seed=self.seed + pid).participants[0]
                life.meeting.add_participant(ScenarioParticipant(
                    id=pid, name=name or generated.name, is_host=bool(body.get("is_host", False)), platform=platform))
            await life.apply(MeetingEvent(0.0, "join", pid))
            out.append({"bot_id": life.bot.id, "participant_id": pid, "name": life.meeting.roster[pid].name})
        return {"joined": out}

    async def _control_remove_participant(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._event(body, "leave")

    async def _control_start_screenshare(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._event(body, "screenshare_on")

    async def _control_stop_screenshare(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._event(body, "screenshare_off")

    async def _control_set_active_speaker(self, body: dict[str, Any]) -> dict[str, Any]:
        pid = self._participant_id(body)
        for life in self._targets(body):
            if pid not in life.meeting.present:
                raise FieldError("participant_id", f"participant {pid} is not in the meeting of bot {life.bot.id}")
            for other in [p for p in life.meeting.speaking if p != pid]:
                await life.apply(MeetingEvent(0.0, "speech_off", other))
        return await self._event(body, "speech_on")

    async def _control_end_meeting(self, body: dict[str, Any]) -> dict[str, Any]:
        lives = self._targets(body)
        for life in lives:
            await life.apply(MeetingEvent(0.0, "end"))
        return {"ended": [life.bot.id for life in lives]}

    async def _control_load_scenario(self, body: dict[str, Any]) -> dict[str, Any]:
        """Add (or replace) a scenario; bots created afterwards for its meeting_urls follow it."""
        scenario = parse_scenario(body.get("scenario"), seed=self.seed, name=str(body.get("name", "custom")))
        self.scenarios[scenario.name] = scenario
        return {"scenario": scenario.name, "participants": [p.name for p in scenario.participants]}

    # ----- for benchmarks ------------------------------------------------------------------------------
    async def start_participant_streams(self, receiver_url: str, count: int, *, duration_s: float = 3600.0) -> str:
        """Start one gallery-view bot whose meeting has ``count`` participants, each one 1280x720 PNG stream.

        Returns the bot id; ``leave_call`` (or ``aclose``) ends it. Used by the benchmark.
        """
        name = f"bench-{count}-{time.monotonic_ns()}"
        letters = "".join(chr(ord("a") + (count // 26**i) % 26) for i in range(4))
        url = f"https://meet.google.com/ben-{letters}-chm"
        scenario = parse_scenario(
            {"name": name, "duration_s": duration_s / max(self.clock.time_scale, 1e-9), "meeting_urls": [url],
             "participants": [{"id": 100 * (i + 1)} for i in range(count)]},
            seed=self.seed,
        )
        self.scenarios[scenario.name] = scenario
        spec = validate_create(
            {"meeting_url": url, "recording_mode": "gallery_view",
             "real_time_media": {"websocket_video_destination_url": receiver_url}},
            self.create_rules, self.book.ids,
        )
        return self.launch_bot(spec, self.settings["api_key"]).id


EMULATOR = RecallEmulator
