"""Signed SignalWire webhooks, checked by a validator nobody here wrote: Twilio's ``RequestValidator``.

Every status callback (stream and conference, POST form and GET query) carries ``X-SignalWire-Signature`` and
``X-Twilio-Signature``; the validator accepts them with the project's token and rejects tampered requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from clients.signalwire import MediaStreamReceiver, SignalWireClient
from tests.behaviour.signalwire_helpers import ADA, CONFERENCE, RECEIVER_TLS

request_validator = pytest.importorskip("twilio.request_validator", reason="pip install twilio (the test extra)")

pytestmark = pytest.mark.interop


@dataclass
class Signed:
    method: str
    url: str  # as the receiving framework sees it, query string included
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class Recorder:
    """A customer's webhook endpoint: keeps what a validator needs from each request."""

    url: str = ""
    requests: list[Signed] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        params = {} if request.method == "GET" else {k: str(v) for k, v in (await request.post()).items()}
        async with self.arrived:
            self.requests.append(Signed(request.method, str(request.url), params, dict(request.headers)))
            self.arrived.notify_all()
        return web.Response(status=204)

    async def wait_for(self, count: int) -> list[Signed]:
        async with asyncio.timeout(10), self.arrived:
            await self.arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)


@contextlib.asynccontextmanager
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/status"
    try:
        yield rec
    finally:
        await runner.cleanup()


def _assert_signed(validator, signed: Signed) -> None:
    sw, tw = signed.headers["X-SignalWire-Signature"], signed.headers["X-Twilio-Signature"]
    assert sw == tw
    assert validator.validate(signed.url, signed.params, sw), signed
    if signed.params:
        tampered = {**signed.params, "StreamEvent": "stream-stopped", "StatusCallbackEvent": "conference-end"}
        assert not validator.validate(signed.url, tampered, sw)
    else:
        assert not validator.validate(re.sub(r"StreamEvent=[^&]*", "StreamEvent=forged", signed.url), {}, sw)
    assert not validator.validate(signed.url + "&Extra=1" if "?" in signed.url else signed.url + "?x=1",
                                  signed.params, sw)


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_stream_status_callbacks_pass_twilios_request_validator_and_tampering_fails(method, emulator_factory):
    emulator = await emulator_factory("signalwire")
    creds = emulator.credentials()
    validator = request_validator.RequestValidator(creds["token"])
    async with recorder() as hooks, MediaStreamReceiver(**RECEIVER_TLS) as receiver, SignalWireClient(
        creds["project"], creds["token"], creds["space_url"], ca_bundle=creds["ca_bundle"]
    ) as client:
        created = await client.start_stream(CONFERENCE, Url=receiver.url, StatusCallback=f"{hooks.url}?tenant=a%20b",
                                            StatusCallbackMethod=method)
        stream = await receiver.next_stream()
        await stream.wait_media(2)
        await client.stop_stream(CONFERENCE, created["sid"])
        requests = await hooks.wait_for(2)
    assert [r.method for r in requests] == [method, method]
    assert all("tenant=a%20b" in r.url for r in requests)  # the customer's own query string is kept as given
    for signed in requests:
        _assert_signed(validator, signed)
    assert not request_validator.RequestValidator("another-token").validate(
        requests[0].url, requests[0].params, requests[0].headers["X-Twilio-Signature"])


async def test_conference_status_callbacks_are_signed_with_the_conferences_project_token(emulator_factory):
    emulator = await emulator_factory("signalwire")
    creds = emulator.credentials()
    async with recorder() as hooks:
        await emulator.scenario_controls["create_conference"](
            {"friendly_name": "Signed", "status_callback": hooks.url, "participants": [{"call_sid": ADA}]})
        requests = await hooks.wait_for(1)
    assert requests[0].params["StatusCallbackEvent"] == "conference-start"
    _assert_signed(request_validator.RequestValidator(creds["token"]), requests[0])
