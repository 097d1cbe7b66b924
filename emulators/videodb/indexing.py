"""Deterministic offline "AI": visual descriptions from frame analysis or a scenario script, energy-based
voice activity with seeded text, and batching of words/sentences/time into index records.

Nothing here reads a clock or does I/O; times are unix seconds supplied by the ingest worker.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clients.stamp import StampError, read_stamp
from emulators.kit.fake_text import seeded_faker

# Hue buckets (degrees, upper bound exclusive) for naming saturated colours.
_HUES: tuple[tuple[float, str], ...] = (
    (15, "red"), (40, "orange"), (70, "yellow"), (170, "green"), (200, "cyan"), (260, "blue"), (345, "magenta"),
    (361, "red"),
)
_NAMES = ("black", "grey", "white", *dict.fromkeys(name for _, name in _HUES))


def colour_names(pixels: np.ndarray) -> np.ndarray:
    """Index into _NAMES for each RGB pixel (N x 3 float): achromatic by value, else by hue."""
    hi = pixels.max(axis=1)
    lo = pixels.min(axis=1)
    value = hi / 255.0
    saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-6), 0.0)
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    hue = np.degrees(np.arctan2(np.sqrt(3.0) * (g - b), 2.0 * r - g - b)) % 360.0
    out = np.empty(len(pixels), dtype=np.int64)
    bounds = np.array([h for h, _ in _HUES])
    hue_names = np.array([_NAMES.index(n) for _, n in _HUES])
    out[:] = hue_names[np.searchsorted(bounds, hue, side="right")]
    achromatic = (saturation < 0.25) | (value < 0.15)
    out[achromatic] = np.where(value[achromatic] < 0.2, 0, np.where(value[achromatic] < 0.75, 1, 2))
    return out


# ----- visual ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameSample:
    """What the ingest worker learned from one decoded frame, sampled at the stream's sample_rate."""

    time: float  # unix seconds of the frame (source clock mapped to wall time)
    width: int
    height: int
    luma: float  # mean luma 0..255
    colours: tuple[str, ...]  # dominant named colours, most frequent first
    thumb: np.ndarray = field(repr=False, compare=False)  # small grey thumbnail for motion
    stamp: tuple[int, int] | None = None  # (stream_id, frame_index) when a frame stamp decodes


