"""Clocks: wall time for stamps and payloads, monotonic time for pacing, and a time scale for lifecycles."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

# Lifecycle timings (a bot joining, a pipeline restart) are multiplied by this unless configured; 1.0 = real speed.
DEFAULT_TIME_SCALE = 0.05


@dataclass
class Clock:
    """The emulator's clock.

    ``time_scale`` multiplies lifecycle timings (a bot joining a call, a pipeline restart) so CI
    runs fast and a realistic profile runs at real speed. Media pacing never scales: 30 fps is 30 fps.
    """

    time_scale: float = 1.0

    def now(self) -> float:
        """Wall-clock Unix time in seconds."""
        return time.time()

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def monotonic(self) -> float:
        return time.monotonic()

    def scaled(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_scale)

    async def sleep_scaled(self, seconds: float) -> None:
        """Sleep a lifecycle delay, multiplied by the time scale."""
        await asyncio.sleep(self.scaled(seconds))


class ManualClock(Clock):
    """A clock tests move by hand; models take ``now`` from it."""

    def __init__(self, start: float = 1_700_000_000.0, time_scale: float = 1.0) -> None:
        super().__init__(time_scale=time_scale)
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def now_ms(self) -> int:
        return int(self._now * 1000)

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds
