"""RecallEmulator: wiring only. Settings -> RecallBackend + RecallService + BotsApi -> the kit Emulator (port 9082)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.recall.api import BotsApi
from emulators.recall.create_request import CreateRules
from emulators.recall.media import BotMediaSettings
from emulators.recall.meeting import load_scenarios
from emulators.recall.model import LifecycleRules, RecallBackend, ServiceRules
from emulators.recall.service import RecallService, ServiceSettings
from emulators.recall.tiles import VIDEO_DIMENSIONS

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
        _validate(s)
        self.backend = RecallBackend(
            seed=self.seed,
            scenarios=load_scenarios(seed=self.seed),
            create_rules=CreateRules(
                reject_legacy_fields=s["reject_legacy_fields"],
                strict_layout_validation=s["strict_layout_validation"],
                strict_endpoint_shape=s["strict_endpoint_shape"],
            ),
            service_rules=ServiceRules(
                api_keys=frozenset({s["api_key"]}),
                rate_limits=s["rate_limits"],
                rate_limit_per_min={b: s[f"rate_limit_{b}_per_min"] for b in ("create", "list", "bot")},
                page_size=s["page_size"],
                quirk_pool_exhausted=s["quirk_pool_exhausted"],
                quirk_waf_localhost=s["quirk_waf_localhost"],
                default_scenario=s["scenario"],
            ),
            lifecycle_rules=LifecycleRules(
                time_scale=self.clock.time_scale,
                leave_delay_s=s["leave_delay_s"],
                extra_status_codes=s["extra_status_codes"],
                emit_recording_done=s["emit_recording_done"],
            ),
        )
        self.service = RecallService(
            self.backend, self, ServiceSettings(
                retry_interval_s=s["retry_interval_s"],
                audio_separate_streams=s["audio_separate_streams"],
                png_compression_level=s["png_compression_level"],
                encode_threads=s["encode_threads"],
                legacy_video_dimensions=s["legacy_video_dimensions"],
                realtime_video_dimensions=s["realtime_video_dimensions"],
                status_webhook_url=s["status_webhook_url"],
                webhook_retry_interval_s=s["webhook_retry_interval_s"],
                media=BotMediaSettings(audio_chunk_s=s["audio_chunk_ms"] / 1000.0, rtmp_width=s["rtmp_width"],
                                       rtmp_height=s["rtmp_height"], rtmp_fps=s["rtmp_fps"]),
            ),
            egress=self.egress, tasks=self.tasks,
        )
        self.scenario_controls.update(self._controls())
        self.add_routes(self.app)

    def add_routes(self, app: web.Application) -> None:
        if not hasattr(self, "service"):
            return  # the kit constructor calls this before the wiring exists; __init__ adds the routes itself
        BotsApi(self.service, self.backend, self.clock).add_routes(app)

    async def on_start(self) -> None:
        await self.service.start()

    async def on_stop(self) -> None:
        await self.service.stop()

    async def on_reset(self, seed: int) -> None:
        self.backend.reset(seed, load_scenarios(seed=seed))

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.settings["api_key"], "authorization": f"Token {self.settings['api_key']}"}

    def state(self) -> dict[str, Any]:
        return {
            "bots": {bot_id: self.service.snapshot(bot_id) for bot_id in self.service.lives},
            "scenarios": sorted(self.backend.scenarios),
        }

    def _controls(self) -> dict[str, Any]:
        backend, service = self.backend, self.service

        def event(code: str) -> Any:
            async def control(body: dict[str, Any]) -> dict[str, Any]:
                result, changes = backend.control_event(body, code, self.clock.now())
                await service.apply(changes)
                return result
            return control

        async def add_participant(body: dict[str, Any]) -> dict[str, Any]:
            result, changes = backend.add_participant(body, self.clock.now())
            await service.apply(changes)
            return result

        async def set_active_speaker(body: dict[str, Any]) -> dict[str, Any]:
            result, changes = backend.set_active_speaker(body, self.clock.now())
            await service.apply(changes)
            return result

        async def end_meeting(body: dict[str, Any]) -> dict[str, Any]:
            result = backend.end_meeting(body, self.clock.now())
            service.poke()
            return result

        async def load_scenario(body: dict[str, Any]) -> dict[str, Any]:
            return backend.load_scenario(body)

        return {
            "add_participant": add_participant,
            "remove_participant": event("leave"),
            "start_screenshare": event("screenshare_on"),
            "stop_screenshare": event("screenshare_off"),
            "set_active_speaker": set_active_speaker,
            "end_meeting": end_meeting,
            "load_scenario": load_scenario,
        }


def _validate(s: dict[str, Any]) -> None:
    for name in ("legacy_video_dimensions", "realtime_video_dimensions"):
        if s[name] not in VIDEO_DIMENSIONS:
            raise FieldError(f"recall.{name}", f"must be one of {', '.join(VIDEO_DIMENSIONS)}, got {s[name]!r}")
    for name, lo in (("retry_interval_s", 0.01), ("audio_chunk_ms", 10), ("encode_threads", 1),
                     ("page_size", 1), ("rtmp_fps", 1), ("rtmp_width", 16), ("rtmp_height", 16)):
        if s[name] < lo:
            raise FieldError(f"recall.{name}", f"must be at least {lo}, got {s[name]}")
    if not 0 <= s["png_compression_level"] <= 9:
        raise FieldError("recall.png_compression_level", "must be 0..9")


EMULATOR = RecallEmulator
