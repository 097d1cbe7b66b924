"""Events and alerts: keyword matching of event prompts against index text, and the alert payload shapes.

Matching is pure; delivery (WebSocket channel and ``callback_url`` webhook) is done by the device, which
owns the queues and the outbound session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STOP_WORDS = frozenset(
    "a an the is are was were be been being of in on at to for from with by and or not no any some this that "
    "these those there here it its into onto over under detect when if then who what which while as than "
    "someone something person's has have had do does did can could should would will shall may might".split()
)
FIRE_THRESHOLD = 0.5


def tokens(text: str) -> list[str]:
    """Lowercase word tokens without stop-words, with a plural 's' dropped so 'people'/'trolleys' meet."""
    out = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOP_WORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


@dataclass(frozen=True)
class Match:
    overlap: float
    matched: tuple[str, ...]

    @property
    def fires(self) -> bool:
        return self.overlap >= FIRE_THRESHOLD

    @property
    def confidence(self) -> float:
        return round(0.5 + 0.49 * self.overlap, 2)


def match_event(prompt: str, text: str) -> Match:
    """How much of the event prompt the text covers: matched prompt tokens / prompt tokens."""
    wanted = list(dict.fromkeys(tokens(prompt)))
    if not wanted:
        return Match(0.0, ())
    have = set(tokens(text))
    matched = tuple(w for w in wanted if w in have)
    return Match(len(matched) / len(wanted), matched)


def explanation(label: str, match: Match, text: str) -> str:
    words = ", ".join(repr(w) for w in match.matched)
    return f"The scene analysis mentions {words}, which matches the event '{label}': \"{text[:200]}\""


def iso_with_offset(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat()


@dataclass(frozen=True)
class AlertFiring:
    """One alert fired by one index record; renders both the webhook body and the WebSocket frame."""

    alert_id: str
    event_id: str
    label: str
    rtstream_id: str
    rtstream_name: str
    index_id: str
    callback_url: str | None
    ws_connection_id: str | None
    text: str
    confidence: float
    explanation: str
    timestamp: float
    start: float
    end: float
    stream_url: str
    player_url: str

    def webhook_body(self, *, times_as_seconds: bool = False) -> dict[str, Any]:
        start: Any = self.start if times_as_seconds else iso_with_offset(self.start)
        end: Any = self.end if times_as_seconds else iso_with_offset(self.end)
        return {
            "event_id": f"event-{self.event_id}",
            "label": self.label,
            "confidence": self.confidence,
            "explanation": self.explanation,
            "timestamp": iso_with_offset(self.timestamp),
            "start_time": start,
            "end_time": end,
            "stream_url": self.stream_url,
            "player_url": self.player_url,
        }

    def ws_message(self) -> dict[str, Any]:
        # The superset of the three documented shapes, so every known listener finds its keys.
        return {
            "channel": "alert",
            "alert_id": self.alert_id,
            "rtstream_id": self.rtstream_id,
            "rtstream_name": self.rtstream_name,
            "index_id": self.index_id,
            "data": {
                "event_id": f"event-{self.event_id}",
                "label": self.label,
                "event_label": self.label,
                "text": self.text,
                "explanation": self.explanation,
                "confidence": self.confidence,
                "triggered": True,
                "timestamp": int(self.timestamp * 1000),
                "start": int(self.start * 1000),
                "end": int(self.end * 1000),
                "stream_url": self.stream_url,
                "player_url": self.player_url,
            },
        }
