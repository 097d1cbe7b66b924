"""Fault rules (WireMock's vocabulary, extended to streams): what to break, where, how often; seeded.

This module is sans-I/O: it validates rules, matches requests and stream ticks, and rolls the dice.
The HTTP middleware (``http_faults.py``) and the stream senders (through ``Emulator.stream_verdict``) act on
what it decides.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import random
import re
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

from emulators.kit.errors import FieldError

HTTP_ACTIONS = ("status", "delay", "empty", "reset")
STREAM_ACTIONS = ("close", "stall", "drop", "corrupt", "disconnect")
DISTRIBUTIONS = ("fixed", "uniform", "lognormal")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*")


@dataclass(frozen=True)
class StatusAction:
    """Answer with this status, body and headers instead of the device."""

    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    type: Literal["status"] = "status"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "status": self.status, "body": self.body, "headers": self.headers}


@dataclass(frozen=True)
class DelayAction:
    """Delay the answer by a fixed or drawn time (``ms`` or ``min_ms``/``max_ms`` or ``median_ms``/``sigma``)."""

    distribution: str = "fixed"
    ms: float = 0.0
    min_ms: float = 0.0
    max_ms: float = 0.0
    median_ms: float = 0.0
    sigma: float = 0.5
    type: Literal["delay"] = "delay"

    def as_dict(self) -> dict[str, Any]:
        if self.distribution == "fixed":
            return {"type": self.type, "distribution": self.distribution, "ms": self.ms}
        if self.distribution == "uniform":
            return {"type": self.type, "distribution": self.distribution, "min_ms": self.min_ms, "max_ms": self.max_ms}
        return {"type": self.type, "distribution": self.distribution, "median_ms": self.median_ms, "sigma": self.sigma}


@dataclass(frozen=True)
class EmptyAction:
    """Close the connection without an answer."""

    type: Literal["empty"] = "empty"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True)
class ResetAction:
    """Reset the connection (RST) without an answer."""

    type: Literal["reset"] = "reset"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True)
class CloseAction:
    """Close the stream cleanly with a close code and reason."""

    code: int = 1011
    reason: str = ""
    type: Literal["close"] = "close"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "reason": self.reason}


@dataclass(frozen=True)
class StallAction:
    """Send nothing for ``seconds`` (or until the rule is deleted), then carry on."""

    seconds: float = 1.0
    type: Literal["stall"] = "stall"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "seconds": self.seconds}


@dataclass(frozen=True)
class DropAction:
    """Skip this frame/chunk."""

    type: Literal["drop"] = "drop"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True)
class CorruptAction:
    """Send this frame/chunk with damaged content."""

    type: Literal["corrupt"] = "corrupt"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type}


@dataclass(frozen=True)
class DisconnectAction:
    """Drop the stream's connection without a close handshake."""

    type: Literal["disconnect"] = "disconnect"

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type}


HttpAction = StatusAction | DelayAction | EmptyAction | ResetAction
StreamAction = CloseAction | StallAction | DropAction | CorruptAction | DisconnectAction
FaultAction = HttpAction | StreamAction


class Lift:
    """Set when a stall's rule is deleted: ends every stall in progress, in coroutines and in threads alike."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def set(self) -> None:
        with self._lock:
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait_blocking(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    async def wait(self, seconds: float) -> bool:
        event = asyncio.Event()
        with self._lock:
            if self._event.is_set():
                return True
            entry = (asyncio.get_running_loop(), event)
            self._waiters.append(entry)
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)


# ----- verdicts: what a stream sender does with one frame/chunk ------------------------------------------
@dataclass(frozen=True)
class Send:
    """Send the frame; ``corrupt`` asks the sender to damage it first (``corrupt_payload``)."""

    corrupt: bool = False


@dataclass(frozen=True)
class Skip:
    """Do not send this frame; the stream goes on."""


@dataclass(frozen=True)
class Stall:
    """Send nothing for ``seconds``; deleting the rule ends the stall early."""

    seconds: float
    lift: Lift = field(default_factory=Lift, compare=False, repr=False)

    async def wait(self) -> None:
        await self.lift.wait(self.seconds)

    def wait_blocking(self) -> None:
        """For worker threads."""
        self.lift.wait_blocking(self.seconds)


@dataclass(frozen=True)
class Close:
    """Close the stream cleanly with this code and reason."""

    code: int
    reason: str


@dataclass(frozen=True)
class Abort:
    """Drop the connection without a close handshake."""


StreamVerdict = Send | Skip | Stall | Close | Abort
SEND = Send()
_SKIP = Skip()
_ABORT = Abort()


def verdict_for(rule: FaultRule | None) -> StreamVerdict:
    """The sender's verdict for a stream rule that fired (or none)."""
    if rule is None:
        return SEND
    match rule.action:
        case DropAction():
            return _SKIP
        case CorruptAction():
            return Send(corrupt=True)
        case StallAction(seconds=seconds):
            return Stall(seconds, rule.lift)
        case CloseAction(code=code, reason=reason):
            return Close(code, reason)
        case DisconnectAction():
            return _ABORT
    raise ValueError(f"rule {rule.id} has HTTP action {rule.action.type!r}, not a stream action")


