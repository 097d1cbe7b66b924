"""The HTTP session plumbing every reference client shares: own a session, or borrow the caller's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

import aiohttp


class SessionOwner:
    """Creates its aiohttp session on first use and closes it; a session passed in is borrowed and left open."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout: aiohttp.ClientTimeout | None = None,
        connector: Callable[[], aiohttp.BaseConnector] | None = None,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout
        self._connector = connector

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            kwargs: dict[str, object] = {}
            if self._timeout is not None:
                kwargs["timeout"] = self._timeout
            if self._connector is not None:
                kwargs["connector"] = self._connector()
            self._session = aiohttp.ClientSession(**kwargs)  # type: ignore[arg-type]
        return self._session

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None if self._owns_session else self._session

    async def close(self) -> None:
        await self.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
