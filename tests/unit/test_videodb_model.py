"""VideoDB model rules: ids and formats, validation, lifecycle, recordings/export, indexes, alerts, search."""

from __future__ import annotations

import re

import pytest

from emulators.videodb.model import Segment, VideoDBBackend, VideoDBError

NOW = 1_757_523_700.0
RTS_ID = re.compile(r"^rts-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


def backend() -> VideoDBBackend:
    return VideoDBBackend(seed=7, now=NOW)


def stream_body(**extra: object) -> dict[str, object]:
    return {"collection_id": "default", "url": "rtsp://127.0.0.1:8554/lobby", "name": "Lobby", **extra}


def test_rtstream_ids_are_uuid7_and_created_at_has_microseconds() -> None:
    svc = backend()
    stream = svc.create_rtstream(stream_body(), NOW)
    assert RTS_ID.match(stream.id)
    assert stream.status == "connected"
    assert stream.collection_id.startswith("c-") and svc.collection("default").id == stream.collection_id


def test_ids_are_deterministic_for_a_seed() -> None:
    assert backend().create_rtstream(stream_body(), NOW).id == backend().create_rtstream(stream_body(), NOW).id


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"url": "https://youtube.com/watch?v=1"}, "url"),
        ({"media_types": ["screen"]}, "media_types"),
        ({"media_types": []}, "media_types"),
        ({"sample_rate": 0}, "sample_rate"),
        ({"sample_rate": 61}, "sample_rate"),
        ({"store": "yes"}, "store"),
        ({"collection_id": "c-missing"}, "Collection"),
    ],
)
def test_bad_rtstream_bodies_are_refused_naming_the_field(extra: dict[str, object], field: str) -> None:
    with pytest.raises(VideoDBError) as info:
        backend().create_rtstream(stream_body(**extra), NOW)
    assert info.value.status in (400, 404)
    assert field in info.value.message


def test_stream_becomes_error_only_after_the_grace_period_and_recovers() -> None:
    svc = backend()
    stream = svc.create_rtstream(stream_body(), NOW)
    svc.source_down(stream.id, NOW + 1)
    assert stream.effective_status(NOW + 5, 10.0) == "connected"
    assert stream.effective_status(NOW + 11, 10.0) == "error"
    svc.source_receiving(stream.id, NOW + 12)
    assert stream.effective_status(NOW + 12, 10.0) == "connected"


def test_start_and_stop_are_idempotent_and_each_start_opens_a_recording() -> None:
    svc = backend()
    stream = svc.create_rtstream(stream_body(store=True), NOW)
    assert svc.set_rtstream_status(stream.id, {"action": "stop"}, NOW + 5)[1] is True
    assert svc.set_rtstream_status(stream.id, {"action": "stop"}, NOW + 6)[1] is False
    svc.set_rtstream_status(stream.id, {"action": "start"}, NOW + 7)
    svc.set_rtstream_status(stream.id, {"action": "start"}, NOW + 8)
    assert [r.number for r in stream.recordings] == [1, 2]
    with pytest.raises(VideoDBError, match="action"):
        svc.set_rtstream_status(stream.id, {"action": "pause"}, NOW)


def test_export_needs_a_stopped_stream_with_recordings_and_is_idempotent() -> None:
    svc = backend()
    stream = svc.create_rtstream(stream_body(store=True), NOW)
    svc.add_segment(stream.id, Segment(1, 0, NOW + 1, 2.0, "rec-1/0.ts"))
    svc.add_segment(stream.id, Segment(1, 1, NOW + 3, 2.0, "rec-1/1.ts"))
    with pytest.raises(VideoDBError, match="No recordings available"):
        svc.export(stream.id, None, NOW + 4)
    svc.set_rtstream_status(stream.id, {"action": "stop"}, NOW + 5)
    video, created = svc.export(stream.id, None, NOW + 6)
    assert created and video.id.startswith("m-") and video.length == 4.0
    assert video.name == "Lobby - Recording"
    again, created_again = svc.export(stream.id, "other", NOW + 7)
    assert again.id == video.id and not created_again


def test_export_without_store_has_no_recordings() -> None:
    svc = backend()
    stream = svc.create_rtstream(stream_body(store=False), NOW)
    svc.set_rtstream_status(stream.id, {"action": "stop"}, NOW + 5)
    with pytest.raises(VideoDBError, match="No recordings available"):
        svc.export(stream.id, None, NOW + 6)


def test_list_is_newest_first_with_filters_and_paging() -> None:
    svc = backend()
    for i in range(3):
        svc.create_rtstream(stream_body(name=f"cam {i}"), NOW + i)
    items, count = svc.list_rtstreams({"limit": "2"}, NOW + 5)
    assert count == 3 and [s.name for s in items] == ["cam 2", "cam 1"]
    items, _ = svc.list_rtstreams({"ordering": "name", "name": "CAM"}, NOW + 5)
    assert [s.name for s in items] == ["cam 0", "cam 1", "cam 2"]
    for query in ({"limit": "0"}, {"offset": "-1"}, {"ordering": "colour"}, {"status": "paused"}):
        with pytest.raises(VideoDBError):
            svc.list_rtstreams(query, NOW)


