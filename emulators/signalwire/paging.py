"""List pages and date filters of the Compatibility API: ``Page``/``PageSize``/``PageToken`` and ``DateCreated<``.

Pure: a bad value is an InvalidRequest naming the parameter.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from emulators.signalwire.errors import InvalidRequest

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class PageRequest:
    page: int = 0
    page_size: int = 50


def page_request(query: dict[str, str]) -> PageRequest:
    def integer(name: str, default: int, lo: int, hi: int) -> int:
        raw = query.get(name)
        if raw is None or raw == "":
            return default
        if not re.fullmatch(r"[0-9]+", raw):
            raise InvalidRequest(f"{name} must be an integer between {lo} and {hi}, got {raw!r}")
        value = int(raw)
        if not lo <= value <= hi:
            raise InvalidRequest(f"{name} must be between {lo} and {hi}, got {value}")
        return value

    token = query.get("PageToken")
    if token and not token.startswith(("PA", "PB")):  # an empty one is no token, like an empty Page
        raise InvalidRequest(f"PageToken must start with PA or PB, got {token!r}")
    return PageRequest(page=integer("Page", 0, 0, 2**31 - 1), page_size=integer("PageSize", 50, 1, 1000))


PAGING_PARAMETERS = ("Page", "PageSize", "PageToken")


def page_envelope(
    key: str, items: list[dict[str, Any]], request: PageRequest, path: str, query: dict[str, str],
    known: Collection[str] | None = None,
) -> dict[str, Any]:
    """The list envelope in the vendor's form: every URI is ``path`` without ``.json`` plus only the query
    parameters the list knows (``known`` filters and the paging ones); next/previous carry Page, PageSize and a
    PA/PB token; ``start``/``end`` are the zero-based indexes of the page's first and last item.

    ``path`` keeps the root the request came in on, so a client that follows ``next_page_uri`` from its own
    base URL stays on the root it chose.
    """
    path = path.removesuffix(".json")
    kept = {k: v for k, v in query.items() if known is None or k in known or k in PAGING_PARAMETERS}
    filters = {k: v for k, v in kept.items() if k not in PAGING_PARAMETERS}
    start = request.page * request.page_size
    window = items[start : start + request.page_size]

    def link(page: int, token: str | None) -> str:
        params = {**filters, "Page": str(page), "PageSize": str(request.page_size)}
        if token:
            params["PageToken"] = token
        return f"{path}?{urlencode(params)}"

    has_next = start + request.page_size < len(items)
    return {
        "uri": f"{path}?{urlencode(kept)}" if kept else path,
        "first_page_uri": link(0, None),
        "next_page_uri": link(request.page + 1, f"PA{request.page + 1}") if has_next else None,
        "previous_page_uri": link(request.page - 1, f"PB{request.page - 1}") if request.page > 0 else None,
        "page": request.page,
        "page_size": request.page_size,
        "start": start,
        "end": start + max(len(window) - 1, 0),
        key: window,
    }


def _date_filter(query: dict[str, str], name: str) -> dt.date | None:
    raw = query.get(name)
    if not raw:  # absent or empty: no filter, as for the paging integers
        return None
    if not _DATE.fullmatch(raw):
        raise InvalidRequest(f"{name} must be a date as YYYY-MM-DD, got {raw!r}")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a valid date as YYYY-MM-DD, got {raw!r}") from None


DateRange = tuple[dt.date | None, dt.date | None, dt.date | None]


def date_filters(query: dict[str, str], prefix: str) -> DateRange:
    """``Prefix``, ``Prefix<`` and ``Prefix>`` parsed up front, so a bad value is a 422 even with no matches."""
    on, before, after = (_date_filter(query, prefix + s) for s in ("", "<", ">"))
    return on, before, after


def date_matches(bounds: DateRange, timestamp: float) -> bool:
    day = dt.datetime.fromtimestamp(timestamp, dt.UTC).date()
    on, before, after = bounds
    return (on is None or day == on) and (before is None or day < before) and (after is None or day > after)
