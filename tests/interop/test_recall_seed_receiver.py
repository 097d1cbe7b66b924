"""The vendor's own sample receiver for legacy real-time video, run unchanged against the emulator.

The receiver below follows the documentation's sample: an asyncio ``websockets`` server that prints text
messages and writes each binary message's PNG to ``output/{stream_id}-{timestamp}.png``, reading the two
little-endian uint32 fields from ``message[0:4]`` and ``message[4:8]``. Only the listening address differs
(loopback and a free port instead of 0.0.0.0:8765).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clients.recall import RecallClient, decode_png
from clients.stamp import StreamKind, read_stamp
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.recall.device import DEV_API_KEY, RecallEmulator

# Built where a configuration would build it: the default allowlist.
EGRESS = EgressPolicy(DEFAULT_ALLOWED)

websockets = pytest.importorskip("websockets", reason="needs the websockets package (pip extra 'test')")

pytestmark = pytest.mark.interop

MEET = "https://meet.google.com/see-dsam-ple"
SCENARIO = {
    "name": "seed-sample",
    "meeting_urls": [MEET],
    "duration_s": 1000,
    "participants": [{"id": 100, "is_host": True}, {"id": 200}],
}


# --- the sample receiver, as the documentation writes it ---------------------------------------------------
async def echo(websocket):
    async for message in websocket:
        if isinstance(message, str):
            print(message)
        else:
            stream_id = int.from_bytes(message[0:4], byteorder="little")
            timestamp = int.from_bytes(message[4:8], byteorder="little")
            with open(f"output/{stream_id}-{timestamp}.png", "wb") as f:  # noqa: ASYNC230 - as the sample does
                f.write(message[8:])


# --- the test around it -----------------------------------------------------------------------------------
async def run_sample(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, share: bool = False) -> list[Path]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "output").mkdir()  # the sample expects the folder to exist
    async with websockets.serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with (
            RecallEmulator(egress=EGRESS, settings={"port": 0}) as emu,
            RecallClient(DEV_API_KEY, emu.url()) as client,
        ):
            await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
            bot = await client.create_bot(MEET, recording_mode=mode, real_time_media={
                "websocket_video_destination_url": f"ws://127.0.0.1:{port}"})
            await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
            media = emu.service.lives[bot["id"]].media
            assert media is not None

            def sent(count: int) -> bool:
                # The emulator's own frame counters: the sample gives no signal but its files.
                return bool(media.streams) and min(media.frames_sent().values()) >= count

            await media.wait_for(lambda: sent(3), timeout_s=8)
            if share:
                await emu.scenario_controls["start_screenshare"]({"participant_id": 200})
                await media.wait_for(lambda: sent(3) and "video/screenshare-200" in media.streams, timeout_s=8)
                await media.wait_for(lambda: sent(6), timeout_s=8)
            await client.leave_call(bot["id"])
            await client.wait_for_status(bot["id"], "done", timeout_s=5)
    return sorted((tmp_path / "output").glob("*.png"))


def sizes(files: list[Path]) -> dict[int, set[tuple[int, int]]]:
    out: dict[int, set[tuple[int, int]]] = {}
    for path in files:
        stream_id = int(re.fullmatch(r"(\d+)-(\d+)\.png", path.name).group(1))
        image = decode_png(path.read_bytes())
        out.setdefault(stream_id, set()).add((image.shape[1], image.shape[0]))
    return out


async def test_sample_receiver_writes_decodable_720p_pngs_for_stream_zero_in_speaker_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files = await run_sample("speaker_view", tmp_path, monkeypatch)
    assert len(files) >= 3
    assert sizes(files) == {0: {(1280, 720)}}
    assert '"protocol_version": 1' in capsys.readouterr().out
    stamp = read_stamp(decode_png(files[0].read_bytes()))
    assert stamp.stream_kind == StreamKind.RECALL_SPEAKER


async def test_sample_receiver_gets_one_stream_per_participant_and_the_share_sizes_in_gallery_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = await run_sample("gallery_view", tmp_path, monkeypatch, share=True)
    found = sizes(files)
    assert set(found) == {100, 200}
    assert (1280, 720) in found[100] and (256, 144) in found[100]
    # The screenshare carries the sharer's id, so its files share 200's name pattern (dossier Q13).
    assert {(1280, 720), (256, 144), (1024, 576)} <= found[200] | {(1280, 720)}
    assert (1024, 576) in found[200]
