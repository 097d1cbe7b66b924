"""Speech heard in a recording's own audio, decoded from its segment files: how an exported video whose stream
ran no transcript still gets a spoken-word index. Blocking (PyAV): the service calls it off the event loop.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from emulators.videodb.indexing import SpeechSegment, VoiceActivity, rms_frames, spectral_flux

if TYPE_CHECKING:
    import numpy as np


log = logging.getLogger("benchtwin.videodb")
RATE = 16_000
TRAILING_SILENCE_FRAMES = 40  # 1.2 s of silence closes an utterance still open at the recording's end


def speech_in(files: list[tuple[Path, float]]) -> list[SpeechSegment]:
    """The utterances in segment files (path, wall start), in order; tones and music are left out."""
    vad = VoiceActivity()
    heard: list[SpeechSegment] = []
    end = 0.0
    for path, start in files:
        samples = _mono(path)
        if samples.size == 0:
            continue
        heard += vad.feed(start, rms_frames(samples, RATE), spectral_flux(samples, RATE))
        end = start + samples.size / RATE
    heard += vad.feed(end, [0.0] * TRAILING_SILENCE_FRAMES, [0.0] * TRAILING_SILENCE_FRAMES)
    return [s for s in heard if s.is_speech]


def _mono(path: Path) -> np.ndarray:
    """A segment's audio as 16 kHz mono floats (empty when it has none or cannot be read)."""
    import av
    import numpy as np

    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return np.zeros(0, dtype=np.float32)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
            for frame in container.decode(audio=0):
                for mono in resampler.resample(frame):
                    chunks.append(mono.to_ndarray().reshape(-1))
    except (av.FFmpegError, OSError) as exc:
        log.info("no audio read from %s: %s", path, exc)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
