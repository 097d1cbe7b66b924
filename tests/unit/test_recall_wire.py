"""Recall wire formats: the legacy binary header, hellos and the v1.11 event envelope."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clients import recall_wire as wire
from emulators.kit.codecs import PngEncoder


def test_video_header_is_little_endian_participant_then_milliseconds() -> None:
    message = wire.pack_video_frame(200, 1500, wire.PNG_SIGNATURE + b"rest")
    assert message[:16].hex(" ") == "c8 00 00 00 dc 05 00 00 89 50 4e 47 0d 0a 1a 0a"
    frame = wire.unpack_video_frame(message)
    assert (frame.participant_id, frame.timestamp_ms) == (200, 1500)
    assert frame.png.startswith(wire.PNG_SIGNATURE)


def test_short_video_message_is_rejected_naming_the_header() -> None:
    with pytest.raises(wire.WireError, match="8-byte header"):
        wire.unpack_video_frame(b"\x01\x02")


def test_png_dimensions_come_from_ihdr() -> None:
    png = PngEncoder().encode(np.zeros((144, 256, 3), dtype=np.uint8))
    assert wire.png_dimensions(png) == (256, 144)
    with pytest.raises(wire.WireError, match="PNG signature"):
        wire.png_dimensions(b"GIF89a....")


def test_video_hello_names_protocol_version_and_bot() -> None:
    assert json.loads(wire.video_hello("abc")) == {"protocol_version": 1, "bot_id": "abc"}


def test_mixed_audio_hello_carries_recording_and_float_offset() -> None:
    hello = json.loads(wire.audio_hello("b", "r", separate_streams=False, offset_s=1.25))
    assert hello == {"protocol_version": 1, "bot_id": "b", "recording_id": "r", "separate_streams": False,
                     "offset": 1.25}
    assert isinstance(json.loads(wire.audio_hello("b", "r", separate_streams=False, offset_s=0))["offset"], float)


def test_separate_audio_chunks_carry_a_participant_prefix() -> None:
    message = wire.pack_audio_chunk(b"\x01\x00\x02\x00", 300)
    assert message[:4] == (300).to_bytes(4, "little")
    assert wire.unpack_audio_chunk(message, separate_streams=True) == (300, b"\x01\x00\x02\x00")
    assert wire.unpack_audio_chunk(b"\x01\x00", separate_streams=False) == (None, b"\x01\x00")


def test_realtime_event_envelope_round_trips() -> None:
    text = wire.realtime_event(
        "audio_mixed_raw.data",
        wire.audio_event_data(b"\x00\x00", timestamp=wire.event_timestamp(1.5, 1_700_000_001.5)),
        {"bot": wire.resource_ref("bot-1", {"team": "a"})},
    )
    event, data = wire.parse_realtime_event(text)
    assert event == "audio_mixed_raw.data"
    assert data["bot"] == {"id": "bot-1", "metadata": {"team": "a"}}
    assert data["data"]["timestamp"]["relative"] == 1.5
    assert data["data"]["timestamp"]["absolute"].endswith("Z")


def test_realtime_parser_names_what_is_missing() -> None:
    with pytest.raises(wire.WireError, match="'event'"):
        wire.parse_realtime_event('{"data": {}}')
    with pytest.raises(wire.WireError, match="'data'"):
        wire.parse_realtime_event('{"event": "x", "data": 3}')
