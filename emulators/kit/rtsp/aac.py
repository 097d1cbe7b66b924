"""AAC over RTP, RFC 3640 mode AAC-hbr (sizelength 13, indexlength 3, indexdeltalength 3), and
the MPEG-4 AudioSpecificConfig that the SDP `config=` carries."""

from __future__ import annotations

from emulators.kit.rtsp.rtp import MAX_RTP_PAYLOAD

AAC_LC = 2
MAX_AU_SIZE = (1 << 13) - 1  # what a 13-bit AU-size can say
SAMPLING_FREQUENCIES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def audio_specific_config(sample_rate: int, channels: int, object_type: int = AAC_LC) -> bytes:
    """The 2-byte AudioSpecificConfig (ISO 14496-3 §1.6.2.1); 44.1 kHz mono LC is 12 08."""
    if sample_rate not in SAMPLING_FREQUENCIES:
        raise ValueError(f"sample_rate must be one of {SAMPLING_FREQUENCIES}, got {sample_rate}")
    if not 1 <= channels <= 7:
        raise ValueError(f"channels must be 1-7, got {channels}")
    index = SAMPLING_FREQUENCIES.index(sample_rate)
    bits = (object_type << 11) | (index << 7) | (channels << 3)
    return bits.to_bytes(2, "big")


def parse_audio_specific_config(config: bytes) -> tuple[int, int, int]:
    """(object_type, sample_rate, channels) from the first two bytes of an AudioSpecificConfig."""
    if len(config) < 2:
        raise ValueError("AudioSpecificConfig needs at least 2 bytes")
    bits = int.from_bytes(config[:2], "big")
    index = (bits >> 7) & 0x0F
    if index >= len(SAMPLING_FREQUENCIES):
        raise ValueError(f"AudioSpecificConfig sampling index {index} is not a fixed rate")
    return bits >> 11, SAMPLING_FREQUENCIES[index], (bits >> 3) & 0x0F


def packetize_aac(frame: bytes, max_payload: int = MAX_RTP_PAYLOAD) -> list[tuple[bytes, bool]]:
    """(payload, marker) pairs for one raw AAC frame: one AU per packet, or fragments of it when
    it exceeds `max_payload` (RFC 3640 §3.2.3.1: each fragment repeats the whole AU size and only
    the last carries the marker)."""
    if not frame:
        raise ValueError("an AAC frame must not be empty")
    if len(frame) > MAX_AU_SIZE:
        raise ValueError(f"an AAC frame must be at most {MAX_AU_SIZE} bytes for sizelength=13, got {len(frame)}")
    header = _au_headers([len(frame)])
    room = max_payload - len(header)
    pieces = [frame[i : i + room] for i in range(0, len(frame), room)]
    return [(header + piece, i == len(pieces) - 1) for i, piece in enumerate(pieces)]


def _au_headers(sizes: list[int]) -> bytes:
    # AU-headers-length counts bits; each AU-header is 13-bit size + 3-bit index(-delta) = 0.
    body = b"".join(((size << 3) & 0xFFFF).to_bytes(2, "big") for size in sizes)
    return (16 * len(sizes)).to_bytes(2, "big") + body


def parse_aac_payload(payload: bytes) -> list[tuple[int, bytes]]:
    """(declared AU size, AU data) for every AU in one AAC-hbr payload. For a fragment, the data
    is shorter than the declared size and the caller joins fragments until the marker."""
    if len(payload) < 2:
        raise ValueError("AAC-hbr payload shorter than its AU-headers-length")
    header_bits = int.from_bytes(payload[:2], "big")
    if header_bits % 16:
        raise ValueError(f"AU-headers-length must be a multiple of 16 bits, got {header_bits}")
    count = header_bits // 16
    offset = 2 + 2 * count
    if offset > len(payload):
        raise ValueError("AU headers run past the payload")
    units: list[tuple[int, bytes]] = []
    for i in range(count):
        size = int.from_bytes(payload[2 + 2 * i : 4 + 2 * i], "big") >> 3
        data = payload[offset : offset + size]
        units.append((size, bytes(data)))
        offset += len(data)
    return units


class AacDepacketizer:
    """Joins RFC 3640 fragments back into whole AAC frames."""

    def __init__(self) -> None:
        self._partial = bytearray()
        self._expected = 0

    def push(self, payload: bytes, *, marker: bool) -> list[bytes]:
        units = parse_aac_payload(payload)
        if len(units) == 1 and (self._partial or len(units[0][1]) < units[0][0]):
            size, data = units[0]
            self._partial += data
            self._expected = size
            if marker or len(self._partial) >= self._expected:
                frame, self._partial = bytes(self._partial), bytearray()
                return [frame] if len(frame) == self._expected else []
            return []
        return [data for _, data in units]
