"""Simulated meetings: scenarios (who joins when, who speaks, who shares), their script, and the meeting state.

Pure: times are scenario seconds from the moment the bot enters the call; the backend's schedule plays them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emulators.kit.errors import FieldError
from emulators.kit.fake_text import seeded_faker
from emulators.kit.resources import shelf
from emulators.kit.yaml_text import load_yaml

SCENARIO_DIR = shelf("recall")  # packaged scenarios + the scenario_dirs setting's recall/ folders
CLIENT_PLATFORMS = ("desktop", "dial-in", "mobile_app", "unknown")


@dataclass
class ScenarioParticipant:
    id: int
    name: str
    is_host: bool = False
    platform: str = "desktop"
    join_s: float = 0.0
    leave_s: float | None = None
    muted: list[tuple[float, float]] = field(default_factory=list)
    webcam_off: list[tuple[float, float]] = field(default_factory=list)  # camera off between the pair's times


@dataclass(frozen=True)
class ChatLine:
    participant: int
    at_s: float
    text: str
    to: str = "everyone"


@dataclass(frozen=True)
class Rename:
    """A participant updates their details (``participant_events.update``): here, the display name."""

    participant: int
    at_s: float
    name: str


@dataclass
class Interval:
    participant: int
    start_s: float
    end_s: float
    text: str | None = None  # speech script line for a speaking interval


@dataclass
class Scenario:
    name: str
    title: str
    duration_s: float
    participants: list[ScenarioParticipant]
    screenshares: list[Interval] = field(default_factory=list)
    speaking: list[Interval] = field(default_factory=list)
    chat: list[ChatLine] = field(default_factory=list)
    renames: list[Rename] = field(default_factory=list)
    meeting_urls: tuple[str, ...] = ()
    waiting_room_s: float = 0.0
    missing: bool = False
    # A looping meeting replays its speech/screenshare/mute script every duration_s and never ends by itself.
    loop: bool = False


def _num(raw: dict[str, Any], key: str, where: str, default: float | None = None) -> float | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FieldError(f"{where}.{key}", f"must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _interval(raw: Any, where: str, ids: set[int]) -> Interval:
    if not isinstance(raw, dict):
        raise FieldError(where, "must be an object with participant, start_s, end_s")
    participant = raw.get("participant")
    if participant not in ids:
        raise FieldError(f"{where}.participant", f"must be one of the scenario's participant ids {sorted(ids)}")
    start, end = _num(raw, "start_s", where, 0.0), _num(raw, "end_s", where)
    if end is None or start is None or end <= start:
        raise FieldError(f"{where}.end_s", f"must be a number greater than start_s ({start}), got {raw.get('end_s')!r}")
    text = raw.get("text")
    if text is not None and not isinstance(text, str):
        raise FieldError(f"{where}.text", "must be a string")
    return Interval(participant, start, end, text)


def _pairs(person: dict[str, Any], key: str, where: str) -> list[tuple[float, float]]:
    out = []
    for index, pair in enumerate(person.get(key, []) or []):
        ok = isinstance(pair, list | tuple) and len(pair) == 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        if not ok:
            raise FieldError(f"{where}.{key}[{index}]", "must be a [start_s, end_s] pair")
        out.append((float(pair[0]), float(pair[1])))
    return out


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise FieldError(f"{where}.{key}", f"must be a non-empty string, got {value!r}")
    return value


def _timed(raw: Any, where: str, ids: set[int]) -> tuple[int, float]:
    if not isinstance(raw, dict):
        raise FieldError(where, "must be an object with participant and at_s")
    participant = raw.get("participant")
    if participant not in ids:
        raise FieldError(f"{where}.participant", f"must be one of the scenario's participant ids {sorted(ids)}")
    return participant, _num(raw, "at_s", where, 0.0) or 0.0


def _chat(raw: Any, where: str, ids: set[int]) -> ChatLine:
    participant, at_s = _timed(raw, where, ids)
    to = raw.get("to", "everyone")
    if not isinstance(to, str) or not to:
        raise FieldError(f"{where}.to", f"must be a non-empty string, got {to!r}")
    return ChatLine(participant, at_s, _text(raw, "text", where), to)


def _rename(raw: Any, where: str, ids: set[int]) -> Rename:
    participant, at_s = _timed(raw, where, ids)
    return Rename(participant, at_s, _text(raw, "name", where))


class _Placeholders:
    """Stands in for Faker while a scenario is only checked (``parse_scenario(..., checking=True)``): the same
    calls, fixed words."""

    def name(self) -> str:
        return "Participant"

    def sentence(self, nb_words: int = 6) -> str:
        return "Words."

    def catch_phrase(self) -> str:
        return "Meeting"


def parse_scenario(raw: Any, *, seed: int, name: str = "custom", checking: bool = False) -> Scenario:
    """A Scenario from a fixture or control-plane dict; missing names come from a seeded Faker (``checking``: only
    check it, with placeholder words, which needs no Faker)."""
    if not isinstance(raw, dict):
        raise FieldError("scenario", "must be an object")
    name = str(raw.get("name", name))
    # Names depend on the seed and the scenario only, so every bot in the same scenario sees the same people.
    faker: Any = _Placeholders() if checking else seeded_faker(
        seed ^ int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    participants = []
    raw_people = raw.get("participants", [])
    if not isinstance(raw_people, list):
        raise FieldError("participants", "must be a list")
    for index, person in enumerate(raw_people):
        where = f"participants[{index}]"
        if not isinstance(person, dict):
            raise FieldError(where, "must be an object")
        pid = person.get("id", 100 * (index + 1))
        if isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid < 2**16:
            raise FieldError(f"{where}.id", f"must be an integer in 1..65535, got {pid!r}")
        platform = person.get("platform", "desktop")
        if platform not in CLIENT_PLATFORMS:
            raise FieldError(f"{where}.platform", f"must be one of {', '.join(CLIENT_PLATFORMS)}, got {platform!r}")
        generated = faker.name()
        participants.append(
            ScenarioParticipant(
                id=pid,
                name=str(person.get("name") or generated),
                is_host=bool(person.get("is_host", index == 0)),
                platform=platform,
                join_s=_num(person, "join_s", where, 0.0) or 0.0,
                leave_s=_num(person, "leave_s", where),
                muted=_pairs(person, "muted", where),
                webcam_off=_pairs(person, "webcam_off", where),
            )
        )
    ids = {p.id for p in participants}
    if len(ids) != len(participants):
        raise FieldError("participants", "ids must be unique within a meeting")
    screenshares = [_interval(r, f"screenshares[{i}]", ids) for i, r in enumerate(raw.get("screenshares", []) or [])]
    speaking = [_interval(r, f"speaking[{i}]", ids) for i, r in enumerate(raw.get("speaking", []) or [])]
    for interval in speaking:
        if interval.text is None:
            interval.text = faker.sentence(nb_words=max(3, int(interval.end_s - interval.start_s) * 2))
    chat = [_chat(r, f"chat[{i}]", ids) for i, r in enumerate(raw.get("chat", []) or [])]
    renames = [_rename(r, f"renames[{i}]", ids) for i, r in enumerate(raw.get("renames", []) or [])]
    loop = raw.get("loop", False)
    if not isinstance(loop, bool):
        raise FieldError("scenario.loop", f"must be true or false, got {loop!r}")
    urls = raw.get("meeting_urls", []) or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise FieldError("meeting_urls", "must be a list of meeting URL strings")
    return Scenario(
        name=name,
        title=str(raw.get("title") or faker.catch_phrase()),
        duration_s=_num(raw, "duration_s", "scenario", 60.0) or 60.0,
        participants=participants,
        screenshares=screenshares,
        speaking=speaking,
        chat=chat,
        renames=renames,
        meeting_urls=tuple(urls),
        waiting_room_s=_num(raw, "waiting_room_s", "scenario", 0.0) or 0.0,
        missing=bool(raw.get("missing", False)),
        loop=loop,
    )


class Scenarios(MutableMapping[str, Scenario]):
    """Scenarios by name. The fixture files are read and checked when loaded (a bad file fails the start); each is
    built, with its invented names and words from a seeded Faker, when first used: Faker's import and first
    instance cost more than the rest of Recall's start."""

    def __init__(self) -> None:
        self._entries: dict[str, Scenario | Callable[[], Scenario]] = {}  # built, or how to build it

    def add_pending(self, name: str, build: Callable[[], Scenario]) -> None:
        self._entries[name] = build

    def __getitem__(self, name: str) -> Scenario:
        entry = self._entries[name]
        if not isinstance(entry, Scenario):
            entry = self._entries[name] = entry()
        return entry

    def __setitem__(self, name: str, scenario: Scenario) -> None:
        self._entries[name] = scenario

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:  # without building it (Mapping's own would)
        return name in self._entries


