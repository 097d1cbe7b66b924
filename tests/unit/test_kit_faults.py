"""Fault rules: validation names the field, matching by operation template or stream, count and seeded probability."""

from __future__ import annotations

import pytest

from emulators.kit.errors import FieldError
from emulators.kit.faults import FaultBook


def test_a_path_rule_matches_its_template_and_method_only() -> None:
    book = FaultBook()
    book.add({"match": {"method": "GET", "path": "/api/v1/bot/{id}/"}, "action": {"type": "status", "status": 503}})
    assert book.for_request("GET", "/api/v1/bot/abc/") is not None
    assert book.for_request("POST", "/api/v1/bot/abc/") is None
    assert book.for_request("GET", "/api/v1/bot/abc/leave_call/") is None


def test_star_matches_any_tail() -> None:
    book = FaultBook()
    book.add({"match": {"path": "/api/*"}, "action": {"type": "reset"}})
    assert book.for_request("DELETE", "/api/a/b/c") is not None


def test_count_limits_applications_then_the_rule_is_gone() -> None:
    book = FaultBook()
    book.add({"match": {"stream": "video:*"}, "action": {"type": "drop"}, "count": 2})
    assert book.for_stream("video:5678") is not None
    assert book.for_stream("video:5678") is not None
    assert book.for_stream("video:5678") is None
    assert len(book) == 0


def test_probability_is_seeded_and_reproducible() -> None:
    def pattern(seed: int) -> list[bool]:
        book = FaultBook(seed)
        book.add({"match": {"stream": "s"}, "action": {"type": "corrupt"}, "probability": 0.3})
        return [book.for_stream("s") is not None for _ in range(200)]

    assert pattern(7) == pattern(7)
    assert pattern(7) != pattern(8)
    assert 30 <= sum(pattern(7)) <= 90


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"action": {"type": "drop"}}, "match"),
        ({"match": {"path": "/a", "stream": "b"}, "action": {"type": "drop"}}, "match"),
        ({"match": {"path": "no-slash"}, "action": {"type": "reset"}}, "match.path"),
        ({"match": {"path": "/a"}, "action": {"type": "drop"}}, "action.type"),
        ({"match": {"stream": "s"}, "action": {"type": "status"}}, "action.type"),
        ({"match": {"path": "/a"}, "action": {"type": "status", "status": 99}}, "action.status"),
        ({"match": {"path": "/a"}, "action": {"type": "delay", "distribution": "poisson"}}, "action.distribution"),
        ({"match": {"path": "/a"}, "action": {"type": "delay", "ms": -1}}, "action.ms"),
        ({"match": {"stream": "s"}, "action": {"type": "close", "code": 999}}, "action.code"),
        ({"match": {"stream": "s"}, "action": {"type": "drop"}, "probability": 1.5}, "probability"),
        ({"match": {"stream": "s"}, "action": {"type": "drop"}, "count": 0}, "count"),
        ({"match": {"path": "/a", "method": "FETCH"}, "action": {"type": "reset"}}, "match.method"),
        ({"match": {"path": "/a"}, "action": {"type": "reset", "oops": 1}}, "action.oops"),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(rule: dict, field: str) -> None:
    with pytest.raises(FieldError) as err:
        FaultBook().add(rule)
    assert err.value.field == field


def test_the_same_id_replaces_a_rule() -> None:
    book = FaultBook()
    book.add({"id": "x", "match": {"stream": "a"}, "action": {"type": "drop"}})
    book.add({"id": "x", "match": {"stream": "b"}, "action": {"type": "drop"}})
    assert [r.stream for r in book.rules()] == ["b"]


def test_delays_follow_their_distribution() -> None:
    book = FaultBook(1)
    fixed = book.add({"match": {"path": "/f"}, "action": {"type": "delay", "ms": 250}}).action
    uniform = book.add({"match": {"path": "/u"}, "action": {"type": "delay", "distribution": "uniform",
                                                            "min_ms": 10, "max_ms": 20}}).action
    lognormal = book.add({"match": {"path": "/l"}, "action": {"type": "delay", "distribution": "lognormal",
                                                              "median_ms": 100, "sigma": 0.1}}).action
    assert book.delay_seconds(fixed) == 0.25
    assert all(0.010 <= book.delay_seconds(uniform) <= 0.020 for _ in range(50))
    samples = sorted(book.delay_seconds(lognormal) for _ in range(101))
    assert 0.08 < samples[50] < 0.12


def test_corrupt_keeps_the_first_bytes_and_changes_the_rest() -> None:
    book = FaultBook(3)
    payload = bytes(range(256)) * 8
    corrupted = book.corrupt(payload)
    assert corrupted[:16] == payload[:16]
    assert corrupted != payload
    assert len(corrupted) == len(payload)


def test_the_book_can_be_consulted_from_worker_threads_while_rules_change() -> None:
    import threading

    book = FaultBook(2)
    stop = threading.Event()
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            while not stop.is_set():
                book.for_stream("rtstream:1")
        except BaseException as exc:  # pragma: no cover - the failure this test guards against
            errors.append(exc)

    workers = [threading.Thread(target=sender) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        for i in range(500):
            book.add({"id": f"r{i % 7}", "match": {"stream": "rtstream:*"}, "action": {"type": "drop"},
                      "probability": 0.5, "count": 3})
            if i % 50 == 0:
                book.clear()
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert errors == []
