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
from contracts.runner import openapi_path, run_schemathesis
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.kit.tls import ensure_dev_certs
from emulators.pytest_plugin import start_emulator
from emulators.signalwire.device import SignalWireEmulator

# The receiver serves the dev server certificate, as `benchtwin certs` makes it.
_DEV_CERTS = ensure_dev_certs()
RECEIVER_TLS = {"certfile": _DEV_CERTS.cert, "keyfile": _DEV_CERTS.key}

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

CONFERENCE = "0a8f3c2e-6d41-4b7a-8e5c-9f1d2b3a4c5d"
CALL = "3b1e7a9c-2d4f-4a6b-8c0e-1f3a5b7c9d2e"
RECORDING = "19e436af-5688-4307-b03b-bdb2b42b8142"
# Operations after which valid requests are legitimately refused (the conference ended, a recording stopped):
# they get their own run, after a reset, so the rest is fuzzed against a live conference.
ENDING = ("update_conference", "delete_participant", "update_conference_recording", "delete_conference_recording")


def _pinned_document(tmp_path: Path, account: str) -> Path:
    document = yaml.safe_load(openapi_path("signalwire").read_text())
    pins = {"AccountSid": account, "ConferenceSid": CONFERENCE, "CallSid": CALL, "RecordingSid": RECORDING}
    for name, value in pins.items():
        document["components"]["parameters"][name]["schema"] = {"type": "string", "enum": [value]}
    path = tmp_path / "signalwire-pinned.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.control_plane
def test_the_rest_api_passes_schemathesis_with_zero_failures(tmp_path: Path) -> None:
    with start_emulator("signalwire") as target:
        creds = target.credentials
        document = _pinned_document(tmp_path, creds["project"])
        base = f"https://{creds['space_url']}/api/laml/2010-04-01"
        common = {"auth": (creds["project"], creds["token"]), "tls_verify": creds["ca_bundle"], "max_examples": 4,
                  "seed": 1, "phases": "examples,coverage,fuzzing"}
        live = run_schemathesis(document, base, exclude_operation_ids=ENDING, **common)
        assert live.ok, live.output[-4000:]
        assert target.control is not None
        target.control.reset()
        # Here a schema-valid request may meet a conference that has ended or a recording that has stopped,
        # which the device refuses (422): accepting valid data is checked by the first run only.
        ending = run_schemathesis(document, base, exclude_operation_ids=tuple(
            op for op in _operation_ids(document) if op not in ENDING),
            exclude_checks=("positive_data_acceptance",), **{**common, "phases": "fuzzing"})
        assert ending.ok, ending.output[-4000:]
        assert target.control.health()["ready"] is True


def _operation_ids(document: Path) -> list[str]:
    spec = yaml.safe_load(document.read_text())
    return [op["operationId"] for item in spec["paths"].values() for op in item.values()
            if isinstance(op, dict) and "operationId" in op]


def _message_schemas() -> dict[str, dict]:
    """Each message's payload schema, keyed by the message's wire name (the ``event`` value)."""
    messages = load_asyncapi("signalwire")["components"]["messages"]
    return {m["name"]: schema_for("signalwire", f"messages/{key}/payload") for key, m in messages.items()}


async def test_every_message_the_emulator_sends_validates_against_the_asyncapi_document() -> None:
    schemas = _message_schemas()
    settings = {"port": 0, "tls_port": 0, "always_custom_parameters": True}
    async with (
        SignalWireEmulator(egress=EGRESS, settings=settings) as emulator,
        MediaStreamReceiver(**RECEIVER_TLS) as receiver,
    ):
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
