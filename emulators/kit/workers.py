"""Blocking media work (PyAV push and pull, RTMP) in a worker process the emulator owns and always accounts for.

Policy: one process per worker, started with ``spawn``. Measured: PyAV holds the GIL while an RTMP output
connects (``start_encoding`` against a server that never answers the handshake stopped every other thread of
the process), so a thread would freeze the emulator's event loop; a process also can be killed when it does not
stop, where a thread could only be abandoned. ``run`` is a top-level function ``run(stop, outbox, inbox, *args)``
that polls ``stop.is_set()``, reads ``inbox`` if the parent feeds it, and ``outbox.put(message)``s progress;
arguments and messages must pickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue as ProcessQueue
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

from emulators.kit.events import EventLog

_CONTEXT = multiprocessing.get_context("spawn")
# How often the reader thread looks whether a worker that sent nothing has died without a word.
_LIVENESS_POLL_S = 0.25

WorkerRun = Callable[..., None]


class WorkerFailed(Exception):
    """The worker's ``run`` raised, or its process died; the message says which and why."""


@dataclass(frozen=True)
class _End:
    error: str | None


def _entry(run: WorkerRun, stop: ProcessEvent, outbox: ProcessQueue[Any], inbox: ProcessQueue[Any],
           args: tuple[Any, ...]) -> None:
    error = None
    try:
        run(stop, outbox, inbox, *args)
    except BaseException as exc:  # reported to the parent, which decides what a failure means
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
    outbox.put(_End(error))
    outbox.close()
    outbox.join_thread()


class WorkerRegistry:
    """The workers of one emulator: running ones and leaked ones (never forgotten), for ``/_emulator/state``."""

    def __init__(self) -> None:
        self._workers: list[MediaWorker] = []

    def add(self, worker: MediaWorker) -> None:
        self._workers.append(worker)

    def discard(self, worker: MediaWorker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)

    def running(self) -> list[MediaWorker]:
        return [w for w in self._workers if not w.leaked]

    def as_list(self) -> list[dict[str, Any]]:
        return [w.as_dict() for w in self._workers]

    async def aclose(self) -> None:
        await asyncio.gather(*(w.aclose() for w in self.running()), return_exceptions=True)


class MediaWorker:
    """One blocking media job in its own process; read its messages with ``async for m in worker.messages()``."""

    def __init__(
        self,
        name: str,
        run: WorkerRun,
        *args: Any,
        events: EventLog,
        registry: WorkerRegistry | None = None,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.name = name
        self.events = events
        self.stop_timeout_s = stop_timeout_s
        self.leaked = False
        self.error: str | None = None
        self._run = run
        self._args = args
        self._registry = registry
        self._stop = _CONTEXT.Event()
        self._outbox: ProcessQueue[Any] = _CONTEXT.Queue()
        self._inbox: ProcessQueue[Any] = _CONTEXT.Queue()
        self._process: BaseProcess | None = None
        self._messages: asyncio.Queue[Any] = asyncio.Queue()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def as_dict(self) -> dict[str, Any]:
        state = "leaked" if self.leaked else "running" if self.alive else "stopped"
        return {"name": self.name, "pid": self.pid, "state": state}

    def start(self) -> None:
        """Start the process; must be called on the event loop that reads the messages."""
        loop = asyncio.get_running_loop()
        self._process = _CONTEXT.Process(
            target=_entry, args=(self._run, self._stop, self._outbox, self._inbox, self._args),
            name=f"benchtwin-{self.name}", daemon=True,
        )
        self._process.start()
        if self._registry is not None:
            self._registry.add(self)
        self.events.record("worker.started", worker=self.name, pid=self._process.pid)
        self._reader = threading.Thread(target=self._read, args=(loop,), name=f"{self.name}-reader", daemon=True)
        self._reader.start()

    def send(self, message: Any) -> None:
        """Put a message in the worker's inbox (never blocks)."""
        self._inbox.put(message)

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        process = self._process
        assert process is not None
        while True:
            try:
                message = self._outbox.get(timeout=_LIVENESS_POLL_S)
            except queue.Empty:
                if process.is_alive():
                    continue
                message = _End(f"the worker process died with exit code {process.exitcode}")
            except (EOFError, OSError, ValueError):
                message = _End("the worker's outbox closed")
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads any more
                loop.call_soon_threadsafe(self._messages.put_nowait, message)
            if isinstance(message, _End):
                return

    async def messages(self) -> AsyncIterator[Any]:
        """The worker's messages until it ends; WorkerFailed if ``run`` raised or the process died."""
        while True:
            message = await self._messages.get()
            if isinstance(message, _End):
                self.error = message.error
                if message.error is not None and not self._stop.is_set():
                    raise WorkerFailed(f"{self.name}: {message.error}")
                return
            yield message

    async def aclose(self) -> None:
        """Ask the worker to stop; if it has not ended after ``stop_timeout_s``, report it as leaked and kill it."""
        process = self._process
        self._stop.set()
        if process is None:
            self._close_queues()
            return
        started = time.monotonic()
        await asyncio.to_thread(process.join, self.stop_timeout_s)
        if process.is_alive():
            self.leaked = True
            self.events.record("worker.leaked", worker=self.name, pid=process.pid,
                               waited_s=round(time.monotonic() - started, 3))
            # Reported and kept in the registry; killing it keeps a stuck FFmpeg from holding a port or a file.
            process.kill()
            await asyncio.to_thread(process.join, 1.0)
        else:
            self.events.record("worker.stopped", worker=self.name, exit_code=process.exitcode)
            if self._registry is not None:
                self._registry.discard(self)
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 2.0)
        self._close_queues()

    def _close_queues(self) -> None:
        for q in (self._inbox, self._outbox):
            q.cancel_join_thread()  # never wait at exit for a feeder thread whose reader is gone
            q.close()
