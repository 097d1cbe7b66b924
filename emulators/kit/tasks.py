"""Structured task ownership: every background task belongs to an owner that cancels and awaits it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

log = logging.getLogger("benchtwin.tasks")


class TaskOwner:
    """Owns asyncio tasks; ``aclose`` cancels every live task and waits for all of them to finish.

    Owners form a tree: a stream, bot or service takes a ``child()`` of the emulator's owner, closes it when
    it ends, and is closed with its parent otherwise; ``live`` counts the tasks of the whole tree.
    A task that fails is logged (not silently lost); ``aclose`` never raises for a child's failure,
    because shutdown must always complete.
    """

    def __init__(self, name: str, *, parent: TaskOwner | None = None) -> None:
        self.name = name
        self.parent = parent
        self._tasks: set[asyncio.Task[Any]] = set()
        self._children: list[TaskOwner] = []
        self._closed = False

    def child(self, name: str) -> TaskOwner:
        """A sub-owner, cancelled with this one and counted by it; closing it detaches it."""
        if self._closed:
            raise RuntimeError(f"{self.name} is closed; cannot start {name}")
        owner = TaskOwner(f"{self.name}/{name}", parent=self)
        self._children.append(owner)
        return owner

    @property
    def closed(self) -> bool:
        return self._closed

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
        """Live tasks in this owner and every descendant."""
        return len(self._tasks) + sum(c.live for c in self._children)

    def names(self) -> list[str]:
        return sorted([t.get_name() for t in self._tasks] + [n for c in self._children for n in c.names()])

    async def cancel_all(self) -> None:
        """Cancel and await every task of the tree, leaving every owner in it usable (``reset`` does this)."""
        for child in list(self._children):
            await child.cancel_all()
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
        await self._close_detached()
        if self.parent is not None and self in self.parent._children:
            self.parent._children.remove(self)

    async def _close_detached(self) -> None:
        self._closed = True
        children, self._children = self._children, []
        for child in children:
            await child._close_detached()
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
