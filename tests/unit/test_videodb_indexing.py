"""Emulated AI: frame analysis, JSON-shaped answers, voice activity, seeded transcripts, batching, HLS playlists."""

from __future__ import annotations

import json

import numpy as np

from emulators.videodb.alerts import match_event
from emulators.videodb.indexing import (
    AudioBatcher,
    VisualWindow,
    VoiceActivity,
    analyse_frame,
    describe_window,
    render_for_prompt,
    rms_frames,
    spectral_flux,
    speech_text,
    word_timestamps,
)
from emulators.videodb.media import manifest_path, parse_window, render_playlist
from emulators.videodb.model import Segment


def solid(rgb: tuple[int, int, int], size: tuple[int, int] = (120, 160)) -> np.ndarray:
    frame = np.zeros((*size, 3), dtype=np.uint8)
    frame[:] = rgb
    return frame


def test_a_dark_blue_static_window_is_described_as_such() -> None:
    samples = [analyse_frame(solid((10, 20, 90)), t) for t in (0.0, 0.5, 1.0)]
    analysis = describe_window(samples, None)
    assert analysis.facts["brightness"] == "dark"
    assert analysis.facts["dominant_colors"][0] == "blue"
    assert analysis.facts["motion"] == "static"
    assert analysis.description.startswith("A dark scene dominated by blue")


def test_changing_frames_read_as_significant_motion() -> None:
    samples = [analyse_frame(solid((250, 250, 250) if i % 2 else (0, 0, 0)), float(i)) for i in range(4)]
    assert describe_window(samples, None).facts["motion"] == "significant motion"


def test_scripted_text_wins_over_analysis() -> None:
    samples = [analyse_frame(solid((200, 30, 30)), 0.0)]
    assert describe_window(samples, "A courier leaves a parcel").description == "A courier leaves a parcel"


def test_json_prompts_get_json_with_the_templates_keys() -> None:
    analysis = describe_window([analyse_frame(solid((240, 240, 240)), 0.0)], None)
    prompt = 'Return JSON: {"summary": "...", "person_count": 0, "is_dark": false, "colors": []}'
    answer = json.loads(render_for_prompt(prompt, analysis))
    assert set(answer) == {"summary", "person_count", "is_dark", "colors"}
    assert answer["person_count"] == 0 and answer["is_dark"] is False and answer["colors"] == ["white"]
    assert render_for_prompt("Describe the scene", analysis) == analysis.description


def test_visual_window_closes_after_its_time_with_frame_count_frames() -> None:
    window = VisualWindow(window_s=2.0, frame_count=3)
    closed = [window.feed(analyse_frame(solid((0, 0, 0)), t / 10)) for t in range(0, 25)]
    done = [c for c in closed if c is not None]
    assert len(done) == 1
    start, end, frames = done[0]
    assert (start, end) == (0.0, 2.0) and len(frames) == 3


