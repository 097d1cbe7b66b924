"""The vendor's own OpenAPI document, read in place next to the repository, under schemathesis for the
operations the emulator implements (the checks left out, and why, are on the device page)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.runner import run_schemathesis
from emulators.config import Config
from emulators.pytest_plugin import start_emulator

REPOSITORY = Path(__file__).resolve().parents[2]
# Read in place (never copied into the repository); VIDEODB_OPENAPI points elsewhere, e.g. from a worktree.
VENDOR_DOCUMENT = Path(
    os.environ.get("VIDEODB_OPENAPI") or REPOSITORY.parent / "shared" / "reference" / "specs" / "videodb-openapi.yaml"
)
IMPLEMENTED: dict[str, tuple[str, ...]] = {
    "/collection": ("get",),
    "/collection/{collection_id}": ("get",),
    "/collection/{collection_id}/websocket": ("get",),
    "/collection/{collection_id}/capture/session": ("get", "post"),
    "/collection/{collection_id}/capture/session/{session_id}": ("get",),
    "/capture/session/{streaming_session_id}/stop": ("post",),
    "/video/{video_id}": ("get",),
    "/video/{video_id}/index/": ("post",),
    "/compile/": ("post",),
    "/rtstream/": ("get", "post"),
    "/rtstream/{stream_id}/": ("get", "patch"),
    "/rtstream/{stream_id}/status/": ("patch",),
    "/rtstream/{stream_id}/export": ("post",),
    "/rtstream/{stream_id}/index/scene": ("get", "post"),
    "/rtstream/{stream_id}/index/{scene_index_id}": ("get",),
    "/rtstream/{stream_id}/index/scene/{scene_index_id}": ("get", "patch"),
    "/rtstream/{stream_id}/index/scene/{scene_index_id}/status": ("patch",),
    "/rtstream/{stream_id}/search": ("post",),
    "/rtstream/{stream_id}/stream": ("get",),
    "/rtstream/{stream_id}/transcription/": ("get", "post"),
    "/rtstream/{stream_id}/transcription/status": ("get",),
    "/rtstream/event": ("get", "post"),
    "/rtstream/{stream_id}/index/{scene_index_id}/alert": ("get", "post"),
    "/rtstream/{stream_id}/index/{scene_index_id}/alert/{alert_id}/status": ("patch",),
}
# Each is justified on docs/videodb.md ("The vendor OpenAPI document under schemathesis").
EXCLUDED_CHECKS = ("positive_data_acceptance", "status_code_conformance")

LOOPBACK_ONLY = Config(egress_allow=["127.0.0.0/8"])
SETTINGS = {"rtstream_search_empty_list": True, "reconnect_initial_s": 5.0, "reconnect_max_s": 5.0}


def implemented_operations(document: dict[str, Any]) -> dict[str, Any]:
    """The vendor document with only the operations the emulator implements (the rest is out of scope)."""
    paths = {}
    for path, methods in IMPLEMENTED.items():
        item = document["paths"][path]
        paths[path] = {k: v for k, v in item.items() if k not in ("get", "post", "put", "patch", "delete")
                       or k in methods}
    return naive_timestamps({**document, "paths": paths, "servers": []})


def naive_timestamps(node: Any) -> Any:
    """The overlay: the service sends ``created_at`` without an offset (``2025-05-27T13:07:38.758741``, as
    captured from it), which the document's ``format: date-time`` (RFC 3339) does not allow."""
    if isinstance(node, dict):
        return {k: naive_timestamps(v) for k, v in node.items() if not (k == "format" and v == "date-time")}
    if isinstance(node, list):
        return [naive_timestamps(v) for v in node]
    return node


@pytest.mark.control_plane
def test_the_vendor_openapi_document_passes_schemathesis_for_the_implemented_operations(tmp_path: Path) -> None:
    if not VENDOR_DOCUMENT.exists():
        pytest.skip("the vendor OpenAPI document is not next to this repository (set VIDEODB_OPENAPI)")
    document = yaml.safe_load(VENDOR_DOCUMENT.read_text())
    filtered = tmp_path / "videodb-openapi-implemented.yaml"
    filtered.write_text(yaml.safe_dump(implemented_operations(document), sort_keys=False))
    with start_emulator("videodb", settings=SETTINGS, config=LOOPBACK_ONLY) as target:
        result = run_schemathesis(
            filtered, target.url, max_examples=5, seed=1,
            headers={"x-access-token": target.credentials["api_key"]},
            exclude_checks=EXCLUDED_CHECKS,
        )
        assert result.ok, result.output[-8000:]
        assert target.control is not None and target.control.health()["ready"] is True
