"""VideoDB settings: one typed dataclass; the device page's table is generated from it and must stay equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.kit.errors import FieldError
from emulators.videodb.settings import VideoDBSettings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "videodb.md"


def test_the_device_page_shows_the_generated_settings_table() -> None:
    assert VideoDBSettings.markdown_table() in PAGE.read_text()


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"segment_s": 0}, "videodb.segment_s"),
        ({"webhook_attempts": 0}, "videodb.webhook_attempts"),
        ({"no_error_status": "yes"}, "videodb.no_error_status"),
        ({"source_networks": "127.0.0.0/8"}, "videodb.source_networks"),  # gone: egress_allow governs sources
        ({"reconnect_initial_s": 5.0, "reconnect_max_s": 1.0}, "videodb.reconnect_max_s"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(FieldError) as refused:
        VideoDBSettings.from_mapping(overrides)
    assert named in str(refused.value)


def test_integers_are_accepted_where_seconds_are_expected() -> None:
    assert VideoDBSettings.from_mapping({"error_after_s": 1}).error_after_s == 1.0
