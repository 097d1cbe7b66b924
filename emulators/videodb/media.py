"""HLS playback of recordings (RFC 8216): playlists over any recorded window and the segment files.

URL shapes follow the service: ``/manifests/{rts}/{start_us}-{end_us}.m3u8`` with 16-digit microsecond
epochs, ``/segments/{rts}/{rec}/{seq}.ts`` and ``/player?url=<m3u8>``.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime

from emulators.videodb.records import Segment

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"


def manifest_path(rtstream_id: str, start: float, end: float) -> str:
    return f"/manifests/{rtstream_id}/{round(start * 1_000_000):016d}-{round(end * 1_000_000):016d}.m3u8"


def player_url(base: str, stream_url: str) -> str:
    # The service embeds the playlist URL unencoded.
    return f"{base}/player?url={stream_url}"


def parse_window(name: str) -> tuple[float, float] | None:
    """``1757523710000000-1757523726000000.m3u8`` -> (start_s, end_s); None when the name is not that."""
    if not name.endswith(".m3u8"):
        return None
    parts = name[: -len(".m3u8")].split("-")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) == 16 for p in parts):
        return None
    start, end = (int(p) / 1_000_000 for p in parts)
    return (start, end) if start < end else None


def compiled_path(compilation_id: str) -> str:
    return f"/manifests/compile/{compilation_id}.m3u8"


def render_playlist(rtstream_id: str, segments: list[Segment], *, live: bool) -> str:
    """A playlist over ``segments`` (time order). ``live``: an EVENT playlist still growing, no ENDLIST."""
    return _render([(rtstream_id, segments)], live=live, sequence=segments[0].sequence)


def render_compilation(pieces: list[tuple[str, list[Segment]]]) -> str:
    """A VOD playlist of compiled shots: each shot's segments, a discontinuity between shots."""
    return _render(pieces, live=False, sequence=0)


def _render(pieces: list[tuple[str, list[Segment]]], *, live: bool, sequence: int) -> str:
    target = max(1, math.ceil(max(s.duration for _, segments in pieces for s in segments)))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{sequence}",
        f"#EXT-X-PLAYLIST-TYPE:{'EVENT' if live else 'VOD'}",
    ]
    for number, (rtstream_id, segments) in enumerate(pieces):
        previous: Segment | None = None
        for segment in segments:
            starts_run = previous is None or segment.recording != previous.recording or segment.discontinuity
            if starts_run and (previous is not None or number > 0):
                lines.append("#EXT-X-DISCONTINUITY")
            if starts_run:
                stamp = datetime.fromtimestamp(segment.start, UTC).isoformat(timespec="milliseconds")
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{stamp}")
            lines.append(f"#EXTINF:{segment.duration:.3f},")
            lines.append(f"/segments/{rtstream_id}/{segment.recording}/{segment.sequence}.ts")
            previous = segment
    if not live:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def player_page(stream_url: str) -> str:
    """A minimal HTML player (hls.js-free: browsers with native HLS play it; others get the link)."""
    url = html.escape(stream_url, quote=True)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>VideoDB Player (benchtwin)</title></head>"
        f"<body><video controls autoplay src=\"{url}\" style='width:100%'></video>"
        f"<p><a href=\"{url}\">{url}</a></p></body></html>"
    )
