"""Codec helpers: every encoder is checked by an independent decoder (FFmpeg through PyAV)."""

from __future__ import annotations

import struct
import zlib

import av
import numpy as np
import pytest

from clients.g711 import (
    alaw_to_pcm16,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)
from emulators.kit.codecs import (
    AacEncoder,
    H264Encoder,
    JpegEncoder,
    PngEncoder,
    annexb_to_avcc,
    jpeg_qscale,
    split_annexb,
)
from emulators.kit.synth import ToneGenerator, draw_disc, fill_rect, to_int16, vertical_gradient


def picture(width: int = 640, height: int = 480, shift: int = 0) -> np.ndarray:
    frame = vertical_gradient(width, height, (70, 120, 210), (40, 150, 70))
    fill_rect(frame, 0, height * 3 // 4, width // 10, height // 4, (210, 40, 40))
    draw_disc(frame, width * 0.3 + shift, height * 0.5, height / 6, (245, 245, 245))
    return frame


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def decode_still(codec: str, data: bytes, fmt: str = "rgb24") -> np.ndarray:
    frames = av.CodecContext.create(codec, "r").decode(av.Packet(data))
    assert len(frames) == 1
    return frames[0].to_ndarray(format=fmt)


# --- JPEG ---------------------------------------------------------------------------------------------


def test_jpeg_quality_maps_to_libjpeg_like_qscale():
    assert jpeg_qscale(50) == 8  # the standard tables
    assert jpeg_qscale(100) == 1
    assert jpeg_qscale(75) == 4
    assert jpeg_qscale(1) == 255
    assert [jpeg_qscale(q) for q in range(1, 101)] == sorted((jpeg_qscale(q) for q in range(1, 101)), reverse=True)


@pytest.mark.parametrize("quality", [0, 101, 50.5, True])
def test_jpeg_quality_outside_1_to_100_is_refused(quality):
    with pytest.raises(ValueError, match=r"quality must be an integer in 1\.\.100"):
        JpegEncoder(quality)


def test_jpeg_decodes_to_the_picture_and_lower_quality_is_smaller():
    frame = picture()
    sizes = {}
    for quality, floor_db in ((1, 22.0), (30, 32.0), (75, 36.0), (100, 40.0)):
        data = JpegEncoder(quality).encode(frame)
        assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
        decoded = decode_still("mjpeg", data)
        assert decoded.shape == frame.shape
        assert psnr(decoded, frame) > floor_db, quality
        sizes[quality] = len(data)
    assert sizes[1] < sizes[30] < sizes[75] < sizes[100]


def test_jpeg_encoder_follows_frame_size_changes_and_odd_sizes():
    encoder = JpegEncoder(80)
    for width, height in ((640, 480), (639, 479), (480, 640)):
        frame = picture(width, height)
        decoded = decode_still("mjpeg", encoder.encode(frame))
        assert decoded.shape == (height, width, 3)
        assert psnr(decoded, frame) > 30


def test_jpeg_encodes_grey_frames():
    grey = picture()[:, :, 1].copy()
    decoded = decode_still("mjpeg", JpegEncoder(90).encode(grey), fmt="gray")
    assert psnr(decoded, grey) > 35


# --- PNG ----------------------------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        tag, payload = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(tag + payload), tag
        chunks.append((tag, payload))
        offset += 12 + length
    return chunks


@pytest.mark.parametrize("filter_type", [0, 1])
def test_png_is_valid_and_decodes_losslessly(filter_type):
    frame = picture(1280, 720)
    data = PngEncoder(1, filter_type=filter_type).encode(frame)
    assert [tag for tag, _ in png_chunks(data)] == [b"IHDR", b"IDAT", b"IEND"]
    assert np.array_equal(decode_still("png", data), frame)


def test_png_encodes_grey_and_16_bit_depth_losslessly():
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, size=(400, 640), dtype=np.uint8)
    depth = rng.integers(0, 15000, size=(400, 640)).astype(np.uint16)
    assert np.array_equal(decode_still("png", PngEncoder(6).encode(grey), fmt="gray"), grey)
    for filter_type in (0, 1):
        data = PngEncoder(1, filter_type=filter_type).encode(depth)
        assert np.array_equal(decode_still("png", data, fmt="gray16le"), depth)


