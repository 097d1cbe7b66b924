"""The configured egress allowlist governs both things the VideoDB emulator reaches out to: the sources it pulls
(rtsp/rtmp ingest) and the alert webhooks it posts. A narrowed list refuses a loopback destination it excludes;
a widened one admits an address outside the defaults (0.0.0.0, which Linux connects to on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from aiohttp import web

from clients.videodb import VideoDBClient, VideoDBError
from emulators.config import Config
from emulators.kit.emulator import Emulator
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.videodb.indexing import analyse_frame
from emulators.videodb.ingest import FrameSampled, source_refusal

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory, WebhookReceiver

T0 = 1_800_000_000.0
# Where the configuration is read, egress_allow becomes the emulator's one EgressPolicy.
ONLY_127_0_0_1 = Config(egress_allow=["127.0.0.1/32"])
WITH_0_0_0_0 = Config(egress_allow=["127.0.0.1/32", "0.0.0.0/32"])


def test_0_0_0_0_is_outside_the_default_allowlist() -> None:
    assert source_refusal(EgressPolicy(DEFAULT_ALLOWED), "rtmp://0.0.0.0:1935/live") is not None
    assert source_refusal(EgressPolicy(DEFAULT_ALLOWED), "rtmp://127.0.0.2:1935/live") is None


@contextlib.asynccontextmanager
async def alert_receiver(host: str) -> AsyncIterator[tuple[int, asyncio.Queue[dict[str, Any]]]]:
    """A webhook receiver on a chosen loopback address (the shared fixture listens on 127.0.0.1 only)."""
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/alerts", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, received
    finally:
        await runner.cleanup()


async def fire_alerts(emu: Emulator, client: VideoDBClient, *callback_urls: str) -> None:
    """A stream on a dead loopback source, a visual index and one alert per URL (fired, and so delivered, in
    that order); frames are handed over as the ingest worker does."""
    rts = await client.connect_rtstream("rtsp://127.0.0.1:9/none", "Lobby")
    index = await client.index_visuals(rts["id"], time_s=1, frame_count=2)
    event = await client.create_event("bright blue scene", "blue")
    for url in callback_urls:
        await client.create_alert(rts["id"], index["rtstream_index_id"], event, url)
    worker = emu.service.pipeline.runtimes[rts["id"]].worker
    assert worker is not None
    for i in range(6):  # one window of a second closes: one record, each alert fires once
        frame = np.full((120, 160, 3), (40, 30, 200), dtype=np.uint8)
        emu.service.pipeline.on_signal(rts["id"], worker, FrameSampled(analyse_frame(frame, T0 + i / 4)))


async def test_a_narrowed_allowlist_refuses_a_loopback_source_it_excludes(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("videodb", config=ONLY_127_0_0_1)
    async with VideoDBClient(emu.settings.api_key, emu.url()) as client:
        with pytest.raises(VideoDBError) as refused:
            await client.connect_rtstream("rtsp://127.0.0.2:8554/cam", "Outside")
        assert refused.value.status == 400
        assert "'url' host 127.0.0.2 is outside the egress allowlist" in str(refused.value)
        assert emu.backend.streams == {}
        with pytest.raises(VideoDBError, match=r"'url' host 'camera\.invalid' does not resolve"):
            await client.connect_rtstream("rtsp://camera.invalid:8554/cam", "Named")  # RFC 6761: never resolves


async def test_a_widened_allowlist_pulls_from_an_address_outside_the_defaults(
    emulator_factory: EmulatorFactory,
) -> None:
    connected = asyncio.Event()

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()  # the pull reached the source; what it says does not matter here
        writer.close()

    server = await asyncio.start_server(source, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    emu = await emulator_factory("videodb", config=WITH_0_0_0_0)
    async with server, VideoDBClient(emu.settings.api_key, emu.url()) as client:
        rts = await client.connect_rtstream(f"rtmp://0.0.0.0:{port}/live/cam", "Widened")
        assert rts["status"] == "connected"
        await asyncio.wait_for(connected.wait(), 10)
        refusals = [e for e in emu.events.query(kind="ingest.retry") if "egress" in e.detail["reason"]]
        assert refusals == []


async def test_a_narrowed_allowlist_refuses_an_alert_webhook_to_a_loopback_address_it_excludes(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("videodb", config=ONLY_127_0_0_1)
    async with alert_receiver("127.0.0.2") as (excluded_port, excluded), \
            alert_receiver("127.0.0.1") as (allowed_port, allowed), \
            VideoDBClient(emu.settings.api_key, emu.url()) as client:
        refused_url = f"http://127.0.0.2:{excluded_port}/alerts"
        await fire_alerts(emu, client, refused_url, f"http://127.0.0.1:{allowed_port}/alerts")
        # Webhooks go out in order: once the allowed one arrives, the excluded one has been dealt with.
        assert (await asyncio.wait_for(allowed.get(), 10))["label"] == "blue"
        failed = [e.detail for e in emu.events.query(kind="outbound.failed")]
        assert [f["url"] for f in failed] == [refused_url]
        assert "outside the egress allowlist" in failed[0]["error"]
        assert excluded.empty()


async def test_a_widened_allowlist_delivers_an_alert_webhook_outside_the_defaults(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver
) -> None:
    emu = await emulator_factory("videodb", config=WITH_0_0_0_0)
    port = int(webhook_receiver.url.rsplit(":", 1)[1])
    async with VideoDBClient(emu.settings.api_key, emu.url()) as client:
        await fire_alerts(emu, client, f"http://0.0.0.0:{port}/alerts")  # the receiver listens on 127.0.0.1
        body = (await webhook_receiver.wait_for(1, timeout=10))[0].json()
        assert body["label"] == "blue"


async def test_an_rtsp_redirect_to_the_metadata_address_is_refused_and_never_connected(
    emulator_factory: EmulatorFactory,
) -> None:
    """FFmpeg follows an RTSP 3xx on its own; the ingest's relay reads the answer first and refuses the redirect."""
    asked: list[bytes] = []

    async def redirecting_source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.readuntil(b"\r\n\r\n"):
            asked.append(request.split(b" ", 1)[0])
            cseq = next(line for line in request.split(b"\r\n") if line.lower().startswith(b"cseq"))
            if request.startswith(b"OPTIONS"):
                writer.write(b"RTSP/1.0 200 OK\r\n" + cseq + b"\r\nPublic: DESCRIBE, SETUP, PLAY\r\n\r\n")
            else:
                writer.write(b"RTSP/1.0 302 Moved\r\n" + cseq + b"\r\nLocation: rtsp://169.254.169.254/cam\r\n\r\n")
            await writer.drain()

    server = await asyncio.start_server(redirecting_source, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    emu = await emulator_factory("videodb", settings={"reconnect_initial_s": 0.5, "reconnect_max_s": 0.5})
    async with server, VideoDBClient(emu.settings.api_key, emu.url()) as client:
        rts = await client.connect_rtstream(f"rtsp://127.0.0.1:{port}/cam", "Redirected")
        retry = await emu.events.wait_for(
            "ingest.retry", lambda e: e.detail["stream"] == rts["id"] and "redirected" in e.detail["reason"], timeout=15
        )
    assert "169.254.169.254" in retry.detail["reason"] and "egress allowlist" in retry.detail["reason"]
    assert b"DESCRIBE" in asked
