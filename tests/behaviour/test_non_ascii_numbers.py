"""Numbers in paths and queries are ASCII digits: "²" and "٣" are digits to str.isdigit but "²" is not one to int().
Each device answers its own 400/403 naming what is allowed, never a 500, and keeps serving; VideoDB's player
takes only http(s) playlist URLs."""

from __future__ import annotations

import aiohttp
import pytest

from clients.misty import MistyClient, MistyError
from clients.videodb import VideoDBClient
from tests.conftest import EmulatorFactory

DEAD_SOURCE = "rtsp://127.0.0.1:9/none"


@pytest.fixture
async def videodb(emulator_factory: EmulatorFactory):
    emu = await emulator_factory("videodb")
    async with VideoDBClient(emu.settings.api_key, emu.url()) as client:
        rtstream = await client.connect_rtstream(DEAD_SOURCE, "Lobby")
    return emu, rtstream["id"]


@pytest.mark.parametrize("segment", ["²/1.ts", "1/²³.ts", "٣/1.ts", "1/١٢.ts"])
async def test_videodb_segment_paths_with_non_ascii_digits_are_a_400(videodb, segment: str) -> None:
    emu, rts = videodb
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emu.url()}/segments/{rts}/{segment}") as resp:
            assert resp.status == 400
            assert "ASCII digits" in (await resp.json())["message"]
        async with http.get(f"{emu.url()}/_emulator/health") as health:
            assert health.status == 200


@pytest.mark.parametrize("limit", ["abc", "²", "-1", "1.5"])
async def test_videodb_list_paging_that_is_not_a_whole_number_is_a_400_naming_it(videodb, limit: str) -> None:
    emu, _ = videodb
    async with aiohttp.ClientSession(headers={"x-access-token": emu.settings.api_key}) as http:
        async with http.get(f"{emu.url()}/rtstream", params={"limit": limit}) as resp:
            assert resp.status == 400
            assert "'limit'" in (await resp.json())["message"]


@pytest.mark.parametrize("url", ["javascript:alert(document.domain)", "data:text/html,<b>x</b>", "file:///etc/passwd",
                                 "vbscript:msgbox"])
async def test_videodb_player_refuses_anything_but_an_http_playlist(
    emulator_factory: EmulatorFactory, url: str
) -> None:
    emu = await emulator_factory("videodb")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emu.url()}/player", params={"url": url}) as resp:
            assert resp.status == 400
            assert "http or https" in (await resp.json())["message"]
            assert url not in await resp.text()
        async with http.get(f"{emu.url()}/player", params={"url": "http://127.0.0.1/x.m3u8"}) as ok:
            assert ok.status == 200 and 'src="http://127.0.0.1/x.m3u8"' in await ok.text()


async def test_recall_media_link_with_a_non_ascii_expiry_is_refused_not_a_500(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("recall")
    async with aiohttp.ClientSession() as http:
        url = f"{emu.url()}/api/v1/bot/00000000-0000-0000-0000-000000000000/recording.mp4"
        async with http.get(url, params={"expires": "²", "signature": "x"}) as resp:
            assert 400 <= resp.status < 500, resp.status


async def test_misty_rtspd_port_with_non_ascii_digits_is_the_robots_argument_error(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("misty")
    async with MistyClient(emu.url()) as misty:
        with pytest.raises(MistyError) as refused:
            await misty.start_av_streaming(url="rtspd:²")
    assert refused.value.status == 400 and "rtspd:<port>" in str(refused.value)
