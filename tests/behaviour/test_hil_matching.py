"""What a cassette keeps and how a replay picks an answer: redaction, matchers in order, misses, RTP statistics."""

from __future__ import annotations

import json
import struct

import pytest

from emulators.hil.cassette import Exchange
from emulators.hil.match import ExchangeMatcher, Incoming, parse_matchers
from emulators.hil.redact import PLACEHOLDER, Redactor
from emulators.hil.rtp_stats import RtpStats
from emulators.hil.rules import path_matches


def exchange(method: str, path_qs: str, body: bytes = b"", answer: bytes = b"", content_type: str = "") -> Exchange:
    headers = [("Content-Type", content_type)] if content_type else []
    return Exchange(method, f"http://10.0.0.7{path_qs}", headers, body, 200, "OK", [], answer, 0.0, 1.0)


def test_credentials_are_redacted_in_headers_queries_json_forms_and_receiver_urls():
    r = Redactor()
    assert r.headers([("Authorization", "Token abc"), ("X-Api-Key", "k"), ("Accept", "*/*")]) == [
        ("Authorization", f"Token {PLACEHOLDER}"), ("X-Api-Key", PLACEHOLDER), ("Accept", "*/*")]
    assert r.url("https://user:pw@host/x?token=abc&page=2") == f"https://{PLACEHOLDER}@host/x?token={PLACEHOLDER}&page=2"
    body = json.dumps({"api_key": "k", "url": "wss://r/?signature=s", "name": "n"}).encode()
    assert json.loads(r.body(body, "application/json")) == {
        "api_key": PLACEHOLDER, "url": f"wss://r/?signature={PLACEHOLDER}", "name": "n"}
    assert r.body(b"Password=x&Name=y", "application/x-www-form-urlencoded") == b"Password=%3Credacted%3E&Name=y"
    untouched = b'{"a": 1,  "b": [2]}'
    assert r.body(untouched, "application/json") is untouched  # nothing secret: the bytes as sent


def test_redaction_can_be_extended_or_turned_off():
    assert Redactor(extra={"x-robot-pin"}).header_value("X-Robot-Pin", "1234") == PLACEHOLDER
    assert Redactor(enabled=False).header_value("Authorization", "Token abc") == "Token abc"


def test_identical_requests_get_their_recorded_answers_in_order_then_the_last_repeats():
    recorded = [exchange("GET", "/bots", answer=b"1"), exchange("GET", "/bots", answer=b"2")]
    matcher = ExchangeMatcher(recorded)
    asked = Incoming("GET", "/bots", [], b"", "")
    assert [matcher.find(asked) for _ in range(3)] == [0, 1, 1]


def test_bodies_match_structurally_and_a_redacted_value_matches_anything():
    recorded = [exchange("POST", "/bot", json.dumps({"a": 1, "key": PLACEHOLDER}).encode(),
                         content_type="application/json")]
    matcher = ExchangeMatcher(recorded)
    assert matcher.find(Incoming("POST", "/bot", [], b'{"key": "real",  "a": 1}', "application/json")) == 0
    assert matcher.find(Incoming("POST", "/bot", [], b'{"key": "real", "a": 2}', "application/json")) is None


def test_matchers_apply_in_the_order_given_and_a_header_can_be_one():
    recorded = [exchange("GET", "/x?page=1")]
    recorded[0].request_headers.append(("X-Tenant", "lab"))
    assert ExchangeMatcher(recorded, ("method", "path")).find(Incoming("GET", "/x", [("page", "9")], b"", "")) == 0
    by_tenant = ExchangeMatcher(recorded, ("method", "path", "header:X-Tenant"))
    assert by_tenant.find(Incoming("GET", "/x", [], b"", ""), {"X-Tenant": "other"}) is None
    assert by_tenant.find(Incoming("GET", "/x", [], b"", ""), {"x-tenant": "lab"}) == 0
    with pytest.raises(ValueError, match="--match 'verb'"):
        parse_matchers("method,verb")


def test_a_miss_names_the_closest_recording_and_what_differs():
    matcher = ExchangeMatcher([exchange("GET", "/api/battery"), exchange("POST", "/api/drive")])
    report = matcher.miss_report(Incoming("GET", "/api/batery", [], b"", ""))
    assert report["closest"] == {"index": 0, "request": "GET /api/battery", "differs_in": ["path"]}


def test_field_paths_take_wildcards_within_a_segment_and_across_segments():
    assert path_matches("**.id", "results.3.id") and path_matches("**.id", "id")
    assert path_matches("*_usage.*", "leon_cpu_usage.css") and not path_matches("*_usage.*", "usage")
    assert not path_matches("id", "bot.id")


def rtp(seq: int, ts: int, marker: bool = False, payload: bytes = b"x" * 100) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 96, seq, ts, 1) + payload


def test_rtp_statistics_count_loss_frames_rate_and_jitter():
    stats = RtpStats(90000)
    arrivals = [0.0, 0.0, 1 / 30, 1 / 30, 2 / 30 + 0.004, 3 / 30]
    packets = [rtp(10, 0), rtp(11, 0, True), rtp(12, 3000), rtp(13, 3000, True), rtp(15, 6000, True),
               rtp(16, 9000, True)]
    for packet, t in zip(packets, arrivals, strict=True):
        stats.add(packet, t)
    summary = stats.summary()
    assert (summary["packets"], summary["lost"], summary["marker_frames"]) == (6, 1, 4)
    assert summary["frame_rate"] == 30.0 and summary["payload_size"] == {"min": 100, "mean": 100.0, "max": 100}
    assert 0 < summary["jitter_ms"] < 4