def test_voice_activity_finds_a_burst_of_tone_between_silences() -> None:
    rate = 16_000
    t = np.arange(rate * 3) / rate
    audio = np.where((t > 1.0) & (t < 2.0), 0.3 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    vad = VoiceActivity()
    segments = vad.feed(0.0, rms_frames(audio, rate))
    assert len(segments) == 1
    assert abs(segments[0].start - 1.0) < 0.05 and abs(segments[0].end - 2.0) < 0.05


def test_speech_text_is_seeded_per_stream_and_segment() -> None:
    a = speech_text("rts-1", 0, 4.0, None)
    assert a == speech_text("rts-1", 0, 4.0, None)
    assert a != speech_text("rts-1", 1, 4.0, None)
    assert 8 <= len(a.split()) <= 22
    assert speech_text("rts-1", 3, 2.0, ["hello", "bye"]) == "bye"


def test_batching_by_words_sentences_and_time() -> None:
    words = word_timestamps("One two three. Four five six. Seven", 0.0, 7.0)
    assert [b[2] for b in AudioBatcher("word", 3).feed(words)] == ["One two three.", "Four five six."]
    assert [b[2] for b in AudioBatcher("sentence", 1).feed(words)] == ["One two three.", "Four five six."]
    by_time = AudioBatcher("time", 2).feed(words)
    assert [b[:2] for b in by_time] == [(0.0, 2.0), (2.0, 4.0), (4.0, 6.0)]


def test_event_matching_drops_stop_words_and_plurals() -> None:
    match = match_event("Detect a person with a trolley", "Two persons push trolleys")
    assert match.fires and match.confidence == 0.99
    assert not match_event("red car", "a blue boat").fires


def test_playlists_cover_the_window_with_discontinuities_and_endlist() -> None:
    segments = [
        Segment(1, 10, 100.0, 2.0, "rec-1/10.ts"),
        Segment(1, 11, 102.0, 2.5, "rec-1/11.ts"),
        Segment(2, 12, 200.0, 2.0, "rec-2/12.ts"),
    ]
    text = render_playlist("rts-x", segments, live=False)
    assert "#EXT-X-MEDIA-SEQUENCE:10" in text and "#EXT-X-TARGETDURATION:3" in text
    assert text.count("#EXT-X-DISCONTINUITY") == 1 and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert "/segments/rts-x/2/12.ts" in text
    assert "#EXT-X-ENDLIST" not in render_playlist("rts-x", segments, live=True)


def test_manifest_names_use_16_digit_microseconds() -> None:
    path = manifest_path("rts-x", 1757523710.0, 1757523726.0)
    assert path == "/manifests/rts-x/1757523710000000-1757523726000000.m3u8"
    assert parse_window(path.rsplit("/", 1)[1]) == (1757523710.0, 1757523726.0)
    assert parse_window("1-2.m3u8") is None


def test_frame_stamps_read_from_full_size_luma_when_large_frames_are_analysed_small() -> None:
    import av

    from clients.stamp import FrameStamp
    from emulators.kit.stamp import paint_stamp

    picture = np.full((720, 1280, 3), 90, dtype=np.uint8)
    paint_stamp(picture, FrameStamp(2, 7, 1234, 1_700_000_000_000))
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
    small = frame.reformat(width=640, height=360).to_ndarray(format="rgb24")
    assert analyse_frame(small, 0.0).stamp is None  # the stamp's cells do not scale with the picture
    assert analyse_frame(small, 0.0, stamp_source=frame.to_ndarray()).stamp == (7, 1234)


def test_a_visual_window_closes_on_time_without_a_next_frame_and_drops_its_late_frames() -> None:
    window = VisualWindow(window_s=2.0, frame_count=2)
    for t in (10.0, 10.5, 11.0):
        assert window.feed(analyse_frame(solid((0, 0, 0)), t)) is None
    assert window.closes_at == 12.0
    assert window.close_due(11.9) is None
    start, end, frames = window.close_due(12.0) or (0.0, 0.0, [])
    assert (start, end, len(frames)) == (10.0, 12.0, 2)
    assert window.closes_at is None and window.close_due(99.0) is None  # nothing waits: nothing to close
    assert window.feed(analyse_frame(solid((0, 0, 0)), 11.9)) is None and window.closes_at is None


def test_the_last_partial_window_is_flushed_at_stop_ending_at_the_stop() -> None:
    window = VisualWindow(window_s=2.0, frame_count=3)
    assert window.flush(5.0) is None
    for t in (20.0, 20.4, 20.8):
        window.feed(analyse_frame(solid((0, 0, 0)), t))
    start, end, frames = window.flush(21.0) or (0.0, 0.0, [])
    assert (start, end, len(frames)) == (20.0, 21.0, 3)
    assert window.flush(30.0) is None


def test_a_structured_json_prompt_gets_values_of_the_templates_types() -> None:
    frames = [analyse_frame(solid((240, 240, 240)), 0.0), analyse_frame(solid((240, 240, 240)), 0.5)]
    analysis = describe_window(frames, None)
    prompt = (
        'Answer in JSON: {"motion_detected": true/false, "is_bright": true/false, "mean_brightness": <number>, '
        '"colors": ["..."], "color_count": 0, "person_present": "boolean", "people": "integer", '
        '"objects": [], "summary": "string", "details": {}}'
    )
    answer = json.loads(render_for_prompt(prompt, analysis))
    assert answer == {
        "motion_detected": False,
        "is_bright": True,
        "mean_brightness": analysis.facts["mean_luma"],
        "colors": ["white"],
        "color_count": 1,
        "person_present": False,
        "people": 0,
        "objects": [],
        "summary": analysis.description,
        "details": {},
    }


def test_a_model_name_outside_the_tiers_is_answered_as_a_tier_and_the_index_says_so() -> None:
    from emulators.videodb.model import VideoDBBackend, VideoDBError

    b = VideoDBBackend(seed=1, now=1_757_523_700.0)
    rts = b.create_rtstream({"url": "rtsp://127.0.0.1:8554/x", "name": "X"}, 1_757_523_700.0)
    body = {"extraction_type": "time", "model_name": "GPT4o"}
    wire = b.create_index(rts.id, body, 1_757_523_700.0).wire()
    assert (wire["model_name"], wire["model_tier"]) == ("GPT4o", "pro")
    assert wire["model_note"] == "'GPT4o' is not a VideoDB tier; it is answered as the 'pro' tier"
    assert b.create_index(rts.id, {**body, "model_name": "ultra"}, 1_757_523_700.0).wire()["model_tier"] == "ultra"
    assert "model_note" not in b.create_index(rts.id, {**body, "model_name": "ultra"}, 1_757_523_700.0).wire()
    assert b.create_index(rts.id, {**body, "model_name": "gpt-4o-mini"}, 1_757_523_700.0).wire()["model_tier"] == "mini"
    try:
        b.create_index(rts.id, {**body, "model_name": 4}, 1_757_523_700.0)
    except VideoDBError as exc:
        assert "'model_name' must be a non-empty string" in exc.message
    else:
        raise AssertionError("a numeric model_name was accepted")


def _judged(audio: np.ndarray, rate: int = 16_000) -> list[bool]:
    vad = VoiceActivity()
    segments = vad.feed(0.0, rms_frames(audio, rate), spectral_flux(audio, rate))
    segments += vad.feed(len(audio) / rate, [0.0] * 40, [0.0] * 40)  # trailing silence closes the last one
    return [s.is_speech for s in segments]


def test_a_steady_tone_and_held_notes_are_sound_but_not_speech() -> None:
    rate = 16_000
    t = np.arange(rate * 2) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    assert _judged(np.concatenate([tone, np.zeros(rate)]).astype(np.float32)) == [False]
    notes = 262 * 2 ** (np.floor(t * 4) / 12)  # a new note every 250 ms, each held
    melody = 0.3 * np.sin(2 * np.pi * notes * t) * (0.7 + 0.3 * np.sin(2 * np.pi * 4 * t))
    assert _judged(np.concatenate([melody, np.zeros(rate)]).astype(np.float32)) == [False]


def test_sound_whose_spectrum_keeps_changing_like_syllables_is_speech() -> None:
    rate = 16_000
    rng = np.random.default_rng(7)
    t = np.arange(rate * 2) / rate
    pitch = np.repeat(rng.uniform(100, 300, size=50), int(rate * 0.04))[: len(t)]  # a new pitch every 40 ms
    formant = np.repeat(rng.uniform(500, 2500, size=34), int(rate * 0.06))[: len(t)]  # and formant every 60 ms
    voiced = np.sin(2 * np.pi * np.cumsum(pitch) / rate) + 0.6 * np.sin(2 * np.pi * np.cumsum(formant) / rate)
    syllables = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 2.5 * t))
    assert _judged(np.concatenate([0.2 * voiced * syllables, np.zeros(rate)]).astype(np.float32)) == [True]
