"""VideoDB backend rules decided without I/O or a clock: status transitions, the outage schedule, the rolling
window of store=false streams, what the pipeline must decode, playback windows and restart resumption.
"""

from __future__ import annotations

import pytest

from emulators.videodb.model import (
    RTSTREAM_TRANSITIONS,
    AccountRules,
    IllegalTransition,
    IndexStatus,
    RTStreamStatus,
    Segment,
    StreamErrored,
    TranscriptRecord,
    TranscriptStatus,
    VideoDBBackend,
    VideoDBError,
    checked,
)

NOW = 1_757_523_700.0
GRACE = 10.0


def backend(**rules: object) -> VideoDBBackend:
    return VideoDBBackend(seed=7, now=NOW, rules=AccountRules(error_after_s=GRACE, **rules))  # type: ignore[arg-type]


def body(**extra: object) -> dict[str, object]:
    return {"url": "rtsp://127.0.0.1:8554/lobby", "name": "Lobby", **extra}


def test_a_stopped_stream_cannot_go_to_error_and_the_refusal_is_a_409() -> None:
    with pytest.raises(IllegalTransition) as refused:
        checked("RTStream rts-1", RTSTREAM_TRANSITIONS, RTStreamStatus.STOPPED, RTStreamStatus.ERROR)
    assert refused.value.status == 409 and "stopped to error" in refused.value.message
    assert isinstance(refused.value, VideoDBError)


def test_an_outage_turns_the_stream_to_error_once_when_the_grace_period_ends() -> None:
    b = backend()
    stream = b.create_rtstream(body(), NOW)
    assert b.next_wakeup() is None
    b.source_down(stream.id, NOW + 1, "connection refused")
    b.source_down(stream.id, NOW + 3, "connection refused again")  # a retry does not restart the grace period
    assert b.next_wakeup() == NOW + 1 + GRACE
    assert b.advance(NOW + 5) == [] and stream.status == RTStreamStatus.CONNECTED
    assert b.advance(NOW + 11) == [StreamErrored(stream.id, "connection refused")]
    assert stream.status == RTStreamStatus.ERROR and b.next_wakeup() is None
    assert b.advance(NOW + 30) == []  # reported once per outage

    b.source_receiving(stream.id, NOW + 31)
    assert stream.status == RTStreamStatus.CONNECTED and b.status_of(stream, NOW + 31) == "connected"
    b.source_down(stream.id, NOW + 40, "gone")
    assert b.advance(NOW + 50) == [StreamErrored(stream.id, "gone")]  # a new outage is reported again


def test_the_error_status_reads_as_soon_as_the_grace_period_ends_even_before_advance() -> None:
    b = backend()
    stream = b.create_rtstream(body(), NOW)
    b.source_down(stream.id, NOW, "refused")
    assert b.status_of(stream, NOW + GRACE) == "error" and stream.status == RTStreamStatus.CONNECTED
    items, count = b.list_rtstreams({"status": "error"}, NOW + GRACE)
    assert count == 1 and items == [stream]


def test_without_error_reporting_an_outage_never_reads_error_nor_schedules_a_wakeup() -> None:
    b = backend(report_error=False)
    stream = b.create_rtstream(body(), NOW)
    b.source_down(stream.id, NOW, "refused")
    assert b.next_wakeup() is None and b.advance(NOW + 100) == []
    assert b.status_of(stream, NOW + 100) == "connected"
    assert b.list_rtstreams({"status": "error"}, NOW + 100)[1] == 0


def test_stopping_a_stream_in_error_ends_the_outage() -> None:
    b = backend()
    stream = b.create_rtstream(body(), NOW)
    b.source_down(stream.id, NOW, "refused")
    b.advance(NOW + GRACE)
    b.set_rtstream_status(stream.id, {"action": "stop"}, NOW + 20)
    assert stream.status == RTStreamStatus.STOPPED and stream.source_down_since is None
    assert b.next_wakeup() is None and b.status_of(stream, NOW + 100) == "stopped"
    _, changed = b.set_rtstream_status(stream.id, {"action": "start"}, NOW + 21)
    assert changed and stream.status == RTStreamStatus.CONNECTED


