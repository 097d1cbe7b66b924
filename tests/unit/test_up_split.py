"""`benchtwin up --processes N` deals its emulators so that every process has about the same start-up work, and
starts them without the garbage collector walking start-up objects."""

from __future__ import annotations

from emulators.fleet import Member
from emulators.up import split

COSTS = {"misty": (200.0, 10.0), "depthcam": (120.0, 10.0), "recall": (110.0, 10.0), "signalwire": (40.0, 5.0),
         "videodb": (70.0, 5.0)}


def cost(device: str) -> tuple[float, float]:
    return COSTS[device]


def load(group: list[Member]) -> float:
    devices = {m.device for m in group}
    return sum(COSTS[d][0] for d in devices) + sum(COSTS[m.device][1] for m in group)


def test_every_member_goes_to_one_process_in_the_fleets_order() -> None:
    members = [Member(d) for d in COSTS] + [Member("misty", i, 4) for i in range(4)]
    groups = split(members, 3, cost)
    dealt = [m for g in groups for m in g]
    assert sorted(map(id, dealt)) == sorted(map(id, members))
    for group in groups:
        assert group == sorted(group, key=members.index)


def test_the_five_devices_are_split_by_their_start_cost_not_round_robin() -> None:
    groups = split([Member(d) for d in COSTS], 2, cost)
    loads = sorted(load(g) for g in groups)
    # Round-robin would put misty, recall and videodb together (410 ms against 180 ms).
    assert loads[1] - loads[0] <= max(c[0] + c[1] for c in COSTS.values()) / 2


def test_a_fleet_spreads_evenly_over_the_processes() -> None:
    groups = split([Member("misty", i, 50) for i in range(50)], 2, cost)
    assert sorted(len(g) for g in groups) == [25, 25]


def test_never_more_groups_than_members() -> None:
    assert len(split([Member("misty")], 4, cost)) == 1


def test_collection_paused_for_the_start_resumes_with_start_up_objects_frozen() -> None:
    import gc

    from emulators.up import resume_collection

    gc.disable()
    try:
        resume_collection()
        assert gc.isenabled() and gc.get_freeze_count() > 0
        resume_collection()  # already collecting: nothing changes
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
