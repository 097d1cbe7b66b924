"""Typed settings: defaults, field errors naming `<device>.<field>` and what is allowed, and the generated table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from emulators.kit.emulator import Emulator
from emulators.kit.errors import FieldError
from emulators.kit.outbound import DEFAULT_ALLOWED, EgressPolicy
from emulators.kit.settings import DeviceSettings, setting
from emulators.registry import DEVICES, available


@dataclass(frozen=True)
class CameraSettings(DeviceSettings):
    device = "camera"

    port: int = setting(8080, doc="REST port", minimum=0, maximum=65535)
    fps: float = setting(30.0, doc="frames per second", minimum=1, maximum=60)
    profile: str = setting("oak", doc="hardware profile", choices=("oak", "lab"))
    mode: Literal["fast", "slow"] = setting("fast", doc="speed")
    api_key: str | None = setting(None, doc="key clients send")
    names: list[str] = setting(["a"], doc="camera names")
    quirk: bool = setting(False, doc="a vendor quirk")


def test_overrides_apply_on_top_of_the_defaults_and_ints_become_floats() -> None:
    s = CameraSettings.from_mapping({"fps": 15, "api_key": "k", "names": ["x", "y"]})
    assert (s.port, s.fps, s.api_key, s.names) == (8080, 15.0, "k", ["x", "y"])
    assert isinstance(s.fps, float)
    assert CameraSettings.defaults()["names"] == ["a"]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"prot": 1}, "camera.prot", "known: api_key"),
        ({"port": "eighty"}, "camera.port", "an integer"),
        ({"port": 70000}, "camera.port", "between 0 and 65535"),
        ({"quirk": 1}, "camera.quirk", "true or false"),
        ({"profile": "pro"}, "camera.profile", "one of oak, lab"),
        ({"mode": "medium"}, "camera.mode", "'fast', 'slow'"),
        ({"names": ["x", 2]}, "camera.names[1]", "a string"),
        ({"fps": True}, "camera.fps", "a number"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_field_and_what_is_allowed(overrides: dict, field: str,
                                                                       words: str) -> None:
    with pytest.raises(FieldError) as err:
        CameraSettings.from_mapping(overrides)
    assert err.value.field == field
    assert words in str(err.value)


def test_the_markdown_table_lists_every_setting_with_its_rule() -> None:
    table = CameraSettings.markdown_table()
    assert table.splitlines()[0] == "| Setting | Default | Allowed | Meaning |"
    assert "| `port` | `8080` | between 0 and 65535 | REST port |" in table
    assert "| `profile` | `'oak'` | `oak`, `lab` | hardware profile |" in table
    assert len(table.splitlines()) == 2 + 7


class Camera(Emulator):
    """A kit test device on typed settings."""

    device = "camera"
    settings_class = CameraSettings


def test_an_emulator_with_a_settings_class_reads_its_settings_as_attributes() -> None:
    camera = Camera({"fps": 10, "port": 0}, egress=EgressPolicy(DEFAULT_ALLOWED))
    assert camera.settings.fps == 10.0 and camera.setting("port") == 0
    assert Camera.merged_settings({"profile": "lab"})["profile"] == "lab"
    assert Camera.default_settings()["port"] == 8080
    with pytest.raises(FieldError) as err:
        Camera({"fps": 0}, egress=EgressPolicy(DEFAULT_ALLOWED))
    assert err.value.field == "camera.fps"


@pytest.mark.parametrize("device", DEVICES)
def test_a_device_page_carries_the_settings_table_generated_from_its_dataclass(device: str) -> None:
    cls = available().get(device)
    if cls is None or cls.settings_class is None:
        pytest.skip(f"{device} has no settings dataclass yet")
    page = (Path(__file__).resolve().parents[2] / "docs" / f"{device}.md").read_text()
    # `benchtwin up --print-config markdown` prints the same table.
    assert cls.settings_class.markdown_table() in page
