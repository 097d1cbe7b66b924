"""Hardware in the loop on Recall.ai: a `quirk_waf_localhost` stand-in recorded (credentials redacted), diffed."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from emulators.hil.cassette import Cassette
from emulators.hil.replay import ReplayServer
from emulators.pytest_plugin import start_emulator
from tests.behaviour.hil_helpers import EGRESS, parity_against_default, recording

WAF = {"quirk_waf_localhost": True}
MEET = "https://zoom.us/j/1234567890"


@pytest.fixture(scope="module")
def cassette_dir(tmp_path_factory):
    """A bot list, the same list asked with a body (the WAF's 403), a bot created, and one unauthenticated call."""
    out = tmp_path_factory.mktemp("recall") / "waf.cassette"

    async def record() -> None:
        with start_emulator("recall", WAF) as stand_in:
            auth = {"Authorization": stand_in.credentials["authorization"]}
            async with recording(stand_in, WAF, out) as session, aiohttp.ClientSession() as http:
                base = session.proxy.url + "/api/v1/bot/"
                async with http.get(base, headers=auth) as resp:
                    assert resp.status == 200
                async with http.get(base, headers=auth, data=b"{}") as resp:
                    assert resp.status == 403
                async with http.post(base, headers=auth, json={"meeting_url": MEET, "bot_name": "Notes"}) as resp:
                    assert resp.status == 201
                async with http.get(base) as resp:
                    assert resp.status == 401

    asyncio.run(record())
    return out


def test_credentials_are_redacted_in_the_cassette_but_keep_their_scheme(cassette_dir):
    text = (cassette_dir / "cassette.har").read_text()
    assert "Token <redacted>" in text
    cassette = Cassette.load(cassette_dir)
    assert cassette.exchanges[0].header("Authorization", response=False) == "Token <redacted>"
    assert cassette.manifest.redacted


async def test_parity_with_the_default_profile_reports_exactly_the_firewall_page(cassette_dir):
    differences = await parity_against_default(cassette_dir)
    assert {d.index for d in differences} == {1}, [d.as_dict() for d in differences]
    where = {d.where: d for d in differences}
    assert (where["status"].recorded, where["status"].emulator) == (403, 200)
    assert where["header Content-Type"].recorded.startswith("text/html")
    assert where["body"].recorded.lstrip().lower().startswith("<")


async def test_replay_answers_the_recorded_bot_with_its_recorded_body(cassette_dir):
    server = ReplayServer(Cassette.load(cassette_dir), egress=EGRESS)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(server.url + "/api/v1/bot/", headers={"Authorization": "Token anything"},
                                 json={"bot_name": "Notes", "meeting_url": MEET}) as resp:
                assert resp.status == 201
                bot = await resp.json()
            async with http.get(server.url + "/api/v1/bot/", data=b"{}") as resp:
                assert resp.status == 403 and resp.content_type == "text/html"
    finally:
        await server.aclose()
    recorded = json.loads(Cassette.load(cassette_dir).exchanges[2].response_body)
    assert bot == recorded