def load_scenarios(directory: Path = SCENARIO_DIR, *, seed: int = 0) -> Scenarios:
    """Every fixture scenario by name (YAML or JSON files), checked now and built at first use."""
    out = Scenarios()
    for path in sorted(directory.glob("*")):
        if path.suffix in (".yaml", ".yml"):
            raw = load_yaml(path.read_text())
        elif path.suffix == ".json":
            raw = json.loads(path.read_text())
        else:
            continue
        name = parse_scenario(raw, seed=seed, name=path.stem, checking=True).name
        out.add_pending(name, functools.partial(parse_scenario, raw, seed=seed, name=path.stem))
    return out


def scenario_for(url: str, scenarios: Mapping[str, Scenario], default: str = "default") -> Scenario:
    """The scenario whose ``meeting_urls`` list this URL (query string ignored), else the default one."""
    bare = url.split("?", 1)[0].rstrip("/")
    for scenario in scenarios.values():
        if any(u.split("?", 1)[0].rstrip("/") == bare for u in scenario.meeting_urls):
            return scenario
    return scenarios[default]


# ----- the meeting as it happens ------------------------------------------------------------------------
@dataclass(frozen=True)
class MeetingEvent:
    """Something that happens in the meeting; ``code`` uses the participant event vocabulary."""

    at_s: float
    # join, leave, update, speech_on, speech_off, webcam_on, webcam_off, screenshare_on, screenshare_off,
    # chat_message, mute, unmute, end
    code: str
    participant: int | None = None
    text: str | None = None  # speech_off: the words; chat_message: the message; update: the new name
    interval_s: tuple[float, float] | None = None
    to: str | None = None  # chat_message: the recipient


