"""The kit's shared text sources give what their slower originals give."""

from __future__ import annotations

import yaml
from faker import Faker

from emulators.kit.fake_text import seeded_faker
from emulators.kit.resources import shelf
from emulators.kit.yaml_text import load_yaml


def test_a_reused_seeded_faker_gives_what_a_new_faker_seeded_alike_gives() -> None:
    for seed in (0, 7, 2**40 + 3):
        fresh = Faker()
        fresh.seed_instance(seed)
        expected = [fresh.name(), fresh.name(), fresh.sentence(nb_words=6), fresh.catch_phrase()]
        reused = seeded_faker(seed)
        assert [reused.name(), reused.name(), reused.sentence(nb_words=6), reused.catch_phrase()] == expected
    assert seeded_faker(1, "en_US") is seeded_faker(2, "en_US")


def test_every_packaged_scenario_reads_the_same_with_the_fast_yaml_parser() -> None:
    files = [p for device in ("recall", "signalwire", "videodb") for p in shelf(device).glob("*.y*ml")]
    assert files
    for path in files:
        text = path.read_text()
        assert load_yaml(text) == yaml.safe_load(text), path
