"""Keeping event details and log lines small and free of secrets: credentials in URLs are masked, long text cut."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
MAX_TEXT_CHARS = 2048  # a URL, a name, an error message; whole request bodies do not belong in the event log
MAX_ITEMS = 64  # per list or mapping
MAX_DEPTH = 8

# userinfo in any URL: scheme://user:password@host -> scheme://***@host
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#]+@")
# query or form parameters that carry a secret, wherever they appear in a text
_SECRET_PARAMS = re.compile(
    r"(?P<name>[?&;](?:access_token|api_key|apikey|auth|authorization|key|password|passwd|secret|sig|signature|"
    r"token|x-access-token)=)[^&#\s]*",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """``text`` with credentials embedded in URLs masked."""
    if "@" in text:
        text = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
    if "=" in text:
        text = _SECRET_PARAMS.sub(lambda m: m.group("name") + MASK, text)
    return text


def bounded(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON-like value that is safe to keep: secrets in URLs masked, long text and bytes replaced
    by a cut version that says how much was left out, long lists and deep nesting cut."""
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            value = f"{value[:MAX_TEXT_CHARS]}... ({len(value) - MAX_TEXT_CHARS} more characters)"
        return redact_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_DEPTH:
        return f"<{type(value).__name__} nested deeper than {MAX_DEPTH}>"
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k): bounded(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items) - MAX_ITEMS} more keys"
        return out
    if isinstance(value, list | tuple):
        cut = [bounded(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            cut.append(f"... {len(value) - MAX_ITEMS} more items")
        return tuple(cut) if isinstance(value, tuple) else cut
    return value  # numbers-like and enums stay as they are: only text, bytes and containers grow without bound