def test_index_configs_default_and_validate() -> None:
    svc = backend()
    stream = svc.create_rtstream(stream_body(), NOW)
    visual = svc.create_index(stream.id, {"extraction_type": "time", "extraction_config": None, "prompt": None}, NOW)
    assert visual.extraction_config == {"time": 2, "frame_count": 5} and visual.prompt == "Describe the scene"
    assert visual.wire()["extraction_config"] == {"time": "2", "frame_count": "5"}
    audio = svc.create_index(
        stream.id,
        {"extraction_type": "transcript", "extraction_config": {"segmenter": "sentence", "segmentation_value": 2}},
        NOW,
    )
    assert audio.extraction_config == {"segmenter": "sentence", "segmentation_value": 2}
    with pytest.raises(VideoDBError, match="'time' in the extraction_config must be a positive integer"):
        svc.create_index(stream.id, {"extraction_type": "time", "extraction_config": {"time": -1}}, NOW)


def test_scenes_come_newest_first_with_paging() -> None:
    from emulators.videodb.model import SceneRecord

    svc = backend()
    stream = svc.create_rtstream(stream_body(), NOW)
    index = svc.create_index(stream.id, {}, NOW)
    for i in range(5):
        svc.add_scene_record(index, SceneRecord(NOW + 2 * i, NOW + 2 * i + 2, f"scene {i}"), NOW, urls=("", ""))
    page, more = svc.scenes(stream.id, index.id, {"page_size": "2"})
    assert [r.description for r in page] == ["scene 4", "scene 3"] and more is True
    page, more = svc.scenes(stream.id, index.id, {"page": "3", "page_size": "2"})
    assert [r.description for r in page] == ["scene 0"] and more is False


def test_only_enabled_alerts_fire_and_both_status_bodies_work() -> None:
    from emulators.videodb.model import SceneRecord

    svc = backend()
    stream = svc.create_rtstream(stream_body(), NOW)
    index = svc.create_index(stream.id, {}, NOW)
    event = svc.create_event({"event_prompt": "person with a trolley", "label": "trolley"}, NOW)
    alert = svc.create_alert(stream.id, index.id, {"event_id": event.id, "callback_url": ""})
    assert alert.callback_url is None and re.fullmatch(r"[0-9a-f]{16}", alert.id)
    record = SceneRecord(NOW, NOW + 2, "A person pushes two trolleys across the lobby.")
    firings = svc.add_scene_record(index, record, NOW + 2, urls=("u", "p"))
    assert len(firings) == 1 and firings[0].confidence == 0.99
    assert firings[0].webhook_body()["event_id"] == f"event-{event.id}"
    svc.set_alert_status(stream.id, index.id, alert.id, {"action": "disable"})
    assert svc.add_scene_record(index, record, NOW + 4, urls=("u", "p")) == []
    svc.set_alert_status(stream.id, index.id, alert.id, {"status": "enabled"})
    assert svc.alert_wire(alert)["status"] == "enabled"


def test_search_scores_keyword_overlap_and_empty_is_no_results() -> None:
    from emulators.videodb.model import SceneRecord, TranscriptRecord

    svc = backend()
    stream = svc.create_rtstream(stream_body(), NOW)
    index = svc.create_index(stream.id, {}, NOW)
    svc.add_scene_record(index, SceneRecord(NOW, NOW + 2, "A red car in the driveway"), NOW, urls=("", ""))
    stream.transcripts.append(TranscriptRecord(NOW, NOW + 2, "the car is red"))
    results = svc.search({"query": "red car"}, rtstream_ids=[stream.id], empty_is_error=True)
    assert len(results) == 2 and all(r["score"] == 1.0 for r in results)
    only_index = svc.search(
        {"query": "red car", "scene_index_id": index.id}, rtstream_ids=[stream.id], empty_is_error=True
    )
    assert [r["scene_index_id"] for r in only_index] == [index.id]
    with pytest.raises(VideoDBError, match="No results found"):
        svc.search({"query": "blue boat"}, rtstream_ids=[stream.id], empty_is_error=True)
    assert svc.search({"query": "blue boat"}, rtstream_ids=[stream.id], empty_is_error=False) == []


def test_snapshot_restores_recordings_and_closes_open_ones() -> None:
    svc = backend()
    stream = svc.create_rtstream(stream_body(store=True), NOW)
    svc.add_segment(stream.id, Segment(1, 0, NOW + 1, 2.0, "rec-1/0.ts"))
    copy = VideoDBBackend(seed=1, now=NOW)
    copy.restore(svc.snapshot())
    restored = copy.rtstream(stream.id)
    assert restored.recordings[0].segments[0].file == "rec-1/0.ts"
    assert restored.recordings[0].ended_at == NOW + 3.0
    assert copy.default_collection_id == svc.default_collection_id
