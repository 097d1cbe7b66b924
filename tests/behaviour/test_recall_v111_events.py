"""Every documented v1.11 real-time event comes out of the meeting scenario: joins of people already in the
call, updates, webcam toggles, chat messages, and a partial transcript before each final one."""

from __future__ import annotations

from clients.recall import RealtimeReceiver, RecallClient
from emulators.recall.device import DEV_API_KEY
from tests.conftest import EmulatorFactory

MEET = "https://meet.google.com/eve-ryev-ent"
# Scenario seconds x the test time scale. Ann and Bo are in the call before the bot records.
SCENARIO = {
    "name": "every-event", "meeting_urls": [MEET], "duration_s": 1000,
    "participants": [{"id": 100, "is_host": True, "name": "Ann Host"},
                     {"id": 200, "name": "Bo Guest", "webcam_off": [[12, 14]]}],
    "speaking": [{"participant": 100, "start_s": 3, "end_s": 10, "text": "hello there everyone"}],
    "chat": [{"participant": 100, "at_s": 15, "text": "notes are in the doc"}],
    "renames": [{"participant": 200, "at_s": 16, "name": "Bo (away)"}],
}
EVENTS = ["participant_events.join", "participant_events.update", "participant_events.webcam_on",
          "participant_events.webcam_off", "participant_events.chat_message", "transcript.partial_data",
          "transcript.data"]


async def test_a_realtime_endpoint_gets_every_documented_event_of_the_meeting(
    emulator_factory: EmulatorFactory,
) -> None:
    emu = await emulator_factory("recall", settings={"retry_interval_s": 0.05})
    await emu.scenario_controls["load_scenario"]({"scenario": SCENARIO})
    async with RealtimeReceiver() as receiver, RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(MEET, recording_config={
            "participant_events": {}, "transcript": {},
            "realtime_endpoints": [{"type": "websocket", "url": receiver.url, "events": EVENTS}]})
        await receiver.wait_for(lambda: bool(receiver.of("participant_events.update")), timeout_s=10)
        await client.leave_call(bot["id"])
    order = [e.event for e in receiver.events]
    assert set(order) == set(EVENTS) and not receiver.errors
    joins = receiver.of("participant_events.join")
    assert sorted(e.payload["participant"]["id"] for e in joins) == [100, 200]
    assert all(e.payload["timestamp"]["relative"] == 0.0 for e in joins)  # present before recording began
    assert order.index("transcript.partial_data") < order.index("transcript.data")
    partial, final = receiver.of("transcript.partial_data")[0], receiver.of("transcript.data")[0]
    assert [w["text"] for w in partial.payload["words"]] == ["hello", "there", "everyone"]
    assert partial.payload["participant"]["id"] == final.payload["participant"]["id"] == 100
    assert [e.event.rsplit(".", 1)[1] for e in receiver.events if "webcam" in e.event] == ["webcam_off", "webcam_on"]
    assert {e.payload["participant"]["id"] for e in receiver.events if "webcam" in e.event} == {200}
    chat = receiver.of("participant_events.chat_message")[0].payload
    assert (chat["participant"]["name"], chat["data"]) == ("Ann Host", {"text": "notes are in the doc",
                                                                       "to": "everyone"})
    update = receiver.of("participant_events.update")[0].payload
    assert (update["participant"]["id"], update["participant"]["name"]) == (200, "Bo (away)")
