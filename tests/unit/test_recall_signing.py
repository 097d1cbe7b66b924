"""Recall status-webhook signing: the Svix scheme, checked against Svix's own verifier."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from svix.webhooks import Webhook, WebhookVerificationError

from emulators.recall.settings import DEV_WEBHOOK_SIGNING_SECRET
from emulators.recall.signing import SigningSecretInvalid, message_id, secret_key, signed_headers

BODY = json.dumps({"event": "bot.done", "data": {"data": {"code": "done"}}}).encode()


def headers_now(body: bytes = BODY) -> dict[str, str]:
    now = int(datetime.now(UTC).timestamp())
    return signed_headers(DEV_WEBHOOK_SIGNING_SECRET, message_id(random.Random(1)), now, body)


def test_svix_verifies_a_signed_body() -> None:
    Webhook(DEV_WEBHOOK_SIGNING_SECRET).verify(BODY, headers_now())  # raises WebhookVerificationError otherwise


def test_svix_rejects_a_tampered_body() -> None:
    with pytest.raises(WebhookVerificationError):
        Webhook(DEV_WEBHOOK_SIGNING_SECRET).verify(BODY.replace(b"done", b"fatal"), headers_now())


def test_svix_rejects_another_workspace_secret() -> None:
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "b3RoZXItd29ya3NwYWNl").verify(BODY, headers_now())


def test_message_ids_are_svix_shaped_and_seeded() -> None:
    first, again = message_id(random.Random(7)), message_id(random.Random(7))
    assert first == again and first.startswith("msg_") and len(first) == 31


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", ""])
def test_a_malformed_secret_is_refused_naming_the_format(secret: str) -> None:
    with pytest.raises(SigningSecretInvalid, match="whsec_<base64>"):
        secret_key(secret)
