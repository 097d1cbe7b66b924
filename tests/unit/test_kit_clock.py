"""The kit clock: wall and monotonic time, lifecycle delays scaled, and a manual clock tests move by hand."""

from __future__ import annotations

from emulators.kit.clock import DEFAULT_TIME_SCALE, Clock, ManualClock


def test_a_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(start=1_000.0)
    assert (clock.now(), clock.monotonic(), clock.now_ms()) == (1_000.0, 0.0, 1_000_000)
    clock.advance(2.5)
    assert (clock.now(), clock.monotonic(), clock.now_ms()) == (1_002.5, 2.5, 1_002_500)


def test_lifecycle_delays_are_scaled_and_never_negative() -> None:
    assert Clock(time_scale=0.5).scaled(4.0) == 2.0
    assert Clock(time_scale=0.5).scaled(-1.0) == 0.0
    assert Clock().scaled(3.0) == 3.0
    assert 0 < DEFAULT_TIME_SCALE <= 1
