"""The SignalWire emulator against its contracts: schemathesis on the REST API, the AsyncAPI schemas on every message.

The REST document keeps ids generic; here they are pinned to the default scenario's fixture ids (as a
hardware-in-the-loop run would pin them to a real space's), so the fuzzer reaches real resources.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from clients.signalwire import MediaStreamReceiver, SignalWireClient
from contracts.asyncapi import load as load_asyncapi
from contracts.asyncapi import schema_for
from contracts.runner import openapi_path
from emulators.pytest_plugin import start_emulator
from tests.behaviour.signalwire_helpers import ADA, CONFERENCE, RECEIVER_TLS, RECORDING, fuzz_live_then_ending


def _pinned_document(tmp_path: Path, account: str) -> Path:
    document = yaml.safe_load(openapi_path("signalwire").read_text())
    pins = {"AccountSid": account, "ConferenceSid": CONFERENCE, "CallSid": ADA, "RecordingSid": RECORDING}
    for name, value in pins.items():
        document["components"]["parameters"][name]["schema"] = {"type": "string", "enum": [value]}
    path = tmp_path / "signalwire-pinned.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.control_plane
def test_the_rest_api_passes_schemathesis_with_zero_failures(tmp_path: Path) -> None:
    with start_emulator("signalwire") as target:
        document = _pinned_document(tmp_path, target.credentials["project"])
        assert target.control is not None
        # The ending operations run on their own, after a reset (see fuzz_live_then_ending): accepting valid
        # data is checked by the first run only.
        live, ending = fuzz_live_then_ending(target, document)
        assert live.ok, live.output[-4000:]
        assert ending.ok, ending.output[-4000:]
        assert target.control.health()["ready"] is True


def _message_schemas() -> dict[str, dict]:
    """Each message's payload schema, keyed by the message's wire name (the ``event`` value)."""
    messages = load_asyncapi("signalwire")["components"]["messages"]
    return {m["name"]: schema_for("signalwire", f"messages/{key}/payload") for key, m in messages.items()}


async def test_every_message_the_emulator_sends_validates_against_the_asyncapi_document(emulator_factory) -> None:
    schemas = _message_schemas()
    emulator = await emulator_factory("signalwire", settings={"always_custom_parameters": True})
    async with MediaStreamReceiver(**RECEIVER_TLS) as receiver:
        creds = emulator.credentials()
        async with SignalWireClient(creds["project"], creds["token"], creds["space_url"],
                                    ca_bundle=creds["ca_bundle"]) as client:
            await client.start_stream(CONFERENCE, Url=receiver.url, StreamCodec="L16@24000h")
            stream = await receiver.next_stream()
            await stream.wait_media(6)
            await stream.send_mark("m1")
            await emulator.scenario_controls["press_dtmf"]({"conference_sid": CONFERENCE, "digit": "9"})
            await stream.wait_until(lambda s: any('"dtmf"' in m for m in s.raw) and any('"mark"' in m for m in s.raw))
            await client.stop_stream(CONFERENCE, stream.stream_sid)
            await stream.wait_closed()
    kinds = set()
    for text in stream.raw:
        message = json.loads(text)
        kinds.add(message["event"])
        jsonschema.validate(message, schemas[message["event"]])
    assert kinds == {"connected", "start", "media", "dtmf", "mark", "stop"}
