"""Twilio's own Python client (twilio 9) given only the emulator's host, the way SignalWire's LaML users point it
at a space: it requests ``/2010-04-01/...`` without ``/api/laml`` and follows ``next_page_uri`` from its base URL."""

from __future__ import annotations

import asyncio

import pytest

twilio_rest = pytest.importorskip("twilio.rest", reason="pip install twilio (the test extra)")
from twilio.base.exceptions import TwilioRestException  # noqa: E402  (after the skip)
from twilio.http.http_client import TwilioHttpClient  # noqa: E402

pytestmark = pytest.mark.interop

CONFERENCE = "0a8f3c2e-6d41-4b7a-8e5c-9f1d2b3a4c5d"
PARTICIPANTS = {"3b1e7a9c-2d4f-4a6b-8c0e-1f3a5b7c9d2e", "5d2f8b0a-3e5c-4b7d-9e1f-2a4b6c8d0e3f",
                "7e3a9c1b-4f6d-4c8e-8f2a-3b5c7d9e1f4a"}


class RecordingHttpClient(TwilioHttpClient):
    """Twilio's own HTTP client, noting each URL it requests."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.urls.append(url)
        return super().request(method, url, *args, **kwargs)


def _client(creds: dict) -> object:
    client = twilio_rest.Client(creds["project"], creds["token"], http_client=RecordingHttpClient())
    client.api.base_url = f"https://{creds['space_url']}"  # only the host: no /api/laml
    return client


async def test_twilio_client_pages_conferences_and_participants_one_at_a_time(monkeypatch, emulator_factory):
    emulator = await emulator_factory("signalwire")
    creds = emulator.credentials()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", creds["ca_bundle"])
    client = _client(creds)

    def walk() -> dict:
        pages, sids = 0, []
        page = client.conferences.page(page_size=1)
        while page is not None:
            pages += 1
            sids += [c.sid for c in page]
            page = page.next_page()
        paged_urls = list(client.http_client.urls)
        return {
            "pages": pages,
            "paged": sids,
            "urls": paged_urls,
            "listed": [c.sid for c in client.conferences.list(page_size=1)],
            "participants": [p.call_sid for p in client.conferences(CONFERENCE).participants.list(page_size=1)],
            "fetched": client.conferences(CONFERENCE).fetch().friendly_name,
        }

    out = await asyncio.to_thread(walk)
    # The default scenario's project has two conferences: two pages of one, each conference once, then it stops.
    assert out["pages"] == 2 and len(out["paged"]) == 2 and len(set(out["paged"])) == 2
    assert out["listed"] == out["paged"] and CONFERENCE in out["listed"]
    assert sorted(out["participants"]) == sorted(PARTICIPANTS)
    root = f"https://{creds['space_url']}/2010-04-01/Accounts/{creds['project']}/Conferences"
    assert out["urls"] == [f"{root}.json", f"{root}?Page=1&PageSize=1&PageToken=PA1"]
    assert out["fetched"] == "Weekly product sync"


async def test_twilio_client_updates_a_participant_and_reads_the_vendor_error_shape(monkeypatch, emulator_factory):
    emulator = await emulator_factory("signalwire")
    creds = emulator.credentials()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", creds["ca_bundle"])
    client = _client(creds)
    call = sorted(PARTICIPANTS)[0]

    def act() -> tuple[bool, object]:
        muted = client.conferences(CONFERENCE).participants(call).update(muted=True).muted
        try:
            client.conferences("no-such-conference").fetch()
        except TwilioRestException as exc:  # read from the body's code/message/more_info/status
            return muted, exc
        return muted, None

    muted, error = await asyncio.to_thread(act)
    assert muted is True
    assert isinstance(error, TwilioRestException)
    assert error.status == 404 and error.code == 20404 and "was not found" in error.msg
