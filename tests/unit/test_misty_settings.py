"""Misty's typed settings: one frozen dataclass, validated, and the docs page's table generated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.kit.errors import FieldError
from emulators.misty.device import MistySettings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "misty.md"


def test_the_docs_settings_table_is_the_generated_one():
    page = PAGE.read_text()
    section = page[page.index("## Settings and quirk flags") :]
    table = section[section.index("| Setting |") :]
    table = table[: table.index("\n\n") + 1]
    assert table == MistySettings.markdown_table()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"camera_enable_flaky": 1.5}, "misty.camera_enable_flaky"),
        ({"camera_enable_flaky": -0.1}, "misty.camera_enable_flaky"),
        ({"reboot_delay_s": -1.0}, "misty.reboot_delay_s"),
        ({"single_viewer": "yes"}, "misty.single_viewer"),
        ({"lidar": True}, "misty.lidar"),
    ],
)
def test_a_bad_setting_names_the_field(overrides, field):
    with pytest.raises(FieldError) as exc:
        MistySettings.from_mapping(overrides)
    assert exc.value.field == field


def test_the_defaults_are_the_real_robots_behaviour():
    settings = MistySettings()
    assert (settings.single_viewer, settings.sticky_subscriptions) == (False, False)
    assert (settings.camera_enable_flaky, settings.reboot_delay_s) == (0.0, 0.0)
