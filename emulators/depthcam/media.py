"""What the camera streams: rendered frames with the frame stamp, stills, fMP4 H.264 video and NN results.

A frame is described on the event loop (a snapshot of the stream's config and control) and rendered in a
worker thread; one ``VideoChannel`` per stream encodes each frame once for all of its viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from emulators.depthcam import scene
from emulators.depthcam.camera import Camera
from emulators.depthcam.hardware import stream_code
from emulators.depthcam.photometry import Sensor, StreamDeveloper
from emulators.kit.codecs import JpegEncoder, PngEncoder
from emulators.kit.faults import Abort, Close, Send, Skip, Stall, StreamVerdict, corrupt_payload
from emulators.kit.memory import release_native_memory
from emulators.kit.pacer import LatenessStats, Pacer
from emulators.kit.stamp import FrameStamp, StreamKind, paint_stamp
from emulators.kit.tasks import TaskOwner

if TYPE_CHECKING:
    import numpy as np


# ----- frames ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameSpec:
    """Everything needed to render one frame of one stream, snapshotted from the camera's state."""

    stream: str
    kind: str  # "color", "mono" or "depth"
    view: scene.View
    control: dict[str, Any]
    ir: dict[str, float] | None
    baseline_m: float
    frame_index: int
    capture_ms: int
    stamp_id: int
    autofocus: bool
    seed: int


def stream_kind(camera: Camera, stream: str) -> str:
    if stream.startswith("DEPTH_"):
        return "depth"
    return camera.sensor_of(stream).kind


def stamp_stream_id(camera: Camera, stream: str) -> int:
    """The stamp's stream id: device number in the high byte, stream code (CAM_X 0..7, pairs 0x80|L<<3|R) low."""
    return (camera.number & 0xFF) << 8 | stream_code(stream)


STAMP_KINDS = {"color": StreamKind.DEPTHCAM_COLOR, "mono": StreamKind.DEPTHCAM_MONO, "depth": StreamKind.DEPTHCAM_DEPTH}


def frame_spec(
    camera: Camera, stream: str, *, frame_index: int, capture_ms: int, purpose: str = "video", seed: int = 0
) -> FrameSpec:
    kind = stream_kind(camera, stream)
    sensor = camera.sensor_of(stream)
    width, height = camera.frame_size(stream, purpose)
    if kind == "color":
        view = scene.View(sensor.position_x, width, height, scene.color_focal(width), True)
    else:
        view = scene.View(sensor.position_x, width, height, scene.mono_focal(width), False)
    baseline = 0.0
    if kind == "depth":
        pair = camera.spec.pair(stream)
        assert pair is not None
        baseline = pair.baseline_m
    return FrameSpec(
        stream=stream,
        kind=kind,
        view=view,
        control=dict(camera.controls.get(stream) or {}),
        ir=dict(camera.ir) if camera.ir else None,
        baseline_m=baseline,
        frame_index=frame_index,
        capture_ms=capture_ms,
        stamp_id=stamp_stream_id(camera, stream),
        autofocus=sensor.autofocus and kind == "color",
        seed=seed * 1_000_003 + stamp_stream_id(camera, stream),
    )


def render_frame(spec: FrameSpec, developer: StreamDeveloper | None = None) -> np.ndarray:
    """The stream's picture: colour RGB, mono grey or 8-bit disparity, with the frame stamp painted last."""
    renderer = scene.renderer(spec.view)
    t = spec.capture_ms / 1000.0
    stamp = FrameStamp(STAMP_KINDS[spec.kind], spec.stamp_id, spec.frame_index % 2**32, spec.capture_ms)
    if spec.kind == "depth":
        image = scene.disparity_u8(renderer.render_depth(t), spec.view.focal, spec.baseline_m)
        return paint_stamp(image, stamp, one_value=scene.MAX_DISPARITY)
    if developer is None:
        developer = StreamDeveloper(stream_sensor(spec))
    image = developer.develop(renderer, t, spec.control, spec.frame_index, spec.ir)
    return paint_stamp(image, stamp)


def stream_sensor(spec: FrameSpec) -> Sensor:
    return Sensor(colour=spec.kind == "color", autofocus=spec.autofocus, seed=spec.seed)


def depth_map_mm(camera: Camera, stream: str, capture_ms: int) -> np.ndarray:
    """Ground truth for a DEPTH stream: uint16 millimetres in its (right camera's) view, 0 = invalid."""
    spec = frame_spec(camera, stream, frame_index=0, capture_ms=capture_ms)
    renderer = scene.renderer(spec.view)
    return scene.depth_mm(renderer.render_depth(capture_ms / 1000.0), spec.view.focal, spec.baseline_m)


