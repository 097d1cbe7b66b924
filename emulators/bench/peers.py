"""The peer tools the benchmarks compare against: detect them, and install them (`--install-peers`).

GStreamer's RTSP server and wrk come from Debian; Stoplight Prism comes from npm into a cache directory
outside the repository. A missing peer never stops a scenario: it reports our own figures and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PEERS_DIR = Path("~/.cache/benchtwin/peers").expanduser()
PRISM_PACKAGE = "@stoplight/prism-cli@5.14.2"
APT_PACKAGES = ("gstreamer1.0-rtsp", "gir1.2-gst-rtsp-server-1.0", "python3-gi", "gstreamer1.0-plugins-ugly", "wrk")
# The GStreamer launcher runs with the distribution's python, which is where python3-gi installs gi.
SYSTEM_PYTHON = "/usr/bin/python3"

_GST_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "missing = [e for e in ('x264enc', 'rtph264pay', 'appsrc', 'videoconvert') if Gst.ElementFactory.find(e) is None];"
    "print(','.join(missing))"
)


@dataclass(frozen=True)
class Peer:
    name: str
    available: bool
    detail: str  # the command to run it, or what is missing and how to install it


def gstreamer() -> Peer:
    if not Path(SYSTEM_PYTHON).exists():
        return Peer("gstreamer", False, f"{SYSTEM_PYTHON} is missing; apt-get install python3-gi")
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", _GST_PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Peer("gstreamer", False, f"cannot probe GStreamer: {exc}")
    if probe.returncode != 0:
        return Peer("gstreamer", False, "GstRtspServer is not importable from the system python; apt-get install "
                    "gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi")
    missing = probe.stdout.strip()
    if missing:
        return Peer("gstreamer", False, f"GStreamer elements missing: {missing}; apt-get install "
                    "gstreamer1.0-plugins-ugly gstreamer1.0-plugins-base gstreamer1.0-plugins-good")
    return Peer("gstreamer", True, SYSTEM_PYTHON)


def wrk() -> Peer:
    path = shutil.which("wrk")
    if path is None:
        return Peer("wrk", False, "wrk is not installed; apt-get install wrk")
    return Peer("wrk", True, path)


def prism(peers_dir: Path = DEFAULT_PEERS_DIR) -> Peer:
    binary = peers_dir / "node_modules" / ".bin" / "prism"
    if shutil.which("node") is None:
        return Peer("prism", False, "node is not installed (Prism needs node 20); apt-get install nodejs npm")
    if not binary.exists():
        return Peer("prism", False, f"Prism is not installed in {peers_dir}; run `benchtwin bench --install-peers` "
                    f"(npm install --prefix {peers_dir} {PRISM_PACKAGE})")
    return Peer("prism", True, str(binary))


def install(peers_dir: Path = DEFAULT_PEERS_DIR) -> int:
    """Install what is missing: Prism with npm; the Debian packages with apt-get when root, else print the line."""
    code = 0
    apt_line = f"apt-get install -y {' '.join(APT_PACKAGES)}"
    if not (gstreamer().available and wrk().available):
        if os.geteuid() == 0 and shutil.which("apt-get"):
            print(f"benchtwin bench: {apt_line}", file=sys.stderr)
            code |= subprocess.run(apt_line.split(), check=False).returncode
        else:
            print(f"benchtwin bench: as root, run: {apt_line}", file=sys.stderr)
            code = 1
    if not prism(peers_dir).available:
        npm = shutil.which("npm")
        if npm is None:
            print("benchtwin bench: npm is missing; apt-get install nodejs npm, then rerun --install-peers",
                  file=sys.stderr)
            code = 1
        else:
            peers_dir.mkdir(parents=True, exist_ok=True)
            argv = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(peers_dir), PRISM_PACKAGE]
            print(f"benchtwin bench: {' '.join(argv)}", file=sys.stderr)
            code |= subprocess.run(argv, check=False).returncode
    for peer in (gstreamer(), wrk(), prism(peers_dir)):
        print(f"{peer.name:<10} {'ok' if peer.available else 'MISSING'}  {peer.detail}")
    return code
