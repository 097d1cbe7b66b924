"""Shared set-up for the hardware-in-the-loop tests: record an emulator stand-in, then diff or replay it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from emulators.hil.cassette import Cassette, Manifest, iso_time
from emulators.hil.compare import Difference
from emulators.hil.parity import ParityRun
from emulators.hil.rules import ParityRules, load_rules
from emulators.hil.session import RecordSession
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.pytest_plugin import Target, start_emulator

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)


@contextlib.asynccontextmanager
async def recording(stand_in: Target, settings: dict[str, Any], out: Path) -> AsyncIterator[RecordSession]:
    """A record session in front of ``stand_in``; the cassette is written to ``out`` when the block ends."""
    manifest = Manifest(device=stand_in.device, target=stand_in.url, recorded_at=iso_time(time.time()), seed=0,
                        settings=settings)
    session = RecordSession(stand_in.device, stand_in.url, manifest, egress=EGRESS, cassette_dir=out)
    await session.start()
    try:
        yield session
    finally:
        await session.aclose()
        session.recorder.save(out)


async def parity_against_default(cassette_dir: Path, rules: ParityRules | None = None,
                                 settings: dict[str, Any] | None = None) -> list[Difference]:
    """Replay the cassette against a fresh emulator of the default profile (or ``settings``)."""
    cassette = Cassette.load(cassette_dir)
    device = cassette.manifest.device
    with start_emulator(device, settings or {}) as reference:
        run = ParityRun(cassette, reference.url, rules or load_rules(device), credentials=reference.credentials,
                        pace=0)
        return await run.run()
