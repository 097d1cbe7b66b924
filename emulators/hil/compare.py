"""Field-by-field comparison of a recorded answer with the emulator's: status, chosen headers, JSON structure,
media by decoded properties, WebSocket message sequences and close codes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from emulators.hil.cassette import Exchange, Message
from emulators.hil.media_props import decoded_properties, is_media
from emulators.hil.redact import PLACEHOLDER
from emulators.hil.rules import ParityRules

ABSENT = "<absent>"


@dataclass
class Difference:
    index: int  # position of the exchange among the cassette's device exchanges
    request: str  # the exchange's label, e.g. "GET /cameras/"
    where: str  # "status", "header Content-Type", "body detail.0.msg", "message 3 data.type", "close code"
    recorded: Any
    emulator: Any
    explained: str | None = None  # the reason given by the parity file's `known` rule, if one matches

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "request": self.request, "where": self.where, "recorded": self.recorded,
                "emulator": self.emulator, "explained": self.explained}


@dataclass
class Answer:
    """What the emulator answered to a replayed exchange."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    messages: list[Message] | None = None
    close_code: int | None = None
    closed_by: str | None = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class Comparer:
    def __init__(self, rules: ParityRules) -> None:
        self.rules = rules
        self.ignored = 0  # how many differing fields an ignore rule covered
        # Ids the device minted and the emulator minted in their place (an ignored field, both strings), so a
        # later request that names the device's id can name the emulator's instead.
        self.learned: dict[str, str] = {}

    def exchange(self, index: int, recorded: Exchange, answer: Answer) -> list[Difference]:
        label = recorded.label()
        found: list[tuple[str, Any, Any]] = []
        if recorded.status != answer.status:
            found.append(("status", recorded.status, answer.status))
        for name in self.rules.headers:
            if name.lower() == "location":
                ours, theirs = _location_path(recorded.header(name)), _location_path(answer.header(name))
            else:
                ours, theirs = recorded.header(name), answer.header(name)
            if ours != theirs and ours != PLACEHOLDER:
                found.append((f"header {name}", ours if ours is not None else ABSENT,
                              theirs if theirs is not None else ABSENT))
        if recorded.is_websocket:
            found += self._messages(label, recorded.messages or [], answer.messages or [])
            if recorded.close_code != answer.close_code:
                found.append(("close code", recorded.close_code, answer.close_code))
            if recorded.closed_by != answer.closed_by:
                found.append(("closed by", recorded.closed_by, answer.closed_by))
        else:
            found += self._payload(label, "body", recorded.response_body, recorded.header("Content-Type") or "",
                                   answer.body, answer.header("Content-Type") or "")
        out = []
        for where, ours, theirs in found:
            rule = self.rules.explanation(label, where)
            out.append(Difference(index, label, where, ours, theirs, (rule.why or "known") if rule else None))
        return out

    def dial_outs(self, index: int, field: str, recorded: list[Exchange], observed: list[Exchange]
                  ) -> list[Difference]:
        """The calls the emulator made to one receiver field, compared in order with the recorded ones."""
        found: list[tuple[str, str, Any, Any]] = []
        label = recorded[0].label() if recorded else f"DIAL {field}"
        prefix = f"dial-out {field}"
        if len(recorded) != len(observed):
            found.append((label, f"{prefix} calls", len(recorded), len(observed)))
        for k, (ours, theirs) in enumerate(zip(recorded, observed, strict=False)):
            where = f"{prefix} #{k}"
            if ours.is_websocket != theirs.is_websocket or ours.method != theirs.method:
                found.append((label, f"{where} kind", ours.label(), theirs.label()))
                continue
            if ours.is_websocket:
                found += [(label, f"{where} {w}", a, b) for w, a, b in
                          self._messages(label, ours.messages or [], theirs.messages or [], direction="send")]
                if ours.close_code != theirs.close_code:
                    found.append((label, f"{where} close code", ours.close_code, theirs.close_code))
                if ours.closed_by != theirs.closed_by:
                    found.append((label, f"{where} closed by", ours.closed_by, theirs.closed_by))
            else:
                a = _as_json(ours.request_body, ours.header("Content-Type", response=False) or "")
                b = _as_json(theirs.request_body, theirs.header("Content-Type", response=False) or "")
                found += [(label, f"{where} {w}", x, y) for w, x, y in
                          self._payload(label, "body", a, "", b, "")]
        out = []
        for label_, where, ours_, theirs_ in found:
            rule = self.rules.explanation(label_, where)
            out.append(Difference(index, label_, where, ours_, theirs_, (rule.why or "known") if rule else None))
        return out

    def media(self, index: int, recorded: Exchange, facts: dict[str, Any] | str) -> list[Difference]:
        """A stream captured from the emulator against the recorded capture: the SDP's media formats, the
        remuxed streams' decoded properties, and per RTP channel payload type, clock rate and frame rate."""
        label = recorded.label()
        ours = recorded.media or {}
        found: list[tuple[str, Any, Any]] = []
        if isinstance(facts, str):
            found.append(("media capture", "captured", facts))
        else:
            if recorded.response_body:
                a = _sdp_formats(recorded.response_body.decode("utf-8", "replace"))
                b = _sdp_formats(facts.get("sdp", ""))
                if a != b:
                    found.append(("media sdp formats", a, b))
            a_streams = ours.get("remux", {}).get("properties", {}).get("streams", [])
            b_streams = facts.get("remux", {}).get("properties", {}).get("streams", [])
            if len(a_streams) != len(b_streams):
                found.append(("media streams", len(a_streams), len(b_streams)))
            for n, (x, y) in enumerate(zip(a_streams, b_streams, strict=False)):
                for key in sorted(set(x) | set(y)):
                    if key == "duration_s":  # how long the capture ran, not a property of the stream
                        continue
                    if not _close(key, x.get(key), y.get(key)):
                        found.append((f"media stream {n} {key}", x.get(key, ABSENT), y.get(key, ABSENT)))
            for n, (x, y) in enumerate(zip(ours.get("rtp", {}).values(), facts.get("rtp", {}).values(),
                                           strict=False)):
                for key in ("payload_type", "clock_rate", "frame_rate"):
                    if not _close(key, x.get(key), y.get(key)):
                        found.append((f"media rtp {n} {key}", x.get(key), y.get(key)))
        out = []
        for where, a_, b_ in found:
            rule = self.rules.explanation(label, where)
            out.append(Difference(index, label, where, a_, b_, (rule.why or "known") if rule else None))
        return out

    def _payload(self, label: str, where: str, ours: bytes, our_type: str, theirs: bytes, their_type: str
                 ) -> list[tuple[str, Any, Any]]:
        if ours == theirs:
            return []
        our_json, their_json = _json(ours), _json(theirs)
        if our_json is not _NOT_JSON and their_json is not _NOT_JSON:
            return [(f"{where} {p}".rstrip(), a, b) for p, a, b in self._json_diff(label, "", our_json, their_json)]
        if is_media(our_type) or is_media(their_type) or _binary(ours) or _binary(theirs):
            a, b = decoded_properties(ours), decoded_properties(theirs)
            return [(f"{where} media {p}".rstrip(), x, y) for p, x, y in self._json_diff(label, "", a, b, ignore=False)]
        return [(where, _clip(ours.decode("utf-8", "replace")), _clip(theirs.decode("utf-8", "replace")))]

    def _json_diff(self, label: str, path: str, a: Any, b: Any, *, ignore: bool = True) -> list[tuple[str, Any, Any]]:
        if ignore and path and self.rules.ignored(label, path):
            if a != b:
                self.ignored += 1
                if isinstance(a, str) and isinstance(b, str) and len(a) >= 6 and " " not in a and a != PLACEHOLDER:
                    self.learned[a] = b
            return []
        if a == PLACEHOLDER:
            return []
        if isinstance(a, dict) and isinstance(b, dict):
            out = []
            for key in list(a) + [k for k in b if k not in a]:
                sub = f"{path}.{key}" if path else str(key)
                if key not in b:
                    if not (ignore and self.rules.ignored(label, sub)):
                        out.append((sub, _clip(a[key]), ABSENT))
                elif key not in a:
                    if not (ignore and self.rules.ignored(label, sub)):
                        out.append((sub, ABSENT, _clip(b[key])))
                else:
                    out += self._json_diff(label, sub, a[key], b[key], ignore=ignore)
            return out
        if isinstance(a, list) and isinstance(b, list):
            out = []
            for i in range(max(len(a), len(b))):
                sub = f"{path}.{i}" if path else str(i)
                if i >= len(b):
                    out.append((sub, _clip(a[i]), ABSENT))
                elif i >= len(a):
                    out.append((sub, ABSENT, _clip(b[i])))
                else:
                    out += self._json_diff(label, sub, a[i], b[i], ignore=ignore)
            return out
        if a != b or type(a) is not type(b):
            return [(path, _clip(a), _clip(b))]
        return []

    def _messages(self, label: str, ours: list[Message], theirs: list[Message], direction: str = "receive"
                  ) -> list[tuple[str, Any, Any]]:
        """The device's messages, compared as runs of one kind (``connected``, ``start``, ``media`` x 50, ``stop``).

        Runs must come in the same order; a run's length may differ by the parity file's tolerance (a live
        stream stopped a few ms later has a few more frames), and messages are compared pairwise within runs.
        """
        a = [m for m in ours if m.direction == direction]
        b = [m for m in theirs if m.direction == direction]
        a_runs, b_runs = _runs(a), _runs(b)
        found: list[tuple[str, Any, Any]] = []
        pairs: list[tuple[int, Message, Message]] = []
        if [k for k, _ in a_runs] == [k for k, _ in b_runs]:
            position = 0
            for (kind, xs), (_, ys) in zip(a_runs, b_runs, strict=True):
                if abs(len(xs) - len(ys)) > int(len(xs) * self.rules.ws_count_tolerance):
                    found.append((f"messages {kind} count", len(xs), len(ys)))
                pairs += [(position + n, x, y) for n, (x, y) in enumerate(zip(xs, ys, strict=False))]
                position += len(xs)
        else:
            found.append(("message kinds", _summary(a_runs), _summary(b_runs)))
            pairs = [(n, x, y) for n, (x, y) in enumerate(zip(a, b, strict=False))]
        for n, x, y in pairs:
            if x.opcode != y.opcode:
                found.append((f"message {n} opcode", x.opcode, y.opcode))
                continue
            kind = "" if x.opcode == 1 else "application/octet-stream"
            found += self._payload(label, f"message {n}", x.data, kind, y.data, kind)
        return found


