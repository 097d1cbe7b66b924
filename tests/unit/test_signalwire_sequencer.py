"""The SignalWire message sequencer and client-message parser: counters, shapes, codecs (sans I/O)."""

from __future__ import annotations

import json

import pytest

from clients.signalwire_media import (
    ClientClear,
    ClientDtmf,
    ClientMark,
    ClientMedia,
    IgnoredMessage,
    MediaSequencer,
    media_format,
    parse_client_message,
)


def _sequencer(tracks=("inbound", "outbound"), **kwargs) -> MediaSequencer:
    return MediaSequencer("sid-1", "acct", "conf", tracks, media_format("PCMU"), **kwargs)


def test_start_is_sequence_one_and_media_counts_globally_with_per_track_chunks():
    seq = _sequencer()
    start = json.loads(seq.start())
    assert start["sequenceNumber"] == "1" and start["start"]["tracks"] == ["inbound", "outbound"]
    messages = [json.loads(seq.media(track, "AA==")) for _ in range(2) for track in ("inbound", "outbound")]
    assert [m["sequenceNumber"] for m in messages] == ["2", "3", "4", "5"]
    assert [(m["media"]["track"], m["media"]["chunk"], m["media"]["timestamp"]) for m in messages] == [
        ("inbound", "1", "0"), ("outbound", "1", "0"), ("inbound", "2", "20"), ("outbound", "2", "20")]
    assert "streamSid" not in messages[0]
    assert json.loads(seq.stop()) == {"event": "stop", "sequenceNumber": "6"}


def test_dtmf_takes_a_sequence_number_and_a_numeric_duration_while_mark_takes_none():
    seq = _sequencer()
    seq.start()
    assert json.loads(seq.dtmf("5", 2000)) == {"event": "dtmf", "sequenceNumber": "2", "streamSid": "sid-1",
                                               "dtmf": {"digit": "5", "duration": 2000}}
    assert json.loads(seq.mark("m")) == {"event": "mark", "streamSid": "sid-1", "mark": {"name": "m"}}
    quiet = _sequencer(omit_streamsid_in_dtmf_mark=True)
    assert "streamSid" not in json.loads(quiet.mark("m"))


def test_custom_parameters_are_omitted_when_empty_unless_the_quirk_flag_asks():
    assert "customParameters" not in json.loads(_sequencer().start())["start"]
    always = json.loads(_sequencer(always_custom_parameters=True).start())["start"]
    assert always["customParameters"] == {}
    given = json.loads(_sequencer(custom_parameters={"a": "b"}).start())["start"]
    assert given["customParameters"] == {"a": "b"}


def test_a_skipped_chunk_leaves_a_visible_gap():
    seq = _sequencer(tracks=("inbound",))
    seq.start()
    seq.media("inbound", "AA==")
    seq.skip("inbound")
    after = json.loads(seq.media("inbound", "AA=="))
    assert (after["sequenceNumber"], after["media"]["chunk"]) == ("4", "3")


@pytest.mark.parametrize(
    ("codec", "encoding", "rate", "size", "silence"),
    [("PCMU", "audio/x-mulaw", 8000, 160, 0xFF), ("PCMA", "audio/x-alaw", 8000, 160, 0xD5),
     ("L16", "audio/x-L16", 16000, 640, 0), ("L16@16000h", "audio/x-L16", 16000, 640, 0),
     ("L16@24000h", "audio/x-L16", 24000, 960, 0)],
)
def test_codec_formats_have_the_documented_rate_payload_size_and_silence(codec, encoding, rate, size, silence):
    fmt = media_format(codec)
    assert (fmt.encoding, fmt.sample_rate, fmt.bytes_per_chunk) == (encoding, rate, size)
    assert set(fmt.silence) == {silence} and len(fmt.silence) == size


def test_an_unknown_codec_names_the_allowed_values():
    with pytest.raises(ValueError, match="PCMU, PCMA, L16"):
        media_format("OPUS")


def test_client_messages_parse_and_bad_ones_are_ignored_with_a_reason():
    parse = lambda text: parse_client_message(text, "sid-1")  # noqa: E731
    assert parse('{"event":"media","streamSid":"sid-1","media":{"payload":"AAE="}}') == ClientMedia(b"\x00\x01")
    assert parse('{"event":"mark","streamSid":"sid-1","mark":{"name":"x"}}') == ClientMark("x")
    assert parse('{"event":"clear","streamSid":"sid-1"}') == ClientClear()
    assert parse('{"event":"dtmf","streamSid":"sid-1","dtmf":{"digit":"#"}}') == ClientDtmf("#")
    for bad in ("not json", "[]", '{"event":"dance","streamSid":"sid-1"}',
                '{"event":"clear","streamSid":"other"}',
                '{"event":"media","streamSid":"sid-1","media":{"payload":"***"}}',
                '{"event":"dtmf","streamSid":"sid-1","dtmf":{"digit":"X"}}'):
        assert isinstance(parse(bad), IgnoredMessage)
