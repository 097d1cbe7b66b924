"""`benchtwin bench SCENARIO|all [--quick] [--json FILE] [--report FILE.html] [--install-peers]`: runs scenarios,
prints the table; `benchtwin bench --report FILE.html --from-json bench.json` draws the page of an earlier run."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from emulators.bench import peers, process, report, table
from emulators.bench.stats import BenchOptions

# Scenario name -> module in this package; each module has `async def run(options) -> dict`.
SCENARIOS: dict[str, str] = {
    "startup": "startup",
    "misty-ws": "misty_ws",
    "misty-rtsp": "misty_rtsp",
    "recall-video": "recall_video",
    "signalwire-audio": "signalwire_audio",
    "rest": "rest",
    "fleet": "fleet",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchtwin bench",
        description="Measure each emulator's capacity, pacing and latency, side by side with the peer tools.",
    )
    parser.add_argument("scenario", nargs="?", choices=[*SCENARIOS, "all"],
                        help="one scenario, or all of them in order")
    parser.add_argument("--quick", action="store_true", help="the seconds-long size used by the smoke test")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE as JSON")
    parser.add_argument("--report", metavar="FILE.html",
                        help="also write a self-contained HTML page with charts (needs matplotlib)")
    parser.add_argument("--from-json", metavar="FILE",
                        help="with --report and no scenario: draw the page of an earlier run's --json file")
    parser.add_argument("--install-peers", action="store_true",
                        help="install the peer tools (Prism with npm; prints the apt line for the rest) and exit "
                             "unless a scenario is given")
    parser.add_argument("--no-peers", action="store_true",
                        help="measure only our own figures, without starting GStreamer or Prism")
    parser.add_argument("--peers-dir", default=str(peers.DEFAULT_PEERS_DIR),
                        help=f"where npm peers are installed (default {peers.DEFAULT_PEERS_DIR})")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    peers_dir = Path(args.peers_dir).expanduser()
    if args.install_peers:
        code = peers.install(peers_dir)
        if args.scenario is None:
            return code
    if args.scenario is None and args.report and args.from_json:
        return _report_from(Path(args.from_json), Path(args.report))
    if args.scenario is None:
        build_parser().print_usage(sys.stderr)
        print("benchtwin bench: name a scenario or 'all'", file=sys.stderr)
        return 2
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    try:
        # SIGTERM ends a run like Ctrl-C; either way every child is stopped.
        with process.children_stopped(), tempfile.TemporaryDirectory(prefix="benchtwin-bench-") as tmp:
            for name in names:
                options = BenchOptions(quick=args.quick, workdir=Path(tmp), peers_dir=peers_dir,
                                       use_peers=not args.no_peers)
                print(f"benchtwin bench: {name}{' (quick)' if args.quick else ''}...", file=sys.stderr, flush=True)
                results[name] = _run_one(name, options)
                if args.json:  # written after every scenario, so a late failure keeps what was measured
                    _write_json(Path(args.json), results, time.monotonic() - started)
    except KeyboardInterrupt:
        print("benchtwin bench: interrupted; every child process was stopped", file=sys.stderr)
        return 130
    print(table.render(results))
    print(f"{len(results)} scenario(s) in {time.monotonic() - started:.1f} s", file=sys.stderr)
    failed = [n for n, r in results.items() if "error" in r]
    if args.report:
        try:
            report.write(Path(args.report), _document(results, time.monotonic() - started))
        except report.ReportError as exc:
            print(f"benchtwin bench: no report: {exc}", file=sys.stderr)
            return 1
        print(f"benchtwin bench: report written to {args.report}", file=sys.stderr)
    return 1 if failed else 0


def _report_from(source: Path, out: Path) -> int:
    try:
        document = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        print(f"benchtwin bench: cannot read {source}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(document, dict):
        print(f"benchtwin bench: {source} is not a bench --json file (expected an object of scenarios)",
              file=sys.stderr)
        return 2
    try:
        report.write(out, document)
    except report.ReportError as exc:
        print(f"benchtwin bench: no report: {exc}", file=sys.stderr)
        return 1
    print(f"benchtwin bench: report written to {out}", file=sys.stderr)
    return 0


def _run_one(name: str, options: BenchOptions) -> dict[str, Any]:
    module = importlib.import_module(f"emulators.bench.{SCENARIOS[name]}")
    run: Callable[[BenchOptions], Awaitable[dict[str, Any]]] = module.run
    started = time.monotonic()
    try:
        result = asyncio.run(run(options))
    except process.BenchError as exc:
        result = {"error": str(exc)}
    except Exception:
        # A broken scenario (an emulator being changed, a peer misbehaving) must not cost the others their
        # figures: record the traceback in the JSON (the table shows its last line) and go on.
        result = {"error": traceback.format_exc()}
    finally:
        process.stop_all()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["load_average_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine during the run
    if options.quick:
        # --quick sizes are too small to say anything about a target.
        for rule in result.get("targets", {}).values():
            rule.update(met=None, why="quick run: not judged")
    if options.notes:
        result.setdefault("notes", []).extend(options.notes)
    return result


def _document(results: dict[str, dict[str, Any]], elapsed_s: float) -> dict[str, Any]:
    return {**results, "_run": {"elapsed_s": round(elapsed_s, 1), "cpu_count": _cpu_count(),
                                "python": sys.version.split()[0],
                                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}


def _write_json(path: Path, results: dict[str, dict[str, Any]], elapsed_s: float) -> None:
    document = _document(results, elapsed_s)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))
