"""Hardware in the loop on VideoDB: the `x-access-token` redacted and put back, minted ids carried forward.

VideoDB has no quirk profile with documented differences, so the stand-in is the default profile and parity
must find nothing; it proves the parity file's credential and volatile-field rules for this service."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from emulators.hil.cassette import Cassette
from emulators.pytest_plugin import start_emulator
from tests.behaviour.hil_helpers import parity_against_default, recording

EVENT = {"event_prompt": "someone waves at the camera", "label": "wave"}


@pytest.fixture(scope="module")
def cassette_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("videodb") / "events.cassette"

    async def record() -> None:
        with start_emulator("videodb") as stand_in:
            token = {"x-access-token": stand_in.credentials["api_key"]}
            async with recording(stand_in, {}, out) as session, aiohttp.ClientSession() as http:
                base = session.proxy.url
                async with http.get(base + "/collection", headers=token) as resp:
                    assert resp.status == 200, await resp.text()
                async with http.post(base + "/rtstream/event", headers=token, json=EVENT) as resp:
                    assert resp.status == 201, await resp.text()
                async with http.get(base + "/rtstream/event", headers=token) as resp:
                    assert resp.status == 200
                async with http.get(base + "/collection") as resp:
                    assert resp.status >= 400

    asyncio.run(record())
    return out


def test_the_access_token_is_redacted(cassette_dir):
    cassette = Cassette.load(cassette_dir)
    assert cassette.exchanges[0].header("x-access-token", response=False) == "<redacted>"
    assert "sk-benchtwin-videodb-dev" not in (cassette_dir / "cassette.har").read_text()


async def test_parity_with_the_same_profile_finds_nothing(cassette_dir):
    differences = await parity_against_default(cassette_dir)
    assert differences == [], "\n".join(str(d.as_dict()) for d in differences)