def _kind(message: Message) -> str:
    if message.opcode != 1:
        return "binary"
    document = _json(message.data)
    if isinstance(document, dict):
        for key in ("event", "type", "Operation", "eventName"):
            if isinstance(document.get(key), str):
                return f"{key}={document[key]}"
        return "{" + ",".join(sorted(document)) + "}"
    return "text"


def _runs(messages: list[Message]) -> list[tuple[str, list[Message]]]:
    runs: list[tuple[str, list[Message]]] = []
    for m in messages:
        kind = _kind(m)
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(m)
        else:
            runs.append((kind, [m]))
    return runs


def _summary(runs: list[tuple[str, list[Message]]]) -> str:
    return ", ".join(kind if len(ms) == 1 else f"{kind} x{len(ms)}" for kind, ms in runs)


_NOT_JSON = object()


def _json(data: bytes) -> Any:
    if not data.strip() or data.lstrip()[:1] not in b'{["0123456789-tfn':
        return _NOT_JSON
    try:
        return json.loads(data)
    except ValueError:
        return _NOT_JSON


def _as_json(body: bytes, content_type: str) -> bytes:
    """Form bodies (status callbacks) as JSON objects, so they are compared field by field like JSON."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        return json.dumps(dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))).encode()
    return body


def _sdp_formats(sdp: str) -> list[str]:
    """Each media section as "video H264/90000": what a player negotiates (not addresses, versions, ssrc)."""
    formats, kind = [], ""
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        elif line.startswith("a=rtpmap:"):
            formats.append(f"{kind} {line.split(' ', 1)[1].strip()}")
    return formats


def _close(key: str, a: Any, b: Any) -> bool:
    """Rates compare within 10 % (a live frame rate measured over a second or two); everything else exactly."""
    if key == "frame_rate" and isinstance(a, int | float) and isinstance(b, int | float) and a:
        return abs(a - b) / a <= 0.1
    return bool(a == b)


def _binary(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _location_path(value: str | None) -> str | None:
    """A Location is compared by where it points on the device, not by the host it names."""
    if value is None:
        return None
    parts = urlsplit(value)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _clip(value: Any, limit: int = 300) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"... ({len(value)} chars)"
    if isinstance(value, dict | list):
        text = json.dumps(value)
        return value if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
    return value
