"""Synthetic media primitives: drawing, the bitmap font, tones and speech-like voices."""

from __future__ import annotations

import string
import time

import numpy as np
import pytest

from emulators.kit.font import GLYPH_HEIGHT, GLYPH_WIDTH, glyph, text_mask
from emulators.kit.stamp import FrameStamp, StreamKind, paint_stamp, read_stamp
from emulators.kit.synth import (
    ToneGenerator,
    VoiceGenerator,
    draw_disc,
    draw_rect_outline,
    draw_text,
    fill_rect,
    horizontal_gradient,
    mix,
    solid,
    text_size,
    to_float32,
    to_int16,
    tone,
    vertical_gradient,
)

# --- drawing ------------------------------------------------------------------------------------------


def test_fill_rect_paints_exactly_its_rectangle_and_clips_at_the_edges():
    frame = solid(100, 50, 0)
    fill_rect(frame, 10, 5, 20, 8, (255, 0, 0))
    assert (frame[5:13, 10:30] == (255, 0, 0)).all()
    assert frame.sum() == 20 * 8 * 255
    fill_rect(frame, 90, 45, 40, 40, (0, 255, 0))  # hangs off the bottom-right corner
    assert (frame[45:, 90:] == (0, 255, 0)).all()
    fill_rect(frame, -50, -50, 10, 10, 7)  # wholly outside: nothing happens
    fill_rect(frame, 200, 0, 10, 10, 7)
    assert not (frame == 7).any()


def test_rect_outline_leaves_the_inside_untouched():
    frame = solid(60, 40, 0)
    draw_rect_outline(frame, 10, 10, 30, 20, (0, 255, 0), thickness=2)
    assert (frame[10:12, 10:40, 1] == 255).all() and (frame[28:30, 10:40, 1] == 255).all()
    assert (frame[10:30, 10:12, 1] == 255).all() and (frame[10:30, 38:40, 1] == 255).all()
    assert (frame[12:28, 12:38] == 0).all()


def test_disc_covers_pi_r_squared_symmetrically_and_clips():
    frame = solid(200, 200, 0)
    draw_disc(frame, 100.0, 100.0, 40.0, (255, 255, 255))
    ink = frame[:, :, 0] == 255
    assert abs(ink.sum() - np.pi * 40**2) < 0.01 * np.pi * 40**2
    assert np.array_equal(ink, ink[::-1, :]) and np.array_equal(ink, ink[:, ::-1]) and np.array_equal(ink, ink.T)
    edge = solid(100, 100, 0)
    draw_disc(edge, 0.0, 50.0, 20.0, (9, 9, 9))  # half outside on the left
    assert abs((edge[:, :, 0] == 9).sum() - np.pi * 400 / 2) < 40
    draw_disc(edge, -100.0, -100.0, 20.0, (1, 1, 1))  # wholly outside
    assert not (edge == 1).any()


def test_drawing_works_on_grey_and_depth_frames_with_scalar_colours():
    grey = np.zeros((64, 64), dtype=np.uint8)
    depth = np.zeros((64, 64), dtype=np.uint16)
    fill_rect(grey, 0, 0, 8, 8, 200)
    draw_disc(depth, 32, 32, 10, 2500)
    assert (grey[:8, :8] == 200).all()
    assert depth[32, 32] == 2500
    with pytest.raises(ValueError, match="scalar"):
        fill_rect(grey, 0, 0, 4, 4, (1, 2, 3))
    with pytest.raises(ValueError, match="3 components"):
        fill_rect(solid(8, 8), 0, 0, 4, 4, (1, 2))


def test_gradients_run_from_their_first_to_their_last_colour():
    vertical = vertical_gradient(32, 100, (0, 100, 200), (200, 100, 0))
    assert vertical.shape == (100, 32, 3) and vertical.flags.writeable
    assert tuple(vertical[0, 5]) == (0, 100, 200) and tuple(vertical[-1, 5]) == (200, 100, 0)
    assert (np.diff(vertical[:, 0, 0].astype(int)) >= 0).all()
    horizontal = horizontal_gradient(100, 10, 0, 255)
    assert tuple(horizontal[3, 0]) == (0, 0, 0) and tuple(horizontal[3, -1]) == (255, 255, 255)


