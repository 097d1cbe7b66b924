"""The `record`, `replay` and `parity` subcommands of `benchtwin` (argument parsing and their main loops)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

from emulators.hil.cassette import Cassette, Manifest, iso_time
from emulators.hil.match import MATCHERS, parse_matchers
from emulators.hil.redact import Redactor
from emulators.kit.errors import FieldError
from emulators.registry import DEVICES


def register(sub: Any) -> None:
    """Add the three hardware-in-the-loop subcommands to the `benchtwin` parser."""
    record = sub.add_parser(
        "record", help="record a real device (or service) through a proxy into a cassette",
        description="A recording reverse proxy: point your application (or the contract suite) at --listen "
                    "instead of the device. Every HTTP exchange and WebSocket message is written to the cassette "
                    "when you stop it (Ctrl-C). Dial-out URLs in requests (webhooks, media streams) are rewritten "
                    "to a recording receiver that forwards to your own receiver.")
    record.add_argument("device", choices=DEVICES)
    record.add_argument("--target", required=True, help="base URL of the device or service, e.g. http://10.0.0.7")
    record.add_argument("--listen", type=int, default=0, metavar="PORT", help="proxy port (default: a free one)")
    record.add_argument("--host", default="127.0.0.1", help="address the proxy listens on (default 127.0.0.1)")
    record.add_argument("--out", default=None, metavar="CASSETTE",
                        help="cassette directory to write (default: <device>-<UTC time>.cassette)")
    record.add_argument("--receiver-port", type=int, default=0, metavar="PORT",
                        help="port of the dial-out recording receiver (default: a free one)")
    record.add_argument("--receiver-host", default="127.0.0.1",
                        help="address the device can reach the recording receiver at (default 127.0.0.1)")
    record.add_argument("--no-redact", action="store_true", help="record credentials and tokens verbatim")
    record.add_argument("--redact", action="append", default=[], metavar="NAME",
                        help="also redact this header, query parameter or JSON field (repeatable)")
    record.add_argument("--insecure", action="store_true", help="do not verify the target's TLS certificate")
    record.add_argument("--config", help="config file whose egress_allow limits where dial-outs are forwarded "
                                         "(default: loopback and private ranges)")
    record.add_argument("--seed", type=int, help="when the target is an emulator stand-in: its seed, for the manifest")
    record.add_argument("--media", action="append", default=[], metavar="URL",
                        help="also capture this rtsp:// or rtmp:// stream: SDP, transport, RTP timing statistics "
                             "and the first --media-seconds remuxed without re-encoding (repeatable)")
    record.add_argument("--media-seconds", type=float, default=5.0, help="seconds of media to keep (default 5)")
    record.add_argument("--duration", type=float,
                        help="stop after this many seconds (and after the media captures) instead of at Ctrl-C")
    record.set_defaults(func=cmd_record)

    replay = sub.add_parser(
        "replay", help="serve a cassette as a stand-in device",
        description="Answers requests from the cassette, matched by the --match list in order; WebSocket sessions "
                    "are played with their recorded timing and dial-outs are made to the URLs the new requests "
                    "give. A request nothing matches gets a 404 with header X-Benchtwin-Replay: miss and a JSON "
                    "body naming the closest recorded request.")
    replay.add_argument("cassette")
    replay.add_argument("--listen", type=int, default=0, metavar="PORT", help="port (default: a free one)")
    replay.add_argument("--host", default="127.0.0.1")
    replay.add_argument("--config", help="config file whose egress_allow limits where recorded dial-outs are made "
                        "(default: loopback and private ranges)")
    replay.add_argument("--match", default=",".join(MATCHERS),
                        help="matchers in order: method, path, query, body, header:NAME (default: %(default)s)")
    replay.add_argument("--duration", type=float, help="stop after this many seconds instead of waiting for Ctrl-C")
    replay.set_defaults(func=cmd_replay)

    parity = sub.add_parser(
        "parity", help="replay a cassette against a fresh emulator and report every difference",
        description="Exit status 0 when every difference is explained (a `known` rule of the parity file), 1 "
                    "otherwise, 2 on a usage error.")
    parity.add_argument("cassette")
    parity.add_argument("--device", choices=DEVICES, help="default: the cassette's device")
    parity.add_argument("--ignore", metavar="FILE", help="a parity file on top of contracts/parity/<device>.yaml")
    parity.add_argument("--report", action="append", default=[], metavar="FILE",
                        help="write a report; .html, .md or .json by extension (repeatable)")
    parity.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parity.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="emulator setting (a quirk profile), YAML value, repeatable")
    parity.add_argument("--seed", type=int, help="emulator seed (default: the cassette's, else 0)")
    parity.add_argument("--target", help="compare with an emulator already running at this URL instead")
    parity.add_argument("--credential", action="append", default=[], metavar="KEY=VALUE",
                        help="with --target: a credential of that emulator, e.g. api_key=... (repeatable)")
    parity.add_argument("--map", action="append", default=[], metavar="RECORDED=EMULATOR",
                        help="replace an identifier of the device (a serial, an id) in paths, bodies and messages")
    parity.add_argument("--pace", type=float, default=1.0,
                        help="multiplier for the recorded gaps between requests (0 = back to back)")
    parity.add_argument("--write-tests", metavar="DIR", help="write a pytest skeleton per differing exchange")
    parity.set_defaults(func=cmd_parity)


def _pairs(items: list[str], option: str, *, yaml_values: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FieldError(option, f"{item!r} must be KEY=VALUE")
        if yaml_values:
            import yaml

            out[key] = yaml.safe_load(value)
        else:
            out[key] = value
    return out


async def _until_stopped(duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except TimeoutError:
        pass


# ----- record ----------------------------------------------------------------------------------------------
def cmd_record(args: argparse.Namespace) -> int:
    out = args.out or f"{args.device}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.cassette"
    manifest = Manifest(device=args.device, target=args.target, recorded_at=iso_time(time.time()), seed=args.seed,
                        redacted=not args.no_redact)
    redactor = Redactor(enabled=not args.no_redact, extra={n.lower() for n in args.redact})
    try:
        count = asyncio.run(_record(args, manifest, redactor, out))
    except ValueError as exc:
        print(f"benchtwin record: {exc}", file=sys.stderr)
        return 2
    print(f"benchtwin record: {count} exchange(s) written to {out}", file=sys.stderr)
    return 0


async def _record(args: argparse.Namespace, manifest: Manifest, redactor: Redactor, out: str) -> int:
    from emulators.config import load_config
    from emulators.hil.session import RecordSession
    from emulators.kit.outbound import EgressPolicy

    egress = EgressPolicy(load_config(args.config).egress_allow)
    session = RecordSession(args.device, args.target, manifest, redactor, host=args.host, port=args.listen,
                            receiver_host=args.receiver_host, receiver_port=args.receiver_port,
                            verify_tls=not args.insecure, media=args.media, media_seconds=args.media_seconds,
                            cassette_dir=out, egress=egress)
    await session.start()
    try:
        print(f"recording {args.device} at {session.proxy.target}: point clients at {session.proxy.url} "
              f"(dial-outs via {session.receiver.url}); Ctrl-C to stop", flush=True)
        await _until_stopped(args.duration)
        if args.duration is not None:
            await session.captures_done()
    finally:
        await session.aclose()
        session.recorder.save(out)
    for error in session.media_errors:
        print(f"benchtwin record: media capture failed: {error}", file=sys.stderr)
    return session.recorder.count()


# ----- replay ----------------------------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> int:
    from emulators.hil.media_replay import MediaReplayError

    try:
        cassette = Cassette.load(args.cassette)
        matchers = parse_matchers(args.match)
    except (FileNotFoundError, ValueError) as exc:
        print(f"benchtwin replay: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_replay(args, cassette, matchers))
    except MediaReplayError as exc:
        print(f"benchtwin replay: {exc}", file=sys.stderr)
        return 1


async def _replay(args: argparse.Namespace, cassette: Cassette, matchers: tuple[str, ...]) -> int:
    from emulators.config import load_config
    from emulators.hil.replay import ReplayServer
    from emulators.kit.outbound import EgressPolicy

    egress = EgressPolicy(load_config(args.config).egress_allow)
    server = ReplayServer(cassette, egress=egress, host=args.host, port=args.listen, matchers=matchers)
    await server.start()
    try:
        media = "".join(f", media at {m.url}" for m in server.media)
        print(f"replaying {args.cassette} ({len(server.exchanges)} exchange(s), {cassette.manifest.device or 'HAR'}) "
              f"at {server.url}{media}; Ctrl-C to stop", flush=True)
        await _until_stopped(args.duration)
    finally:
        await server.aclose()
    if server.misses:
        print(f"benchtwin replay: {len(server.misses)} request(s) matched nothing in the cassette", file=sys.stderr)
    return 0


# ----- parity ----------------------------------------------------------------------------------------------
def cmd_parity(args: argparse.Namespace) -> int:
    from emulators.hil import report
    from emulators.hil.parity import run_parity
    from emulators.hil.rules import load_rules

    try:
        cassette = Cassette.load(args.cassette)
        device = args.device or cassette.manifest.device
        if device not in DEVICES:
            raise ValueError("the cassette names no device; give --device")
        rules = load_rules(device, args.ignore)
        settings = _pairs(args.setting, "--setting", yaml_values=True)
        mapping = _pairs(args.map, "--map")
        credentials = _pairs(args.credential, "--credential")
        for path in args.report:
            if Path(path).suffix.lower() not in report.WRITERS:
                raise ValueError(f"--report {path}: the extension must be one of {', '.join(report.WRITERS)}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"benchtwin parity: {exc}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else (cassette.manifest.seed or 0)
    result = run_parity(cassette, device, rules, settings=settings, seed=seed, target=args.target,
                        mapping=mapping, pace=args.pace, cassette_name=args.cassette, credentials=credentials)
    print(report.json_report(result) if args.json else report.terminal(result))
    for path in args.report:
        report.write(result, path)
    if args.write_tests:
        from emulators.hil.skeletons import write_tests

        written = write_tests(result, cassette, args.write_tests)
        print(f"wrote {len(written)} test skeleton(s) to {args.write_tests}", file=sys.stderr)
    return result.exit_status