def test_png_higher_compression_level_is_smaller():
    frame = picture(1280, 720)
    assert len(PngEncoder(9).encode(frame)) < len(PngEncoder(1).encode(frame))


@pytest.mark.parametrize(("kwargs", "message"), [({"compression_level": 10}, "compression_level"),
                                                 ({"filter_type": 4}, "filter_type")])
def test_png_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PngEncoder(**kwargs)


# --- H.264 --------------------------------------------------------------------------------------------


def nal_types(data: bytes) -> list[int]:
    return [unit[0] & 0x1F for unit in split_annexb(data)]


def test_split_annexb_handles_3_and_4_byte_start_codes():
    stream = b"\x00\x00\x00\x01\x67\xaa\x00\x00\x01\x68\xbb\x00\x00\x00\x01\x65\xcc\xdd"
    assert split_annexb(stream) == [b"\x67\xaa", b"\x68\xbb", b"\x65\xcc\xdd"]
    assert annexb_to_avcc(stream) == b"\x00\x00\x00\x02\x67\xaa\x00\x00\x00\x02\x68\xbb\x00\x00\x00\x03\x65\xcc\xdd"


def test_h264_is_constrained_baseline_with_idr_every_gop_and_headers_in_band():
    encoder = H264Encoder(640, 480, fps=30, bitrate=800_000, gop=10)
    assert encoder.sps[0] & 0x1F == 7 and encoder.pps[0] & 0x1F == 8
    profile_idc, constraints = encoder.sps[1], encoder.sps[2]
    assert profile_idc == 66 and constraints & 0x40  # constraint_set1: constrained baseline
    assert encoder.profile_level_id == encoder.sps[1:4].hex().upper()
    assert encoder.codecs_string.startswith("avc1.42")
    keyframes = []
    for index in range(25):
        for packet in encoder.encode(picture(shift=index * 4), pts=index):
            assert packet.data.startswith(b"\x00\x00\x00\x01") or packet.data.startswith(b"\x00\x00\x01")
            assert packet.pts == index  # zerolatency: one access unit out per frame in
            types = nal_types(packet.data)
            if packet.keyframe:
                keyframes.append(index)
                assert 7 in types and 8 in types and 5 in types
            else:
                assert 5 not in types and 7 not in types
    assert keyframes == [0, 10, 20]


def test_h264_decodes_from_a_later_idr_and_from_avcc_with_the_extradata():
    encoder = H264Encoder(320, 240, fps=15, bitrate=600_000, gop=5)
    frames = [picture(320, 240, shift=index * 3) for index in range(12)]
    packets = [packet for index, frame in enumerate(frames) for packet in encoder.encode(frame, pts=index)]
    packets += encoder.flush()
    # A viewer joining at the second IDR gets SPS/PPS in-band and decodes from there.
    late = av.CodecContext.create("h264", "r")
    pictures = [pic for packet in packets[5:] for pic in late.decode(av.Packet(packet.data))]
    pictures += late.decode(None)
    assert len(pictures) == 7
    for pic, frame in zip(pictures, frames[5:], strict=True):
        assert psnr(pic.to_ndarray(format="rgb24"), frame) > 28
    # A muxer-style decoder configured with the avcC record and length-prefixed samples decodes too.
    avcc = av.CodecContext.create("h264", "r")
    avcc.extradata = encoder.extradata
    assert encoder.extradata[0] == 1 and encoder.extradata[1:4] == encoder.sps[1:4]
    decoded = [pic for packet in packets for pic in avcc.decode(av.Packet(annexb_to_avcc(packet.data)))]
    decoded += avcc.decode(None)
    assert len(decoded) == 12
    assert psnr(decoded[-1].to_ndarray(format="rgb24"), frames[-1]) > 28


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"width": 641}, "even"), ({"fps": 0}, "fps"), ({"bitrate": 5}, "bitrate"), ({"gop": 0}, "gop"),
     ({"profile": "extended"}, "profile")],
)
def test_h264_parameters_are_checked(kwargs, message):
    arguments = {"width": 640, "height": 480, "fps": 30, "bitrate": 500_000} | kwargs
    with pytest.raises(ValueError, match=message):
        H264Encoder(**arguments)