# --- text ---------------------------------------------------------------------------------------------


def test_font_has_a_distinct_glyph_for_every_printable_ascii_character():
    characters = [c for c in string.printable if c.isprintable()]
    bitmaps = {c: glyph(c).tobytes() for c in characters}
    assert all(glyph(c).shape == (GLYPH_HEIGHT, GLYPH_WIDTH) for c in characters)
    inked = [c for c in characters if c != " "]
    assert all(glyph(c).any() for c in inked)
    assert len({bitmaps[c] for c in inked}) == len(inked)


def test_accented_letters_fold_to_their_base_and_others_to_a_question_mark():
    assert np.array_equal(glyph("é"), glyph("e"))
    assert np.array_equal(glyph("Ö"), glyph("O"))
    assert np.array_equal(glyph("漢"), glyph("?"))


def test_text_is_drawn_with_the_glyph_bitmaps_at_integer_scale():
    frame = solid(200, 60, 0)
    width, height = draw_text(frame, 10, 20, "Hi", (255, 255, 255), scale=3)
    assert (width, height) == text_size("Hi", 3) == ((2 * 6 - 1) * 3, 7 * 3)
    ink = frame[:, :, 0] == 255
    expected = np.zeros_like(ink)
    expected[20 : 20 + height, 10 : 10 + width] = text_mask("Hi", 3)
    assert np.array_equal(ink, expected)
    assert np.array_equal(text_mask("H", 3)[::3, ::3], glyph("H"))


def test_text_is_clipped_at_the_frame_edge():
    frame = solid(40, 20, 0)
    draw_text(frame, 30, 15, "Ann", (255, 0, 0), scale=2)
    draw_text(frame, -100, -100, "gone", (0, 255, 0))
    assert (frame[:, :30] == 0).all() and (frame[:15] == 0).all()
    assert (frame[15:, 30:, 0] == 255).any()
    assert not (frame[:, :, 1] == 255).any()


def test_text_scale_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="scale"):
        text_mask("x", 0)


def test_a_720p_frame_renders_and_stamps_in_a_few_milliseconds():
    background = vertical_gradient(1280, 720, (40, 60, 90), (90, 120, 170))
    fill_rect(background, 0, 600, 1280, 120, (30, 30, 30))

    def render(index: int) -> np.ndarray:
        frame = background.copy()
        draw_disc(frame, 200 + 7 * index, 360, 90, (240, 200, 170))
        draw_text(frame, 24, 640, "Ann Example", (255, 255, 255), scale=4)
        return paint_stamp(frame, FrameStamp(StreamKind.RECALL_WEBCAM, 100, index, 1_763_780_000_000))

    render(0)
    timings = []
    for index in range(15):
        started = time.perf_counter()
        frame = render(index)
        timings.append(time.perf_counter() - started)
    assert read_stamp(frame).frame_index == 14
    # Typically about 1 ms; the bound leaves room for a busy shared machine.
    assert float(np.median(timings)) < 0.015


# --- tones and mixing ---------------------------------------------------------------------------------


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def test_tone_continues_across_calls_without_a_click():
    whole, _ = tone(440.0, 8000, 8000, amplitude=0.5)
    pieces, phase = [], 0.0
    for n in (1, 159, 160, 3000, 4680):
        piece, phase = tone(440.0, 8000, n, phase, amplitude=0.5)
        pieces.append(piece)
    joined = np.concatenate(pieces)
    assert np.allclose(joined, whole, atol=1e-5)
    assert abs(dominant_hz(whole, 8000) - 440.0) < 2
    assert np.isclose(np.abs(whole).max(), 0.5, atol=1e-3)


def test_tone_generator_keeps_its_phase_and_gives_int16():
    generator = ToneGenerator(1000.0, 16000, amplitude=0.25)
    first, second = generator.read(100), generator.read(100)
    reference, _ = tone(1000.0, 16000, 200, amplitude=0.25)
    assert np.allclose(np.concatenate([first, second]), reference, atol=1e-5)
    as_int = generator.read_int16(320)
    assert as_int.dtype == np.int16 and np.abs(as_int).max() <= 0.25 * 32767 + 1