_ORDER = {"leave": 0, "speech_off": 1, "screenshare_off": 2, "webcam_off": 3, "mute": 4, "unmute": 5, "join": 6,
          "update": 7, "webcam_on": 8, "screenshare_on": 9, "speech_on": 10, "chat_message": 11, "end": 12}


def timeline(scenario: Scenario) -> list[MeetingEvent]:
    """Every scheduled event of a scenario, in time order (ties: leaves before joins, end last)."""
    events = []
    for p in scenario.participants:
        events.append(MeetingEvent(p.join_s, "join", p.id))
        if p.leave_s is not None:
            events.append(MeetingEvent(p.leave_s, "leave", p.id))
        for start, end in p.muted:
            events.append(MeetingEvent(start, "mute", p.id))
            events.append(MeetingEvent(end, "unmute", p.id))
        for start, end in p.webcam_off:
            events.append(MeetingEvent(start, "webcam_off", p.id))
            events.append(MeetingEvent(end, "webcam_on", p.id))
    for share in scenario.screenshares:
        events.append(MeetingEvent(share.start_s, "screenshare_on", share.participant))
        events.append(MeetingEvent(share.end_s, "screenshare_off", share.participant))
    for talk in scenario.speaking:
        events.append(MeetingEvent(talk.start_s, "speech_on", talk.participant))
        events.append(
            MeetingEvent(talk.end_s, "speech_off", talk.participant, talk.text, (talk.start_s, talk.end_s))
        )
    events.extend(MeetingEvent(c.at_s, "chat_message", c.participant, c.text, to=c.to) for c in scenario.chat)
    events.extend(MeetingEvent(r.at_s, "update", r.participant, r.name) for r in scenario.renames)
    events.append(MeetingEvent(scenario.duration_s, "end"))
    return sorted(events, key=lambda e: (e.at_s, _ORDER[e.code]))


# What a looping meeting replays each cycle; joins, leaves and renames happen once (controls may change who
# is present).
LOOPED_CODES = frozenset({"speech_on", "speech_off", "screenshare_on", "screenshare_off", "mute", "unmute",
                          "webcam_on", "webcam_off", "chat_message"})


def _event_key(event: MeetingEvent) -> tuple[float, int]:
    return event.at_s, _ORDER[event.code]


class Script:
    """A scenario's timeline as it plays: the events due by a scenario time, and when the next one is due.

    A looping scenario has no ``end``: its speech, screenshare and mute intervals repeat every ``duration_s``
    (cycle k shifted by k x duration_s), generated as they come due; ``repeat=False`` plays one cycle.
    """

    def __init__(self, scenario: Scenario, *, repeat: bool = True) -> None:
        events = timeline(scenario)
        self.duration_s = scenario.duration_s
        if scenario.loop and repeat and self.duration_s > 0:
            self._cycle = [e for e in events if e.code in LOOPED_CODES]
            self._queue = [e for e in events if e.code not in LOOPED_CODES and e.code != "end"]
        else:
            # A looping meeting that cannot repeat (no time passes at time scale 0) plays once, without an end.
            self._cycle, self._queue = [], [e for e in events if not (scenario.loop and e.code == "end")]
        self._cycles = 0

    def _fill(self, until_s: float) -> None:
        # Every cycle that starts by until_s is queued, so nothing due by then can be missing from the queue.
        while self._cycle and self._cycles * self.duration_s <= until_s:
            offset = self._cycles * self.duration_s
            self._queue.extend(_shifted(e, offset) for e in self._cycle)
            self._cycles += 1
        self._queue.sort(key=_event_key)

    def next_at(self) -> float | None:
        """The scenario time of the next event, None when the script is over."""
        if not self._queue:
            self._fill(self._cycles * self.duration_s)
        return self._queue[0].at_s if self._queue else None

    def pop_due(self, scenario_s: float) -> list[MeetingEvent]:
        """Every event due at or before ``scenario_s``, in order, removed from the script."""
        self._fill(scenario_s)
        due = 0
        while due < len(self._queue) and self._queue[due].at_s <= scenario_s:
            due += 1
        out, self._queue = self._queue[:due], self._queue[due:]
        return out


