"""Deterministic synthetic media primitives: numpy drawing for frames, tones and speech-like voices for audio.

Each device composes its own scene from these. Drawing works in place on HxWx3 uint8 RGB frames (or HxW
grey/depth frames with a scalar colour) and clips to the frame, so moving objects may leave it. For speed,
render static parts once (a gradient sky, a tile background) and start each frame from `background.copy()`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from emulators.kit.font import GLYPH_HEIGHT, text_mask

__all__ = [
    "Color",
    "ToneGenerator",
    "VoiceGenerator",
    "draw_disc",
    "draw_rect_outline",
    "draw_text",
    "fill_rect",
    "horizontal_gradient",
    "mix",
    "solid",
    "text_size",
    "to_float32",
    "to_int16",
    "tone",
    "vertical_gradient",
]

Color = int | tuple[int, int, int]


# --- pictures -----------------------------------------------------------------------------------------


def _pixel(frame: np.ndarray, color: Color) -> np.ndarray | int:
    """`color` in a form numpy can assign to one pixel of `frame`, checked against the frame's layout."""
    if frame.ndim == 3:
        if isinstance(color, int):
            return np.full(frame.shape[2], color, dtype=frame.dtype)
        if len(color) != frame.shape[2]:
            raise ValueError(f"color must have {frame.shape[2]} components for this frame, got {color!r}")
        return np.asarray(color, dtype=frame.dtype)
    if not isinstance(color, int | np.integer):
        raise ValueError(f"a single-channel frame takes a scalar color, got {color!r}")
    return int(color)


def solid(width: int, height: int, color: Color = 0) -> np.ndarray:
    """A new HxWx3 uint8 frame filled with `color` (an int gives grey)."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[...] = _pixel(frame, color)
    return frame


def _clip(frame: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    height, width = frame.shape[:2]
    return max(0, x), max(0, y), min(width, x + w), min(height, y + h)


def _pixel_row(frame: np.ndarray, color: Color, width: int) -> np.ndarray:
    """`width` pixels of `color`: assigning a whole row broadcasts far faster than assigning one pixel."""
    row = np.empty((width, *frame.shape[2:]), dtype=frame.dtype)
    row[...] = _pixel(frame, color)
    return row


def fill_rect(frame: np.ndarray, x: int, y: int, w: int, h: int, color: Color) -> None:
    """Fill the w x h rectangle whose top-left is (x, y); the part outside the frame is dropped."""
    x0, y0, x1, y1 = _clip(frame, x, y, w, h)
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = _pixel_row(frame, color, x1 - x0)


def draw_rect_outline(
    frame: np.ndarray, x: int, y: int, w: int, h: int, color: Color, thickness: int = 2
) -> None:
    """A rectangle's border, `thickness` px wide, drawn inside the w x h box."""
    t = max(1, min(thickness, w // 2 or 1, h // 2 or 1))
    fill_rect(frame, x, y, w, t, color)
    fill_rect(frame, x, y + h - t, w, t, color)
    fill_rect(frame, x, y, t, h, color)
    fill_rect(frame, x + w - t, y, t, h, color)


def draw_disc(frame: np.ndarray, cx: float, cy: float, radius: float, color: Color) -> None:
    """A filled disc centred at (cx, cy): every pixel whose centre (x + 0.5, y + 0.5) lies within radius."""
    if radius <= 0:
        return
    height, width = frame.shape[:2]
    y0, y1 = max(0, math.floor(cy - radius)), min(height, math.ceil(cy + radius) + 1)
    if y0 >= y1:
        return
    dy = np.arange(y0, y1, dtype=np.float64) + 0.5 - cy
    half = np.sqrt(np.maximum(radius * radius - dy * dy, 0.0))
    # Each row of a disc is one span [first, last]; copying spans beats a boolean-mask scatter.
    first = np.maximum(np.ceil(cx - half - 0.5), 0).astype(np.int64)
    last = np.minimum(np.floor(cx + half - 0.5), width - 1).astype(np.int64)
    inside = (np.abs(dy) <= radius) & (first <= last)
    if not inside.any():
        return
    row = _pixel_row(frame, color, int(last[inside].max() - first[inside].min() + 1))
    for y, a, b in zip(np.nonzero(inside)[0] + y0, first[inside], last[inside], strict=True):
        frame[y, a : b + 1] = row[: b - a + 1]


def text_size(text: str, scale: int = 1) -> tuple[int, int]:
    """(width, height) in px that `draw_text` covers for this text and scale."""
    mask = text_mask(text, scale)
    return mask.shape[1], mask.shape[0]


def draw_text(frame: np.ndarray, x: int, y: int, text: str, color: Color, scale: int = 1) -> tuple[int, int]:
    """Draw one line of text with the built-in 5x7 font, top-left at (x, y); returns its (width, height)."""
    mask = text_mask(text, scale)
    h, w = mask.shape
    x0, y0, x1, y1 = _clip(frame, x, y, w, h)
    if x0 < x1 and y0 < y1:
        visible = mask[y0 - y : y1 - y, x0 - x : x1 - x]
        frame[y0:y1, x0:x1][visible] = _pixel(frame, color)
    return w, GLYPH_HEIGHT * scale


def _gradient(length: int, start: Color, end: Color) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, length, dtype=np.float32)[:, None]
    a = np.asarray((start,) * 3 if isinstance(start, int) else start, dtype=np.float32)
    b = np.asarray((end,) * 3 if isinstance(end, int) else end, dtype=np.float32)
    return np.rint(a + (b - a) * ramp).astype(np.uint8)


def vertical_gradient(width: int, height: int, top: Color, bottom: Color) -> np.ndarray:
    """A new HxWx3 frame blending from `top` (row 0) to `bottom` (last row)."""
    column = _gradient(height, top, bottom)
    return np.ascontiguousarray(np.broadcast_to(column[:, None, :], (height, width, 3)))


def horizontal_gradient(width: int, height: int, left: Color, right: Color) -> np.ndarray:
    """A new HxWx3 frame blending from `left` (column 0) to `right` (last column)."""
    row = _gradient(width, left, right)
    return np.ascontiguousarray(np.broadcast_to(row[None, :, :], (height, width, 3)))


# --- audio --------------------------------------------------------------------------------------------


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"sample count must be a non-negative integer, got {n!r}")


