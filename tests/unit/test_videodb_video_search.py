"""The Video API slice of an exported recording, decided without I/O: the spoken-word index comes from the
stream's transcript in video time, Search V2 answers only when something matches, compile keeps shot order.
"""

from __future__ import annotations

import pytest

from emulators.videodb.model import Segment, TranscriptRecord, VideoDBBackend, VideoDBError
from emulators.videodb.videos import compile_request, score

NOW = 1_757_523_700.0


def exported() -> tuple[VideoDBBackend, str]:
    """A stopped stream with ten 1 s segments from NOW+0 and three utterances, exported as a video."""
    b = VideoDBBackend(seed=3, now=NOW)
    stream = b.create_rtstream({"url": "rtsp://127.0.0.1:8554/dock", "name": "Dock", "store": True}, NOW)
    b.transcription_action(stream.id, {"action": "start"}, NOW)
    recording = stream.current_recording
    assert recording is not None
    for i in range(10):
        b.file_segment(stream.id, Segment(recording.number, i, NOW + i, 1.0, f"rec-{recording.number}/{i}.ts"))
    for start, text in ((1.0, "Good morning."), (4.0, "The delivery truck is here."), (8.0, "Truck leaving.")):
        b.file_transcript(stream.id, TranscriptRecord(NOW + start, NOW + start + 1.5, text))
    b.set_rtstream_status(stream.id, {"action": "stop"}, NOW + 10)
    video, _ = b.export(stream.id, None, NOW + 11)
    return b, video.id


def test_index_spoken_words_takes_the_streams_transcript_in_video_time() -> None:
    b, video_id = exported()
    video = b.index_video(video_id, {"index_type": "spoken_word", "force": True})
    assert video.spoken_words == [
        {"start": 1.0, "end": 2.5, "text": "Good morning."},
        {"start": 4.0, "end": 5.5, "text": "The delivery truck is here."},
        {"start": 8.0, "end": 9.5, "text": "Truck leaving."},
    ]


def test_indexing_again_needs_force_and_bad_fields_are_named() -> None:
    b, video_id = exported()
    b.index_video(video_id, {})
    with pytest.raises(VideoDBError, match="already exists; pass force=true"):
        b.index_video(video_id, {"force": False})
    with pytest.raises(VideoDBError, match="'index_type' must be one of spoken_word, scene"):
        b.index_video(video_id, {"index_type": "faces", "force": True})
    with pytest.raises(VideoDBError, match="'force' must be a boolean"):
        b.index_video(video_id, {"force": "yes"})


def test_search_returns_scored_shots_and_no_results_only_when_nothing_matches() -> None:
    b, video_id = exported()
    with pytest.raises(VideoDBError, match="no index yet"):
        b.search_video(video_id, {"query": "truck"})
    b.index_video(video_id, {"force": True})
    found = b.search_video(video_id, {"query": "delivery truck"})
    assert found["response_type"] == "shots"
    docs = found["results"][0]["docs"]
    assert [(d["start"], d["text"], d["score"]) for d in docs] == [
        (4.0, "The delivery truck is here.", 1.0), (8.0, "Truck leaving.", 0.5),
    ]
    assert [d["start"] for d in b.search_video(video_id, {"query": "delivery truck", "top_k": 1})["results"][0][
        "docs"]] == [4.0]
    with pytest.raises(VideoDBError, match=r"^No results found\.$"):
        b.search_video(video_id, {"query": "purple elephant"})
    with pytest.raises(VideoDBError, match="'query' is required"):
        b.search_video(video_id, {"query": " "})


def test_compile_plays_the_shots_segments_in_shot_order() -> None:
    b, video_id = exported()
    compilation = b.compile(
        [{"video_id": video_id, "collection_id": "default", "shots": [(8.0, 9.5)]},
         {"video_id": video_id, "collection_id": "default", "shots": [(4.0, 5.5)]}],
        NOW + 20,
    )
    pieces = b.compilation(compilation)
    assert [[s.sequence for s in segments] for _, segments in pieces] == [[8, 9], [4, 5]]


def test_compile_accepts_the_documents_inputs_form_and_names_bad_shots() -> None:
    shots = compile_request({"inputs": [{"media_id": "m-1", "start_time": 1, "end_time": 2.5}]})
    assert [(s.video_id, s.start, s.end) for s in shots] == [("m-1", 1.0, 2.5)]
    with pytest.raises(VideoDBError, match=r"'\[0\]\.shots\[0\]' start must be before end"):
        compile_request([{"video_id": "m-1", "shots": [[3, 2]]}])
    with pytest.raises(VideoDBError, match="non-empty list"):
        compile_request({})
    b, video_id = exported()
    with pytest.raises(VideoDBError, match="after the video's end"):
        b.compile([{"video_id": video_id, "shots": [[50, 60]]}], NOW)


def test_a_phrase_said_in_order_scores_one_and_partial_words_score_their_share() -> None:
    assert score("Delivery  Truck", "the delivery truck is here") == 1.0
    assert score("delivery truck", "truck leaving") == 0.5
    assert score("delivery truck", "good morning") == 0.0
