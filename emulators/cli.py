"""The `benchtwin` command: run emulators, list them, check the set-up, make dev certificates, run contract suites,
benchmark."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from pathlib import Path
from typing import Any

from emulators import __version__
from emulators.app import emulator_entries
from emulators.config import Config, apply_overrides, load_config
from emulators.fleet import members, parse_fleet
from emulators.hil.cli import register as register_hil
from emulators.kit.errors import FieldError
from emulators.kit.logs import setup_logging
from emulators.kit.tls import ensure_dev_certs
from emulators.registry import DEVICES, available
from emulators.up import run_up

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
    _version_flag(parser)
    sub = parser.add_subparsers(dest="command")

    up = sub.add_parser("up", help="start emulators (one process per core) and print their endpoints")
    up.add_argument("--only", help="comma-separated devices, e.g. misty,recall (default: every available one)")
    up.add_argument("--config", help="TOML or YAML file overriding the embedded defaults")
    up.add_argument("--seed", type=int, help="seed for every synthetic scene, name and fault roll")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--time-scale", type=float, help="multiplier for lifecycle timings (1.0 = real speed)")
    up.add_argument("--control-token", metavar="TOKEN",
                    help="require 'Authorization: Bearer TOKEN' on /_emulator/ (except health), for shared machines")
    up.add_argument("--endpoints-file", help="write the endpoints and credentials as JSON once every emulator answers")
    up.add_argument("--dashboard-port", type=int, metavar="PORT",
                    help="port of the dashboard page for every emulator (default 9090; 0: any free port)")
    up.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")
    up.add_argument("--fleet", metavar="DEVICE=N,...",
                    help="run N distinct instances of a device (misty=50,depthcam=8): members misty-1..misty-50 on "
                         "consecutive ports, each with its own identity and state")
    up.add_argument("--processes", type=int, metavar="N",
                    help="spread the emulators over N processes (default: one per core, at most one per emulator)")
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
    contract.add_argument("--record", metavar="CASSETTE", help="record what the --target answers into a cassette")
    contract.set_defaults(func=cmd_contract)

    bench = sub.add_parser("bench", help="measure capacity, pacing and latency against the tools users would pick")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    _doctor_command(sub)
    _health_command(sub)
    register_hil(sub)  # record, replay, parity
    _soak_command(sub)
    return parser


def _soak_command(sub: Any) -> None:
    from emulators.soak.args import add_arguments

    soak = sub.add_parser("soak", help="run every emulator under mixed load and hostile clients; fail on growth")
    add_arguments(soak)
    soak.set_defaults(func=cmd_soak)


def cmd_soak(args: argparse.Namespace) -> int:
    from emulators.soak.run import main as soak_main

    return soak_main(args)


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
    if getattr(args, "control_token", None):
        apply_overrides(config, {"control_token": args.control_token})  # the same check as the config key
    if getattr(args, "dashboard_port", None) is not None:
        apply_overrides(config, {"dashboard_port": args.dashboard_port})
    if getattr(args, "no_dashboard", False):
        config.dashboard_port = None
    if getattr(args, "fleet", None):
        config.fleet = {**config.fleet, **parse_fleet(args.fleet)}
    if getattr(args, "processes", None) is not None:
        apply_overrides(config, {"processes": args.processes})
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
    # No garbage collection while the emulators start: hundreds of imported modules and classes would be walked
    # again at every collection. `up` freezes what start-up made and turns collection back on once ready.
    gc.disable()
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
        return run_up(members(devices, config.fleet), config, args.endpoints_file)
    except RuntimeError as exc:
        print(f"benchtwin: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not _is_yaml_error(exc):
            raise
        # A scenario or rig named by path (files in scenario_dirs are checked when the config loads).
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        print(f"benchtwin: a scenario or rig file given by path is not valid YAML: {getattr(exc, 'problem', exc)}"
              f"{where}", file=sys.stderr)
        return 2


def _is_yaml_error(exc: BaseException) -> bool:
    # PyYAML is imported by whatever reads YAML, not here: an error of it can only come once it was imported.
    yaml = sys.modules.get("yaml")
    return yaml is not None and isinstance(exc, yaml.YAMLError)


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


# ----- version, doctor -------------------------------------------------------------------------------------
def _version_flag(parser: argparse.ArgumentParser) -> None:
    python = ".".join(map(str, sys.version_info[:3]))
    parser.add_argument("--version", action="version", version=f"benchtwin {__version__} (Python {python})")


def _doctor_command(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="check Python, packages, free ports, the dev CA, media tools and egress; "
                            "one line each, saying what to do")
    doctor.add_argument("--config", help="check the ports and settings of this TOML or YAML file")
    doctor.add_argument("--host", help="address `benchtwin up` would listen on (default 127.0.0.1)")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from emulators.doctor import report

    config = load_config(args.config)
    if args.host:
        config.host = args.host
    text, status = report(config)
    print(text)
    return status


def _health_command(sub: Any) -> None:
    health = sub.add_parser("health", help="check that every emulator of a running `benchtwin up` answers its "
                            "health endpoint (a container health check)")
    health.add_argument("--endpoints-file", required=True, help="the file `benchtwin up --endpoints-file` wrote")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer")
    health.set_defaults(func=cmd_health)


def cmd_health(args: argparse.Namespace) -> int:
    import urllib.request

    try:
        text = Path(args.endpoints_file).read_text()
    except OSError as exc:
        print(f"benchtwin: --endpoints-file: cannot read {args.endpoints_file} ({exc.strerror}); "
              "is `benchtwin up --endpoints-file` running?", file=sys.stderr)
        return 1
    try:
        rest = {device: str(entry["rest"]) for device, entry in emulator_entries(json.loads(text)).items()}
    except (ValueError, AttributeError, KeyError, TypeError):
        print(f"benchtwin: --endpoints-file: {args.endpoints_file} is not what `benchtwin up --endpoints-file` "
              'writes ({"<device>": {"rest": url, ...}})', file=sys.stderr)
        return 1
    unhealthy = []
    for device, base in rest.items():
        # A wildcard listen address is reached over loopback.
        url = base.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")
        try:
            with urllib.request.urlopen(f"{url}/_emulator/health", timeout=args.timeout) as resp:
                ready = json.loads(resp.read()).get("ready") is True
        except (OSError, ValueError) as exc:
            ready, why = False, str(exc)
        else:
            why = "not ready"
        print(f"{device:<12} {'healthy' if ready else 'UNHEALTHY: ' + why}  {url}")
        if not ready:
            unhealthy.append(device)
    return 1 if unhealthy else 0


# ----- contract, bench -------------------------------------------------------------------------------------
def cmd_contract(args: argparse.Namespace) -> int:
    from contracts.runner import run_contract_cli

    if args.record and not args.target:
        raise FieldError("--record", "needs --target URL: it records a device, not emulators started per test")
    return run_contract_cli(args.device, target=args.target, max_examples=args.max_examples, seed=args.seed,
                            credentials=args.credential, record=args.record)


def cmd_bench(args: argparse.Namespace) -> int:
    return _run_bench(args.rest)


def _run_bench(argv: list[str]) -> int:
    from emulators.bench.cli import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    sys.exit(main())
