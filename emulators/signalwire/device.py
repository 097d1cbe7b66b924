"""The SignalWire emulator's wiring: settings -> backend + service + API + controls -> a kit Emulator.

The registry imports this module to read the settings, so the backend, service and API are imported only when an
emulator is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.resources import shelf
from emulators.kit.tls import client_ssl_context, ensure_dev_certs, server_ssl_context
from emulators.kit.yaml_text import load_yaml
from emulators.signalwire.settings import SignalWireSettings

if TYPE_CHECKING:
    import ssl

    from aiohttp import web

SCENARIO_DIR = shelf("signalwire")  # packaged scenarios + the scenario_dirs setting's signalwire/ folders


class SignalWireEmulator(Emulator):
    device = "signalwire"
    title = "SignalWire Compatibility API: conferences and their outbound audio streams"
    default_port = 9083
    start_cost_ms = (5.0, 13.0)  # CPU to start: its own imports, each member (numpy comes before the fork)
    port_settings = ("port", "tls_port")
    settings_class = SignalWireSettings
    settings: SignalWireSettings

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        from emulators.signalwire.controls import ConferenceControls
        from emulators.signalwire.dialout import OverrideResolver
        from emulators.signalwire.model import SignalWireBackend
        from emulators.signalwire.service import ConferenceService

        if self.certs is None:
            # The SDK only speaks https, so this emulator always has a certificate.
            self.certs = ensure_dev_certs()
            self.server_ssl = server_ssl_context(self.certs)
            self.client_ssl = client_ssl_context(self.certs.ca)  # the kit's would not know these certs
        s = self.settings
        self.backend = SignalWireBackend(
            strict_stream_sid=s.strict_stream_sid,
            max_streams_per_conference=s.max_streams_per_conference,
            allow_ws_scheme=s.allow_ws_scheme,
            disabled_codecs=s.disabled_codecs,
            async_validation_errors=s.async_validation_errors,
            conference_call_sid=s.conference_call_sid,
            rate_limit=s.rate_limit,
        )
        self.service = ConferenceService(
            self.backend, s, clock=self.clock, events=self.events, tasks=self.tasks, egress=self.egress,
            verdict=self.stream_verdict, outbound_ssl=self._outbound_ssl,
            resolver=OverrideResolver(dict(s.resolve), self.egress), pacing=self.pacing_stats, seed=self.seed,
            previews=self.previews,
        )
        if s.ca_bundle and not s.tls_insecure:
            self._outbound_ssl()  # a bundle that cannot be read fails the start, not the first stream
        self.service.load(self._scenario(), self.seed)
        self.scenario_controls.update(ConferenceControls(self.service).controls())

    # ----- settings and scenario ---------------------------------------------------------------------------
    def _scenario_path(self) -> Path:
        name = self.settings.scenario
        path = Path(name) if name.endswith((".yaml", ".yml")) else SCENARIO_DIR / f"{name}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
            raise FieldError("signalwire.scenario", f"no scenario {name!r}; known: {known}, or a path to a YAML file")
        return path

    def _scenario(self) -> dict[str, Any]:
        return load_yaml(self._scenario_path().read_text()) or {}

    def _outbound_ssl(self) -> ssl.SSLContext | bool:
        """Made when first asked (the contexts are shared, so asking again is cheap)."""
        if self.settings.tls_insecure:
            return False
        if self.settings.ca_bundle:
            return client_ssl_context(self.settings.ca_bundle, trust_dev_ca=False)
        return self.client_ssl

    # ----- kit hooks ----------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        from emulators.signalwire.api import ConferenceApi

        ConferenceApi(self.backend, self.service, self.clock).add_routes(app)

    def extra_listeners(self) -> dict[str, tuple[int, bool]]:
        return {"rest_tls": (self.settings.tls_port, True)}

    def extra_endpoints(self) -> dict[str, str]:
        if "rest_tls" not in self.ports:
            return {}
        from emulators.signalwire.model import API_ROOT

        return {"compat_api": f"{self.url('rest_tls')}{API_ROOT}"}

    def credentials(self) -> dict[str, Any]:
        project, token = next(iter(self.backend.accounts.items()), ("", ""))
        return {
            "project": project,
            "token": token,
            "account_sid": project,
            "space_url": f"{self.host}:{self.ports.get('rest_tls', self.settings.tls_port)}",
            "ca_bundle": str(self.certs.ca) if self.certs else "",
        }

    async def on_start(self) -> None:
        await self.service.start()

    async def on_stop(self) -> None:
        await self.service.aclose()

    async def on_reset(self, seed: int) -> None:
        self.service.clear()
        self.service.load(self._scenario(), seed)

    def state(self) -> dict[str, Any]:
        return self.service.state()

    def live_streams(self) -> list[str]:
        return self.service.live_streams()


EMULATOR = SignalWireEmulator
