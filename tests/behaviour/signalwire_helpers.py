"""Shared set-up for the SignalWire behaviour tests: an emulator in the test's loop, a client, a callback sink."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from clients.signalwire import MediaStreamReceiver, SignalWireClient
from contracts.runner import ContractResult, run_schemathesis
from emulators.config import Config
from emulators.kit.tls import ensure_dev_certs
from emulators.pytest_plugin import running_emulator
from emulators.signalwire.device import SignalWireEmulator

# The receiver serves the dev server certificate, as `benchtwin certs` makes it.
_DEV_CERTS = ensure_dev_certs()
RECEIVER_TLS = {"certfile": _DEV_CERTS.cert, "keyfile": _DEV_CERTS.key}

CONFERENCE = "0a8f3c2e-6d41-4b7a-8e5c-9f1d2b3a4c5d"  # "Weekly product sync" in the default scenario
WAITING_CONFERENCE = "4c6e8a0b-7d2f-4e9a-8b1c-5d3e7f9a1b2c"  # nobody joined yet: status init
ADA = "3b1e7a9c-2d4f-4a6b-8c0e-1f3a5b7c9d2e"
RECORDING = "19e436af-5688-4307-b03b-bdb2b42b8142"
# Operations after which valid requests are legitimately refused (the conference ended, a recording stopped):
# they get their own run, after a reset, so the rest is fuzzed against a live conference.
ENDING = ("update_conference", "delete_participant", "update_conference_recording", "delete_conference_recording")


def operation_ids(document: Path) -> list[str]:
    spec = yaml.safe_load(document.read_text())
    return [op["operationId"] for item in spec["paths"].values() for op in item.values()
            if isinstance(op, dict) and "operationId" in op]


def fuzz_live_then_ending(target: Any, document: Path) -> tuple[ContractResult, ContractResult]:
    """Schemathesis on ``document`` (ids pinned) against a started emulator's HTTPS REST root, in two runs: every
    operation but the ``ENDING`` ones against the live conference, then, after a reset, the ``ENDING`` ones alone
    (fuzzing only, ``positive_data_acceptance`` excluded: there a schema-valid request may meet a conference that
    has ended or a recording that has stopped, which the device refuses with 422)."""
    creds = target.credentials
    base = f"https://{creds['space_url']}/api/laml/2010-04-01"
    common = {"auth": (creds["project"], creds["token"]), "tls_verify": creds["ca_bundle"], "max_examples": 4,
              "seed": 1, "phases": "examples,coverage,fuzzing"}
    live = run_schemathesis(document, base, exclude_operation_ids=ENDING, **common)
    target.control.reset()
    ending = run_schemathesis(document, base, exclude_operation_ids=tuple(
        op for op in operation_ids(document) if op not in ENDING),
        exclude_checks=("positive_data_acceptance",), **{**common, "phases": "fuzzing"})
    return live, ending


@dataclass
class CallbackSink:
    """An HTTP server that records every StatusCallback request (method, form or query fields)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    port: int = 0
    fail_next: int = 0  # answer this many requests with 503 first (to exercise retries)
    failed: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.Response:
        if self.fail_next:
            self.fail_next -= 1
            self.failed += 1
            return web.Response(status=503)
        fields = dict(request.query) if request.method == "GET" else dict(await request.post())
        self.requests.append({"method": request.method, "content_type": request.content_type, "fields": fields})
        self._changed.set()
        return web.Response(status=204)

    def events(self, stream_sid: str | None = None) -> list[str]:
        return [r["fields"].get("StreamEvent", "") for r in self.requests
                if stream_sid is None or r["fields"].get("StreamSid") == stream_sid]

    async def wait_for_condition(self, predicate: Any, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for(self, event: str, stream_sid: str | None = None, timeout_s: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout_s):
            while True:
                for r in self.requests:
                    f = r["fields"]
                    if f.get("StreamEvent") == event and (stream_sid is None or f.get("StreamSid") == stream_sid):
                        return r
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def callback_sink(host: str = "127.0.0.1") -> AsyncIterator[CallbackSink]:
    sink = CallbackSink()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", sink._handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    sink.port = runner.addresses[0][1]
    sink.url = f"http://{host}:{sink.port}/status"
    try:
        yield sink
    finally:
        await runner.cleanup()


@dataclass
class Rig:
    emulator: SignalWireEmulator
    client: SignalWireClient
    receiver: MediaStreamReceiver
    callbacks: CallbackSink


@contextlib.asynccontextmanager
async def rig(settings: dict[str, Any] | None = None, *, body_encoding: str = "form",
              egress_allow: list[str] | None = None, sink_host: str = "127.0.0.1") -> AsyncIterator[Rig]:
    """The emulator as the pytest plugin starts it (free ports; ``egress_allow`` as a configuration would set it,
    else the default allowlist) + client on its HTTPS endpoint + a wss receiver + a callback sink on ``sink_host``."""
    config = Config() if egress_allow is None else Config(egress_allow=egress_allow)
    async with running_emulator("signalwire", settings, config=config) as emulator, \
            MediaStreamReceiver(**RECEIVER_TLS) as receiver, callback_sink(sink_host) as sink:
        creds = emulator.credentials()
        client = SignalWireClient(creds["project"], creds["token"], creds["space_url"], ca_bundle=creds["ca_bundle"],
                                  body_encoding=body_encoding)
        try:
            yield Rig(emulator, client, receiver, sink)
        finally:
            await client.aclose()