def analyse_frame(rgb: np.ndarray, time: float, *, stamp_source: np.ndarray | None = None) -> FrameSample:
    """Colour, brightness, a motion thumbnail and any frame stamp of an RGB (HxWx3 uint8) frame.

    ``stamp_source`` is the full-size picture (e.g. planar YUV) when ``rgb`` was scaled down for analysis.
    """
    height, width = rgb.shape[:2]
    step = max(1, min(height, width) // 60)
    small = rgb[::step, ::step].astype(np.float32)
    grey = small @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    pixels = small.reshape(-1, 3)
    counts = np.bincount(colour_names(pixels), minlength=len(_NAMES))
    order = np.argsort(-counts, kind="stable")
    total = counts.sum()
    colours = tuple(_NAMES[i] for i in order[:3] if counts[i] >= 0.12 * total)
    stamp: tuple[int, int] | None = None
    try:
        read = read_stamp(rgb if stamp_source is None else stamp_source)
        stamp = (int(read.stream_id), int(read.frame_index))
    except (StampError, ValueError, IndexError):
        stamp = None
    return FrameSample(time, width, height, float(grey.mean()), colours or ("grey",), grey, stamp)


def brightness_word(luma: float) -> str:
    return "dark" if luma < 60 else "dim" if luma < 120 else "bright"


def motion_word(samples: list[FrameSample]) -> tuple[str, float]:
    diffs = [
        float(np.abs(a.thumb - b.thumb).mean())
        for a, b in itertools.pairwise(samples)
        if a.thumb.shape == b.thumb.shape
    ]
    level = float(np.mean(diffs)) if diffs else 0.0
    return ("static" if level < 2 else "some motion" if level < 12 else "significant motion"), round(level, 2)


@dataclass
class VisualAnalysis:
    description: str
    facts: dict[str, Any]


def describe_window(samples: list[FrameSample], script_text: str | None) -> VisualAnalysis:
    """One description for the frames of a window; scripted text wins when the scenario provides it."""
    luma = float(np.mean([s.luma for s in samples]))
    colour_votes: dict[str, int] = {}
    for s in samples:
        for rank, c in enumerate(s.colours):
            colour_votes[c] = colour_votes.get(c, 0) + (3 - rank)
    colours = sorted(colour_votes, key=lambda c: (-colour_votes[c], c))[:3]
    motion, level = motion_word(samples)
    stamps = [s.stamp for s in samples if s.stamp is not None]
    facts: dict[str, Any] = {
        "brightness": brightness_word(luma),
        "mean_luma": round(luma, 1),
        "dominant_colors": colours,
        "motion": motion,
        "motion_level": level,
        "frame_count": len(samples),
        "resolution": f"{samples[0].width}x{samples[0].height}",
    }
    if stamps:
        facts["frame_stamp"] = {"stream_id": stamps[0][0], "first_frame": stamps[0][1], "last_frame": stamps[-1][1]}
    if script_text:
        return VisualAnalysis(script_text, {**facts, "scripted": True})
    colour_text = " and ".join(colours) if len(colours) <= 2 else f"{colours[0]}, {colours[1]} and {colours[2]}"
    text = f"A {facts['brightness']} scene dominated by {colour_text} with {motion}"
    if stamps:
        text += f"; frame stamp of stream {stamps[0][0]}, frames {stamps[0][1]} to {stamps[-1][1]}"
    return VisualAnalysis(text + ".", facts)


# A template entry: "key": followed by an example value, a quoted type name or a <placeholder>.
_JSON_KEY = re.compile(
    r'"([A-Za-z_][A-Za-z0-9_ ]{0,40})"\s*:\s*'
    r'(?:"([^"]{0,60})"|(\[|\{|true\s*/\s*false|true|false|null|-?\d[\d.]*|<[^>]{0,40}>|[A-Za-z]+))?'
)
_BOOLEAN_WORDS = {"true", "false", "bool", "boolean", "true/false", "yes/no"}
_NUMBER_WORDS = {"number", "integer", "int", "float", "count", "double", "num"}
_ARRAY_WORDS = {"array", "list"}


def wants_json(prompt: str) -> bool:
    return "json" in prompt.lower()


def template_type(quoted: str, raw: str) -> str:
    """The JSON type a template asks for: boolean, number, array, object or string."""
    word = (raw or quoted).strip().strip("<>").replace(" ", "").lower()
    if raw == "[" or word in _ARRAY_WORDS:
        return "array"
    if raw == "{" or word == "object":
        return "object"
    if word in _BOOLEAN_WORDS:
        return "boolean"
    if word in _NUMBER_WORDS or (raw and (raw[0].isdigit() or raw[0] == "-")):
        return "number"
    return "string"


def render_for_prompt(prompt: str, analysis: VisualAnalysis) -> str:
    """The record text for a prompt: plain prose, or a JSON object when the prompt asks for JSON."""
    if not wants_json(prompt):
        return analysis.description
    keys = _JSON_KEY.findall(prompt)
    if not keys:
        obj: dict[str, Any] = {"description": analysis.description, **analysis.facts}
        return json.dumps(obj, sort_keys=False)
    obj = {key: _value_for(key, template_type(quoted, raw), analysis) for key, quoted, raw in keys}
    return json.dumps(obj)


def _value_for(key: str, kind: str, analysis: VisualAnalysis) -> Any:
    """What the analysis says about ``key``, as a value of the template's type."""
    k = key.lower()
    facts = analysis.facts
    colours: list[str] = facts["dominant_colors"]
    if "dark" in k:
        return {"boolean": facts["brightness"] == "dark", "number": facts["mean_luma"]}.get(kind, facts["brightness"])
    if "bright" in k or "light" in k:
        by_kind = {"boolean": facts["brightness"] == "bright", "number": facts["mean_luma"]}
        return by_kind.get(kind, facts["brightness"])
    if "motion" in k or "movement" in k or "activity" in k or "moving" in k:
        moving = facts["motion"] != "static"
        return {"boolean": moving, "number": facts["motion_level"]}.get(kind, facts["motion"])
    if "colo" in k:
        by_kind = {"boolean": bool(colours), "number": len(colours), "array": colours}
        return by_kind.get(kind, ", ".join(colours))
    if "stamp" in k or ("frame" in k and kind in ("object", "string")):
        return facts.get("frame_stamp")
    if kind == "string" and any(w in k for w in ("description", "summary", "scene", "caption", "text")):
        return analysis.description
    # Nothing the analysis can see (people, vehicles, ...): the empty value of the template's type.
    return {"boolean": False, "number": 0, "array": [], "object": {}}.get(kind, "none")


@dataclass
class VisualWindow:
    """Collects samples for one index's ``time``-second windows and closes a window when time passes it."""

    window_s: float
    frame_count: int
    start: float | None = None
    samples: list[FrameSample] = field(default_factory=list)

    def feed(self, sample: FrameSample) -> tuple[float, float, list[FrameSample]] | None:
        if self.start is None:
            self.start = sample.time
        if sample.time < self.start:
            return None  # a late frame of a window that already closed on time
        closed = None
        if sample.time >= self.start + self.window_s:
            if self.samples:
                closed = (self.start, self.start + self.window_s, self.pick(self.samples))
            # Skip whole windows with no frames (a source outage) rather than emitting empty records.
            skipped = int((sample.time - self.start) // self.window_s)
            self.start += skipped * self.window_s
            self.samples = []
        self.samples.append(sample)
        return closed

    @property
    def closes_at(self) -> float | None:
        """When the open window's time is over (None: no frame waits in it)."""
        return self.start + self.window_s if self.start is not None and self.samples else None

    def close_due(self, now: float) -> tuple[float, float, list[FrameSample]] | None:
        """The open window once ``now`` has passed its end: a source outage sends no next frame to close it."""
        closes_at = self.closes_at
        if closes_at is None or self.start is None or now < closes_at:
            return None
        closed = (self.start, closes_at, self.pick(self.samples))
        self.start, self.samples = closes_at, []
        return closed

    def flush(self, now: float) -> tuple[float, float, list[FrameSample]] | None:
        """The last, partial window when the stream stops: it ends at ``now`` or its own end, if earlier."""
        closes_at = self.closes_at
        if closes_at is None or self.start is None:
            return None
        end = max(min(closes_at, now), self.samples[-1].time)
        closed = (self.start, end, self.pick(self.samples))
        self.start, self.samples = None, []
        return closed

    def pick(self, samples: list[FrameSample]) -> list[FrameSample]:
        """frame_count frames spread evenly over the window."""
        if len(samples) <= self.frame_count:
            return samples
        positions = np.linspace(0, len(samples) - 1, self.frame_count).round().astype(int)
        return [samples[i] for i in positions]


# ----- audio -----------------------------------------------------------------------------------------
VAD_FRAME_S = 0.03
MIN_SPEECH_S = 0.3
MERGE_GAP_S = 0.5


# Speech changes its spectrum from one 30 ms frame to the next (syllables, formants, pitch); a steady tone
# does not at all and held musical notes little. Measured: espeak-ng speech 0.67, a tremolo melody 0.24, a
# sine 0.0 (mean distance of consecutive unit-norm magnitude spectra over the voiced frames).
SPEECH_MIN_FLUX = 0.4


@dataclass
class SpeechSegment:
    start: float
    end: float
    flux: float = 1.0  # mean spectral flux of its voiced frames (1.0 when not measured)

    @property
    def is_speech(self) -> bool:
        return self.flux >= SPEECH_MIN_FLUX


@dataclass
class VoiceActivity:
    """Energy VAD over 30 ms RMS frames with an adaptive noise floor; emits speech segments once closed."""

    floor: float = 1e-4
    ratio: float = 4.0
    absolute_min: float = 0.01
    _speech_start: float | None = None
    _last_voiced: float | None = None
    _pending: SpeechSegment | None = None
    max_segment_s: float = 3.0
    _flux: list[float] = field(default_factory=list)

    def feed(self, start: float, rms: list[float], flux: list[float] | None = None) -> list[SpeechSegment]:
        """Segments of activity closed by these frames; ``flux`` (per frame) tells speech from tones."""
        out: list[SpeechSegment] = []
        for i, level in enumerate(rms):
            t = start + i * VAD_FRAME_S
            voiced = level > max(self.absolute_min, self.floor * self.ratio)
            if not voiced:
                # The floor follows the quiet frames only, so steady speech does not raise it.
                self.floor = 0.95 * self.floor + 0.05 * level
            if voiced:
                if self._speech_start is None:
                    self._speech_start = t
                    self._flux = []
                self._last_voiced = t + VAD_FRAME_S
                if flux is not None and i < len(flux):
                    self._flux.append(flux[i])
                # A long monologue still yields records: cut long segments.
                if self._last_voiced - self._speech_start >= self.max_segment_s:
                    out += self._close(self._speech_start, self._last_voiced)
                    self._speech_start = None
            elif self._speech_start is not None and self._last_voiced is not None:
                if t - self._last_voiced >= MERGE_GAP_S:
                    out += self._close(self._speech_start, self._last_voiced)
                    self._speech_start = None
        return out

    def _close(self, start: float, end: float) -> list[SpeechSegment]:
        flux = float(np.mean(self._flux)) if self._flux else 1.0
        self._flux = []
        if end - start < MIN_SPEECH_S:
            return []
        return [SpeechSegment(start, end, round(flux, 3))]


def rms_frames(samples: np.ndarray, rate: int) -> list[float]:
    """RMS of consecutive 30 ms frames of mono float samples in [-1, 1]."""
    n = int(rate * VAD_FRAME_S)
    usable = len(samples) // n * n
    if usable == 0:
        return []
    frames = samples[:usable].reshape(-1, n)
    return [float(x) for x in np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))]


