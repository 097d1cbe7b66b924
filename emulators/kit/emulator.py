"""The Emulator base class: one aiohttp app per device on its own port, owned tasks, faults, control plane.

A device subclass sets ``device``, ``title``, ``settings_class`` and implements ``add_routes`` plus
the lifecycle hooks. Everything it starts in the background goes through ``self.tasks`` (or a child of it)
and ``self.workers`` so that ``aclose()`` (and ``reset``) cancels and awaits it.
"""

from __future__ import annotations

import asyncio
import copy
import ssl
import time
from typing import Any, ClassVar

from aiohttp import web

from emulators.kit.clock import TEST_TIME_SCALE, Clock
from emulators.kit.control_plane import (
    CONTROL_PREFIX,
    ControlPlane,
    ScenarioControl,
    control_plane_guard,
    kit_path,
)
from emulators.kit.errors import FieldError
from emulators.kit.events import EVENT_LOG_CAPACITY, EventLog
from emulators.kit.faults import FaultBook, FaultRule, StreamVerdict
from emulators.kit.http import bind_tcp, method_not_allowed
from emulators.kit.http_faults import fault_middleware
from emulators.kit.listeners import (
    IDLE_TIMEOUT_S,
    BoundedSockSite,
    ResourceErrorThrottle,
    connection_limit,
    raise_open_files_limit,
)
from emulators.kit.metrics import METRICS_PATH, Metrics, rtsp_server_set
from emulators.kit.outbound import EgressPolicy
from emulators.kit.pacer import LatenessStats
from emulators.kit.preview import PreviewHub
from emulators.kit.settings import DeviceSettings
from emulators.kit.tasks import TaskOwner
from emulators.kit.tls import DevCerts, client_ssl_context, server_ssl_context
from emulators.kit.workers import MediaWorker, WorkerRegistry, WorkerRun

# Devices import these from here; they live with the control plane and the HTTP helpers.
__all__ = ["CONTROL_PREFIX", "Emulator", "bind_tcp", "kit_path"]


