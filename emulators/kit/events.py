"""A bounded log of what an emulator received and sent, served by the control plane."""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("benchtwin.events")

# Kinds that are worth a log line of their own; request/message traffic stays in the event log only.
_SIGNIFICANT = {
    "emulator.ready",
    "client.connected",
    "client.disconnected",
    "stream.started",
    "stream.stopped",
    "stream.error",
    "fault.applied",
    "outbound.retry",
    "outbound.failed",
    "outbound.connected",
    "scenario",
    "reset",
}


_SIGNIFICANT_PREFIXES = {"stream", "client", "fault", "outbound"}


@dataclass(frozen=True)
class Event:
    id: int
    time: float
    kind: str
    device: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "time": self.time, "kind": self.kind, "device": self.device, "detail": self.detail}


class EventLog:
    """Keeps the newest ``capacity`` events; significant kinds also go to the logger."""

    def __init__(self, device: str, capacity: int = 2000) -> None:
        self.device = device
        self._events: deque[Event] = deque(maxlen=capacity)
        self._ids = itertools.count(1)

    def record(self, kind: str, **detail: Any) -> Event:
        event = Event(id=next(self._ids), time=time.time(), kind=kind, device=self.device, detail=detail)
        self._events.append(event)
        if (kind in _SIGNIFICANT or kind.split(".", 1)[0] in _SIGNIFICANT_PREFIXES) and log.isEnabledFor(logging.INFO):
            log.info("%s %s", kind, _describe(detail), extra={"device": self.device, "event": kind, "detail": detail})
        return event

    def query(self, kind: str | None = None, since: int = 0, limit: int = 500) -> list[Event]:
        """Events newer than ``since``; ``kind`` matches exactly or as a dotted prefix (``stream``)."""
        out = [
            e
            for e in self._events
            if e.id > since and (kind is None or e.kind == kind or e.kind.startswith(kind + "."))
        ]
        return out[-limit:] if limit else out

    def clear(self) -> None:
        self._events.clear()

    def __len__(self) -> int:
        return len(self._events)


def _describe(detail: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in detail.items())
