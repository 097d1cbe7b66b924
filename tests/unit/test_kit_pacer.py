"""The pacer keeps absolute deadlines, measures lateness and skips ticks it cannot make."""

from __future__ import annotations

import asyncio
import threading
import time

from emulators.kit.pacer import LatenessStats, Pacer


async def test_deadlines_are_absolute_so_jitter_does_not_accumulate() -> None:
    pacer = Pacer(0.01)
    start = time.monotonic()
    async for tick in pacer.ticks(start=start):
        assert abs(tick.deadline - (start + tick.index * 0.01)) < 1e-9
        if tick.index == 30:
            break
    # 30 periods of 10 ms: an accumulating sleep(period) loop would drift by the sum of every wake-up delay.
    assert time.monotonic() - start < 0.30 + 0.1
    assert pacer.stats.ticks == 31
    assert pacer.stats.skipped == 0


async def test_lateness_is_measured_when_the_loop_is_busy() -> None:
    pacer = Pacer(0.02, skip_after=0.1)
    async for tick in pacer.ticks():
        if tick.index == 2:
            time.sleep(0.03)  # noqa: ASYNC251 - block the loop on purpose: the next tick is late but still sent
        if tick.index == 4:
            break
    assert pacer.stats.max_s >= 0.008
    assert pacer.stats.skipped == 0


async def test_ticks_more_than_a_period_late_are_skipped_and_counted() -> None:
    pacer = Pacer(0.01)
    indexes = []
    async for tick in pacer.ticks():
        indexes.append(tick.index)
        if tick.index == 1:
            time.sleep(0.055)  # noqa: ASYNC251 - miss about five deadlines on purpose
        if len(indexes) == 4:
            break
    assert pacer.stats.skipped >= 4
    assert indexes[2] - indexes[1] >= 5


async def test_lateness_stays_low_under_cpu_load_from_another_thread() -> None:
    stop = threading.Event()

    def burn() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    worker = threading.Thread(target=burn)
    worker.start()
    last = 0
    try:
        pacer = Pacer(0.005)
        async for tick in pacer.ticks():
            last = tick.index
            if tick.index >= 100:  # skipped ticks may jump past 100
                break
    finally:
        stop.set()
        worker.join()
    # Every deadline is accounted for: sent or counted as skipped, never silently lost.
    assert pacer.stats.ticks + pacer.stats.skipped == last + 1
    # Generous: the GIL switch interval is 5 ms; a sleep(period) loop would drift without bound instead.
    assert pacer.stats.percentile_ms(50) < 50


def test_stats_report_percentiles_in_milliseconds() -> None:
    stats = LatenessStats()
    for i in range(100):
        stats.record(i / 1000.0)
    d = stats.as_dict()
    assert d["ticks"] == 100
    assert 48 <= d["lateness_p50_ms"] <= 51
    assert 97 <= d["lateness_p99_ms"] <= 99
    assert d["lateness_max_ms"] == 99.0


async def test_a_cancelled_pacer_stops_at_once() -> None:
    ticking = asyncio.Event()

    async def run() -> None:
        async for _ in Pacer(10.0).ticks():
            ticking.set()

    task = asyncio.create_task(run())
    await asyncio.wait_for(ticking.wait(), 5)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1)
    assert task in done


def test_lateness_keeps_the_newest_window_in_one_preallocated_array() -> None:
    stats = LatenessStats(window=5)
    for n in range(8):
        stats.record(n / 1000)
    assert stats.samples() == [0.003, 0.004, 0.005, 0.006, 0.007] and stats.ticks == 8
    ring = stats._ring
    for _ in range(100):
        stats.record(0.001)
    assert stats._ring is ring and ring.nbytes == 5 * 8  # no growth however long the stream runs
    merged = LatenessStats(window=5)
    merged.record(0.1)
    merged.merge(stats)
    assert merged.samples() == [0.001] * 5 and merged.ticks == 109 and merged.max_s == 0.1
