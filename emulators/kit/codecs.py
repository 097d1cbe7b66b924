"""Encoders the emulators stream with: JPEG, PNG, H.264 and AAC over PyAV, plus H.264 bitstream helpers.

Each encoder is synchronous and releases the GIL while it works (FFmpeg and zlib do), so callers run
`encode` in a thread pool and keep the event loop free. One encoder instance serves one stream; it is not
safe to share an instance between threads.
"""

from __future__ import annotations

import re
import struct
import threading
import zlib
from collections.abc import Hashable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import av
    import numpy as np


__all__ = [
    "AacEncoder",
    "EncodedPacket",
    "H264Encoder",
    "JpegEncoder",
    "PngEncoder",
    "annexb_to_avcc",
    "avc_decoder_configuration_record",
    "jpeg_qscale",
    "split_annexb",
]

NAL_SPS = 7
NAL_PPS = 8
NAL_IDR = 5


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One encoded access unit (H.264: Annex-B bytes of one picture; AAC: one raw frame)."""

    data: bytes
    pts: int
    keyframe: bool
    duration: int = 0


def _check_image(image: np.ndarray, *, width: int | None = None, height: int | None = None) -> str:
    """Validate an RGB or grey uint8 image; returns the PyAV pixel format name for it."""
    import numpy as np

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim == 3 and image.shape[2] == 3:
        fmt = "rgb24"
    elif image.ndim == 2:
        fmt = "gray"
    else:
        raise ValueError(f"image must be HxWx3 (RGB) or HxW (grey), got shape {image.shape}")
    if width is not None and (image.shape[1], image.shape[0]) != (width, height):
        raise ValueError(
            f"image is {image.shape[1]}x{image.shape[0]} but the encoder was opened for {width}x{height}"
        )
    return fmt


# --- JPEG ---------------------------------------------------------------------------------------------


def jpeg_qscale(quality: int) -> int:
    """FFmpeg mjpeg qscale for a libjpeg-style quality 1..100 (Misty's `Quality`).

    FFmpeg's mjpeg encoder writes one quantisation table, its intra matrix (similar in size to the JPEG
    example tables) times qscale/8; libjpeg scales its tables by 5000/q % below quality 50 and (200 - 2q) %
    above. Matching the two gives qscale = 8 * that percentage: quality 50 -> 8 (the unscaled matrix),
    75 -> 4, 100 -> 1. The result is clamped to 1..255; below about quality 4 every entry saturates at 255.
    """
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in 1..100, got {quality!r}")
    percent = 5000 / quality if quality < 50 else 200 - 2 * quality
    return max(1, min(255, round(8 * percent / 100)))


class JpegEncoder:
    """Baseline JPEG (4:2:0, full-range YCbCr as in JFIF) through FFmpeg's mjpeg encoder."""

    def __init__(self, quality: int = 75) -> None:
        self.quality = quality
        self.qscale = jpeg_qscale(quality)
        self._context: av.VideoCodecContext | None = None
        self._size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        import av

        context = av.CodecContext.create("mjpeg", "w")
        context.width = width
        context.height = height
        context.pix_fmt = "yuvj420p"
        context.time_base = Fraction(1, 30)
        # A fixed quantiser: with qmin == qmax the rate control has nothing to choose.
        context.qmin = self.qscale
        context.qmax = self.qscale
        context.open()
        return context

    def encode(self, image: np.ndarray) -> bytes:
        """One JPEG file (SOI..EOI) for an RGB or grey uint8 image; any size, odd sizes included."""
        import av

        fmt = _check_image(image)
        size = (image.shape[1], image.shape[0])
        if self._context is None or self._size != size:
            self._context = self._open(*size)
            self._size = size
        frame = av.VideoFrame.from_ndarray(image, format=fmt)
        return b"".join(bytes(packet) for packet in self._context.encode(frame))


# --- PNG ----------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_FILTER_NONE = 0
PNG_FILTER_SUB = 1


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


_BAND_ROWS = 16
_MAX_BAND_CACHES = 1024
_ADLER_BASE = 65521
_FINAL_EMPTY_BLOCK = zlib.compressobj(1, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)


