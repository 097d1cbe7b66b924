"""Recall status webhooks as Svix delivers them: signed with the workspace secret, documented event names only."""

from __future__ import annotations

from svix.webhooks import Webhook

from clients.recall import RecallClient
from emulators.recall.device import DEV_API_KEY
from tests.conftest import EmulatorFactory, WebhookReceiver

MEET = "https://meet.google.com/abc-defg-hij"
V111 = {"recording_config": {"participant_events": {}}}


async def test_v111_status_webhooks_verify_with_svix_and_never_name_bot_ready(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver
) -> None:
    emu = await emulator_factory("recall", settings={"status_webhook_url": webhook_receiver.url + "/hooks"})
    secret = emu.credentials()["webhook_signing_secret"]
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(MEET, **V111)
        await client.wait_for_status(bot["id"], "in_call_recording", timeout_s=5)
        await client.leave_call(bot["id"])
        hooks = await webhook_receiver.wait_for(5, timeout=5)
    for hook in hooks:
        Webhook(secret).verify(hook.body, hook.headers)  # raises WebhookVerificationError on a bad signature
    verified = [h.json() for h in hooks]
    assert [m["event"] for m in verified] == [
        "bot.joining_call", "bot.in_call_not_recording", "bot.in_call_recording", "bot.call_ended", "bot.done"]
    assert all(m["data"]["bot"]["id"] == bot["id"] for m in verified)
    assert len({h.headers["svix-id"] for h in hooks}) == 5


async def test_a_retried_webhook_keeps_its_svix_id_and_still_verifies(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.answer_next(503)
    emu = await emulator_factory("recall", settings={"status_webhook_url": webhook_receiver.url + "/hooks",
                                                     "webhook_retry_interval_s": 0.05})
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        await client.create_bot(MEET, **V111)
        first, retried = await webhook_receiver.wait_for(2, timeout=5)
    assert first.headers["svix-id"] == retried.headers["svix-id"]
    Webhook(emu.credentials()["webhook_signing_secret"]).verify(retried.body, retried.headers)
    assert retried.json()["event"] == "bot.joining_call"


# Realtime endpoints of type webhook. Times are scenario seconds x the test time scale: Bo joins after the
# bot records, Ann speaks one line.
RT_MEET = "https://meet.google.com/web-hook-rtt"
RT_SCENARIO = {
    "name": "webhook-endpoints", "meeting_urls": [RT_MEET], "duration_s": 1000,
    "participants": [{"id": 100, "is_host": True, "name": "Ann Host"}, {"id": 200, "name": "Bo Guest", "join_s": 10}],
    "speaking": [{"participant": 100, "start_s": 3, "end_s": 30, "text": "hello there everyone"}],
}
RT_EVENTS = ["participant_events.join", "participant_events.speech_off", "transcript.data"]


def webhook_endpoint(url: str) -> dict:
    return {"recording_config": {"participant_events": {}, "transcript": {}, "realtime_endpoints": [
        {"type": "webhook", "url": url, "events": RT_EVENTS, "metadata": {"site": "test"}}]}}


async def test_a_webhook_realtime_endpoint_gets_each_subscribed_event_as_a_post(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver
) -> None:
    emu = await emulator_factory("recall", settings={"retry_interval_s": 0.05})
    await emu.scenario_controls["load_scenario"]({"scenario": RT_SCENARIO})
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(RT_MEET, **webhook_endpoint(webhook_receiver.url + "/rt?token=abc"))
        await emu.events.wait_for("stream.started", timeout=5)
        await webhook_receiver.wait_for(1, timeout=5)
        while not any(r.json()["event"] == "transcript.data" for r in webhook_receiver.requests):
            await webhook_receiver.wait_for(len(webhook_receiver.requests) + 1, timeout=10)
        await client.leave_call(bot["id"])
    posts = webhook_receiver.requests
    assert {(r.method, r.path, r.query_string) for r in posts} == {("POST", "/rt", "token=abc")}
    assert all(r.headers["Content-Type"].startswith("application/json") for r in posts)
    messages = [r.json() for r in posts]
    assert {m["event"] for m in messages} <= set(RT_EVENTS)
    assert any(m["event"] == "participant_events.join" and m["data"]["data"]["participant"]["id"] == 200
               for m in messages)
    transcript = next(m for m in messages if m["event"] == "transcript.data")
    assert [w["text"] for w in transcript["data"]["data"]["words"]] == ["hello", "there", "everyone"]
    assert transcript["data"]["bot"]["id"] == bot["id"]
    assert transcript["data"]["realtime_endpoint"]["metadata"] == {"site": "test"}


async def test_a_webhook_realtime_endpoint_retries_a_failed_post_with_the_same_body(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.answer_next(503, 503)
    emu = await emulator_factory("recall", settings={"retry_interval_s": 0.05})
    await emu.scenario_controls["load_scenario"]({"scenario": RT_SCENARIO})
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(RT_MEET, **webhook_endpoint(webhook_receiver.url + "/rt"))
        first, second, third = await webhook_receiver.wait_for(3, timeout=5)
        await client.leave_call(bot["id"])
    assert first.body == second.body == third.body
    assert [e.detail["attempt"] for e in emu.events.query(kind="outbound.retry")][:2] == [1, 2]


async def test_a_webhook_realtime_endpoint_that_keeps_failing_is_marked_failed_after_30_attempts(
    emulator_factory: EmulatorFactory, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.status = 500
    emu = await emulator_factory("recall", settings={"retry_interval_s": 0.01})
    await emu.scenario_controls["load_scenario"]({"scenario": RT_SCENARIO})
    async with RecallClient(DEV_API_KEY, emu.url()) as client:
        bot = await client.create_bot(RT_MEET, **webhook_endpoint(webhook_receiver.url + "/rt"))
        error = await emu.events.wait_for("stream.error", timeout=10)
        endpoints = emu.state()["bots"][bot["id"]]["realtime_endpoints"]
        await client.leave_call(bot["id"])
    assert "30" in error.detail["error"] and len(webhook_receiver.requests) == 30
    assert [e["state"] for e in endpoints.values()] == ["failed"]
