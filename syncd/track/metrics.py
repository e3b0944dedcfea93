"""Prometheus text-format metrics, written to a file after each cycle.

node_exporter's textfile collector (or any scraper of a file) picks it up; no listening
socket, no extra dependency. The file is replaced atomically so a scrape never sees half.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

_HELP = {
    "syncd_calendars": ("gauge", "Staff calendars configured."),
    "syncd_calendars_unreadable": ("gauge", "Calendars that could not be read in the last cycle."),
    "syncd_calendars_blind": ("gauge", "Calendars reported to the monitor as blind spots."),
    "syncd_findings_open": ("gauge", "Open findings for visits in the checking window."),
    "syncd_visits_checked": ("gauge", "Visits checked in the last cycle's evaluations."),
    "syncd_outbox_pending": ("gauge", "Notifications waiting to be sent."),
    "syncd_cycle_requests": ("gauge", "Requests to calendar servers in the last cycle."),
    "syncd_cycle_seconds": ("gauge", "Duration of the last cycle."),
    "syncd_send_failures": ("gauge", "Messages that failed to send in the last cycle."),
    "syncd_last_cycle_timestamp_seconds": ("gauge", "When the last cycle finished (Unix time)."),
}


def render(values: Iterable[tuple[str, float]]) -> str:
    lines: list[str] = []
    for name, value in values:
        kind, text = _HELP[name]
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]
    return "\n".join(lines) + "\n"


def write(path: Path, values: Iterable[tuple[str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".syncd-metrics-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render(values))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def timestamp(now: datetime) -> float:
    return now.timestamp()
