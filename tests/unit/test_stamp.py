"""Frame stamp v1: layout, painting on every frame type, and survival through JPEG, PNG and H.264."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import pytest

from clients.stamp import (
    STAMP_SYNC,
    FrameStamp,
    StampError,
    StreamKind,
    crc8,
    pack_stamp,
    read_stamp,
    unpack_stamp,
)
from emulators.kit.codecs import H264Encoder, JpegEncoder, PngEncoder
from emulators.kit.stamp import paint_stamp, stamp_bits, stamp_cell_size
from emulators.kit.synth import draw_disc, draw_text, fill_rect, vertical_gradient

CAPTURE_MS = 1_763_780_000_123  # a Unix ms timestamp in late 2025


@lru_cache(maxsize=8)
def textured_background(width: int, height: int, seed: int) -> np.ndarray:
    frame = vertical_gradient(width, height, (60, 110, 200), (30, 140, 60))
    noise = np.random.default_rng(seed).integers(-12, 13, size=frame.shape, dtype=np.int16)
    frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    frame.setflags(write=False)
    return frame


def scene(width: int, height: int, frame_index: int = 0, seed: int = 7) -> np.ndarray:
    """A textured, moving picture, so the codecs have real content around the stamp."""
    frame = textured_background(width, height, seed).copy()
    fill_rect(frame, 0, height - height // 8, width // 12, height // 8, (200, 30, 30))
    draw_disc(frame, (frame_index * 23) % width, height * 0.55, min(width, height) / 8, (250, 250, 250))
    draw_text(frame, width // 2, height - 20, f"frame {frame_index}", (255, 255, 0), 1)
    return frame


def stamped(width: int, height: int, frame_index: int = 0) -> tuple[np.ndarray, FrameStamp]:
    stamp = FrameStamp(StreamKind.MISTY_AV, 513, frame_index, CAPTURE_MS + 33 * frame_index)
    return paint_stamp(scene(width, height, frame_index), stamp), stamp


def test_crc8_is_the_poly_07_init_0_crc():
    # The published check value of CRC-8 (poly 0x07, init 0, no reflection) over "123456789".
    assert crc8(b"123456789") == 0xF4
    assert crc8(b"") == 0


def test_stamp_bits_follow_the_v1_layout_msb_first():
    stamp = FrameStamp(stream_kind=2, stream_id=0x1234, frame_index=0x89ABCDEF, capture_time_ms=0x0123456789AB)
    bits = stamp_bits(stamp)
    assert bits.shape == (128,) and set(np.unique(bits)) <= {0, 1}
    value = int("".join(map(str, bits)), 2)
    assert value >> 112 == STAMP_SYNC
    assert (value >> 108) & 0xF == 1  # version
    assert (value >> 104) & 0xF == 2
    assert (value >> 88) & 0xFFFF == 0x1234
    assert (value >> 56) & 0xFFFFFFFF == 0x89ABCDEF
    assert (value >> 8) & 0xFFFFFFFFFFFF == 0x0123456789AB
    # The CRC covers the 104 bits between the sync word and the CRC itself.
    assert value & 0xFF == crc8(((value >> 8) & ((1 << 104) - 1)).to_bytes(13, "big"))


def test_pack_and_unpack_are_inverse():
    stamp = FrameStamp(StreamKind.RECALL_SCREENSHARE, 65535, 2**32 - 1, 2**48 - 1)
    assert unpack_stamp(pack_stamp(stamp)) == stamp


@pytest.mark.parametrize(
    ("width", "height", "cell"),
    [(256, 144, 8), (320, 240, 8), (640, 480, 16), (480, 640, 16), (1280, 720, 24), (1920, 1080, 32)],
)
def test_cell_size_grows_8_px_per_240_px_of_the_short_side(width, height, cell):
    assert stamp_cell_size(width, height) == cell


def test_stamp_is_painted_as_16x8_black_and_white_cells_at_the_top_left():
    frame = np.full((480, 640, 3), 77, dtype=np.uint8)
    stamp = FrameStamp(StreamKind.MISTY_WEBSOCKET, 1, 0, CAPTURE_MS)
    paint_stamp(frame, stamp)
    cells = frame[:128, :256, 0].reshape(8, 16, 16, 16)
    assert (cells == cells[:, :1, :, :1]).all()  # every cell is one solid value
    assert np.array_equal((cells[:, 0, :, 0] == 255).reshape(-1), stamp_bits(stamp).astype(bool))
    assert set(np.unique(cells)) == {0, 255}
    assert (frame[128:, :, :] == 77).all() and (frame[:, 256:, :] == 77).all()  # nothing else touched


@pytest.mark.parametrize(
    ("dtype", "shape", "one_value"),
    [(np.uint8, (480, 640, 3), 255), (np.uint8, (400, 640), 255), (np.uint8, (400, 640), 95),
     (np.uint16, (400, 640), 4000), (np.uint16, (144, 256), 65535)],
)
def test_painted_stamp_reads_back_on_rgb_grey_disparity_and_depth_frames(dtype, shape, one_value):
    frame = np.random.default_rng(1).integers(0, 40, size=shape).astype(dtype)
    stamp = FrameStamp(StreamKind.DEPTHCAM_DEPTH, 3, 41, CAPTURE_MS)
    paint_stamp(frame, stamp, one_value=one_value)
    assert read_stamp(frame) == stamp


def test_read_stamp_reports_known_kinds_by_name_and_unknown_kinds_as_numbers():
    frame = np.zeros((240, 320), dtype=np.uint8)
    paint_stamp(frame, FrameStamp(StreamKind.VIDEODB_CAMERA, 1, 2, 3))
    assert read_stamp(frame).stream_kind is StreamKind.VIDEODB_CAMERA
    paint_stamp(frame, FrameStamp(14, 1, 2, 3))
    kind = read_stamp(frame).stream_kind
    assert kind == 14 and not isinstance(kind, StreamKind)


def test_stream_kinds_keep_mistys_values_and_fit_in_four_bits():
    assert (StreamKind.MISTY_WEBSOCKET, StreamKind.MISTY_AV, StreamKind.MISTY_PICTURE) == (1, 2, 3)
    values = [kind.value for kind in StreamKind]
    assert len(values) == len(set(values)) and all(1 <= value <= 15 for value in values)
    prefixes = {kind.name.split("_")[0] for kind in StreamKind}
    assert prefixes == {"MISTY", "DEPTHCAM", "RECALL", "VIDEODB"}


def decode_image(codec: str, data: bytes) -> av.VideoFrame:
    frames = av.CodecContext.create(codec, "r").decode(av.Packet(data))
    assert len(frames) == 1
    return frames[0]


@pytest.mark.parametrize("quality", [1, 100])
@pytest.mark.parametrize(("width", "height"), [(640, 480), (256, 144), (1280, 720)])
def test_stamp_survives_jpeg_at_quality_1_and_100(quality, width, height):
    frame, stamp = stamped(width, height, frame_index=29)
    decoded = decode_image("mjpeg", JpegEncoder(quality).encode(frame))
    assert read_stamp(decoded.to_ndarray(format="rgb24")) == stamp
    assert read_stamp(decoded) == stamp  # straight from the decoder's YUV planes


def test_stamp_survives_png_exactly():
    frame, stamp = stamped(1280, 720, frame_index=7)
    decoded = decode_image("png", PngEncoder().encode(frame)).to_ndarray(format="rgb24")
    assert np.array_equal(decoded, frame)
    assert read_stamp(decoded) == stamp


@pytest.mark.parametrize(("width", "height"), [(640, 480), (320, 240), (1280, 720), (256, 144)])
def test_stamp_survives_h264_at_500_kbits_on_every_frame(width, height):
    fps, frames = 30, 36  # past the second IDR, so P-frames after a keyframe are covered too
    encoder = H264Encoder(width, height, fps=fps, bitrate=500_000)
    decoder = av.CodecContext.create("h264", "r")
    sent: list[FrameStamp] = []
    read_rgb: list[FrameStamp] = []
    for index in range(frames):
        frame, stamp = stamped(width, height, frame_index=index)
        sent.append(stamp)
        for packet in encoder.encode(frame, pts=index):
            for picture in decoder.decode(av.Packet(packet.data)):
                read_rgb.append(read_stamp(picture.to_ndarray(format="rgb24")))
                # The planar YUV array PyAV gives (luma rows first) and the frame itself read the same.
                assert read_stamp(picture.to_ndarray()) == read_rgb[-1]
                assert read_stamp(picture) == read_rgb[-1]
    for packet in encoder.flush():
        for picture in decoder.decode(av.Packet(packet.data)):
            read_rgb.append(read_stamp(picture.to_ndarray(format="rgb24")))
    for picture in decoder.decode(None):
        read_rgb.append(read_stamp(picture.to_ndarray(format="rgb24")))
    assert read_rgb == sent


def test_a_corrupted_data_cell_fails_the_crc():
    frame, _ = stamped(640, 480)
    cell = stamp_cell_size(640, 480)
    row, column = 4, 9  # inside frame_index
    frame[row * cell : (row + 1) * cell, column * cell : (column + 1) * cell] ^= 0xFF
    with pytest.raises(StampError, match="CRC"):
        read_stamp(frame)


def test_a_frame_without_a_stamp_has_no_sync():
    with pytest.raises(StampError, match="no frame stamp"):
        read_stamp(scene(640, 480))
    with pytest.raises(StampError, match="no frame stamp"):
        read_stamp(np.zeros((480, 640, 3), dtype=np.uint8))


def test_a_broken_sync_word_is_reported():
    frame, _ = stamped(320, 240)
    frame[:8, :8] = 0  # first sync cell is a 1
    with pytest.raises(StampError, match="sync"):
        read_stamp(frame)


def test_an_unknown_version_is_refused():
    raw = bytearray(pack_stamp(FrameStamp(1, 2, 3, 4)))
    raw[2] = (2 << 4) | (raw[2] & 0x0F)
    raw[15] = crc8(bytes(raw[2:15]))
    with pytest.raises(StampError, match="version 2"):
        unpack_stamp(bytes(raw))


def test_frames_too_small_for_the_grid_are_refused():
    with pytest.raises(ValueError, match="too small"):
        paint_stamp(np.zeros((60, 200, 3), dtype=np.uint8), FrameStamp(1, 1, 1, 1))
    with pytest.raises(StampError, match="smaller"):
        read_stamp(np.zeros((60, 200), dtype=np.uint8))


@pytest.mark.parametrize(
    ("field", "value"),
    [("stream_kind", 16), ("stream_id", 65536), ("frame_index", -1), ("capture_time_ms", 2**48)],
)
def test_out_of_range_fields_are_rejected_with_their_name(field, value):
    fields = {"stream_kind": 1, "stream_id": 1, "frame_index": 1, "capture_time_ms": 1} | {field: value}
    with pytest.raises(ValueError, match=field):
        FrameStamp(**fields)


def test_paint_stamp_rejects_unsupported_frames():
    stamp = FrameStamp(1, 1, 1, 1)
    with pytest.raises(ValueError, match="dtype"):
        paint_stamp(np.zeros((240, 320), dtype=np.float32), stamp)
    with pytest.raises(ValueError, match="shape"):
        paint_stamp(np.zeros((240, 320, 4), dtype=np.uint8), stamp)
    with pytest.raises(ValueError, match="one_value"):
        paint_stamp(np.zeros((240, 320), dtype=np.uint8), stamp, one_value=300)


def test_client_stamp_module_needs_nothing_from_the_emulators():
    source = Path(__file__).resolve().parents[2] / "clients" / "stamp.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not any(name.split(".")[0] == "emulators" for name in imported)


def test_stamp_is_painted_in_place_through_a_rotated_view():
    upright = np.zeros((640, 480, 3), dtype=np.uint8)
    rotated = np.rot90(upright)  # a non-contiguous view, as a rotating pipeline hands over
    stamp = FrameStamp(StreamKind.MISTY_PICTURE, 9, 1, CAPTURE_MS)
    paint_stamp(rotated, stamp)
    assert upright.any()  # the pixels landed in the underlying buffer
    assert read_stamp(np.ascontiguousarray(rotated)) == stamp


def test_read_stamp_accepts_rgba_and_an_explicit_cell_size():
    frame, stamp = stamped(640, 480)
    rgba = np.dstack([frame, np.full(frame.shape[:2], 255, dtype=np.uint8)])
    assert read_stamp(rgba) == stamp
    assert read_stamp(frame, cell_size=16) == stamp
    with pytest.raises(StampError):
        read_stamp(frame, cell_size=8)
