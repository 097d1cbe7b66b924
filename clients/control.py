"""A small synchronous client for an emulator's control plane (``/_emulator/``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, cast


class ControlPlaneError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        message = body.get("error") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body


class ControlPlane:
    """health, state, reset, faults, events and scenario controls of one emulator."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0, token: str | None = None) -> None:
        """``token``: the emulator's control token (``benchtwin up --control-token``), sent as a Bearer token."""
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.token = token

    def _request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/_emulator/{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token is not None:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            raise ControlPlaneError(exc.code, parsed) from None
        return json.loads(raw) if raw else None

    def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._request("GET", "health"))

    def state(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._request("GET", "state"))

    def device_state(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.state()["device_state"])

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        return cast(dict[str, Any], self._request("POST", "reset", {} if seed is None else {"seed": seed}))

    def faults(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._request("GET", "faults")["faults"])

    def add_fault(self, rule: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self._request("POST", "faults", rule))

    def remove_fault(self, fault_id: str) -> None:
        self._request("DELETE", f"faults/{urllib.parse.quote(fault_id)}")

    def clear_faults(self) -> None:
        self._request("DELETE", "faults")

    def events(self, kind: str | None = None, since: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        query = {"kind": kind, "since": since or None, "limit": limit}
        return cast(list[dict[str, Any]], self._request("GET", "events", query=query)["events"])

    def scenario(self, control: str, **body: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self._request("POST", f"scenario/{urllib.parse.quote(control)}", body))