def test_tone_above_nyquist_is_refused():
    with pytest.raises(ValueError, match="Nyquist"):
        tone(5000.0, 8000, 10)


def test_mix_sums_with_gains_and_clips():
    a = np.full(4, 0.5, dtype=np.float32)
    b = np.full(4, 16384, dtype=np.int16)  # 0.5 as int16
    assert np.allclose(mix(a, b), 1.0)
    assert np.allclose(mix(a, b, gains=[0.5, 0.5]), 0.5)
    assert np.allclose(mix(a, a, a), 1.0)  # clipped
    with pytest.raises(ValueError, match="samples"):
        mix(a, np.zeros(3, dtype=np.float32))
    assert np.array_equal(to_int16(to_float32(b)), b)


# --- voices -------------------------------------------------------------------------------------------

RATE = 16000


def frame_rms(samples: np.ndarray, size: int = RATE // 100) -> np.ndarray:
    usable = len(samples) // size * size
    return np.sqrt(np.mean(samples[:usable].reshape(-1, size) ** 2, axis=1))


def estimated_pitch(samples: np.ndarray) -> float:
    """Median autocorrelation pitch over the loud 40 ms windows."""
    size = RATE // 25
    estimates = []
    for start in range(0, len(samples) - size, size):
        window = samples[start : start + size].astype(np.float64)
        if np.sqrt(np.mean(window**2)) < 0.05:
            continue
        window = window - window.mean()
        corr = np.correlate(window, window, mode="full")[size - 1 :]
        low, high = RATE // 400, RATE // 70
        estimates.append(RATE / (low + int(np.argmax(corr[low:high]))))
    return float(np.median(estimates))


def test_a_voice_is_reproducible_from_its_seed_whatever_the_chunking():
    whole = VoiceGenerator(seed=11, sample_rate=RATE).read(3 * RATE)
    voice = VoiceGenerator(seed=11, sample_rate=RATE)
    chunks = [voice.read(n) for n in (1, 319, 320, 4000, 20000, 3 * RATE - 24640)]
    assert np.array_equal(np.concatenate(chunks), whole)
    assert voice.position == 3 * RATE


def test_a_voice_talks_in_syllables_with_pauses():
    samples = VoiceGenerator(seed=4, sample_rate=RATE).read(10 * RATE)
    assert samples.dtype == np.float32 and np.abs(samples).max() <= 1.0
    rms = frame_rms(samples)
    silent = rms < 0.01 * rms.max()
    assert 0.1 < silent.mean() < 0.6  # gaps between words and phrases
    # The loudness rises and falls at a syllable rate (about 2..8 Hz), as speech does.
    envelope = rms - rms.mean()
    spectrum = np.abs(np.fft.rfft(envelope))
    hz = np.fft.rfftfreq(len(envelope), d=0.01)
    band = (hz >= 1.5) & (hz <= 8.0)
    assert spectrum[band].sum() > spectrum[hz > 8.0].sum()


def test_voices_with_different_seeds_sound_different_and_keep_their_own_pitch():
    voices = [VoiceGenerator(seed=seed, sample_rate=RATE) for seed in (1, 2, 3, 4, 5, 6)]
    for voice in voices:
        pitch = estimated_pitch(voice.read(6 * RATE))
        assert abs(pitch - voice.pitch_hz) < 0.2 * voice.pitch_hz, (voice.seed, pitch, voice.pitch_hz)
    assert len({round(voice.pitch_hz) for voice in voices}) == len(voices)
    first, second = (VoiceGenerator(seed=s, sample_rate=RATE).read(RATE) for s in (1, 2))
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.2


def test_a_voice_works_at_telephone_rate_and_as_int16():
    voice = VoiceGenerator(seed=9, sample_rate=8000)
    samples = voice.read_int16(8000)
    assert samples.dtype == np.int16 and np.abs(samples).max() > 1000
    with pytest.raises(ValueError, match="sample_rate"):
        VoiceGenerator(seed=1, sample_rate=4000)