def test_store_false_keeps_only_the_rolling_window_and_names_the_segments_to_delete() -> None:
    b = backend(rolling_window_s=6.0)
    stream = b.create_rtstream(body(store=False), NOW)
    expired = [b.file_segment(stream.id, Segment(1, n, NOW + 2 * n, 2.0, f"rec-1/{n}.ts")) for n in range(6)]
    assert expired[:4] == [[], [], [], []]
    assert [s.file for s in expired[4] or []] == ["rec-1/0.ts"]  # ends at +2, before the horizon 10 - 6
    assert [s.file for s in expired[5] or []] == ["rec-1/1.ts"]
    assert [s.sequence for s in stream.all_segments()] == [2, 3, 4, 5]
    assert stream.next_sequence == 6


def test_store_true_keeps_every_segment_and_a_forgotten_recording_files_nothing() -> None:
    b = backend(rolling_window_s=1.0)
    stream = b.create_rtstream(body(store=True), NOW)
    for n in range(5):
        assert b.file_segment(stream.id, Segment(1, n, NOW + 2 * n, 2.0, f"rec-1/{n}.ts")) == []
    assert len(stream.all_segments()) == 5
    assert b.file_segment(stream.id, Segment(9, 0, NOW, 2.0, "rec-9/0.ts")) is None
    assert b.file_segment("rts-gone", Segment(1, 0, NOW, 2.0, "rec-1/0.ts")) is None


def test_the_pipeline_decodes_only_what_running_indexes_and_the_transcript_need() -> None:
    b = backend()
    stream = b.create_rtstream(body(media_types=["video", "audio"], enable_transcript=False), NOW)
    assert b.media_wanted(stream.id) == (False, False)
    visual = b.create_index(stream.id, {"extraction_type": "time"}, NOW)
    assert b.media_wanted(stream.id) == (True, False)
    b.set_index_status(stream.id, visual.id, {"action": "stop"})
    assert visual.status == IndexStatus.STOPPED and b.media_wanted(stream.id) == (False, False)
    b.transcription_action(stream.id, {"action": "start"}, NOW)
    assert stream.transcript_status == TranscriptStatus.RUNNING and b.media_wanted(stream.id) == (False, True)


def test_utterances_are_kept_only_while_transcription_runs() -> None:
    b = backend()
    stream = b.create_rtstream(body(media_types=["audio"]), NOW)
    assert stream.transcript_status == TranscriptStatus.RUNNING  # enable_transcript defaults to true
    assert b.file_transcript(stream.id, TranscriptRecord(NOW, NOW + 1, "hello")) is True
    b.transcription_action(stream.id, {"action": "stop"}, NOW + 2)
    assert b.file_transcript(stream.id, TranscriptRecord(NOW + 3, NOW + 4, "lost")) is False
    assert [t.text for t in stream.transcripts] == ["hello"]


def test_a_window_is_live_while_its_end_is_ahead_of_a_live_stream() -> None:
    b = backend()
    stream = b.create_rtstream(body(store=True), NOW)
    b.file_segment(stream.id, Segment(1, 0, NOW, 2.0, "rec-1/0.ts"))
    segments, live = b.window_playlist(stream.id, NOW - 10, NOW + 10, now=NOW + 2)
    assert [s.sequence for s in segments] == [0] and live
    assert b.live_edge(stream.id) == segments
    b.set_rtstream_status(stream.id, {"action": "stop"}, NOW + 3)
    assert b.window_playlist(stream.id, NOW - 10, NOW + 10, now=NOW + 4)[1] is False
    with pytest.raises(VideoDBError) as empty:
        b.live_edge(stream.id)  # a stopped stream has no live edge
    assert empty.value.status == 404
    with pytest.raises(VideoDBError) as uncovered:
        b.window_playlist(stream.id, NOW + 100, NOW + 110, now=NOW + 4)
    assert uncovered.value.status == 404
    assert b.segment_file(stream.id, 1, 0) == "rec-1/0.ts"
    with pytest.raises(VideoDBError, match="Segment not found"):
        b.segment_file(stream.id, 1, 7)