def test_h264_refuses_frames_of_another_size():
    encoder = H264Encoder(320, 240, fps=10, bitrate=300_000)
    with pytest.raises(ValueError, match="320x240"):
        encoder.encode(picture(640, 480), pts=0)


# --- AAC ----------------------------------------------------------------------------------------------


def test_aac_frames_decode_back_to_the_tone_with_the_audio_specific_config():
    rate = 16000
    tone = ToneGenerator(1000.0, rate, amplitude=0.5)
    encoder = AacEncoder(rate, 64_000)
    assert encoder.audio_specific_config == bytes([0x14, 0x08])  # AAC-LC, 16 kHz, mono
    packets = []
    for _ in range(50):  # 1 s in 20 ms chunks, which do not align with 1024-sample frames
        packets += encoder.encode(tone.read_int16(320))
    packets += encoder.flush()
    assert [p.pts for p in packets] == [1024 * (i - 1) for i in range(len(packets))]
    assert all(p.duration == 1024 for p in packets)
    decoder = av.CodecContext.create("aac", "r")
    decoder.extradata = encoder.audio_specific_config
    decoder.sample_rate, decoder.layout = rate, "mono"
    decoded = np.concatenate(
        [frame.to_ndarray().reshape(-1) for p in packets for frame in decoder.decode(av.Packet(p.data))]
    )
    assert len(decoded) >= rate
    steady = decoded[4096:rate - 2048]
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    peak_hz = np.argmax(spectrum) * rate / len(steady)
    assert abs(peak_hz - 1000.0) < 10
    assert 0.3 < np.sqrt(np.mean(steady**2)) * np.sqrt(2) < 0.7  # amplitude 0.5 survives


def test_aac_accepts_only_int16_of_the_right_layout():
    encoder = AacEncoder(48000, 96_000, channels=2)
    with pytest.raises(ValueError, match="int16"):
        encoder.encode(np.zeros(1024, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        encoder.encode(np.zeros(1024, dtype=np.int16))
    assert encoder.encode(np.zeros((2048, 2), dtype=np.int16))
    with pytest.raises(ValueError, match="sample_rate"):
        AacEncoder(15000, 64_000)


# --- G.711 --------------------------------------------------------------------------------------------


def ffmpeg_decode(codec: str, data: bytes) -> np.ndarray:
    context = av.CodecContext.create(codec, "r")
    context.sample_rate, context.layout = 8000, "mono"
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in context.decode(av.Packet(data))])


def ffmpeg_encode(codec: str, samples: np.ndarray) -> np.ndarray:
    context = av.CodecContext.create(codec, "w")
    context.sample_rate, context.layout, context.format = 8000, "mono", "s16"
    context.open()
    frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
    frame.sample_rate = 8000
    return np.frombuffer(b"".join(bytes(p) for p in context.encode(frame)), dtype=np.uint8)


G711 = [("pcm_mulaw", pcm16_to_ulaw, ulaw_to_pcm16), ("pcm_alaw", pcm16_to_alaw, alaw_to_pcm16)]


@pytest.mark.parametrize(("codec", "encode", "decode"), G711)
def test_g711_decoding_matches_ffmpeg_for_every_code(codec, encode, decode):
    codes = bytes(range(256))
    assert np.array_equal(decode(codes), ffmpeg_decode(codec, codes))


