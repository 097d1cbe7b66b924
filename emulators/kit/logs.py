"""Logging setup for the CLI: one readable line per significant event, or JSON lines for machines."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from emulators.kit.redact import redact_text


class _Readable(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        device = getattr(record, "device", None) or record.name.removeprefix("benchtwin.")
        line = f"{stamp} {record.levelname.lower():7} {device:10} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact_text(line)  # any URL a library logs may carry credentials


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("device", "event", "detail"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(out, default=str))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record is emitted, not as it was when logging was set up: a host
    that swaps it (pytest's capture, a test running the CLI in-process) may close the old one while emulator
    threads still log."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current sys.stderr


def setup_logging(level: str = "info", *, as_json: bool = False) -> None:
    handler = _StderrHandler()
    handler.setFormatter(_Json() if as_json else _Readable())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's own access log duplicates the event log; keep its errors only.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
