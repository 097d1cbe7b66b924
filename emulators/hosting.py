"""An emulator hosted on its own event loop in a daemon thread, for synchronous callers (test fixtures, parity runs)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from emulators.app import create_emulator
from emulators.config import Config

T = TypeVar("T")


class EmulatorHost:
    """Runs one emulator on its own event loop in a daemon thread, so sync and async tests can use it."""

    def __init__(self, device: str, settings: dict[str, Any] | None = None, config: Config | None = None) -> None:
        self.device = device
        self.settings = settings or {}
        self.config = config or Config()
        self.loop = asyncio.new_event_loop()
        self.emulator: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"emulator-{device}", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    async def _start(self) -> None:
        self.emulator = create_emulator(self.device, self.config, settings=self.settings, free_ports=True)
        await self.emulator.start()

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"{self.device} emulator did not start within {timeout_s} s")
        if self._error is not None:
            self._thread.join(5)
            raise self._error

    def call(self, fn: Callable[[], Awaitable[T]], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout_s)  # type: ignore[arg-type]

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.emulator is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.call(self.emulator.aclose, timeout_s)
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout_s)
