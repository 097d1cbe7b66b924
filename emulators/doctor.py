"""`benchtwin doctor`: one line per thing a user needs (Python, packages, free ports, dev CA, media tools, egress),
each saying what is there or what to do about it."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from emulators import __version__
from emulators.config import Config
from emulators.kit.tls import default_certs_dir
from emulators.registry import available

MIN_PYTHON = (3, 11)
# Command-line tools the interop tests and users' own pipelines use, with the Debian package that provides each.
MEDIA_TOOLS = (
    ("ffmpeg", "ffmpeg", "push and pull RTMP/RTSP, transcode recordings"),
    ("ffprobe", "ffmpeg", "inspect a stream, e.g. a Misty rtspd: stream"),
    ("gst-launch-1.0", "gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav",
     "GStreamer pipelines"),
)
NGINX_RTMP_MODULES = (Path("/usr/lib/nginx/modules/ngx_rtmp_module.so"),
                      Path("/usr/lib64/nginx/modules/ngx_rtmp_module.so"))
CONTRACT_EXTRA = ("pytest", "pytest-asyncio", "pytest-timeout", "schemathesis", "requests")


@dataclass(frozen=True)
class Finding:
    status: str  # ok | warn | fail: fail means `benchtwin up` cannot work as configured
    what: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.what:<18} {self.detail}"


def examine(config: Config) -> Iterator[Finding]:
    yield _python()
    yield from _packages()
    yield from _ports(config)
    yield _dev_ca(config)
    yield from _media_tools()
    yield Finding("ok", "egress allowlist", f"outbound connections only to {', '.join(config.egress_allow)} "
                  "(set egress_allow in a config file to change it)")


def _python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MIN_PYTHON:
        return Finding("fail", "python", f"{version} at {sys.executable}; benchtwin needs "
                       f"{'.'.join(map(str, MIN_PYTHON))} or newer")
    return Finding("ok", "python", f"{version} at {sys.executable}")


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _requirement_name(requirement: str) -> str:
    for stop in "<>=!~;[ (":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip()


def _packages() -> Iterator[Finding]:
    where = Path(__file__).resolve().parent.parent
    yield Finding("ok", "benchtwin", f"{__version__} from {where}")
    try:
        requires = metadata.requires("benchtwin") or []
    except metadata.PackageNotFoundError:
        yield Finding("warn", "packages", "benchtwin is not installed (running from a source folder); "
                      "install it with: pip install -e .")
        return
    core = [_requirement_name(r) for r in requires if "extra ==" not in r]
    found = {name: _version(name) for name in core}
    missing = [name for name, v in found.items() if v is None]
    listed = ", ".join(f"{name} {v}" for name, v in found.items() if v)
    if missing:
        yield Finding("fail", "packages", f"missing {', '.join(missing)}; reinstall: pip install benchtwin")
    else:
        yield Finding("ok", "packages", listed)
    absent = [name for name in CONTRACT_EXTRA if _version(name) is None]
    if absent:
        yield Finding("warn", "contract suites", f"`benchtwin contract` needs {', '.join(absent)}: "
                      "pip install 'benchtwin[contract]'")
    else:
        yield Finding("ok", "contract suites", "pytest and schemathesis present for `benchtwin contract`")


def _port_free(host: str, port: int) -> str | None:
    """None if ``port`` can be bound on ``host``, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what the emulators' listeners do too
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _ports(config: Config) -> Iterator[Finding]:
    for device, cls in available().items():
        settings = cls.merged_settings(config.device_settings(device))
        ports = {name: int(settings[name]) for name in cls.port_settings}
        busy = {name: why for name, port in ports.items() if port and (why := _port_free(config.host, port))}
        listed = ", ".join(f"{name} {port or 'any'}" for name, port in ports.items())
        if busy:
            reasons = "; ".join(f"{name} {ports[name]}: {why}" for name, why in busy.items())
            yield Finding("fail", f"{device} ports", f"{reasons}. Stop the program holding it, or set "
                          f"[{device}] {next(iter(busy))} = ... in a config file and pass --config")
        else:
            yield Finding("ok", f"{device} ports", f"{listed} free on {config.host}")


def _dev_ca(config: Config) -> Finding:
    directory = Path(config.certs_dir) if config.certs_dir else default_certs_dir()
    ca = directory / "ca.pem"
    if not ca.is_file():
        return Finding("warn", "dev CA", f"none in {directory} yet (`benchtwin up` creates it; or run "
                       "`benchtwin certs`); wss:// receivers and the SignalWire SDK need it")
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    trust = f"export REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca}"
    if not bundle:
        return Finding("warn", "dev CA", f"{ca} present, not trusted by REQUESTS_CA_BUNDLE (unset): {trust}")
    try:
        trusted = ca.read_text().strip() in Path(bundle).read_text()
    except OSError as exc:
        return Finding("warn", "dev CA", f"REQUESTS_CA_BUNDLE={bundle} cannot be read ({exc.strerror}): {trust}")
    if not trusted:
        return Finding("warn", "dev CA", f"{ca} present, but REQUESTS_CA_BUNDLE={bundle} does not hold it: {trust}")
    return Finding("ok", "dev CA", f"{ca} present and trusted by REQUESTS_CA_BUNDLE={bundle}")


def _media_tools() -> Iterator[Finding]:
    for tool, package, use in MEDIA_TOOLS:
        path = shutil.which(tool)
        if path:
            yield Finding("ok", tool, f"{path} ({use})")
        else:
            yield Finding("warn", tool, f"not found ({use}); install: sudo apt-get install {package}")
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None)
    module = next((p for p in NGINX_RTMP_MODULES if p.exists()), None)
    if nginx and module:
        yield Finding("ok", "nginx-rtmp", f"{nginx} with {module} (an RTMP server for RTMP outputs)")
    else:
        yield Finding("warn", "nginx-rtmp", "not found (an RTMP server for RTMP outputs); install: "
                      "sudo apt-get install nginx-light libnginx-mod-rtmp")


def report(config: Config) -> tuple[str, int]:
    """The doctor's lines and its exit status (1 if anything would stop `benchtwin up`)."""
    findings = list(examine(config))
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    summary = (f"{failed} problem(s) stop `benchtwin up`" if failed else "ready for `benchtwin up`")
    summary += f"; {warned} optional item(s) missing" if warned else ""
    return "\n".join([*(f.line() for f in findings), summary]), 1 if failed else 0