def test_generate_stream_needs_both_ends_of_a_window_in_order() -> None:
    b = backend()
    assert b.stream_window({}) is None
    assert b.stream_window({"start": str(NOW), "end": str(NOW + 5)}) == (NOW, NOW + 5)
    with pytest.raises(VideoDBError, match="together"):
        b.stream_window({"start": str(NOW)})
    with pytest.raises(VideoDBError, match="before 'end'"):
        b.stream_window({"start": str(NOW + 5), "end": str(NOW)})


def test_after_a_restart_live_streams_resume_connected_into_a_new_recording() -> None:
    b = backend()
    live = b.create_rtstream(body(store=True, name="live"), NOW)
    stopped = b.create_rtstream(body(store=True, name="stopped"), NOW)
    b.set_rtstream_status(stopped.id, {"action": "stop"}, NOW + 1)
    b.source_down(live.id, NOW + 1, "refused")
    b.advance(NOW + 1 + GRACE)
    restored = backend()
    restored.restore(b.snapshot())
    assert restored.rtstream(live.id).status == RTStreamStatus.ERROR
    resumed = restored.resume_after_restart(NOW + 100)
    assert [s.id for s in resumed] == [live.id]
    again = restored.rtstream(live.id)
    assert again.status == RTStreamStatus.CONNECTED and again.source_down_since is None
    assert [r.number for r in again.recordings] == [1, 2] and again.current_recording is not None
    assert restored.rtstream(stopped.id).status == RTStreamStatus.STOPPED


def test_a_capture_session_lists_its_channels_under_the_default_collection() -> None:
    b = backend()
    mic = b.create_rtstream(body(media_types=["audio"], name="mic"), NOW)
    session = b.create_capture_session("default", {"end_user_id": "u"}, NOW)
    b.start_capture(session.id, {"mic": mic.id})
    wire = session.wire(b.streams)
    assert wire["session_id"].startswith("cap-") and wire["channels"] == [{"channel_id": "mic", "type": "audio"}]
    assert b.capture_session("default", wire["session_id"]) is session
    assert b.capture_sessions_of("default", "active") == [session]
    assert b.capture_sessions_of("default", "stopped") == []
    with pytest.raises(VideoDBError) as missing:
        b.capture_session("default", "cap-nope")
    assert missing.value.status == 404


def test_reset_forgets_the_account_and_reseeds_the_ids() -> None:
    b = backend()
    first = b.create_rtstream(body(), NOW).id
    b.reset(7, NOW)
    assert b.streams == {} and b.capture_sessions == {}
    assert b.create_rtstream(body(), NOW).id == first


def test_a_capture_session_moves_created_active_stopped_exported_and_refuses_skips() -> None:
    b = backend()
    screen = b.create_rtstream(body(name="display:1", store=True), NOW)
    session = b.create_capture_session("default", {"end_user_id": "u-1", "metadata": {"desk": 4}}, NOW)
    assert session.status == "created"
    with pytest.raises(VideoDBError, match="stop it before exporting"):
        b.export_capture("default", session.id, {}, NOW)
    assert b.start_capture(session.id, {"screen": screen.id}) == ["starting", "active"]
    with pytest.raises(VideoDBError) as twice:
        b.start_capture(session.id, {"screen": screen.id})
    assert twice.value.status == 409 and "from active to starting" in twice.value.message
    recording = screen.current_recording
    assert recording is not None
    b.file_segment(screen.id, Segment(recording.number, 0, NOW, 2.0, f"rec-{recording.number}/0.ts"))
    b.set_rtstream_status(screen.id, {"action": "stop"}, NOW + 2)
    assert b.stop_capture(session.id) == ["stopping", "stopped"]
    with pytest.raises(VideoDBError, match="'video_channel_id' must be one of the session's channels"):
        b.export_capture("default", session.id, {"video_channel_id": "mic"}, NOW + 3)
    video = b.export_capture("default", session.id, {}, NOW + 3)
    assert session.status == "exported" and session.exported_video_id == video.id and video.rtstream_id == screen.id
    assert b.export_capture("default", session.id, {}, NOW + 4) is video
    with pytest.raises(VideoDBError, match="'end_user_id' is required"):
        b.create_capture_session("default", {}, NOW)