def _shifted(event: MeetingEvent, offset: float) -> MeetingEvent:
    if not offset:
        return event
    interval = event.interval_s
    return replace(event, at_s=event.at_s + offset,
                   interval_s=None if interval is None else (interval[0] + offset, interval[1] + offset))


def script_line(scenario: Scenario, participant: int | None, start_s: float, end_s: float) -> str | None:
    """The scripted words of a speech that ran from ``start_s`` to ``end_s`` (looping scenarios fold time)."""
    if scenario.loop and scenario.duration_s > 0:
        cycle = start_s // scenario.duration_s * scenario.duration_s
        start_s, end_s = start_s - cycle, end_s - cycle
    return next((t.text for t in scenario.speaking if t.participant == participant and t.start_s <= end_s <= t.end_s
                 and t.text), None)


@dataclass
class Meeting:
    """Who is in the call, who speaks, who shares, who is muted; changed by timeline events and controls."""

    scenario: Scenario
    roster: dict[int, ScenarioParticipant] = field(default_factory=dict)
    present: dict[int, ScenarioParticipant] = field(default_factory=dict)
    speaking: list[int] = field(default_factory=list)  # most recent speaker last
    sharing: list[int] = field(default_factory=list)
    muted: set[int] = field(default_factory=set)
    camera_off: set[int] = field(default_factory=set)
    ended: bool = False
    last_speaker: int | None = None

    def __post_init__(self) -> None:
        self.roster = {p.id: p for p in self.scenario.participants}

    @property
    def active_speaker(self) -> ScenarioParticipant | None:
        """The current speaker; before anyone speaks, the host (then the first present participant)."""
        for pid in reversed(self.speaking):
            if pid in self.present:
                return self.present[pid]
        if self.last_speaker in self.present:
            return self.present[self.last_speaker]
        hosts = [p for p in self.present.values() if p.is_host]
        if hosts:
            return hosts[0]
        return next(iter(self.present.values()), None)

    @property
    def screensharing(self) -> bool:
        return bool(self.sharing)

    def apply(self, event: MeetingEvent) -> bool:
        """Apply one event; False when it changes nothing (a leave of someone absent, a duplicate share)."""
        pid = event.participant
        if event.code == "end":
            if self.ended:
                return False
            self.ended = True
            return True
        if pid is None or pid not in self.roster:
            return False
        person = self.roster[pid]
        if event.code == "join":
            if pid in self.present:
                return False
            self.present[pid] = person
            return True
        if pid not in self.present:
            return False
        if event.code == "leave":
            self.present.pop(pid)
            self.camera_off.discard(pid)
            self.speaking = [s for s in self.speaking if s != pid]
            self.sharing = [s for s in self.sharing if s != pid]
            return True
        if event.code == "speech_on":
            if pid in self.speaking:
                return False
            self.speaking.append(pid)
            self.last_speaker = pid
            return True
        if event.code == "speech_off":
            if pid not in self.speaking:
                return False
            self.speaking.remove(pid)
            return True
        if event.code == "screenshare_on":
            if pid in self.sharing:
                return False
            self.sharing.append(pid)
            return True
        if event.code == "screenshare_off":
            if pid not in self.sharing:
                return False
            self.sharing.remove(pid)
            return True
        if event.code in ("webcam_on", "webcam_off"):
            was_off = pid in self.camera_off
            if (event.code == "webcam_off") == was_off:
                return False
            self.camera_off.symmetric_difference_update({pid})
            return True
        if event.code == "chat_message":
            return True
        if event.code == "update":
            if not event.text or event.text == person.name:
                return False
            renamed = replace(person, name=event.text)
            self.roster[pid] = self.present[pid] = renamed
            return True
        if event.code == "mute":
            if pid in self.muted:
                return False
            self.muted.add(pid)
            return True
        if event.code == "unmute":
            if pid not in self.muted:
                return False
            self.muted.discard(pid)
            return True
        return False

    def add_participant(self, person: ScenarioParticipant) -> None:
        if person.id in self.roster:
            raise FieldError("id", f"participant {person.id} is already part of this meeting")
        self.roster[person.id] = person

    def audible(self) -> list[int]:
        """Participants whose voice is heard now: speaking, present and not muted."""
        return [p for p in self.speaking if p in self.present and p not in self.muted]
