"""RecallEmulator: wiring only. RecallSettings -> RecallBackend + RecallService + BotsApi -> a kit Emulator.

The registry imports this module to read the settings, so the backend, service and API are imported only when an
emulator is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.kit.emulator import Emulator
from emulators.recall.settings import DEV_API_KEY, RecallSettings

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from aiohttp import web

    from emulators.recall.meeting import Scenario

__all__ = ["DEV_API_KEY", "EMULATOR", "RecallEmulator"]


class RecallEmulator(Emulator):
    device = "recall"
    title = "Recall.ai meeting bot (bots REST API, simulated meetings, real-time video/audio WebSockets, RTMP out)"
    default_port = 9082
    start_cost_ms = (30.0, 10.0)  # CPU to start: its own imports, each member (numpy comes before the fork)
    settings_class = RecallSettings

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        from emulators.recall.create_request import CreateRules
        from emulators.recall.media import BotMediaSettings
        from emulators.recall.meeting import load_scenarios
        from emulators.recall.model import LifecycleRules, RecallBackend, ServiceRules
        from emulators.recall.service import RecallService, ServiceSettings
        from emulators.recall.signing import secret_key

        s: RecallSettings = self.settings
        secret_key(s.webhook_signing_secret)  # a malformed secret fails at start, not at the first webhook
        self.backend = RecallBackend(
            seed=self.seed,
            scenarios=load_scenarios(seed=self.seed),
            create_rules=CreateRules(
                reject_legacy_fields=s.reject_legacy_fields,
                strict_layout_validation=s.strict_layout_validation,
                strict_endpoint_shape=s.strict_endpoint_shape,
            ),
            service_rules=ServiceRules(
                api_keys=frozenset({s.api_key}),
                rate_limits=s.rate_limits,
                rate_limit_per_min={"create": s.rate_limit_create_per_min, "list": s.rate_limit_list_per_min,
                                    "bot": s.rate_limit_bot_per_min},
                page_size=s.page_size,
                quirk_pool_exhausted=s.quirk_pool_exhausted,
                quirk_waf_localhost=s.quirk_waf_localhost,
                default_scenario=s.scenario,
            ),
            lifecycle_rules=LifecycleRules(
                time_scale=self.clock.time_scale,
                leave_delay_s=s.leave_delay_s,
                extra_status_codes=s.extra_status_codes,
                emit_recording_done=s.emit_recording_done,
            ),
        )
        self.service = RecallService(
            self.backend, self, ServiceSettings(
                retry_interval_s=s.retry_interval_s,
                audio_separate_streams=s.audio_separate_streams,
                png_compression_level=s.png_compression_level,
                encode_threads=s.encode_threads,
                legacy_video_dimensions=s.legacy_video_dimensions,
                realtime_video_dimensions=s.realtime_video_dimensions,
                status_webhook_url=s.status_webhook_url,
                webhook_retry_interval_s=s.webhook_retry_interval_s,
                webhook_signing_secret=s.webhook_signing_secret,
                media_url_ttl_s=s.media_url_ttl_s,
                media=BotMediaSettings(audio_chunk_s=s.audio_chunk_ms / 1000.0, rtmp_width=s.rtmp_width,
                                       rtmp_height=s.rtmp_height, rtmp_fps=s.rtmp_fps),
            ),
            egress=self.egress, tasks=self.tasks.child("service"),
        )
        self.scenario_controls.update(self._controls())

    def add_routes(self, app: web.Application) -> None:
        from emulators.recall.api import BotsApi

        BotsApi(self.service, self.backend, self.clock).add_routes(app)

    async def on_start(self) -> None:
        await self.service.start()

    async def on_stop(self) -> None:
        await self.service.stop()

    async def on_reset(self, seed: int) -> None:
        from emulators.recall.meeting import load_scenarios

        self.backend.reset(seed, load_scenarios(seed=seed))

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.settings.api_key, "authorization": f"Token {self.settings.api_key}",
                "webhook_signing_secret": self.settings.webhook_signing_secret}

    @property
    def scenarios(self) -> MutableMapping[str, Scenario]:
        """Every meeting scenario by name: the packaged ones and the scenario_dirs folders' (theirs win)."""
        return self.backend.scenarios

    def live_streams(self) -> list[str]:
        return self.service.live_streams()

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


EMULATOR = RecallEmulator