@pytest.mark.parametrize(("codec", "encode", "decode"), G711)
def test_g711_encoding_is_within_half_a_step_and_agrees_with_ffmpeg_off_decision_boundaries(codec, encode, decode):
    linear = np.arange(-32768, 32768, dtype=np.int16)
    ours = np.frombuffer(encode(linear), dtype=np.uint8)
    reconstructed = ffmpeg_decode(codec, ours.tobytes()).astype(np.int32)
    levels = np.unique(decode(bytes(range(256))).astype(np.int32))
    # Half the gap to the neighbouring reconstruction levels bounds the error (outside the clipped top).
    position = np.searchsorted(levels, reconstructed)
    gap = np.diff(levels)[np.clip(position, 0, len(levels) - 2)]
    inside = np.abs(linear.astype(np.int32)) < levels[-1]
    assert (np.abs(reconstructed - linear)[inside] <= gap[inside]).all()
    # FFmpeg rounds to the nearest level while G.711 truncates, so they may differ only at decision levels,
    # and then by one quantisation step.
    theirs = ffmpeg_encode(codec, linear)
    differ = ours != theirs
    assert differ.mean() < 0.02
    ours_level = np.searchsorted(levels, decode(ours[differ]).astype(np.int32))
    theirs_level = np.searchsorted(levels, decode(theirs[differ]).astype(np.int32))
    assert (np.abs(ours_level - theirs_level) == 1).all()


def test_g711_known_codes():
    silence = np.zeros(4, dtype=np.int16)
    assert pcm16_to_ulaw(silence) == b"\xff" * 4
    assert pcm16_to_alaw(silence) == b"\xd5" * 4
    extremes = np.array([32767, -32768], dtype=np.int16)
    assert pcm16_to_ulaw(extremes) == b"\x80\x00"
    assert pcm16_to_alaw(extremes) == b"\xaa\x2a"
    # Every code survives decode then encode (mu-law's "-0", 0x7F, comes back as +0, 0xFF).
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(np.frombuffer(pcm16_to_alaw(alaw_to_pcm16(codes)), np.uint8), codes)
    ulaw = np.frombuffer(pcm16_to_ulaw(ulaw_to_pcm16(codes)), np.uint8)
    assert np.array_equal(ulaw[codes != 0x7F], codes[codes != 0x7F]) and ulaw[0x7F] == 0xFF


def test_g711_round_trip_keeps_speech_band_signals_clean():
    tone = to_int16(ToneGenerator(440.0, 8000, amplitude=0.5).read(8000))
    for encode, decode in ((pcm16_to_ulaw, ulaw_to_pcm16), (pcm16_to_alaw, alaw_to_pcm16)):
        back = decode(encode(tone)).astype(np.float64)
        noise = back - tone
        snr = 10 * np.log10(np.mean(tone.astype(np.float64) ** 2) / np.mean(noise**2))
        assert snr > 30  # G.711 gives about 38 dB on a loud tone


def test_g711_refuses_non_int16_samples():
    with pytest.raises(ValueError, match="int16"):
        pcm16_to_ulaw(np.zeros(10, dtype=np.float32))


def test_png_band_cache_reencodes_only_changed_rows_and_stays_a_valid_png() -> None:
    rng = np.random.default_rng(5)
    base = rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)
    encoder = PngEncoder(1)
    first = encoder.encode(base, cache_key="tile")
    changed = base.copy()
    changed[40:42, 10:20] = 0  # one band differs
    second = encoder.encode(changed, cache_key="tile")
    for data, image in ((first, base), (second, changed)):
        assert np.array_equal(decode_still("png", data, fmt="rgb24"), image)
    # Unchanged bands are reused byte for byte: the two zlib streams share everything but one segment.
    idat = lambda png: png[png.index(b"IDAT") + 4 : png.index(b"IEND") - 8]  # noqa: E731
    assert zlib.decompress(idat(second)) != zlib.decompress(idat(first))
    # The bands after the changed one are the same bytes in both (only the 4-byte checksum differs).
    assert idat(first)[-3000:-4] == idat(second)[-3000:-4]


def test_adler32_combine_matches_zlib() -> None:
    from emulators.kit.codecs import adler32_combine

    a, b = bytes(range(256)) * 300, b"benchtwin" * 7777
    assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)
