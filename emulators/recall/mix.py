"""The meeting's synthetic mix: one tone per audible participant, and the mixed video frame (RTMP).

Importable without the emulator (no asyncio, no aiohttp): the RTMP worker process renders and mixes from a
``MixScene``, a picklable snapshot of who is present, speaking and audible.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from clients import recall_wire as wire
from emulators.kit import synth
from emulators.kit.stamp import FrameStamp, StreamKind, paint_stamp
from emulators.recall.meeting import Meeting
from emulators.recall.tiles import TileRenderer, TileSpec

AUDIO_CHUNK_S = 0.1


class Voices(Protocol):
    """Who can be heard: a Meeting, or a MixScene snapshot of one."""

    @property
    def roster(self) -> Mapping[int, Any]: ...

    @property
    def muted(self) -> Collection[int]: ...

    def audible(self) -> list[int]: ...


class AudioMixer:
    """One tone per participant while audible (speaking, present, unmuted), summed; continuous phase."""

    def __init__(self, meeting: Voices) -> None:
        self.meeting = meeting
        self._generators: dict[int, synth.ToneGenerator] = {}

    def _generator(self, pid: int) -> synth.ToneGenerator:
        gen = self._generators.get(pid)
        if gen is None:
            index = sorted(self.meeting.roster).index(pid) if pid in self.meeting.roster else 0
            gen = self._generators[pid] = synth.ToneGenerator(220.0 + 110.0 * index, wire.AUDIO_SAMPLE_RATE, 0.25)
        return gen

    def mixed(self, n: int) -> bytes:
        audible = self.meeting.audible()
        if not audible:
            return bytes(2 * n)
        signal = synth.mix(*(self._generator(pid).read(n) for pid in audible))
        return synth.to_int16(signal).astype("<i2").tobytes()

    def single(self, pid: int, n: int) -> bytes | None:
        """A participant's own audio; None while muted (no packets), zeros while silent."""
        if pid in self.meeting.muted:
            return None
        if pid not in self.meeting.audible():
            return bytes(2 * n)
        return self._generator(pid).read_int16(n).astype("<i2").tobytes()


@dataclass(frozen=True)
class MixScene:
    """A snapshot of the meeting for the mixed video and audio: present people, the speaker, who is audible."""

    people: tuple[tuple[int, str], ...]
    speaker: tuple[int, str] | None
    audible_ids: tuple[int, ...]
    roster_ids: tuple[int, ...]
    muted_ids: frozenset[int] = frozenset()

    @classmethod
    def of(cls, meeting: Meeting) -> MixScene:
        speaker = meeting.active_speaker
        return cls(tuple((p.id, p.name) for p in meeting.present.values()),
                   None if speaker is None else (speaker.id, speaker.name),
                   tuple(meeting.audible()), tuple(meeting.roster), frozenset(meeting.muted))

    @property
    def roster(self) -> Mapping[int, Any]:
        return dict.fromkeys(self.roster_ids)

    @property
    def muted(self) -> Collection[int]:
        return self.muted_ids

    def audible(self) -> list[int]:
        return list(self.audible_ids)


EMPTY_SCENE = MixScene((), None, (), ())


class SceneVoices:
    """The audio mixer's view of a meeting that changes scene by scene: whichever scene was set last."""

    def __init__(self) -> None:
        self.scene = EMPTY_SCENE

    @property
    def roster(self) -> Mapping[int, Any]:
        return self.scene.roster

    @property
    def muted(self) -> Collection[int]:
        return self.scene.muted

    def audible(self) -> list[int]:
        return self.scene.audible()


def compose_mix(renderer: TileRenderer, scene: MixScene, width: int, height: int, *, gallery: bool,
                index: int, capture_ms: int) -> np.ndarray:
    """One frame of the mixed video: a grid of everyone present, or the active speaker full frame."""
    speaker = scene.speaker
    if not gallery or not scene.people:
        spec = TileSpec(StreamKind.RECALL_MIXED, speaker[0] if speaker else 0,
                        speaker[1] if speaker else "Waiting for others to join", width, height,
                        speaker is not None and speaker[0] in scene.audible_ids)
        frame = renderer.background(spec).copy()
    else:
        cols = math.ceil(math.sqrt(len(scene.people)))
        rows = math.ceil(len(scene.people) / cols)
        tw, th = (width // cols) & ~1, (height // rows) & ~1
        frame = synth.solid(width, height, (12, 12, 16))
        for i, (pid, name) in enumerate(scene.people):
            x, y = (i % cols) * tw, (i // cols) * th
            frame[y:y + th, x:x + tw] = renderer.background(TileSpec(StreamKind.RECALL_MIXED, pid, name, tw, th))
    bar = max(4, width // 48)
    synth.fill_rect(frame, (index * bar) % max(1, width - bar), height // 3, bar, height // 6, (250, 200, 60))
    stamp_id = speaker[0] if speaker and not gallery else 0
    return paint_stamp(frame, FrameStamp(StreamKind.RECALL_MIXED, stamp_id, index, capture_ms))
