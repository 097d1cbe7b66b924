"""Structured task ownership: every background task belongs to an owner that cancels and awaits it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

log = logging.getLogger("benchtwin.tasks")


class TaskOwner:
    """Owns asyncio tasks; ``aclose`` cancels every live task and waits for all of them to finish.

    A task that fails is logged (not silently lost); ``aclose`` never raises for a child's failure,
    because shutdown must always complete.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.name} is closed; cannot start {name}")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed: %r", task.get_name(), task.exception(), exc_info=task.exception())

    @property
    def live(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        return sorted(t.get_name() for t in self._tasks)

    async def cancel_all(self) -> None:
        """Cancel and await every task, leaving the owner usable."""
        while self._tasks:
            tasks = list(self._tasks)
            current = asyncio.current_task()
            tasks = [t for t in tasks if t is not current]
            if not tasks:
                return
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in tasks:
                self._tasks.discard(task)

    async def aclose(self) -> None:
        self._closed = True
        await self.cancel_all()


async def first_completed(*awaitables: Awaitable[Any], ignore: tuple[type[BaseException], ...] = ()) -> None:
    """Run the awaitables until the first one finishes, then cancel and await the rest: none outlives the call.

    An exception raised by any of them (other than cancellation and the ``ignore`` types) propagates.
    """
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, (asyncio.CancelledError, *ignore)):
            raise result
