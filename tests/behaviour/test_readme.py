"""The README's commands work as written: every shell block says how it is checked, and the runnable ones run.

A block is marked by an HTML comment on the line before its fence:
``<!-- runnable -->`` (a shell block run here, in an empty folder, with the checkout's ``benchtwin``),
``<!-- runnable: pytest -->`` (a Python block run as an outside project's test file),
``<!-- run by CI: SCRIPT -->`` (SCRIPT runs each command; a ``make`` target must at least resolve), or
``<!-- needs: WHAT -->`` (it needs something a test machine does not have, such as a real device).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"(?:<!--\s*(?P<marker>[^>]*?)\s*-->\n)?```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)```", re.S)
MARKERS = re.compile(r"runnable|runnable: pytest|run by CI: \S+|needs: .+")


@dataclass(frozen=True)
class Block:
    marker: str
    lang: str
    body: str
    line: int

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"


def blocks() -> list[Block]:
    text = README.read_text()
    return [Block(m["marker"] or "", m["lang"], m["body"], text.count("\n", 0, m.start("body")))
            for m in BLOCK.finditer(text)]


def marked(marker: str) -> list[Block]:
    return [b for b in blocks() if b.marker == marker]


def commands(body: str) -> list[str]:
    """The block's command lines: comments dropped, continuations joined, trailing comments cut."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.split(" # ")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture
