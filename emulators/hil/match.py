"""Which recorded exchange answers a new request: matchers applied in order, and the closest miss named."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
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
    if isinstance(recorded, list) and isinstance(new, list):
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
    return body


def differences(recorded: Exchange, new: Incoming, matchers: Sequence[str]) -> list[str]:
    """The matchers that fail, in order (empty = a match)."""
    failed = []
    for name in matchers:
        if name == "method":
            ok = recorded.method.upper() == new.method.upper() and recorded.is_websocket == new.websocket
        elif name == "path":
            ok = recorded.path == new.path
        elif name == "query":
            ok = _same_value(sorted(map(list, recorded.query)), sorted(map(list, new.query)))
        elif name == "body":
            ok = _same_value(_parsed_body(recorded.request_body, recorded.header("Content-Type", response=False) or ""),
                             _parsed_body(new.body, new.content_type))
        else:
            continue  # header matchers are checked by the caller, which has the headers
        if not ok:
            failed.append(name)
    return failed


class ExchangeMatcher:
    """Serves repeated identical requests from successive recordings, then keeps answering with the last."""

    def __init__(self, exchanges: Sequence[Exchange], matchers: Sequence[str] = MATCHERS) -> None:
        self.exchanges = list(exchanges)
        self.matchers = tuple(matchers)
        self._used: set[int] = set()

    def find(self, new: Incoming, headers: dict[str, str] | None = None) -> int | None:
        candidates = [i for i, e in enumerate(self.exchanges)
                      if not differences(e, new, self.matchers) and self._headers_match(e, headers or {})]
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
        def closeness(e: Exchange) -> tuple[int, float]:
            return (-len(differences(e, new, self.matchers)),
                    difflib.SequenceMatcher(None, e.label(), new.label()).ratio())
        best = max(range(len(self.exchanges)), key=lambda i: closeness(self.exchanges[i]))
        report["closest"] = {"index": best, "request": self.exchanges[best].label(),
                             "differs_in": differences(self.exchanges[best], new, self.matchers)}
        return report
