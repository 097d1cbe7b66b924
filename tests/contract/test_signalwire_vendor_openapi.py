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

from emulators.pytest_plugin import start_emulator
from tests.behaviour.signalwire_helpers import ADA, CONFERENCE, RECORDING, fuzz_live_then_ending

REPO = Path(__file__).resolve().parents[2]
SPECS = Path(os.environ.get("BENCHTWIN_VENDOR_SPECS", REPO.parent / "shared" / "reference" / "specs"))
DOCUMENT = SPECS / "signalwire-compat-conferences.yaml"

VALID_DATE = "^(20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8]))?$"  # empty: no filter
ENDING = ("update_conference", "delete_participant", "update_conference_recording", "delete_conference_recording")

pytestmark = [
    pytest.mark.control_plane,
    pytest.mark.skipif(not DOCUMENT.exists(), reason="the vendor's OpenAPI document is not beside the repository"),
]


def _pinned(tmp_path: Path, account: str) -> Path:
    document = yaml.safe_load(DOCUMENT.read_text())
    pins = {"ConferencesAccountSidPath": account, "ConferenceSidPath": CONFERENCE,
            "ConferenceSidPathForParticipant": CONFERENCE, "ParticipantCallSidPath": ADA,
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


def test_the_vendor_openapi_document_passes_schemathesis_against_the_emulator(tmp_path: Path) -> None:
    # As in the project's contract test: operations that end what the others need run on their own, after a reset.
    with start_emulator("signalwire") as target:
        document = _pinned(tmp_path, target.credentials["project"])
        assert target.control is not None
        live, ending = fuzz_live_then_ending(target, document)
        assert live.ok, live.output[-6000:]
        assert ending.ok, ending.output[-6000:]
