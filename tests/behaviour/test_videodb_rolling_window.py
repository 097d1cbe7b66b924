"""A store=false stream keeps only its rolling window: the backend decides which segments fall out, the service
deletes their files and reports each filed segment. Segments are handed over as the ingest worker sends them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clients.videodb import VideoDBClient
from emulators.videodb.ingest import SegmentDone
from emulators.videodb.records import Segment

if TYPE_CHECKING:
    from tests.conftest import EmulatorFactory

DEAD_SOURCE = "rtsp://127.0.0.1:9/none"  # refuses at once: the stream exists, its worker retries quietly
T0 = 1_800_000_000.0


async def test_segments_older_than_the_window_are_deleted_from_disk(emulator_factory: EmulatorFactory) -> None:
    emu = await emulator_factory("videodb", settings={"rolling_window_s": 4.0})
    async with VideoDBClient(emu.settings.api_key, emu.url()) as client:
        rts = await client.connect_rtstream(DEAD_SOURCE, "Lobby", store=False)
        pipeline = emu.service.pipeline
        worker = pipeline.runtimes[rts["id"]].worker
        directory = emu.data.stream_directory(rts["id"])
        (directory / "rec-1").mkdir(parents=True)
        for n in range(5):
            file = f"rec-1/{n}.ts"
            (directory / file).write_bytes(b"\x47" * 188)
            pipeline.on_signal(rts["id"], worker, SegmentDone(Segment(1, n, T0 + 2 * n, 2.0, file)))

        # The last segment ends at T0 + 10: everything that ended before T0 + 6 is gone.
        assert sorted(p.name for p in (directory / "rec-1").iterdir()) == ["2.ts", "3.ts", "4.ts"]
        assert [s.sequence for s in emu.backend.rtstream(rts["id"]).all_segments()] == [2, 3, 4]
        filed = emu.events.query(kind="rtstream.segment")
        assert [(e.detail["sequence"], e.detail["expired"]) for e in filed] == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1)]
