"""Scenario controls (``POST /_emulator/scenario/<name>``): parse the JSON body, call the service, render."""

from __future__ import annotations

from typing import Any

from emulators.kit.emulator import ScenarioControl
from emulators.kit.errors import FieldError
from emulators.signalwire.errors import InvalidRequest
from emulators.signalwire.model import Conference, Participant, ParticipantStatus, validate_dtmf
from emulators.signalwire.service import ConferenceService


class ConferenceControls:
    """The six controls that move a conference the way people on a call would."""

    def __init__(self, service: ConferenceService) -> None:
        self.service = service
        self.backend = service.backend

    def controls(self) -> dict[str, ScenarioControl]:
        return {
            "create_conference": self.create_conference,
            "add_participant": self.add_participant,
            "remove_participant": self.remove_participant,
            "set_speaker": self.set_speaker,
            "end_conference": self.end_conference,
            "press_dtmf": self.press_dtmf,
        }

    def _conference(self, body: dict[str, Any]) -> Conference:
        sid = body.get("conference_sid")
        if not isinstance(sid, str) or sid not in self.backend.conferences:
            known = ", ".join(self.backend.conferences) or "none"
            raise FieldError("conference_sid", f"must name an existing conference; known: {known}")
        return self.backend.conferences[sid]

    def _participant(self, conference: Conference, body: dict[str, Any]) -> Participant:
        call_sid = body.get("call_sid")
        participant = conference.participants.get(call_sid) if isinstance(call_sid, str) else None
        if participant is None or participant.status != ParticipantStatus.IN_PROGRESS:
            active = ", ".join(p.call_sid for p in conference.active_participants()) or "none"
            raise FieldError("call_sid", f"must name an active participant of {conference.sid}; active: {active}")
        return participant

    async def create_conference(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.service.create_conference(body, where="body").as_json()

    async def add_participant(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._conference(body)
        spec = {k: v for k, v in body.items() if k != "conference_sid"}
        return (await self.service.add_participant(conference, spec, where="body")).as_json()

    async def remove_participant(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._conference(body)
        participant = self._participant(conference, body)
        self.service.remove_participant(conference, participant)
        return {"participant": participant.as_json(), "conference_status": conference.status.value}

    async def set_speaker(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._conference(body)
        participant = self._participant(conference, body)
        speaking = body.get("speaking", True)
        if speaking is not None and not isinstance(speaking, bool):
            raise FieldError("speaking", "must be true (speaks now), false (silent) or null (follow the timeline)")
        self.backend.set_speaker(participant, speaking)
        return {"call_sid": participant.call_sid, "speaking": speaking}

    async def end_conference(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._conference(body)
        ended = self.service.end_conference(conference)
        return {"conference": conference.as_json(), "stopped_streams": [s.sid for s in ended]}

    async def press_dtmf(self, body: dict[str, Any]) -> dict[str, Any]:
        conference = self._conference(body)
        try:
            digit, duration = validate_dtmf(body.get("digit"), body.get("duration_ms", 200))
        except InvalidRequest as exc:
            raise FieldError(exc.field or "digit", exc.message) from None
        count = self.service.press_dtmf(conference, digit, duration)
        return {"digit": digit, "duration_ms": duration, "streams": count}
