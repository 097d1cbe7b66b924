"""Parity report writers: a terminal table, Markdown, a self-contained HTML page, and JSON."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from emulators.hil.parity import ParityResult


def _cell(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _headline(result: ParityResult) -> str:
    explained = len(result.differences) - len(result.unexplained)
    return (f"parity {result.device}: {result.compared} exchange(s) compared, {len(result.unexplained)} unexplained "
            f"difference(s), {explained} explained, {result.ignored} volatile field(s) ignored")


def terminal(result: ParityResult) -> str:
    rows = [(str(d.index), d.request, d.where, _cell(d.recorded), _cell(d.emulator), d.explained or "UNEXPLAINED")
            for d in result.differences]
    head = ("#", "request", "where", "recorded (device)", "emulator", "verdict")
    lines = [_headline(result), f"cassette {result.cassette} vs emulator {result.emulator}"]
    if not rows:
        lines.append("no differences")
        return "\n".join(lines)
    widths = [max(len(head[i]), *(len(_cell(r[i], 60)) for r in rows)) for i in range(len(head))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(_cell(c, 60).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def markdown(result: ParityResult) -> str:
    def esc(value: Any) -> str:
        return _cell(value, 200).replace("|", "\\|")

    lines = [f"# Parity report: {result.device}", "", _headline(result) + ".", "",
             f"- cassette: `{result.cassette}`", f"- emulator: `{result.emulator}`",
             f"- emulator profile: `{json.dumps(result.profile)}`", ""]
    if not result.differences:
        lines.append("No differences.")
    else:
        lines += ["| # | request | where | recorded (device) | emulator | verdict |", "|---|---|---|---|---|---|"]
        for d in result.differences:
            lines.append(f"| {d.index} | `{esc(d.request)}` | {esc(d.where)} | `{esc(d.recorded)}` | "
                         f"`{esc(d.emulator)}` | {esc(d.explained or '**unexplained**')} |")
    return "\n".join(lines) + "\n"


STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
code{font:12px ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
tr.unexplained td:last-child{color:#b00020;font-weight:bold}tr.explained td:last-child{color:#2e7d32}"""


def html_page(result: ParityResult) -> str:
    """One file, no external assets, so it can be attached to a CI run as is."""
    def code(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, indent=1)
        return f"<code>{html.escape(text)}</code>"

    rows = "".join(
        f'<tr class="{"explained" if d.explained else "unexplained"}"><td>{d.index}</td><td>{code(d.request)}</td>'
        f"<td>{html.escape(d.where)}</td><td>{code(d.recorded)}</td><td>{code(d.emulator)}</td>"
        f"<td>{html.escape(d.explained or 'unexplained')}</td></tr>"
        for d in result.differences)
    table = ("<table><tr><th>#</th><th>request</th><th>where</th><th>recorded (device)</th><th>emulator</th>"
             f"<th>verdict</th></tr>{rows}</table>") if rows else "<p>No differences.</p>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Parity report: {html.escape(result.device)}"
            f"</title><style>{STYLE}</style></head><body><h1>Parity report: {html.escape(result.device)}</h1>"
            f"<p>{html.escape(_headline(result))}.</p><ul><li>cassette: {code(result.cassette)}</li>"
            f"<li>emulator: {code(result.emulator)}</li><li>emulator profile: {code(result.profile)}</li></ul>"
            f"{table}</body></html>\n")


def json_report(result: ParityResult) -> str:
    return json.dumps(result.as_dict(), indent=2, default=str) + "\n"


WRITERS = {".html": html_page, ".htm": html_page, ".md": markdown, ".json": json_report}


def write(result: ParityResult, path: str) -> None:
    """The format follows the file's extension (.html, .md, .json)."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITERS:
        raise ValueError(f"--report {path}: the extension must be one of {', '.join(WRITERS)}")
    Path(path).write_text(WRITERS[suffix](result))
