"""The `benchtwin` command: run emulators, list them, make dev certificates, run contract suites, benchmark."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from typing import Any

import aiohttp

from emulators.app import endpoints_document, start_all, write_endpoints_file
from emulators.config import Config, load_config
from emulators.kit.errors import FieldError
from emulators.kit.logs import setup_logging
from emulators.kit.tls import ensure_dev_certs
from emulators.registry import DEVICES, available

log = logging.getLogger("benchtwin.cli")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        return _run_bench(argv[1:])  # the harness parses its own options, in any order
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FieldError as exc:
        print(f"benchtwin: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchtwin", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    up = sub.add_parser("up", help="start emulators in one process and print their endpoints")
    up.add_argument("--only", help="comma-separated devices, e.g. misty,recall (default: every available one)")
    up.add_argument("--config", help="TOML or YAML file overriding the embedded defaults")
    up.add_argument("--seed", type=int, help="seed for every synthetic scene, name and fault roll")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--time-scale", type=float, help="multiplier for lifecycle timings (1.0 = real speed)")
    up.add_argument("--endpoints-file", help="write the endpoints and credentials as JSON once every emulator answers")
    up.add_argument("--print-config", nargs="?", const="json", choices=["json", "markdown"],
                    help="print the effective configuration (JSON, or Markdown tables of every setting) and exit")
    _logging_flags(up)
    up.set_defaults(func=cmd_up)

    ls = sub.add_parser("list", help="list the emulators and their default ports")
    ls.set_defaults(func=cmd_list)

    certs = sub.add_parser("certs", help="create (once) a local dev CA and a localhost server certificate")
    certs.add_argument("--dir", help="where to keep them (default: the per-user data directory)")
    certs.add_argument("--json", action="store_true", help='print {"ca": ..., "cert": ..., "key": ...}')
    certs.set_defaults(func=cmd_certs)

    contract = sub.add_parser("contract", help="run a device's contract suite against the emulator or a real target")
    contract.add_argument("device", choices=[*DEVICES, "control-plane"])
    contract.add_argument("--target", help="base URL of a real device or running emulator (default: start one)")
    contract.add_argument("--max-examples", type=int, default=25, help="schemathesis examples per operation")
    contract.add_argument("--seed", type=int, default=0)
    contract.add_argument("--credential", action="append", metavar="KEY=VALUE",
                          help="a credential of the real target, e.g. api_key=... (repeatable)")
    contract.set_defaults(func=cmd_contract)

    bench = sub.add_parser("bench", help="measure capacity, pacing and latency against the tools users would pick")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def _logging_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-json", action="store_true", help="log JSON lines instead of readable lines")


# ----- up --------------------------------------------------------------------------------------------------
def _config_from_args(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    if args.seed is not None:
        config.seed = args.seed
    if args.host:
        config.host = args.host
    if getattr(args, "time_scale", None) is not None:
        config.time_scale = args.time_scale
    return config


def _selected_devices(only: str | None) -> list[str]:
    implemented = list(available())
    if not only:
        return implemented
    wanted = [d.strip() for d in only.split(",") if d.strip()]
    for d in wanted:
        if d not in implemented:
            raise FieldError("--only", f"{d!r} is not available; choose from {', '.join(implemented)}")
    return wanted


def cmd_up(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, as_json=args.log_json)
    config = _config_from_args(args)
    devices = _selected_devices(args.only)
    if args.print_config == "markdown":
        print(config.markdown(), end="")
        return 0
    if args.print_config:
        print(json.dumps(config.effective(), indent=2, default=str))
        return 0
    if not devices:
        print("benchtwin: no emulator is available in this installation", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_run_up(devices, config, args.endpoints_file))
    except RuntimeError as exc:
        print(f"benchtwin: {exc}", file=sys.stderr)
        return 1


async def _run_up(devices: list[str], config: Config, endpoints_file: str | None) -> int:
    started_at = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    emulators = await start_all(devices, config)
    try:
        await _wait_healthy(emulators)
        document = endpoints_document(emulators)
        if endpoints_file:
            write_endpoints_file(endpoints_file, emulators)
        print(render_endpoint_table(document, time.monotonic() - started_at), flush=True)
        await stop.wait()
        print("benchtwin: stopping...", file=sys.stderr, flush=True)
    finally:
        await asyncio.gather(*(e.aclose() for e in emulators), return_exceptions=True)
    return 0


async def _wait_healthy(emulators: list[Any], timeout_s: float = 10.0) -> None:
    """Every emulator answers its own health endpoint over its real socket."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for e in emulators:
            url = f"http://{e.host}:{e.ports['rest']}/_emulator/health"
            async with session.get(url) as resp:
                body = await resp.json()
                if not body.get("ready"):
                    raise RuntimeError(f"{e.device} did not become ready")


def render_endpoint_table(document: dict[str, Any], elapsed_s: float) -> str:
    rows: list[tuple[str, str, str]] = []
    for device, entry in document.items():
        for name, value in entry.items():
            if name == "credentials":
                continue
            rows.append((device, name, str(value)))
        for key, value in entry.get("credentials", {}).items():
            rows.append((device, f"credential {key}", str(value)))
    width_d = max([len("device"), *(len(r[0]) for r in rows)])
    width_n = max([len("endpoint"), *(len(r[1]) for r in rows)])
    lines = [f"{'device':<{width_d}}  {'endpoint':<{width_n}}  address", "-" * (width_d + width_n + 40)]
    previous = ""
    for device, name, value in rows:
        lines.append(f"{device if device != previous else '':<{width_d}}  {name:<{width_n}}  {value}")
        previous = device
    lines.append(f"{len(document)} emulator(s) ready in {elapsed_s:.2f} s. Control plane: <rest>/_emulator/. "
                 "Press Ctrl-C to stop.")
    return "\n".join(lines)


# ----- list, certs -----------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    devices = available()
    if not devices:
        print("no emulator is available in this installation")
        return 0
    print(f"{'device':<12} {'default ports':<28} what")
    for name, cls in devices.items():
        defaults = cls.default_settings()
        ports = ", ".join(f"{p}={defaults.get(p)}" for p in cls.port_settings)
        print(f"{name:<12} {ports:<28} {cls.title}")
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    certs = ensure_dev_certs(args.dir)
    if args.json:
        print(json.dumps(certs.as_dict()))
    else:
        print(f"CA certificate:     {certs.ca}")
        print(f"server certificate: {certs.cert}  (localhost, 127.0.0.1, ::1)")
        print(f"server key:         {certs.key}")
        print(f"Trust it in Python clients: export REQUESTS_CA_BUNDLE={certs.ca} SSL_CERT_FILE={certs.ca}")
    return 0


# ----- contract, bench -------------------------------------------------------------------------------------
def cmd_contract(args: argparse.Namespace) -> int:
    from contracts.runner import run_contract_cli

    return run_contract_cli(args.device, target=args.target, max_examples=args.max_examples, seed=args.seed,
                            credentials=args.credential)


def cmd_bench(args: argparse.Namespace) -> int:
    return _run_bench(args.rest)


def _run_bench(argv: list[str]) -> int:
    from emulators.bench.cli import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    sys.exit(main())