class Emulator:
    device: ClassVar[str] = ""
    title: ClassVar[str] = ""
    default_port: ClassVar[int] = 0
    # The device's typed settings; the embedded default config and --print-config are built from it.
    settings_class: ClassVar[type[DeviceSettings] | None] = None
    # Until every device has a settings_class: the old untyped settings with their defaults.
    settings_defaults: ClassVar[dict[str, Any]] = {}
    # Settings whose value is a port the emulator listens on (printed by `benchtwin list`).
    port_settings: ClassVar[tuple[str, ...]] = ("port",)
    # CPU milliseconds to start one: the device's own imports (paid once per process) and building one member.
    # `benchtwin up --processes N` balances its processes with them; measured, see docs/performance.md.
    start_cost_ms: ClassVar[tuple[float, float]] = (50.0, 5.0)

    def __init__(
        self,
        settings: dict[str, Any] | None = None,
        *,
        egress: EgressPolicy,
        host: str = "127.0.0.1",
        seed: int = 0,
        time_scale: float = TEST_TIME_SCALE,  # constructed directly = in a test; `benchtwin up` passes its own
        clock: Clock | None = None,
        certs: DevCerts | None = None,
        control_token: str | None = None,
        event_log_capacity: int = EVENT_LOG_CAPACITY,
    ) -> None:
        # A DeviceSettings instance for devices with a settings_class, else the old merged dict.
        self.settings: Any = self.build_settings(settings or {})
        self.name = self.device  # in a fleet, the member's name (misty-2): the key of its endpoints entry
        self.host = host
        self.seed = seed
        self.wipe_on_reset = False  # set by reset(): whether data kept on disk goes too
        self.clock = clock or Clock(time_scale=time_scale)
        # Dev TLS: HTTPS listeners use the dev server certificate; outbound TLS trusts the dev CA + system store.
        self.certs = certs
        self.server_ssl: ssl.SSLContext | None = server_ssl_context(certs) if certs else None
        self._client_ssl: ssl.SSLContext | None = None  # made at first use: see client_ssl
        # Built once where the configuration is read; every outbound sender is given this one.
        self.egress = egress
        # Set for shared lab machines: every /_emulator/ route but health then needs it as a Bearer token.
        self.control_token = control_token
        self.events = EventLog(self.device, capacity=event_log_capacity)
        self.faults = FaultBook(seed)
        self.tasks = TaskOwner(self.device)
        self.workers = WorkerRegistry()
        self.pacing: dict[str, LatenessStats] = {}
        self.rtsp_servers = rtsp_server_set()  # each RTSP server this emulator runs adds itself (for /metrics)
        self.metrics = Metrics(self)
        self.previews = PreviewHub()  # the latest frame and audio level of each stream, for the dashboard
        self.scenario_controls: dict[str, ScenarioControl] = {}
        self.started_at: float | None = None
        self.ports: dict[str, int] = {}
        self.app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._sites: list[web.BaseSite] = []
        # Per listening socket (None: a share of the open-files limit) and per connection; tests lower them.
        self.max_connections: int | None = None
        self.idle_timeout_s = IDLE_TIMEOUT_S

    @property
    def client_ssl(self) -> ssl.SSLContext:
        """Outbound TLS: the system store, the dev CA. Made when a sender first needs it (loading the system store
        takes tens of milliseconds, and most starts send nothing over TLS)."""
        if self._client_ssl is None:
            self._client_ssl = client_ssl_context(self.certs.ca if self.certs else None)
        return self._client_ssl

    @client_ssl.setter
    def client_ssl(self, context: ssl.SSLContext) -> None:
        self._client_ssl = context

    # ----- settings -------------------------------------------------------------------------------------
    @classmethod
    def build_settings(cls, overrides: dict[str, Any]) -> Any:
        """The device's settings with ``overrides`` applied; FieldError naming ``<device>.<field>``."""
        if cls.settings_class is not None:
            return cls.settings_class.from_mapping(overrides)
        return cls._merged_legacy(overrides)

    @classmethod
    def fleet_identity(cls, settings: dict[str, Any], index: int) -> dict[str, Any]:
        """The settings that make member ``index`` of a fleet a distinct device (a serial number, an mxid), given
        the configured ones; none for a device without an identity of its own (a cloud service)."""
        return {}

    @classmethod
    def merged_settings(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        """The settings as a plain mapping (config files, --print-config), validated."""
        if cls.settings_class is not None:
            return cls.settings_class.from_mapping(overrides).as_dict()
        return cls._merged_legacy(overrides)

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return cls.merged_settings({})

    def setting(self, name: str, default: Any = None) -> Any:
        """One setting by name, whichever form the device's settings have."""
        if isinstance(self.settings, DeviceSettings):
            return getattr(self.settings, name, default)
        return self.settings.get(name, default)

    @classmethod
    def _merged_legacy(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        merged = copy.deepcopy(cls.settings_defaults)
        for key, value in overrides.items():
            if key not in merged:
                allowed = ", ".join(sorted(merged))
                raise FieldError(f"{cls.device}.{key}", f"is not a setting of {cls.device}; known: {allowed}")
            default = merged[key]
            if default is not None and isinstance(default, bool) != isinstance(value, bool):
                raise FieldError(f"{cls.device}.{key}", f"must be {type(default).__name__}, got {value!r}")
            if isinstance(default, int | float) and not isinstance(default, bool):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise FieldError(f"{cls.device}.{key}", f"must be a number, got {value!r}")
            merged[key] = value
        return merged

    # ----- hooks for devices ----------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        """Add the device API's routes."""

    async def on_start(self) -> None:
        """Start boot-time background work (event sources, scenarios)."""

    async def on_stop(self) -> None:
        """Stop streams and close connections; owned tasks are cancelled after this returns."""

    async def on_reset(self, seed: int) -> None:
        """Return to boot state. Streams and tasks have been stopped before this is called. A device that keeps data
        on disk deletes it only when ``self.wipe_on_reset`` is true (a reset with ``{"wipe_data": true}``)."""

    def state(self) -> dict[str, Any]:
        """A JSON snapshot of the device state for GET /_emulator/state."""
        return {}

    def extra_endpoints(self) -> dict[str, str]:
        """Named endpoints besides ``rest``/``rest_tls`` (e.g. a WebSocket URL)."""
        return {}

    def credentials(self) -> dict[str, Any]:
        """The dev credentials a client needs, named as the vendor names them."""
        return {}

    def extra_listeners(self) -> dict[str, tuple[int, bool]]:
        """Additional listeners of the same app: name -> (port, tls)."""
        return {}

    def live_streams(self) -> list[str]:
        """The names of the streams running now (the names fault rules match), for ``/_emulator/state``."""
        return []

    # ----- lifecycle ------------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        """The aiohttp app: the control plane first (so its wrong verbs are 405s), then the device's routes."""
        middleware = fault_middleware(self.faults, self.events, exempt_prefix=(CONTROL_PREFIX, METRICS_PATH))
        guard = control_plane_guard(self.control_token)
        app = web.Application(middlewares=[self.metrics.requests.middleware(), guard, middleware],
                              client_max_size=16 * 1024**2)
        app.router.add_get(METRICS_PATH, self.metrics.handle, allow_head=False)
        app.router.add_route("*", METRICS_PATH, method_not_allowed(["GET"]))
        ControlPlane(self).add_routes(app)
        self.add_routes(app)
        return app

    async def start(self) -> None:
        if self.app is None:
            self.app = self.build_app()
        raise_open_files_limit()
        ResourceErrorThrottle.install(asyncio.get_running_loop())
        self._runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=1.0, keepalive_timeout=self.idle_timeout_s
        )
        await self._runner.setup()
        listeners = {"rest": (int(self.setting("port", self.default_port)), False)}
        listeners.update(self.extra_listeners())
        try:
            for name, (port, tls) in listeners.items():
                if tls and self.server_ssl is None:
                    raise RuntimeError(f"{self.device}: listener {name} needs TLS but no certificate was given")
                sock = bind_tcp(self.host, port)
                site = BoundedSockSite(
                    self._runner, sock, ssl_context=self.server_ssl if tls else None,
                    max_connections=self.max_connections or connection_limit(),
                )
                await site.start()
                self._sites.append(site)
                self.ports[name] = sock.getsockname()[1]
            self.started_at = time.monotonic()
            await self.on_start()
        except BaseException:
            await self.aclose()
            raise
        self.events.record("emulator.ready", endpoints=self.endpoints())

    async def aclose(self) -> None:
        try:
            await self.on_stop()
        finally:
            await self.workers.aclose()
            await self.tasks.cancel_all()
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
            self._sites.clear()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def reset(self, seed: int | None = None, *, wipe_data: bool = False) -> None:
        """Back to boot state. ``wipe_data``: a device that keeps data on disk deletes it too (it never does
        unless asked); ``on_reset`` reads it as ``self.wipe_on_reset``."""
        if seed is not None:
            self.seed = seed
        self.wipe_on_reset = wipe_data
        await self.on_stop()
        await self.workers.aclose()
        await self.tasks.cancel_all()
        self.faults.clear()
        self.faults.reseed(self.seed)
        self.pacing.clear()
        self.events.clear()
        await self.on_reset(self.seed)
        await self.on_start()
        self.events.record("reset", seed=self.seed, wipe_data=wipe_data)

    # ----- addresses ------------------------------------------------------------------------------------
    def url(self, listener: str = "rest") -> str:
        scheme = "https" if self.extra_listeners().get(listener, (0, False))[1] else "http"
        return f"{scheme}://{self.host}:{self.ports[listener]}"

    def endpoints(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: self.url(name) for name in self.ports}
        out.update(self.extra_endpoints())
        return out

    def stream_verdict(self, stream: str, **detail: Any) -> StreamVerdict:
        """What the sender does with this frame/chunk of ``stream``; a fired rule is recorded as ``fault.applied``.

        Every sender calls this once per frame or chunk and ``match``es on the verdict; safe from worker threads.
        """
        rule, verdict = self.faults.verdict(stream)
        if rule is not None:
            self.events.record("fault.applied", rule=rule.id, action=rule.action.type, stream=stream, **detail)
        return verdict

    def media_worker(self, name: str, run: WorkerRun, *args: Any, stop_timeout_s: float = 5.0) -> MediaWorker:
        """A worker process for blocking media work, owned by this emulator (closed with it, listed in state)."""
        return MediaWorker(name, run, *args, events=self.events, registry=self.workers, stop_timeout_s=stop_timeout_s)

    def stream_fault(self, stream: str, **detail: Any) -> FaultRule | None:
        """Deprecated: use ``stream_verdict``. Kept until every device's senders match on verdicts."""
        rule = self.faults.for_stream(stream)
        if rule is not None:
            self.events.record("fault.applied", rule=rule.id, action=rule.action.type, stream=stream, **detail)
        return rule

    def pacing_stats(self, name: str) -> LatenessStats:
        """The lateness statistics of one named stream, created on first use and shown in the state."""
        return self.pacing.setdefault(name, LatenessStats())

