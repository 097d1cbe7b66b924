"""Redaction of credentials before anything reaches a cassette: headers, query parameters and JSON fields.

What is forwarded to the device is never changed; only the recorded copy is. An ``Authorization`` value keeps
its scheme (``Token <redacted>``) so a parity run knows which of the emulator's credentials to put back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

PLACEHOLDER = "<redacted>"
SECRET_NAME = re.compile(r"(authorization|token|secret|signature|password|passwd|api[-_]?key|cookie|credential)",
                         re.IGNORECASE)
AUTH_SCHEMES = ("token", "bearer", "basic", "digest")


@dataclass
class Redactor:
    """``enabled`` False records everything verbatim; ``extra`` names more fields (headers, query, JSON keys)."""

    enabled: bool = True
    extra: set[str] = field(default_factory=set)

    def is_secret(self, name: str) -> bool:
        return self.enabled and (bool(SECRET_NAME.search(name)) or name.lower() in self.extra)

    def header_value(self, name: str, value: str) -> str:
        if not self.is_secret(name):
            return value
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in AUTH_SCHEMES:
            return f"{scheme} {PLACEHOLDER}"
        return PLACEHOLDER

    def headers(self, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, self.header_value(k, v)) for k, v in headers]

    def url(self, url: str) -> str:
        if not self.enabled:
            return url
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:  # user:password@host
            netloc = f"{PLACEHOLDER}@{netloc.rpartition('@')[2]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(self.is_secret(k) for k, _ in pairs):
                query = urlencode([(k, PLACEHOLDER if self.is_secret(k) else v) for k, v in pairs], safe="<>")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

    def body(self, body: bytes, content_type: str) -> bytes:
        """JSON and form bodies get secret fields replaced; anything else is kept as it is."""
        if not self.enabled or not body:
            return body
        mime = content_type.split(";")[0].strip().lower()
        if mime.endswith("json"):
            try:
                document = json.loads(body)
            except ValueError:
                return body
            redacted = self.json(document)
            return body if redacted == document else json.dumps(redacted, separators=(",", ":")).encode()
        if mime == "application/x-www-form-urlencoded":
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            if not any(self.is_secret(k) or self.json(v) != v for k, v in pairs):
                return body
            return urlencode([(k, PLACEHOLDER if self.is_secret(k) else self.json(v)) for k, v in pairs]).encode()
        return body

    def json(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (PLACEHOLDER if self.is_secret(k) and isinstance(v, str) else self.json(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, str) and "://" in value[:12]:  # a receiver URL can carry ?token=...
            return self.url(value)
        return value

    def message(self, data: bytes, opcode: int) -> bytes:
        """WebSocket text messages that are JSON get the same treatment as JSON bodies."""
        if opcode != 1:
            return data
        return self.body(data, "application/json") if data[:1] in (b"{", b"[") else data
