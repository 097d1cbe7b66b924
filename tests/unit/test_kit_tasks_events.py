"""Task owner trees count and cancel every task; EventLog.wait_for wakes on events recorded from any thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from emulators.kit.events import EventLog
from emulators.kit.tasks import TaskOwner


async def test_children_are_counted_by_and_closed_with_their_parent() -> None:
    root = TaskOwner("dev")
    stream = root.child("stream")
    bot = root.child("bot")
    root.spawn(asyncio.sleep(3600), name="a")
    stream.spawn(asyncio.sleep(3600), name="b")
    bot.child("media").spawn(asyncio.sleep(3600), name="c")
    assert root.live == 3
    assert root.names() == ["dev/bot/media:c", "dev/stream:b", "dev:a"]
    await stream.aclose()
    assert root.live == 2 and stream.closed
    await root.aclose()
    assert root.live == 0 and bot.closed
    with pytest.raises(RuntimeError):
        root.child("late")


async def test_cancel_all_keeps_children_usable() -> None:
    root = TaskOwner("dev")
    service = root.child("service")
    service.spawn(asyncio.sleep(3600), name="loop")
    await root.cancel_all()
    assert root.live == 0
    service.spawn(asyncio.sleep(3600), name="again")
    assert root.live == 1
    await root.aclose()


async def test_wait_for_returns_an_event_recorded_from_a_thread() -> None:
    log = EventLog("dev")
    log.record("stream.started", stream="a")
    since = log.last_id
    waiting = asyncio.ensure_future(log.wait_for("stream", lambda e: e.detail.get("stream") == "b", since=since))
    await asyncio.sleep(0)
    threading.Thread(target=log.record, args=("stream.started",), kwargs={"stream": "b"}).start()
    event = await waiting
    assert event.detail == {"stream": "b"}


async def test_wait_for_finds_an_event_already_logged() -> None:
    log = EventLog("dev")
    log.record("bot.joined", bot="x")
    assert (await log.wait_for("bot.joined", timeout=0.1)).detail == {"bot": "x"}


async def test_wait_for_times_out_naming_the_kinds_seen() -> None:
    log = EventLog("dev")
    log.record("stream.started")
    with pytest.raises(TimeoutError, match=r"kinds seen: stream\.started"):
        await log.wait_for("stream.stopped", timeout=0.05)
