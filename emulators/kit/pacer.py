"""Absolute-deadline pacing for media senders, with lateness statistics.

Deadlines are ``start + n * period``, never ``sleep(period)`` in a loop, so jitter does not accumulate.
When the sender falls more than one period behind, the missed ticks are skipped and counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass
class LatenessStats:
    """Lateness of each tick (seconds after its deadline), over a bounded window of recent ticks.

    The window is one preallocated array used as a ring: a long run's memory stays flat from the first tick
    (a deque of Python floats grew by ~300 KB per stream until it filled, which a soak reads as a leak). It is
    allocated at the first tick, so numpy is imported by the first stream, not when an emulator starts.
    """

    window: int = 10_000
    ticks: int = 0
    skipped: int = 0
    max_s: float = 0.0
    _ring: np.ndarray | None = field(default=None, repr=False)
    _filled: int = 0
    _next: int = 0  # where the next value goes

    def record(self, lateness_s: float) -> None:
        if self._ring is None or self._ring.size != self.window:
            import numpy as np

            self._ring = np.zeros(self.window)
        self._ring[self._next] = lateness_s
        self._next = (self._next + 1) % self.window
        self.ticks += 1
        self._filled = min(self._filled + 1, self.window)
        self.max_s = max(self.max_s, lateness_s)

    def percentile_ms(self, q: float) -> float:
        if not self._filled or self._ring is None:
            return 0.0
        import numpy as np

        return float(np.percentile(self._ring[: self._filled], q)) * 1000.0

    def merge(self, other: LatenessStats) -> None:
        recent = other.samples()
        skipped, max_s = self.skipped + other.skipped, max(self.max_s, other.max_s)
        for lateness in recent[-self.window :]:
            self.record(lateness)
        # Ticks the other counted beyond the samples it still held are counted, not replayed.
        self.ticks += other.ticks - min(len(recent), self.window)
        self.skipped, self.max_s = skipped, max_s

    def samples(self) -> list[float]:
        """The recent lateness values, oldest first."""
        if self._ring is None:
            return []
        if self._filled < self.window:
            return [float(v) for v in self._ring[: self._filled]]
        import numpy as np

        start = self._next
        return [float(v) for v in np.concatenate((self._ring[start:], self._ring[:start]))]

    def as_dict(self) -> dict[str, float | int]:
        return {
            "ticks": self.ticks,
            "skipped": self.skipped,
            "lateness_p50_ms": round(self.percentile_ms(50), 3),
            "lateness_p99_ms": round(self.percentile_ms(99), 3),
            "lateness_max_ms": round(self.max_s * 1000.0, 3),
        }


@dataclass(frozen=True)
class Tick:
    index: int
    deadline: float  # monotonic seconds
    lateness: float  # seconds after the deadline when the sender woke


class Pacer:
    """Yields ticks at ``start + index * period``; late ticks are measured, hopeless ones skipped."""

    def __init__(
        self,
        period: float,
        *,
        stats: LatenessStats | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        skip_after: float | None = None,
    ) -> None:
        if period <= 0:
            raise ValueError(f"period must be positive, got {period}")
        self.period = period
        self.stats = stats if stats is not None else LatenessStats()
        self._monotonic = monotonic
        # A tick later than this is skipped rather than sent; default: one full period.
        self.skip_after = period if skip_after is None else skip_after
        self.start: float | None = None

    def deadline(self, index: int) -> float:
        assert self.start is not None
        return self.start + index * self.period

    async def ticks(self, start: float | None = None) -> AsyncIterator[Tick]:
        self.start = self._monotonic() if start is None else start
        index = 0
        while True:
            deadline = self.deadline(index)
            delay = deadline - self._monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness = self._monotonic() - deadline
            if lateness > self.skip_after:
                # Catch up: skip every tick whose deadline has passed by more than skip_after.
                behind = int(lateness // self.period)
                self.stats.skipped += behind
                index += behind
                deadline = self.deadline(index)
                lateness = max(0.0, self._monotonic() - deadline)
            self.stats.record(max(0.0, lateness))
            yield Tick(index=index, deadline=deadline, lateness=lateness)
            index += 1