def tone(
    freq: float, sample_rate: int, n: int, phase: float = 0.0, amplitude: float = 0.5
) -> tuple[np.ndarray, float]:
    """n float32 samples of a sine starting at `phase` (in cycles); returns (samples, phase after them).

    Passing the returned phase into the next call continues the wave without a click.
    """
    _check_count(n)
    if sample_rate <= 0 or not 0 <= freq < sample_rate / 2:
        raise ValueError(f"freq must be in 0..{sample_rate / 2} Hz (below Nyquist), got {freq}")
    step = freq / sample_rate
    cycles = phase + step * np.arange(n, dtype=np.float64)
    samples = (amplitude * np.sin(2 * np.pi * cycles)).astype(np.float32)
    return samples, float((phase + step * n) % 1.0)


@dataclass
class ToneGenerator:
    """A continuous sine: successive `read` calls join seamlessly (the phase is carried)."""

    freq: float
    sample_rate: int
    amplitude: float = 0.5
    phase: float = 0.0

    def read(self, n: int) -> np.ndarray:
        samples, self.phase = tone(self.freq, self.sample_rate, n, self.phase, self.amplitude)
        return samples

    def read_int16(self, n: int) -> np.ndarray:
        return to_int16(self.read(n))


def to_int16(samples: np.ndarray) -> np.ndarray:
    """float samples in -1..1 (clipped) to int16."""
    return cast(np.ndarray, np.rint(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16))


