"""Smaller truths through the videodb 0.5.1 SDK: a ``model_name`` the vendor document allows (its own example
is ``GPT4o``) is accepted and answered as a tier the index record names; a structured-JSON prompt's records
carry values of the template's types."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from emulators.pytest_plugin import Target, start_emulator
from emulators.videodb.indexing import analyse_frame
from emulators.videodb.ingest import FrameSampled

videodb = pytest.importorskip("videodb")

pytestmark = pytest.mark.interop

DEAD_SOURCE = "rtsp://127.0.0.1:9/none"  # refuses at once; the stream exists and retries quietly
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with start_emulator("videodb", settings={"reconnect_initial_s": 5.0, "reconnect_max_s": 5.0}) as target:
        yield target


def test_a_model_name_like_gpt4o_is_accepted_and_the_index_names_its_tier(target: Target) -> None:
    conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
    rts = conn.get_collection().connect_rtstream(url=DEAD_SOURCE, name="Lobby")
    index = rts.index_visuals(prompt="Describe", model_name="GPT4o")
    raw = conn.get(path=f"rtstream/{rts.id}/index/{index.rtstream_index_id}")
    assert (raw["model_name"], raw["model_tier"]) == ("GPT4o", "pro")
    assert "not a VideoDB tier" in raw["model_note"]


def test_a_structured_json_prompt_gets_booleans_numbers_and_arrays(target: Target) -> None:
    conn = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
    rts = conn.get_collection().connect_rtstream(url=DEAD_SOURCE, name="Dock")
    prompt = 'Reply in JSON: {"is_bright": true/false, "mean_brightness": <number>, "colors": [], "people": 0}'
    index = rts.index_visuals(prompt=prompt, batch_config={"type": "time", "value": 1, "frame_count": 2})

    async def frames() -> None:  # handed over as the ingest worker does: one second of white frames
        emu = target.emulator
        worker = emu.service.pipeline.runtimes[rts.id].worker
        for i in range(6):
            frame = np.full((120, 160, 3), 240, dtype=np.uint8)
            emu.service.pipeline.on_signal(rts.id, worker, FrameSampled(analyse_frame(frame, T0 + i / 4)))

    target.call(frames)
    record = json.loads(index.get_scenes()["scenes"][0]["description"])
    assert record["is_bright"] is True and isinstance(record["mean_brightness"], float)
    assert record["colors"] == ["white"] and record["people"] == 0
