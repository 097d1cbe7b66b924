"""The depthcam target passes schemathesis with our contract (stateful links included) and with the vendor's.

Run against a real controller with ``--target depthcam=http://robopipe-1.local``: the default profile answers
as the server's main does, 500s included. Excluded checks, and why:

- ``negative_data_rejection``: the Robopipe server validates with pydantic in lax mode, so ``true`` for an
  integer or ``"12"`` for 12 is accepted although JSON Schema calls it invalid; the emulator does the same.
- ``not_a_server_error``: main answers 500 where its code raises; our document lists those 500s.
- vendor camera paths: ``status_code_conformance``, ``positive_data_acceptance`` and
  ``allow_header_conformance`` as well (the vendor's document lists no 500, accepts any ``nn_config`` string
  where main wants JSON, and expects every method in ``Allow`` where main names the first route's only).
- vendor controller paths only: ``positive_data_acceptance`` (circuits exist only if the PLC has them, so a
  schema-valid unknown circuit is a 422), ``unsupported_method`` and ``allow_header_conformance`` (the
  document's ``/controller/{device_type}`` also matches ``/controller/ai``, whose POST is a real operation).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contracts.runner import run_schemathesis

REPO = Path(__file__).resolve().parents[2]
VENDOR_DOCUMENT = REPO / ".." / "shared" / "reference" / "specs" / "robopipe-oas.yml"
LAX_VALIDATION = ("negative_data_rejection",)
# The default profile answers as the server's main does: where its code raises, the reply is uvicorn's 500. Our
# document lists those 500s (so status codes stay checked); the vendor's does not, see the device page.
SERVER_MAIN_500S = ("not_a_server_error",)
# Where the vendor's document and its server's main disagree (listed on the device page): the document has no 500,
# its nn_config is any string where main wants an NN config as JSON (a 422 otherwise, or a 500), and main's 405
# allows only the first registered route's method.
VENDOR_MISMATCHES = (
    *SERVER_MAIN_500S,
    "status_code_conformance",
    "positive_data_acceptance",
    "allow_header_conformance",
)


def test_depthcam_passes_our_contract_including_the_stateful_links(depthcam_target) -> None:
    # The stateful phase follows the links (cameras -> activate -> list/config/control/still/nn ->
    # deactivate, delete -> create); the coverage and fuzzing phases run with the vendor's document below,
    # on the same wire. (The examples phase would delete the only camera before the links could use it.)
    result = run_schemathesis(
        "depthcam",
        depthcam_target.url,
        max_examples=30,
        seed=4,
        phases="stateful",
        exclude_checks=LAX_VALIDATION + SERVER_MAIN_500S,
        timeout_s=180,
    )
    assert result.ok, result.output[-6000:]
    covered = re.search(r"API Links:\s+(\d+) covered", result.output)
    assert covered is not None and int(covered.group(1)) >= 10, result.output[-3000:]


# The coverage phase (boundaries, every enum, negative cases) is where fidelity shows; fuzzing adds little
# for the PLC paths, so they skip it to keep the suite's CPU small.
@pytest.mark.parametrize(
    ("part", "paths", "phases", "extra_exclusions"),
    [
        ("cameras", "^/cameras", "coverage,fuzzing", VENDOR_MISMATCHES),
        (
            "controller",
            "^/controller",
            "coverage",
            # main answers an unknown circuit with a 500 the vendor document does not list (see the device page)
            (*SERVER_MAIN_500S, "status_code_conformance", "positive_data_acceptance", "unsupported_method",
             "allow_header_conformance"),
        ),
    ],
)
def test_the_vendor_document_passes_against_the_target(
    depthcam_target, part: str, paths: str, phases: str, extra_exclusions: tuple[str, ...]
) -> None:
    document = VENDOR_DOCUMENT.resolve()
    if not document.is_file():
        pytest.skip(f"the vendor document is not here: {VENDOR_DOCUMENT} (the shared reference folder is absent)")
    result = run_schemathesis(
        document,
        depthcam_target.url,
        max_examples=2,
        seed=4,
        phases=phases,
        exclude_checks=LAX_VALIDATION + extra_exclusions,
        include_path_regex=paths,
        timeout_s=180,
    )
    assert result.ok, f"vendor document, {part} operations:\n" + result.output[-6000:]
