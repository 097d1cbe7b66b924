"""Hardware in the loop on SignalWire: the media stream and status callbacks a conference dials out, recorded through
the recording receiver on their way to the user's own receivers, then diffed and replayed (`pcma_encoding` stand-in)."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest

from clients.signalwire import MediaStreamReceiver
from emulators.hil.cassette import Cassette
from emulators.hil.parity import ParityRun
from emulators.hil.replay import ReplayServer
from emulators.hil.rules import load_rules
from emulators.kit.tls import ensure_dev_certs
from emulators.pytest_plugin import start_emulator
from tests.behaviour.hil_helpers import EGRESS, recording
from tests.behaviour.signalwire_helpers import CONFERENCE, callback_sink

PCMA = {"pcma_encoding": "audio/PCMA"}  # quirk 8: the string announced for PCMA
MEDIA_FRAMES = 25  # half a second of 20 ms frames

# The receiver serves the dev server certificate, as `benchtwin certs` makes it.
_DEV_CERTS = ensure_dev_certs()
RECEIVER_TLS = {"certfile": _DEV_CERTS.cert, "keyfile": _DEV_CERTS.key}


def streams_path(project: str, sid: str = "") -> str:
    return f"/api/laml/2010-04-01/Accounts/{project}/Conferences/{CONFERENCE}/Streams{'/' + sid if sid else ''}.json"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Start a PCMA stream with a status callback through the proxy, let half a second flow, stop it."""
    out = tmp_path_factory.mktemp("signalwire") / "pcma.cassette"
    seen: dict[str, object] = {}

    async def record() -> None:
        with start_emulator("signalwire", PCMA) as stand_in:
            creds = stand_in.credentials
            basic = base64.b64encode(f"{creds['project']}:{creds['token']}".encode()).decode()
            auth = {"Authorization": f"Basic {basic}"}
            async with recording(stand_in, PCMA, out) as session, MediaStreamReceiver(**RECEIVER_TLS) as receiver, \
                    callback_sink() as sink, aiohttp.ClientSession(headers=auth) as http:
                base = session.proxy.url + streams_path(creds["project"])
                form = {"Url": receiver.url, "StreamCodec": "PCMA", "Track": "inbound_track",
                        "StatusCallback": sink.url, "Name": "minutes"}
                async with http.post(base, data=form) as resp:
                    assert resp.status == 200, await resp.text()
                    sid = (await resp.json())["sid"]
                stream = await receiver.next_stream()
                await stream.wait_media(MEDIA_FRAMES)
                await sink.wait_for("stream-started", sid)
                async with http.post(session.proxy.url + streams_path(creds["project"], sid),
                                     data={"Status": "stopped"}) as resp:
                    assert resp.status == 200, await resp.text()
                seen["close"] = await stream.wait_closed()
                await sink.wait_for("stream-stopped", sid)
                seen["start"] = stream.start
                seen["events"] = sink.events(sid)

    asyncio.run(record())
    return out, seen


def test_the_user_receivers_get_everything_through_the_recording_receiver(recorded):
    _, seen = recorded
    assert seen["start"].encoding == "audio/PCMA"
    assert seen["close"] == 1000
    assert seen["events"] == ["stream-started", "stream-stopped"]


def test_dial_outs_are_recorded_with_the_request_field_that_named_them(recorded):
    cassette = Cassette.load(recorded[0])
    dial_outs = [e for e in cassette.exchanges if e.dial_out is not None]
    stream = next(e for e in dial_outs if e.is_websocket)
    assert stream.dial_out["field"] == "Url" and stream.dial_out["url"].startswith("wss://127.0.0.1:")
    assert cassette.exchanges[stream.dial_out["of"]].method == "POST"
    start = json.loads(stream.messages[1].data)
    assert start["event"] == "start" and start["start"]["mediaFormat"]["encoding"] == "audio/PCMA"
    assert stream.close_code == 1000 and stream.closed_by == "device"
    assert len([m for m in stream.messages if b'"media"' in m.data]) >= MEDIA_FRAMES
    callbacks = [e for e in dial_outs if not e.is_websocket]
    assert [e.dial_out["field"] for e in callbacks] == ["StatusCallback", "StatusCallback"]
    # The request as the user sent it: their receiver URLs, not the recording receiver's.
    assert b"dial" not in cassette.exchanges[stream.dial_out["of"]].request_body


def test_the_basic_credentials_never_reach_the_cassette(recorded):
    text = (recorded[0] / "cassette.har").read_text()
    assert "Basic <redacted>" in text
    with start_emulator("signalwire") as reference:
        creds = reference.credentials
        assert base64.b64encode(f"{creds['project']}:{creds['token']}".encode()).decode() not in text


async def test_parity_with_the_default_profile_reports_only_the_announced_encoding(recorded):
    cassette = Cassette.load(recorded[0])
    with start_emulator("signalwire") as reference:
        run = ParityRun(cassette, reference.url, load_rules("signalwire"), credentials=reference.credentials)
        differences = await run.run()
    assert [(d.where, d.recorded, d.emulator) for d in differences] == [
        ("dial-out Url #0 message 1 start.mediaFormat.encoding", "audio/PCMA", "audio/x-alaw")
    ], "\n".join(str(d.as_dict()) for d in differences)


async def test_replay_reproduces_the_dial_outs_to_the_urls_the_new_request_gives(recorded):
    server = ReplayServer(Cassette.load(recorded[0]), egress=EGRESS)
    await server.start()
    try:
        async with MediaStreamReceiver(**RECEIVER_TLS) as receiver, callback_sink() as sink, \
                aiohttp.ClientSession() as http:
            form = {"Url": receiver.url, "StreamCodec": "PCMA", "Track": "inbound_track",
                    "StatusCallback": sink.url, "Name": "minutes"}
            project = Cassette.load(recorded[0]).exchanges[0].path.split("/")[5]
            async with http.post(server.url + streams_path(project), data=form) as resp:
                assert resp.status == 200, await resp.text()
            stream = await receiver.next_stream()
            await stream.wait_media(MEDIA_FRAMES)
            assert stream.start.encoding == "audio/PCMA"
            await sink.wait_for("stream-started")
    finally:
        await server.aclose()
