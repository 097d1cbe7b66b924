"""The slice of the Video API an exported RTStream recording answers: its spoken-word index, Search V2 over it
and ``POST /compile`` of the shots found. Pure rules: request checks, the index, the scoring, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulators.videodb.alerts import tokens
from emulators.videodb.records import TranscriptRecord, Video, bad

INDEX_TYPES = ("spoken_word", "scene")
SEGMENTATION_TYPES = ("sentence", "word", "time")
SEARCH_MODES = ("default", "fast", "accurate")


def spoken_index_request(body: dict[str, Any]) -> tuple[str, bool]:
    """(index_type, force) of ``POST /video/{id}/index``, every other field checked for its type."""
    index_type = body.get("index_type", "spoken_word")
    if index_type not in INDEX_TYPES:
        raise bad(f"'index_type' must be one of {', '.join(INDEX_TYPES)}, got {index_type!r}")
    if index_type == "scene":
        raise bad("'index_type' scene is not emulated for videos; index the RTStream's visuals instead")
    segmentation = body.get("segmentation_type", "sentence")
    if segmentation is not None and segmentation not in SEGMENTATION_TYPES:
        raise bad(f"'segmentation_type' must be one of {', '.join(SEGMENTATION_TYPES)}, got {segmentation!r}")
    for key in ("language_code", "callback_url", "engine"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise bad(f"'{key}' must be a string, got {type(body[key]).__name__}")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise bad(f"'force' must be a boolean, got {force!r}")
    return index_type, force


def spoken_words(video: Video, transcripts: list[TranscriptRecord]) -> list[dict[str, Any]]:
    """The utterances of the stream's transcript inside the video's window, in video time (0 .. length)."""
    out = []
    for record in transcripts:
        if record.end <= video.window_start or record.start >= video.window_end:
            continue
        start = max(0.0, record.start - video.window_start)
        end = min(video.length, record.end - video.window_start)
        out.append({"start": round(start, 3), "end": round(end, 3), "text": record.text})
    return out


@dataclass(frozen=True)
class SearchRequest:
    query: str
    top_k: int


def search_request(body: dict[str, Any]) -> SearchRequest:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise bad("'query' is required: a non-empty string")
    top_k = body.get("top_k", 10)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise bad(f"'top_k' must be an integer between 1 and 100, got {top_k!r}")
    mode = body.get("mode", "default")
    if mode not in SEARCH_MODES:
        raise bad(f"'mode' must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
    config = body.get("config")
    if config is not None and not isinstance(config, dict):
        raise bad(f"'config' must be an object, got {type(config).__name__}")
    return SearchRequest(query.strip(), top_k)


def score(query: str, text: str) -> float:
    """Share of the query's words found in the text; the whole phrase, in order, scores 1."""
    if " ".join(query.lower().split()) in " ".join(text.lower().split()):
        return 1.0
    wanted = set(tokens(query))
    have = set(tokens(text))
    if not wanted or not have:
        return 0.0
    return round(len(wanted & have) / len(wanted), 4)


def search_video(video: Video, request: SearchRequest) -> dict[str, Any]:
    """Search V2 over a video's spoken words: shots with start/end/text/score, or 400 "No results found."."""
    if video.spoken_words is None:
        raise bad("The video has no index yet: call index_spoken_words() first")
    docs = []
    for utterance in video.spoken_words:
        value = score(request.query, utterance["text"])
        if value > 0:
            docs.append({**utterance, "score": value})
    if not docs:
        raise bad("No results found.")
    docs.sort(key=lambda d: (-d["score"], d["start"]))
    docs = sorted(docs[: request.top_k], key=lambda d: d["start"])
    return {
        "response_type": "shots",
        "results": [
            {
                "video_id": video.id,
                "collection_id": video.collection_id,
                "length": video.length,
                "title": video.name,
                "docs": docs,
            }
        ],
        "warnings": [],
    }


@dataclass(frozen=True)
class Shot:
    video_id: str
    start: float
    end: float


def compile_request(body: Any) -> list[Shot]:
    """The SDK's body (a list of ``{video_id, collection_id, shots: [[start, end], ...]}``) or the OpenAPI
    document's (``{"inputs": [{media_id, start_time, end_time}]}``), as shots in order."""
    shots: list[Shot] = []
    if isinstance(body, dict) and "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, list) or not inputs:
            raise bad("'inputs' must be a non-empty list of {media_id, start_time, end_time}")
        for i, item in enumerate(inputs):
            if not isinstance(item, dict):
                raise bad(f"'inputs[{i}]' must be an object with media_id, start_time and end_time")
            shots.append(_shot(item.get("media_id"), item.get("start_time"), item.get("end_time"), f"inputs[{i}]"))
        return shots
    if not isinstance(body, list) or not body:
        raise bad("The body must be a non-empty list of {video_id, collection_id, shots: [[start, end], ...]}")
    for i, item in enumerate(body):
        if not isinstance(item, dict):
            raise bad(f"'[{i}]' must be an object with video_id and shots")
        ranges = item.get("shots")
        if not isinstance(ranges, list) or not ranges:
            raise bad(f"'[{i}].shots' must be a non-empty list of [start, end] pairs")
        for j, pair in enumerate(ranges):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise bad(f"'[{i}].shots[{j}]' must be a [start, end] pair, got {pair!r}")
            shots.append(_shot(item.get("video_id"), pair[0], pair[1], f"[{i}].shots[{j}]"))
    return shots


def _shot(video_id: Any, start: Any, end: Any, where: str) -> Shot:
    if not isinstance(video_id, str) or not video_id:
        raise bad(f"'{where}' needs a video id (a string such as 'm-...')")
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
            raise bad(f"'{where}' {name} must be a number of seconds >= 0, got {value!r}")
    if start >= end:
        raise bad(f"'{where}' start must be before end, got {start} and {end}")
    return Shot(video_id, float(start), float(end))


def clip(video: Video, shot: Shot) -> tuple[float, float]:
    """A shot in wall time inside its video's window; 400 when it lies outside the video."""
    if shot.start >= video.length:
        raise bad(f"A shot of {video.id} starts at {shot.start} s, after the video's end ({video.length} s)")
    return video.window_start + shot.start, video.window_start + min(shot.end, video.length)
