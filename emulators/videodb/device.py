"""The VideoDB RTStream emulator's wiring: settings -> backend, data directory, ingest pipeline, alert webhooks,
service and REST API -> the kit ``Emulator``. The registry imports this module to read the settings, so the
backend, pipeline, service and API are imported only when an emulator is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulators.kit.emulator import Emulator
from emulators.kit.outbound import RetryPolicy
from emulators.kit.resources import shelf
from emulators.videodb.settings import VideoDBSettings

if TYPE_CHECKING:
    from aiohttp import web

SCENARIO_DIR = shelf("videodb")  # packaged scenarios + the scenario_dirs setting's videodb/ folders


class VideoDBEmulator(Emulator):
    device = "videodb"
    title = "VideoDB RTStreams (ingest, recording, HLS, indexing, alerts, WebSocket)"
    default_port = 9084
    start_cost_ms = (45.0, 11.0)  # CPU to start: its own imports, each member (numpy comes before the fork)
    settings_class = VideoDBSettings

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        from emulators.videodb.api import VideoDBApi, WireOptions
        from emulators.videodb.model import AccountRules, VideoDBBackend
        from emulators.videodb.persistence import DataDirectory
        from emulators.videodb.pipeline import IngestPipeline, PullTimings
        from emulators.videodb.service import RTStreamService
        from emulators.videodb.webhooks import AlertWebhooks
        from emulators.videodb.ws import CollectionSockets

        s: VideoDBSettings = self.settings
        rules = AccountRules(
            error_after_s=s.error_after_s,
            report_error=not s.no_error_status,
            rolling_window_s=s.rolling_window_s,
            max_streams=s.credits_limit,
            empty_search_is_error=not s.rtstream_search_empty_list,
        )
        self.backend = VideoDBBackend(self.seed, self.clock.now(), rules=rules)
        self.data = DataDirectory(s.data_dir, self.backend.snapshot)
        self.sockets = CollectionSockets(self.events, self.clock)
        webhooks = AlertWebhooks(
            self.egress,
            events=self.events,
            retry=RetryPolicy(interval_s=s.webhook_retry_interval_s, max_attempts=s.webhook_attempts),
            times_as_seconds=s.webhook_times_as_seconds,
            client_ssl=lambda: self.client_ssl,
        )
        pipeline = IngestPipeline(
            self.backend,
            self.data,
            sockets=self.sockets,
            events=self.events,
            tasks=self.tasks.child("rtstreams"),
            media_worker=self.media_worker,
            fault_rules=self.faults.rules,
            stream_verdict=self.stream_verdict,
            previews=self.previews,
            egress=self.egress,
            clock=self.clock,
            timings=PullTimings(
                segment_s=s.segment_s,
                open_timeout_s=s.open_timeout_s,
                read_timeout_s=s.read_timeout_s,
                reconnect_initial_s=s.reconnect_initial_s,
                reconnect_max_s=s.reconnect_max_s,
            ),
            public_url=self.public_url,
            deliver_alert=webhooks.deliver,
            visual_index_channel=s.visual_index_channel,
        )
        self.service = RTStreamService(
            self.backend, pipeline, self.data, webhooks,
            events=self.events, egress=self.egress, clock=self.clock, tasks=self.tasks, scenario_dir=SCENARIO_DIR,
        )
        options = WireOptions(
            api_key=s.api_key,
            public_base_url=s.public_base_url,
            native_config=s.extraction_config_native,
            scene_text_alias=s.scene_record_text_alias,
        )
        self.api = VideoDBApi(self.backend, self.service, self.sockets, self.clock, options)
        self.scenario_controls["script"] = self.service.load_script
        self.scenario_controls["capture_session"] = self.service.open_capture_session

    def public_url(self) -> str:
        """The base of URLs made without a request (alert payloads): the configured one, else this listener."""
        return self.settings.public_base_url.rstrip("/") or self.url()

    # ----- kit hooks -----------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        self.api.add_routes(app)

    async def on_start(self) -> None:
        await self.service.open()

    async def on_stop(self) -> None:
        await self.service.close()
        await self.sockets.close()

    async def aclose(self) -> None:
        await super().aclose()
        self.data.remove_temporary()

    async def on_reset(self, seed: int) -> None:
        self.sockets.clear()
        self.service.reset(seed, wipe_data=self.wipe_on_reset)

    def credentials(self) -> dict[str, Any]:
        return {"api_key": self.settings.api_key}

    def extra_endpoints(self) -> dict[str, str]:
        if "rest" not in self.ports:
            return {}
        return {"base_url": self.url(), "websocket": f"ws://{self.host}:{self.ports['rest']}/ws"}

    def live_streams(self) -> list[str]:
        """The fault-stream names of the streams being pulled (``rtstream:<id>``)."""
        return [f"rtstream:{s.id}" for s in self.backend.streams.values() if s.live]

    def state(self) -> dict[str, Any]:
        now = self.clock.now()
        backend = self.backend
        streams = {}
        for stream in backend.streams.values():
            runtime = self.service.pipeline.runtimes.get(stream.id)
            streams[stream.id] = {
                "name": stream.name,
                "status": str(backend.status_of(stream, now)),
                "receiving": stream.receiving,
                "recordings": len(stream.recordings),
                "segments": len(stream.all_segments()),
                "transcripts": len(stream.transcripts),
                "packets": runtime.packets if runtime else 0,
                "connections": runtime.connections if runtime else 0,
                "decode_errors": runtime.decode_errors if runtime else 0,
            }
        data_dir = self.data.path
        return {
            "data_dir": str(data_dir) if data_dir else None,
            "rtstreams": streams,
            "indexes": len(backend.indexes),
            "events": len(backend.events),
            "alerts": len(backend.alerts),
            "videos": len(backend.videos),
            "websocket_connections": sorted(self.sockets.connections),
        }


EMULATOR = VideoDBEmulator
