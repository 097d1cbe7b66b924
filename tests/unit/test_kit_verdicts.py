"""Stream verdicts: one per frame/chunk from the fault book, `fault.applied` once, and stalls that end on delete."""

from __future__ import annotations

import asyncio
import threading

import pytest

from emulators.kit.emulator import Emulator
from emulators.kit.faults import SEND, Abort, Close, Send, Skip, Stall, corrupt_payload
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy


class Sender(Emulator):
    device = "sender"
    settings_defaults = {"port": 0}

    def live_streams(self) -> list[str]:
        return ["video:1"]


@pytest.fixture
def emulator() -> Sender:
    return Sender(egress=EgressPolicy(DEFAULT_ALLOWED))


@pytest.mark.parametrize(
    ("action", "verdict"),
    [
        ({"type": "drop"}, Skip()),
        ({"type": "corrupt"}, Send(corrupt=True)),
        ({"type": "close", "code": 4000, "reason": "bye"}, Close(4000, "bye")),
        ({"type": "disconnect"}, Abort()),
        ({"type": "stall", "seconds": 2.5}, Stall(2.5)),
    ],
)
def test_each_stream_action_maps_to_its_verdict_and_is_recorded_once(emulator: Sender, action: dict,
                                                                      verdict: object) -> None:
    emulator.faults.add({"match": {"stream": "video:*"}, "action": action, "count": 1})
    assert emulator.stream_verdict("video:1", frame=7) == verdict
    assert emulator.stream_verdict("video:1", frame=8) is SEND
    applied = emulator.events.query(kind="fault.applied")
    assert [(e.detail["action"], e.detail["stream"], e.detail["frame"]) for e in applied] == [
        (action["type"], "video:1", 7)
    ]


def test_no_rule_is_send_without_an_event(emulator: Sender) -> None:
    assert emulator.stream_verdict("audio:1") is SEND
    assert emulator.events.query(kind="fault") == []


async def test_deleting_a_stall_rule_ends_the_stall_in_progress(emulator: Sender) -> None:
    emulator.faults.add({"id": "hold", "match": {"stream": "video:*"}, "action": {"type": "stall", "seconds": 3600}})
    verdict = emulator.stream_verdict("video:1")
    assert isinstance(verdict, Stall)
    waiting = asyncio.ensure_future(verdict.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    assert emulator.faults.remove("hold")
    async with asyncio.timeout(5):
        await waiting


def test_clearing_the_rules_ends_a_stall_in_a_worker_thread(emulator: Sender) -> None:
    emulator.faults.add({"match": {"stream": "video:*"}, "action": {"type": "stall", "seconds": 3600}})
    verdict = emulator.stream_verdict("video:1")
    assert isinstance(verdict, Stall)
    worker = threading.Thread(target=verdict.wait_blocking)
    worker.start()
    emulator.faults.clear()
    worker.join(5)
    assert not worker.is_alive()


async def test_a_stall_whose_rule_stays_lasts_its_seconds(emulator: Sender) -> None:
    emulator.faults.add({"match": {"stream": "video:*"}, "action": {"type": "stall", "seconds": 0.01}})
    verdict = emulator.stream_verdict("video:1")
    assert isinstance(verdict, Stall)
    await verdict.wait()
    verdict.wait_blocking()


def test_corrupt_payload_is_deterministic_and_keeps_the_header() -> None:
    payload = bytes(range(256)) * 4
    assert corrupt_payload(payload) == corrupt_payload(payload)
    assert corrupt_payload(payload)[:16] == payload[:16]
    assert corrupt_payload(payload) != payload
    assert corrupt_payload(b"\x00\x01") == b"\xff\xfe"


def test_a_sender_matches_on_the_verdict(emulator: Sender) -> None:
    emulator.faults.add({"match": {"stream": "video:*"}, "action": {"type": "corrupt"}, "count": 1})
    sent: list[bytes] = []
    for frame in (b"a" * 64, b"b" * 64):
        match emulator.stream_verdict("video:1"):
            case Send(corrupt=corrupt):
                sent.append(corrupt_payload(frame) if corrupt else frame)
            case Skip() | Stall() | Close() | Abort():
                pass
    assert sent[0] != b"a" * 64 and sent[1] == b"b" * 64
