"""FastAPI's answers to a request it cannot use, in its shapes: the 422 error items (``type``, ``loc``, ``msg``,
``input``, ``ctx``), the 400 for a body it cannot read, and the lenient multipart reading both server branches share.

Nothing here needs pydantic: path and query checks answer without it, and the pydantic request models
(``schemas``, ``server_bodies``) are imported at the first body that needs them.
"""

from __future__ import annotations

import enum
import functools
import re
from typing import Any

MISSING = object()  # no body at all (FastAPI's "Field required" for a required body)
BODY_PARSE_ERROR = "There was an error parsing the body"


class BodyUnparsable(Exception):
    """FastAPI's 400: the body could not be read at all (not UTF-8 JSON, nested past the recursion limit, or broken
    multipart); its request handler turns any exception of the JSON parse but a decode error into this 400."""


class JsonInvalid(Exception):
    """The body is not JSON: FastAPI's 422 ``json_invalid``, answered before any dependency runs (main's branch)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("JSON decode error")
        self.errors = errors


# ----- error items ------------------------------------------------------------------------------------------
def error_item(
    type_: str, loc: list[str | int], msg: str, input_: Any, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"type": type_, "loc": loc, "msg": msg, "input": input_}
    if ctx is not None:
        item["ctx"] = ctx
    return item


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def pattern_error(where: str, name: str, value: str, pattern: str) -> dict[str, Any] | None:
    """FastAPI path patterns are unanchored: a value passes when it *contains* a match."""
    if _compiled(pattern).search(value):
        return None
    return error_item(
        "string_pattern_mismatch",
        [where, name],
        f"String should match pattern '{pattern}'",
        value,
        {"pattern": pattern},
    )


def value_error(loc: list[str | int], message: str, input_: Any) -> dict[str, Any]:
    return error_item("value_error", loc, f"Value error, {message}", input_, {"error": {}})


def jsonable(value: Any) -> Any:
    if isinstance(value, BaseException):
        return {}  # FastAPI's encoder renders exception objects in ctx as empty objects
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_FIELD_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)


def multipart_boundary(content_type: str) -> bytes | None:
    match = _BOUNDARY.search(content_type)
    return match.group(1).encode("latin-1", "replace") if match else None


def multipart_fields(body: bytes, content_type: str) -> list[tuple[str, bytes]]:
    """The named parts of a multipart/form-data body, parsed leniently like python-multipart does.

    Header bytes that are not ASCII (fuzzers send them) do not spoil the other parts; a body that is not
    multipart at all has no fields.
    """
    if not content_type.lower().startswith("multipart/"):
        return []
    boundary = multipart_boundary(content_type)
    if boundary is None:
        return []
    delimiter = b"--" + boundary
    fields = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        name = _FIELD_NAME.search(head)
        if name is None:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        fields.append((name.group(1).decode("utf-8", "replace"), data))
    return fields
