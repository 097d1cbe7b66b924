"""Media workers: a process the emulator owns; messages flow back, a stop is honoured, a stuck one is reported."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from emulators.kit.emulator import Emulator
from emulators.kit.events import EventLog
from emulators.kit.workers import MediaWorker, WorkerFailed, WorkerRegistry


def count_until_stopped(stop: Any, outbox: Any, inbox: Any, start: int) -> None:
    n = start
    while not stop.is_set():
        outbox.put(n)
        n += 1
        stop.wait(0.01)


def echo_inbox(stop: Any, outbox: Any, inbox: Any) -> None:
    while (item := inbox.get()) is not None:
        outbox.put(item * 2)


def ignore_stop(stop: Any, outbox: Any, inbox: Any) -> None:
    outbox.put("stuck")
    time.sleep(3600)


def fail(stop: Any, outbox: Any, inbox: Any) -> None:
    raise ValueError("no such stream")


async def test_messages_flow_back_and_a_stop_ends_the_worker() -> None:
    events, registry = EventLog("dev"), WorkerRegistry()
    worker = MediaWorker("counter", count_until_stopped, 5, events=events, registry=registry)
    worker.start()
    seen = []
    async for message in worker.messages():
        seen.append(message)
        if len(seen) == 3:
            break
    assert seen == [5, 6, 7]
    assert registry.as_list() == [{"name": "counter", "pid": worker.pid, "state": "running"}]
    await worker.aclose()
    assert not worker.alive and not worker.leaked
    assert registry.as_list() == []
    assert [e.kind for e in events.query(kind="worker")] == ["worker.started", "worker.stopped"]


async def test_the_inbox_feeds_the_worker_until_it_returns() -> None:
    worker = MediaWorker("echo", echo_inbox, events=EventLog("dev"))
    worker.start()
    for item in (1, 2, None):
        worker.send(item)
    assert [m async for m in worker.messages()] == [2, 4]
    await worker.aclose()


async def test_a_worker_that_does_not_stop_in_time_is_reported_as_leaked_and_kept() -> None:
    events, registry = EventLog("dev"), WorkerRegistry()
    worker = MediaWorker("stuck", ignore_stop, events=events, registry=registry, stop_timeout_s=0.2)
    worker.start()
    assert await anext(aiter(worker.messages())) == "stuck"
    await worker.aclose()
    leaked = await events.wait_for("worker.leaked", timeout=1)
    assert leaked.detail["worker"] == "stuck"
    assert registry.as_list() == [{"name": "stuck", "pid": worker.pid, "state": "leaked"}]
    assert not worker.alive  # reported, then killed so it holds no port or file


async def test_an_exception_in_run_reaches_the_reader() -> None:
    worker = MediaWorker("failing", fail, events=EventLog("dev"))
    worker.start()
    with pytest.raises(WorkerFailed, match="ValueError: no such stream"):
        async for _ in worker.messages():
            pass
    await worker.aclose()


class Pusher(Emulator):
    """A kit test device with one media worker."""

    device = "pusher"
    settings_defaults = {"port": 0}


async def test_an_emulators_workers_are_listed_in_its_state_and_stopped_with_it(emulator_factory: Any) -> None:
    emulator = await emulator_factory(Pusher)
    worker = emulator.media_worker("push:1", count_until_stopped, 0)
    worker.start()
    assert await anext(aiter(worker.messages())) == 0
    async with aiohttp.ClientSession() as http, http.get(emulator.url() + "/_emulator/state") as resp:
        state = await resp.json()
    assert state["workers"] == [{"name": "push:1", "pid": worker.pid, "state": "running"}]
    await emulator.aclose()
    assert not worker.alive
    assert emulator.workers.as_list() == []


async def test_closing_a_worker_that_never_started_is_harmless() -> None:
    worker = MediaWorker("idle", count_until_stopped, 0, events=EventLog("dev"))
    await worker.aclose()
    assert not worker.alive and not worker.leaked
