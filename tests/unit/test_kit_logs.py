"""The CLI's log handler writes to stderr as it is at each record, so emulator threads that outlive a host's
swapped (and closed) stderr keep logging to the current one instead of failing with a closed file."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from emulators.kit.logs import setup_logging


def test_records_go_to_the_stderr_of_the_moment_not_the_one_at_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        setup_logging("info")
        logging.getLogger("emulators.test").info("one")
        monkeypatch.setattr(sys, "stderr", second)
        first.close()  # what a test harness does with its capture once the test is over
        logging.getLogger("emulators.test").info("two")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert "two" in second.getvalue() and "one" not in second.getvalue()
