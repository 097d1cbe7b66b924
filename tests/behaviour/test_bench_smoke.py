"""`benchtwin bench --quick`: every scenario that needs no peer tool runs for seconds and writes sane figures.

No timing is asserted (the machine is shared); the figures must exist and be numbers in a sane range.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from clients.stamp import StreamKind, read_stamp
from emulators.bench import table
from emulators.bench.cli import main
from emulators.bench.gst_rtsp_server import cell_size, paint_luma, stamp_bytes


def run_quick(scenario: str, tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    code = main([scenario, "--quick", "--no-peers", "--json", str(out), *extra])
    document = json.loads(out.read_text())
    result = document[scenario]
    assert "error" not in result, result.get("error")
    assert code == 0
    assert document["_run"]["cpu_count"] >= 1
    return result


def number(value: Any, low: float = 0.0, high: float = math.inf) -> float:
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    assert low <= value <= high, value
    return float(value)


def test_startup_reports_the_seconds_until_every_emulator_is_healthy(tmp_path: Path) -> None:
    result = run_quick("startup", tmp_path)
    number(result["seconds"], 0.01, 120)
    assert result["emulators"] >= 1
    assert result["targets"]["seconds"]["met"] is None  # a quick run judges no target


def test_misty_ws_reports_delivered_fps_and_cpu_per_viewer(tmp_path: Path) -> None:
    result = run_quick("misty-ws", tmp_path)
    assert result["viewers"] >= 2
    number(result["fps_min"], 1, 45)  # a window boundary can count one frame more than 30 per second
    number(result["cpu_one_viewer_ms_per_s"], 0, 2000)
    number(result["cpu_per_added_viewer_ms_per_s"], -1000, 1000)
    number(result["latency_p50_ms"], -50, 5000)


def test_recall_video_ramps_and_compares_with_the_zlib_floor(tmp_path: Path) -> None:
    result = run_quick("recall-video", tmp_path, "--report", str(tmp_path / "bench.html"))
    first = result["steps"][0]
    assert first["streams"] == 2 and "reason" not in first, first  # both streams delivered frames
    assert first["frames"] >= 1
    number(first["cpu_s_per_frame"], 1e-5, 10)
    number(result["sustained_streams"], 0, 4)
    assert result["ramp_stopped_by"] in ("limit found", "ceiling", "time budget")
    assert all(step["phase"] in ("ramp", "bisect") for step in result["steps"])
    assert all("reason" in step for step in result["steps"] if not step["sustained"])  # what failed, in words
    number(result["zlib_floor_s_per_frame"], 1e-5, 1)
    if result["sustained_streams"]:
        number(result["lateness_p99_ms"], 0, 60_000)
        number(result["cost_vs_zlib_floor"], 0.01, 1000)


def test_signalwire_audio_ramps_wss_streams_with_real_receivers(tmp_path: Path) -> None:
    result = run_quick("signalwire-audio", tmp_path)
    number(result["sustained_streams"], 0, 20)
    assert result["ramp_stopped_by"] in ("limit found", "ceiling", "time budget")
    assert all("reason" in step for step in result["steps"] if not step["sustained"])  # what failed, in words
    assert result["receiver_parse_errors"] == 0
    first = result["steps"][0]
    # All ten streams delivered media; the lateness limit is the benchmark's to judge, not this smoke's (a busy
    # machine can push ten streams' p99 past 10 ms).
    assert first["streams"] == 10 and "delivering" not in first.get("reason", ""), first
    number(first["messages_per_s"], 1, 10 * 50 * 1.5)
    number(first["lateness_p99_ms"], 0, 60_000)
    assert first["skipped_chunks"] == 0


def test_fleet_ramps_misty_and_depthcam_fleets_in_one_and_in_several_processes(tmp_path: Path) -> None:
    result = run_quick("fleet", tmp_path, "--report", str(tmp_path / "bench.html"))
    assert result["processes"] >= 1
    for device, members in (("misty", 4), ("depthcam", 1)):
        number(result[f"{device}_sustained"], 0, members)
        steps = [s for s in result["steps"] if s["device"] == device]
        assert {s["processes"] for s in steps} == ({1, result["processes"]})
        for step in steps:  # timing is not judged here (a shared machine): each step measured, or says why not
            assert step["sustained"] or step["reason"], step
            if "lateness_p99_ms" in step:
                number(step["lateness_p99_ms"], -1, 60_000)
    assert "fleet members" in (tmp_path / "bench.html").read_text()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk, the REST scenario's load generator (apt)")
def test_rest_reports_requests_per_second_and_p99_of_each_operation_without_prism(tmp_path: Path) -> None:
    result = run_quick("rest", tmp_path)
    assert set(result["operations"]) == {"list_streams", "get_control", "post_control"}
    for figures in result["operations"].values():
        number(figures["rps"], 1, 10_000_000)
        number(figures["p99_ms"], 0, 60_000)
        assert figures["non_2xx"] == 0
    assert result["rps_ratio_vs_prism"] is None and any("Prism not measured" in n for n in result["notes"])


def test_misty_rtsp_reports_stamp_latency_of_pyav_clients_without_peers(tmp_path: Path) -> None:
    result = run_quick("misty-rtsp", tmp_path)
    number(result["latency_p50_ms"], -50, 10_000)
    number(result["fps_min"], 1, 45)  # a window boundary can count one frame more than 30 per second
    assert result["gstreamer"] is None and result["latency_ratio_vs_gstreamer"] is None
    assert any("GStreamer not measured" in note for note in result["notes"])


def test_the_gstreamer_launcher_paints_stamps_that_the_client_reader_decodes() -> None:
    width, height = 640, 480
    luma = bytearray(b"\x80" * (width * height))
    paint_luma(luma, width, height, stamp_bytes(StreamKind.MISTY_AV, 7, 1234, 1_700_000_000_123))
    import numpy as np

    stamp = read_stamp(np.frombuffer(bytes(luma), dtype=np.uint8).reshape(height, width))
    assert (stamp.stream_kind, stamp.stream_id, stamp.frame_index, stamp.capture_time_ms) == (
        StreamKind.MISTY_AV, 7, 1234, 1_700_000_000_123)
    assert cell_size(width, height) == 16


def test_the_table_shows_targets_and_errors_in_one_line_each() -> None:
    text = table.render({
        "rest": {"p99_ms": 3.2, "targets": {"p99_ms": table.target("< 10 ms", True)}},
        "startup": {"error": "Traceback...\nBenchError: benchtwin up exited with 1"},
    })
    assert "< 10 ms  met" in text
    assert "ERROR BenchError: benchtwin up exited with 1" in text
    assert "Traceback" not in text


def test_the_report_is_one_self_contained_page_with_a_chart_of_each_ramp(tmp_path: Path) -> None:
    run_quick("signalwire-audio", tmp_path, "--report", str(tmp_path / "bench.html"))
    page = (tmp_path / "bench.html").read_text()
    assert page.count("<svg") == 1 and "PCMU streams" in page  # lateness and CPU against load, drawn by matplotlib
    assert "<script" not in page and " src=" not in page and "<link" not in page  # nothing fetched when opened
    assert "sustained_streams" in page  # the figures table
    # The page of an earlier run, from its JSON alone.
    assert main(["--report", str(tmp_path / "again.html"), "--from-json", str(tmp_path / "bench.json")]) == 0
    again = (tmp_path / "again.html").read_text()
    assert again.count("<svg") == 1 and "sustained_streams" in again


def test_a_report_from_a_file_that_is_not_a_bench_run_says_so(tmp_path: Path, capsys) -> None:
    source = tmp_path / "other.json"
    source.write_text("[1, 2]")
    assert main(["--report", str(tmp_path / "r.html"), "--from-json", str(source)]) == 2
    assert "is not a bench --json file" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
