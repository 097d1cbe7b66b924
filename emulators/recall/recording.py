"""The bot's recording: what it saw and heard while recording (a tape of meeting scenes), encoded on demand as
an MP4 (H.264 + AAC) and served behind signed, expiring URLs like the vendor's ``video_url``/``download_url``.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import io
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from clients import recall_wire as wire
from emulators.recall.mix import EMPTY_SCENE, AudioMixer, MixScene, SceneVoices, compose_mix
from emulators.recall.tiles import TileRenderer

if TYPE_CHECKING:
    pass


# Small on purpose: the file proves what the bot saw and heard, it is not a benchmark of the encoder.
WIDTH, HEIGHT, FPS = 320, 180, 5
MAX_SECONDS = 600  # a longer recording keeps its first ten minutes (bounded work per request)


@dataclass
class Tape:
    """The meeting scenes of a recording, by seconds since ``in_call_recording``."""

    times: list[float] = field(default_factory=list)
    scenes: list[MixScene] = field(default_factory=list)
    duration_s: float | None = None  # set when the recording stops

    def mark(self, at_s: float, scene: MixScene) -> None:
        if self.duration_s is None:
            self.times.append(max(0.0, at_s))
            self.scenes.append(scene)

    def stop(self, at_s: float) -> None:
        if self.duration_s is None:
            self.duration_s = max(0.0, at_s)

    def scene_at(self, at_s: float) -> MixScene:
        index = bisect.bisect_right(self.times, at_s) - 1
        return self.scenes[max(0, index)] if self.scenes else EMPTY_SCENE


def encode_mp4(tape: Tape, wall0: float) -> bytes:
    """The recording as MP4: the speaker view at FPS with the mixed tones, stamped with capture times."""
    import av
    import numpy as np

    duration = min(tape.duration_s or 0.0, MAX_SECONDS)
    frames = max(1, round(duration * FPS))
    out = io.BytesIO()
    container = av.open(out, mode="w", format="mp4")
    try:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.codec_context.options = {"preset": "ultrafast"}
        audio = container.add_stream("aac", rate=wire.AUDIO_SAMPLE_RATE)
        audio.layout = "mono"
        renderer, voices = TileRenderer(), SceneVoices()
        mixer = AudioMixer(voices)
        per_frame = wire.AUDIO_SAMPLE_RATE // FPS
        for index in range(frames):
            at = index / FPS
            voices.scene = scene = tape.scene_at(at)
            picture = compose_mix(renderer, scene, WIDTH, HEIGHT, gallery=False, index=index,
                                  capture_ms=int((wall0 + at) * 1000))
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            for packet in video.encode(frame):
                container.mux(packet)
            pcm = np.frombuffer(mixer.mixed(per_frame), dtype="<i2").reshape(1, -1)
            sound = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm), format="s16", layout="mono")
            sound.sample_rate, sound.pts = wire.AUDIO_SAMPLE_RATE, index * per_frame
            sound.time_base = Fraction(1, wire.AUDIO_SAMPLE_RATE)
            for packet in audio.encode(sound):
                container.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                container.mux(packet)
    finally:
        container.close()
    return out.getvalue()


# ----- signed URLs -----------------------------------------------------------------------------------------
class MediaUrlRefused(Exception):
    """The link is expired or its signature does not match."""


def media_signature(key: bytes, path: str, expires: int) -> str:
    return hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_media_url(key: bytes, base_url: str, path: str, now: float, ttl_s: float) -> str:
    """A link valid ``ttl_s`` from ``now`` (each retrieve mints a fresh one, as the vendor's API does)."""
    expires = int(now + ttl_s)
    return f"{base_url}{path}?expires={expires}&signature={media_signature(key, path, expires)}"


def check_media_url(key: bytes, path: str, expires: str | None, signature: str | None, now: float) -> None:
    if not expires or not (expires.isascii() and expires.isdigit()) or not signature:
        raise MediaUrlRefused("the link needs its expires and signature parameters")
    if not hmac.compare_digest(media_signature(key, path, int(expires)), signature):
        raise MediaUrlRefused("the signature does not match this link")
    if now > int(expires):
        raise MediaUrlRefused("the link has expired; retrieve the bot for a fresh one")
