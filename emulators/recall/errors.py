"""Recall's domain errors: each carries its HTTP status and the vendor's body shape, so api.py maps them in one place.

The service answers DRF-style bodies: ``{"detail": text}`` for most refusals, ``{field: [message]}`` for
validation, ``{"code", "detail"}`` for commands a bot cannot take.
"""

from __future__ import annotations

import json
from typing import Any


class RecallError(Exception):
    """A refusal with its wire status, a stable ``code`` and the JSON ``body`` the vendor sends."""

    status = 400
    code = "error"

    def __init__(self, body: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(json.dumps(body))
        self.body = body
        self.headers = headers or {}


class DetailError(RecallError):
    """The common ``{"detail": text}`` refusal."""

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__({"detail": detail}, headers=headers)
        self.detail = detail


class ValidationFailed(RecallError):
    """A request body or query is invalid; ``errors`` is the DRF-style ``{field: [message, ...]}`` map."""

    code = "invalid"

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(errors)
        self.errors = errors


class CommandRejected(RecallError):
    """A command a bot cannot take in its current state (400 with ``code`` and ``detail``)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__({"code": code, "detail": detail})
        self.code = code
        self.detail = detail


class NotAuthenticated(DetailError):
    status = 401
    code = "not_authenticated"


class BotNotFound(DetailError):
    status = 404
    code = "not_found"

    def __init__(self, bot_id: str = "") -> None:
        super().__init__("Not found.")
        self.bot_id = bot_id


class PageNotFound(DetailError):
    status = 404
    code = "invalid_page"

    def __init__(self) -> None:
        super().__init__("Invalid page.")


class DeleteRefused(DetailError):
    status = 405
    code = "method_not_allowed"

    def __init__(self) -> None:
        super().__init__("Only scheduled bots that have not been dispatched can be deleted.")


class UpdateRefused(CommandRejected):
    """PATCH of a bot that is not (or no longer) a scheduled, undispatched bot (400, ``code`` + ``detail``)."""

    def __init__(self) -> None:
        super().__init__("cannot_update_dispatched_bot",
                         "Only scheduled bots that have not been dispatched can be updated.")


class MediaLinkRefused(DetailError):
    """A recording link that is expired or not signed by this emulator (the vendor's storage answers 403)."""

    status = 403
    code = "media_link_refused"


class IdempotencyConflict(DetailError):
    status = 409
    code = "idempotency_conflict"


class Throttled(DetailError):
    status = 429
    code = "throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__("Request was throttled.", headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class PoolExhausted(DetailError):
    """Quirk Q8: the ad-hoc bot pool is empty (507)."""

    status = 507
    code = "pool_exhausted"

    RETRY_AFTER_S = 30  # the documented advice: retry every 30 s

    def __init__(self) -> None:
        super().__init__("No bots are available in the ad-hoc pool right now. Retry in 30 seconds with a new "
                         "Idempotency-Key, or schedule the bot with join_at.",
                         headers={"Retry-After": str(self.RETRY_AFTER_S)})


class IllegalTransition(Exception):
    """A status change the bot state machine does not allow: a bug in the emulator, never a client error."""
