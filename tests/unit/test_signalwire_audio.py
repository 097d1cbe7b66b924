"""SignalWire synthetic audio: codec layouts, the pilot marker, voices and the customer playout queue."""

from __future__ import annotations

import numpy as np

from clients.g711 import ulaw_to_pcm16
from clients.signalwire_media import decode, media_format
from emulators.signalwire.audio import PlayoutQueue, Voice, detect_pilot, encode, pilot_samples, pilot_value


def test_l16_is_big_endian_by_default_and_little_endian_on_request():
    samples = np.array([0x1234, -2], dtype=np.int16)
    assert encode(samples, media_format("L16@16000h")) == b"\x12\x34\xff\xfe"
    assert encode(samples, media_format("L16", l16_byte_order="little")) == b"\x34\x12\xfe\xff"
    assert np.array_equal(decode(b"\x12\x34\xff\xfe", media_format("L16")), samples)


def test_pcmu_payloads_decode_back_to_the_rendered_samples_within_g711_error():
    t = np.arange(160) / 8000
    samples = (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
    decoded = ulaw_to_pcm16(encode(samples, media_format("PCMU")))
    assert np.max(np.abs(decoded.astype(int) - samples)) < 260  # µ-law's step at this level


def test_the_pilot_marks_the_first_chunk_of_every_second_with_a_recoverable_symbol():
    assert [pilot_value(c) for c in (1, 2, 50, 51, 101, 751)] == [0, None, None, 1, 2, 15]
    for rate in (8000, 16000, 24000):
        for value in (0, 7, 15):
            assert detect_pilot(pilot_samples(value, rate), rate) == value
    assert detect_pilot(np.zeros(160, dtype=np.int16), 8000) is None


def test_voices_are_deterministic_and_distinct_per_seed():
    a, b = Voice(1), Voice(2)
    assert np.array_equal(a.frame(1000, 8000), Voice(1).frame(1000, 8000))
    assert not np.array_equal(a.loop(8000), b.loop(8000))
    assert len(a.frame(3980, 16000)) == 320


def test_playout_plays_20_ms_per_tick_and_marks_fire_after_the_audio_before_them():
    queue = PlayoutQueue(rate=8000, max_samples=8000)
    assert queue.mark("idle") is True  # nothing queued: echo now
    queue.push(np.ones(240, dtype=np.int16))
    assert queue.mark("after") is False
    frame, marks = queue.play(160)
    assert frame is not None and frame.sum() == 160 and marks == []
    frame, marks = queue.play(160)
    assert frame is not None and frame[:80].sum() == 80 and frame[80:].sum() == 0 and marks == ["after"]
    assert queue.play(160) == (None, [])


def test_clear_flushes_and_a_full_realtime_queue_drops_the_oldest_audio():
    queue = PlayoutQueue(rate=8000, max_samples=1600)  # 200 ms, as with StreamRealTime
    queue.push(np.full(1600, 1, dtype=np.int16))
    queue.mark("m")
    assert queue.push(np.full(800, 2, dtype=np.int16)) == []
    assert queue.queued == 1600 and queue.dropped == 800
    frame, _ = queue.play(160)
    assert frame is not None and set(frame.tolist()) == {1}
    assert queue.clear() == ["m"] and queue.queued == 0
