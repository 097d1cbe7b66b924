"""Configuration: embedded defaults, file overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.config import Config, load_config
from emulators.kit.errors import FieldError
from emulators.registry import available


def test_no_file_means_the_embedded_defaults() -> None:
    config = load_config(None)
    assert config.host == "127.0.0.1"
    assert config.time_scale == Config().time_scale


def test_toml_and_yaml_override_global_and_device_settings(tmp_path: Path) -> None:
    device = next(iter(available()), None)
    if device is None:
        pytest.skip("no emulator in this installation")
    toml = tmp_path / "c.toml"
    toml.write_text(f"seed = 7\ntime_scale = 1.0\n[{device}]\nport = 12345\n")
    yml = tmp_path / "c.yaml"
    yml.write_text(f"seed: 7\ntime_scale: 1.0\n{device}:\n  port: 12345\n")
    for path in (toml, yml):
        config = load_config(path)
        assert config.seed == 7
        assert config.time_scale == 1.0
        assert config.effective()[device]["port"] == 12345


@pytest.mark.parametrize(
    ("text", "field"),
    [("seed = 'x'\n", "seed"), ("time_scale = -1\n", "time_scale"), ("colour = 1\n", "colour"),
     ("[misty]\nprot = 1\n", "misty.prot"), ("host = 5\n", "host")],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, field: str) -> None:
    if field.startswith("misty") and "misty" not in available():
        pytest.skip("misty not available")
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(FieldError) as err:
        load_config(path)
    assert err.value.field == field


def test_a_missing_config_file_says_which() -> None:
    with pytest.raises(FieldError, match="cannot read"):
        load_config("/nonexistent/benchtwin.toml")


def test_event_log_capacity_bounds_every_emulators_log_and_bad_values_name_the_key(tmp_path: Path) -> None:
    from emulators.app import create_emulator
    from emulators.config import apply_overrides

    config = apply_overrides(Config(), {"event_log_capacity": 50})
    emulator = create_emulator("signalwire", config, free_ports=True)
    for n in range(120):
        emulator.events.record("test.event", n=n)
    fill = emulator.events.fill()
    assert (fill["events"], fill["capacity"]) == (50, 50)
    assert [e.detail["n"] for e in emulator.events.query(kind="test")][:1] == [70]  # the oldest went first
    for bad in (0, 9, True, "many", 2_000_000):
        with pytest.raises(FieldError, match="event_log_capacity"):
            apply_overrides(Config(), {"event_log_capacity": bad})