def corrupt_payload(payload: bytes) -> bytes:
    """Flip a handful of bytes past the first 16 (headers survive, content does not); the same input always
    gives the same output, so a corrupted run is reproducible."""
    if len(payload) <= 16:
        return bytes(b ^ 0xFF for b in payload)
    data = bytearray(payload)
    rng = random.Random(zlib.crc32(payload))
    for _ in range(max(1, len(data) // 512)):
        i = rng.randrange(16, len(data))
        data[i] ^= 0xFF
    return bytes(data)


@dataclass
class FaultRule:
    id: str
    action: FaultAction
    method: str | None = None
    path: str | None = None
    stream: str | None = None
    probability: float = 1.0
    count: int | None = None  # remaining applications; None = unlimited
    hits: int = 0
    _path_re: re.Pattern[str] | None = None
    # Set when the rule is deleted, which ends a stall it started.
    lift: Lift = field(default_factory=Lift, compare=False, repr=False)

    def matches_request(self, method: str, path: str) -> bool:
        if self.path is None or self._path_re is None:
            return False
        if self.method not in (None, "*") and self.method != method.upper():
            return False
        return self._path_re.fullmatch(path) is not None

    def matches_stream(self, stream: str) -> bool:
        return self.stream is not None and fnmatch.fnmatchcase(stream, self.stream)

    def as_dict(self) -> dict[str, Any]:
        match: dict[str, Any] = {}
        if self.method:
            match["method"] = self.method
        if self.path:
            match["path"] = self.path
        if self.stream:
            match["stream"] = self.stream
        return {
            "id": self.id,
            "match": match,
            "action": self.action.as_dict(),
            "probability": self.probability,
            "count": self.count,
            "hits": self.hits,
        }


def _template_regex(template: str) -> re.Pattern[str]:
    """``/api/bot/{id}/`` -> a regex where each ``{name}`` matches one path segment; ``*`` any tail."""
    parts = re.split(r"(\{[^}/]+\}|\*)", template)
    out = []
    for part in parts:
        if part == "*":
            out.append(".*")
        elif part.startswith("{") and part.endswith("}"):
            out.append("[^/]+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))


def _name(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _number(obj: dict[str, Any], key: str, where: str, *, lo: float, hi: float, default: float) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(_name(where, key), f"must be a number between {lo} and {hi}, got {value!r}")
    if not lo <= value <= hi:
        raise FieldError(_name(where, key), f"must be between {lo} and {hi}, got {value}")
    return float(value)


def _integer(obj: dict[str, Any], key: str, where: str, *, lo: int, hi: int, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON does not distinguish 5 from 5.0
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(_name(where, key), f"must be an integer between {lo} and {hi}, got {value!r}")
    if not lo <= value <= hi:
        raise FieldError(_name(where, key), f"must be between {lo} and {hi}, got {value}")
    return value


# The keys each action type takes; anything else is refused so a typo never silently does nothing.
_ACTION_KEYS = {
    "status": {"status", "body", "headers"},
    "delay": {"distribution"},  # plus the keys of its distribution
    "empty": set(),
    "reset": set(),
    "close": {"code", "reason"},
    "stall": {"seconds"},
    "drop": set(),
    "corrupt": set(),
    "disconnect": set(),
}
_DELAY_KEYS = {"fixed": {"ms"}, "uniform": {"min_ms", "max_ms"}, "lognormal": {"median_ms", "sigma"}}
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
_HEADER_VALUE = re.compile(r"[ -~]{0,256}")
MAX_RULES = 1000


def _only_keys(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            choices = ", ".join(sorted(allowed)) or "none"
            raise FieldError(_name(where, str(key)), f"is not a known field here; allowed: {choices}")


def parse_action(raw: Any, *, stream: bool) -> FaultAction:
    if not isinstance(raw, dict):
        raise FieldError("action", "must be an object with a 'type'")
    allowed = STREAM_ACTIONS if stream else HTTP_ACTIONS
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        target = "a stream rule (match.stream)" if stream else "an HTTP rule (match.path)"
        raise FieldError("action.type", f"must be one of {', '.join(allowed)} for {target}, got {kind!r}")
    keys = _ACTION_KEYS[kind]
    dist = raw.get("distribution", "fixed")
    if kind == "delay":
        if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
            raise FieldError("action.distribution", f"must be one of {', '.join(DISTRIBUTIONS)}, got {dist!r}")
        keys = {"distribution"} | _DELAY_KEYS[dist]
    _only_keys(raw, keys | {"type"}, "action")
    match kind:
        case "status":
            headers = raw.get("headers", {})
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and _HEADER_NAME.fullmatch(k) and _HEADER_VALUE.fullmatch(v)
                for k, v in headers.items()
            ):
                raise FieldError(
                    "action.headers", "must map header names (letters, digits, '-') to printable ASCII values"
                )
            status = _integer(raw, "status", "action", lo=200, hi=599, default=500)
            return StatusAction(status=status, body=raw.get("body"), headers=headers)
        case "delay" if dist == "fixed":
            return DelayAction(dist, ms=_number(raw, "ms", "action", lo=0, hi=600_000, default=0))
        case "delay" if dist == "uniform":
            lo = _number(raw, "min_ms", "action", lo=0, hi=600_000, default=0)
            # Either order is accepted: the delay is drawn uniformly between the two bounds.
            return DelayAction(dist, min_ms=lo, max_ms=_number(raw, "max_ms", "action", lo=0, hi=600_000, default=lo))
        case "delay":
            return DelayAction(dist, median_ms=_number(raw, "median_ms", "action", lo=0, hi=600_000, default=100),
                               sigma=_number(raw, "sigma", "action", lo=0, hi=5, default=0.5))
        case "empty":
            return EmptyAction()
        case "reset":
            return ResetAction()
        case "close":
            code = _integer(raw, "code", "action", lo=1000, hi=4999, default=1011)
            reason = raw.get("reason", "")
            if not isinstance(reason, str) or len(reason) > 30:
                raise FieldError("action.reason", "must be a string of at most 30 characters")
            return CloseAction(code=code, reason=reason)
        case "stall":
            return StallAction(seconds=_number(raw, "seconds", "action", lo=0, hi=3600, default=1.0))
        case "drop":
            return DropAction()
        case "corrupt":
            return CorruptAction()
        case _:
            return DisconnectAction()


class RuleLimitReached(FieldError):
    """Too many rules (HTTP 409)."""


class FaultBook:
    """The rules of one emulator, with a seeded random source so fault runs are reproducible."""

    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._rng = random.Random(seed)
        # Senders in worker threads (ingest, push muxers) consult the book while the loop edits it.
        self._lock = threading.RLock()

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def add(self, raw: Any) -> FaultRule:
        """Validate a rule given as JSON and add it; raises FieldError naming the bad field."""
        if not isinstance(raw, dict):
            raise FieldError("body", "must be a JSON object with 'match' and 'action'")
        _only_keys(raw, {"id", "match", "action", "probability", "count"}, "")
        match = raw.get("match")
        if not isinstance(match, dict):
            raise FieldError("match", "must be an object with 'path' (and optional 'method') or 'stream'")
        path, stream, method = match.get("path"), match.get("stream"), match.get("method")
        if (path is None) == (stream is None):
            raise FieldError("match", "must name exactly one of 'path' (an operation) or 'stream' (a named stream)")
        _only_keys(match, {"path", "method"} if path is not None else {"stream"}, "match")
        if path is not None and (not isinstance(path, str) or not path.startswith("/") or len(path) > 512):
            raise FieldError("match.path", f"must be a path template starting with '/' (at most 512 characters), "
                                           f"got {path!r}")
        if stream is not None and (not isinstance(stream, str) or not 1 <= len(stream) <= 256):
            raise FieldError("match.stream", f"must be a stream name or glob of 1-256 characters, got {stream!r}")
        if "method" in match:
            if not isinstance(method, str) or method not in METHODS:
                raise FieldError("match.method", f"must be one of {', '.join(METHODS)}, got {method!r}")
        action = parse_action(raw.get("action"), stream=stream is not None)
        probability = _number(raw, "probability", "", lo=0, hi=1, default=1.0)
        count_raw = raw.get("count")
        count = None if count_raw is None else _integer(raw, "count", "", lo=1, hi=10**9, default=1)
        rule_id = raw.get("id")
        if "id" in raw and (not isinstance(rule_id, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", rule_id)):
            raise FieldError("id", "must be 1-64 characters of letters, digits, '_', '.' or '-'")
        with self._lock:
            return self._store(rule_id, action, method, path, stream, probability, count)

    def _store(self, rule_id: str | None, action: FaultAction, method: str | None, path: str | None,
               stream: str | None, probability: float, count: int | None) -> FaultRule:
        if rule_id is not None:
            self.remove(rule_id)  # the same id again replaces the rule, like a PUT
        if len(self._rules) >= MAX_RULES:
            raise RuleLimitReached("body", f"at most {MAX_RULES} fault rules; remove some first")
        rule = FaultRule(
            id=rule_id or f"fault-{next(self._ids)}",
            action=action,
            method=method,
            path=path,
            stream=stream,
            probability=probability,
            count=count,
            _path_re=_template_regex(path) if path else None,
        )
        self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        """Delete a rule; a stall it started ends now."""
        with self._lock:
            gone = [r for r in self._rules if r.id == rule_id]
            self._rules = [r for r in self._rules if r.id != rule_id]
        for rule in gone:
            rule.lift.set()
        return bool(gone)

    def clear(self) -> None:
        with self._lock:
            gone, self._rules = self._rules, []
        for rule in gone:
            rule.lift.set()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def _fire(self, rule: FaultRule) -> bool:
        if rule.count is not None and rule.count <= 0:
            return False
        if rule.probability < 1.0 and self._rng.random() >= rule.probability:
            return False
        rule.hits += 1
        if rule.count is not None:
            rule.count -= 1
        return True

    def for_request(self, method: str, path: str) -> FaultRule | None:
        """The first matching HTTP rule that fires for this request, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.matches_request(method, path) and self._fire(rule):
                    self._prune()
                    return rule
        return None

    def for_stream(self, stream: str) -> FaultRule | None:
        """Consulted by stream senders once per frame/chunk: the rule that fires now, if any."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.matches_stream(stream) and self._fire(rule):
                    self._prune()
                    return rule
        return None

    def _prune(self) -> None:
        self._rules = [r for r in self._rules if r.count is None or r.count > 0]

    def verdict(self, stream: str) -> tuple[FaultRule | None, StreamVerdict]:
        """The rule that fires for this frame/chunk of ``stream`` (if any) and the sender's verdict."""
        rule = self.for_stream(stream)
        return rule, verdict_for(rule)

    def delay_seconds(self, action: DelayAction) -> float:
        if action.distribution == "fixed":
            return action.ms / 1000.0
        with self._lock:
            return self._sample_delay(action)

    def _sample_delay(self, action: DelayAction) -> float:
        if action.distribution == "uniform":
            return self._rng.uniform(min(action.min_ms, action.max_ms), max(action.min_ms, action.max_ms)) / 1000.0
        return min(600.0, self._rng.lognormvariate(0.0, action.sigma) * action.median_ms / 1000.0)

    def corrupt(self, payload: bytes) -> bytes:
        """Kept for senders not yet on verdicts; same as ``corrupt_payload``."""
        return corrupt_payload(payload)
