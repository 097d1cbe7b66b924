"""The benchtwin command as a user meets it: list, up with an endpoints file, clean Ctrl-C, certs, bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from emulators.registry import available

BENCHTWIN = [sys.executable, "-m", "emulators"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BENCHTWIN, *args], capture_output=True, text=True, timeout=timeout)


def free_ports_config(tmp_path: Path) -> Path:
    """A config that moves every listener of every emulator to a free port, so parallel runs never clash."""
    lines = ["dashboard_port = 0"]
    for name, cls in available().items():
        lines.append(f"[{name}]")
        lines += [f"{setting} = 0" for setting in cls.port_settings]
    path = tmp_path / "ports.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_up(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """Start `benchtwin up` on free ports and wait for its endpoints file, the only signal `up` gives."""
    endpoints = tmp_path / "endpoints.json"
    proc = subprocess.Popen(
        [*BENCHTWIN, "up", "--config", str(free_ports_config(tmp_path)), "--endpoints-file", str(endpoints)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not endpoints.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no endpoints file within 60 s"
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc, endpoints


def test_list_prints_every_available_emulator_with_its_default_port() -> None:
    result = run("list")
    assert result.returncode == 0
    for name, cls in available().items():
        assert name in result.stdout
        assert f"port={cls.default_settings()['port']}" in result.stdout


def test_up_writes_the_endpoints_file_prints_the_table_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    if not available():
        pytest.skip("no emulator in this installation")
    proc, endpoints = start_up(tmp_path)
    try:
        document = json.loads(endpoints.read_text())
        assert set(document) == {*available(), "dashboard"}
        dashboard = document.pop("dashboard")["url"]
        with urllib.request.urlopen(dashboard, timeout=10) as page:
            assert b"benchtwin dashboard" in page.read()
        ports = []
        for device, entry in document.items():
            assert entry["rest"].startswith("http"), device
            assert isinstance(entry["credentials"], dict)
            ports.append(int(entry["rest"].rsplit(":", 1)[1]))
        assert all(listening(p) for p in ports)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    for device in document:
        assert device in out
    assert "ready in" in out
    assert not any(listening(p) for p in ports)


def test_up_refuses_an_unknown_device_naming_the_choices() -> None:
    result = run("up", "--only", "toaster")
    assert result.returncode == 2
    assert "--only" in result.stderr and "toaster" in result.stderr


def test_a_bad_config_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("tim_scale = 1\n")
    result = run("up", "--config", str(cfg), "--print-config")
    assert result.returncode == 2
    assert "tim_scale" in result.stderr


def test_print_config_shows_every_default_in_one_place() -> None:
    result = run("up", "--print-config")
    assert result.returncode == 0
    config = json.loads(result.stdout)
    assert config["host"] == "127.0.0.1"
    for name, cls in available().items():
        assert config[name]["port"] == cls.default_settings()["port"]


def test_print_config_markdown_has_a_settings_table_per_device() -> None:
    result = run("up", "--print-config", "markdown")
    assert result.returncode == 0
    for name, cls in available().items():
        assert f"## {name}\n" in result.stdout
        assert f"| `port` | `{cls.default_settings()['port']}`" in result.stdout


def test_certs_creates_a_ca_and_server_certificate_once(tmp_path: Path) -> None:
    first = run("certs", "--dir", str(tmp_path), "--json")
    assert first.returncode == 0
    paths = json.loads(first.stdout)
    assert set(paths) == {"ca", "cert", "key"}
    assert all(os.path.exists(p) for p in paths.values())
    assert json.loads(run("certs", "--dir", str(tmp_path), "--json").stdout) == paths


def test_version_names_the_package_version() -> None:
    from emulators import __version__

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"benchtwin {__version__} ")


def test_doctor_says_one_line_per_need_and_fails_on_a_busy_port(tmp_path: Path) -> None:
    if "misty" not in available():
        pytest.skip("misty not available")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "busy.toml"
        cfg.write_text(f"[misty]\nport = {port}\n")
        result = run("doctor", "--config", str(cfg))
    assert result.returncode == 1, result.stdout
    lines = {line.split()[1]: line for line in result.stdout.splitlines()[:-1]}
    for need in ("python", "benchtwin", "packages", "dev", "ffmpeg", "ffprobe", "gst-launch-1.0", "nginx-rtmp",
                 "egress"):
        assert need in lines, result.stdout
    assert lines["misty"].startswith("fail") and str(port) in lines["misty"] and "[misty] port" in lines["misty"]
    assert "stop `benchtwin up`" in result.stdout.splitlines()[-1]


def test_doctor_says_whether_requests_ca_bundle_trusts_the_dev_ca(tmp_path: Path) -> None:
    ca = json.loads(run("certs", "--dir", str(tmp_path), "--json").stdout)["ca"]
    cfg = tmp_path / "certs.toml"
    cfg.write_text(f'certs_dir = "{tmp_path}"\n' + "".join(
        f"[{name}]\n" + "".join(f"{s} = 0\n" for s in cls.port_settings) for name, cls in available().items()))
    env = {**os.environ, "REQUESTS_CA_BUNDLE": ca}
    trusted = subprocess.run([*BENCHTWIN, "doctor", "--config", str(cfg)], capture_output=True, text=True,
                             timeout=60, env=env)
    env["REQUESTS_CA_BUNDLE"] = str(cfg)
    untrusted = subprocess.run([*BENCHTWIN, "doctor", "--config", str(cfg)], capture_output=True, text=True,
                               timeout=60, env=env)
    ca_line = next(line for line in trusted.stdout.splitlines() if " dev CA " in line)
    assert ca_line.startswith("ok") and "trusted by REQUESTS_CA_BUNDLE" in ca_line
    ca_line = next(line for line in untrusted.stdout.splitlines() if " dev CA " in line)
    assert ca_line.startswith("warn") and f"export REQUESTS_CA_BUNDLE={ca}" in ca_line


def test_health_checks_every_emulator_of_a_running_up(tmp_path: Path) -> None:
    if not available():
        pytest.skip("no emulator in this installation")
    proc, endpoints = start_up(tmp_path)
    try:
        healthy = run("health", "--endpoints-file", str(endpoints))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert [line.split()[:2] for line in healthy.stdout.splitlines()] == [[d, "healthy"] for d in available()]
    stopped = run("health", "--endpoints-file", str(endpoints), "--timeout", "2")
    assert stopped.returncode == 1
    assert all("UNHEALTHY" in line for line in stopped.stdout.splitlines())
