"""ITU-T G.711 mu-law and A-law for 16-bit PCM, vectorised with lookup tables.

The encoders follow the ITU-T G.191 reference (truncating segment/mantissa with one's-complement for
negative samples), so their bytes match telephony gear bit for bit; the decoders give the G.711
reconstruction values scaled to 16 bits, exactly as FFmpeg's pcm_mulaw/pcm_alaw decoders do.
"""

from __future__ import annotations

from typing import cast

import numpy as np

__all__ = [
    "ALAW_SILENCE",
    "ULAW_SILENCE",
    "alaw_to_pcm16",
    "pcm16_to_alaw",
    "pcm16_to_ulaw",
    "ulaw_to_pcm16",
]

ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5


def _segment(magnitude: np.ndarray, first_bound: int) -> np.ndarray:
    """Segment number 0..7: how many of the bounds first_bound, 2*first_bound, ... 64*first_bound it reaches."""
    segment = np.zeros(magnitude.shape, dtype=np.int32)
    for step in range(7):
        segment += magnitude >= (first_bound << step)
    return segment


def _ulaw_encode_table() -> np.ndarray:
    linear = np.arange(-32768, 32768, dtype=np.int32)
    # 14-bit magnitude plus the mu-law bias of 33; negative samples use one's complement, so -1 is "-0".
    magnitude = np.where(linear < 0, (~linear) >> 2, linear >> 2) + 33
    magnitude = np.minimum(magnitude, 0x1FFF)
    segment = _segment(magnitude, 0x40)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code = ((7 - segment) << 4) | (0x0F - mantissa)
    code |= np.where(linear >= 0, 0x80, 0)
    table = np.empty(65536, dtype=np.uint8)
    table[linear.astype(np.uint16)] = code
    return table


def _ulaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32)
    inverted = ~code & 0xFF
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    magnitude = (0x80 << exponent) + step * mantissa + step // 2 - 4 * 33
    return np.where(code < 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_encode_table() -> np.ndarray:
    linear = np.arange(-32768, 32768, dtype=np.int32)
    magnitude = np.where(linear < 0, (~linear) >> 4, linear >> 4)  # 12-bit magnitude, 0..2047
    segment = np.where(magnitude > 15, _segment(magnitude, 0x20) + 1, 0)
    mantissa = np.where(segment > 0, (magnitude >> np.maximum(segment - 1, 0)) - 16, magnitude)
    code = (segment << 4) | mantissa
    code |= np.where(linear >= 0, 0x80, 0)
    table = np.empty(65536, dtype=np.uint8)
    table[linear.astype(np.uint16)] = code ^ 0x55  # even bits inverted on the wire
    return table


def _alaw_decode_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32)
    value = (code ^ 0x55) & 0x7F
    exponent = value >> 4
    mantissa = value & 0x0F
    mantissa = np.where(exponent > 0, mantissa + 16, mantissa)
    magnitude = (mantissa << 4) + 8
    magnitude = np.where(exponent > 1, magnitude << np.maximum(exponent - 1, 0), magnitude)
    return np.where(code > 0x7F, magnitude, -magnitude).astype(np.int16)


_ULAW_ENCODE = _ulaw_encode_table()
_ULAW_DECODE = _ulaw_decode_table()
_ALAW_ENCODE = _alaw_encode_table()
_ALAW_DECODE = _alaw_decode_table()


def _pcm16_indices(samples: np.ndarray) -> np.ndarray:
    array = np.asarray(samples)
    if array.dtype != np.int16:
        raise ValueError(f"samples must be an int16 array, got {array.dtype}")
    return array.reshape(-1).view(np.uint16)


def _codes(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ValueError(f"G.711 codes must be bytes or a uint8 array, got {data.dtype}")
        return data.reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def pcm16_to_ulaw(samples: np.ndarray) -> bytes:
    """mu-law bytes, one per int16 sample."""
    return cast(bytes, _ULAW_ENCODE[_pcm16_indices(samples)].tobytes())


def pcm16_to_alaw(samples: np.ndarray) -> bytes:
    """A-law bytes, one per int16 sample."""
    return cast(bytes, _ALAW_ENCODE[_pcm16_indices(samples)].tobytes())


def ulaw_to_pcm16(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """int16 samples from mu-law bytes."""
    return cast(np.ndarray, _ULAW_DECODE[_codes(data)])


def alaw_to_pcm16(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """int16 samples from A-law bytes."""
    return cast(np.ndarray, _ALAW_DECODE[_codes(data)])
