"""What Misty streams, encoded: TakePicture's JPEG, the video WebSocket's JPEG frames, and AV's H.264 + AAC.

Synchronous and CPU-bound (numpy, PyAV): the senders call these in worker threads, one frame at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from emulators.kit.codecs import AacEncoder, EncodedPacket, H264Encoder, JpegEncoder
from emulators.kit.stamp import FrameStamp, StreamKind, paint_stamp
from emulators.misty.model import AvRequest, PictureRequest, VideoParams
from emulators.misty.scene import MistyScene, WebSocketView, resize_axes, rotate_clockwise

if TYPE_CHECKING:
    import numpy as np


PICTURE_QUALITY = 90


def shoot_picture(scene: MistyScene, picture: PictureRequest, *, stream_id: int, t: float, capture_ms: int) -> bytes:
    """TakePicture: the scene at the requested size, turned clockwise (so W/H swap), stamped, as JPEG."""
    native = scene.native_frame(t)
    frame = rotate_clockwise(resize_axes(native, picture.width, picture.height), 90).copy()
    paint_stamp(frame, FrameStamp(StreamKind.MISTY_PICTURE, stream_id, 0, capture_ms))
    return JpegEncoder(quality=PICTURE_QUALITY).encode(frame)


class VideoFrameEncoder:
    """StartVideoStreaming's frames: rotated/resized/overlaid per the request, stamped, JPEG at ``Quality``."""

    def __init__(self, params: VideoParams, *, stream_id: int, scene: MistyScene) -> None:
        self.stream_id = stream_id
        self.scene = scene
        self.view = WebSocketView(params.rotation, params.width, params.height, params.overlay)
        self._jpeg = JpegEncoder(quality=params.quality)

    def encode(self, frame_index: int, t: float, capture_ms: int) -> bytes:
        native = self.scene.native_frame(t)
        frame = self.view.render(native, self.scene.native_disc(t))
        stamp = FrameStamp(StreamKind.MISTY_WEBSOCKET, self.stream_id, frame_index & 0xFFFFFFFF, capture_ms)
        paint_stamp(frame, stamp)
        return self._jpeg.encode(frame)


# AV audio (misty.md §3.2): a quiet 440 Hz tone and, at the start of every media second (the frame with
# frame_index % FrameRate == 0), a 50 ms 1 kHz beep, so a receiver can line audio up with the stamps.
TONE_HZ = 440.0
TONE_LEVEL = 0.2
BEEP_HZ = 1000.0
BEEP_LEVEL = 0.6
BEEP_SECONDS = 0.05
# FFmpeg's AAC encoder spends at most 6144 bits per channel per 1024-sample frame, and the kit encoder
# stops at 512 kbit/s; the dossier lets the encoder cap AudioBitRate.
AAC_MAX_BITRATE = 512_000


def effective_audio_bitrate(requested: int, sample_rate: int, channels: int = 1) -> int:
    """The AAC bitrate the encoder really uses for a requested AudioBitRate (see AAC_MAX_BITRATE)."""
    return min(requested, AAC_MAX_BITRATE, 6 * sample_rate * channels)


class AvTone:
    """The AV audio track as int16 mono samples, generated in order frame by frame (sample-exact).

    The tone (440 Hz) and the beep (1 kHz, at the start of every second) are whole numbers of cycles per second,
    so the track repeats every second: one second is computed once and every chunk is cut from it.
    """

    def __init__(self, sample_rate: int, frame_rate: int) -> None:
        self.sample_rate = sample_rate
        self.frame_rate = frame_rate
        self.position = 0  # next sample to generate
        self._second: np.ndarray | None = None

    def frame_end(self, frame_index: int) -> int:
        """The sample just past video frame `frame_index` (frame k covers [k, k+1) / FrameRate seconds)."""
        return (frame_index + 1) * self.sample_rate // self.frame_rate

    def one_second(self) -> np.ndarray:
        """Samples 0 .. sample_rate - 1 of the track; sample n of any later second equals sample n % sample_rate."""
        import numpy as np

        if self._second is None:
            n = np.arange(self.sample_rate, dtype=np.int64)
            t = n / self.sample_rate
            wave = TONE_LEVEL * np.sin(2 * math.pi * TONE_HZ * t)
            # Media second k starts at sample k * sample_rate exactly, which is where frame k * FrameRate starts.
            in_beep = n < round(BEEP_SECONDS * self.sample_rate)
            wave = np.where(in_beep, BEEP_LEVEL * np.sin(2 * math.pi * BEEP_HZ * t), wave)
            self._second = np.round(wave * 32767).astype(np.int16)
        return self._second

    def samples_through(self, frame_index: int) -> np.ndarray:
        """Every sample not yet generated up to the end of `frame_index` (catches up after skipped ticks)."""
        import numpy as np

        end = max(self.position, self.frame_end(frame_index))
        second, rate = self.one_second(), self.sample_rate
        pieces = []
        at = self.position
        while at < end:  # whole seconds and their ends, as slices of the one second
            start = at % rate
            take = min(end - at, rate - start)
            pieces.append(second[start : start + take])
            at += take
        self.position = end
        return np.concatenate(pieces) if pieces else second[:0].copy()


@dataclass(frozen=True)
class EncodedTick:
    video: list[EncodedPacket]
    audio: list[EncodedPacket]


class AvProducer:
    """Draws the stamped WxH picture (I420, ``av_picture``) and encodes video and, unless the AV stream is
    video-only, audio once per tick.

    Synchronous and CPU-bound: the stream calls `encode_tick` in a worker thread, one tick at a time.
    """

    def __init__(self, params: AvRequest, *, stream_id: int, scene: MistyScene, audio: bool = True) -> None:
        from emulators.misty.av_picture import AvPicture

        self.params = params
        self.stream_id = stream_id & 0xFFFF  # the stamp carries 16 bits
        self.scene = scene
        self.picture = AvPicture(scene, params.width, params.height)
        self.video = H264Encoder(params.width, params.height, params.frame_rate, params.video_bitrate)
        self.audio: AacEncoder | None = (
            AacEncoder(params.sample_rate, effective_audio_bitrate(params.audio_bitrate, params.sample_rate))
            if audio else None)
        self.tone = AvTone(params.sample_rate, params.frame_rate)
        self.last_frame: Any = None  # the stamped frame last encoded (a PyAV frame: the dashboard's preview)

    def render(self, frame_index: int, capture_time_ms: int) -> np.ndarray:
        """The stamped WxH picture as one (H*3/2, W) I420 array; the content stays rotated 90° CCW as the
        sensor sees it."""
        stamp = FrameStamp(StreamKind.MISTY_AV, self.stream_id, frame_index, capture_time_ms)
        return self.picture.render(frame_index / self.params.frame_rate, stamp)

    def encode_tick(self, frame_index: int, capture_time_ms: int, *, with_video: bool = True) -> EncodedTick:
        video: list[EncodedPacket] = []
        if with_video:
            self.last_frame, video = self.video.encode_i420(self.render(frame_index, capture_time_ms), frame_index)
        audio: list[EncodedPacket] = []
        if self.audio is not None:
            # The encoder's priming frame has a negative pts; receivers start at 0 and do without it.
            audio = [p for p in self.audio.encode(self.tone.samples_through(frame_index)) if p.pts >= 0]
        return EncodedTick(video, audio)
