"""Ramps that find the limit: grow the load geometrically while each step is sustained, then bisect between
the largest sustained step and the first failing one, within a time budget.

`RampPlanner` decides (no I/O, no clock of its own: the caller passes the elapsed time), `run_ramp` drives a
scenario's probe with it. A probe sets the load to N (adding or removing streams as it needs) and measures one
window; it returns the step's figures with ``sustained`` and, when not sustained, ``reason``: what failed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Probe = Callable[[int], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class RampPlan:
    start: int  # the first load tried
    factor: float  # the next load while every step is sustained: ceil(load x factor)
    ceiling: int  # the largest load ever tried (what the load generator or the machine can offer)
    budget_s: float  # no step starts after this many seconds; the figures so far stand
    resolution: float = 0.05  # bisect until first failing - largest sustained <= this share of the sustained load

    def __post_init__(self) -> None:
        if self.start < 1 or self.factor <= 1.0 or self.ceiling < self.start or self.budget_s <= 0:
            raise ValueError(f"not a ramp: {self}")

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "factor": self.factor, "ceiling": self.ceiling, "budget_s": self.budget_s,
                "resolution": self.resolution}


@dataclass
class RampPlanner:
    """The next load to try, from what each step showed. ``sustained`` is the largest sustained load so far and
    ``failing`` the smallest failing one; the limit lies between them."""

    plan: RampPlan
    sustained: int = 0
    failing: int | None = None
    failed_because: str | None = None
    stopped_by: str | None = None
    tried: list[int] = field(default_factory=list)

    def next_load(self, elapsed_s: float) -> int | None:
        """The load of the next step, or None when the ramp is over (``stopped_by`` says why)."""
        if self.stopped_by is not None:
            return None
        if elapsed_s >= self.plan.budget_s:
            self.stopped_by = "time budget"
            return None
        if self.failing is None:
            if not self.tried:
                return self._try(self.plan.start)
            if self.sustained >= self.plan.ceiling:
                self.stopped_by = "ceiling"
                return None
            grown = max(self.sustained + 1, math.ceil(self.sustained * self.plan.factor))
            return self._try(min(grown, self.plan.ceiling))
        gap = self.failing - self.sustained
        if gap <= max(1, math.ceil(self.sustained * self.plan.resolution)):
            self.stopped_by = "limit found"
            return None
        return self._try(self.sustained + gap // 2)

    def record(self, load: int, sustained: bool, reason: str | None = None) -> None:
        if sustained:
            self.sustained = max(self.sustained, load)
            # A load above a failing one held this time: the failure was not the limit; look further up.
            if self.failing is not None and load >= self.failing:
                self.failing, self.failed_because = None, None
        elif self.failing is None or load <= self.failing:
            self.failing, self.failed_because = load, reason or "not sustained"

    def _try(self, load: int) -> int:
        self.tried.append(load)
        return load


@dataclass
class RampOutcome:
    plan: RampPlan
    steps: list[dict[str, Any]]  # in the order they ran, each marked with its phase
    sustained: int
    first_failing: int | None
    failed_because: str | None
    stopped_by: str
    elapsed_s: float

    @property
    def at_ceiling(self) -> bool:
        """Every load up to the plan's ceiling held: the limit lies above it."""
        return self.stopped_by == "ceiling"

    def best_step(self, load_key: str) -> dict[str, Any]:
        """The step that ran at the largest sustained load (the first step when none held)."""
        held = [s for s in self.steps if s.get("sustained") and s.get(load_key) == self.sustained]
        return held[-1] if held else (self.steps[0] if self.steps else {})

    def figures(self) -> dict[str, Any]:
        return {"first_failing_step": self.first_failing, "failed_because": self.failed_because,
                "ramp_stopped_by": self.stopped_by, "ramp_steps": len(self.steps), "ramp_s": round(self.elapsed_s, 1),
                "ramp": self.plan.as_dict()}


async def run_ramp(plan: RampPlan, probe: Probe, *, clock: Callable[[], float] = time.monotonic,
                   progress: Callable[[str], None] | None = None) -> RampOutcome:
    """Probe loads chosen by a RampPlanner until it stops; every step's figures are kept."""
    planner = RampPlanner(plan)
    started = clock()
    steps: list[dict[str, Any]] = []
    while (load := planner.next_load(clock() - started)) is not None:
        phase = "bisect" if planner.failing is not None else "ramp"
        step = await probe(load)
        sustained = bool(step.get("sustained"))
        planner.record(load, sustained, step.get("reason"))
        steps.append({**step, "phase": phase})
        if progress is not None:
            verdict = "sustained" if sustained else f"failed: {step.get('reason', 'not sustained')}"
            progress(f"{phase} {load}: {verdict}")
    return RampOutcome(plan, steps, planner.sustained, planner.failing, planner.failed_because,
                       planner.stopped_by or "limit found", clock() - started)


SATURATED_CORES = 0.9  # an emulator process this busy over a window was bound by its one event loop


def reasons(checks: list[tuple[bool, str]], cpu_cores: float | None = None) -> str | None:
    """What failed, in words, from (failed?, description) pairs, and whether the emulator's CPU was saturated
    meanwhile; None when nothing failed."""
    failed = [text for bad, text in checks if bad]
    if not failed:
        return None
    if cpu_cores is not None and cpu_cores >= SATURATED_CORES:
        failed.append(f"emulator CPU {cpu_cores:.2f} cores: its event loop was saturated")
    return "; ".join(failed)


TARGET_SCALING = 1.7  # the target for N processes against one, on 2 cores


def scaling(one: RampOutcome, many: RampOutcome | None) -> float | None:
    """Largest sustained load with one process per core over the one with a single process; None when there is
    one core, or nothing held in one process."""
    if many is None or not one.sustained:
        return None
    return round(many.sustained / one.sustained, 3)


def scaling_target(one: RampOutcome, many: RampOutcome | None, processes: int) -> dict[str, Any]:
    """The scaling target as the table and the JSON show it. When the N-process ramp held at its ceiling the
    scaling is only a lower bound: short of the target, it is not judged."""
    from emulators.bench.table import target

    rule = f">= {TARGET_SCALING} with {processes} processes"
    value = scaling(one, many)
    if value is None:
        return target(rule, None, "one core, or nothing held in one process")
    if many is not None and many.at_ceiling and value < TARGET_SCALING:
        return target(rule, None, f"at least {value}: the {processes}-process ramp held at its ceiling")
    return target(rule, value >= TARGET_SCALING)