def spectral_flux(samples: np.ndarray, rate: int) -> list[float]:
    """Per 30 ms frame: how far its unit-norm magnitude spectrum is from the previous frame's (0 .. sqrt 2)."""
    n = int(rate * VAD_FRAME_S)
    usable = len(samples) // n * n
    if usable == 0:
        return []
    frames = samples[:usable].reshape(-1, n).astype(np.float64)
    spectra = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1))
    unit = spectra / (np.linalg.norm(spectra, axis=1, keepdims=True) + 1e-12)
    steps = np.linalg.norm(np.diff(unit, axis=0), axis=1)
    first = steps[:1] if len(steps) else np.zeros(1)
    return [float(x) for x in np.concatenate([first, steps])]


WORDS_PER_SECOND = 2.5


def speech_text(rtstream_id: str, number: int, seconds: float, script: list[str] | None) -> str:
    """The words spoken in one speech segment: the scenario's next line, or seeded Faker sentences."""
    if script:
        return script[number % len(script)]
    digest = hashlib.sha256(f"{rtstream_id}:{number}".encode()).digest()
    fake = seeded_faker(int.from_bytes(digest[:8], "big"), "en_US")
    target = max(2, round(seconds * WORDS_PER_SECOND))
    words: list[str] = []
    sentences: list[str] = []
    while len(words) < target:
        sentence = fake.sentence(nb_words=min(12, max(3, target - len(words))))
        sentences.append(sentence)
        words += sentence.split()
    return " ".join(sentences)


def word_timestamps(text: str, start: float, end: float) -> list[dict[str, Any]]:
    words = text.split()
    if not words:
        return []
    step = (end - start) / len(words)
    return [
        {"word": w, "start": round(start + i * step, 3), "end": round(start + (i + 1) * step, 3)}
        for i, w in enumerate(words)
    ]


@dataclass
class AudioBatcher:
    """Batches transcript words into audio-index records every N words, N sentences or N seconds."""

    segmenter: str
    value: int
    _words: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, words: list[dict[str, Any]]) -> list[tuple[float, float, str]]:
        out: list[tuple[float, float, str]] = []
        for word in words:
            self._words.append(word)
            if self._full():
                out.append(self._flush())
        return out

    def _full(self) -> bool:
        if self.segmenter == "word":
            return len(self._words) >= self.value
        if self.segmenter == "sentence":
            ends = sum(1 for w in self._words if w["word"].endswith((".", "?", "!")))
            return ends >= self.value
        return self._words[-1]["end"] - self._words[0]["start"] >= self.value

    def _flush(self) -> tuple[float, float, str]:
        words, self._words = self._words, []
        return words[0]["start"], words[-1]["end"], " ".join(w["word"] for w in words)
