"""`parity --write-tests DIR`: one pytest skeleton per differing exchange, with that exchange as its fixture."""

from __future__ import annotations

import re
from pathlib import Path

from emulators.hil.cassette import Cassette
from emulators.hil.parity import ParityResult

TEMPLATE = '''"""Parity: {device} answers `{request}` as the recorded device did.

The recorded request and answer are the one-exchange cassette in `{fixture}/` beside this file. Differences
found when it was written:
{found}
Make it pass by fixing the emulator, by a quirk setting (then start the emulator with it here), or list the
difference under `known` in contracts/parity/{device}.yaml with the reason and delete this test.
"""

import asyncio
from pathlib import Path

from emulators.hil.cassette import Cassette
from emulators.hil.parity import ParityRun
from emulators.hil.rules import load_rules

FIXTURE = Path(__file__).resolve().parent / "{fixture}"


{body}'''

# The parity run compared with the default emulator: the device fixture (so `--target` runs it against hardware too).
FIXTURE_BODY = '''
def test_{device}_{slug}_matches_the_recorded_device({device}_target):
    run = ParityRun(Cassette.load(FIXTURE), {device}_target.url, load_rules("{device}"),
                    credentials={device}_target.credentials, pace=0)
    assert [(d.where, d.recorded, d.emulator) for d in asyncio.run(run.run()) if not d.explained] == []
'''

# The parity run compared with an emulator started with settings (`parity --setting`): the same settings here.
SETTINGS_BODY = '''
from emulators.pytest_plugin import start_emulator

SETTINGS = {settings!r}


def test_{device}_{slug}_matches_the_recorded_device():
    with start_emulator("{device}", SETTINGS) as target:
        run = ParityRun(Cassette.load(FIXTURE), target.url, load_rules("{device}"), credentials=target.credentials,
                        pace=0)
        assert [(d.where, d.recorded, d.emulator) for d in asyncio.run(run.run()) if not d.explained] == []
'''


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "exchange"


def write_tests(result: ParityResult, cassette: Cassette, directory: str | Path) -> list[Path]:
    """Write test_parity_<device>_<n>_<request>.py and its fixture cassette for each exchange that differs."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    exchanges = cassette.device_exchanges()
    written = []
    for index in sorted({d.index for d in result.unexplained}):
        exchange = exchanges[index]
        slug = f"{index}_{_slug(exchange.label())}"
        fixture = f"parity_{result.device}_{slug}"
        Cassette(cassette.manifest, [exchange]).save(out / fixture)
        found = "\n".join(f"- {d.where}: device {d.recorded!r}, emulator {d.emulator!r}"
                          for d in result.unexplained if d.index == index)
        path = out / f"test_parity_{result.device}_{slug}.py"
        body = (SETTINGS_BODY.format(device=result.device, slug=slug, settings=result.profile) if result.profile
                else FIXTURE_BODY.format(device=result.device, slug=slug))
        path.write_text(TEMPLATE.format(device=result.device, request=exchange.label().replace('"', "'"),
                                        fixture=fixture, found=found.replace('"""', "'''"), body=body))
        written.append(path)
    return written
