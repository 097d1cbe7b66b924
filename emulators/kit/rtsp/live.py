"""The encode-once fan-out hub: one producer publishes encoded access units, packetized once into
RTP, and every RTSP session reads them through its own bounded subscription that starts (and
restarts after drops) at an IDR."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from emulators.kit.rtsp.aac import packetize_aac
from emulators.kit.rtsp.h264 import NAL_IDR, NAL_PPS, NAL_SPS, nal_type, packetize_access_unit, split_annexb
from emulators.kit.rtsp.rtp import PacketTemplate


@dataclass(frozen=True)
class H264Track:
    width: int
    height: int
    fps: float
    sps: bytes  # NAL units without start codes
    pps: bytes


@dataclass(frozen=True)
class AacTrack:
    sample_rate: int
    channels: int
    audio_specific_config: bytes


@dataclass(frozen=True)
class VideoAccessUnit:
    nals: tuple[bytes, ...]
    pts: float
    keyframe: bool
    # Its RTP packets, built once at publish time and shared by every session (None: build on use).
    packets: PacketTemplate | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class AudioFrame:
    data: bytes
    pts: float
    packets: PacketTemplate | None = field(default=None, compare=False, repr=False)


MediaUnit = VideoAccessUnit | AudioFrame


def video_packets(nals: Sequence[bytes], sps: bytes, pps: bytes) -> PacketTemplate:
    """RFC 6184 packets of one access unit; an IDR without parameter sets gets them in front."""
    kinds = {nal_type(n) for n in nals}
    if NAL_IDR in kinds and NAL_SPS not in kinds:
        # Decoders that ignore sprop-parameter-sets still get the parameter sets in-band.
        nals = [sps, pps, *nals]
    elif NAL_IDR in kinds and NAL_PPS not in kinds:
        nals = [pps, *nals]
    return PacketTemplate.build([payload for payload, _ in packetize_access_unit(list(nals))])


def audio_packets(frame: bytes) -> PacketTemplate:
    """RFC 3640 AAC-hbr packets of one raw AAC frame."""
    return PacketTemplate.build([payload for payload, _ in packetize_aac(frame)])


class EndOfStream(Exception):
    """The LiveMedia was closed or the subscription cancelled."""


class Subscription:
    """One reader's bounded view of the live stream.

    Delivery starts at the next keyframe (audio before it is skipped too, so both tracks share an
    origin). When the queue is full the new unit is dropped and counted; after a dropped video
    unit the reader skips to the next keyframe, because the frames between would not decode.

    A reader either awaits `next_unit`, or sets `listener` and takes whole batches with
    `take_all`: the listener is called when the queue stops being empty and when the stream ends,
    so a sender needs no task wake-up per unit.
    """

    def __init__(self, hub: LiveMedia, max_pending: int) -> None:
        self._hub = hub
        self._max_pending = max_pending
        self._queue: collections.deque[MediaUnit] = collections.deque()
        self._wakeup = asyncio.Event()
        self._waiting_for_keyframe = True
        self._resyncing = False  # waiting for a keyframe because of drops, not because we just joined
        self._closed = False
        self.listener: Callable[[Subscription], None] | None = None
        self.delivered = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        """No more units will be offered; some may still be queued."""
        return self._closed

    def offer(self, unit: MediaUnit) -> None:
        """Called by the hub on the event loop for every published unit."""
        if self._closed:
            return
        if isinstance(unit, VideoAccessUnit):
            if self._waiting_for_keyframe and not unit.keyframe:
                self.dropped += self._resyncing  # skipped after an overflow: lost to this reader
                return
            if len(self._queue) >= self._max_pending:
                self.dropped += 1
                self._waiting_for_keyframe = self._resyncing = True
                return
            self._waiting_for_keyframe = self._resyncing = False
        else:
            if self._waiting_for_keyframe:
                self.dropped += self._resyncing
                return
            if len(self._queue) >= self._max_pending:
                self.dropped += 1
                return
        self._queue.append(unit)
        self._wakeup.set()
        if self.listener is not None and len(self._queue) == 1:
            self.listener(self)

    def end(self) -> None:
        self._closed = True
        self._wakeup.set()
        if self.listener is not None:
            self.listener(self)

    def take_all(self) -> list[MediaUnit]:
        """Every queued unit, oldest first, counted as delivered."""
        units = list(self._queue)
        self._queue.clear()
        self.delivered += len(units)
        return units

    async def next_unit(self, wait: float | None = None) -> MediaUnit | None:
        """The next unit, None if `wait` seconds pass first; raises EndOfStream once closed and drained."""
        while not self._queue:
            if self._closed:
                raise EndOfStream()
            self._wakeup.clear()
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
                # races with the wakeup, leaving an owner's await on this task hanging.
                async with asyncio.timeout(wait):
                    await self._wakeup.wait()
            except TimeoutError:
                return None
        self.delivered += 1
        return self._queue.popleft()

    def close(self) -> None:
        self.end()
        self._hub._unsubscribe(self)


class LiveMedia:
    """Encode-once fan-out: one producer publishes access units, any number of RTSP sessions read them."""

    def __init__(self, video: H264Track, audio: AacTrack | None) -> None:
        self.video = video
        self.audio = audio
        self._subscribers: list[Subscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._epoch: float | None = None
        self._closed = False
        self.sps = video.sps
        self.pps = video.pps
        self.video_units_published = 0
        self.audio_frames_published = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def wallclock_at(self, pts: float) -> float:
        """Unix time at which media time `pts` was (or will be) captured; RTCP SRs use it so
        video and audio of one session map onto the same wall clock."""
        return (self._epoch if self._epoch is not None else time.time()) + pts

    def subscribe(self, *, max_pending: int = 90) -> Subscription:
        """A new reader; must be called on the event loop that will read it."""
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._loop = asyncio.get_running_loop()
        subscription = Subscription(self, max_pending)
        if self._closed:
            subscription.end()
        else:
            self._subscribers.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish_video(self, annexb: bytes, pts: float, keyframe: bool) -> None:
        """Publish one access unit; `pts` in seconds since stream start. Safe from any thread."""
        nals = tuple(split_annexb(bytes(annexb)))
        if not nals:
            raise ValueError("publish_video needs at least one NAL unit")
        for nal in nals:  # an encoder that changes its parameter sets announces them in-band
            if nal_type(nal) == NAL_SPS:
                self.sps = nal
            elif nal_type(nal) == NAL_PPS:
                self.pps = nal
        self.video_units_published += 1
        self._dispatch(VideoAccessUnit(nals, pts, keyframe, video_packets(nals, self.sps, self.pps)))

    def publish_audio(self, aac_frame: bytes, pts: float) -> None:
        """Publish one raw AAC frame (no ADTS header). Safe from any thread."""
        if self.audio is None:
            raise ValueError("this LiveMedia has no audio track")
        if not aac_frame:
            raise ValueError("publish_audio needs a non-empty AAC frame")
        frame = bytes(aac_frame)
        packets = audio_packets(frame)  # raises ValueError for a frame too big for a 13-bit AU size
        self.audio_frames_published += 1
        self._dispatch(AudioFrame(frame, pts, packets))

    def close(self) -> None:
        """Ends every subscriber (sessions send RTCP BYE and stop)."""
        self._closed = True
        self._dispatch(None)

    def _dispatch(self, unit: MediaUnit | None) -> None:
        with self._lock:
            if self._epoch is None and unit is not None:
                self._epoch = time.time() - unit.pts
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody subscribed yet: nothing to deliver
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fan_out(unit)
            return
        try:
            loop.call_soon_threadsafe(self._fan_out, unit)
        except RuntimeError:
            pass  # the readers' loop closed under a producer thread: nobody is left to deliver to

    def _fan_out(self, unit: MediaUnit | None) -> None:
        for subscription in list(self._subscribers):
            if unit is None:
                subscription.end()
            else:
                subscription.offer(unit)
        if unit is None:
            self._subscribers.clear()