def adler32_combine(first: int, second: int, second_len: int) -> int:
    """The Adler-32 of A+B from adler32(A), adler32(B) and len(B) (RFC 1950's sums, rearranged)."""
    low_a, high_a = first & 0xFFFF, first >> 16
    low_b, high_b = second & 0xFFFF, second >> 16
    low = (low_a + low_b - 1) % _ADLER_BASE
    high = (high_a + high_b + second_len * low_a - second_len) % _ADLER_BASE
    return (high << 16) | low


class _BandCache:
    """The raw and deflated form of each band of rows of the last frame of one stream."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.raw: list[bytes] = []
        self.deflated: list[bytes] = []
        self.adler: list[int] = []

    def compress(self, scanlines: np.ndarray, level: int) -> bytes:
        """A zlib stream of ``scanlines``: each band is its own full-flushed deflate segment, so unchanged
        bands are reused byte for byte; a final empty block ends it, and the Adler-32s are combined."""
        flat = scanlines.reshape(-1)
        band_len = _BAND_ROWS * scanlines.shape[1]
        count = -(-flat.size // band_len)
        if len(self.raw) != count:
            self.raw, self.deflated, self.adler = [b""] * count, [b""] * count, [1] * count
        checksum = 1
        for i in range(count):
            raw = flat[i * band_len : (i + 1) * band_len].tobytes()
            if raw != self.raw[i]:
                packer = zlib.compressobj(level, zlib.DEFLATED, -15)
                self.deflated[i] = packer.compress(raw) + packer.flush(zlib.Z_FULL_FLUSH)
                self.raw[i] = raw
                self.adler[i] = zlib.adler32(raw)
            checksum = adler32_combine(checksum, self.adler[i], len(raw)) if i else self.adler[i]
        # zlib header for the fastest level (CMF 0x78, FLG 0x01), the segments, the final block, the checksum.
        return b"".join((b"\x78\x01", *self.deflated, _FINAL_EMPTY_BLOCK, struct.pack(">I", checksum)))


class PngEncoder:
    """PNG written directly with zlib: IHDR, one IDAT, IEND; 8-bit RGB, 8-bit grey or 16-bit grey.

    Chosen over FFmpeg's png encoder by measurement: on a 1280x720 meeting tile at zlib level 1 it takes
    within about 10% of bare `zlib.compress(rows, 1)` (the floor for any PNG writer) and beats FFmpeg with
    any of its predictors. Filter None is the default (fastest); Sub (1) shrinks noisy or graded pictures.
    """

    def __init__(self, compression_level: int = 1, *, filter_type: int = PNG_FILTER_NONE) -> None:
        if isinstance(compression_level, bool) or compression_level not in range(0, 10):
            raise ValueError(f"compression_level must be an integer in 0..9, got {compression_level!r}")
        if filter_type not in (PNG_FILTER_NONE, PNG_FILTER_SUB):
            raise ValueError(f"filter_type must be 0 (None) or 1 (Sub), got {filter_type!r}")
        self.compression_level = compression_level
        self.filter_type = filter_type
        self._bands: dict[Hashable, _BandCache] = {}
        self._lock = threading.Lock()

    def encode(self, image: np.ndarray, *, cache_key: Hashable | None = None) -> bytes:
        """One PNG file for an HxWx3 uint8 (RGB), HxW uint8 (grey) or HxW uint16 (grey 16) image.

        With ``cache_key`` (one per stream of similar frames, e.g. a meeting tile), bands of rows that are
        byte-identical to the previous frame of that key reuse their compressed form: only changed bands
        are compressed again. The file is a valid PNG either way; the cache is checked by content.
        """
        import numpy as np

        if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"image must be a uint8 or uint16 numpy array, got {getattr(image, 'dtype', image)}")
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            colour_type, bit_depth, pixel_bytes = 2, 8, 3
        elif image.ndim == 2:
            colour_type, bit_depth, pixel_bytes = 0, 8 * image.itemsize, image.itemsize
        else:
            raise ValueError(f"image must be HxWx3 uint8 or HxW uint8/uint16, got {image.shape} {image.dtype}")
        height, width = image.shape[:2]
        if width == 0 or height == 0:
            raise ValueError(f"image must not be empty, got {width}x{height}")
        if image.dtype == np.uint16:
            image = image.astype(">u2", copy=False)  # PNG samples are big-endian
        rows = np.ascontiguousarray(image).view(np.uint8).reshape(height, width * pixel_bytes)
        # One buffer holding each row's filter byte then its (filtered) bytes, as IDAT wants them.
        scanlines = np.empty((height, 1 + rows.shape[1]), dtype=np.uint8)
        scanlines[:, 0] = self.filter_type
        if self.filter_type == PNG_FILTER_NONE:
            scanlines[:, 1:] = rows
        else:
            scanlines[:, 1 : 1 + pixel_bytes] = rows[:, :pixel_bytes]
            np.subtract(rows[:, pixel_bytes:], rows[:, :-pixel_bytes], out=scanlines[:, 1 + pixel_bytes :])
        header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
        bands = self._bands.get(cache_key) if cache_key is not None else None
        if cache_key is not None and bands is None:
            with self._lock:
                if len(self._bands) >= _MAX_BAND_CACHES:
                    self._bands.clear()
                bands = self._bands.setdefault(cache_key, _BandCache())
        if bands is not None and bands.lock.acquire(blocking=False):
            try:
                compressed = bands.compress(scanlines, self.compression_level)
            finally:
                bands.lock.release()
        else:
            compressed = zlib.compress(scanlines.data, self.compression_level)
        return b"".join(
            (
                _PNG_SIGNATURE,
                _png_chunk(b"IHDR", header),
                _png_chunk(b"IDAT", compressed),
                _png_chunk(b"IEND", b""),
            )
        )


# --- H.264 bitstream helpers --------------------------------------------------------------------------

_START_CODE = re.compile(b"\x00\x00\x01")


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte stream, without start codes (3- or 4-byte) or trailing zeros."""
    starts = [match.end() for match in _START_CODE.finditer(data)]
    units = []
    for index, start in enumerate(starts):
        end = starts[index + 1] - 3 if index + 1 < len(starts) else len(data)
        unit = data[start:end].rstrip(b"\x00")
        if unit:
            units.append(unit)
    return units


