"""Field parsing shared by form and JSON bodies: each bad value is an InvalidRequest naming the field (pure)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from emulators.signalwire.errors import InvalidRequest


def text_field(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRequest(f"{name} must be a string, got {type(value).__name__}")
    return str(value)


def bool_field(fields: dict[str, Any], name: str) -> bool | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidRequest(f"{name} must be true or false, got {value!r}")


def choice_field(fields: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    value = text_field(fields, name)
    if value is not None and value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")


def is_uri(value: str) -> bool:
    """RFC 3986 characters only (no spaces, no raw non-ASCII), so the value is a URI and not just text."""
    return _URI_CHARS.fullmatch(value) is not None


def absolute_http_url(value: str) -> bool:
    if not is_uri(value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
