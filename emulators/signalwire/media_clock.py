"""The shared 20 ms media clock: one absolute-deadline pacer that wakes every conference stream."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Protocol

from clients.signalwire_media import CHUNK_MS
from emulators.kit.pacer import LatenessStats, Pacer


class Listener(Protocol):
    """A stream the clock drives; every tick it is asked whether a send has been blocked too long."""

    def check_backlog(self, now: float) -> None: ...


class MediaClock:
    """One absolute-deadline 20 ms clock for every stream; tick indices are global and never reused.

    It runs only while some stream listens, and on resuming it realigns to the original grid, so a
    conference's media time (ticks since it started) keeps meaning the same thing.
    """

    def __init__(self, stats: LatenessStats, *, monotonic: Callable[[], float], speedup: float = 1.0,
                 on_tick: Callable[[int], None]) -> None:
        self.period = CHUNK_MS / 1000 / speedup
        self.stats = stats
        self.monotonic = monotonic
        self.on_tick = on_tick
        self.origin = monotonic()
        self.tick = -1
        self._ticked = asyncio.Event()
        self._wanted = asyncio.Event()
        self._listeners: set[Listener] = set()

    def current_index(self) -> int:
        """The index of the tick whose deadline most recently passed."""
        return math.floor((self.monotonic() - self.origin) / self.period)

    def deadline(self, index: int) -> float:
        return self.origin + index * self.period

    def listen(self, stream: Listener) -> None:
        """Run while ``stream`` listens, and call its ``check_backlog(now)`` every tick until ``unlisten``."""
        self._listeners.add(stream)
        self._wanted.set()

    def unlisten(self, stream: Listener) -> None:
        self._listeners.discard(stream)

    def wake(self) -> None:
        """Wake every waiting stream now (a stop request should not wait for the next tick)."""
        ticked, self._ticked = self._ticked, asyncio.Event()
        ticked.set()

    async def wait_after(self, index: int) -> int:
        """The newest tick index once it is greater than ``index`` (or earlier, after ``wake``)."""
        if self.tick <= index:
            await self._ticked.wait()
        return self.tick

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            first = max(self.tick + 1, self.current_index() + 1)
            # Late ticks are never skipped: a stream owes every chunk, so skip_after is unbounded here.
            pacer = Pacer(self.period, stats=self.stats, skip_after=math.inf, monotonic=self.monotonic)
            async for tick in pacer.ticks(start=self.deadline(first)):
                self.tick = first + tick.index
                self.on_tick(self.tick)
                self.wake()
                if self._listeners:
                    now = self.monotonic()
                    for stream in list(self._listeners):
                        stream.check_backlog(now)
                else:
                    self._wanted.clear()
                    break
