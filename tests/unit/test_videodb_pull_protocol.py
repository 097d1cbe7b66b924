"""The conversation between the ingest pipeline and its worker process, without a process: the worker learns
what to decode and whether faults are armed from its inbox, and each armed packet waits for the verdict the
emulator decides (a stall is served by answering late; a close cuts the pull like a disconnect).
"""

from __future__ import annotations

import asyncio
import queue
import threading

from emulators.kit.faults import SEND, Abort, Close, FaultBook, Send, Skip, Stall
from emulators.videodb.ingest import Armed, Inbox, VerdictWanted, Wants
from emulators.videodb.pipeline import answer_for_worker


def test_the_worker_takes_wants_and_arming_from_its_inbox_without_blocking() -> None:
    messages: queue.Queue[object] = queue.Queue()
    inbox = Inbox(messages, threading.Event())
    inbox.poll()
    assert inbox.wants == Wants(frames=False, audio=False) and not inbox.armed
    messages.put(Wants(frames=True, audio=False))
    messages.put(Armed(True))
    inbox.poll()
    assert inbox.wants.frames and inbox.armed


def test_an_armed_packet_asks_and_waits_for_its_verdict_taking_controls_meanwhile() -> None:
    messages: queue.Queue[object] = queue.Queue()
    outbox: queue.Queue[object] = queue.Queue()
    inbox = Inbox(messages, threading.Event())
    messages.put(Wants(frames=False, audio=True))  # arrives before the answer
    messages.put(Send(corrupt=True))
    assert inbox.verdict(outbox) == Send(corrupt=True)
    assert isinstance(outbox.get_nowait(), VerdictWanted) and inbox.wants.audio


def test_a_stopping_worker_stops_waiting_for_a_verdict() -> None:
    stop = threading.Event()
    stop.set()
    assert Inbox(queue.Queue(), stop).verdict(queue.Queue()) == Skip()


async def test_the_worker_gets_verdicts_it_can_apply_itself() -> None:
    assert await answer_for_worker(SEND) == SEND
    assert await answer_for_worker(Send(corrupt=True)) == Send(corrupt=True)
    assert await answer_for_worker(Skip()) == Skip()
    assert await answer_for_worker(Abort()) == Abort()
    assert await answer_for_worker(Close(1000, "bye")) == Abort()  # a pulled source has no close code


async def test_a_stall_is_served_by_answering_late_and_deleting_its_rule_ends_it() -> None:
    book = FaultBook(seed=1)
    rule = book.add({"match": {"stream": "rtstream:*"}, "action": {"type": "stall", "seconds": 30}})
    _, verdict = book.verdict("rtstream:rts-1")
    assert isinstance(verdict, Stall)
    answer = asyncio.ensure_future(answer_for_worker(verdict))
    await asyncio.sleep(0)  # the answer is pending while the stall lasts
    assert not answer.done()
    book.remove(rule.id)
    assert await asyncio.wait_for(answer, 5) == SEND


def test_capture_timing_maps_media_time_past_the_probe_burst_and_believes_a_close_sender_clock() -> None:
    from emulators.videodb.ingest import CaptureTiming

    timing = CaptureTiming()
    for i in range(11):  # the probe burst: 1 s of media handed over at once, at wall 101.0
        timing.arrived(i / 10, 101.0)
    assert not timing.settled(0.05) and timing.settled(0.0)
    for i in range(11, 21):  # then live: each packet 10 ms after its capture
        timing.arrived(i / 10, 100.01 + i / 10)
    assert abs(timing.wall(0.0) - 100.0) < 0.02  # media 0 was captured at 100.0, not when it came out
    assert timing.sender_clock(99.99) and timing.wall(0.5) == 100.49
    doubted = CaptureTiming()
    doubted.arrived(0.0, 100.0)
    assert not doubted.sender_clock(3600.0) and doubted.wall(0.0) == 100.0  # an unsynchronised camera
