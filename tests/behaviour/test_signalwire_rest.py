"""Behaviour of the SignalWire REST API: auth, error shapes, paths, bodies, paging, participants, recordings."""

from __future__ import annotations

import base64
import json

import aiohttp
import numpy as np
import pytest
from signalwire_helpers import ADA, CONFERENCE, rig

from clients.signalwire import SignalWireRestError

pytestmark = pytest.mark.control_plane

RECORDING = "19e436af-5688-4307-b03b-bdb2b42b8142"
GRACE = "5d2f8b0a-3e5c-4b7d-9e1f-2a4b6c8d0e3f"
LINUS = "7e3a9c1b-4f6d-4c8e-8f2a-3b5c7d9e1f4a"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_missing_wrong_or_foreign_credentials_answer_401_with_code_20003():
    async with rig() as r:
        creds = r.emulator.credentials()
        base = f"{r.emulator.url()}/api/laml/2010-04-01/Accounts"
        expected = {"code": 20003, "message": "Authentication failed",
                    "more_info": "https://signalwire.com/docs/compatibility-api/reference/errors", "status": 401}
        async with aiohttp.ClientSession() as http:
            attempts = [
                (f"{base}/{creds['project']}/Conferences", {}),
                (f"{base}/{creds['project']}/Conferences", {"Authorization": _basic(creds["project"], "wrong")}),
                # Valid credentials of another project than the AccountSid in the path:
                (f"{base}/your-project-id/Conferences", {"Authorization": _basic(creds["project"], creds["token"])}),
            ]
            for url, headers in attempts:
                async with http.get(url, headers=headers) as resp:
                    assert resp.status == 401
                    assert await resp.json() == expected


async def test_unknown_resources_answer_404_in_the_object_shape():
    async with rig() as r:
        for call in (
            r.client.get("00000000-0000-4000-8000-000000000000"),
            r.client.get_participant(CONFERENCE, "00000000-0000-4000-8000-000000000000"),
            r.client.get_recording(CONFERENCE, "00000000-0000-4000-8000-000000000000"),
            r.client.stop_stream(CONFERENCE, "no-such-stream"),
        ):
            with pytest.raises(SignalWireRestError) as missing:
                await call
            assert missing.value.status == 404
            assert missing.value.body["code"] == 20404 and missing.value.body["status"] == 404
            assert "was not found" in missing.value.body["message"]


async def test_paths_answer_with_and_without_json_and_bodies_as_form_or_json():
    async with rig() as r:
        creds = r.emulator.credentials()
        auth = {"Authorization": _basic(creds["project"], creds["token"])}
        base = f"{r.emulator.url()}/api/laml/2010-04-01/Accounts/{creds['project']}/Conferences/{CONFERENCE}"
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.get(f"{base}.json") as a, http.get(base) as b:
                assert a.status == b.status == 200
                assert (await a.json())["sid"] == (await b.json())["sid"] == CONFERENCE
            async with http.post(f"{base}/Participants/{ADA}.json", data={"Muted": "true"}) as form:
                assert (await form.json())["muted"] is True
            async with http.post(f"{base}/Participants/{ADA}", json={"Muted": False}) as as_json:
                assert (await as_json.json())["muted"] is False
            # The official SDK sends Content-Type: application/json on bodyless requests too.
            async with http.get(f"{base}/Participants", headers={"Content-Type": "application/json"}) as sdk_like:
                assert sdk_like.status == 200
            async with http.post(f"{base}/Participants/{ADA}", data=b"{not json",
                                 headers={"Content-Type": "application/json"}) as broken:
                assert broken.status == 400
                assert (await broken.json())["status"] == 400
            async with http.post(f"{base}/Participants/{ADA}", data=b"<Muted/>",
                                 headers={"Content-Type": "application/xml"}) as xml:
                assert xml.status == 400 and "Content-Type" in (await xml.json())["message"]


async def test_lists_page_with_page_size_and_links_and_reject_bad_paging():
    async with rig() as r:
        first = await r.client.list_participants(CONFERENCE, PageSize=2)
        assert first["page"] == 0 and first["page_size"] == 2 and len(first["participants"]) == 2
        assert first["previous_page_uri"] is None and "Page=1" in first["next_page_uri"]
        assert "PageToken=PA" in first["next_page_uri"]
        second = await r.client.list_participants(CONFERENCE, PageSize=2, Page=1, PageToken="PA1")
        assert [p["call_sid"] for p in second["participants"]] == [LINUS]
        assert second["next_page_uri"] is None and "PageToken=PB" in second["previous_page_uri"]
        for bad in ({"PageSize": 0}, {"PageSize": 1001}, {"Page": -1}, {"PageToken": "XX1"}):
            with pytest.raises(SignalWireRestError) as refused:
                await r.client.list_participants(CONFERENCE, **bad)
            assert refused.value.status == 422 and refused.value.body["status"] == 422
        by_status = await r.client.list(Status="init")
        assert [c["friendly_name"] for c in by_status["conferences"]] == ["Support line (waiting)"]
        with pytest.raises(SignalWireRestError):
            await r.client.list(DateCreated="2026-13-45")


