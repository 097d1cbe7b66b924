"""Prints the figures of a benchmark run as one aligned table: scenario, figure, value, target."""

from __future__ import annotations

from typing import Any

# Keys that are structure, not figures; they are left to the JSON output.
_SKIP = {"error", "steps", "notes", "targets", "per_client", "peer", "operations", "runs", "samples"}


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def render(results: dict[str, dict[str, Any]]) -> str:
    rows: list[tuple[str, str, str, str]] = []
    for scenario, figures in results.items():
        targets = figures.get("targets", {})
        first = True
        for key, value in figures.items():
            if key in _SKIP or isinstance(value, dict | list):
                continue
            target = targets.get(key)
            mark = ""
            if isinstance(target, dict):
                met = target.get("met")
                verdict = "met" if met else "MISSED" if met is False else target.get("why", "not judged")
                mark = f"{target['rule']}  {verdict}"
            rows.append((scenario if first else "", key, _format(value), mark))
            first = False
        for name, ops in (figures.get("operations") or {}).items():
            for key, value in ops.items():
                rows.append(("", f"{name}.{key}", _format(value), ""))
        if "error" in figures:
            # Only the last line of a long error (a child's traceback) fits a table; the JSON keeps it all.
            last = str(figures["error"]).strip().splitlines() or [""]
            rows.append((scenario if first else "", "note", f"ERROR {last[-1]}", ""))
            first = False
        for note in figures.get("notes", []):
            rows.append(("", "note", note, ""))
    if not rows:
        return "no figures"
    sized = [("scenario", "figure", "value", "target"), *(r for r in rows if r[1] != "note")]
    widths = [max(len(r[i]) for r in sized) for i in range(3)]
    lines = [f"{'scenario':<{widths[0]}}  {'figure':<{widths[1]}}  {'value':>{widths[2]}}  target",
             "-" * (sum(widths) + 30)]
    for scenario, key, value, mark in rows:
        if key == "note":
            lines.append(f"{scenario:<{widths[0]}}  note: {value}")
        else:
            lines.append(f"{scenario:<{widths[0]}}  {key:<{widths[1]}}  {value:>{widths[2]}}  {mark}".rstrip())
    return "\n".join(lines)


def target(rule: str, met: bool | None, why: str | None = None) -> dict[str, Any]:
    """A target as the JSON and the table show it: the rule in words and whether this run met it.

    ``met`` is None when this run cannot judge it (a peer is missing, a figure is below resolution).
    """
    out: dict[str, Any] = {"rule": rule, "met": None if met is None else bool(met)}
    if why:
        out["why"] = why
    return out