def annexb_to_avcc(data: bytes) -> bytes:
    """Annex-B to the 4-byte length-prefixed form MP4, FLV (RTMP) and avcC-based muxers carry."""
    return b"".join(struct.pack(">I", len(unit)) + unit for unit in split_annexb(data))


def avc_decoder_configuration_record(sps: bytes, pps: bytes) -> bytes:
    """The ISO/IEC 14496-15 AVCDecoderConfigurationRecord (avcC) for one SPS and one PPS."""
    if len(sps) < 4 or sps[0] & 0x1F != NAL_SPS:
        raise ValueError("sps must be an H.264 SPS NAL unit without start code")
    if not pps or pps[0] & 0x1F != NAL_PPS:
        raise ValueError("pps must be an H.264 PPS NAL unit without start code")
    return b"".join(
        (
            bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]),  # version, profile, compat, level, 4-byte NALU lengths
            struct.pack(">H", len(sps)),
            sps,
            b"\x01",
            struct.pack(">H", len(pps)),
            pps,
        )
    )


class H264Encoder:
    """Constrained-baseline H.264 via libx264 (ultrafast, zerolatency): one Annex-B access unit per frame.

    Every `gop`-th frame is an IDR with SPS and PPS repeated in-band, so a receiver joining at any IDR
    can decode; `sps`/`pps`/`extradata` are known as soon as the encoder exists, before any frame.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: int,
        bitrate: int,
        gop: int | None = None,
        profile: str = "baseline",
        *,
        time_base: Fraction | None = None,
    ) -> None:
        import av

        for name, value, low in (("width", width, 16), ("height", height, 16), ("fps", fps, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if width % 2 or height % 2:
            raise ValueError(f"width and height must be even for 4:2:0 H.264, got {width}x{height}")
        if not isinstance(bitrate, int) or bitrate < 10_000:
            raise ValueError(f"bitrate must be an integer >= 10000 bit/s, got {bitrate!r}")
        gop = fps if gop is None else gop
        if isinstance(gop, bool) or not isinstance(gop, int) or gop < 1:
            raise ValueError(f"gop must be a positive integer (frames between IDRs), got {gop!r}")
        if profile not in ("baseline", "main", "high"):
            raise ValueError(f"profile must be one of baseline, main, high; got {profile!r}")
        self.width, self.height, self.fps, self.bitrate, self.gop = width, height, fps, bitrate, gop
        self.profile = profile
        self.time_base = time_base or Fraction(1, fps)
        context = av.CodecContext.create("libx264", "w")
        context.width = width
        context.height = height
        context.pix_fmt = "yuv420p"
        context.time_base = self.time_base
        context.framerate = Fraction(fps, 1)
        context.bit_rate = bitrate
        context.gop_size = gop
        # Global headers give SPS/PPS at open time; repeat-headers keeps them in-band at every IDR too.
        context.flags |= av.codec.context.Flags.global_header
        context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": profile,
            "x264-params": f"repeat-headers=1:keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:open-gop=0",
        }
        context.open()
        self._context = context
        headers = split_annexb(bytes(context.extradata or b""))
        sps = [unit for unit in headers if unit[0] & 0x1F == NAL_SPS]
        pps = [unit for unit in headers if unit[0] & 0x1F == NAL_PPS]
        if not sps or not pps:
            raise RuntimeError("libx264 did not report SPS/PPS headers")
        self.sps: bytes = sps[0]
        self.pps: bytes = pps[0]

    @property
    def extradata(self) -> bytes:
        """avcC record (AVCDecoderConfigurationRecord) for MP4/FLV muxers and RTMP's sequence header."""
        return avc_decoder_configuration_record(self.sps, self.pps)

    @property
    def profile_level_id(self) -> str:
        """The SDP `profile-level-id` (RFC 6184): profile_idc, constraint flags, level_idc in hex."""
        return self.sps[1:4].hex().upper()

    @property
    def codecs_string(self) -> str:
        """The RFC 6381 `codecs` value for MSE / HLS, e.g. avc1.42C01E."""
        return f"avc1.{self.profile_level_id}"

    def encode(self, image: np.ndarray, pts: int) -> list[EncodedPacket]:
        """Encode one RGB or grey frame with presentation time `pts` (in `time_base` units)."""
        import av

        fmt = _check_image(image, width=self.width, height=self.height)
        return self._encode_frame(av.VideoFrame.from_ndarray(image, format=fmt), pts)

    def encode_i420(self, picture: np.ndarray, pts: int) -> tuple[av.VideoFrame, list[EncodedPacket]]:
        """Encode one picture already in the encoder's own format, I420 as a (H*3/2, W) uint8 array (no colour
        conversion); returns the frame made of it (for previews) and the packets."""
        import av
        import numpy as np

        if not isinstance(picture, np.ndarray) or picture.dtype != np.uint8 or picture.shape != (
                self.height * 3 // 2, self.width):
            raise ValueError(f"an I420 picture for this encoder is a ({self.height * 3 // 2}, {self.width}) uint8 "
                             f"array, got {getattr(picture, 'shape', type(picture))}")
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        return frame, self._encode_frame(frame, pts)

    def _encode_frame(self, frame: av.VideoFrame, pts: int) -> list[EncodedPacket]:
        frame.pts = pts
        frame.time_base = self.time_base
        return self._collect(self._context.encode(frame))

    def flush(self) -> list[EncodedPacket]:
        """Drain the encoder at end of stream (zerolatency keeps nothing back, so this is usually empty)."""
        return self._collect(self._context.encode(None))

    def _collect(self, packets: list[av.Packet[Any]]) -> list[EncodedPacket]:
        return [
            EncodedPacket(bytes(packet), packet.pts or 0, bool(packet.is_keyframe), int(packet.duration or 0))
            for packet in packets
        ]


# --- AAC ----------------------------------------------------------------------------------------------

_AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
AAC_FRAME_SAMPLES = 1024


class AacEncoder:
    """AAC-LC (FFmpeg's native encoder): int16 samples in, raw AAC frames of 1024 samples out.

    Packet `pts` counts samples from the first sample given; the encoder's priming frame comes first with
    pts = -1024 (decoders drop it), so audio that starts at sample 0 plays from pts 0.
    """

    def __init__(self, sample_rate: int, bitrate: int, channels: int = 1) -> None:
        import av
        import numpy as np

        if sample_rate not in _AAC_SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of {', '.join(map(str, _AAC_SAMPLE_RATES))}; got {sample_rate}")
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels!r}")
        if not isinstance(bitrate, int) or not 8_000 <= bitrate <= 512_000:
            raise ValueError(f"bitrate must be an integer in 8000..512000 bit/s, got {bitrate!r}")
        self.sample_rate, self.bitrate, self.channels = sample_rate, bitrate, channels
        context = av.CodecContext.create("aac", "w")
        context.sample_rate = sample_rate
        context.layout = "mono" if channels == 1 else "stereo"
        context.format = "fltp"
        context.bit_rate = bitrate
        context.time_base = Fraction(1, sample_rate)
        context.open()
        self._context = context
        self._pending = np.zeros((channels, 0), dtype=np.float32)
        self._next_pts = 0

    @property
    def audio_specific_config(self) -> bytes:
        """The 2-byte AudioSpecificConfig (AAC-LC, rate index, channels) for RTMP, avcC-style muxers, SDP."""
        index = _AAC_SAMPLE_RATES.index(self.sample_rate)
        return struct.pack(">H", (2 << 11) | (index << 7) | (self.channels << 3))

    def encode(self, samples: np.ndarray) -> list[EncodedPacket]:
        """Feed int16 samples (n, or n x channels interleaved); returns every AAC frame now complete."""
        import numpy as np

        samples = np.asarray(samples)
        if samples.dtype != np.int16:
            raise ValueError(f"samples must be int16, got {samples.dtype}")
        if samples.ndim == 1 and self.channels == 1:
            planar = samples[None, :]
        elif samples.ndim == 2 and samples.shape[1] == self.channels:
            planar = samples.T
        else:
            raise ValueError(f"samples must be shaped (n,) or (n, {self.channels}), got {samples.shape}")
        self._pending = np.concatenate([self._pending, planar.astype(np.float32) / 32768.0], axis=1)
        packets: list[EncodedPacket] = []
        while self._pending.shape[1] >= AAC_FRAME_SAMPLES:
            chunk = np.ascontiguousarray(self._pending[:, :AAC_FRAME_SAMPLES])
            self._pending = self._pending[:, AAC_FRAME_SAMPLES:]
            packets.extend(self._encode_chunk(chunk))
        return packets

    def flush(self) -> list[EncodedPacket]:
        """Encode what is buffered (zero-padded to a whole frame) and drain the encoder."""
        import numpy as np

        packets: list[EncodedPacket] = []
        if self._pending.shape[1]:
            chunk = np.zeros((self.channels, AAC_FRAME_SAMPLES), dtype=np.float32)
            chunk[:, : self._pending.shape[1]] = self._pending
            self._pending = self._pending[:, :0]
            packets.extend(self._encode_chunk(chunk))
        packets.extend(self._collect(self._context.encode(None)))
        return packets

    def _encode_chunk(self, chunk: np.ndarray) -> list[EncodedPacket]:
        import av

        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._context.layout.name)
        frame.sample_rate = self.sample_rate
        frame.pts = self._next_pts
        frame.time_base = Fraction(1, self.sample_rate)
        self._next_pts += AAC_FRAME_SAMPLES
        return self._collect(self._context.encode(frame))

    def _collect(self, packets: list[av.Packet[Any]]) -> list[EncodedPacket]:
        return [
            EncodedPacket(bytes(packet), packet.pts or 0, True, int(packet.duration or AAC_FRAME_SAMPLES))
            for packet in packets
        ]