async def test_muting_holding_and_removing_participants_change_the_inbound_mix():
    async with rig({"pilot": False}) as r:
        await r.emulator.scenario_controls["set_speaker"]({"conference_sid": CONFERENCE, "call_sid": ADA})
        for other in (GRACE, LINUS):
            await r.emulator.scenario_controls["set_speaker"](
                {"conference_sid": CONFERENCE, "call_sid": other, "speaking": False})
        await r.client.start_stream(CONFERENCE, Url=r.receiver.url, Track="inbound_track")
        stream = await r.receiver.next_stream()
        await stream.wait_media(10)
        await r.client.update_participant(CONFERENCE, ADA, Muted=True)
        muted_from = len(stream.media("inbound"))
        await stream.wait_media(muted_from + 10)
        assert len({m.payload for m in stream.media("inbound")[muted_from + 2 : muted_from + 10]}) == 1  # silence
        assert set(stream.media("inbound")[muted_from + 5].payload) == {0xFF}
        await r.client.update_participant(CONFERENCE, ADA, Muted=False, Hold=True)
        assert (await r.client.list_participants(CONFERENCE, Hold=True))["participants"][0]["call_sid"] == ADA
        await r.client.update_participant(CONFERENCE, ADA, Hold=False)
        back = len(stream.media("inbound"))
        await stream.wait_media(back + 10)
        voice = stream.audio("inbound")[(back + 2) * 160 : (back + 10) * 160].astype(np.float64)
        assert np.sqrt(np.mean(voice**2)) > 300
        assert await r.client.remove_participant(CONFERENCE, ADA) == {}
        with pytest.raises(SignalWireRestError) as gone:
            await r.client.get_participant(CONFERENCE, ADA)
        assert gone.value.status == 404
        assert (await r.client.get(CONFERENCE))["status"] == "in-progress"  # others are still there


async def test_coaching_without_a_call_to_coach_is_422():
    async with rig() as r:
        with pytest.raises(SignalWireRestError) as refused:
            await r.client.update_participant(CONFERENCE, ADA, Coaching=True)
        assert refused.value.status == 422 and "CallSidToCoach" in refused.value.body["message"]


async def test_the_last_participant_leaving_completes_the_conference_and_stops_its_streams():
    async with rig() as r:
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url, StatusCallback=r.callbacks.url)
        stream = await r.receiver.next_stream()
        await stream.wait_media(2)
        for call_sid in (ADA, GRACE, LINUS):
            await r.client.remove_participant(CONFERENCE, call_sid)
        assert (await r.client.get(CONFERENCE))["status"] == "completed"
        assert await stream.wait_closed() == 1000
        await r.callbacks.wait_for("stream-stopped", created["sid"])


async def test_recordings_pause_resume_stop_and_delete():
    async with rig() as r:
        listed = await r.client.list_recordings(CONFERENCE)
        assert [x["sid"] for x in listed["recordings"]] == [RECORDING]
        recording = listed["recordings"][0]
        assert recording["call_sid"] is None and recording["channel"] == recording["channels"] == "1"
        assert (await r.client.update_recording(CONFERENCE, RECORDING, Status="paused"))["status"] == "paused"
        assert (await r.client.update_recording(CONFERENCE, RECORDING, Status="in-progress"))["status"] == "in-progress"
        stopped = await r.client.update_recording(CONFERENCE, RECORDING, Status="stopped")
        assert stopped["status"] == "stopped" and stopped["end_time"] is not None
        with pytest.raises(SignalWireRestError) as bad:
            await r.client.update_recording(CONFERENCE, RECORDING, Status="rewinding")
        assert bad.value.status == 422 and isinstance(bad.value.body["errors"], list)
        assert await r.client.delete_recording(CONFERENCE, RECORDING) == {}
        with pytest.raises(SignalWireRestError) as gone:
            await r.client.get_recording(CONFERENCE, RECORDING)
        assert gone.value.status == 404


async def test_stream_create_answers_200_queued_with_exactly_the_documented_keys():
    async with rig() as r:
        created = await r.client.start_stream(CONFERENCE, Url=r.receiver.url)
        assert set(created) == {"account_sid", "conference_sid", "date_updated", "name", "sid", "status", "uri"}
        assert created["status"] == "queued" and created["name"] is None
        assert created["uri"].endswith(f"/Streams/{created['sid']}.json")
        assert json.dumps(created)  # plain JSON types only


