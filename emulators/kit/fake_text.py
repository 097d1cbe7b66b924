"""Seeded Faker values without a Faker per call: one instance per thread and locale, reseeded for each use.

Creating a Faker loads its providers (about 30 ms); reseeding an existing one costs nothing and gives the same
values a new Faker seeded alike would. Faker itself is imported on first use, not when an emulator starts.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faker import Faker

_local = threading.local()


def seeded_faker(seed: int, locale: str | None = None) -> Faker:
    """This thread's Faker for ``locale`` (Faker's default when None), seeded with ``seed``. Use it before the next
    call on the same thread: that call reseeds it."""
    from faker import Faker

    fakers: dict[str | None, Faker] = _local.__dict__.setdefault("fakers", {})
    faker = fakers.get(locale)
    if faker is None:
        faker = fakers[locale] = Faker(locale) if locale else Faker()
    faker.seed_instance(seed)
    return faker
