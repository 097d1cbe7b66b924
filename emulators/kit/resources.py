"""Packaged scenarios and rigs: the top-level fixtures/ folder ships in the wheel as ``emulators/fixtures`` and is
found with importlib.resources; folders named by the ``scenario_dirs`` setting add files beside (and over) it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

import yaml

from emulators.kit.errors import FieldError

# The wheel holds fixtures/ as emulators/fixtures/ (setup.py maps it).
FIXTURES_ANCHOR, FIXTURES_FOLDER = "emulators", "fixtures"
# Each device's shelf: where its files sit in the packaged fixtures, and the sub-folder of a user folder.
SHELVES = {
    "recall": "scenarios/recall",
    "signalwire": "scenarios/signalwire",
    "videodb": "scenarios/videodb",
    "depthcam": "depthcam",
}
SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")

_user_folders: tuple[Path, ...] = ()


def fixtures_root() -> Path:
    """The packaged fixtures folder (a real directory: wheels install unzipped)."""
    # Anchored on the regular package: a data-only sub-package is a namespace package, which 3.11's
    # importlib.resources answers with a MultiplexedPath rather than a path.
    packaged = resources.files(FIXTURES_ANCHOR).joinpath(FIXTURES_FOLDER)
    if packaged.is_dir():
        return Path(str(packaged))
    # A source checkout (editable install or PYTHONPATH): the same files, in the top-level folder.
    return Path(__file__).resolve().parents[2] / "fixtures"


def check_user_folders(folders: Iterable[str | os.PathLike[str]]) -> tuple[Path, ...]:
    """Each folder exists and can be listed; else a FieldError naming ``scenario_dirs`` and the folder."""
    checked = []
    for raw in folders:
        folder = Path(raw).expanduser()
        if not folder.is_dir():
            raise FieldError("scenario_dirs", f"{str(raw)!r} is not a folder; give folders holding "
                             f"{'/, '.join(SHELVES)}/ sub-folders of scenario files")
        try:
            for sub in folder.iterdir():
                if sub.name in SHELVES and sub.is_dir():
                    for path in sub.iterdir():
                        if path.suffix in SCENARIO_SUFFIXES:
                            _check_parses(path)
        except OSError as exc:
            raise FieldError("scenario_dirs", f"cannot read {exc.filename or str(raw)!r}: {exc.strerror}") from None
        checked.append(folder.resolve())
    return tuple(checked)


def _check_parses(path: Path) -> None:
    """A user's scenario file is read at start-up, so a typo is one line naming the file, not a traceback later."""
    try:
        text = path.read_text()
        if path.suffix == ".json":
            json.loads(text)
        else:
            yaml.safe_load(text)
    except UnicodeDecodeError:
        raise FieldError("scenario_dirs", f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise FieldError("scenario_dirs", f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise FieldError("scenario_dirs", f"{path} is not valid YAML: {getattr(exc, 'problem', exc)}{where}") from None


def use_user_folders(folders: Sequence[str | os.PathLike[str]]) -> None:
    """Make every shelf look in these folders too (later folders win, all of them over the packaged files)."""
    global _user_folders
    _user_folders = check_user_folders(folders)


def user_folders() -> tuple[Path, ...]:
    return _user_folders


class Shelf:
    """One device's scenario (or rig) files: the packaged ones plus ``<user folder>/<device>/``.

    It answers the two questions a device asks of a folder, ``shelf / "name.yaml"`` and ``shelf.glob("*.yaml")``,
    so a device keeps reading plain paths; user folders are looked up at call time, after the config set them.
    """

    def __init__(self, device: str) -> None:
        if device not in SHELVES:
            raise KeyError(f"no fixture shelf for {device!r}; known: {', '.join(SHELVES)}")
        self.device = device

    def folders(self) -> list[Path]:
        """Where files are looked up, weakest first."""
        return [fixtures_root() / SHELVES[self.device], *(f / self.device for f in _user_folders)]

    def __truediv__(self, name: str) -> Path:
        """The file called ``name``: from the last folder that has it, else where the packaged one would be."""
        for folder in reversed(self.folders()):
            if (folder / name).is_file():
                return folder / name
        return self.folders()[0] / name

    def glob(self, pattern: str) -> list[Path]:
        """Files matching ``pattern`` by name, one per name (a user file hides a packaged one of that name)."""
        found: dict[str, Path] = {}
        for folder in self.folders():
            if folder.is_dir():
                for path in folder.glob(pattern):
                    if path.is_file():
                        found[path.name] = path
        return [found[name] for name in sorted(found)]

    def names(self) -> list[str]:
        """Scenario names (file stems) on this shelf."""
        return sorted({p.stem for p in self.glob("*") if p.suffix in SCENARIO_SUFFIXES})

    def __repr__(self) -> str:
        return f"Shelf({self.device!r}, folders={[str(f) for f in self.folders()]})"


def shelf(device: str) -> Shelf:
    return Shelf(device)
