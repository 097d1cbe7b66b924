"""A real RTMP server for interop tests: Debian nginx with libnginx-mod-rtmp on a free loopback port.

`with rtmp_server() as server:` starts nginx in the foreground with its own prefix, config, pid file and
error log in a temporary directory, records every published stream there (`record all`), and stops it on
exit. Tests skip (naming the Debian packages) when nginx or the RTMP module is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGES = "nginx-light libnginx-mod-rtmp"
MODULE_CANDIDATES = (
    Path("/usr/lib/nginx/modules/ngx_rtmp_module.so"),
    Path("/usr/lib64/nginx/modules/ngx_rtmp_module.so"),
)
START_TIMEOUT_S = 10.0

_CONFIG = """\
load_module {module};
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application {app} {{
            live on;
            record all;
            record_path {root}/recordings;
            record_unique off;
        }}
    }}
}}
"""


def rtmp_module_path() -> Path | None:
    return next((path for path in MODULE_CANDIDATES if path.exists()), None)


def require_rtmp_server() -> tuple[str, Path]:
    """The nginx binary and RTMP module, or a pytest skip naming the Debian packages to install."""
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
    )
    module = rtmp_module_path()
    if nginx is None or module is None:
        pytest.skip(f"needs nginx with the RTMP module (Debian packages: {PACKAGES})")
    return nginx, module


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RtmpServer:
    """A running nginx-rtmp: where to publish and what it recorded."""

    port: int
    root: Path
    app: str
    process: subprocess.Popen[bytes]

    def url(self, app: str | None = None, key: str = "test") -> str:
        return f"rtmp://127.0.0.1:{self.port}/{app or self.app}/{key}"

    def recordings(self) -> list[Path]:
        """FLV files written so far (nginx writes one per published stream name)."""
        return sorted((self.root / "recordings").glob("*.flv"))

    def recording(self, key: str = "test") -> Path:
        return self.root / "recordings" / f"{key}.flv"

    def wait_for_recording(self, key: str = "test", *, closed: bool = True, timeout: float = 10.0) -> Path:
        """The recording of `key` once nginx has logged the publisher's disconnect (file complete) or,
        with closed=False, once it has data; raises TimeoutError otherwise."""
        path = self.recording(key)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size > 0:
                if not closed or "deleteStream" in self.error_log():
                    return path
            time.sleep(0.05)  # nginx gives no completion signal beyond its log; poll it
        raise TimeoutError(f"nginx-rtmp recorded nothing complete at {path} within {timeout} s")

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _wait_listening(port: int, process: subprocess.Popen[bytes], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        time.sleep(0.05)  # polling a child process start-up: there is no event to wait on
    return False


@contextlib.contextmanager
def rtmp_server(app: str = "live") -> Iterator[RtmpServer]:
    """Start nginx-rtmp on a free loopback port; stop it (and remove its files) on exit."""
    nginx, module = require_rtmp_server()
    with tempfile.TemporaryDirectory(prefix="rtmp-") as tmp:
        root = Path(tmp)
        (root / "recordings").mkdir()
        (root / "logs").mkdir()
        last_error = ""
        for _attempt in range(3):  # the free port can be taken between probing and nginx binding it
            port = free_loopback_port()
            conf = root / "nginx.conf"
            conf.write_text(_CONFIG.format(module=module, root=root, port=port, app=app))
            process = subprocess.Popen(
                [nginx, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if _wait_listening(port, process, time.monotonic() + START_TIMEOUT_S):
                server = RtmpServer(port=port, root=root, app=app, process=process)
                try:
                    yield server
                finally:
                    _stop(process)
                return
            _stop(process)
            last_error = (root / "error.log").read_text(errors="replace") if (root / "error.log").exists() else ""
        raise RuntimeError(f"nginx-rtmp did not start: {last_error[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: nginx finishes its recordings and exits
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stderr is not None:
        process.stderr.close()