def to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 samples to float32 in -1..1."""
    return np.asarray(samples, dtype=np.float32) / 32768.0


def mix(*signals: np.ndarray, gains: Sequence[float] | None = None) -> np.ndarray:
    """Sum equal-length signals (float or int16, each scaled by its gain) into float32, clipped to -1..1."""
    if not signals:
        raise ValueError("mix needs at least one signal")
    if gains is not None and len(gains) != len(signals):
        raise ValueError(f"gains must have one entry per signal ({len(signals)}), got {len(gains)}")
    length = len(signals[0])
    out = np.zeros(length, dtype=np.float32)
    for index, signal in enumerate(signals):
        if len(signal) != length:
            raise ValueError(f"signal {index} has {len(signal)} samples, expected {length} like signal 0")
        samples = to_float32(signal) if np.asarray(signal).dtype == np.int16 else np.asarray(signal, np.float32)
        out += samples * (1.0 if gains is None else gains[index])
    return np.clip(out, -1.0, 1.0, out=out)


# Formants (F1, F2, F3 in Hz) of five vowels for an adult voice; each speaker scales them.
_VOWELS: tuple[tuple[float, float, float], ...] = (
    (730.0, 1090.0, 2440.0),  # a
    (530.0, 1840.0, 2480.0),  # e
    (270.0, 2290.0, 3010.0),  # i
    (570.0, 840.0, 2410.0),  # o
    (300.0, 870.0, 2240.0),  # u
)
_FORMANT_BANDWIDTHS = np.array([90.0, 110.0, 170.0])
_FORMANT_GAINS = np.array([1.0, 0.6, 0.3])


@dataclass
class _Segment:
    """One stretch of a voice's script: a voiced syllable or a silent gap, in absolute samples."""

    start: int
    length: int
    voiced: bool
    f0_start: float = 0.0
    f0_end: float = 0.0
    harmonic_gains: np.ndarray | None = None
    onset_noise: np.ndarray | None = None


