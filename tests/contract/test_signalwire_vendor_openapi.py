"""The vendor's own SignalWire conference OpenAPI document, read in place (``../shared/reference/specs/`` beside the
repository, or the folder ``BENCHTWIN_VENDOR_SPECS`` names), run under schemathesis against the emulator.

Path ids are pinned to the default scenario's fixtures as in the project's contract test; each excluded check is
justified on the device page (docs/signalwire.md, "The vendor's OpenAPI document").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from contracts.runner import run_schemathesis
from emulators.pytest_plugin import start_emulator

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(os.environ.get("BENCHTWIN_VENDOR_SPECS", REPO.parent / "shared" / "reference" / "specs"))
DOCUMENT = SPECS / "signalwire-compat-conferences.yaml"

CONFERENCE = "0a8f3c2e-6d41-4b7a-8e5c-9f1d2b3a4c5d"
CALL = "3b1e7a9c-2d4f-4a6b-8c0e-1f3a5b7c9d2e"
RECORDING = "19e436af-5688-4307-b03b-bdb2b42b8142"
# As in the project's contract test: operations that end what the others need run on their own, after a reset.
VALID_DATE = "^(20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))?$"  # empty: no filter
ENDING = ("update_conference", "delete_participant", "update_conference_recording", "delete_conference_recording")

pytestmark = [
    pytest.mark.control_plane,
    pytest.mark.skipif(not DOCUMENT.exists(), reason="the vendor's OpenAPI document is not beside the repository"),
]


def _pinned(tmp_path: Path, account: str) -> Path:
    document = yaml.safe_load(DOCUMENT.read_text())
    pins = {"ConferencesAccountSidPath": account, "ConferenceSidPath": CONFERENCE,
            "ConferenceSidPathForParticipant": CONFERENCE, "ParticipantCallSidPath": CALL,
            "ConferenceRecordingSidPath": RECORDING}
    for name, value in pins.items():
        document["components"]["parameters"][name]["schema"] = {"type": "string", "enum": [value]}
    schemas = document["components"]["schemas"]
    # The list envelopes are closed, yet the issue (and Twilio's clients) want the paging fields start and end.
    for name in ("ConferenceListResponse", "ConferenceParticipantListResponse", "ConferenceRecordingListResponse"):
        schemas[name]["properties"].update(start={"type": "integer"}, end={"type": "integer"})
    # The document accepts any URI as a stream Url; the device dials wss:// only, with no query string.
    schemas["CreateConferenceStreamRequest"]["properties"]["Url"] = {
        "type": "string", "pattern": "^wss://[A-Za-z0-9.-]+(:[0-9]{1,4})?(/[A-Za-z0-9._~/-]*)?$"}
    # Its prose makes CallSidToCoach required when Coaching is true; the schema does not say so. And the body is
    # required, but an empty form body cannot be told from a missing one: at least one field.
    schemas["UpdateConferenceParticipantRequest"].update(
        {"if": {"required": ["Coaching"], "properties": {"Coaching": {"const": True}}},
         "then": {"required": ["CallSidToCoach"]}, "minProperties": 1})
    # Its prose gives the formats its schemas leave open: PageToken "must start with PA or PB", dates YYYY-MM-DD
    # (empty values are no filter, as the emulator takes them).
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                name = parameter.get("name", "")
                if name == "PageToken":
                    parameter["schema"] = {"type": "string", "pattern": "^(P[AB][A-Za-z0-9]*)?$"}
                elif name.startswith(("DateCreated", "DateUpdated")):
                    parameter["schema"] = {"type": "string", "pattern": VALID_DATE}
    path = tmp_path / "signalwire-vendor-pinned.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _operation_ids(document: Path) -> list[str]:
    spec = yaml.safe_load(document.read_text())
    return [op["operationId"] for item in spec["paths"].values() for op in item.values()
            if isinstance(op, dict) and "operationId" in op]


def test_the_vendor_openapi_document_passes_schemathesis_against_the_emulator(tmp_path: Path) -> None:
    with start_emulator("signalwire") as target:
        creds = target.credentials
        document = _pinned(tmp_path, creds["project"])
        base = f"https://{creds['space_url']}/api/laml/2010-04-01"
        common = {"auth": (creds["project"], creds["token"]), "tls_verify": creds["ca_bundle"], "max_examples": 4,
                  "seed": 1, "phases": "examples,coverage,fuzzing"}
        live = run_schemathesis(document, base, exclude_operation_ids=ENDING, **common)
        assert live.ok, live.output[-6000:]
        assert target.control is not None
        target.control.reset()
        ending = run_schemathesis(document, base, exclude_operation_ids=tuple(
            op for op in _operation_ids(document) if op not in ENDING),
            exclude_checks=("positive_data_acceptance",), **{**common, "phases": "fuzzing"})
        assert ending.ok, ending.output[-6000:]