# ----- stills ---------------------------------------------------------------------------------------------

# The formats of hardware.STILL_FORMATS besides jpeg and png, which use the kit's encoders.
_PYAV_STILL = {
    "webp": ("libwebp", "yuv420p", "yuv420p"),
    "bmp": ("bmp", "bgr24", "gray"),
    "gif": ("gif", "rgb8", "gray"),
    "tiff": ("tiff", "rgb24", "gray"),
    "ppm": ("ppm", "rgb24", None),  # grey pictures are written as PGM, like Pillow does
}


def encode_still(image: np.ndarray, fmt: str) -> bytes:
    """One image file in ``fmt`` (a name from hardware.STILL_FORMATS, lower case)."""
    import av

    if fmt == "jpeg":
        return JpegEncoder(quality=75).encode(image)
    if fmt == "png":
        return PngEncoder().encode(image)
    codec, colour_pix, grey_pix = _PYAV_STILL[fmt]
    grey = image.ndim == 2
    if fmt == "ppm" and grey:
        codec, grey_pix = "pgm", "gray"
    pix = grey_pix if grey else colour_pix
    context = av.CodecContext.create(codec, "w")
    context.width, context.height = image.shape[1], image.shape[0]
    context.pix_fmt = pix
    context.time_base = Fraction(1, 30)
    frame = av.VideoFrame.from_ndarray(image, format="gray" if grey else "rgb24")
    if frame.format.name != pix:
        frame = frame.reformat(format=pix)
    packets = list(context.encode(frame)) + list(context.encode(None))
    return b"".join(bytes(p) for p in packets)


class UnwritableImage(Exception):
    """Pillow has no writer for the format, or the writer refused the picture."""


def save_still(image: np.ndarray, fmt: str) -> bytes:
    """The picture saved by Pillow under the format name as sent, as main does: grey stays one channel."""
    from PIL import Image

    buffer = io.BytesIO()
    picture = Image.fromarray(image, "L" if image.ndim == 2 else "RGB")
    try:
        picture.save(buffer, fmt)
    except (KeyError, ValueError, OSError, TypeError) as exc:
        raise UnwritableImage(f"Pillow cannot write {fmt!r}: {exc}") from exc
    return buffer.getvalue()


# ----- fragmented MP4 -------------------------------------------------------------------------------------


def split_boxes(data: bytes | bytearray) -> tuple[list[tuple[bytes, bytes]], int]:
    """Complete top-level ISO-BMFF boxes at the start of ``data`` as (type, bytes), and bytes consumed."""
    boxes, offset = [], 0
    while len(data) - offset >= 8:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if len(data) - offset < 16:
                break
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        if size < header:
            raise ValueError(f"corrupt box {kind!r} of size {size} at offset {offset}")
        if len(data) - offset < size:
            break
        boxes.append((kind, bytes(data[offset : offset + size])))
        offset += size
    return boxes, offset


class Fmp4Segmenter:
    """Groups muxer output into WebSocket messages: ftyp+moov first, then one moof+mdat per message."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._group: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        self._pending += data
        boxes, used = split_boxes(self._pending)
        del self._pending[:used]
        out = []
        for kind, raw in boxes:
            self._group.append(raw)
            if kind in (b"moov", b"mdat"):
                out.append(b"".join(self._group))
                self._group = []
        return out


class _Sink:
    """A write-only file for the muxer; without seek the mp4 muxer writes strictly sequentially."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def video_bit_rate(width: int, height: int, fps: float) -> int:
    """The Robopipe server's rate: half a bit per pixel per frame."""
    return math.ceil(width * height * 0.5 * fps)


class Fmp4Encoder:
    """H.264 (libx264 ultrafast/zerolatency, every frame an IDR) muxed as fragmented MP4, like the real server.

    Synchronous: call it from one worker thread at a time.
    """

    def __init__(self, width: int, height: int, fps: float) -> None:
        # 4:2:0 needs even sizes: an odd size is cropped by one pixel.
        import av

        self.width, self.height = width - width % 2, height - height % 2
        self.fps = fps
        rate = Fraction(fps).limit_denominator(1001)
        self._sink = _Sink()
        self._segmenter = Fmp4Segmenter()
        self._container = av.open(
            self._sink, mode="w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}
        )
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = video_bit_rate(self.width, self.height, fps)
        stream.codec_context.gop_size = 1
        # Baseline keeps MSE players (avc1.42E01E) happy; ultrafast would pick a baseline-compatible set anyway.
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
        self._stream = stream
        self._closed = False
        # A cancelled sender may leave an encode running in its worker thread; close waits for it.
        self._lock = threading.Lock()

    def encode(self, image: np.ndarray, pts: int) -> list[bytes]:
        """Messages completed by this frame (the init segment, then fragments one frame behind)."""
        with self._lock:
            if self._closed:
                return []
            return self._encode(image, pts)

    def _encode(self, image: np.ndarray, pts: int) -> list[bytes]:
        import av
        import numpy as np

        if image.shape[0] != self.height or image.shape[1] != self.width:
            image = image[: self.height, : self.width]
        if image.ndim == 2:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="gray")
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._segmenter.feed(self._sink.take())

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(Exception):
                self._container.close()


