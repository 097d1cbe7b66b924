"""The RTSP response scanner in front of VideoDB's ingest: redirects are found however the bytes arrive, bodies and
interleaved frames are skipped (a payload that looks like a response is not one), and an endless head is refused."""

from __future__ import annotations

import pytest

from emulators.videodb.rtsp_guard import MAX_HEAD_BYTES, Redirect, ResponseScanner

OK = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nv=0\r\n"
MOVED = b"RTSP/1.0 302 Moved\r\nCSeq: 2\r\nLocation: rtsp://169.254.169.254/cam\r\n\r\n"
FAKE = b"RTSP/1.0 301 Moved\r\nLocation: rtsp://10.0.0.1/\r\n\r\n"


def test_a_redirect_is_found_after_a_response_with_a_body() -> None:
    assert ResponseScanner().feed(OK + MOVED) == [Redirect(302, "rtsp://169.254.169.254/cam")]


def test_a_redirect_split_into_single_bytes_is_found_once() -> None:
    scanner = ResponseScanner()
    found = [r for i in range(len(OK + MOVED)) for r in scanner.feed((OK + MOVED)[i : i + 1])]
    assert found == [Redirect(302, "rtsp://169.254.169.254/cam")]


def test_interleaved_frames_and_bodies_that_look_like_redirects_are_skipped() -> None:
    frame = b"$\x00" + len(FAKE).to_bytes(2, "big") + FAKE
    body = b"RTSP/1.0 200 OK\r\nContent-Length: " + str(len(FAKE)).encode() + b"\r\n\r\n" + FAKE
    assert ResponseScanner().feed(frame + body + frame) == []


def test_a_head_that_never_ends_is_refused() -> None:
    scanner = ResponseScanner()
    with pytest.raises(ValueError, match="longer than"):
        scanner.feed(b"RTSP/1.0 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES)
