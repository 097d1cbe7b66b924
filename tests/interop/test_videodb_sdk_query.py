"""Every query parameter the videodb 0.5.1 SDK sends survives both path forms the emulator normalizes: ``//``
(a ``base_url`` ending in ``/``) and a trailing ``/`` (the OpenAPI document's and the Node SDK's form).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from emulators.pytest_plugin import Target, start_emulator
from emulators.videodb.records import SceneRecord, TranscriptRecord

videodb = pytest.importorskip("videodb")

pytestmark = pytest.mark.interop

DEAD_SOURCE = "rtsp://127.0.0.1:9/none"  # refuses at once; the stream exists and retries quietly
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with start_emulator("videodb", settings={"reconnect_initial_s": 5.0, "reconnect_max_s": 5.0}) as target:
        yield target


def trailing_slash(conn: Any) -> Any:
    """Make the SDK connection ask for ``<path>/`` as the OpenAPI document spells its paths."""
    original = conn._make_request

    def make_request(method: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        return original(method, path.rstrip("/") + "/", *args, **kwargs)

    conn._make_request = make_request
    return conn


@pytest.fixture(params=["double_slash", "trailing_slash"])
def conn(request: pytest.FixtureRequest, target: Target) -> Any:
    key = target.credentials["api_key"]
    if request.param == "double_slash":
        return videodb.connect(api_key=key, base_url=target.url + "/")
    return trailing_slash(videodb.connect(api_key=key, base_url=target.url))


@pytest.fixture(scope="module")
def streams(target: Target) -> dict[str, Any]:
    """Three streams, a transcript of five utterances and an index of five scenes on the first one."""
    sdk = videodb.connect(api_key=target.credentials["api_key"], base_url=target.url)
    coll = sdk.get_collection()
    made = [coll.connect_rtstream(url=DEAD_SOURCE, name=name) for name in ("Lobby East", "Lobby West", "Dock")]
    first = made[0]
    first.start_transcript()
    index = first.index_visuals(prompt="Describe", batch_config={"type": "time", "value": 2, "frame_count": 1})

    async def seed() -> None:
        backend = target.emulator.backend
        for i in range(5):
            start = T0 + 10 * i
            backend.file_transcript(first.id, TranscriptRecord(start, start + 5, f"utterance {i}"))
            backend.index(first.id, index.rtstream_index_id).records.append(
                SceneRecord(start, start + 2, f"scene {i}")
            )

    target.call(seed)
    coll.get_rtstream(made[2].id).stop()
    return {"ids": [s.id for s in made], "first": first.id, "index": index.rtstream_index_id}


def test_list_rtstreams_keeps_limit_offset_status_name_and_ordering(conn: Any, streams: dict[str, Any]) -> None:
    coll = conn.get_collection()
    east, west, dock = streams["ids"]
    assert [s.id for s in coll.list_rtstreams(ordering="created_at")] == [east, west, dock]
    assert [s.id for s in coll.list_rtstreams(ordering="-created_at")] == [dock, west, east]
    assert [s.id for s in coll.list_rtstreams(limit=1, offset=1, ordering="created_at")] == [west]
    assert [s.id for s in coll.list_rtstreams(status="stopped")] == [dock]
    assert {s.id for s in coll.list_rtstreams(name="lobby")} == {east, west}


def test_the_next_link_walks_every_page(target: Target, streams: dict[str, Any]) -> None:
    headers = {"x-access-token": target.credentials["api_key"]}
    url: str | None = f"{target.url}/rtstream/?limit=1&ordering=created_at&name=Lobby%20"
    seen = []
    while url:
        page = requests.get(url, headers=headers, timeout=10).json()["data"]
        seen += [s["id"] for s in page["results"]]
        url = target.url + page["next"] if page["next"] else None
    assert seen == streams["ids"][:2]


def test_get_transcript_keeps_page_page_size_start_end_and_since(conn: Any, streams: dict[str, Any]) -> None:
    rts = conn.get_collection().get_rtstream(streams["first"])
    page2 = rts.get_transcript(page=2, page_size=2)
    assert [r["text"] for r in page2["transcription_records"]] == ["utterance 2", "utterance 3"]
    assert page2["page"] == 2 and page2["next_page"] is True
    window = rts.get_transcript(start=T0 + 12, end=T0 + 30)
    assert [r["text"] for r in window["transcription_records"]] == ["utterance 1", "utterance 2"]
    assert [r["text"] for r in rts.get_transcript(since=T0 + 25)["transcription_records"]] == [
        "utterance 3", "utterance 4",
    ]


def test_get_scenes_keeps_page_page_size_start_and_end(conn: Any, streams: dict[str, Any]) -> None:
    index = conn.get_collection().get_rtstream(streams["first"]).get_scene_index(streams["index"])
    newest_first = index.get_scenes(page=2, page_size=2)
    assert [s["description"] for s in newest_first["scenes"]] == ["scene 2", "scene 1"]
    assert newest_first["next_page"] is True
    window = index.get_scenes(start=int(T0 + 15), end=int(T0 + 31))
    assert [s["description"] for s in window["scenes"]] == ["scene 3", "scene 2"]


def test_generate_stream_keeps_start_and_end(conn: Any, streams: dict[str, Any]) -> None:
    rts = conn.get_collection().get_rtstream(streams["first"])
    rts.generate_stream(int(T0), int(T0 + 30))
    assert rts.stream_url.endswith(f"/manifests/{rts.id}/{int(T0 * 1e6):016d}-{int((T0 + 30) * 1e6):016d}.m3u8")


def test_transcription_status_keeps_engine(target: Target, streams: dict[str, Any]) -> None:
    headers = {"x-access-token": target.credentials["api_key"]}
    rts = streams["first"]
    for path in (f"/rtstream/{rts}/transcription/status/", f"//rtstream/{rts}/transcription/status"):
        body = requests.get(target.url + path, params={"engine": "AAIS"}, headers=headers, timeout=10).json()
        assert body["data"]["engine"] == "AAIS"