# ----- live video fan-out ---------------------------------------------------------------------------------

CLOSE = object()  # queue sentinel: close the subscriber's socket with its close_code


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[Any]
    close_code: int = 1000
    close_reason: str = ""
    abort: bool = False  # drop the connection without a close frame
    closed: bool = False  # the channel closed this viewer (close_code says how)

    def close(self, code: int, reason: str = "", *, abort: bool = False) -> None:
        self.close_code, self.close_reason, self.abort, self.closed = code, reason, abort, True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(CLOSE)
        if self.queue.full():
            # Make room for the sentinel: a closing subscriber does not need its backlog.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSE)


@dataclass
class ChannelHooks:
    """What a channel asks its device: wait out restarts, describe the next frame, the frame's fault verdict, log."""

    wait_ready: Callable[[], Awaitable[None]]
    next_frame: Callable[[int], FrameSpec | None]  # tick index -> frame, None when the stream went away
    verdict: Callable[..., StreamVerdict]  # the emulator's stream_verdict (records fault.applied)
    record: Callable[..., None]
    preview: Callable[[str, Any], None]  # offer the rendered frame to the dashboard's preview (no copy, no encode)


@dataclass(eq=False)
class VideoChannel:
    """One stream's encoder, shared by all its viewers: the first viewer starts it, the last one stops it."""

    name: str  # fault stream name, e.g. 14442C10D13EABCE00/CAM_A/video
    stream: str
    size: tuple[int, int]
    fps: float
    hooks: ChannelHooks
    stats: LatenessStats
    backlog_frames: int = 60
    init_segment: bytes | None = None
    # In subscription order (an ordered set): main's restart race depends on the viewers' order.
    subscribers: dict[Subscriber, None] = field(default_factory=dict)
    stuck: bool = False  # the encoder stopped with viewers still listed: nobody gets frames again
    frames_sent: int = 0
    _init_ready: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: TaskOwner | None = None

    def start(self, owner: TaskOwner) -> None:
        """Start encoding in a child of ``owner``, which counts the channel's tasks and cancels them with its own."""
        self._tasks = owner.child(self.name)
        self._tasks.spawn(self._run(), name="encoder")

    def subscribe(self) -> Subscriber:
        # More than ~2 s of frames queued means the viewer cannot keep up: it is closed with 1008.
        sub = Subscriber(asyncio.Queue(maxsize=max(4, int(self.fps * 2))))
        self.subscribers[sub] = None
        return sub

    async def wait_init(self, limit_s: float) -> bytes | None:
        """The shared init segment; None when the channel ended before encoding a frame."""
        await asyncio.wait_for(self._init_ready.wait(), limit_s)
        return self.init_segment

    def close_all(self, code: int, reason: str = "", *, abort: bool = False) -> None:
        for sub in list(self.subscribers):
            sub.close(code, reason, abort=abort)
        self.subscribers.clear()

    async def aclose(self) -> None:
        if self._tasks is not None:
            await self._tasks.aclose()
            await release_native_memory()  # the encoder's heap pages, now free, go back to the system

    async def strand(self, viewers: list[Subscriber]) -> None:
        """Stop encoding but keep ``viewers`` listed: open, without frames; later viewers get the init segment only."""
        self.subscribers = dict.fromkeys(viewers)
        self.stuck = True
        await self.aclose()

    async def _run(self) -> None:
        width, height = self.size
        encoder = await asyncio.to_thread(Fmp4Encoder, width, height, self.fps)
        developer: StreamDeveloper | None = None
        # Frame k is encoded while frame k+1 renders: the two overlap in worker threads.
        encoding: asyncio.Task[list[bytes]] | None = None
        encoding_corrupt = False
        try:
            pacer = Pacer(1.0 / self.fps, stats=self.stats)
            pts = 0
            async for tick in pacer.ticks():
                await self.hooks.wait_ready()
                spec = self.hooks.next_frame(tick.index)
                if spec is None:
                    return
                verdict = self.hooks.verdict(self.name)
                if developer is None or developer.sensor.seed != spec.seed:
                    developer = StreamDeveloper(stream_sensor(spec))
                image = await asyncio.to_thread(render_frame, spec, developer)
                match verdict:
                    case Send(corrupt=corrupt):
                        self.hooks.preview(self.name, image)
                        if encoding is not None:
                            self._publish(await encoding, corrupt=encoding_corrupt)
                        encoding = asyncio.create_task(
                            asyncio.to_thread(encoder.encode, image, pts), name=f"{self.name}:encode"
                        )
                        encoding_corrupt = corrupt
                        pts += 1
                    case Skip():
                        pass  # the frame was rendered (the sensor produced it) but is not sent: a gap in the stamps
                    case Stall() as stall:
                        await stall.wait()  # the pacer skips the ticks missed meanwhile
                    case Close(code=code, reason=reason):
                        self.close_all(code, reason)
                        return
                    case Abort():
                        self.close_all(1006, "source disconnected", abort=True)
                        return
        finally:
            self._init_ready.set()  # nobody waits forever for a channel that has ended
            if encoding is not None:
                # Cancelling does not stop the worker thread; close() waits for it on the encoder's lock.
                encoding.cancel()
                await asyncio.gather(encoding, return_exceptions=True)
            await asyncio.to_thread(encoder.close)

    def _publish(self, messages: list[bytes], *, corrupt: bool) -> None:
        for message in messages:
            if self.init_segment is None:
                self.init_segment = message
                self._init_ready.set()
                continue
            self._broadcast(corrupt_payload(message) if corrupt else message)

    def _broadcast(self, message: bytes) -> None:
        self.frames_sent += 1
        for sub in list(self.subscribers):
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                self.subscribers.pop(sub, None)
                sub.close(1008, "viewer is more than 2 s behind")
                self.hooks.record("stream.error", stream=self.name, error="slow viewer closed with 1008")


