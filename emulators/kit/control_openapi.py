"""One emulator's control-plane OpenAPI document: the shared control plane, with each scenario control's real
request and response schemas in place of the generic ``/_emulator/scenario/{control}`` operation.

A device's scenario operations are the ``/_emulator/scenario/<name>`` paths of its own contract document
(``contracts/openapi/<device>.yaml``) and of ``contracts/openapi/scenarios/<device>.yaml``.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from importlib import resources
from typing import Any

from emulators.kit.yaml_text import load_yaml

SCENARIO_PREFIX = "/_emulator/scenario/"
GENERIC_SCENARIO_PATH = "/_emulator/scenario/{control}"
# Marks an operation for a control whose body no document describes (the contract test refuses these).
UNDESCRIBED = "x-undescribed-scenario-control"


def _openapi_dir() -> Any:
    return resources.files("contracts") / "openapi"


@functools.cache
def _load(name: str) -> dict[str, Any] | None:
    path = _openapi_dir() / name
    if not path.is_file():
        return None
    document = load_yaml(path.read_text(encoding="utf-8"))
    return document if isinstance(document, dict) else None


def _inline_refs(node: Any, components: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``$ref`` replaced by what it points at, so it stands alone in another document."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            if ref in seen:
                raise ValueError(f"recursive reference {ref} cannot be inlined into the control-plane document")
            target: Any = {"components": components}
            for part in ref[2:].split("/"):
                target = target[part]
            merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline_refs(merged, components, (*seen, ref))
        return {k: _inline_refs(v, components, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, components, seen) for v in node]
    return node


@functools.cache
def scenario_operations(device: str) -> dict[str, dict[str, Any]]:
    """Scenario control name -> its path item, from the device's documents, references inlined."""
    found: dict[str, dict[str, Any]] = {}
    for name in (f"{device}.yaml", f"scenarios/{device}.yaml"):
        document = _load(name)
        if document is None:
            continue
        components = document.get("components", {})
        for path, item in (document.get("paths") or {}).items():
            if not path.startswith(SCENARIO_PREFIX):
                continue
            control = path[len(SCENARIO_PREFIX):]
            if control in found:
                raise ValueError(f"scenario control {control!r} of {device} is described twice")
            found[control] = _inline_refs(item, components)
    return found


def control_plane_document(device: str, controls: Iterable[str]) -> dict[str, Any]:
    """The control-plane document of one emulator whose scenario controls are ``controls``."""
    base = _load("control-plane.yaml")
    if base is None:
        raise FileNotFoundError("contracts/openapi/control-plane.yaml is missing from this installation")
    document = copy.deepcopy(base)
    document["info"]["title"] = f"benchtwin {device} emulator control plane"
    paths: dict[str, Any] = document["paths"]
    generic = paths.pop(GENERIC_SCENARIO_PATH)
    described = scenario_operations(device)
    for control in sorted(controls):
        if control in described:
            item = copy.deepcopy(described[control])
        else:
            item = copy.deepcopy(generic)
            item["post"]["parameters"] = []
            item["post"][UNDESCRIBED] = True
        operation = item["post"]
        operation.setdefault("operationId", f"scenario_{control}")
        # Every control can meet a malformed body (400) or a state it cannot act on (409): the kit answers those.
        responses = operation.setdefault("responses", {})
        responses.setdefault("400", {"$ref": "#/components/responses/BadRequest"})
        responses.setdefault("409", {"$ref": "#/components/responses/Conflict"})
        paths[SCENARIO_PREFIX + control] = item
    # The control-plane guard answers any body that is not application/json with 415 before a handler runs.
    for item in paths.values():
        for operation in item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["responses"].setdefault("415", {"$ref": "#/components/responses/UnsupportedMediaType"})
    return document
