"""The depth camera's typed settings: defaults, refusals naming the field, and the device page's generated table."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.depthcam.model import Quirks
from emulators.depthcam.settings import DepthcamSettings
from emulators.kit.errors import FieldError

PAGE = Path(__file__).resolve().parents[2] / "docs" / "depthcam.md"


def test_the_device_pages_settings_table_is_the_generated_one() -> None:
    page = PAGE.read_text()
    table = DepthcamSettings.markdown_table()
    start = page.index(table.splitlines()[0])
    assert page[start : start + len(table)] == table


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"profile": "lab"}, "depthcam.profile"),
        ({"stream_list_form": "array"}, "depthcam.stream_list_form"),
        ({"restart_delay_s": -1}, "depthcam.restart_delay_s"),
        ({"boot_failures": -1}, "depthcam.boot_failures"),
        ({"boot_failures": 1.5}, "depthcam.boot_failures"),
        ({"rig": 3}, "depthcam.rig"),
        ({"quirk_everything": True}, "depthcam.quirk_everything"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(overrides: dict, field: str) -> None:
    with pytest.raises(FieldError) as refused:
        DepthcamSettings.from_mapping(overrides)
    assert field in str(refused.value)


def test_quirks_come_from_the_profile_or_one_by_one() -> None:
    assert DepthcamSettings().quirks() == Quirks()
    assert DepthcamSettings.from_mapping({"quirk_still_format_500": True}).quirks() == Quirks(still_format_500=True)
    assert all(vars(DepthcamSettings.from_mapping({"profile": "quirks"}).quirks()).values())
