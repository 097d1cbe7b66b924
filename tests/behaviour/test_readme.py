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
