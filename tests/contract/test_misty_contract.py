"""The misty emulator (or a real robot via --target) passes schemathesis against contracts/openapi/misty.yaml.

Excluded, with reasons:
- ``startAvStreaming`` is not fuzzed: a generated push URL would send real media to generated hosts and a
  generated rtspd start would spend a core on 1080p H.264. Its ranges are checked example by example below
  (and in tests/behaviour/test_misty_rest.py) against the same document.
- ``unsupported_method``: the robot answers an unknown verb with 404 ``Command not found`` (misty.md §2.1),
  not 405.
- ``positive_data_acceptance``: the robot's answers depend on its state (a valid StartVideoStreaming is a 400
  while the camera service is off, a valid TakePicture needs both Width and Height), which a schema cannot say.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import requests
import yaml

from contracts.runner import openapi_path, run_schemathesis

EXCLUDED_CHECKS = ("unsupported_method", "positive_data_acceptance")


@pytest.fixture(scope="module")
def document() -> dict:
    return yaml.safe_load(Path(openapi_path("misty")).read_text())


def test_misty_api_passes_schemathesis_with_zero_failures(misty_target_module) -> None:
    target = misty_target_module
    result = run_schemathesis(
        "misty",
        target.url,
        max_examples=5,
        seed=3,
        exclude_checks=EXCLUDED_CHECKS,
        exclude_operation_ids=("startAvStreaming",) + (() if target.is_emulator else ("scenarioReboot",)),
    )
    assert result.ok, result.output[-6000:]
    # Still healthy afterwards.
    assert requests.get(f"{target.url}/api/battery", timeout=5).status_code in (200, 503)


def _validate(document: dict, schema_name: str, body: object) -> None:
    schema = {**document["components"]["schemas"][schema_name], "components": document["components"]}
    jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    ("args", "status"),
    [
        ({}, 400),
        ({"URL": "ftp://x"}, 400),
        ({"URL": "rtspd:1936", "Width": 800, "Height": 600}, 400),
        ({"URL": "rtspd:1936", "FrameRate": 31}, 400),
        ({"URL": "rtspd:1936", "Width": 320, "Height": 240}, 400),  # AV service off at boot
    ],
)
def test_av_start_answers_match_the_document(misty_target_module, document, args, status) -> None:
    resp = requests.post(f"{misty_target_module.url}/api/avstreaming/start", json=args, timeout=10)
    assert resp.status_code == status
    assert resp.headers["Misty-Command-Version"] == "Beta"
    _validate(document, "Failure", resp.json())


def test_every_emulated_command_is_in_the_document(document) -> None:
    from emulators.misty.help import COMMANDS

    for command in COMMANDS:
        path = f"/api/{command.endpoint}"
        templated = path.replace("/avstreaming", "/{service}").replace("/camera", "/{service}").replace(
            "/audio", "/{service}").replace("/slam", "/{service}") if path.startswith("/api/services/") else path
        assert path in document["paths"] or templated in document["paths"], path
