"""Svix-style webhook signing: the headers Recall's status webhooks carry (``svix-id``, ``svix-timestamp``,
``svix-signature``), computed from the workspace signing secret so Svix's own verifiers accept them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random

SECRET_PREFIX = "whsec_"


class SigningSecretInvalid(ValueError):
    """The configured secret is not ``whsec_`` followed by base64 key bytes."""


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_<base64>`` secret (Svix decodes it the same way)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise SigningSecretInvalid(f"webhook signing secret must be whsec_<base64>: {exc}") from exc
    if not key:
        raise SigningSecretInvalid("webhook signing secret must be whsec_<base64> with a non-empty key")
    return key


def message_id(rng: random.Random) -> str:
    """A Svix message id (``msg_`` + 27 base62 characters, the KSUID length Svix uses)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "msg_" + "".join(rng.choice(alphabet) for _ in range(27))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``: the documented Svix scheme."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"svix-id": msg_id, "svix-timestamp": str(timestamp),
            "svix-signature": signature(secret, msg_id, timestamp, body), "Content-Type": "application/json"}
