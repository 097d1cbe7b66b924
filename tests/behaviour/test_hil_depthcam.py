"""Hardware in the loop on the depth camera: a `quirks` stand-in recorded, then diffed against `profile: documented`.

`quirks` is the documented API with the dossier's Q1-Q8 500s switched on, so the documented profile is the one whose
known differences from it are exactly those quirks (the default profile answers as the vendor server's main).
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from emulators.hil.cassette import Cassette
from emulators.hil.compare import Difference
from emulators.hil.parity import ParityResult
from emulators.hil.report import html_page, json_report, markdown, terminal
from emulators.hil.rules import load_rules
from emulators.pytest_plugin import start_emulator
from tests.behaviour.hil_helpers import parity_against_default, recording

QUIRKS = {"profile": "quirks"}
DOCUMENTED = {"profile": "documented"}


@pytest.fixture(scope="module")
def cassette_dir(tmp_path_factory):
    """A few seconds of a `quirks` depth camera: two reads that are quirks (Q1, Q4) among ordinary ones."""
    out = tmp_path_factory.mktemp("depthcam") / "quirks.cassette"

    async def record() -> None:
        with start_emulator("depthcam", QUIRKS) as stand_in:
            mxid = stand_in.credentials["mxid"]
            async with recording(stand_in, QUIRKS, out) as session, aiohttp.ClientSession() as http:
                base = session.proxy.url
                for path in ("/cameras/", f"/cameras/{mxid}/streams/",
                             f"/cameras/{mxid}/streams/DEPTH_B_C/config",  # Q1: inactive stream
                             f"/cameras/{mxid}/streams/CAM_A/still?format=xyz",  # Q4: unknown still format
                             f"/cameras/{mxid}/streams/CAM_A/still?format=jpeg",
                             f"/cameras/{mxid}/stats", "/cameras"):
                    async with http.get(base + path, allow_redirects=False) as resp:
                        await resp.read()

    asyncio.run(record())
    return out


def test_the_cassette_is_har_with_a_manifest(cassette_dir):
    har = json.loads((cassette_dir / "cassette.har").read_text())
    assert har["log"]["version"] == "1.2"
    assert [e["request"]["method"] for e in har["log"]["entries"]] == ["GET"] * 7
    assert har["log"]["entries"][0]["request"]["url"].endswith("/cameras/")
    jpeg = har["log"]["entries"][4]["response"]["content"]
    assert jpeg["mimeType"] == "image/jpeg" and jpeg["encoding"] == "base64"
    manifest = json.loads((cassette_dir / "manifest.json").read_text())
    assert manifest["device"] == "depthcam" and manifest["settings"] == QUIRKS
    assert manifest["recorded_at"].endswith("Z") and manifest["benchtwin_version"]


def test_the_proxy_keeps_a_redirect_behind_itself_and_records_the_device_location(cassette_dir):
    cassette = Cassette.load(cassette_dir)
    redirect = cassette.exchanges[-1]
    assert redirect.status == 307
    assert redirect.header("Location").endswith("/cameras/")


async def test_parity_with_the_documented_profile_reports_exactly_the_quirks(cassette_dir):
    differences = await parity_against_default(cassette_dir, settings=DOCUMENTED)
    by_request = {d.request: d for d in differences if d.where == "status"}
    assert {d.index for d in differences} == {2, 3}, [d.as_dict() for d in differences]
    assert by_request["GET /cameras/14442C10D13EABCE00/streams/DEPTH_B_C/config"].recorded == 500
    assert by_request["GET /cameras/14442C10D13EABCE00/streams/DEPTH_B_C/config"].emulator == 404
    assert by_request["GET /cameras/14442C10D13EABCE00/streams/CAM_A/still?format=xyz"].emulator == 422
    assert all(d.explained is None for d in differences)


async def test_parity_with_the_quirk_profile_itself_finds_nothing(cassette_dir):
    assert await parity_against_default(cassette_dir, settings=QUIRKS) == []


async def test_known_differences_are_explained_and_no_longer_fail_the_run(cassette_dir, tmp_path):
    extra = tmp_path / "lab.yaml"
    extra.write_text("known:\n  - where: '*'\n    request: 'GET /cameras/*/streams/DEPTH_B_C/config'\n"
                     "    why: Q1 quirk of the real server\n"
                     "  - where: '*'\n    request: 'GET /cameras/*/still?format=xyz'\n    why: Q4 quirk\n")
    differences = await parity_against_default(cassette_dir, load_rules("depthcam", extra), settings=DOCUMENTED)
    result = ParityResult(str(cassette_dir), "depthcam", "emulator", {}, 7, differences)
    assert differences and all(d.explained for d in differences)
    assert result.exit_status == 0


def test_reports_name_each_difference_in_every_format():
    differences = [Difference(2, "GET /cameras/X/streams/DEPTH_B_C/config", "status", 500, 404),
                   Difference(3, "GET /x", "body detail.0.msg", "a|b", "<c>", explained="Q4 quirk")]
    result = ParityResult("quirks.cassette", "depthcam", "http://127.0.0.1:1", {}, 7, differences, ignored=3)
    table = terminal(result)
    assert table.splitlines()[0] == ("parity depthcam: 7 exchange(s) compared, 1 unexplained difference(s), "
                                     "1 explained, 3 volatile field(s) ignored")
    assert "UNEXPLAINED" in table and "Q4 quirk" in table
    assert "| 2 | `GET /cameras/X/streams/DEPTH_B_C/config` | status | `500` | `404` | **unexplained** |" in \
        markdown(result)
    page = html_page(result)
    assert page.startswith("<!doctype html>") and "&lt;c&gt;" in page and "<script" not in page and "http" not in \
        page.split("<body>")[0]
    assert json.loads(json_report(result))["unexplained"] == 1
    assert result.exit_status == 1