async def test_the_opt_in_rate_limit_answers_429_in_the_object_shape():
    async with rig({"rate_limit": 3}) as r:
        for _ in range(3):
            await r.client.get(CONFERENCE)
        with pytest.raises(SignalWireRestError) as limited:
            await r.client.get(CONFERENCE)
        assert limited.value.status == 429
        assert limited.value.body == {"code": 20429, "message": "Too Many Requests",
                                      "more_info": "https://signalwire.com/docs/compatibility-api/reference/errors",
                                      "status": 429}


async def test_conference_status_callbacks_report_start_joins_mute_speech_leave_and_end():
    async with rig() as r:
        events = ["conference-start", "conference-end", "participant-join", "participant-leave",
                  "participant-mute", "participant-unmute", "participant-speech-start", "participant-speech-stop"]
        created = await r.emulator.scenario_controls["create_conference"](
            {"friendly_name": "Callbacks", "status_callback": r.callbacks.url, "status_callback_events": events})
        sid = created["sid"]
        joined = await r.emulator.scenario_controls["add_participant"](
            {"conference_sid": sid, "call_sid": ADA, "speaking": [[0, 150]]})
        await r.client.update_participant(sid, joined["call_sid"], Muted=True)
        await r.client.update_participant(sid, joined["call_sid"], Muted=False)
        await r.client.remove_participant(sid, joined["call_sid"])  # the last one: the conference ends

        def seen() -> list[str]:
            return [q["fields"]["StatusCallbackEvent"] for q in r.callbacks.requests
                    if q["fields"].get("ConferenceSid") == sid]

        await r.callbacks.wait_for_condition(lambda: "conference-end" in seen())
        order = seen()
        assert order[:2] == ["participant-join", "conference-start"]
        assert order.index("participant-mute") < order.index("participant-unmute") < order.index("participant-leave")
        assert order[-1] == "conference-end"
        assert "participant-speech-start" in order
        first = r.callbacks.requests[0]["fields"]
        assert first["FriendlyName"] == "Callbacks" and first["Timestamp"].endswith("+0000")


async def test_both_roots_serve_the_api_and_paging_links_stay_on_the_root_the_client_chose():
    async with rig() as r:
        creds = r.emulator.credentials()
        auth = {"Authorization": _basic(creds["project"], creds["token"])}
        host = r.emulator.url()
        async with aiohttp.ClientSession(headers=auth) as http:
            for root in ("/api/laml/2010-04-01", "/2010-04-01"):
                first = f"{root}/Accounts/{creds['project']}/Conferences/{CONFERENCE}/Participants.json?PageSize=1"
                seen, pages, uri = [], 0, first
                while uri is not None:
                    async with http.get(host + uri) as resp:
                        assert resp.status == 200, await resp.text()
                        page = await resp.json()
                    assert page["page"] == pages and page["start"] == page["end"] == pages
                    assert page["first_page_uri"] == (f"{root}/Accounts/{creds['project']}/Conferences/{CONFERENCE}"
                                                       "/Participants?Page=0&PageSize=1")
                    seen += [p["call_sid"] for p in page["participants"]]
                    pages, uri = pages + 1, page["next_page_uri"]
                    assert uri is None or (uri.startswith(f"{root}/Accounts/") and ".json" not in uri)
                assert sorted(seen) == sorted({ADA, GRACE, LINUS}) and pages == 3


async def test_paging_uris_carry_only_the_query_parameters_the_list_knows():
    async with rig() as r:
        page = await r.client.list(PageSize=1, Status="in-progress", Foo="bar")
        for key in ("uri", "first_page_uri"):
            assert "Status=in-progress" in page[key] and "Foo" not in page[key]


async def test_unknown_routes_and_wrong_verbs_answer_the_vendor_json_error_shape():
    async with rig() as r:
        creds = r.emulator.credentials()
        auth = {"Authorization": _basic(creds["project"], creds["token"])}
        conferences = f"{r.emulator.url()}/2010-04-01/Accounts/{creds['project']}/Conferences"
        async with aiohttp.ClientSession(headers=auth) as http:
            for method, url in (("GET", f"{r.emulator.url()}/2010-04-01/Accounts/{creds['project']}/Calls.json"),
                                ("GET", f"{r.emulator.url()}/nothing/here")):
                async with http.request(method, url) as resp:
                    assert resp.status == 404 and resp.content_type == "application/json"
                    body = await resp.json()
                    assert set(body) == {"code", "message", "more_info", "status"}
                    assert body["code"] == 20404 and body["status"] == 404
            async with http.delete(f"{conferences}.json") as wrong_verb:
                assert wrong_verb.status == 405 and wrong_verb.content_type == "application/json"
                assert wrong_verb.headers["Allow"] == "GET, HEAD"
                body = await wrong_verb.json()
                assert body["status"] == 405 and body["code"] == 20004 and "DELETE" in body["message"]
            async with http.put(f"{r.emulator.url()}/_emulator/health") as control:
                assert control.status == 405  # the control plane keeps its own answers
