"""Conferences and participants from scenario specs (fixture files and control-plane bodies), validated.

Pure: the caller passes ``now`` and the seed; every problem is a FieldError naming the field and what is allowed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from clients.signalwire_media import CHUNK_MS
from emulators.kit.errors import FieldError
from emulators.signalwire.errors import InvalidRequest
from emulators.signalwire.model import (
    CONFERENCE_EVENTS,
    Conference,
    Participant,
    Recording,
    RecordingStatus,
    new_sid,
    validate_dtmf,
)

RECORDING_STATES = ("in-progress", "paused", "completed", "stopped")  # what a scenario may start one as


def conference_from_spec(spec: Any, where: str, *, accounts: dict[str, str], taken: Collection[str], now: float,
                         seed: int) -> Conference:
    """A conference (status ``init``, no participants yet) with its recordings, key presses and callbacks."""
    if not isinstance(spec, dict):
        raise FieldError(where, "must be an object")
    account = str(spec.get("account") or spec.get("account_sid") or next(iter(accounts), ""))
    if account not in accounts:
        raise FieldError(f"{where}.account", f"unknown account {account!r}; known: {', '.join(accounts)}")
    friendly = spec.get("friendly_name", "Conference")
    if not isinstance(friendly, str) or len(friendly) > 64:
        raise FieldError(f"{where}.friendly_name", "must be a string of at most 64 characters")
    sid = str(spec.get("sid") or new_sid())
    if sid in taken:
        raise FieldError(f"{where}.sid", f"conference {sid} exists already")
    conference = Conference(sid=sid, account_sid=account, friendly_name=friendly, date_created=now,
                            date_updated=now, outbound_prompt=bool(spec.get("outbound_prompt", False)), seed=seed)
    _callback_settings(conference, spec, where)
    for i, press in enumerate(spec.get("dtmf", []) or []):
        if not isinstance(press, dict):
            raise FieldError(f"{where}.dtmf[{i}]", "must be an object with at_ms, digit and duration_ms")
        try:
            digit, duration = validate_dtmf(press.get("digit"), press.get("duration_ms", 200))
        except InvalidRequest as exc:
            raise FieldError(f"{where}.dtmf[{i}]", exc.message) from None
        at_ms = press.get("at_ms", 0)
        if isinstance(at_ms, bool) or not isinstance(at_ms, int) or at_ms < 0:
            raise FieldError(f"{where}.dtmf[{i}].at_ms", "must be a non-negative integer (ms of media time)")
        conference.dtmf_timeline.append((at_ms, digit, duration))
    for i, rec in enumerate(spec.get("recordings", []) or []):
        status = rec.get("status", "in-progress") if isinstance(rec, dict) else None
        if status not in RECORDING_STATES:
            raise FieldError(f"{where}.recordings[{i}].status", f"must be one of {', '.join(RECORDING_STATES)}")
        recording_sid = str(rec.get("sid") or new_sid())
        conference.recordings[recording_sid] = Recording(
            sid=recording_sid, account_sid=account, conference_sid=sid, date_created=now, date_updated=now,
            start_time=now, status=RecordingStatus(status),
            end_time=now if status in ("completed", "stopped") else None,
        )
    return conference


def _callback_settings(conference: Conference, spec: dict[str, Any], where: str) -> None:
    url = spec.get("status_callback")
    if url is None:
        return
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise FieldError(f"{where}.status_callback", "must be an absolute http(s) URL")
    method = spec.get("status_callback_method", "POST")
    if method not in ("GET", "POST"):
        raise FieldError(f"{where}.status_callback_method", "must be GET or POST")
    events = spec.get("status_callback_events", ["conference-start", "conference-end"])
    if not isinstance(events, list) or any(e not in CONFERENCE_EVENTS for e in events):
        raise FieldError(f"{where}.status_callback_events", f"must be a list of {', '.join(CONFERENCE_EVENTS)}")
    conference.status_callback = url
    conference.status_callback_method = method
    conference.status_callback_events = frozenset(events)


def participant_from_spec(conference: Conference, spec: Any, where: str, *, now: float, seed: int) -> Participant:
    """A participant with a speaking timeline of [start_ms, end_ms) intervals on the conference's media clock."""
    if not isinstance(spec, dict):
        raise FieldError(where, "must be an object")
    speaking = spec.get("speaking", [])
    if not isinstance(speaking, list) or not all(
        isinstance(iv, list | tuple) and len(iv) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in iv) and iv[0] < iv[1]
        for iv in speaking
    ):
        raise FieldError(f"{where}.speaking", "must be a list of [start_ms, end_ms] pairs with start < end")
    loop = spec.get("timeline_loop_ms")
    if loop is not None and (isinstance(loop, bool) or not isinstance(loop, int) or loop < CHUNK_MS):
        raise FieldError(f"{where}.timeline_loop_ms", f"must be an integer of at least {CHUNK_MS}")
    flags = {}
    for key in ("muted", "hold", "end_conference_on_exit", "start_conference_on_enter"):
        value = spec.get(key)
        if value is not None and not isinstance(value, bool):
            raise FieldError(f"{where}.{key}", f"must be true or false, got {value!r}")
        if value is not None:
            flags[key] = value
    call_sid = str(spec.get("call_sid") or new_sid())
    return Participant(
        call_sid=call_sid, conference_sid=conference.sid, account_sid=conference.account_sid,
        date_created=now, date_updated=now, name=str(spec.get("name", "")),
        speaking=[(a, b) for a, b in speaking], timeline_loop_ms=loop,
        voice_seed=voice_seed(seed, call_sid), **flags,
    )


def voice_seed(seed: int, call_sid: str) -> int:
    """A stable per-participant voice seed (Python's hash() is salted per process, so not that)."""
    value = seed & 0xFFFFFFFF
    for byte in call_sid.encode():
        value = (value * 1_000_003 + byte) & 0xFFFFFFFF
    return value