@dataclass
class VoiceGenerator:
    """Speech-like audio for one participant: a seeded voice saying seeded syllables, words and phrases.

    Voiced syllables are harmonics of a gliding pitch shaped by vowel formants, under a syllable envelope
    with a short noise burst for the consonant; words and phrases are separated by silences. The seed fixes
    the voice (pitch, vocal-tract size, speaking rate) and the script, so different seeds sound distinct
    and one seed always produces the same samples, however they are read in chunks.
    """

    seed: int
    sample_rate: int = 16000
    amplitude: float = 0.6
    pitch_hz: float = field(init=False)
    formant_scale: float = field(init=False)
    syllables_per_second: float = field(init=False)

    def __post_init__(self) -> None:
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, got {self.sample_rate}")
        self._rng = np.random.default_rng([0x5EED, self.seed])
        self.pitch_hz = float(self._rng.uniform(90.0, 240.0))
        # Higher voices tend to come with shorter vocal tracts, so formants follow pitch a little.
        self.formant_scale = float(0.85 + 0.25 * (self.pitch_hz - 90.0) / 150.0 + self._rng.uniform(-0.05, 0.05))
        self.syllables_per_second = float(self._rng.uniform(3.5, 6.0))
        self._segments: list[_Segment] = []
        self._script_end = 0
        self._position = 0
        self._phase = 0.0  # fundamental phase in cycles, carried across syllables and reads

    @property
    def position(self) -> int:
        """Samples produced so far."""
        return self._position

    def read(self, n: int) -> np.ndarray:
        """The next n float32 samples."""
        _check_count(n)
        out = np.zeros(n, dtype=np.float32)
        start, end = self._position, self._position + n
        while self._script_end < end:
            self._write_phrase()
        for segment in self._segments:
            seg_end = segment.start + segment.length
            if seg_end <= start or segment.start >= end:
                continue
            lo, hi = max(start, segment.start), min(end, seg_end)
            if segment.voiced:
                out[lo - start : hi - start] = self._render(segment, lo, hi)
        # Forget segments wholly in the past; the script ahead stays.
        self._segments = [s for s in self._segments if s.start + s.length > end]
        self._position = end
        return out

    def read_int16(self, n: int) -> np.ndarray:
        return to_int16(self.read(n))

    # The script: phrases of words of syllables, drawn from the voice's own RNG in order.
    def _write_phrase(self) -> None:
        rng = self._rng
        sr = self.sample_rate
        words = int(rng.integers(3, 9))
        syllable_total = []
        for _ in range(words):
            syllable_total.append(int(rng.integers(1, 4)))
        count = sum(syllable_total)
        index = 0
        for word, syllables in enumerate(syllable_total):
            for syllable in range(syllables):
                # Phrase declination: pitch drifts down across the phrase, with a stressed first syllable.
                progress = index / max(1, count - 1)
                base = self.pitch_hz * (1.12 - 0.22 * progress) * (1.08 if syllable == 0 else 1.0)
                duration = rng.uniform(0.7, 1.3) / self.syllables_per_second
                self._add_syllable(base, duration)
                index += 1
                if syllable + 1 < syllables:
                    self._add_gap(int(rng.uniform(0.01, 0.03) * sr))
            if word + 1 < words:
                self._add_gap(int(rng.uniform(0.05, 0.16) * sr))
        self._add_gap(int(rng.uniform(0.35, 0.9) * sr))

    def _add_gap(self, length: int) -> None:
        if length > 0:
            self._segments.append(_Segment(self._script_end, length, voiced=False))
            self._script_end += length

    def _add_syllable(self, base_f0: float, duration: float) -> None:
        rng = self._rng
        length = max(1, int(duration * self.sample_rate))
        f0_start = base_f0 * rng.uniform(0.96, 1.04)
        f0_end = base_f0 * rng.uniform(0.9, 1.0)
        vowel = np.array(_VOWELS[int(rng.integers(len(_VOWELS)))]) * self.formant_scale
        top = min(4000.0, 0.45 * self.sample_rate)
        harmonics = np.arange(1, int(top // max(f0_start, f0_end)) + 1, dtype=np.float64)
        frequencies = harmonics * (f0_start + f0_end) / 2
        # Harmonic amplitudes: resonance peaks at the formants over a falling glottal tilt.
        offsets = (frequencies[:, None] - vowel[None, :]) / (_FORMANT_BANDWIDTHS[None, :] / 2)
        gains = (_FORMANT_GAINS[None, :] / (1.0 + offsets**2)).sum(axis=1) / (1.0 + frequencies / 600.0)
        gains /= gains.sum()
        onset = int(rng.uniform(0.015, 0.045) * self.sample_rate)
        noise = (rng.standard_normal(onset) * 0.15 * np.linspace(1.0, 0.0, onset)).astype(np.float32)
        self._segments.append(
            _Segment(self._script_end, length, True, f0_start, f0_end, gains.astype(np.float32), noise)
        )
        self._script_end += length

    def _render(self, segment: _Segment, lo: int, hi: int) -> np.ndarray:
        assert segment.harmonic_gains is not None and segment.onset_noise is not None
        local = np.arange(lo - segment.start, hi - segment.start, dtype=np.float64)
        u = local / segment.length
        f0 = segment.f0_start + (segment.f0_end - segment.f0_start) * u
        cycles = self._phase + np.cumsum(f0 / self.sample_rate)
        self._phase = float(cycles[-1] % 1.0)
        harmonics = np.arange(1, len(segment.harmonic_gains) + 1, dtype=np.float64)[:, None]
        # Reduce to one cycle in float64 first, so float32 sines stay exact late in a long call.
        turns = ((harmonics * cycles[None, :]) % 1.0).astype(np.float32)
        voiced = segment.harmonic_gains @ np.sin(np.float32(2 * np.pi) * turns)
        envelope = np.sin(np.pi * u) ** 0.6
        signal = voiced * envelope.astype(np.float32)
        onset_end = min(hi - segment.start, len(segment.onset_noise))
        if lo - segment.start < onset_end:
            signal[: onset_end - (lo - segment.start)] += segment.onset_noise[lo - segment.start : onset_end]
        return cast(np.ndarray, (self.amplitude * signal).astype(np.float32))
