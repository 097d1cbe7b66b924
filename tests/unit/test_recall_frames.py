"""The legacy video frame validator finds what a broken sender or a wrong reader would produce."""

from __future__ import annotations

import numpy as np

from clients.recall_wire import pack_video_frame
from contracts.recall_frames import FrameValidator, png_problems
from emulators.kit.codecs import PngEncoder

PNG_720 = PngEncoder().encode(np.zeros((720, 1280, 3), dtype=np.uint8))
PNG_ODD = PngEncoder().encode(np.zeros((100, 100, 3), dtype=np.uint8))


def feed_all(validator: FrameValidator, frames: list[tuple[int, int, bytes]], connection: int = 0) -> None:
    for i, (pid, ts, png) in enumerate(frames):
        validator.feed(connection, i * 0.5, pack_video_frame(pid, ts, png))


def test_a_clean_stream_at_two_fps_passes() -> None:
    validator = FrameValidator(participant_ids={100})
    feed_all(validator, [(100, i * 500, PNG_720) for i in range(6)])
    report = validator.finish()
    assert report.ok, report.problems
    assert report.sizes == {(1280, 720)} and report.fps[0] == 2.0


def test_undocumented_size_and_unknown_participant_are_reported() -> None:
    validator = FrameValidator(participant_ids={100})
    feed_all(validator, [(7, 0, PNG_ODD)])
    problems = " ".join(validator.finish().problems)
    assert "100x100 is not a documented size" in problems
    assert "participant_id 7" in problems


def test_a_big_endian_header_shows_as_a_huge_participant_id() -> None:
    validator = FrameValidator(participant_ids={200})
    message = (200).to_bytes(4, "big") + (0).to_bytes(4, "big") + PNG_720
    validator.feed(0, 0.0, message)
    assert "3355443200" in validator.finish().problems[0]


def test_timestamps_must_grow_per_connection() -> None:
    validator = FrameValidator()
    feed_all(validator, [(0, 1000, PNG_720), (0, 500, PNG_720)])
    assert any("not after" in p for p in validator.finish().problems)


def test_a_corrupted_png_fails_its_chunk_crc() -> None:
    broken = bytearray(PNG_720)
    broken[60] ^= 0xFF
    assert any("bad CRC" in p for p in png_problems(bytes(broken)))
    assert png_problems(PNG_720) == []


def test_wrong_cadence_is_reported() -> None:
    validator = FrameValidator()
    feed_all(validator, [(0, i * 1000, PNG_720) for i in range(6)])
    assert any("fps" in p for p in validator.finish().problems)
