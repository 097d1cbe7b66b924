"""The ramp that finds a limit: geometric growth while steps hold, bisection between the largest sustained
and the first failing load, bounded by a ceiling and a time budget."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from emulators.bench.ramp import RampOutcome, RampPlan, RampPlanner, reasons, run_ramp, scaling_target


def drive(plan: RampPlan, limit: int, *, flaky: set[int] | None = None) -> RampPlanner:
    """Run a planner against a system that holds every load up to ``limit`` (except the ``flaky`` ones)."""
    planner = RampPlanner(plan)
    while (load := planner.next_load(0.0)) is not None:
        held = load <= limit and load not in (flaky or set())
        planner.record(load, held, None if held else f"{load} is too many")
    return planner


def test_the_ramp_grows_geometrically_then_bisects_to_the_limit() -> None:
    planner = drive(RampPlan(start=100, factor=1.5, ceiling=5000, budget_s=60), limit=640)
    assert planner.tried[:5] == [100, 150, 225, 338, 507]
    assert planner.tried[5] == 761  # the first failing step
    assert planner.sustained <= 640 < planner.failing  # type: ignore[operator]
    assert planner.failing - planner.sustained <= max(1, round(planner.sustained * 0.05))  # type: ignore[operator]
    assert planner.stopped_by == "limit found"
    assert planner.failed_because == f"{planner.failing} is too many"


def test_a_first_step_that_fails_bisects_downwards() -> None:
    planner = drive(RampPlan(start=64, factor=2, ceiling=1000, budget_s=60), limit=5)
    assert planner.tried[0] == 64
    assert planner.sustained == 5 and planner.failing == 6


def test_a_system_that_holds_everything_stops_at_the_ceiling() -> None:
    planner = drive(RampPlan(start=10, factor=2, ceiling=50, budget_s=60), limit=10_000)
    assert planner.tried == [10, 20, 40, 50]
    assert planner.sustained == 50 and planner.failing is None and planner.stopped_by == "ceiling"


def test_a_scaling_held_back_by_the_ramps_ceiling_is_a_lower_bound_not_a_miss() -> None:
    plan = RampPlan(start=100, factor=1.6, ceiling=1001, budget_s=60)

    def outcome(sustained: int, stopped_by: str) -> RampOutcome:
        return RampOutcome(plan, [], sustained, None, None, stopped_by, 1.0)

    one = outcome(700, "limit found")
    short = scaling_target(one, outcome(1001, "ceiling"), 2)
    assert short["met"] is None and "at least 1.43" in short["why"]
    assert scaling_target(one, outcome(1260, "ceiling"), 2)["met"] is True
    assert scaling_target(one, outcome(1001, "limit found"), 2)["met"] is False


def test_a_higher_load_that_holds_clears_an_earlier_failure() -> None:
    planner = RampPlanner(RampPlan(start=10, factor=2, ceiling=100, budget_s=60))
    planner.record(20, False, "a hiccup")
    planner.record(40, True)
    assert planner.failing is None and planner.sustained == 40


def test_no_step_starts_after_the_time_budget() -> None:
    planner = RampPlanner(RampPlan(start=10, factor=2, ceiling=100, budget_s=5))
    assert planner.next_load(0.0) == 10
    planner.record(10, True)
    assert planner.next_load(5.0) is None and planner.stopped_by == "time budget"


@pytest.mark.parametrize("plan", [dict(start=0, factor=2, ceiling=10, budget_s=1),
                                  dict(start=1, factor=1.0, ceiling=10, budget_s=1),
                                  dict(start=20, factor=2, ceiling=10, budget_s=1)])
def test_a_plan_that_cannot_ramp_is_refused(plan: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not a ramp"):
        RampPlan(**plan)


def test_run_ramp_keeps_every_step_with_its_phase_and_what_failed() -> None:
    async def probe(load: int) -> dict[str, Any]:
        failed = reasons([(load > 30, f"p99 lateness at {load}"), (load > 35, "chunks missing")])
        return {"streams": load, "sustained": failed is None, **({"reason": failed} if failed else {})}

    outcome = asyncio.run(run_ramp(RampPlan(start=10, factor=2, ceiling=100, budget_s=60, resolution=0), probe))
    assert [s["phase"] for s in outcome.steps[:3]] == ["ramp", "ramp", "ramp"]
    assert outcome.steps[2] == {"streams": 40, "sustained": False, "phase": "ramp",
                                "reason": "p99 lateness at 40; chunks missing"}
    assert {s["phase"] for s in outcome.steps[3:]} == {"bisect"}
    assert (outcome.sustained, outcome.first_failing) == (30, 31)
    assert outcome.failed_because == "p99 lateness at 31"
    assert outcome.best_step("streams")["streams"] == 30
    assert outcome.figures()["ramp_stopped_by"] == "limit found"
