"""The SignalWire emulator's wiring: settings -> backend + service + API + controls -> a kit Emulator."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import yaml

from clients.signalwire_media import STREAM_CODECS
from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.tls import client_ssl_context, ensure_dev_certs, server_ssl_context
from emulators.signalwire.api import ConferenceApi
from emulators.signalwire.controls import ConferenceControls
from emulators.signalwire.dialout import OverrideResolver
from emulators.signalwire.model import API_ROOT, CALL_SID_MODES, SignalWireBackend
from emulators.signalwire.service import ConferenceService, StreamSettings

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "signalwire"


class SignalWireEmulator(Emulator):
    device = "signalwire"
    title = "SignalWire Compatibility API: conferences and their outbound audio streams"
    default_port = 9083
    port_settings = ("port", "tls_port")
    settings_defaults = {
        "port": 9083,  # plain HTTP (tests, curl); the official SDK only speaks HTTPS
        "tls_port": 9443,  # HTTPS with the dev certificate
        "scenario": "default",  # fixtures/scenarios/signalwire/<name>.yaml, or a path to a YAML file
        "ca_bundle": "",  # outbound wss/https trust: "" = the dev CA + system store, else this PEM file only
        "tls_insecure": False,  # tests only: do not verify the receiver's certificate (quirk 10)
        "allow_ws_scheme": False,  # tests only: accept ws:// stream URLs (quirk 11)
        "async_validation_errors": False,  # quirk 5: 200 queued, then a stream-error callback
        "disabled_codecs": [],  # quirk 6: StreamCodec values "not enabled for your account"
        "l16_byte_order": "big",  # quirk 7: big | little
        "pcma_encoding": "audio/x-alaw",  # quirk 8
        "plain_l16_rate": 16000,  # quirk 9: sample rate of bare "L16"
        "always_custom_parameters": False,  # quirk 3: send customParameters {} when there are none
        "omit_streamsid_in_dtmf_mark": False,  # quirk 4
        "strict_stream_sid": False,  # quirk 18: refuse a stream Name in place of its sid
        "conference_call_sid": "conference",  # quirk 19: conference | empty | first_participant
        "pilot": True,  # the continuity marker on the first chunk of every second
        "media_speedup": 1.0,  # tests only: run the 20 ms clock faster; timestamps stay nominal
        "max_streams_per_conference": 0,  # 0 = unlimited
        "status_callback_attempts": 3,  # StatusCallback delivery attempts (connection errors and 5xx)
        "status_callback_retry_s": 0.5,
        "resolve": {},  # {"stream.example.com[:443]": "127.0.0.1:8765"}, like curl --resolve
        "rate_limit": 0,  # quirk 17: requests per second per account before 429; 0 = no limit (undocumented)
    }

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._check_settings()
        if self.certs is None:
            # The SDK only speaks https, so this emulator always has a certificate.
            self.certs = ensure_dev_certs()
            self.server_ssl = server_ssl_context(self.certs)
            self.client_ssl = client_ssl_context(self.certs.ca)
        s = self.settings
        self.backend = SignalWireBackend(
            strict_stream_sid=s["strict_stream_sid"],
            max_streams_per_conference=int(s["max_streams_per_conference"]),
            allow_ws_scheme=s["allow_ws_scheme"],
            disabled_codecs=tuple(s["disabled_codecs"]),
            async_validation_errors=s["async_validation_errors"],
            conference_call_sid=s["conference_call_sid"],
            rate_limit=int(s["rate_limit"]),
        )
        self.service = ConferenceService(
            self.backend,
            StreamSettings(
                plain_l16_rate=int(s["plain_l16_rate"]), pcma_encoding=s["pcma_encoding"],
                l16_byte_order=s["l16_byte_order"], always_custom_parameters=s["always_custom_parameters"],
                omit_streamsid_in_dtmf_mark=s["omit_streamsid_in_dtmf_mark"], pilot=s["pilot"],
                media_speedup=float(s["media_speedup"]), callback_attempts=int(s["status_callback_attempts"]),
                callback_retry_s=float(s["status_callback_retry_s"]),
            ),
            clock=self.clock, events=self.events, tasks=self.tasks, egress=self.egress,
            fault=self.stream_fault, corrupt=self.faults.corrupt, outbound_ssl=self._outbound_ssl(),
            resolver=OverrideResolver(dict(s["resolve"])), pacing=self.pacing_stats, seed=self.seed,
        )
        self.service.load(self._scenario(), self.seed)
        # The kit builds its app in its constructor, before this object has a service: routes are added here.
        ConferenceApi(self.backend, self.service, self.clock).add_routes(self.app)
        self.scenario_controls.update(ConferenceControls(self.service).controls())

    # ----- settings and scenario ---------------------------------------------------------------------------
    def _check_settings(self) -> None:
        s = self.settings
        enums = {
            "l16_byte_order": ("big", "little"),
            "conference_call_sid": CALL_SID_MODES,
        }
        for key, allowed in enums.items():
            if s[key] not in allowed:
                raise FieldError(f"signalwire.{key}", f"must be one of {', '.join(allowed)}, got {s[key]!r}")
        if s["plain_l16_rate"] not in (16000, 24000):
            raise FieldError("signalwire.plain_l16_rate", f"must be 16000 or 24000, got {s['plain_l16_rate']!r}")
        if not isinstance(s["disabled_codecs"], list) or any(c not in STREAM_CODECS for c in s["disabled_codecs"]):
            raise FieldError("signalwire.disabled_codecs", f"must be a list of {', '.join(STREAM_CODECS)}")
        if not isinstance(s["resolve"], dict) or any(
            not isinstance(v, str) or not v.rpartition(":")[2].isdigit() for v in s["resolve"].values()
        ):
            raise FieldError("signalwire.resolve", "must map host[:port] to 'ip:port'")
        if not 0.1 <= s["media_speedup"] <= 100:
            raise FieldError("signalwire.media_speedup", f"must be between 0.1 and 100, got {s['media_speedup']}")
        if not 1 <= s["status_callback_attempts"] <= 20:
            raise FieldError("signalwire.status_callback_attempts", "must be between 1 and 20")

    def _scenario_path(self) -> Path:
        name = str(self.settings["scenario"])
        path = Path(name) if name.endswith((".yaml", ".yml")) else SCENARIO_DIR / f"{name}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml")))
            raise FieldError("signalwire.scenario", f"no scenario {name!r}; known: {known}, or a path to a YAML file")
        return path

    def _scenario(self) -> dict[str, Any]:
        return yaml.safe_load(self._scenario_path().read_text()) or {}

    def _outbound_ssl(self) -> ssl.SSLContext | bool:
        if self.settings["tls_insecure"]:
            return False
        if self.settings["ca_bundle"]:
            return client_ssl_context(self.settings["ca_bundle"], trust_dev_ca=False)
        return self.client_ssl

    # ----- kit hooks ----------------------------------------------------------------------------------------
    def extra_listeners(self) -> dict[str, tuple[int, bool]]:
        return {"rest_tls": (int(self.settings["tls_port"]), True)}

    def extra_endpoints(self) -> dict[str, str]:
        if "rest_tls" not in self.ports:
            return {}
        return {"compat_api": f"{self.url('rest_tls')}{API_ROOT}"}

    def credentials(self) -> dict[str, Any]:
        project, token = next(iter(self.backend.accounts.items()), ("", ""))
        return {
            "project": project,
            "token": token,
            "account_sid": project,
            "space_url": f"{self.host}:{self.ports.get('rest_tls', self.settings['tls_port'])}",
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


EMULATOR = SignalWireEmulator
