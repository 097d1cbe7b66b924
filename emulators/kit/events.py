"""A bounded log of what an emulator received and sent, served by the control plane.

Bounded twice: by count and by bytes (details are cut and their secrets masked before they are kept)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulators.kit.redact import bounded

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


EventPredicate = Callable[[Event], bool]


@dataclass
class _Waiter:
    kind: str
    predicate: EventPredicate | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Event]

    def wants(self, event: Event) -> bool:
        return _kind_matches(event.kind, self.kind) and (self.predicate is None or self.predicate(event))


EVENT_LOG_CAPACITY = 2000  # events each emulator keeps by default (the `event_log_capacity` configuration key)


class EventLog:
    """Keeps the newest ``capacity`` events within ``max_bytes`` (their details' JSON size); significant kinds also
    go to the logger.

    Events may be recorded from worker threads; ``wait_for`` wakes its waiter on the waiter's own loop.
    """

    def __init__(self, device: str, capacity: int = EVENT_LOG_CAPACITY, max_bytes: int = 4 * 1024**2) -> None:
        self.device = device
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0
        self._sizes: deque[int] = deque()
        self._events: deque[Event] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []
        # Every event ever recorded, by (kind, action): what /metrics counts (a reset or trim keeps it).
        self._totals: Counter[tuple[str, str]] = Counter()

    def record(self, kind: str, **detail: Any) -> Event:
        detail = bounded(detail)
        size = len(kind) + len(json.dumps(detail, default=str))
        with self._lock:
            event = Event(id=next(self._ids), time=time.time(), kind=kind, device=self.device, detail=detail)
            self._events.append(event)
            self._totals[(kind, str(detail.get("action", "")) if kind == "fault.applied" else "")] += 1
            self._sizes.append(size)
            self.bytes += size
            while len(self._events) > self.capacity or (self.bytes > self.max_bytes and len(self._events) > 1):
                self._events.popleft()
                self.bytes -= self._sizes.popleft()
            woken = [w for w in self._waiters if w.wants(event)]
            for waiter in woken:
                self._waiters.remove(waiter)
        for waiter in woken:
            waiter.loop.call_soon_threadsafe(_resolve, waiter.future, event)
        if (kind in _SIGNIFICANT or kind.split(".", 1)[0] in _SIGNIFICANT_PREFIXES) and log.isEnabledFor(logging.INFO):
            log.info("%s %s", kind, _describe(detail), extra={"device": self.device, "event": kind, "detail": detail})
        return event

    def fill(self) -> dict[str, int]:
        """How full the log is: events and their details' bytes, against the two bounds."""
        with self._lock:
            return {"events": len(self._events), "capacity": self.capacity, "bytes": self.bytes,
                    "max_bytes": self.max_bytes}

    def totals(self) -> Counter[tuple[str, str]]:
        """How many events of each (kind, fault action) were ever recorded."""
        with self._lock:
            return self._totals.copy()

    def query(self, kind: str | None = None, since: int = 0, limit: int = 500) -> list[Event]:
        """Events newer than ``since``; ``kind`` matches exactly or as a dotted prefix (``stream``)."""
        with self._lock:
            out = [e for e in self._events if e.id > since and (kind is None or _kind_matches(e.kind, kind))]
        return out[-limit:] if limit else out

    # The timeout is a parameter (not the caller's asyncio.timeout) because its error names the kinds seen.
    async def wait_for(
        self, kind: str, predicate: EventPredicate | None = None, *, timeout: float = 10.0,  # noqa: ASYNC109
        since: int = 0,
    ) -> Event:
        """The first event (newer than ``since``, already logged or still to come) of ``kind`` (exact or dotted
        prefix) that satisfies ``predicate``; TimeoutError naming the kinds seen meanwhile otherwise."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(kind, predicate, loop, loop.create_future())
        with self._lock:
            for event in self._events:
                if event.id > since and waiter.wants(event):
                    return event
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter.future
        except TimeoutError:
            seen = sorted({e.kind for e in self.query(since=since, limit=0)})
            raise TimeoutError(
                f"{self.device}: no {kind!r} event{' matching the predicate' if predicate else ''} within "
                f"{timeout} s; kinds seen: {', '.join(seen) or 'none'}"
            ) from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 when empty): pass it as ``since`` to wait only for what follows."""
        with self._lock:
            return self._events[-1].id if self._events else 0

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._sizes.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._events)


def _kind_matches(kind: str, wanted: str) -> bool:
    return kind == wanted or kind.startswith(wanted + ".")


def _resolve(future: asyncio.Future[Event], event: Event) -> None:
    if not future.done():
        future.set_result(event)


def _describe(detail: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in detail.items())
