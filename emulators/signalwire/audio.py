"""Synthetic conference audio: per-participant voices on a speaking timeline, the pilot marker, codecs, playout.

Cheap by construction: each voice is a precomputed two-second loop per sample rate, and each conference encodes
a tick once per media format, however many streams carry it (encode once, fan out).
"""

from __future__ import annotations

import base64
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from clients.g711 import pcm16_to_alaw, pcm16_to_ulaw
from clients.signalwire_media import CHUNK_MS, MediaFormat
from emulators.kit.synth import VoiceGenerator
from emulators.signalwire.model import Conference, Participant

LOOP_S = 4  # seconds of each voice (and of the prompt pattern) kept as a loop
PILOT_EVERY = 50  # chunks: the first chunk of every second carries the pilot
PILOT_BASE_HZ = 2000
PILOT_STEP_HZ = 100
VOICE_PEAK = 0.3  # of full scale per voice, so a few talkers mixed stay clear of clipping
PROMPT_HZ = 440.0


def pilot_value(chunk: int) -> int | None:
    """The pilot symbol a 1-based chunk carries (``(chunk // 50) mod 16``), or None for ordinary chunks."""
    if (chunk - 1) % PILOT_EVERY:
        return None
    return (chunk // PILOT_EVERY) % 16


def pilot_frequency(value: int) -> float:
    return PILOT_BASE_HZ + PILOT_STEP_HZ * value


def pilot_samples(value: int, rate: int) -> np.ndarray:
    t = np.arange(rate * CHUNK_MS // 1000) / rate
    return np.round(0.5 * 32767 * np.sin(2 * np.pi * pilot_frequency(value) * t)).astype(np.int16)


def detect_pilot(samples: np.ndarray, rate: int) -> int | None:
    """The pilot symbol in a 20 ms frame (strongest of the 16 tones, if it dominates), else None."""
    x = samples.astype(np.float64)
    if not np.any(x):
        return None
    t = np.arange(len(x)) / rate
    powers = [abs(np.dot(x, np.exp(-2j * np.pi * pilot_frequency(v) * t))) for v in range(16)]
    best = int(np.argmax(powers))
    energy = float(np.sqrt(np.dot(x, x) * len(x)))
    return best if powers[best] > 0.6 * energy else None


# ----- codecs -----------------------------------------------------------------------------------------------
def encode(samples: np.ndarray, fmt: MediaFormat) -> bytes:
    """int16 samples in the stream's payload layout."""
    if fmt.encoding == "audio/x-mulaw":
        return pcm16_to_ulaw(samples)
    if fmt.bytes_per_sample == 1:
        return pcm16_to_alaw(samples)
    return samples.astype(">i2" if fmt.byte_order == "big" else "<i2").tobytes()


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Linear resampling; exact when the rates are equal (customer audio round-trips byte for byte)."""
    if source_rate == target_rate or len(samples) == 0:
        return samples
    n = len(samples) * target_rate // source_rate
    positions = np.arange(n) * (source_rate / target_rate)
    return np.interp(positions, np.arange(len(samples)), samples.astype(np.float64)).astype(np.int16)


# ----- voices -----------------------------------------------------------------------------------------------
@dataclass
class Voice:
    """A distinct synthetic talker (the kit's seeded VoiceGenerator), kept as a loop per sample rate.

    The loop makes any chunk addressable by media time, so every stream of a conference, whenever it
    started, hears the same words at the same moment; short fades hide the seam.
    """

    seed: int
    _loops: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def for_participant(cls, seed: int) -> Voice:
        return cls(seed)

    def loop(self, rate: int) -> np.ndarray:
        cached = self._loops.get(rate)
        if cached is None:
            samples = VoiceGenerator(seed=self.seed, sample_rate=rate, amplitude=VOICE_PEAK).read(rate * LOOP_S)
            fade = rate // 100
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            samples[:fade] *= ramp
            samples[-fade:] *= ramp[::-1]
            cached = (samples * 32767).astype(np.float32)
            self._loops[rate] = cached
        return cached

    def frame(self, media_ms: int, rate: int) -> np.ndarray:
        samples = rate * CHUNK_MS // 1000
        loop = self.loop(rate)
        start = (media_ms * rate // 1000) % len(loop)
        return loop[start : start + samples]


def _prompt_loop(rate: int) -> np.ndarray:
    """The opt-in outbound prompt: a 440 Hz beep of 400 ms every 2 s."""
    t = np.arange(rate * LOOP_S) / rate
    tone = 0.3 * 32767 * np.sin(2 * np.pi * PROMPT_HZ * t)
    return np.where(t % 2.0 < 0.4, tone, 0.0).astype(np.float32)


# ----- customer playout (bidirectional streams) ------------------------------------------------------------
@dataclass
class PlayoutQueue:
    """Audio a customer sent on one stream, played 20 ms per tick; marks fire when the audio before them played."""

    rate: int
    max_samples: int
    _chunks: deque[np.ndarray] = field(default_factory=deque)
    _marks: deque[tuple[int, str]] = field(default_factory=deque)
    pushed: int = 0
    played: int = 0
    dropped: int = 0

    @property
    def queued(self) -> int:
        return self.pushed - self.played

    def push(self, samples: np.ndarray) -> list[str]:
        """Queue audio; past the cap the oldest audio is dropped. Returns marks that dropping reached."""
        if len(samples):
            self._chunks.append(samples)
            self.pushed += len(samples)
        excess = self.queued - self.max_samples
        if excess > 0:
            self._take(excess)
            self.dropped += excess
        return self._reached()

    def mark(self, name: str) -> bool:
        """Queue a mark; True when nothing is queued, so the caller echoes it at once."""
        if self.queued == 0:
            return True
        self._marks.append((self.pushed, name))
        return False

    def play(self, samples: int) -> tuple[np.ndarray | None, list[str]]:
        """The next ``samples`` of playout (zero-padded) or None when idle, and the marks now reached."""
        if self.queued == 0:
            return None, []
        taken = self._take(min(samples, self.queued))
        frame = np.zeros(samples, dtype=np.int16)
        frame[: len(taken)] = taken
        return frame, self._reached()

    def clear(self) -> list[str]:
        """Flush the queue; every pending mark is echoed."""
        self._chunks.clear()
        self.played = self.pushed
        names = [name for _, name in self._marks]
        self._marks.clear()
        return names

    def _take(self, n: int) -> np.ndarray:
        parts = []
        while n > 0 and self._chunks:
            head = self._chunks[0]
            if len(head) <= n:
                parts.append(self._chunks.popleft())
                n -= len(head)
            else:
                parts.append(head[:n])
                self._chunks[0] = head[n:]
                n = 0
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        self.played += len(out)
        return out

    def _reached(self) -> list[str]:
        names = []
        while self._marks and self._marks[0][0] <= self.played:
            names.append(self._marks.popleft()[1])
        return names


# ----- one conference's audio -------------------------------------------------------------------------------
FormatKey = tuple[str, int, str]


def format_key(fmt: MediaFormat) -> FormatKey:
    return (fmt.encoding, fmt.sample_rate, fmt.byte_order)


@dataclass
class TickPlayout:
    """What customers' streams played into the conference during one tick: (rate, samples) per source."""

    sources: list[tuple[int, np.ndarray]]


class ConferenceAudio:
    """Renders a conference's inbound mix and outbound playout per 20 ms tick, base64-encoded per media format."""

    HISTORY_TICKS = 300  # 6 s: a stream may lag up to its 5 s backlog limit and still find its ticks

    def __init__(self, conference: Conference, *, origin_tick: int) -> None:
        self.conference = conference
        self.origin_tick = origin_tick
        self._voices: dict[str, Voice] = {}
        self._payloads: OrderedDict[tuple[str, int, FormatKey], str] = OrderedDict()
        self._playout: dict[int, TickPlayout] = {}
        self.queues: dict[str, PlayoutQueue] = {}  # stream sid -> its customer audio

    def media_ms(self, tick: int) -> int:
        return (tick - self.origin_tick) * CHUNK_MS

    def voice(self, participant: Participant) -> Voice:
        voice = self._voices.get(participant.call_sid)
        if voice is None:
            voice = Voice.for_participant(participant.voice_seed)
            self._voices[participant.call_sid] = voice
        return voice

    def prepare(self, fmt: MediaFormat) -> None:
        """Render every participant's voice loop and the pilot tones for a format (slow once; run it off-loop)."""
        for participant in list(self.conference.participants.values()):
            self.voice(participant).loop(fmt.sample_rate)
        for value in range(16):
            pilot_b64(value, fmt)
        silence_b64(fmt)

    def speakers(self, media_ms: int) -> list[Participant]:
        return [p for p in self.conference.participants.values() if p.speaks_at(media_ms)]

    # --- customer playout ---
    def play_tick(self, tick: int) -> dict[str, list[str]]:
        """Advance every stream's playout queue by one tick; returns marks reached, per stream sid."""
        sources: list[tuple[int, np.ndarray]] = []
        marks: dict[str, list[str]] = {}
        for sid, queue in self.queues.items():
            frame, reached = queue.play(queue.rate * CHUNK_MS // 1000)
            if frame is not None:
                sources.append((queue.rate, frame))
            if reached:
                marks[sid] = reached
        self._playout[tick] = TickPlayout(sources)
        self._playout.pop(tick - self.HISTORY_TICKS, None)
        return marks

    # --- payloads ---
    def inbound(self, tick: int, fmt: MediaFormat) -> str:
        key = ("inbound", tick, format_key(fmt))
        cached = self._payloads.get(key)
        if cached is None:
            cached = self._remember(key, self._encode(self.inbound_samples(tick, fmt.sample_rate), fmt))
        return cached

    def outbound(self, tick: int, fmt: MediaFormat) -> str:
        key = ("outbound", tick, format_key(fmt))
        cached = self._payloads.get(key)
        if cached is None:
            cached = self._remember(key, self._encode(self.outbound_samples(tick, fmt.sample_rate), fmt))
        return cached

    def inbound_samples(self, tick: int, rate: int) -> np.ndarray | None:
        media_ms = self.media_ms(tick)
        speakers = self.speakers(media_ms)
        if not speakers:
            return None
        mix = np.zeros(rate * CHUNK_MS // 1000, dtype=np.float32)
        for participant in speakers:
            mix += self.voice(participant).frame(media_ms, rate)
        return np.clip(mix, -32768, 32767).astype(np.int16)

    def outbound_samples(self, tick: int, rate: int) -> np.ndarray | None:
        playout = self._playout.get(tick)
        sources = playout.sources if playout else []
        if not sources and not self.conference.outbound_prompt:
            return None
        mix = np.zeros(rate * CHUNK_MS // 1000, dtype=np.float32)
        if self.conference.outbound_prompt:
            loop = _prompt_loop_cached(rate)
            start = (self.media_ms(tick) * rate // 1000) % len(loop)
            mix += loop[start : start + len(mix)]
        for source_rate, samples in sources:
            mix += resample(samples, source_rate, rate)[: len(mix)]
        return np.clip(mix, -32768, 32767).astype(np.int16)

    def _encode(self, samples: np.ndarray | None, fmt: MediaFormat) -> str:
        if samples is None:
            return silence_b64(fmt)
        return base64.b64encode(encode(samples, fmt)).decode("ascii")

    def _remember(self, key: tuple[str, int, FormatKey], value: str) -> str:
        self._payloads[key] = value
        while len(self._payloads) > self.HISTORY_TICKS * 4:
            self._payloads.popitem(last=False)
        return value


_PROMPTS: dict[int, np.ndarray] = {}
_SILENCE: dict[FormatKey, str] = {}
_PILOTS: dict[tuple[int, FormatKey], str] = {}


def _prompt_loop_cached(rate: int) -> np.ndarray:
    if rate not in _PROMPTS:
        _PROMPTS[rate] = _prompt_loop(rate)
    return _PROMPTS[rate]


def silence_b64(fmt: MediaFormat) -> str:
    key = format_key(fmt)
    if key not in _SILENCE:
        _SILENCE[key] = base64.b64encode(fmt.silence).decode("ascii")
    return _SILENCE[key]


def pilot_b64(value: int, fmt: MediaFormat) -> str:
    key = (value, format_key(fmt))
    if key not in _PILOTS:
        _PILOTS[key] = base64.b64encode(encode(pilot_samples(value, fmt.sample_rate), fmt)).decode("ascii")
    return _PILOTS[key]
