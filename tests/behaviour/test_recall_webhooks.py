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
