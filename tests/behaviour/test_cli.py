"""The benchtwin command as a user meets it: list, up with an endpoints file, clean Ctrl-C, certs, bad input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulators.registry import available

BENCHTWIN = [sys.executable, "-m", "emulators"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BENCHTWIN, *args], capture_output=True, text=True, timeout=timeout)


def free_ports_config(tmp_path: Path) -> Path:
    """A config that moves every listener of every emulator to a free port, so parallel runs never clash."""
    lines = []
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


def test_list_prints_every_available_emulator_with_its_default_port() -> None:
    result = run("list")
    assert result.returncode == 0
    for name, cls in available().items():
        assert name in result.stdout
        assert f"port={cls.settings_defaults['port']}" in result.stdout


def test_up_writes_the_endpoints_file_prints_the_table_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    if not available():
        pytest.skip("no emulator in this installation")
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
        document = json.loads(endpoints.read_text())
        assert set(document) == set(available())
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
