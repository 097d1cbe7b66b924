"""The per-device parity file: which headers to compare, volatile fields to ignore, known differences, and how
to put a fresh emulator's credentials where the cassette has ``<redacted>``.

Field paths are dotted (``detail.0.msg``); a segment may hold ``*`` wildcards and ``**`` spans any number of
segments. Request patterns are globs on an exchange's label (``GET /api/v1/bot/*``).
"""

from __future__ import annotations

import base64
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PARITY_DIR = Path(__file__).resolve().parents[2] / "contracts" / "parity"
DEFAULT_HEADERS = ("Content-Type", "Allow", "Location", "Retry-After", "WWW-Authenticate")


def path_matches(pattern: str, path: str) -> bool:
    return _segments_match(pattern.split(".") if pattern else [], path.split(".") if path else [])


def _segments_match(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_segments_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], pattern[0]) and _segments_match(pattern[1:], path[1:])


@dataclass
class Rule:
    """A field (``path``) or a difference (``where``) in the exchanges whose label matches ``request``."""

    pattern: str
    request: str = "*"
    why: str = ""

    def applies(self, label: str) -> bool:
        return fnmatch.fnmatchcase(label, self.request)


@dataclass
class ParityRules:
    headers: tuple[str, ...] = DEFAULT_HEADERS
    ignore: list[Rule] = field(default_factory=list)
    known: list[Rule] = field(default_factory=list)
    credentials: dict[str, str] = field(default_factory=dict)  # header -> template over the emulator's credentials
    ws_count_tolerance: float = 0.0  # fraction of device messages a live stream may differ by
    dial_out_fields: list[str] = field(default_factory=list)  # body paths that carry a receiver URL
    source: str = ""

    def ignored(self, label: str, path: str) -> Rule | None:
        return next((r for r in self.ignore if r.applies(label) and path_matches(r.pattern, path)), None)

    def explanation(self, label: str, where: str) -> Rule | None:
        return next((r for r in self.known if r.applies(label) and fnmatch.fnmatchcase(where, r.pattern)), None)

    def credential_headers(self, credentials: dict[str, Any]) -> dict[str, str]:
        values = {k: str(v) for k, v in credentials.items()}
        if "project" in values and "token" in values:
            values["basic"] = base64.b64encode(f"{values['project']}:{values['token']}".encode()).decode()
        out = {}
        for header, template in self.credentials.items():
            try:
                out[header] = template.format(**values)
            except KeyError as exc:
                raise ValueError(f"{self.source}: credentials.{header} names {exc}, which this emulator does not "
                                 f"have; it has {', '.join(values) or 'none'}") from None
        return out


def _rules(items: Any, key: str, source: str) -> list[Rule]:
    rules = []
    for n, item in enumerate(items or []):
        if isinstance(item, str):
            rules.append(Rule(item))
        elif isinstance(item, dict) and isinstance(item.get(key), str):
            rules.append(Rule(item[key], str(item.get("request", "*")), str(item.get("why", ""))))
        else:
            raise ValueError(f"{source}: {'ignore' if key == 'path' else 'known'}[{n}] must be a string or a mapping "
                             f"with '{key}' (and optional 'request', 'why')")
    return rules


def load_rules(device: str, extra: str | Path | None = None) -> ParityRules:
    """The device's parity file (contracts/parity/<device>.yaml) plus an optional --ignore file on top."""
    rules = ParityRules(source=f"parity/{device}.yaml")
    for path in (PARITY_DIR / f"{device}.yaml", Path(extra) if extra else None):
        if path is None or not path.exists():
            if path is not None and extra is not None and path == Path(extra):
                raise FileNotFoundError(f"--ignore {extra}: no such file")
            continue
        document = yaml.safe_load(path.read_text()) or {}
        if not isinstance(document, dict):
            raise ValueError(f"{path.name}: expected a mapping at the top level")
        source = path.name
        if "headers" in document:
            rules.headers = tuple(str(h) for h in document["headers"])
        rules.ignore += _rules(document.get("ignore"), "path", source)
        rules.known += _rules(document.get("known"), "where", source)
        rules.credentials.update({str(k): str(v) for k, v in (document.get("credentials") or {}).items()})
        rules.ws_count_tolerance = float(document.get("ws_count_tolerance", rules.ws_count_tolerance))
        rules.dial_out_fields += [str(f) for f in document.get("dial_out_fields") or []]
    return rules
