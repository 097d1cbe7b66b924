"""The official SignalWire Python SDK (signalwire-sdk 3.0.2) against the emulator, changing only host and CA bundle."""

from __future__ import annotations

import asyncio

import pytest

from clients.signalwire import MediaStreamReceiver, Stop
from emulators.signalwire.device import SignalWireEmulator
from tests.behaviour.signalwire_helpers import CONFERENCE, RECEIVER_TLS, RECORDING

rest = pytest.importorskip("signalwire.rest", reason="pip install signalwire-sdk==3.0.2 (the test extra)")

pytestmark = pytest.mark.interop

SEED_PROJECT, SEED_TOKEN, SEED_CONFERENCE = "your-project-id", "your-api-token", "CF..."


def _client(emulator: SignalWireEmulator, project: str, token: str):
    client = rest.RestClient(project=project, token=token, host=emulator.credentials()["space_url"])
    if not hasattr(client, "compat"):
        pytest.skip("this signalwire-sdk has no compat namespace (removed after 3.0.2); pin signalwire-sdk==3.0.2")
    return client


async def test_the_documentation_example_streams_a_conference_to_stream_example_com(monkeypatch, emulator_factory):
    async with MediaStreamReceiver(**RECEIVER_TLS) as receiver:
        # stream.example.com is resolved to the local receiver (like curl --resolve); Host and SNI stay intact,
        # so the receiver's certificate must name it: the dev CA's localhost certificate does not, hence insecure.
        settings = {"resolve": {"stream.example.com": f"127.0.0.1:{receiver.port}"}, "tls_insecure": True}
        emulator = await emulator_factory("signalwire", settings=settings)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.credentials()["ca_bundle"])
        client = _client(emulator, SEED_PROJECT, SEED_TOKEN)
        stream = await asyncio.to_thread(
            client.compat.conferences.start_stream, SEED_CONFERENCE, Url="wss://stream.example.com"
        )
        assert stream["status"] == "queued" and stream["conference_sid"] == SEED_CONFERENCE
        received = await receiver.next_stream()
        await received.wait_media(3)
        assert received.headers["Host"] == "stream.example.com"
        stopped = await asyncio.to_thread(
            client.compat.conferences.stop_stream, SEED_CONFERENCE, stream["sid"], Status="stopped"
        )
        assert stopped["status"] == "stopped"
        assert await received.wait_closed() == 1000
        assert isinstance(received.messages[-1], Stop)


async def test_every_compat_conference_method_works_against_the_emulator(monkeypatch, emulator_factory):
    emulator = await emulator_factory("signalwire")
    async with MediaStreamReceiver(**RECEIVER_TLS) as receiver:
        creds = emulator.credentials()
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", creds["ca_bundle"])
        conferences = _client(emulator, creds["project"], creds["token"]).compat.conferences

        def exercise() -> dict:
            out: dict = {}
            out["list"] = conferences.list(PageSize=1)
            out["live"] = conferences.list(Status="in-progress")
            out["get"] = conferences.get(CONFERENCE)
            out["participants"] = conferences.list_participants(CONFERENCE)
            call_sid = out["participants"]["participants"][0]["call_sid"]
            out["participant"] = conferences.get_participant(CONFERENCE, call_sid)
            out["muted"] = conferences.update_participant(CONFERENCE, call_sid, Muted=True)
            out["recordings"] = conferences.list_recordings(CONFERENCE)
            out["recording"] = conferences.get_recording(CONFERENCE, RECORDING)
            out["paused"] = conferences.update_recording(CONFERENCE, RECORDING, Status="paused")
            out["stream"] = conferences.start_stream(
                CONFERENCE, Url=receiver.url, Name="sdk", StreamCodec="L16@16000h",
                **{"Parameter1.Name": "FirstName", "Parameter1.Value": "Jane"},
            )
            out["call_sid"] = call_sid
            return out

        def finish(out: dict) -> dict:
            call_sid = out["call_sid"]
            out["removed"] = conferences.remove_participant(CONFERENCE, call_sid)
            out["deleted"] = conferences.delete_recording(CONFERENCE, RECORDING)
            out["stopped"] = conferences.stop_stream(CONFERENCE, "sdk", Status="stopped")
            out["ended"] = conferences.update(CONFERENCE, Status="completed")
            try:
                conferences.get_recording(CONFERENCE, RECORDING)
            except rest.SignalWireRestError as exc:
                out["gone"] = exc.status_code
            return out

        out = await asyncio.to_thread(exercise)
        received = await receiver.next_stream()
        await received.wait_media(2)
        out = await asyncio.to_thread(finish, out)
        assert out["list"]["page_size"] == 1 and len(out["list"]["conferences"]) == 1
        assert [c["sid"] for c in out["live"]["conferences"]] == [CONFERENCE]
        assert out["list"]["next_page_uri"] is not None
        assert out["get"]["sid"] == CONFERENCE
        assert out["muted"]["muted"] is True
        assert out["paused"]["status"] == "paused"
        assert out["stream"]["status"] == "queued" and out["stream"]["name"] == "sdk"
        assert out["removed"] == {} and out["deleted"] == {}
        assert out["stopped"]["status"] == "stopped" and out["stopped"]["sid"] == out["stream"]["sid"]
        assert out["ended"]["status"] == "completed"
        assert out["gone"] == 404
        assert await received.wait_closed() == 1000
        assert received.custom_parameters == {"FirstName": "Jane"}
        assert received.start is not None and received.start.sample_rate == 16000


async def test_wrong_credentials_raise_the_sdks_error_with_code_20003(monkeypatch, emulator_factory):
    emulator = await emulator_factory("signalwire")
    creds = emulator.credentials()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", creds["ca_bundle"])
    client = _client(emulator, creds["project"], "not-the-token")
    with pytest.raises(rest.SignalWireRestError) as failure:
        await asyncio.to_thread(client.compat.conferences.list)
    assert failure.value.status_code == 401
    assert failure.value.body["code"] == 20003
