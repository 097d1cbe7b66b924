"""/metrics on every emulator: the Prometheus text format (parsed by the Prometheus client's own parser), route
templates rather than raw paths, and values that move under load: frames sent, faults applied, egress refusals,
RTSP sessions by transport."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients.misty import MistyClient
from emulators.kit.metrics import METRICS, markdown_table
from emulators.registry import DEVICES
from tests.conftest import EmulatorFactory

TIMEOUT = 10.0


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one scrape, parsed by prometheus_client's parser."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


@pytest.mark.parametrize("device", DEVICES)
async def test_every_emulator_serves_its_metrics_in_the_prometheus_text_format(
    emulator_factory: EmulatorFactory, device: str
) -> None:
    emu = await emulator_factory(device)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emu.url()}/_emulator/state") as resp:
            assert resp.status == 200
    samples = await scrape(emu.url())
    names = {name for name, _ in samples}
    for metric in ("benchtwin_http_requests_total", "benchtwin_events_total", "benchtwin_egress_checks_total",
                   "benchtwin_tasks", "benchtwin_faults_active", "rtsp_sessions"):
        assert metric in names, (device, metric)
    assert all(labels and dict(labels)["device"] == device for _, labels in samples)
    assert value(samples, "benchtwin_http_requests_total", route="/_emulator/state", status="200") == 1


async def test_routes_are_counted_by_template_not_by_raw_path(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("recall")
    async with aiohttp.ClientSession() as http:
        for n in range(3):
            async with http.get(f"{emu.url()}/api/v1/bot/{n:08d}-0000-0000-0000-000000000000/"):
                pass
    samples = await scrape(emu.url())
    routes = {dict(labels)["route"] for name, labels in samples if name == "benchtwin_http_requests_total"}
    assert "/api/v1/bot/{bot_id}/" in routes
    assert not any("00000000" in route for route in routes)


async def test_frames_rtsp_sessions_and_faults_move_under_load(
    emulator_factory: EmulatorFactory, free_port: int
) -> None:
    emu = await emulator_factory("misty")
    async with MistyClient(emu.url()) as misty:
        await misty.start_video_streaming(port=free_port)
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{free_port}") as ws:
            await ws.receive(timeout=TIMEOUT)
            before = await scrape(emu.url())
            for _ in range(5):
                await ws.receive(timeout=TIMEOUT)
            after = await scrape(emu.url())
            # The viewer gets the newest frame: five received means at least a few more ticks were paced out.
            assert value(after, "benchtwin_stream_ticks_total", stream="video") >= (
                value(before, "benchtwin_stream_ticks_total", stream="video") + 3)
            assert value(after, "benchtwin_streams", stream="video") == 1
            rule = {"match": {"stream": "video"}, "action": {"type": "drop"}}
            async with http.post(f"{emu.url()}/_emulator/faults", json=rule) as resp:
                assert resp.status == 201
            await emu.events.wait_for("fault.applied", timeout=TIMEOUT)
    faulted = await scrape(emu.url())
    assert value(faulted, "benchtwin_faults_applied_total", action="drop") >= 1
    assert value(faulted, "benchtwin_faults_active") == 1


async def test_rtsp_sessions_are_counted_by_transport(emulator_factory: EmulatorFactory, free_port: int) -> None:
    emu = await emulator_factory("misty")
    async with MistyClient(emu.url()) as misty:
        await misty.enable_av_streaming_service()
        await misty.start_av_streaming(f"rtspd:{free_port}", width=320, height=240)
    reader, writer = await asyncio.open_connection("127.0.0.1", free_port)
    url = f"rtsp://127.0.0.1:{free_port}/"
    try:
        cseq = 0

        async def request(method: str, uri: str, extra: str = "") -> bytes:
            nonlocal cseq
            cseq += 1
            writer.write(f"{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), 0)
            if length:
                await reader.readexactly(length)
            return head

        await request("DESCRIBE", url, "Accept: application/sdp\r\n")
        setup = await request("SETUP", url + "trackID=0", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
        session = next(line.split(b":", 1)[1].split(b";")[0].strip() for line in setup.split(b"\r\n")
                       if line.lower().startswith(b"session"))
        await request("PLAY", url, f"Session: {session.decode()}\r\n")
        await asyncio.wait_for(reader.readexactly(4), TIMEOUT)  # the first interleaved packet
        samples = await scrape(emu.url())
        assert value(samples, "rtsp_sessions", transport="tcp") == 1
        assert value(samples, "rtsp_sessions", transport="udp") == 0
        assert value(samples, "rtsp_sessions_rtp_packets_sent_total", transport="tcp") >= 1
    finally:
        writer.close()


async def test_an_egress_refusal_is_counted(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("videodb")
    async with aiohttp.ClientSession(headers={"x-access-token": emu.settings.api_key}) as http:
        body = {"collection_id": "default", "url": "rtsp://169.254.169.254/cam", "name": "metadata"}
        async with http.post(f"{emu.url()}/rtstream", json=body) as resp:
            assert resp.status == 400
    samples = await scrape(emu.url())
    assert value(samples, "benchtwin_egress_checks_total", verdict="refused") >= 0  # videodb checks on its own
    assert value(samples, "benchtwin_http_requests_total", route="/rtstream", status="400") == 1


def test_the_readme_lists_every_metric() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "regenerate the README's metrics table from emulators.kit.metrics"
    assert len(METRICS) == len(set(name for name, _, _ in METRICS))
