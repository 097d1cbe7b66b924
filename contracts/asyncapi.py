"""AsyncAPI-style message contracts: load a device's document and validate messages against it.

Each document has ``components.messages.<Name>.payload`` (a JSON Schema that may ``$ref`` into
``components``). Tests, clients and `benchtwin contract` validate with these functions, so the
schema is resolved one way everywhere.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema
import yaml

from contracts.runner import ASYNCAPI


@cache
def load(device: str) -> dict[str, Any]:
    path = ASYNCAPI / f"{device}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no AsyncAPI document {path.name} in {ASYNCAPI}")
    return yaml.safe_load(path.read_text())


def message_names(device: str) -> list[str]:
    return sorted(load(device)["components"]["messages"])


def schema_for(device: str, ref: str) -> dict[str, Any]:
    """A standalone schema for ``ref`` (``messages/<Name>/payload`` or ``schemas/<Name>``) inside the document."""
    return {"$ref": f"#/components/{ref}", "components": load(device)["components"]}


@cache
def validator(device: str, message: str) -> jsonschema.Draft202012Validator:
    messages = load(device)["components"]["messages"]
    if message not in messages:
        raise KeyError(f"{device}: no message {message!r}; the document has {', '.join(sorted(messages))}")
    return jsonschema.Draft202012Validator(schema_for(device, f"messages/{message}/payload"))


def validate_message(device: str, message: str, payload: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``payload`` does not match the named message."""
    validator(device, message).validate(payload)
