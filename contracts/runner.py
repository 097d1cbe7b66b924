"""The contract runner: schemathesis against any target (an emulator started here, or a real device).

Both the pytest contract tests and `benchtwin contract` go through ``run_schemathesis``, so CI and a
hardware-in-the-loop run check the same thing the same way.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

CONTRACTS = Path(__file__).resolve().parent
OPENAPI = CONTRACTS / "openapi"
ASYNCAPI = CONTRACTS / "asyncapi"


def openapi_path(name: str) -> Path:
    path = OPENAPI / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no contract document {path.name} in {OPENAPI}")
    return path


@dataclass
class ContractResult:
    document: str
    target: str
    returncode: int
    output: str
    command: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def summary(self) -> str:
        tail = [line for line in self.output.splitlines() if line.strip()][-12:]
        return "\n".join(tail)


def _st_executable() -> list[str]:
    exe = Path(sys.executable).with_name("st")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("st")
    if found:
        return [found]
    return [sys.executable, "-m", "schemathesis.cli"]


def run_schemathesis(
    document: str | Path,
    base_url: str,
    *,
    max_examples: int = 25,
    seed: int = 0,
    phases: str = "examples,coverage,fuzzing,stateful",
    mode: str = "all",
    checks: str = "all",
    exclude_checks: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    tls_verify: str | None = None,
    include_path_regex: str | None = None,
    exclude_path_regex: str | None = None,
    exclude_operation_ids: tuple[str, ...] = (),
    max_time_s: int | None = None,
    timeout_s: float = 600.0,
) -> ContractResult:
    """Run ``st run`` with positive and negative generation (and the stateful phase where links exist).

    ``document`` is a path, the name of a document in contracts/openapi, or the URL of a served document
    (an emulator's ``/_emulator/openapi.json``).
    """
    location = str(document)
    if not location.startswith(("http://", "https://")):
        path = Path(document)
        location = str(path if path.exists() else openapi_path(location))
    cmd = [
        *_st_executable(), "run", location, "--url", base_url,
        "--mode", mode, "--phases", phases, "--checks", checks,
        "--max-examples", str(max_examples), "--seed", str(seed),
        "--generation-deterministic",
        "--workers", "1", "--no-color", "--request-timeout", "10", "--suppress-health-check", "all",
    ]
    if exclude_checks:
        cmd += ["--exclude-checks", ",".join(exclude_checks)]
    for name, value in (headers or {}).items():
        cmd += ["--header", f"{name}: {value}"]
    if auth:
        cmd += ["--auth", f"{auth[0]}:{auth[1]}"]
    if tls_verify:
        cmd += ["--tls-verify", tls_verify]
    if include_path_regex:
        cmd += ["--include-path-regex", include_path_regex]
    if exclude_path_regex:
        cmd += ["--exclude-path-regex", exclude_path_regex]
    for operation_id in exclude_operation_ids:
        cmd += ["--exclude-operation-id", operation_id]
    if max_time_s:
        cmd += ["--max-time", str(max_time_s)]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=tmp, env=env)
    return ContractResult(location, base_url, proc.returncode, proc.stdout + proc.stderr, cmd)


def run_contract_cli(
    device: str, *, target: str | None, max_examples: int, seed: int, credentials: list[str] | None = None,
    record: str | None = None,
) -> int:
    """`benchtwin contract DEVICE [--target URL]`.

    Runs the device's contract tests (tests/contract/test_<device>_contract.py, shipped in the wheel as
    contracts.suites), so a hardware-in-the-loop run checks exactly what CI checks, with the same per-device
    exclusions, from a checkout or an installed package. Only a device without a suite falls back to
    schemathesis with every check against the document alone.
    """
    suite = contract_suite(device)
    if suite is None:
        return _run_document_only(device, target=target, max_examples=max_examples, seed=seed, record=record)
    missing = [m for m in SUITE_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        print(f"benchtwin: the contract suite needs {', '.join(missing)}; "
              "install them with: pip install 'benchtwin[contract]'", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "-rs"]
    checkout = CONTRACTS.parent
    in_checkout = suite.is_relative_to(checkout / "tests")
    if not in_checkout:
        # Installed: the checkout's pytest settings (pyproject.toml) are not there, so give the ones the suites
        # rely on, and keep the caller's own pytest configuration (cwd, rootdir) out of the run.
        cmd += ["--rootdir", str(suite.parent), "-c", os.devnull]
        for option in SUITE_INI_OPTIONS:
            cmd += ["-o", option]
    if target:
        cmd += ["--target", f"{device}={target}"]
    for credential in credentials or []:
        cmd += ["--target-credential", f"{device}.{credential}"]
    if record:
        cmd += ["--record", record]
    where = target or "an emulator started for the run"
    print(f"running the {device} contract suite ({suite.name}) against {where} ...", flush=True)
    return subprocess.run(cmd, cwd=checkout if in_checkout else tempfile.gettempdir()).returncode


# What the suites import beyond benchtwin's own dependencies: the `contract` extra.
SUITE_MODULES = ("pytest", "pytest_asyncio", "pytest_timeout", "schemathesis", "requests")
# The pytest settings of pyproject.toml the suites depend on (a test keeps the two equal).
SUITE_INI_OPTIONS = ("asyncio_mode=auto", "asyncio_default_fixture_loop_scope=function", "timeout=150",
                     "timeout_method=signal")


def contract_suite(device: str) -> Path | None:
    """The device's contract test file: the checkout's tests/contract/, else the copy installed with the package."""
    name = f"test_{device.replace('-', '_')}_contract.py"
    checkout = CONTRACTS.parent / "tests" / "contract" / name
    if checkout.is_file():
        return checkout
    installed = resources.files("contracts").joinpath("suites", name)  # a plain path: wheels install unzipped
    return Path(str(installed)) if installed.is_file() else None


def _run_document_only(device: str, *, target: str | None, max_examples: int, seed: int,
                       record: str | None = None) -> int:
    from emulators.hosting import EmulatorHost

    document = openapi_path(device)
    host = None
    if target is None:
        emulated = "misty" if device == "control-plane" else device
        from emulators.registry import available

        if emulated not in available():
            print(f"benchtwin: the {emulated} emulator is not available; give --target URL", file=sys.stderr)
            return 2
        host = EmulatorHost(emulated)
        host.start()
        target = host.emulator.endpoints()["rest"]
        print(f"started the {emulated} emulator at {target}", flush=True)
    recording = None
    if record:
        from emulators.hil.pytest_recording import ThreadedRecording

        recording = ThreadedRecording(device, target, Path(record))
        recording.start()
    try:
        print(f"running {document.name} against {target} (max {max_examples} examples per operation) ...", flush=True)
        result = run_schemathesis(document, recording.url if recording else target, max_examples=max_examples,
                                  seed=seed)
    finally:
        if recording is not None:
            recording.stop()
        if host is not None:
            host.stop()
    print(result.summary())
    print(f"contract {document.name} vs {target}: {'PASSED' if result.ok else 'FAILED'}")
    return 0 if result.ok else 1
