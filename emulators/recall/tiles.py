"""Participant tiles: which tile each stream shows at which size (the layout), and drawing them fast.

Pure numpy: the renderer caches each tile's static part; the RTMP mix composes tiles into a gallery or
the active speaker. The sizes per profile are dossier Q4.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from emulators.kit import synth
from emulators.kit.stamp import FrameStamp, StreamKind, paint_stamp, stamp_cell_size
from emulators.recall.meeting import Meeting, ScenarioParticipant
from emulators.recall.settings import VIDEO_DIMENSIONS

VIDEO_PERIOD_S = 0.5  # 2 fps, every generation


@dataclass(frozen=True)
class TileSpec:
    """What one frame of one stream shows; the renderer turns it into pixels."""

    kind: StreamKind
    participant_id: int
    name: str
    width: int
    height: int
    speaking: bool = False


def _palette(participant_id: int) -> tuple[int, int, int]:
    # A stable, muted colour per participant (golden-angle hue walk).
    hue = (participant_id * 0.618034) % 1.0
    r, g, b = (0.5 + 0.35 * math.cos(2 * math.pi * (hue + k / 3)) for k in range(3))
    return int(r * 160) + 40, int(g * 160) + 40, int(b * 160) + 40


class TileRenderer:
    """Draws tiles fast: the static part (colour, name) once per (tile, size), the moving part per frame."""

    def __init__(self) -> None:
        self._backgrounds: dict[tuple[Any, ...], np.ndarray] = {}
        self._lock = threading.Lock()

    def background(self, spec: TileSpec) -> np.ndarray:
        key = (spec.kind, spec.participant_id, spec.name, spec.width, spec.height)
        background = self._backgrounds.get(key)
        if background is not None:
            return background
        w, h = spec.width, spec.height
        if spec.kind == StreamKind.RECALL_SCREENSHARE:
            background = synth.solid(w, h, (236, 238, 242))
            band = max(4, h // 10)
            synth.fill_rect(background, 0, h - band, w, band, _palette(spec.participant_id))
            for row in range(3):  # "slide" lines
                synth.fill_rect(background, w // 8, h // 3 + row * (h // 8), w * 5 // 8, max(2, h // 60), 150)
            label = f"{spec.name} is presenting"
        else:
            background = synth.vertical_gradient(w, h, _palette(spec.participant_id), (20, 20, 28))
            label = spec.name
        scale = max(1, min(w // 160, h // 60))
        text_w, text_h = synth.text_size(label, scale)
        synth.draw_text(background, max(4, (w - text_w) // 2), h - text_h - max(4, h // 12), label, 255, scale)
        with self._lock:
            if len(self._backgrounds) > 512:
                self._backgrounds.clear()
            self._backgrounds[key] = background
        return background

    def render(self, spec: TileSpec, frame_index: int, capture_ms: int) -> np.ndarray:
        frame = self.background(spec).copy()
        w, h = spec.width, spec.height
        # The changing scene: a bar sweeping across below the stamp, one step per frame.
        cell = stamp_cell_size(w, h)
        bar_w = max(4, w // 24)
        x = (frame_index * bar_w) % max(1, w - bar_w)
        synth.fill_rect(frame, x, 9 * cell, bar_w, max(4, h // 6), (250, 200, 60))
        if spec.speaking:
            synth.draw_rect_outline(frame, 0, 0, w, h, (60, 220, 90), thickness=max(2, h // 90))
        stamp = FrameStamp(spec.kind, spec.participant_id & 0xFFFF, frame_index & 0xFFFFFFFF, capture_ms)
        return paint_stamp(frame, stamp)


@dataclass(frozen=True)
class TileLayout:
    """Tile sizes of one profile: participants shrink while any screenshare is on."""

    profile: str

    def size(self, kind: str, meeting: Meeting) -> tuple[int, int]:
        dims = VIDEO_DIMENSIONS[self.profile]
        if kind == "screenshare":
            return dims["screenshare"]
        return dims["webcam_while_sharing"] if meeting.screensharing else dims["webcam"]

    def webcam(self, meeting: Meeting, person: ScenarioParticipant,
               kind: StreamKind = StreamKind.RECALL_WEBCAM) -> TileSpec:
        w, h = self.size("webcam", meeting)
        return TileSpec(kind, person.id, person.name, w, h, person.id in meeting.audible())

    def screenshare(self, meeting: Meeting, person: ScenarioParticipant) -> TileSpec:
        w, h = self.size("screenshare", meeting)
        return TileSpec(StreamKind.RECALL_SCREENSHARE, person.id, person.name, w, h)

    def speaker(self, meeting: Meeting) -> TileSpec:
        """speaker_view: the active speaker (the host before anyone speaks), or a waiting card."""
        speaker = meeting.active_speaker
        if speaker is None:
            w, h = self.size("webcam", meeting)
            return TileSpec(StreamKind.RECALL_SPEAKER, 0, "Waiting for others to join", w, h)
        return self.webcam(meeting, speaker, StreamKind.RECALL_SPEAKER)

    def participant(self, meeting: Meeting, pid: int) -> TileSpec | None:
        person = meeting.present.get(pid)
        return None if person is None else self.webcam(meeting, person)

    def share(self, meeting: Meeting, pid: int) -> TileSpec | None:
        person = meeting.present.get(pid)
        if person is None or pid not in meeting.sharing:
            return None
        return self.screenshare(meeting, person)
