"""Which recorded exchange answers a new request: matchers applied in order, and the closest miss named."""

from __future__ import annotations

import difflib
import email.policy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

from emulators.hil.cassette import Exchange
from emulators.hil.redact import PLACEHOLDER

MATCHERS = ("method", "path", "query", "body")


@dataclass
class Incoming:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: bytes
    content_type: str
    websocket: bool = False

    def label(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{'WS ' if self.websocket else ''}{self.method} {self.path}{'?' + query if query else ''}"


def parse_matchers(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in MATCHERS and not name.startswith("header:"):
            raise ValueError(f"--match {name!r}: choose from {', '.join(MATCHERS)} or header:NAME")
    return names


def _same_value(recorded: Any, new: Any) -> bool:
    """Structural equality where a redacted recorded value matches anything."""
    if recorded == PLACEHOLDER:
        return True
    if isinstance(recorded, dict) and isinstance(new, dict):
        return recorded.keys() == new.keys() and all(_same_value(recorded[k], new[k]) for k in recorded)
    if isinstance(recorded, list | tuple) and isinstance(new, list | tuple):
        return len(recorded) == len(new) and all(_same_value(a, b) for a, b in zip(recorded, new, strict=True))
    return bool(recorded == new)


def _parsed_body(body: bytes, content_type: str) -> Any:
    mime = content_type.split(";")[0].strip().lower()
    if not body.strip():
        return None
    if mime.endswith("json") or body[:1] in (b"{", b"["):
        try:
            return json.loads(body)
        except ValueError:
            pass
    if mime == "application/x-www-form-urlencoded":
        return sorted(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if mime == "multipart/form-data":
        return _multipart(body, content_type)
    return body


def _multipart(body: bytes, content_type: str) -> Any:
    """Multipart parts as (name, filename, content type, bytes): the boundary is random per request."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return body
    return [(part.get_param("name", header="content-disposition"), part.get_filename(), part.get_content_type(),
             part.get_payload(decode=True)) for part in message.iter_parts()]


def _with_wildcards(document: Any, fields: Sequence[str]) -> Any:
    """The recorded body with its receiver URLs made wildcards: a new request names its own receivers."""
    if not fields or document is None or isinstance(document, bytes):
        return document
    if isinstance(document, list) and all(isinstance(p, tuple) for p in document):  # a form
        return [(k, PLACEHOLDER if k in fields else v) for k, v in document]
    copied = json.loads(json.dumps(document))
    for path in fields:
        keys, node = path.split("."), copied
        try:
            for key in keys[:-1]:
                node = node[int(key)] if isinstance(node, list) else node[key]
            if isinstance(node, list):
                node[int(keys[-1])] = PLACEHOLDER
            else:
                node[keys[-1]] = PLACEHOLDER
        except (KeyError, IndexError, ValueError, TypeError):
            continue
    return copied


def differences(recorded: Exchange, new: Incoming, matchers: Sequence[str], wildcards: Sequence[str] = ()
                ) -> list[str]:
    """The matchers that fail, in order (empty = a match). ``wildcards``: body fields that match any value."""
    failed = []
    for name in matchers:
        if name == "method":
            ok = recorded.method.upper() == new.method.upper() and recorded.is_websocket == new.websocket
        elif name == "path":
            ok = recorded.path == new.path
        elif name == "query":
            ok = _same_value(sorted(map(list, recorded.query)), sorted(map(list, new.query)))
        elif name == "body":
            ours = _parsed_body(recorded.request_body, recorded.header("Content-Type", response=False) or "")
            ok = _same_value(_with_wildcards(ours, wildcards), _parsed_body(new.body, new.content_type))
        else:
            continue  # header matchers are checked by the caller, which has the headers
        if not ok:
            failed.append(name)
    return failed


class ExchangeMatcher:
    """Serves repeated identical requests from successive recordings, then keeps answering with the last."""

    def __init__(self, exchanges: Sequence[Exchange], matchers: Sequence[str] = MATCHERS,
                 wildcards: dict[int, list[str]] | None = None) -> None:
        self.exchanges = list(exchanges)
        self.matchers = tuple(matchers)
        self.wildcards = wildcards or {}
        self._used: set[int] = set()

    def _differences(self, i: int, new: Incoming) -> list[str]:
        return differences(self.exchanges[i], new, self.matchers, self.wildcards.get(i, ()))

    def find(self, new: Incoming, headers: dict[str, str] | None = None) -> int | None:
        candidates = [i for i, e in enumerate(self.exchanges)
                      if not self._differences(i, new) and self._headers_match(e, headers or {})]
        if not candidates:
            return None
        unused = [i for i in candidates if i not in self._used]
        chosen = unused[0] if unused else candidates[-1]
        self._used.add(chosen)
        return chosen

    def _headers_match(self, exchange: Exchange, headers: dict[str, str]) -> bool:
        lowered = {k.lower(): v for k, v in headers.items()}
        for name in self.matchers:
            if name.startswith("header:"):
                header = name.partition(":")[2]
                recorded = exchange.header(header, response=False)
                if recorded != PLACEHOLDER and recorded != lowered.get(header.lower()):
                    return False
        return True

    def miss_report(self, new: Incoming) -> dict[str, Any]:
        """What a miss answers: the request, the closest recording and what differs from it."""
        report: dict[str, Any] = {"error": "no recorded exchange matches this request", "request": new.label(),
                                  "matchers": list(self.matchers)}
        if not self.exchanges:
            return report
        def closeness(i: int) -> tuple[int, float]:
            return (-len(self._differences(i, new)),
                    difflib.SequenceMatcher(None, self.exchanges[i].label(), new.label()).ratio())
        best = max(range(len(self.exchanges)), key=closeness)
        report["closest"] = {"index": best, "request": self.exchanges[best].label(),
                             "differs_in": self._differences(best, new)}
        return report
