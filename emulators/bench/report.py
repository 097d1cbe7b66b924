"""`benchtwin bench --report FILE.html`: one self-contained page of a run, with charts drawn by matplotlib.

Every chart is rendered to SVG and written into the page (no script, stylesheet or image is fetched when it is
opened): for each ramp, lateness and the emulator's CPU against load, the limit marked; for the scenarios with
a peer, ours and the peer side by side. The figures table and each scenario's notes follow the charts.
"""

from __future__ import annotations

import html
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulators.bench import table

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Ramps: scenario -> (the load key of its steps, what the load is, in words for the axis).
RAMPS: dict[str, tuple[str, str]] = {
    "recall-video": ("streams", "1280x720 PNG streams at 2 fps"),
    "signalwire-audio": ("streams", "PCMU streams (20 ms chunks)"),
}
OURS, PEER, FAILED = "#1f77b4", "#ff7f0e", "#d62728"


class ReportError(Exception):
    """The report cannot be written (matplotlib missing); the run's figures are unaffected."""


def _figure(width: float = 6.4, height: float = 3.2) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # an optional dependency: the bench itself runs without it
        raise ReportError("--report draws its charts with matplotlib: pip install 'benchtwin[bench]' "
                          "(or pip install matplotlib)") from exc
    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})  # no timestamp: the same run, the same page
    text = out.getvalue()
    return text[text.index("<svg"):]  # the XML prologue and doctype do not belong inside HTML


def ramp_chart(name: str, result: dict[str, Any]) -> str | None:
    """Lateness p99 and emulator CPU against load, one point per step (failed steps in red), one line per process
    count (one process, and one per core)."""
    load_key, what = RAMPS[name]
    steps = [s for s in result.get("steps", []) if load_key in s]
    if not steps:
        return None
    figure = _figure(9.0, 3.2)
    lateness, cpu = figure.subplots(1, 2)
    for axis, key, label in ((lateness, "lateness_p99_ms", "p99 lateness, ms"),
                             (cpu, "cpu_cores", "emulator CPU, cores")):
        for processes, color in zip(sorted({s.get("processes", 1) for s in steps}), (OURS, PEER, "#2ca02c"),
                                    strict=False):
            measured = sorted((s for s in steps if s.get(key) is not None and s.get("processes", 1) == processes),
                              key=lambda s: s[load_key])
            axis.plot([s[load_key] for s in measured], [s[key] for s in measured], color=color, marker="o",
                      label=f"{processes} process{'es' if processes > 1 else ''}")
            bad = [s for s in measured if not s.get("sustained")]
            axis.scatter([s[load_key] for s in bad], [s[key] for s in bad], color=FAILED, zorder=3)
        if result.get("sustained_streams"):
            axis.axvline(result["sustained_streams"], color="grey", linestyle="--", linewidth=1,
                         label=f"largest sustained: {result['sustained_streams']}")
        axis.set_xlabel(what)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    lateness.legend(fontsize="small")
    return _svg(figure)


def fleet_chart(result: dict[str, Any]) -> str | None:
    """p99 lateness against fleet size per device, one line per process count (ours against ours: what the
    second core buys)."""
    steps = [s for s in result.get("steps", []) if "members" in s and s.get("lateness_p99_ms") is not None]
    devices = sorted({s["device"] for s in steps})
    if not devices:
        return None
    figure = _figure(9.0, 3.2)
    axes = figure.subplots(1, len(devices), squeeze=False)[0]
    for axis, device in zip(axes, devices, strict=True):
        for processes, color in zip(sorted({s["processes"] for s in steps if s["device"] == device}),
                                    (OURS, PEER, "#2ca02c"), strict=False):
            line = sorted((s for s in steps if s["device"] == device and s["processes"] == processes),
                          key=lambda s: s["members"])
            axis.plot([s["members"] for s in line], [s["lateness_p99_ms"] for s in line], color=color, marker="o",
                      label=f"{processes} process{'es' if processes > 1 else ''}")
            bad = [s for s in line if not s.get("sustained")]
            axis.scatter([s["members"] for s in bad], [s["lateness_p99_ms"] for s in bad], color=FAILED, zorder=3)
        axis.set_xlabel(f"{device} fleet members")
        axis.set_ylabel("p99 lateness, ms")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    return _svg(figure)


