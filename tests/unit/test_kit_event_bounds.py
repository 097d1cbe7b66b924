"""The event log holds a bounded number of bytes, cuts large details and masks credentials in URLs, in events and
in log lines."""

from __future__ import annotations

import json
import logging

from emulators.kit.events import EventLog
from emulators.kit.logs import _Json, _Readable
from emulators.kit.redact import MAX_TEXT_CHARS, bounded, redact_text


def test_thirty_five_megabyte_bodies_keep_the_log_within_its_byte_budget() -> None:
    events = EventLog("t", capacity=2000, max_bytes=256 * 1024)
    body = "x" * (5 * 1024**2)
    for n in range(30):
        events.record("request", n=n, body=body, raw=body.encode())
    assert events.bytes <= 256 * 1024
    newest = events.query(kind="request")[-1]
    assert newest.detail["n"] == 29
    assert newest.detail["body"].endswith(f"({5 * 1024**2 - MAX_TEXT_CHARS} more characters)")
    assert newest.detail["raw"] == f"<{5 * 1024**2} bytes>"


def test_the_oldest_events_go_first_when_the_byte_budget_is_full() -> None:
    events = EventLog("t", capacity=10_000, max_bytes=20_000)
    for n in range(200):
        events.record("participant.joined", name="p" * 1000, n=n)
    kept = [e.detail["n"] for e in events.query(limit=0)]
    assert kept == list(range(200 - len(kept), 200)) and 10 <= len(kept) < 25
    events.clear()
    assert events.bytes == 0 and len(events) == 0


def test_credentials_in_urls_are_masked_in_event_details() -> None:
    events = EventLog("t")
    event = events.record(
        "outbound.connected",
        url="wss://bot:s3cret@receiver.local:8443/media?token=abc123&room=7",
        hops=["https://user:pw@a.local/x", "http://b.local/cb?api_key=K&x=1"],
    )
    assert event.detail["url"] == "wss://***@receiver.local:8443/media?token=***&room=7"
    assert event.detail["hops"] == ["https://***@a.local/x", "http://b.local/cb?api_key=***&x=1"]
    assert "s3cret" not in json.dumps(event.as_dict())


def test_log_lines_mask_credentials_however_they_were_formatted() -> None:
    record = logging.LogRecord("aiohttp.client", logging.ERROR, __file__, 1,
                               "cannot connect to %s", ("https://admin:hunter2@hooks.local/cb?sig=zzz",), None)
    for formatter in (_Readable(), _Json()):
        line = formatter.format(record)
        assert "hunter2" not in line and "zzz" not in line
        assert "https://***@hooks.local/cb?sig=***" in line


def test_bounded_cuts_long_lists_and_deep_nesting_but_keeps_small_values_as_they_are() -> None:
    small = {"a": 1, "b": [1, 2], "c": (3, 4), "d": None, "e": "text"}
    assert bounded(small) == small
    cut = bounded({"many": list(range(500))})
    assert len(cut["many"]) == 65 and cut["many"][-1] == "... 436 more items"
    deep: dict = {}
    node = deep
    for _ in range(50):
        node["n"] = {}
        node = node["n"]
    assert "nested deeper than" in json.dumps(bounded(deep))


def test_plain_text_without_urls_is_left_alone() -> None:
    assert redact_text("participant Ada joined at 10:00 (a=b)") == "participant Ada joined at 10:00 (a=b)"
