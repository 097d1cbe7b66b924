"""Where an account lives on disk: the data directory (configured or a temporary one), its recordings, and
``state.json``, written at most once per second and read back at start so a restart keeps the account.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("benchtwin.videodb")
STATE_FILE = "state.json"
PERSIST_DELAY_S = 1.0  # index records arrive every few seconds; one state write per second is plenty


class DataDirectory:
    """The data directory and the debounced writes of the account's snapshot into it."""

    def __init__(self, configured: str, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._configured = configured
        self._snapshot = snapshot
        self.path: Path | None = None
        self._temporary = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def persistent(self) -> bool:
        """A configured directory outlives the process; a temporary one does not."""
        return bool(self._configured)

    def open(self) -> dict[str, Any] | None:
        """Create (or reuse) the directory; returns the saved state of a configured directory, if readable."""
        if self._configured:
            self.path = Path(self._configured)
            self.path.mkdir(parents=True, exist_ok=True)
            self._temporary = False
        elif self.path is None:
            self.path = Path(tempfile.mkdtemp(prefix="benchtwin-videodb-"))
            self._temporary = True
        state = self.path / STATE_FILE
        if not self._configured or not state.exists():
            return None
        try:
            data = json.loads(state.read_text())
        except ValueError as exc:
            log.warning("ignoring unreadable %s: %s", state, exc)
            return None
        return data if isinstance(data, dict) else None

    def stream_directory(self, rtstream_id: str) -> Path:
        assert self.path is not None, "the data directory is opened at start"
        return self.path / rtstream_id

    def recorded_file(self, rtstream_id: str, file: str) -> Path | None:
        """A recorded file's path, resolved (symlinks followed) and confined to the data directory; None when a
        name from the state (which a user or a crash may have edited) points anywhere outside it."""
        assert self.path is not None, "the data directory is opened at start"
        root = self.path.resolve()
        candidate = (self.path / rtstream_id / file).resolve()
        return candidate if candidate.is_relative_to(root) and candidate != root else None

    def unlink(self, rtstream_id: str, files: list[str]) -> None:
        """Delete recorded segment files (the backend decided they fell out of the rolling window); a name that
        resolves outside the data directory is never touched."""
        for file in files:
            path = self.recorded_file(rtstream_id, file)
            if path is None:
                log.warning("not deleting %r of %s: it resolves outside the data directory", file, rtstream_id)
                continue
            path.unlink(missing_ok=True)

    def persist(self) -> None:
        """Schedule a write of the account's state; changes within PERSIST_DELAY_S share one write."""
        if self._timer is not None or self.path is None:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: the final flush at stop covers it
            self._timer = asyncio.get_running_loop().call_later(PERSIST_DELAY_S, self.flush)

    def flush(self) -> None:
        """Write the account's state next to the recordings so a restart with the same data_dir keeps them."""
        self._cancel_timer()
        if self.path is None or not self.path.exists():
            return
        path = self.path / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._snapshot()))
        tmp.replace(path)

    def forget(self) -> None:
        """Reset: delete every recording and the saved state, keep the directory."""
        self._cancel_timer()
        if self.path is None:
            return
        for path in self.path.glob("rts-*"):
            shutil.rmtree(path, ignore_errors=True)
        (self.path / STATE_FILE).unlink(missing_ok=True)

    def remove_unrecorded(self, recorded: dict[str, set[str]]) -> list[str]:
        """At start: delete segment files the saved account does not list (a segment being written when the
        process was killed, or one filed after the last save) and folders of streams it does not know.
        Returns the deleted paths, relative to the directory."""
        if self.path is None:
            return []
        removed = []
        for folder in sorted(self.path.glob("rts-*")):
            known = recorded.get(folder.name)
            if known is None:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
                continue
            for file in sorted(folder.glob("rec-*/*")):
                relative = f"{file.parent.name}/{file.name}"
                if relative not in known:
                    file.unlink(missing_ok=True)
                    removed.append(f"{folder.name}/{relative}")
        return removed

    def remove_temporary(self) -> None:
        """At shutdown a temporary directory goes with everything in it; a configured one stays."""
        if self._temporary and self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