def _bars(title: str, labels: list[str], ours: list[float | None], theirs: list[float | None], peer: str,
          unit: str) -> str:
    figure = _figure(6.4, 3.0)
    axis = figure.subplots()
    xs = list(range(len(labels)))
    axis.bar([x - 0.2 for x in xs], [v or 0 for v in ours], width=0.4, color=OURS, label="benchtwin")
    if any(v is not None for v in theirs):
        axis.bar([x + 0.2 for x in xs], [v or 0 for v in theirs], width=0.4, color=PEER, label=peer)
    axis.set_xticks(xs, labels)
    axis.set_ylabel(unit)
    axis.set_title(title, fontsize="medium")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize="small")
    return _svg(figure)


def rtsp_chart(result: dict[str, Any]) -> str | None:
    if "cpu_one_client_ms_per_s" not in result:
        return None
    peer = result.get("gstreamer") or {}
    k = result.get("clients", "k")
    keys = [("cpu_one_client_ms_per_s", "1 client"), ("cpu_all_clients_ms_per_s", f"{k} clients")]
    return _bars("RTSP server CPU against clients (640x480, same content)", [label for _, label in keys],
                 [result.get(key) for key, _ in keys], [peer.get(key) for key, _ in keys], "GStreamer",
                 "ms of CPU per s")


def rest_chart(result: dict[str, Any]) -> str | None:
    ops = result.get("operations") or {}
    if not ops:
        return None
    names = sorted(ops)
    return _bars("REST requests per second by operation", names, [ops[n].get("rps") for n in names],
                 [ops[n].get("prism_rps") for n in names], "Prism", "requests/s")


CHARTS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "misty-rtsp": rtsp_chart,
    "rest": rest_chart,
    "fleet": fleet_chart,
}


def render(results: dict[str, Any]) -> str:
    """The whole page for a run's results (the JSON document's content)."""
    run = results.get("_run", {})
    scenarios = {k: v for k, v in results.items() if not k.startswith("_")}
    sections: list[str] = []
    for name, result in scenarios.items():
        charts: list[str] = []
        if name in RAMPS:
            chart = ramp_chart(name, result)
            if chart:
                charts.append(chart)
            if result.get("failed_because"):
                charts.append(f"<p>First failing step: {result.get('first_failing_step')} "
                              f"({html.escape(str(result['failed_because']))}); ramp stopped by "
                              f"{html.escape(str(result.get('ramp_stopped_by')))}.</p>")
        elif name in CHARTS:
            chart = CHARTS[name](result)
            if chart:
                charts.append(chart)
        figures = html.escape(table.render({name: result}))
        sections.append(f"<section><h2>{html.escape(name)}</h2>{''.join(charts)}<pre>{figures}</pre></section>")
    when = run.get("time") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    facts = (f"{run.get('cpu_count', '?')} CPU(s), Python {run.get('python', '?')}, "
             f"{run.get('elapsed_s', '?')} s in all, {when}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>benchtwin bench: {html.escape(when)}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; }}
pre {{ background: #f4f4f4; padding: .8em; overflow-x: auto; font-size: 13px; }}
svg {{ max-width: 100%; height: auto; }}
@media (prefers-color-scheme: dark) {{ body {{ background: #161616; color: #ddd; }} pre {{ background: #222; }}
  svg {{ background: #fff; }} }}
</style></head><body>
<h1>benchtwin bench</h1>
<p>{html.escape(facts)}. Ratios compare with the peer tools measured in the same run.</p>
{''.join(sections)}
<details><summary>Every figure as JSON</summary><pre>{html.escape(json.dumps(results, indent=2))}</pre></details>
</body></html>
"""


def write(path: Path, results: dict[str, Any]) -> None:
    page = render(results)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(path)
