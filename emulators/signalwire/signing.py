"""Webhook signatures of the Compatibility API: the Twilio-compatible HMAC-SHA1 of the URL and form parameters.

Pure: the key is the project's API token; the same value goes in ``X-SignalWire-Signature`` and
``X-Twilio-Signature`` so both vendors' validators accept it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_HEADERS = ("X-SignalWire-Signature", "X-Twilio-Signature")


def signature(token: str, url: str, params: dict[str, str]) -> str:
    """Base64 HMAC-SHA1 over the full URL (query string included) followed by every POST parameter's name and
    value, sorted by name; a GET callback has its fields in the URL and no parameters."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_headers(token: str, url: str, params: dict[str, str]) -> dict[str, str]:
    value = signature(token, url, params)
    return dict.fromkeys(SIGNATURE_HEADERS, value)
