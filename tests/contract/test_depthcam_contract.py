"""The depthcam target passes schemathesis with our contract (stateful links included) and with the vendor's.

Run against a real controller with ``--target depthcam=http://robopipe-1.local`` (expect the
robopipe-server profile's 500s there). Excluded checks, and why:

- ``negative_data_rejection``: the Robopipe server validates with pydantic in lax mode, so ``true`` for an
  integer or ``"12"`` for 12 is accepted although JSON Schema calls it invalid; the emulator does the same.
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
        exclude_checks=LAX_VALIDATION,
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
        ("cameras", "^/cameras", "coverage,fuzzing", ()),
        (
            "controller",
            "^/controller",
            "coverage",
            ("positive_data_acceptance", "unsupported_method", "allow_header_conformance"),
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