# ----- NN results -----------------------------------------------------------------------------------------


def detection_message(
    camera: Camera, stream: str, capture_ms: int, frame_index: int, network_kind: str, seed: int
) -> dict[str, Any]:
    """One NN result for the frame at ``capture_ms``: the scene's boxes as the network would see them."""
    import numpy as np

    rng = np.random.default_rng([seed, stamp_stream_id(camera, stream), frame_index])
    if network_kind == "Generic":
        return {"detections": [round(float(v), 6) for v in rng.random(16)]}
    spec = frame_spec(camera, stream, frame_index=frame_index, capture_ms=capture_ms)
    t = capture_ms / 1000.0
    depth_view: scene.View | None = None
    depth: np.ndarray | None = None
    if camera.active_pair is not None:
        # Spatial coordinates come from the emulated depth map, as a spatial detection network reads them.
        depth_spec = frame_spec(camera, camera.active_pair, frame_index=frame_index, capture_ms=capture_ms)
        depth_view = depth_spec.view
        depth = depth_map_mm(camera, camera.active_pair, capture_ms)
    out = []
    for det in scene.detections(spec.view, t):
        item: dict[str, Any] = {
            "label": det.label,
            "confidence": round(0.75 + 0.20 * float(rng.random()), 4),
            "coords": [round(c, 6) for c in det.coords],
        }
        if depth is not None and depth_view is not None:
            z_mm = _face_depth_mm(depth, depth_view, scene.OBJECTS[det.label], t)
            if z_mm > 0:
                x, y, _ = det.spatial_mm
                z_true = det.spatial_mm[2]
                item["spatial_coords"] = {
                    "x": round(x * z_mm / z_true, 1),
                    "y": round(y * z_mm / z_true, 1),
                    "z": round(z_mm, 1),
                }
        out.append(item)
    return {"detections": out}


def _face_depth_mm(depth: np.ndarray, view: scene.View, obj: scene.SceneObject, t: float) -> float:
    """Median valid depth in a small window at the centre of a box's front face (0 when none is valid)."""
    import numpy as np

    u, v = view.project(obj.x_centre, scene.FLOOR_Y - obj.height / 2, obj.z_at(t))
    col, row = int(u), int(v)
    if not (0 <= col < view.width and 0 <= row < view.height):
        return 0.0
    window = depth[max(0, row - 2) : row + 3, max(0, col - 2) : col + 3]
    valid = window[window > 0]
    return float(np.median(valid)) if valid.size else 0.0
