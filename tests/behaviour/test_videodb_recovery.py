"""A VideoDB RTStream through a source outage (Debian's ffmpeg as the RTMP server, killed and restarted): the
window holding the last frames is emitted when its time is over, recording resumes within 3 s of the source
coming back with the default backoff, and the last partial window is emitted at stop.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
from test_videodb_ingest import ffmpeg_rtmp_source, of_stream  # the RTMP source helpers next to this file

from clients.videodb import VideoDBClient

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian package: ffmpeg)")

WINDOW_S = 2
RESUME_WITHIN_S = 3.0


async def test_an_outage_closes_the_open_window_on_time_and_recording_resumes_within_3_s(
    free_port: int, emulator_factory: EmulatorFactory
) -> None:
    # Default backoff; only the grace before `error` is long so the outage is not also an error test.
    emu = await emulator_factory("videodb", settings={"segment_s": 1.0, "error_after_s": 60.0})
    async with VideoDBClient(emu.settings.api_key, emu.url()) as client:
        async with ffmpeg_rtmp_source(free_port) as source:
            rts = await client.connect_rtstream(source, "Dock", store=True, sample_rate=5)
            rts_id = rts["id"]
            index = await client.index_visuals(rts_id, time_s=WINDOW_S, frame_count=2)
            await emu.events.wait_for("index.record", of_stream(rts_id), timeout=15)
        killed_at = emu.clock.now()
        killed = emu.events.last_id

        # The window with the last frames closes on its own time, while the source is still down.
        last = await emu.events.wait_for("index.record", of_stream(rts_id), since=killed, timeout=WINDOW_S + 3)
        assert last.detail["start"] <= killed_at  # it holds frames from before the outage
        assert last.time >= last.detail["end"]  # delivered after it closed, times being capture times
        assert all(e.time >= e.detail["end"] for e in emu.events.query(kind="index.record", limit=0))
        assert not emu.events.query(kind="stream.started", since=killed, limit=0)

        # A long outage: retries have reached the longest delay (four or more failed attempts).
        await emu.events.wait_for("ingest.retry", of_stream(rts_id, lambda d: d["attempt"] >= 5), timeout=20)
        back = emu.events.last_id
        async with ffmpeg_rtmp_source(free_port):
            back_at = emu.clock.now()
            await emu.events.wait_for("rtstream.segment", of_stream(rts_id), since=back, timeout=15)
            resumed = [s for s in emu.backend.rtstream(rts_id).all_segments() if s.start > killed_at]
            assert resumed and resumed[0].start - back_at <= RESUME_WITHIN_S
            before_stop = emu.events.last_id
            stopped_at = emu.clock.now()
            await client.stop(rts_id)

        # The last, partial window is emitted by stop() itself.
        flushed = emu.events.query(kind="index.record", since=before_stop, limit=0)
        assert [e.detail["index"] for e in flushed] == [index["rtstream_index_id"]]
        assert flushed[-1].detail["end"] <= stopped_at + 1.0
