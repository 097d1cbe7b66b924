"""SignalWire settings: the device page's table is the one generated from the settings dataclass; bad values name
the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulators.kit.errors import FieldError
from emulators.signalwire.settings import SignalWireSettings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "signalwire.md"


def test_the_device_page_shows_the_generated_settings_table():
    assert SignalWireSettings.markdown_table() in PAGE.read_text()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"plain_l16_rate": 8000}, "plain_l16_rate"), ({"l16_byte_order": "middle"}, "l16_byte_order"),
     ({"conference_call_sid": "x"}, "conference_call_sid"), ({"media_speedup": 0}, "media_speedup"),
     ({"status_callback_attempts": 0}, "status_callback_attempts"), ({"disabled_codecs": ["G729"]}, "disabled_codecs"),
     ({"resolve": {"h": "nowhere"}}, "resolve"), ({"colour": "blue"}, "colour")],
)
def test_a_bad_setting_is_refused_naming_it(overrides, field):
    with pytest.raises(FieldError) as refused:
        SignalWireSettings.from_mapping(overrides)
    assert refused.value.field == f"signalwire.{field}"


def test_settings_from_a_configuration_become_typed_values():
    settings = SignalWireSettings.from_mapping({"disabled_codecs": ["PCMA"], "media_speedup": 2})
    assert settings.disabled_codecs == ("PCMA",) and settings.media_speedup == 2.0