def user_shell(tmp_path: Path) -> dict[str, str]:
    """An environment like a user's after installing benchtwin: `benchtwin` on PATH (this checkout), an empty
    folder, the dev certificates kept in it rather than in the real home."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "benchtwin"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m emulators "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "BENCHTWIN_CERTS_DIR": str(tmp_path / "certs")}


def test_every_shell_block_says_how_it_is_checked() -> None:
    shell = [b for b in blocks() if b.lang in ("sh", "bash", "shell")]
    assert shell, "the README has no shell blocks"
    unmarked = [b.id for b in shell if not MARKERS.fullmatch(b.marker)]
    assert not unmarked, f"shell blocks without a runnable / run by CI / needs marker: {unmarked}"
    assert marked("runnable") and marked("runnable: pytest")


def test_the_first_screen_shows_the_two_commands_then_tests_container_and_hardware() -> None:
    text = README.read_text()
    first = blocks()[0]
    assert commands(first.body) == ["make up", "make test"]
    headings = [text.index(h) for h in ("### Use it from your own tests", "### Run it in a container",
                                        "### Point at real hardware")]
    assert headings == sorted(headings)


@pytest.mark.parametrize("block", marked("runnable"), ids=lambda b: b.id)
def test_runnable_shell_block_succeeds_in_an_empty_folder(block: Block, tmp_path: Path,
                                                          user_shell: dict[str, str]) -> None:
    work = tmp_path / "project"
    work.mkdir()
    script = f"set -eu\n{block.body}\n"
    result = subprocess.run(["bash", "-c", script], cwd=work, env=user_shell, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{block.id}\n{block.body}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.mark.parametrize("block", marked("runnable: pytest"), ids=lambda b: b.id)
def test_runnable_python_block_passes_as_an_outside_projects_test(block: Block, tmp_path: Path,
                                                                  user_shell: dict[str, str]) -> None:
    (tmp_path / "test_from_readme.py").write_text(block.body)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_from_readme.py"],
                            cwd=tmp_path, env=user_shell, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout


@pytest.mark.parametrize("block", [b for b in blocks() if b.marker.startswith("run by CI:")], ids=lambda b: b.id)
def test_ci_block_commands_are_run_by_the_named_script(block: Block) -> None:
    script = ROOT / block.marker.removeprefix("run by CI:").strip()
    assert script.is_file(), f"{block.id}: no CI script {script.relative_to(ROOT)}"
    ci = script.read_text()
    for command in commands(block.body):
        words = command.removeprefix("sudo ").split()
        if words[0] == "make":
            dry = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
            assert dry.returncode == 0, f"{block.id}: {command!r} does not resolve: {dry.stderr}"
        else:
            assert " ".join(words[:2]) in ci, f"{block.id}: {script.name} does not run {command!r}"


# ----- docs/scale-out.md: the Kubernetes manifests and the commands in them -----------------------------------
SCALE_OUT = ROOT / "docs" / "scale-out.md"
HEALTH_PATH = "/_emulator/health"


def doc_blocks(path: Path, lang: str) -> list[Block]:
    text = path.read_text()
    return [Block(m["marker"] or "", m["lang"], m["body"], text.count("\n", 0, m.start("body")))
            for m in BLOCK.finditer(text) if m["lang"] == lang]


def manifests() -> list[dict]:
    import yaml

    return [doc for block in doc_blocks(SCALE_OUT, "yaml") for doc in yaml.safe_load_all(block.body)]


def of_kind(kind: str) -> list[dict]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def image_entrypoint() -> list[str]:
    import json

    line = next(ln for ln in (ROOT / "Containerfile").read_text().splitlines() if ln.startswith("ENTRYPOINT "))
    return json.loads(line.removeprefix("ENTRYPOINT "))


def scale_out_config() -> object:
    import yaml

    from emulators.config import Config, apply_overrides

    (config_map,) = [c for c in of_kind("ConfigMap") if "benchtwin.yaml" in c["data"]]
    return apply_overrides(Config(), yaml.safe_load(config_map["data"]["benchtwin.yaml"]))


def test_scale_out_yaml_blocks_are_kubernetes_objects() -> None:
    blocks = doc_blocks(SCALE_OUT, "yaml")
    assert blocks, "docs/scale-out.md has no yaml blocks"
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"ConfigMap", "Deployment", "Service", "PersistentVolumeClaim"}
    for doc in docs:
        assert isinstance(doc, dict) and set(doc) >= {"apiVersion", "kind", "metadata"}, doc
        assert doc["metadata"]["name"] and doc["metadata"]["namespace"] == "bench", doc["metadata"]
    for service in of_kind("Service"):
        assert service["spec"]["clusterIP"] == "None", f"{service['metadata']['name']}: not headless"
        pods = [d for d in of_kind("Deployment") if d["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]]
        assert len(pods) == 1, f"service {service['metadata']['name']} selects {len(pods)} Deployments"
    for deployment in of_kind("Deployment"):
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_scale_out_configuration_loads_and_the_entrypoint_is_the_images() -> None:
    config = scale_out_config()  # unknown keys or wrong types raise here
    assert config.egress_allow and config.device_settings("videodb")["data_dir"]
    assert f"benchtwin up {' '.join(image_entrypoint()[2:])}" in SCALE_OUT.read_text()


def test_scale_out_pods_run_real_arguments_on_the_devices_ports_with_health_probes() -> None:
    from emulators.cli import _selected_devices, build_parser
    from emulators.registry import available

    config = scale_out_config()
    entrypoint = image_entrypoint()
    deployments = of_kind("Deployment")
    assert {"misty", "recall"} <= {d["metadata"]["name"] for d in deployments}
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        args = build_parser().parse_args([*entrypoint[1:], *container["args"]])  # an unknown flag exits
        (device,) = _selected_devices(args.only)
        assert device == deployment["metadata"]["name"]
        assert args.host == "0.0.0.0" and args.no_dashboard and args.control_token == "$(BENCHTWIN_CONTROL_TOKEN)"
        assert [e["name"] for e in container["env"]] == ["BENCHTWIN_CONTROL_TOKEN"]
        config_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
        assert args.config == f"{config_mount}/benchtwin.yaml"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        settings = available()[device].merged_settings(config.device_settings(device))
        assert ports["rest"] == settings["port"], f"{device}: containerPort rest is not the device's port"
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": HEALTH_PATH, "port": "rest"}, (device, probe)
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert entrypoint[-1].rpartition("/")[0] in mounts, f"{device}: the endpoints file's folder is not writable"
        data_dir = settings.get("data_dir")
        if data_dir:
            assert data_dir in mounts and deployment["spec"]["replicas"] == 1
            assert deployment["spec"]["strategy"]["type"] == "Recreate"
        (service,) = [s for s in of_kind("Service") if s["metadata"]["name"] == device]
        assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == ports


def test_scale_out_job_and_shell_commands_parse() -> None:
    import shlex

    from emulators.bench.cli import build_parser as bench_parser
    from emulators.cli import build_parser

    for job in of_kind("Job"):
        (container,) = job["spec"]["template"]["spec"]["containers"]
        command = container["command"]
        assert command[:2] == ["benchtwin", "bench"]
        assert bench_parser().parse_args(command[2:]).scenario
    lines = [c for b in doc_blocks(SCALE_OUT, "sh") for c in commands(b.body) if c.startswith("benchtwin ")]
    assert lines
    for line in lines:
        build_parser().parse_args(shlex.split(line)[1:])


def test_scale_out_print_config_command_runs_on_the_config_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import shlex

    from emulators.cli import main

    (config_map,) = [c for c in of_kind("ConfigMap") if "benchtwin.yaml" in c["data"]]
    (tmp_path / "benchtwin.yaml").write_text(config_map["data"]["benchtwin.yaml"])
    monkeypatch.chdir(tmp_path)
    (line,) = [c for b in doc_blocks(SCALE_OUT, "sh") for c in commands(b.body) if "--print-config" in c]
    assert main(shlex.split(line)[1:]) == 0
    effective = json.loads(capsys.readouterr().out)
    assert effective["host"] == "0.0.0.0" and effective["seed"] == 7


def test_scale_out_endpoints_config_map_matches_the_services_ports_and_dev_credentials() -> None:
    import json
    from urllib.parse import urlsplit

    from emulators.registry import available

    (config_map,) = [c for c in of_kind("ConfigMap") if "endpoints.json" in c["data"]]
    document = json.loads(config_map["data"]["endpoints.json"])
    services = {s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in of_kind("Service")}
    assert set(document) == set(services)
    for device, entry in document.items():
        for name, url in entry.items():
            if name == "credentials":
                continue
            parts = urlsplit(url)
            assert parts.hostname == f"{device}.bench.svc.cluster.local" and parts.port in services[device], url
        defaults = available()[device].default_settings()
        for key, value in entry["credentials"].items():
            if key in defaults:
                assert value == defaults[key], f"{device}.{key} is not the dev default"


def test_scale_out_python_block_compiles_and_the_page_is_linked() -> None:
    for block in doc_blocks(SCALE_OUT, "python"):
        compile(block.body, f"docs/scale-out.md:{block.line}", "exec")
    assert "(docs/scale-out.md)" in README.read_text()
    assert "(scale-out.md)" in (ROOT / "docs" / "architecture.md").read_text()
