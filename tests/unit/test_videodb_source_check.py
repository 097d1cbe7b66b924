"""Source URLs against the egress allowlist, decided with an injected resolver: a name is admitted when every
address it resolves to is allowed, pinned to the checked address, and judged afresh on each check.
"""

from __future__ import annotations

import socket

from emulators.videodb.ingest import check_source

LOOPBACK = ["127.0.0.0/8", "10.0.0.0/8"]
HOSTS = ["localhost"]


def answers(*replies: list[str]):  # type: ignore[no-untyped-def]
    """A resolver giving one reply per lookup, in order."""
    queue = list(replies)

    def resolve(host: str) -> list[str]:
        return queue.pop(0)

    return resolve


def test_a_service_name_resolving_inside_the_allowlist_is_pulled_from_the_checked_address() -> None:
    check = check_source("rtmp://media-server:1935/live/key", LOOPBACK, HOSTS, answers(["10.1.2.3", "127.0.0.5"]))
    assert check.refusal is None and check.url == "rtmp://10.1.2.3:1935/live/key"
    with_user = check_source("rtsp://cam:pw@camera/stream", LOOPBACK, HOSTS, answers(["::1", "10.0.0.9"]))
    assert with_user.refusal is not None  # ::1 is not inside the IPv4 ranges above
    v6 = check_source("rtsp://cam:pw@camera:8554/s", [*LOOPBACK, "::1/128"], HOSTS, answers(["::1"]))
    assert v6.refusal is None and v6.url == "rtsp://cam:pw@[::1]:8554/s"


def test_a_name_with_any_address_outside_names_the_setting_and_every_address() -> None:
    check = check_source("rtmp://media-server/live/key", LOOPBACK, HOSTS, answers(["10.1.2.3", "93.184.216.34"]))
    assert check.refusal == (
        "'url' host 'media-server' resolves to 10.1.2.3, 93.184.216.34, not all inside the egress allowlist "
        "127.0.0.0/8, 10.0.0.0/8 (configuration egress_allow)"
    )


def test_a_name_that_does_not_resolve_is_refused_with_the_resolvers_reason() -> None:
    def fails(host: str) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    check = check_source("rtmp://nowhere/live/key", LOOPBACK, HOSTS, fails)
    assert check.refusal == "'url' host 'nowhere' does not resolve (Name or service not known)"


def test_each_check_resolves_again_so_a_rebound_name_is_refused() -> None:
    resolve = answers(["10.0.0.7"], ["169.254.169.254"])
    assert check_source("rtmp://media-server/live/key", LOOPBACK, HOSTS, resolve).refusal is None
    assert "169.254.169.254" in (check_source("rtmp://media-server/live/key", LOOPBACK, HOSTS, resolve).refusal or "")


def test_without_a_resolver_only_addresses_and_allowed_names_are_judged() -> None:
    assert check_source("rtmp://media-server/live/key", LOOPBACK, HOSTS, None).refusal is None
    assert check_source("rtmp://LOCALHOST/live/key", LOOPBACK, HOSTS, None).url == "rtmp://LOCALHOST/live/key"
    assert "outside the egress allowlist" in (check_source("rtmp://8.8.8.8/live", LOOPBACK, HOSTS, None).refusal or "")
